"""Sandbox options the benchmarks use: runner tasks forked from a pre-warmed server, and
a stand-in command for an image's default CMD. Both must keep what a task is: its own
process group, environment and working directory, its exit code, its log stream."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.errors import TaskStoppedError
from covalent_ecs_executor.sandbox import Sandbox

pytestmark = pytest.mark.integration

STAND_IN_IMAGE = "public.ecr.aws/example/other-plugin-runner:stable"
# A forked task runs in well under a second: a ceiling for a broken run, not a pace.
RUN_CEILING_S = 60


@pytest.fixture(scope="module")
def forking_sandbox() -> Iterator[Sandbox]:
    command = [sys.executable, "-c", "import os; print('stand-in ran in', os.getcwd())"]
    with Sandbox(
        provision_delay_s=0,
        deprovision_delay_s=0,
        fork_server=True,
        image_commands={STAND_IN_IMAGE: command},
    ) as sandbox:
        yield sandbox


def log_messages(sandbox: Sandbox, record: dict[str, Any]) -> list[str]:
    group, stream = record["logStream"].split(":", 1)
    logs = sandbox.client("logs", internal=True)
    return [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream)["events"]]


def test_a_forked_runner_task_is_its_own_process_with_the_task_environment(
    forking_sandbox: Sandbox,
) -> None:
    def describe_process() -> dict[str, Any]:  # nested: pickled by value
        import os

        print("hello from a forked runner")
        return {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "home": os.environ.get("HOME"),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        }

    forking_sandbox.reset_calls()
    executor = ECSExecutor(**forking_sandbox.executor_config)
    meta = {"dispatch_id": "fork-1", "node_id": 0, "results_dir": "."}
    seen = asyncio.run(asyncio.wait_for(executor.run(describe_process, [], {}, meta), RUN_CEILING_S))

    record = next(r for r in forking_sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == "fork-1/0")
    assert seen["pid"] == record["pid"] != os.getpid()
    assert seen["pgid"] == seen["pid"]  # its own group: StopTask and OOM kills reach it all
    assert seen["cwd"] == seen["home"] == record["env"]["HOME"]
    assert seen["endpoint"] == forking_sandbox.endpoint_url
    assert record["exitCode"] == 0
    assert any("hello from a forked runner" in m for m in log_messages(forking_sandbox, record))
    # The executor's own S3 traffic is told apart from the runner's.
    calls = forking_sandbox.calls_by_caller()
    assert {k: v for k, v in calls["client"].items() if k.startswith("s3.")} == {
        "s3.PutObject": 1, "s3.GetObject": 1, "s3.DeleteObjects": 1,
    }  # fmt: skip
    assert calls["runner"] == {"s3.GetObject": 1, "s3.PutObject": 1}


def test_stop_task_terminates_a_forked_runner(forking_sandbox: Sandbox) -> None:
    def sleep_long() -> None:  # nested: pickled by value

        time.sleep(60)

    config = forking_sandbox.executor_config
    executor = ECSExecutor(**config)
    meta = {"dispatch_id": "fork-2", "node_id": 0, "results_dir": "."}

    async def run_and_stop() -> Any:
        running = asyncio.ensure_future(executor.run(sleep_long, [], {}, meta))
        record = await asyncio.to_thread(
            wait_for,
            lambda: next(
                (r for r in forking_sandbox.tasks()
                 if r["env"].get("COVALENT_ECS_TASK") == "fork-2/0" and r["pid"]),
                None,
            ),
            what="the forked runner's process",
        )  # fmt: skip
        forking_sandbox.client("ecs").stop_task(
            cluster=config["ecs_cluster_name"], task=record["taskArn"], reason="stopped by the test"
        )
        return await asyncio.wait_for(running, RUN_CEILING_S)

    # Stopped from outside (not a Covalent cancel): the node fails, naming the stop.
    with pytest.raises(TaskRuntimeError) as raised:
        asyncio.run(run_and_stop())
    assert isinstance(raised.value.__cause__, TaskStoppedError)
    assert raised.value.__cause__.stop_code == "UserInitiated"
    assert "was stopped before it wrote a result" in str(raised.value)
    assert "reason: stopped by the test" in str(raised.value)
    record = next(r for r in forking_sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == "fork-2/0")
    assert record["exitCode"] == 143  # SIGTERM, as Docker reports it
    assert record["stopCode"] == "UserInitiated"


def test_an_image_command_stands_in_for_the_images_default_command(
    forking_sandbox: Sandbox,
) -> None:
    config = forking_sandbox.executor_config
    ecs = forking_sandbox.client("ecs")
    definition = ecs.register_task_definition(
        family="default-cmd",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "main",
                "image": STAND_IN_IMAGE,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": config["ecs_task_log_group_name"],
                        "awslogs-stream-prefix": "default-cmd",
                    },
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.run_task(
        cluster=config["ecs_cluster_name"],
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [config["ecs_task_subnet_id"]],
                "securityGroups": [config["ecs_task_security_group_id"]],
            }
        },
    )["tasks"][0]["taskArn"]
    record = wait_for(
        lambda: next(
            (r for r in forking_sandbox.tasks() if r["taskArn"] == arn and r["lastStatus"] == "STOPPED"),
            None,
        )
    )
    assert record["exitCode"] == 0
    assert record["argv"][0] == sys.executable
    assert any("stand-in ran in" in m for m in log_messages(forking_sandbox, record))
