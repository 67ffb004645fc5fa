"""ECSExecutor.run() against the sandbox, without a Covalent server.

What the executor does per task, observed from the outside: the calls it makes, the
objects it leaves (none), large payloads, and output capture edge cases.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from covalent_ecs_executor import ECSExecutor

pytestmark = pytest.mark.integration

# Every batch here runs in seconds (the 48 MiB round trip in tens on a busy machine):
# a ceiling, not a pace.
RUN_CEILING_S = 120


def run_tasks(executor, calls, *, dispatch_id=None):
    """Run ``[(fn, args, kwargs), ...]`` concurrently, each as its own node of
    ``dispatch_id`` (a fresh one by default)."""
    dispatch_id = dispatch_id or f"test-{uuid.uuid4().hex[:8]}"

    async def main():
        return await asyncio.wait_for(asyncio.gather(*[
            executor.run(fn, list(args), dict(kwargs), {"dispatch_id": dispatch_id, "node_id": i, "results_dir": "/tmp"})
            for i, (fn, args, kwargs) in enumerate(calls)
        ]), RUN_CEILING_S)

    return asyncio.run(main())


def bucket_keys(sandbox, dispatch_id):
    """This dispatch's objects only: the bucket is shared with every other test (a test
    that keeps an unread result on purpose leaves it there)."""
    s3 = sandbox.client("s3", internal=True)
    bucket = sandbox.executor_config["s3_bucket_name"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"covalent-ecs/{dispatch_id}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def staged_objects(sandbox, dispatch_id):
    """Payloads and results left behind (each run's durable record stays by design)."""
    return [key for key in bucket_keys(sandbox, dispatch_id) if "/records/" not in key]


def test_one_task_costs_one_runtask_and_four_client_s3_requests(fresh_sandbox):
    dispatch_id = f"test-{uuid.uuid4().hex[:8]}"
    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "ecs_task_family_name": f"fam-{uuid.uuid4().hex[:6]}"})
    assert run_tasks(executor, [(pow, (2, 10), {})], dispatch_id=dispatch_id) == [1024]
    calls = fresh_sandbox.calls()
    assert calls["ecs.RunTask"] == 1
    assert calls["ecs.RegisterTaskDefinition"] == 1  # a new family: registered once
    assert calls["s3.DeleteObjects"] == 1
    # Client PutObjects (payload, then the run's record) + runner PutObject (result);
    # runner GetObject (payload) + client GetObject (result). No HeadObject on either side.
    assert calls["s3.PutObject"] == 3 and calls["s3.GetObject"] == 2
    assert "s3.HeadObject" not in calls
    assert staged_objects(fresh_sandbox, dispatch_id) == []
    (record,) = bucket_keys(fresh_sandbox, dispatch_id)
    assert "/records/0-" in record and record.endswith(".json")


def test_a_second_run_reuses_the_registered_task_definition(fresh_sandbox):
    executor = ECSExecutor(**fresh_sandbox.executor_config)
    run_tasks(executor, [(abs, (-1,), {})])
    fresh_sandbox.reset_calls()
    assert run_tasks(ECSExecutor(**fresh_sandbox.executor_config), [(abs, (-2,), {})]) == [2]
    calls = fresh_sandbox.calls()
    assert "ecs.RegisterTaskDefinition" not in calls and "ecs.DescribeTaskDefinition" not in calls


def test_large_argument_and_result_travel_through_multipart_staging(fresh_sandbox):
    blob = bytes(range(256)) * (48 * 1024 * 1024 // 256)  # 48 MiB: above the 8 MiB multipart threshold

    def reverse(data):
        return data[::-1]

    dispatch_id = f"test-{uuid.uuid4().hex[:8]}"
    executor = ECSExecutor(**fresh_sandbox.executor_config)
    [result] = run_tasks(executor, [(reverse, (blob,), {})], dispatch_id=dispatch_id)
    assert len(result) == len(blob) and result == blob[::-1]
    by_caller = fresh_sandbox.calls_by_caller()
    # The client's payload goes up in parts (above 8 MiB); the runner sends a result
    # below 64 MiB in one PutObject (tests/security/test_bucket_owner.py sends a larger one).
    assert by_caller["client"]["s3.CreateMultipartUpload"] >= 1
    assert by_caller["runner"]["s3.PutObject"] >= 1
    assert staged_objects(fresh_sandbox, dispatch_id) == []


def test_a_background_process_holding_stdout_does_not_hold_the_task(fresh_sandbox):
    def start_daemon():
        import subprocess

        subprocess.Popen(["sleep", "120"])  # inherits stdout/stderr and outlives the function
        print("started a daemon")
        return "done"

    executor = ECSExecutor(**fresh_sandbox.executor_config)
    started = time.monotonic()
    assert run_tasks(executor, [(start_daemon, (), {})]) == ["done"]
    assert time.monotonic() - started < 60  # not the daemon's 120 s


def test_twenty_concurrent_tasks_are_watched_by_one_batched_poller(fresh_sandbox):
    executor = ECSExecutor(**fresh_sandbox.executor_config)

    def slow_double(x):
        import time

        time.sleep(1)
        return 2 * x

    started = time.monotonic()
    assert run_tasks(executor, [(slow_double, (i,), {}) for i in range(20)]) == [2 * i for i in range(20)]
    wall_s = time.monotonic() - started
    calls = fresh_sandbox.calls()
    assert calls["ecs.RunTask"] == 20
    assert calls["ecs.DescribeTasks"] <= wall_s / executor.poll_freq + 2, (calls, wall_s)


def test_config_errors_make_no_aws_call(fresh_sandbox):
    from covalent._shared_files.exceptions import TaskRuntimeError

    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "ecs_task_subnet_id": ""})
    with pytest.raises(TaskRuntimeError, match="ecs_task_subnet_id and ecs_task_security_group_id must be set|ecs_task_subnet_id must be set"):
        run_tasks(executor, [(abs, (1,), {})])
    assert fresh_sandbox.calls() == {}


