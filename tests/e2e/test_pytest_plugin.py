"""The pytest plugin's fixtures, asked for by name as a user's test does:
``covalent_ecs_server`` sends ``ct.dispatch`` to a real Covalent server whose
``executor="ecs"`` is ``ecs_sandbox``. The sandbox is shared by the session, so each
test counts only its own dispatch's tasks and the calls made while it ran."""

from __future__ import annotations

import covalent as ct
import pytest

pytestmark = pytest.mark.e2e

# A two-task dispatch takes seconds; this only bounds a broken one.
DISPATCH_CEILING_S = 120


@ct.electron(executor="ecs")
def add(a, b):
    return a + b


@ct.electron(executor="ecs")
def square(x):
    return x * x


@ct.lattice
def square_of_sum(a, b):
    return square(add(a, b))


def tasks_of(ecs_sandbox, dispatch_id):
    return [t for t in ecs_sandbox.tasks() if (t["label"] or "").startswith(f"{dispatch_id}/")]


def test_a_two_electron_lattice_runs_as_two_ecs_tasks_through_the_server_fixture(
    covalent_ecs_server, ecs_sandbox
):
    run_tasks_before = ecs_sandbox.calls().get("ecs.RunTask", 0)
    dispatch_id = ct.dispatch(square_of_sum)(2, 3)
    result = covalent_ecs_server.result(dispatch_id, timeout_s=DISPATCH_CEILING_S)

    assert str(result.status) == "COMPLETED"
    assert result.result == 25
    assert ecs_sandbox.calls().get("ecs.RunTask", 0) - run_tasks_before == 2
    tasks = tasks_of(ecs_sandbox, dispatch_id)
    assert sorted(int(t["label"].rsplit("/", 1)[1]) for t in tasks) == sorted(
        n["node_id"] for n in result.get_all_node_results() if n["node_name"] in ("add", "square")
    )
    assert [(t["lastStatus"], t["exitCode"]) for t in tasks] == [("STOPPED", 0)] * 2


def test_a_fault_added_through_the_sandbox_fixture_fails_the_node_it_hits(
    covalent_ecs_server, ecs_sandbox
):
    ecs_sandbox.add_fault("pull_failure")  # the next task to start cannot pull its image
    try:
        dispatch_id = ct.dispatch(square_of_sum)(2, 3)
        result = covalent_ecs_server.result(dispatch_id, timeout_s=DISPATCH_CEILING_S)
    finally:
        ecs_sandbox.clear_faults()

    assert str(result.status) == "FAILED"
    failed = [n for n in result.get_all_node_results() if str(n["status"]) == "FAILED"]
    assert [n["node_name"] for n in failed] == ["add"]
    assert "[ImagePullError]" in failed[0]["stderr"]
    (task,) = tasks_of(ecs_sandbox, dispatch_id)  # square never started
    assert task["stoppedReason"].startswith("CannotPullContainerError")
    assert task["exitCode"] is None  # the container never ran
