"""The benchmark harness: bench.py still runs end to end (this executor only: N=1 on the
real runner, N=2 on the scale mode's stand-in container, the faults row), so ``make bench``
cannot rot between releases, and the sandbox starters it plugs in
(benchmarks/bench_starters.py, benchmarks/stand_in.py) keep what a task is. Figures are
printed by the benchmark, never asserted here: only that every column is produced and
the run was clean."""

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


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One bench.py run, this executor only, once: N=1 on the real runner, N=2 on the
    scale mode's stand-in container, and the faults row at N=2; its JSON and Markdown."""
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--n", "1,2", "--real-runner-max-n", "1",
         "--faults-n", "2", "--no-cold", "--no-original", "--idle", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (out / "latest-quick.md").read_text()
    assert markdown in result.stdout
    return json.loads((out / "latest-quick.json").read_text()), markdown


def test_benchmark_harness_runs_a_batch_and_writes_its_report(bench_run: tuple[dict[str, Any], str]) -> None:
    report, markdown = bench_run
    row = report["batches"][0]
    assert row["plugin"] == "ours" and row["n"] == 1 and row["errors"] == 0
    assert row["runner"] == "real"
    assert row["calls_per_task"]["client"]["RunTask"] == 1
    assert row["calls_per_task"]["runner"]["S3 GET"] == 1
    assert row["exit_to_return_s"]["count"] == 1
    assert row["runner_start_to_function_s"]["count"] == 1
    # From the executor's public task events (covalent_ecs_executor.events).
    assert row["poll_cycles"] >= 1
    assert row["describe_tasks_cycle_bound"] == 1  # one DescribeTasks per cycle
    # Each side's cost, so a slow figure can be traced to it.
    assert row["cost"]["client_cpu_ms_per_task"] > 0
    assert row["cost"]["sandbox_cpu_ms_per_request"] > 0
    assert row["call_latency_s"]["DescribeTasks"]["count"] == row["calls_total"]["client"]["DescribeTasks"]
    assert row["sandbox_cpu_s"]["tasks"] > 0 and row["sandbox_cpu_s"]["stand_in"] == 0
    assert "## N = 1 concurrent tasks\n" in markdown
    assert "| client RunTask per task | 1 |" in markdown


def test_the_stand_in_container_keeps_the_runners_contract_at_n_2(
    bench_run: tuple[dict[str, Any], str],
) -> None:
    report, markdown = bench_run
    row = report["batches"][1]
    assert (row["n"], row["runner"], row["kind"]) == (2, "stand-in", "")
    assert row["errors"] == 0 and row["exit_to_return_s"]["count"] == 2
    # The runner's S3 requests, made by the stand-in with the runner's User-Agent and
    # its own code (one GetObject of the payload, one PutObject of the envelope).
    assert row["calls_per_task"]["runner"]["S3 GET"] == 1
    assert row["calls_per_task"]["runner"]["S3 PUT"] == 1
    assert row["runner_start_to_function_s"]["count"] == 2
    # Threads of the stand-in host, not a process per task: their CPU is counted apart.
    assert row["sandbox_cpu_s"]["stand_in"] > 0 and row["sandbox_cpu_s"]["tasks"] == 0
    assert "## N = 2 concurrent tasks (stand-in)" in markdown


def test_the_faults_row_relaunches_what_never_ran_and_counts_no_duplicate(
    bench_run: tuple[dict[str, Any], str],
) -> None:
    report, markdown = bench_run
    row = report["batches"][2]
    assert (row["n"], row["runner"], row["kind"]) == (2, "stand-in", "faults")
    # At N=2 the plan scripts one ENI timeout: that task is relaunched once; both
    # complete, and no container runs twice (from the sandbox agent's records).
    assert row["errors"] == 0
    counted = row["faults"]
    assert counted["faults_applied"] == counted["relaunches_said_by_executor"] == 1
    assert counted["tasks_started"] == 3 and counted["never_ran"] == 1
    assert counted["duplicate_executions"] == 0 and counted["nodes_ran_once"] == 2
    assert "## Faults row: N = 2" in markdown


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
            "idle_policy": os.sched_getscheduler(0) == os.SCHED_IDLE,
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
    assert seen["idle_policy"] is True  # bench_starters.TASK_POLICY: the API's CPU first
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

    # Stopped from outside (not a Covalent cancel) while the function ran: the forked
    # runner handles SIGTERM as the real one does, writing an "interrupted" envelope, and
    # the node fails naming the stop.
    with pytest.raises(TaskRuntimeError) as raised:
        asyncio.run(run_and_stop())
    assert isinstance(raised.value.__cause__, TaskStoppedError)  # TaskInterruptedError is one
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


