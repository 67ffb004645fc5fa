"""Nothing left running, no unbounded wait: the live-task guard against the sandbox.

Each test starts its own dispatch (a unique id), finds its own tasks by their
``COVALENT_ECS_TASK`` label, and leaves none running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from processes import sigint_as_in_a_terminal
from waiting import wait_for

from covalent_ecs_executor import (
    ECSExecutor,
    StartTimeoutError,
    TaskTimeoutError,
    ecs,
    livetasks,
    poller,
)
from covalent_ecs_executor.errors import AWSSetupError

pytestmark = pytest.mark.integration
# The task functions below run in task processes that cannot import this module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# Interpreter start + `import covalent` + the sandbox's PENDING->RUNNING, on a loaded
# 2-core machine: only reached when something is broken.
TASK_RUNNING_CEILING_S = 120
# A run here ends in seconds (each test stops or fails its task early): a ceiling only.
RUN_CEILING_S = 120


def _dispatch(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _own_task(sandbox: Any, dispatch_id: str, node_id: int = 0) -> dict[str, Any] | None:
    found = [t for t in sandbox.tasks() if t.get("label") == f"{dispatch_id}/{node_id}"]
    return found[-1] if found else None


def _own_tasks(sandbox: Any, dispatch_id: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.tasks() if (t.get("label") or "").startswith(f"{dispatch_id}/")]


def _run(executor: ECSExecutor, fn: Any, dispatch_id: str, node_id: int = 0) -> Any:
    meta = {"dispatch_id": dispatch_id, "node_id": node_id, "results_dir": "/tmp"}
    return asyncio.run(asyncio.wait_for(executor.run(fn, [], {}, meta), RUN_CEILING_S))


def _sleeps() -> None:
    import time

    time.sleep(60)


# ------------------------------------------------------------------ the script case
_WATCHER = textwrap.dedent(
    """
    import asyncio, faulthandler, json, signal, sys
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view if it hangs

    def print_tasks(signum, frame):
        print(f"SIGINT handler: {signal.getsignal(signal.SIGINT)}", flush=True)
        for task in asyncio.all_tasks(asyncio.get_running_loop()):
            task.print_stack(limit=30, file=sys.stdout)
        sys.stdout.flush()

    signal.signal(signal.SIGUSR2, print_tasks)
    import covalent  # before the plugin (docs/facts.md: the circular-import trap)
    from covalent_ecs_executor import ECSExecutor

    def sleeps():
        import time
        time.sleep(60)

    executor = ECSExecutor(**json.loads(sys.argv[1]))
    asyncio.run(executor.run(sleeps, [], {}, {"dispatch_id": sys.argv[2], "node_id": 0}))
    """
)
def _start_script(script: str, sandbox: Any, dispatch_id: str) -> subprocess.Popen[bytes]:
    """A user's script running one task of ``dispatch_id``, to be interrupted."""
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(sandbox.executor_config), dispatch_id],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=sigint_as_in_a_terminal,
    )


# By design, a process told to stop returns within the guard's bound (its StopTask,
# tried twice within STOP_WAIT_S) plus the exit hook's bound for tasks it could not
# stop; the rest is the interpreter's own teardown.
EXIT_CEILING_S = livetasks.STOP_WAIT_S + livetasks.EXIT_STOP_WAIT_S + 10


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_script_told_to_stop_stops_its_task_within_its_bound(fresh_sandbox, signum):
    dispatch_id = _dispatch(f"signal-{signum.name.lower()}")
    watcher = _start_script(_WATCHER, fresh_sandbox, dispatch_id)
    try:
        wait_for(
            lambda: (_own_task(fresh_sandbox, dispatch_id) or {}).get("lastStatus") == "RUNNING",
            timeout_s=TASK_RUNNING_CEILING_S,
            what="the script's task to run",
        )
        sent = time.monotonic()
        watcher.send_signal(signum)
        try:
            watcher.wait(timeout=EXIT_CEILING_S)
        except subprocess.TimeoutExpired:
            watcher.send_signal(signal.SIGUSR2)  # every asyncio task's stack
            watcher.send_signal(signal.SIGUSR1)  # every thread's stack, then its output
            with contextlib.suppress(subprocess.TimeoutExpired):
                watcher.wait(timeout=5)
            watcher.kill()
            output = watcher.communicate()[0].decode(errors="replace")
            pytest.fail(f"the script did not exit {EXIT_CEILING_S:.0f} s after {signum.name}; "
                        f"its output and threads:\n{output[-6000:]}")
        exit_s = time.monotonic() - sent
        stopped = wait_for(
            lambda: (t := _own_task(fresh_sandbox, dispatch_id)) and t["lastStatus"] == "STOPPED" and t,
            what="the task to stop",
        )
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    print(f"{signum.name} to exit: {exit_s:.2f} s")
    assert watcher.returncode != 0  # interrupted, not finished
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == (
        f"Covalent stopped watching the task (dispatch {dispatch_id}, node 0)"
    )