def test_spot_tasks_launch_through_the_fargate_spot_capacity_provider(fresh_sandbox):
    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "capacity_provider": "FARGATE_SPOT"})
    dispatch_id = f"spot-{uuid.uuid4().hex[:8]}"
    assert run_tasks(executor, [(max, (3, 7), {})], dispatch_id=dispatch_id) == [7]
    [record] = [r for r in fresh_sandbox.tasks() if r["label"] == f"{dispatch_id}/0"]
    ecs = fresh_sandbox.client("ecs", internal=True)
    [task] = ecs.describe_tasks(cluster=executor.ecs_cluster_name, tasks=[record["taskArn"]])["tasks"]
    assert task["capacityProviderName"] == "FARGATE_SPOT"


def test_payloads_are_staged_as_their_launch_slots_come_not_all_at_once(fresh_sandbox, monkeypatch):
    # One launch slot every 3 s and payloads staged 0.5 s before their slot: each
    # payload goes up between the previous run's RunTask and its own (slots at 0, 3 and
    # 6 s; uploads at 0, 2.5 and 5.5 s), where staging at once put all three first.
    from covalent_ecs_executor import aws, ecs, launch

    monkeypatch.setattr(launch, "launch_schedule", launch.LaunchPacer(burst=1, rate_per_s=1 / 3))
    monkeypatch.setattr(launch, "launch_pacer", launch.LaunchPacer(burst=1, rate_per_s=1 / 3))
    monkeypatch.setattr(ecs, "STAGE_LEAD_S", 0.5)
    executor = ECSExecutor(**fresh_sandbox.executor_config)
    sent = []

    def note(model, params, **kwargs):
        key = params.get("url_path", "")
        if model.name == "RunTask" or key.endswith("/payload.pkl"):
            sent.append("RunTask" if model.name == "RunTask" else "payload")

    clients = aws.clients_for(executor.config())
    clients.s3.meta.events.register("before-call.s3.PutObject", note)
    clients.ecs.meta.events.register("before-call.ecs.RunTask", note)
    try:
        assert run_tasks(executor, [(abs, (-i,), {}) for i in range(3)]) == [0, 1, 2]
    finally:
        clients.s3.meta.events.unregister("before-call.s3.PutObject", note)
        clients.ecs.meta.events.unregister("before-call.ecs.RunTask", note)
    assert sent == ["payload", "RunTask"] * 3


def test_runs_that_reach_their_launch_slot_late_are_paced_when_sent(fresh_sandbox, monkeypatch):
    # Slots at 0, 0, 1, 2 and 3 s (a burst of 2, then 1 a second), but the task
    # definition's lookup is held 4 s, so every run reaches its slot late. Fargate
    # counts launches as they arrive: they go 2 at once, then 1 a second, not 5 together.
    from covalent_ecs_executor import aws, ecs, launch, taskdefs

    monkeypatch.setattr(launch, "launch_schedule", launch.LaunchPacer(burst=2, rate_per_s=1))
    monkeypatch.setattr(launch, "launch_pacer", launch.LaunchPacer(burst=2, rate_per_s=1))
    monkeypatch.setattr(ecs, "_task_definitions", taskdefs.TaskDefinitionCache())  # looked up anew
    fresh_sandbox.clear_faults()
    fresh_sandbox.add_fault("slow_response", operations=["ecs.DescribeTaskDefinition"], delay_s=4, times=1)
    executor = ECSExecutor(**fresh_sandbox.executor_config)
    sent = []

    def note(**kwargs):
        sent.append(time.monotonic())

    clients = aws.clients_for(executor.config())
    clients.ecs.meta.events.register("before-call.ecs.RunTask", note)
    try:
        assert run_tasks(executor, [(abs, (-i,), {}) for i in range(5)]) == [0, 1, 2, 3, 4]
    finally:
        clients.ecs.meta.events.unregister("before-call.ecs.RunTask", note)
        fresh_sandbox.clear_faults()
    assert fresh_sandbox.calls().get("fault.slow_response.ecs.DescribeTaskDefinition") == 1
    after_first = [round(t - sent[0], 2) for t in sorted(sent)]
    assert all(after_first[i] >= i - 1 - 0.05 for i in range(2, 5)), after_first
