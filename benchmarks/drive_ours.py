"""Drive this project's ECSExecutor against a sandbox: N concurrent tasks, JSON out.

Run by bench.py in the project's venv; see driver_common.py for the options. The
executor is driven directly (no Covalent server), as Covalent's dispatcher would call
it: ``await ECSExecutor(**config).run(function, args, kwargs, task_metadata)``, one
executor per task as Covalent builds one per electron.

Besides the tasks' outcomes it reports what the client side cost: this process's CPU
during the batch, each AWS call's latency as the executor's boto3 clients saw it
(botocore's before-call/after-call events: retries included), and the poller's
cycles (the executor's public ``poll_cycle`` events). ``--stand-in`` marks the tasks
for the scale mode's stand-in container (stand_in.py).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import driver_common

_HOME = driver_common.isolate_home()
# Imported after isolate_home(): covalent reads where to keep its files at import.
cloudpickle = importlib.import_module("cloudpickle")
workload = importlib.import_module("workload")
executor_package = importlib.import_module("covalent_ecs_executor")
ECSExecutor = executor_package.ECSExecutor
events = importlib.import_module("covalent_ecs_executor.events")
aws = importlib.import_module("covalent_ecs_executor.aws")
cloudpickle.register_pickle_by_value(workload)
RELAUNCH_MARK = "relaunching"  # ECSExecutor's line on the node's stderr per relaunch
TIMED_CALLS = {"ecs": ("DescribeTasks", "RunTask"), "s3": ("PutObject", "GetObject", "DeleteObjects")}


def parse_args():
    parser = driver_common.parser("drive_ours.py")
    parser.add_argument("--stand-in", action="store_true",
                        help="tasks run as the scale mode's stand-in container (stand_in.py)")
    parser.add_argument("--capacity-provider", default=None, help="FARGATE or FARGATE_SPOT")
    parser.add_argument("--spot-fallback", action="store_true")
    return parser.parse_args()  # fmt: skip


class CallTimer:
    """Latency of each AWS call a boto3 client makes, by operation (retries included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self._started = threading.local()

    def attach(self, client: Any, service: str, operations: tuple[str, ...]) -> None:
        for operation in operations:
            client.meta.events.register(f"before-call.{service}.{operation}", self._before)
            client.meta.events.register(f"after-call.{service}.{operation}", self._after)

    def _before(self, model: Any, **kwargs: Any) -> None:
        self._started.at = time.perf_counter()

    def _after(self, model: Any, **kwargs: Any) -> None:
        self.seconds[model.name].append(time.perf_counter() - self._started.at)

    def summary(self) -> dict[str, dict[str, float]]:
        return {op: _spread(values) for op, values in self.seconds.items()}


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "max": round(ordered[-1], 4),
    }


def cycle_figures(cycles: list[dict]) -> dict[str, Any]:
    """The poller's cycles: how many, how often (start to start) and how long each took."""
    figures: dict[str, Any] = {"count": len(cycles)}
    if cycles:
        figures["duration_s"] = _spread([c["duration_s"] for c in cycles])
        figures["max_watched"] = max(c["watched"] for c in cycles)
    starts = sorted(c["started"] for c in cycles)
    periods = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    if periods:
        figures["period_s"] = _spread(periods)
    return figures


async def main() -> None:
    args = parse_args()
    config = driver_common.control(args.endpoint_url, "config")
    config["cache_dir"] = os.path.join(_HOME, "cache")
    if args.stand_in:
        config["environment"] = {driver_common.STAND_IN_ENV: str(args.sleep)}
    if args.capacity_provider:
        config["capacity_provider"] = args.capacity_provider
    if args.spot_fallback:
        config["spot_fallback"] = True
    timings: dict[str, dict] = {}
    cycles: list[dict] = []

    def on_event(event: dict) -> None:
        if event["event"] == events.TASK_FINISHED:
            # Emitted once the result is downloaded and verified, before clean-up (each
            # subscriber gets its own copy of the event).
            event["collected"] = time.time()
            timings[str(event["node_id"])] = event
        elif event["event"] == events.POLL_CYCLE:
            cycles.append(event)

    events.subscribe(on_event)
    document: dict = {"plugin": "ours", "n": args.n}

    if args.payload_bytes:
        # One task; the task needs room for the payload twice.
        executor = ECSExecutor(**config, vcpu=2, memory=8, time_limit=1800)
        meta = {"dispatch_id": args.dispatch_id, "node_id": 0, "results_dir": _HOME}
        document.update(
            await driver_common.measure_payload(
                args, lambda fn, fn_args: executor.run(fn, fn_args, {}, meta), workload
            )
        )
        driver_common.emit(document)
        return

    # The executors' clients are shared per connection (aws.clients_for): time theirs.
    clients = aws.clients_for(ECSExecutor(**config).config())
    timer = CallTimer()
    for service, operations in TIMED_CALLS.items():
        timer.attach(getattr(clients, service), service, operations)
    relaunches = 0

    async def run_one(i: int):
        nonlocal relaunches
        executor = ECSExecutor(**config)
        # The node's streams, as Covalent's execute() gives them before calling run().
        executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
        meta = {"dispatch_id": args.dispatch_id, "node_id": i, "results_dir": _HOME}
        try:
            seconds = driver_common.task_seconds(i, args.sleep)
            return await executor.run(workload.sleep_then_return, [i, seconds], {}, meta)
        finally:
            relaunches += executor.task_stderr.getvalue().count(RELAUNCH_MARK)

    cpu_before = driver_common.cpu_s()
    started = time.time()
    document["tasks"] = await driver_common.run_batch(args.n, run_one, timeout_s=args.timeout)
    document["wall_s"] = time.time() - started
    document["batch_cpu_s"] = round(driver_common.cpu_s() - cpu_before, 3)
    document["call_latency_s"] = timer.summary()
    document["relaunches"] = relaunches
    for task in document["tasks"]:
        found = timings.get(str(task["index"]))
        if found:
            task["task_arn"] = found["task_arn"]
            task["runner_timings"] = found["timings"]
            task["exit_seen"] = found["exit_seen"]
            task["collected"] = found["collected"]
    # DescribeTasks cycles the executor's poller ran, and the most tasks one cycle watched.
    document["poll_cycles"] = len(cycles)
    document["max_watched"] = max((c["watched"] for c in cycles), default=0)
    document["poll"] = cycle_figures(cycles)
    document["idle"] = await driver_common.idle_calls(args.endpoint_url, args.idle)
    driver_common.emit(document)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