_UPLOADER = textwrap.dedent(
    """
    import asyncio, json, sys
    import covalent  # before the plugin (docs/facts.md: the circular-import trap)
    from covalent_ecs_executor import ECSExecutor

    executor = ECSExecutor(**json.loads(sys.argv[1]))
    blob = bytes(24 * 1024 * 1024)  # above the 8 MiB multipart threshold: three parts
    asyncio.run(executor.run(len, [blob], {}, {"dispatch_id": sys.argv[2], "node_id": 0}))
    """
)
# The sandbox holds each part of the upload this long: far beyond the exit's bound.
HELD_PART_S = 120


def test_a_script_interrupted_during_a_large_upload_exits_within_its_bound(fresh_sandbox):
    """Ctrl-C while a multipart payload upload is stuck: the upload is cancelled and the
    process exits without waiting for the parts in flight; no task was started."""
    dispatch_id = _dispatch("upload-sigint")
    fresh_sandbox.add_fault(
        "slow_response", label=dispatch_id, operations=["s3.UploadPart"], delay_s=HELD_PART_S, times=3
    )
    uploader = _start_script(_UPLOADER, fresh_sandbox, dispatch_id)
    try:
        wait_for(
            lambda: fresh_sandbox.calls().get("fault.slow_response.s3.UploadPart", 0) >= 1,
            timeout_s=TASK_RUNNING_CEILING_S,
            what="the payload's first part to be held",
        )
        uploader.send_signal(signal.SIGINT)
        uploader.wait(timeout=EXIT_CEILING_S)
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.wait()
        fresh_sandbox.clear_faults()
    assert uploader.returncode != 0
    assert _own_tasks(fresh_sandbox, dispatch_id) == []


# ---------------------------------------------------------------- the start timeout
def test_a_task_stuck_before_its_container_starts_is_stopped_at_start_timeout(fresh_sandbox):
    dispatch_id = _dispatch("stuck")
    fresh_sandbox.add_fault("slow_start", label=dispatch_id, delay_s=60)
    # One launch only: a start timeout otherwise counts as one of launch_attempts.
    executor = ECSExecutor(
        **{**fresh_sandbox.executor_config, "start_timeout": 2, "launch_attempts": 1}
    )
    with pytest.raises(TaskRuntimeError) as failed:
        _run(executor, _quick, dispatch_id)
    cause = failed.value.__cause__
    assert isinstance(cause, StartTimeoutError), failed.value
    assert cause.phase in ("PROVISIONING", "PENDING")
    assert f"was still {cause.phase} after start_timeout=2 s" in str(failed.value)
    stopped = wait_for(
        lambda: (t := _own_task(fresh_sandbox, dispatch_id)) and t["lastStatus"] == "STOPPED" and t,
        what="the stuck task to stop",
    )
    assert stopped["stoppedReason"] == f"Start timeout exceeded (2 s in {cause.phase})"
    assert stopped["exitCode"] is None  # the container never ran
    assert len(_own_tasks(fresh_sandbox, dispatch_id)) == 1


def test_a_start_timeout_counts_as_one_launch_attempt(fresh_sandbox, monkeypatch):
    monkeypatch.setattr(ecs, "RELAUNCH_BACKOFF_S", 0.1)
    dispatch_id = _dispatch("stuck-once")
    fresh_sandbox.add_fault("slow_start", label=dispatch_id, delay_s=60)  # the first task only
    # Long enough for the second, unhindered task to start on a loaded machine.
    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "start_timeout": 10})
    assert _run(executor, _quick, dispatch_id) == "done"
    first, second = wait_for(
        lambda: (tasks := _own_tasks(fresh_sandbox, dispatch_id))
        and tasks[0]["lastStatus"] == "STOPPED"
        and tasks,
        what="the stuck first task to stop",
    )
    assert first["stoppedReason"].startswith("Start timeout exceeded (10 s in ")
    assert first["exitCode"] is None and second["exitCode"] == 0


def test_time_limit_counts_from_the_container_start_not_from_the_launch(fresh_sandbox):
    # A 3 s slow start under a 2 s time limit: the limit must not run out while queued.
    dispatch_id = _dispatch("slow-start-limit")
    fresh_sandbox.add_fault("slow_start", label=dispatch_id, delay_s=3)
    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "time_limit": 2})
    assert _run(executor, _quick, dispatch_id) == "done"


