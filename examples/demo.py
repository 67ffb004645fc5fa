"""`make demo`: a real workflow through a Covalent server on the embedded sandbox.

Starts the sandbox (local AWS API + local Fargate agent, with image pulls that take as
long as the runner image's size over PULL_BANDWIDTH_MB_S) and a Covalent server on
127.0.0.1, dispatches a lattice of 10 electrons with ``executor="ecs"``, prints the
result, one task's output, the AWS calls made per kind and the dispatch's report (where
each task's time and money went, as ``covalent-ecs report`` prints it), then stops both.
Nothing is written outside a temporary folder; no AWS account is needed.
"""

import os
import shutil
import sys
import tempfile
import time

# Covalent writes its config, database and logs where these point as soon as it is
# imported, so they are set first (tests/conftest.py does the same for the tests).
STATE_DIR = tempfile.mkdtemp(prefix="covalent-ecs-demo-")
for _var, _sub in (
    ("COVALENT_CONFIG_DIR", "config"),
    ("COVALENT_DATA_DIR", "data"),
    ("COVALENT_CACHE_DIR", "cache"),
    ("COVALENT_LOGDIR", "logs"),
    ("XDG_CACHE_HOME", "xdg-cache"),
):
    os.environ[_var] = os.path.join(STATE_DIR, _sub)
os.environ["COVALENT_DATABASE"] = os.path.join(STATE_DIR, "data", "dispatcher.sqlite")
os.environ["COVALENT_DISABLE_DASK"] = "1"

import covalent as ct  # noqa: E402

from covalent_ecs_executor.sandbox import start_sandbox_process  # noqa: E402
from covalent_ecs_executor.sandbox.covalent_server import CovalentServer  # noqa: E402

SAMPLES_PER_TASK = 200_000
# Emulated image pulls: the runner image's compressed size over this bandwidth (a real
# Fargate task pulls at roughly 10-20 MB/s), so the report's pull column means something.
PULL_BANDWIDTH_MB_S = 20


@ct.electron(executor="ecs")
def sample_pi(seed: int, samples: int) -> int:
    """Count random points that fall inside the unit quarter circle."""
    import random

    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    print(f"task {seed}: {inside} of {samples} points inside the circle")
    return inside


@ct.electron(executor="ecs")
def estimate(counts: list, samples: int) -> float:
    return 4.0 * sum(counts) / (len(counts) * samples)


@ct.lattice
def monte_carlo_pi(tasks: int, samples: int) -> float:
    return estimate([sample_pi(seed, samples) for seed in range(tasks)], samples)


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    started = time.monotonic()
    try:
        log("starting the embedded sandbox (local AWS API + local Fargate agent)")
        with start_sandbox_process(
            state_dir=os.path.join(STATE_DIR, "sandbox"), pull_bandwidth_mb_s=PULL_BANDWIDTH_MB_S
        ) as sandbox:
            log(f"sandbox at {sandbox.endpoint_url}")
            log("starting a Covalent server with [executors.ecs] pointed at the sandbox")
            with CovalentServer(executor_config=sandbox.executor_config) as server:
                log(f"Covalent server at {server.url}")
                sandbox.reset_calls()
                dispatch_id = ct.dispatch(monte_carlo_pi)(8, SAMPLES_PER_TASK)
                log(f"dispatched {dispatch_id}: 8 sampling electrons + their list + 1 estimate")
                result = ct.get_result(dispatch_id, wait=True)
                report(result, sandbox.calls())
                print_task_report(sandbox, dispatch_id)
                if str(result.status) != "COMPLETED":
                    return 1
            log("Covalent server stopped")
        log(f"sandbox stopped; done in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        shutil.rmtree(STATE_DIR, ignore_errors=True)


def report(result, calls: dict) -> None:
    log(f"status: {result.status}")
    if result.error:
        log(f"error: {result.error}")
    log(f"pi is about {result.result}")
    graph = result.lattice.transport_graph
    for node_id in sorted(graph._graph.nodes):
        if graph.get_node_value(node_id, "name") == "sample_pi":
            log(f"stdout of node {node_id}, captured in its ECS task: "
                f"{result.get_node_result(node_id)['stdout'].strip()!r}")
            break
    print("\nAWS API calls made by the executor and the tasks, per kind:")
    width = max(len(name) for name in calls)
    for name, count in sorted(calls.items()):
        print(f"  {name:<{width}}  {count:>4}")
    print()


def print_task_report(sandbox, dispatch_id: str) -> None:
    """The dispatch's report from the tasks' durable records (`covalent-ecs report`)."""
    from covalent_ecs_executor import pricing, records
    from covalent_ecs_executor import report as reports

    found = records.read_dispatch(
        sandbox.client("s3", internal=True), sandbox.executor_config["s3_bucket_name"], dispatch_id
    )
    found = reports.complete_stops(
        sandbox.client("ecs", internal=True), found, prices=pricing.load_price_table()
    )
    print(reports.format_table(dispatch_id, found))
    print()


if __name__ == "__main__":
    sys.exit(main())
