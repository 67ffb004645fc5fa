"""The fault matrix: each scripted failure through a real Covalent server.

Every case asserts the node's final state, that the message names the cause, that the
dispatch reached a final state within a generous bound (only to prove nothing hangs:
timings on a shared machine are noisy) and how many ECS tasks were really started
(no duplicates). Each prints ``fault-matrix: <case> <seconds>`` for the record.
"""

from __future__ import annotations

import time

import covalent as ct
import pytest
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor

pytestmark = pytest.mark.e2e

# Only to prove "does not hang"; a fault case takes a few seconds here.
FINAL_STATE_BOUND_S = 60


@pytest.fixture
def faults(fresh_sandbox):
    fresh_sandbox.clear_faults()
    yield fresh_sandbox
    fresh_sandbox.clear_faults()


def tasks_of(sandbox, dispatch_id):
    return [t for t in sandbox.tasks() if (t.get("label") or "").startswith(f"{dispatch_id}/")]


def run_case(name, dispatch, sandbox, lattice, *args):
    started = time.monotonic()
    result = dispatch(lattice, *args)
    elapsed = time.monotonic() - started
    print(f"\nfault-matrix: {name} {elapsed:.1f} s -> {result.status}")
    message = (result.get_node_result(0)["stderr"] or "").strip()
    if message:
        print(f"fault-matrix:   {message.splitlines()[0][:300]}")
    assert elapsed < FINAL_STATE_BOUND_S
    return result, tasks_of(sandbox, result.dispatch_id)


def node_stderr(result):
    return result.get_node_result(0)["stderr"] or ""


@ct.electron(executor="ecs")
def work(seconds):
    import time

    time.sleep(seconds)
    return "done"


@ct.lattice
def one_task(seconds=0.0):
    return work(seconds)


FAILING_CASES = [
    # (fault, its parameters, words the node's message must contain, the task ran?)
    ("oom", {}, ["[OutOfMemoryError]", "ran out of memory at 0.5 GB", "Raise `memory`"], True),
    (
        "pull_failure",
        {},
        ["[ImagePullError]", "could not pull the runner image", "CannotPullContainerError",
         "the container never ran"],
        False,
    ),
    (
        "start_failure",
        {},
        ["[NetworkSetupError]", "ResourceInitializationError", "the container never ran"],
        False,
    ),
    (
        "exit_without_result",
        {"exit_code": 5},
        ["exited with code 5 without writing a result", "fatal: the worker gave up"],
        True,
    ),
    (
        # Exit code 3 is the runner's own "could not write the result" (contract.py).
        "exit_without_result",
        {"exit_code": 3},
        ["the runner could not write its result to s3://", "s3:PutObject",
         "fatal: the worker gave up"],
        True,
    ),
    (
        "exit_without_result",
        {"exit_code": 0},
        ["exited with code 0 without writing a result at s3://"],
        True,
    ),
    (
        "spot_interruption",
        {"after_s": 0.5},
        ["[CapacityError]", "stop code SpotInterruption", "Your Spot Task was interrupted"],
        True,
    ),
]


@pytest.mark.parametrize(
    ("kind", "params", "words", "ran"),
    FAILING_CASES,
    ids=[f"{kind}-{'-'.join(map(str, p.values()))}".rstrip("-") for kind, p, _, _ in FAILING_CASES],
)
def test_a_task_fault_fails_the_node_naming_the_cause(dispatch, faults, kind, params, words, ran):
    faults.add_fault(kind, **params)
    result, tasks = run_case(kind, dispatch, faults, one_task, 5.0)
    assert str(result.status) == "FAILED"
    assert str(result.get_node_result(0)["status"]) == "FAILED"
    message = node_stderr(result)
    for word in words:
        assert word in message, message
    assert len(tasks) == 1  # nothing retried behind the user's back
    assert tasks[0]["fault"] == kind
    assert tasks[0]["lastStatus"] == "STOPPED"
    assert (tasks[0]["pid"] is not None) == ran


def test_a_slow_start_only_delays_the_task(dispatch, faults):
    faults.add_fault("slow_start", delay_s=3)
    result, tasks = run_case("slow_start", dispatch, faults, one_task)
    assert str(result.status) == "COMPLETED", node_stderr(result)
    assert result.result == "done"
    assert len(tasks) == 1
    history = {h["status"]: h["at"] for h in tasks[0]["statusHistory"]}
    assert history["RUNNING"] - history["PENDING"] >= 3


def test_a_runtask_throttling_burst_is_retried_to_success(dispatch, faults):
    # A ThrottlingException, then ECS's disguised ClientException "Rate exceeded".
    faults.add_fault("throttle", times=2)
    result, tasks = run_case("runtask_throttling", dispatch, faults, one_task)
    assert str(result.status) == "COMPLETED", node_stderr(result)
    calls = faults.calls()
    assert calls["fault.throttle.ecs.RunTask"] == 2
    assert calls["ecs.RunTask"] == 3
    assert len(tasks) == 1


