"""Real lattices through a real Covalent server, executed by the sandbox's Fargate agent."""

from __future__ import annotations

import time

import covalent as ct
import pytest

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.e2e


def tasks_of(sandbox, dispatch_id):
    label = f"{dispatch_id}/"
    return [
        t for t in sandbox.tasks()
        if any(e.startswith(f"{contract.ENV_TASK_LABEL}={label}") for e in _env_pairs(t))
    ]


def ecs_nodes(result):
    """Nodes of the dispatched graph that ran on the "ecs" executor.

    Covalent adds nodes of its own (e.g. ``:electron_list:`` collecting a list
    argument), which inherit the executor of the electron they feed.
    """
    graph = result.lattice.transport_graph
    return [n for n in graph._graph.nodes if graph.get_node_value(n, "metadata")["executor"] == "ecs"]


def _env_pairs(task):
    return [f"{k}={v}" for k, v in (task.get("env") or {}).items()]


@ct.electron(executor="ecs")
def square(x):
    return x * x


@ct.electron(executor="ecs")
def total(values):
    return sum(values)


@ct.lattice
def sum_of_squares(n):
    return total([square(i) for i in range(n)])


def test_a_lattice_of_ecs_electrons_returns_its_result(dispatch, fresh_sandbox):
    result = dispatch(sum_of_squares, 4)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 0 + 1 + 4 + 9
    calls = fresh_sandbox.calls()
    assert len(ecs_nodes(result)) == 6  # 4 squares, the list collecting them, total
    assert calls["ecs.RunTask"] == 6
    assert len(tasks_of(fresh_sandbox, result.dispatch_id)) == 6
    assert calls.get("ecs.RegisterTaskDefinition", 0) <= 1


@ct.electron(executor="ecs")
def chatty(name):
    import subprocess
    import sys

    print(f"hello {name} from print")
    print("a warning on stderr", file=sys.stderr)
    subprocess.run(["echo", "and from a subprocess"], check=True)
    return name.upper()


@ct.lattice
def chatty_flow(name):
    return chatty(name)


def test_task_stdout_and_stderr_reach_the_node(dispatch):
    result = dispatch(chatty_flow, "ecs")
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == "ECS"
    node = result.get_node_result(0)
    assert "hello ecs from print" in node["stdout"]
    assert "and from a subprocess" in node["stdout"]
    assert "a warning on stderr" in node["stderr"]


@ct.electron(executor="ecs")
def fails(sku):
    # Defined here: a class from this test module would be pickled by reference, and
    # the module is not importable inside the task.
    class InventoryError(Exception):
        pass

    raise InventoryError(f"no stock for {sku}")


@ct.lattice
def failing_flow(sku):
    return fails(sku)


def test_a_task_that_raises_fails_the_node_with_the_remote_traceback(dispatch):
    result = dispatch(failing_flow, "A-17")
    assert str(result.status) == "FAILED"
    node = result.get_node_result(0)
    assert str(node["status"]) == "FAILED"
    assert "InventoryError: no stock for A-17" in node["stderr"]
    assert "Remote traceback (in the ECS task)" in node["stderr"]
    # Covalent ships the function without its source file, so the remote frames
    # name the function and line but cannot quote the line.
    assert ", in fails\n" in node["stderr"]


@ct.electron(executor="ecs")
def needs_missing_module():
    import a_module_the_runner_image_lacks  # noqa: F401


@ct.lattice
def missing_module_flow():
    return needs_missing_module()


def test_a_missing_module_in_the_task_says_how_to_add_it(dispatch):
    result = dispatch(missing_module_flow)
    stderr = result.get_node_result(0)["stderr"]
    assert "No module named 'a_module_the_runner_image_lacks'" in stderr
    assert "deps_pip" in stderr


@ct.electron(executor="ecs")
def slow_square(x):
    import time

    time.sleep(1)
    return x * x


@ct.lattice
def fan_out(n):
    return [slow_square(i) for i in range(n)]


def test_twenty_parallel_tasks_share_one_task_definition_and_batched_polling(dispatch, fresh_sandbox):
    started = time.monotonic()
    result = dispatch(fan_out, 20)
    wall_s = time.monotonic() - started
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == [i * i for i in range(20)]
    calls = fresh_sandbox.calls()
    assert calls["ecs.RunTask"] == 20
    assert calls.get("ecs.RegisterTaskDefinition", 0) <= 1
    assert calls.get("ecs.DescribeTaskDefinition", 0) <= 1
    # One poller batches all live tasks: at most one DescribeTasks per 0.5 s cycle,
    # where per-task polling would make 20 per cycle.
    assert calls["ecs.DescribeTasks"] <= wall_s / 0.5 + 2, (calls, wall_s)
    # Client-side S3 requests per task: PutObject, GetObject, DeleteObjects.
    assert calls["s3.DeleteObjects"] == 20
    assert "s3.HeadObject" not in calls


def test_another_size_is_a_task_level_override_on_the_same_definition(dispatch, fresh_sandbox):
    big = ECSExecutor(vcpu=2, memory=4)

    @ct.electron(executor=big)
    def where_am_i():
        return "big"

    @ct.lattice
    def sized():
        return [where_am_i(), square(3)]

    result = dispatch(sized)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == ["big", 9]
    ecs = fresh_sandbox.client("ecs")
    records = tasks_of(fresh_sandbox, result.dispatch_id)
    described = ecs.describe_tasks(cluster=fresh_sandbox.executor_config["ecs_cluster_name"],
                                   tasks=[r["taskArn"] for r in records])["tasks"]
    assert len(described) == 2
    assert len({t["taskDefinitionArn"] for t in described}) == 1
    sizes = {(t["overrides"].get("cpu"), t["overrides"].get("memory")) for t in described}
    assert sizes == {(None, None), ("2048", "4096")}
    assert sorted(r["memoryLimitMiB"] for r in records) == [512, 4096]


@ct.electron(
    executor="ecs",
    deps_bash=ct.DepsBash(["echo from-deps-bash > marker.txt"]),
    deps_pip=ct.DepsPip(packages=["cloudpickle"]),
    call_before=[ct.DepsCall(lambda: __import__("os").environ.__setitem__("PREPARED", "yes"))],
)
def uses_deps():
    import os

    with open("marker.txt") as f:
        return f.read().strip(), os.environ.get("PREPARED")


@ct.lattice
def deps_flow():
    return uses_deps()


def test_electron_dependencies_run_inside_the_task(dispatch):
    result = dispatch(deps_flow)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == ["from-deps-bash", "yes"] or result.result == ("from-deps-bash", "yes")


@ct.lattice(executor="ecs", workflow_executor="ecs")
def all_on_ecs(n):
    return total([square(i) for i in range(n)])


def test_a_whole_lattice_runs_on_ecs_including_post_processing(dispatch, fresh_sandbox):
    result = dispatch(all_on_ecs, 3)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 5
    # 3 squares, the list, total, and post-processing (a graph node of its own, run on
    # the workflow_executor): each one ECS task.
    graph = result.lattice.transport_graph
    names = {graph.get_node_value(n, "name") for n in ecs_nodes(result)}
    assert any(name.startswith(":postprocess:") for name in names), names
    assert fresh_sandbox.calls()["ecs.RunTask"] == len(ecs_nodes(result)) == 6
