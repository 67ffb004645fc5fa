"""Tasks that never ran are relaunched; Spot falls back to on-demand when asked.

Each test scripts sandbox faults for its own dispatch, runs one node through
ECSExecutor, and counts its own tasks: how many ECS started, and how many of them ran
the user's code (a container that ran has an exit code; one that never started has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import uuid
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from covalent_ecs_executor import ECSExecutor, ecs
from covalent_ecs_executor.errors import CapacityError, ImagePullError, LaunchError

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ENI_TIMEOUT = "Timeout waiting for network interface provisioning to complete."
# A run here takes seconds (relaunch backoff shrunk below): a ceiling, not a pace.
RUN_CEILING_S = 120
PULL_503 = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
    "do request: unexpected status from HEAD request: 503 Service Unavailable"
)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    # The relaunch backoff's scale (2 s, 4 s, ...) shrunk so each test takes seconds.
    monkeypatch.setattr(ecs, "RELAUNCH_BACKOFF_S", 0.1)


class Node:
    def __init__(self, sandbox: Any, **config: Any) -> None:
        self.sandbox = sandbox
        self.dispatch_id = f"relaunch-{uuid.uuid4().hex[:8]}"
        self.executor = ECSExecutor(**{**sandbox.executor_config, **config})
        self.stderr = ""

    def run(self, fn: Any) -> Any:
        # Outside Covalent's execute() there are no node streams: the executor's lines
        # for the node's stderr go to this process's stdout, captured here.
        meta = {"dispatch_id": self.dispatch_id, "node_id": 0, "results_dir": "/tmp"}
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                return asyncio.run(asyncio.wait_for(self.executor.run(fn, [], {}, meta), RUN_CEILING_S))
        finally:
            self.stderr = buffer.getvalue()

    def tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tasks() if t.get("label") == f"{self.dispatch_id}/0"]

    def ran_code(self) -> int:
        return sum(1 for t in self.tasks() if t["exitCode"] is not None)

    def described(self) -> list[dict[str, Any]]:
        arns = [t["taskArn"] for t in self.tasks()]
        cluster = self.sandbox.executor_config["ecs_cluster_name"]
        return self.sandbox.client("ecs").describe_tasks(cluster=cluster, tasks=arns)["tasks"]


def answer() -> int:
    return 42


def test_an_eni_timeout_on_the_first_launch_is_relaunched(fresh_sandbox):
    node = Node(fresh_sandbox)
    fresh_sandbox.add_fault("start_failure", label=node.dispatch_id, reason=ENI_TIMEOUT)
    assert node.run(answer) == 42
    assert len(node.tasks()) == 2 and node.ran_code() == 1
    assert f"launch attempt 1 of 3 did not run the task ({ENI_TIMEOUT})" in node.stderr


def test_capacity_unavailable_twice_completes_on_the_third_launch(fresh_sandbox):
    node = Node(fresh_sandbox)
    fresh_sandbox.add_fault("capacity_unavailable", label=node.dispatch_id, times=2)
    assert node.run(answer) == 42
    assert fresh_sandbox.calls()["ecs.RunTask"] == 3
    assert len(node.tasks()) == 1 and node.ran_code() == 1
    assert node.stderr.count("did not run the task (Capacity is unavailable") == 2


def test_capacity_unavailable_on_every_attempt_fails_listing_each(fresh_sandbox):
    node = Node(fresh_sandbox, launch_attempts=2)
    fresh_sandbox.add_fault("capacity_unavailable", label=node.dispatch_id, times=2)
    with pytest.raises(TaskRuntimeError) as failed:
        node.run(answer)
    assert isinstance(failed.value.__cause__, LaunchError)
    message = str(failed.value)
    assert "Launch attempts:\n  attempt 1: Capacity is unavailable" in message
    assert "\n  attempt 2: ECS did not start the task" in message
    assert node.tasks() == []


def test_a_transient_pull_error_is_relaunched_but_a_missing_image_is_not(fresh_sandbox):
    node = Node(fresh_sandbox)
    fresh_sandbox.add_fault("pull_failure", label=node.dispatch_id, reason=PULL_503)
    assert node.run(answer) == 42
    assert len(node.tasks()) == 2 and node.ran_code() == 1

    missing = Node(fresh_sandbox)
    fresh_sandbox.add_fault("pull_failure", label=missing.dispatch_id)  # "not found"
    with pytest.raises(TaskRuntimeError) as failed:
        missing.run(answer)
    assert isinstance(failed.value.__cause__, ImagePullError)
    assert len(missing.tasks()) == 1


@pytest.mark.parametrize("fallback", [True, False], ids=["spot_fallback", "spot_only"])
def test_spot_without_capacity_falls_back_to_on_demand_only_when_asked(fresh_sandbox, fallback):
    node = Node(fresh_sandbox, capacity_provider="FARGATE_SPOT", spot_fallback=fallback)
    fresh_sandbox.add_fault("capacity_unavailable", label=node.dispatch_id, times=1)
    assert node.run(answer) == 42
    (task,) = node.described()
    if fallback:
        assert task.get("launchType") == "FARGATE" and "capacityProviderName" not in task
        assert "relaunching on on-demand FARGATE" in node.stderr
    else:
        assert task["capacityProviderName"] == "FARGATE_SPOT"
        assert "relaunching in" in node.stderr


def sleeps_then_answers() -> int:
    import time

    time.sleep(3)
    return 42


@pytest.mark.parametrize("rerun", [True, False], ids=["rerun_on_interruption", "no_rerun"])
def test_a_spot_interruption_reruns_the_task_only_when_asked(fresh_sandbox, rerun):
    node = Node(fresh_sandbox, capacity_provider="FARGATE_SPOT", rerun_on_interruption=rerun)
    fresh_sandbox.add_fault("spot_interruption", label=node.dispatch_id, after_s=0.5)
    if rerun:
        assert node.run(sleeps_then_answers) == 42
        assert len(node.tasks()) == 2 and node.ran_code() == 2  # the code ran twice, as asked
    else:
        with pytest.raises(TaskRuntimeError) as failed:
            node.run(sleeps_then_answers)
        assert isinstance(failed.value.__cause__, CapacityError)
        assert len(node.tasks()) == 1


def test_spot_options_without_spot_are_refused_before_any_aws_call(fresh_sandbox):
    with pytest.raises(ValueError, match="spot_fallback=true applies only to Spot tasks"):
        ECSExecutor(**fresh_sandbox.executor_config, spot_fallback=True)
