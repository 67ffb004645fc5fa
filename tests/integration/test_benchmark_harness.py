"""The benchmark harness: bench.py still runs end to end (at N=2, this executor only), so
``make bench`` cannot rot between releases, and the sandbox starters it plugs in
(benchmarks/bench_starters.py) keep what a task is. Figures are printed by the
benchmark, never asserted here: only that every column is produced and the run was
clean."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from sandbox_tasks import log_messages, run_one_container, stopped_record
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.errors import TaskInterruptedError, TaskStoppedError
from covalent_ecs_executor.sandbox import Sandbox, SandboxClient, SandboxProcess

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
BENCH = BENCHMARKS / "bench.py"
STAND_IN_IMAGE = "public.ecr.aws/example/other-plugin-runner:stable"
# A forked task runs in well under a second: a ceiling for a broken run, not a pace.
RUN_CEILING_S = 60


def test_benchmark_harness_runs_two_tasks_and_writes_its_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--n", "2", "--quick", "--no-cold", "--no-original",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "latest-quick.json").read_text())
    (row,) = report["batches"]
    assert row["plugin"] == "ours" and row["n"] == 2 and row["errors"] == 0
    assert row["calls_per_task"]["client"]["RunTask"] == 1
    assert row["calls_per_task"]["runner"]["S3 GET"] == 1
    assert row["exit_to_return_s"]["count"] == 2
    assert row["runner_start_to_function_s"]["count"] == 2
    # From the executor's public task events (covalent_ecs_executor.events).
    assert row["poll_cycles"] >= 1
    assert row["describe_tasks_cycle_bound"] == 1  # two tasks: one DescribeTasks per cycle
    markdown = (tmp_path / "latest-quick.md").read_text()
    assert "## N = 2 concurrent tasks" in markdown
    assert "| client RunTask per task | 1 |" in markdown
    assert markdown in result.stdout


# -- the fork server (bench_starters.ForkServerStarter), in a sandbox process as bench.py runs it
@pytest.fixture(scope="module")
def forking_sandbox() -> Iterator[SandboxClient]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS), env.get("PYTHONPATH")]))
    with SandboxProcess(
        provision_delay_s=0,
        deprovision_delay_s=0,
        starters=["bench_starters:ForkServerStarter"],
        env=env,
    ) as sandbox:
        yield sandbox


def test_a_forked_runner_task_is_its_own_process_with_the_task_environment(
    forking_sandbox: SandboxClient,
) -> None:
    def describe_process() -> dict[str, Any]:  # nested: pickled by value
        import os
        import sys

        print("hello from a forked runner")
        return {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "home": os.environ.get("HOME"),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "parent": os.getppid(),
            "sandbox_modules": sorted({"moto", "covalent_ecs_executor"} & set(sys.modules)),
        }

    forking_sandbox.reset_calls()
    executor = ECSExecutor(**forking_sandbox.executor_config)
    meta = {"dispatch_id": "fork-1", "node_id": 0, "results_dir": "."}
    seen = asyncio.run(asyncio.wait_for(executor.run(describe_process, [], {}, meta), RUN_CEILING_S))

    record = next(r for r in forking_sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == "fork-1/0")
    assert seen["pid"] == record["pid"] != os.getpid()
    # Forked by multiprocessing's fork server, not started by the sandbox's agent.
    assert seen["parent"] != forking_sandbox.health()["pid"]
    assert b"forkserver" in Path(f"/proc/{seen['parent']}/cmdline").read_bytes()
    assert seen["sandbox_modules"] == []  # the fork server carries only the runner's modules
    assert seen["pgid"] == seen["pid"]  # its own group: StopTask and OOM kills reach it all
    assert seen["cwd"] == seen["home"] == record["env"]["HOME"]
    assert seen["endpoint"] == forking_sandbox.endpoint_url
    assert record["exitCode"] == 0
    assert any("hello from a forked runner" in m for m in log_messages(forking_sandbox, record))
    # The executor's own S3 traffic is told apart from the runner's.
    calls = forking_sandbox.calls_by_caller()
    assert {k: v for k, v in calls["client"].items() if k.startswith("s3.")} == {
        "s3.PutObject": 2, "s3.GetObject": 1, "s3.DeleteObjects": 1,  # payload + record
    }  # fmt: skip
    assert calls["runner"] == {"s3.GetObject": 1, "s3.PutObject": 1}


def test_stop_task_terminates_a_forked_runner(forking_sandbox: SandboxClient) -> None:
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
    # SIGTERM before the function started kills the runner (143, as Docker reports it,
    # no result); once it runs, the runner writes an "interrupted" result and exits 0.
    record = next(r for r in forking_sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == "fork-2/0")
    if record["exitCode"] == 143:
        assert "was stopped before it wrote a result" in str(raised.value)
    else:
        assert record["exitCode"] == 0
        assert isinstance(raised.value.__cause__, TaskInterruptedError)
        assert "was stopped (SIGTERM) after" in str(raised.value)
    assert "reason: stopped by the test" in str(raised.value)
    assert record["stopCode"] == "UserInitiated"


# -- a stand-in for an image's default command (bench_starters.DefaultCommandStarter)
def test_a_default_command_starter_stands_in_for_the_images_default_command() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_starters import DefaultCommandStarter
    finally:
        sys.path.remove(str(BENCHMARKS))
    command = [sys.executable, "-c", "import os; print('stand-in ran in', os.getcwd())"]
    with Sandbox(
        provision_delay_s=0,
        deprovision_delay_s=0,
        starters=[DefaultCommandStarter(STAND_IN_IMAGE, command)],
    ) as sandbox:
        arn = run_one_container(sandbox, image=STAND_IN_IMAGE, log_prefix="default-cmd")
        record = stopped_record(sandbox, arn)
        assert record["exitCode"] == 0
        assert record["argv"] == command
        assert any("stand-in ran in" in m for m in log_messages(sandbox, record))
