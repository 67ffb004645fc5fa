"""Throttling and retries against the sandbox (no Covalent server). Stopping a script
that watches a task is tested in test_safety_net.py.

The sandbox with ``aws_limits=True`` throttles like AWS (per-account token buckets);
scripted faults make ECS answer "Rate exceeded" in its disguised forms.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from covalent_ecs_executor import LaunchError, aws, launch
from covalent_ecs_executor.config import build_config


def executor_clients(sandbox: Any, **overrides: Any) -> aws.Clients:
    """The clients ECSExecutor would use (our retry settings and hooks)."""
    return aws.clients_for(build_config({**sandbox.executor_config, **overrides}, {}))


def register_true_task(sandbox: Any) -> str:
    """A definition whose container runs /bin/true (cheap to launch by the hundred)."""
    ecs = sandbox.client("ecs", internal=True)
    return ecs.register_task_definition(
        family=f"failures-test-{uuid.uuid4().hex[:8]}",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "main", "image": "python:3.11-slim", "command": ["true"]}],
    )["taskDefinition"]["taskDefinitionArn"]


def run_task_request(sandbox: Any, definition_arn: str) -> dict[str, Any]:
    config = sandbox.executor_config
    return {
        "cluster": config["ecs_cluster_name"],
        "taskDefinition": definition_arn,
        "launchType": "FARGATE",
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": [config["ecs_task_subnet_id"]],
                "securityGroups": [config["ecs_task_security_group_id"]],
            }
        },
        "clientToken": uuid.uuid4().hex,
    }


# --------------------------------------------------------------------- AWS's limits
def launch_burst(sandbox: Any, pacer: launch.LaunchPacer, launches: int) -> list[dict[str, Any]]:
    definition = register_true_task(sandbox)
    sandbox.reset_calls()
    clients = executor_clients(sandbox)
    threads = ThreadPoolExecutor(max_workers=32)

    async def launch_one() -> dict[str, Any]:
        await pacer.acquire(1)
        request = run_task_request(sandbox, definition)
        return await asyncio.get_running_loop().run_in_executor(
            threads, launch.run_task, clients.ecs, request
        )

    async def launch_all() -> list[dict[str, Any]]:
        # The pacer lets 90 through, then 19/s: 150 launches take ~3 s. A ceiling only.
        return await asyncio.wait_for(
            asyncio.gather(*(launch_one() for _ in range(launches))), timeout=120
        )

    started = time.monotonic()
    try:
        tasks = asyncio.run(launch_all())
    finally:
        threads.shutdown()
    print(f"\n{launches} launches in {time.monotonic() - started:.1f} s: {sandbox.calls()}")
    return tasks


def test_a_launch_burst_paced_on_our_side_is_never_throttled(limited_sandbox):
    launches = 150  # the burst, then ~3 s at the pacer's rate
    tasks = launch_burst(limited_sandbox, launch.LaunchPacer(), launches)
    assert len({t["taskArn"] for t in tasks}) == launches
    calls = limited_sandbox.calls()
    assert not [name for name in calls if name.startswith("throttled.")], calls
    assert calls["ecs.RunTask"] == launches


# ------------------------------------------------------- throttling in disguise
@pytest.fixture
def scripted(fresh_sandbox):
    fresh_sandbox.clear_faults()
    yield fresh_sandbox
    fresh_sandbox.clear_faults()


def test_rate_exceeded_in_disguise_is_retried_as_throttling(scripted):
    scripted.add_fault(
        "throttle", times=2, operations=["ecs.ListClusters"],
        codes=["ClientException", "InvalidParameterException"],
    )  # fmt: skip
    clusters = executor_clients(scripted).ecs.list_clusters()["clusterArns"]
    assert clusters
    calls = scripted.calls()
    assert calls["fault.throttle.ecs.ListClusters"] == 2
    assert calls["ecs.ListClusters"] == 3


def test_without_our_hook_botocore_gives_up_on_disguised_throttling_at_once(scripted):
    # Why aws.mark_disguised_throttling exists: a plain client fails on the first try.
    scripted.add_fault("throttle", operations=["ecs.ListClusters"], codes=["ClientException"])
    with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
        scripted.client("ecs").list_clusters()
    assert scripted.calls()["ecs.ListClusters"] == 1


def test_throttling_that_outlasts_the_retries_is_named(scripted):
    scripted.add_fault("throttle", times=5, operations=["ecs.ListClusters"])
    clients = executor_clients(scripted, max_attempts=2)
    with pytest.raises(LaunchError, match="AWS kept throttling the call .* Raise max_attempts"):
        aws.call(clients.ecs.list_clusters, "list clusters")