def test_s3_server_errors_on_the_first_tries_are_retried(dispatch, faults):
    faults.add_fault("s3_error", times=2, status=500, operations=["s3.PutObject"])
    faults.add_fault("s3_error", times=2, status=503, operations=["s3.GetObject"])
    result, tasks = run_case("s3_5xx", dispatch, faults, one_task)
    assert str(result.status) == "COMPLETED", node_stderr(result)
    calls = faults.calls()
    assert calls["fault.s3_error.s3.PutObject"] == 2
    assert calls["fault.s3_error.s3.GetObject"] == 2
    assert len(tasks) == 1


def test_a_lost_runtask_response_starts_exactly_one_task(dispatch, faults):
    faults.add_fault("lost_response")
    result, tasks = run_case("lost_runtask_response", dispatch, faults, one_task)
    assert str(result.status) == "COMPLETED", node_stderr(result)
    calls = faults.calls()
    assert calls["fault.lost_response.ecs.RunTask"] == 1
    assert calls["ecs.RunTask"] == 2  # botocore retried with the same clientToken
    assert len(tasks) == 1


def test_runtask_failures_are_reported_not_ignored(dispatch, faults):
    # Refused on every one of the default 3 launch attempts.
    faults.add_fault("capacity_unavailable", times=3)
    result, tasks = run_case("runtask_failures", dispatch, faults, one_task)
    assert str(result.status) == "FAILED"
    message = node_stderr(result)
    assert "[LaunchError] ECS did not start the task" in message
    assert "Capacity is unavailable at this time" in message
    assert "Launch attempts:\n  attempt 1: Capacity is unavailable" in message
    assert "\n  attempt 3: ECS did not start the task" in message
    assert faults.calls()["ecs.RunTask"] == 3
    assert tasks == []


def test_a_network_interface_timeout_is_relaunched_and_completes(dispatch, faults):
    faults.add_fault(
        "start_failure", reason="Timeout waiting for network interface provisioning to complete."
    )
    result, tasks = run_case("eni_timeout_relaunched", dispatch, faults, one_task)
    assert str(result.status) == "COMPLETED", node_stderr(result)
    assert result.result == "done"
    assert "launch attempt 1 of 3 did not run the task (Timeout waiting for network" in (
        node_stderr(result)
    )
    assert len(tasks) == 2
    assert [t["pid"] is not None for t in tasks] == [False, True]  # the code ran once


def test_cancel_stops_the_running_task_and_the_node_ends_cancelled(result_of, faults):
    started = time.monotonic()
    dispatch_id = ct.dispatch(one_task)(30.0)
    wait_for(
        lambda: [t for t in tasks_of(faults, dispatch_id) if t["lastStatus"] == "RUNNING"],
        what="the task to run",
    )
    ct.cancel(dispatch_id)
    result = result_of(dispatch_id, timeout_s=FINAL_STATE_BOUND_S)
    elapsed = time.monotonic() - started
    print(f"\nfault-matrix: cancel_running {elapsed:.1f} s -> {result.status}")
    assert str(result.status) == "CANCELLED"
    assert str(result.get_node_result(0)["status"]) == "CANCELLED"
    assert elapsed < FINAL_STATE_BOUND_S  # the 30 s task did not run to its end
    (task,) = tasks_of(faults, dispatch_id)
    assert task["stopCode"] == "UserInitiated"
    assert task["stoppedReason"].startswith("Cancelled by Covalent")
    assert faults.calls()["ecs.StopTask"] >= 1


def test_cancelling_before_launch_starts_no_task(result_of, faults):
    # Hold the payload upload so the cancel lands before RunTask.
    held = faults.add_fault("slow_response", delay_s=6, operations=["s3.PutObject"])
    started = time.monotonic()
    dispatch_id = ct.dispatch(one_task)(30.0)
    wait_for(
        lambda: next(f for f in faults.faults() if f["id"] == held["id"])["used"] == 1,
        what="the payload upload to be held",
    )
    ct.cancel(dispatch_id)
    result = result_of(dispatch_id, timeout_s=FINAL_STATE_BOUND_S)
    elapsed = time.monotonic() - started
    print(f"\nfault-matrix: cancel_before_launch {elapsed:.1f} s -> {result.status}")
    assert str(result.status) == "CANCELLED"
    assert str(result.get_node_result(0)["status"]) == "CANCELLED"
    assert elapsed < FINAL_STATE_BOUND_S
    assert tasks_of(faults, dispatch_id) == []
    assert faults.calls().get("ecs.RunTask", 0) == 0


def test_a_task_past_its_time_limit_is_stopped_and_fails(dispatch, faults):
    # Built here, not at import: the executor reads covalent.conf, which the
    # covalent_server fixture writes.
    @ct.electron(executor=ECSExecutor(time_limit=2))
    def overruns():
        import time

        time.sleep(30)

    @ct.lattice
    def overrunning():
        return overruns()

    result, tasks = run_case("time_limit", dispatch, faults, overrunning)
    assert str(result.status) == "FAILED"
    message = node_stderr(result)
    assert "[TaskTimeoutError] time limit exceeded" in message
    assert "time_limit=2 s" in message
    (task,) = tasks
    assert task["stoppedReason"] == "Time limit exceeded (2 s)"