def _quick() -> str:
    return "done"


# ------------------------------------------------------- definitions deregistered
def test_a_definition_deregistered_meanwhile_is_registered_again_once(fresh_sandbox):
    family = f"fam-{uuid.uuid4().hex[:6]}"
    config = {**fresh_sandbox.executor_config, "ecs_task_family_name": family}
    dispatch_id = _dispatch("deregistered")
    assert _run(ECSExecutor(**config), _quick, dispatch_id, 0) == "done"
    ecs = fresh_sandbox.client("ecs")
    def ours(status: str = "ACTIVE") -> list[str]:
        arns = ecs.list_task_definitions(status=status)["taskDefinitionArns"]
        return [a for a in arns if f":task-definition/{family}-" in a]

    (arn,) = ours()
    ecs.deregister_task_definition(taskDefinition=arn)
    fresh_sandbox.reset_calls()

    def negate() -> int:
        return -7

    assert _run(ECSExecutor(**config), negate, dispatch_id, 1) == -7
    calls = fresh_sandbox.calls()
    assert calls["ecs.RunTask"] == 2  # refused once ("TaskDefinition is inactive"), then run
    assert calls["ecs.RegisterTaskDefinition"] == 1
    (registered_again,) = ours()
    assert registered_again != arn


# -------------------------------------------------------- failures after RunTask
class _HandleRefused(ECSExecutor):
    """A server whose job-handle store fails (Covalent times the call out)."""

    async def _set_job_handle(self, handle: dict[str, str]) -> None:
        raise AWSSetupError("job handle could not be stored (timed out)")


def test_a_failure_right_after_runtask_stops_the_task(fresh_sandbox):
    dispatch_id = _dispatch("handle")
    executor = _HandleRefused(**fresh_sandbox.executor_config)
    with pytest.raises(TaskRuntimeError, match="job handle could not be stored"):
        _run(executor, _sleeps, dispatch_id)
    stopped = wait_for(
        lambda: (t := _own_task(fresh_sandbox, dispatch_id)) and t["lastStatus"] == "STOPPED" and t,
        what="the task to stop",
    )
    assert stopped["stoppedReason"] == (
        f"Covalent stopped watching the task after AWSSetupError (dispatch {dispatch_id}, node 0)"
    )


def test_describe_tasks_failing_past_the_pollers_limit_stops_the_task(fresh_sandbox, monkeypatch):
    # The poller's give-up point, shrunk so the test takes seconds: 3 failed cycles.
    monkeypatch.setattr(poller, "MAX_FAILED_CYCLES", 3)
    monkeypatch.setattr(poller, "MAX_BACKOFF_S", 1.0)
    dispatch_id = _dispatch("describe-fails")
    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "max_attempts": 1})
    fresh_sandbox.add_fault("server_error", operations=["ecs.DescribeTasks"], times=1000)
    try:
        with pytest.raises(TaskRuntimeError, match="could not describe tasks") as failed:
            _run(executor, _sleeps, dispatch_id)
    finally:
        fresh_sandbox.clear_faults()
    assert "ServerException" in str(failed.value)
    stopped = wait_for(
        lambda: (t := _own_task(fresh_sandbox, dispatch_id)) and t["lastStatus"] == "STOPPED" and t,
        what="the task to stop",
    )
    assert stopped["stoppedReason"].startswith("Covalent stopped watching the task after")


def test_a_stop_that_fails_on_the_time_limit_names_the_task_left_running(fresh_sandbox):
    dispatch_id = _dispatch("stop-fails")
    executor = ECSExecutor(
        **{**fresh_sandbox.executor_config, "time_limit": 1, "max_attempts": 1}
    )
    fresh_sandbox.add_fault("server_error", operations=["ecs.StopTask"], times=1000)
    try:
        with pytest.raises(TaskRuntimeError) as failed:
            _run(executor, _sleeps, dispatch_id)
    finally:
        fresh_sandbox.clear_faults()
    assert isinstance(failed.value.__cause__, TaskTimeoutError)
    task = _own_task(fresh_sandbox, dispatch_id)
    message = str(failed.value)
    assert f"ECS task {task['taskArn']} could not be stopped" in message
    assert "may still be running" in message and "aws ecs stop-task" in message
    # The exit hook would try again at exit; this test stops it itself.
    fresh_sandbox.client("ecs").stop_task(
        cluster=fresh_sandbox.executor_config["ecs_cluster_name"], task=task["taskArn"]
    )
    wait_for(lambda: _own_task(fresh_sandbox, dispatch_id)["lastStatus"] == "STOPPED")
