"""Where and with what a task runs: several subnets, extra disk, a full disk."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from covalent_ecs_executor import ECSExecutor

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _run(executor: ECSExecutor, fn: Any, dispatch_id: str) -> Any:
    meta = {"dispatch_id": dispatch_id, "node_id": 0, "results_dir": "/tmp"}
    # Seconds per run: a ceiling for a broken one, not a pace.
    return asyncio.run(asyncio.wait_for(executor.run(fn, [], {}, meta), 120))


def _described(sandbox: Any, dispatch_id: str) -> dict[str, Any]:
    (task,) = [t for t in sandbox.tasks() if t.get("label") == f"{dispatch_id}/0"]
    cluster = sandbox.executor_config["ecs_cluster_name"]
    ecs = sandbox.client("ecs")
    return ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]


def answer() -> int:
    return 42


def test_a_task_with_two_subnets_runs_in_one_of_them_with_its_extra_disk(sandbox):
    config = sandbox.executor_config
    ec2 = sandbox.client("ec2")
    vpc_id = ec2.describe_subnets(SubnetIds=[config["ecs_task_subnet_id"]])["Subnets"][0]["VpcId"]
    second = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock=f"10.42.{100 + uuid.uuid4().int % 150}.0/24",
        AvailabilityZone="us-east-1b",
    )["Subnet"]["SubnetId"]  # fmt: skip
    subnets = [config["ecs_task_subnet_id"], second]
    dispatch_id = f"subnets-{uuid.uuid4().hex[:8]}"
    executor = ECSExecutor(**{**config, "ecs_task_subnet_id": subnets, "ephemeral_storage": 50})
    try:
        assert _run(executor, answer, dispatch_id) == 42
    finally:
        ec2.delete_subnet(SubnetId=second)
    task = _described(sandbox, dispatch_id)
    details = {d["name"]: d.get("value") for a in task["attachments"] for d in a["details"]}
    assert details["subnetId"] in subnets
    assert task["overrides"]["ephemeralStorage"] == {"sizeInGiB": 50}


def fills_its_disk() -> None:
    # /dev/full answers every write with ENOSPC, as a full task disk does.
    with open("/dev/full", "wb") as disk:
        disk.write(b"x" * 4096)
        disk.flush()


def test_a_task_that_fills_its_disk_is_told_to_raise_ephemeral_storage(sandbox):
    dispatch_id = f"disk-full-{uuid.uuid4().hex[:8]}"
    executor = ECSExecutor(**sandbox.executor_config)
    with pytest.raises(TaskRuntimeError) as failed:
        _run(executor, fills_its_disk, dispatch_id)
    message = str(failed.value)
    assert "No space left on device" in message
    assert "raise `ephemeral_storage`" in message
