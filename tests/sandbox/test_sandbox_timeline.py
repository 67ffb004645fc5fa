"""The sandbox's ECS sets a task's timestamps as ECS does, and can make image pulls take
as long as the image's size over a bandwidth; the executor's summary line shows both."""

from __future__ import annotations

import asyncio
import io

import pytest
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.sandbox import Sandbox
from covalent_ecs_executor.sandbox.seed import PLACEHOLDER_IMAGE_BYTES

pytestmark = pytest.mark.integration

BANDWIDTH_MB_S = 100.0
# A run takes a second or two: a ceiling for a broken one, not a pace.
RUN_CEILING_S = 60
EXPECTED_PULL_S = PLACEHOLDER_IMAGE_BYTES / (BANDWIDTH_MB_S * 1e6)  # 0.8 s for the runner image
ECS_ORDER = ("createdAt", "connectivityAt", "pullStartedAt", "pullStoppedAt", "startedAt",
             "executionStoppedAt", "stoppedAt")  # fmt: skip


def test_timestamps_follow_ecs_and_the_pull_takes_the_images_size_over_the_bandwidth():
    with Sandbox(pull_bandwidth_mb_s=BANDWIDTH_MB_S) as sandbox:
        config = sandbox.executor_config
        executor = ECSExecutor(**config)
        executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
        meta = {"dispatch_id": "timeline-1", "node_id": 0, "results_dir": "."}
        assert asyncio.run(asyncio.wait_for(executor.run(abs, [-4], {}, meta), RUN_CEILING_S)) == 4

        line = executor.task_stderr.getvalue().splitlines()[-1]
        (arn,) = [r["taskArn"] for r in sandbox.tasks() if r["label"] == "timeline-1/0"]
        assert line.startswith("[covalent-ecs] queued ") and line.endswith(f"task {arn}")

        ecs = sandbox.client("ecs", internal=True)

        def stopped() -> dict | None:  # run() returns at the container's exit, before STOPPED
            (task,) = ecs.describe_tasks(cluster=config["ecs_cluster_name"], tasks=[arn])["tasks"]
            return task if task["lastStatus"] == "STOPPED" else None

        task = wait_for(stopped, what="the task to reach STOPPED")
        stamps = [task[name].timestamp() for name in ECS_ORDER]
        assert stamps == sorted(stamps), dict(zip(ECS_ORDER, stamps, strict=True))
        pull_s = stamps[3] - stamps[2]
        assert EXPECTED_PULL_S <= pull_s < EXPECTED_PULL_S + 5  # + the agent's tick and load
        assert f"pull {pull_s:.1f} s" in line


def test_without_a_bandwidth_the_pull_is_immediate():
    with Sandbox(provision_delay_s=0) as sandbox:
        config = sandbox.executor_config
        executor = ECSExecutor(**config)
        executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
        meta = {"dispatch_id": "timeline-2", "node_id": 0, "results_dir": "."}
        assert asyncio.run(asyncio.wait_for(executor.run(abs, [-1], {}, meta), RUN_CEILING_S)) == 1
        (arn,) = [r["taskArn"] for r in sandbox.tasks() if r["label"] == "timeline-2/0"]
        (task,) = sandbox.client("ecs", internal=True).describe_tasks(
            cluster=config["ecs_cluster_name"], tasks=[arn])["tasks"]  # fmt: skip
        assert (task["pullStoppedAt"] - task["pullStartedAt"]).total_seconds() < EXPECTED_PULL_S