# -- the cold-start row's runner (bench_starters.ColdRunnerStarter)
def test_a_cold_runner_is_a_fresh_interpreter_at_the_benchmarks_low_priority() -> None:
    def describe_process() -> dict[str, Any]:  # nested: pickled by value
        import os

        return {"parent": os.getppid(), "idle_policy": os.sched_getscheduler(0) == os.SCHED_IDLE}

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS), env.get("PYTHONPATH")]))
    with SandboxProcess(
        provision_delay_s=0, deprovision_delay_s=0, starters=["bench_starters:ColdRunnerStarter"], env=env
    ) as sandbox:
        executor = ECSExecutor(**sandbox.executor_config)
        meta = {"dispatch_id": "cold-1", "node_id": 0, "results_dir": "."}
        seen = asyncio.run(asyncio.wait_for(executor.run(describe_process, [], {}, meta), RUN_CEILING_S))
        record = next(r for r in sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == "cold-1/0")
        assert seen["parent"] == sandbox.health()["pid"]  # started by the agent, no fork server
        assert seen["idle_policy"] is True  # bench_starters.TASK_POLICY, as the forked runners
        assert record["argv"][1:3] == ["-m", "covalent_ecs_runtime"]


# -- a stand-in for an image's default command (bench_starters.DefaultCommandStarter)
def test_a_default_command_starter_stands_in_for_the_images_default_command() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_starters import DefaultCommandStarter
    finally:
        sys.path.remove(str(BENCHMARKS))
    command = [sys.executable, "-c", "import os; print('stand-in ran in', os.getcwd(), 'idle:', os.sched_getscheduler(0) == os.SCHED_IDLE)"]
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
        assert any("idle: True" in m for m in log_messages(sandbox, record))  # TASK_POLICY


# -- the scale mode's stand-in container (stand_in.StandInStarter), in its host process
STAND_IN_ENV = "BENCH_STAND_IN_S"  # benchmarks/driver_common.py


@pytest.fixture(scope="module")
def stand_in_sandbox() -> Iterator[SandboxClient]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS), env.get("PYTHONPATH")]))
    with SandboxProcess(
        provision_delay_s=0, deprovision_delay_s=0, starters=["stand_in:StandInStarter"], env=env
    ) as sandbox:
        yield sandbox


def _stand_in_host_pid(sandbox: SandboxClient) -> int:
    sandbox_pid = sandbox.health()["pid"]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == sandbox_pid and cmdline[1:3] == [b"-m", b"stand_in"]:
            return int(entry.name)
    raise AssertionError("no stand-in host process under the sandbox")


def _run_a_long_stand_in_and(sandbox: SandboxClient, label: str, interfere: Any) -> tuple[BaseException, dict[str, Any]]:
    """Start a stand-in task that would wait 600 s, call ``interfere(record)`` once it
    runs, and return what the executor raised and the task's final record."""
    config = {**sandbox.executor_config, "environment": {STAND_IN_ENV: "600"}}
    executor = ECSExecutor(**config)
    meta = {"dispatch_id": label, "node_id": 0, "results_dir": "."}

    def never_called() -> None:  # the stand-in does not run functions
        raise AssertionError

    def running() -> dict[str, Any] | None:
        return next(
            (r for r in sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == f"{label}/0"
             and r["lastStatus"] == "RUNNING"),
            None,
        )  # fmt: skip

    async def run() -> Any:
        task = asyncio.ensure_future(executor.run(never_called, [], {}, meta))
        record = await asyncio.to_thread(wait_for, running, what="the stand-in task running")
        interfere(record)
        return await asyncio.wait_for(task, RUN_CEILING_S)

    with pytest.raises(TaskRuntimeError) as raised:
        asyncio.run(run())
    final = next(r for r in sandbox.tasks() if r["env"].get("COVALENT_ECS_TASK") == f"{label}/0")
    return raised.value, final


def test_stop_task_ends_a_stand_in_as_it_ends_the_runner(stand_in_sandbox: SandboxClient) -> None:
    cluster = stand_in_sandbox.executor_config["ecs_cluster_name"]

    def stop(record: dict[str, Any]) -> None:
        stand_in_sandbox.client("ecs").stop_task(cluster=cluster, task=record["taskArn"], reason="stopped by the test")

    error, record = _run_a_long_stand_in_and(stand_in_sandbox, "stand-in-stop", stop)
    assert isinstance(error.__cause__, TaskStoppedError)
    assert record["stopCode"] == "UserInitiated" and record["exitCode"] == 143
    assert "reason: stopped by the test" in str(error)


def test_a_stand_in_host_that_dies_ends_its_tasks_instead_of_leaving_them_running(
    stand_in_sandbox: SandboxClient,
) -> None:
    error, record = _run_a_long_stand_in_and(
        stand_in_sandbox, "stand-in-host-dies", lambda _: os.kill(_stand_in_host_pid(stand_in_sandbox), 9)
    )
    assert record["lastStatus"] == "STOPPED" and record["exitCode"] == 137
    assert "the stand-in host exited" in "\n".join(log_messages(stand_in_sandbox, record))
    assert "137" in str(error)
    # A task started after that cannot start, and says why.
    config = {**stand_in_sandbox.executor_config, "environment": {STAND_IN_ENV: "1"}}
    meta = {"dispatch_id": "stand-in-after-host", "node_id": 0, "results_dir": "."}
    with pytest.raises(TaskRuntimeError) as raised:
        asyncio.run(asyncio.wait_for(ECSExecutor(**config).run(abs, [-1], {}, meta), RUN_CEILING_S))
    assert "the stand-in host is gone" in str(raised.value)
