"""The workflow on ECS, offline: covalent-ecs-executor's pytest fixtures start the
embedded sandbox (a local AWS API and Fargate agent) and a Covalent server that sends
`executor="ecs"` electrons to it. Nothing here needs an AWS account."""

import covalent as ct
from word_count import word_count

DOCUMENTS = ["the cat sat", "The dog sat down"]


def tasks_of(ecs_sandbox, dispatch_id):
    """The sandbox's ECS tasks of one dispatch (each is labelled `<dispatch id>/<node>`)."""
    return [t for t in ecs_sandbox.tasks() if (t["label"] or "").startswith(f"{dispatch_id}/")]


def test_word_count_runs_each_electron_as_an_ecs_task(covalent_ecs_server, ecs_sandbox):
    dispatch_id = ct.dispatch(word_count)(DOCUMENTS)
    result = covalent_ecs_server.result(dispatch_id, timeout_s=120)

    assert str(result.status) == "COMPLETED"
    assert result.result == {"the": 2, "cat": 1, "sat": 2, "dog": 1, "down": 1}
    tasks = tasks_of(ecs_sandbox, dispatch_id)
    # One task per electron: two count_words, the list they form (Covalent runs it with
    # the executor of the electron it feeds) and add_counts.
    assert len(tasks) == 4
    assert {t["exitCode"] for t in tasks} == {0}


def test_a_task_killed_for_memory_fails_the_dispatch_with_a_hint(covalent_ecs_server, ecs_sandbox):
    ecs_sandbox.add_fault("oom")  # the next task to start runs out of memory
    try:
        dispatch_id = ct.dispatch(word_count)(DOCUMENTS)
        result = covalent_ecs_server.result(dispatch_id, timeout_s=120)
    finally:
        ecs_sandbox.clear_faults()

    assert str(result.status) == "FAILED"
    failed = [n for n in result.get_all_node_results() if str(n["status"]) == "FAILED"]
    assert [n["node_name"] for n in failed] == ["count_words"]
    assert "[OutOfMemoryError]" in failed[0]["stderr"]
    assert "Raise `memory`" in failed[0]["stderr"]  # what to do about it
