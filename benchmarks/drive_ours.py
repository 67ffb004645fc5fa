"""Drive this project's ECSExecutor against a sandbox: N concurrent tasks, JSON out.

Run by bench.py in the project's venv; see driver_common.py for the options. The
executor is driven directly (no Covalent server), as Covalent's dispatcher would call
it: ``await ECSExecutor(**config).run(function, args, kwargs, task_metadata)``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time

import driver_common

_HOME = driver_common.isolate_home()
# Imported after isolate_home(): covalent reads where to keep its files at import.
cloudpickle = importlib.import_module("cloudpickle")
workload = importlib.import_module("workload")
executor_package = importlib.import_module("covalent_ecs_executor")
ECSExecutor = executor_package.ECSExecutor
events = importlib.import_module("covalent_ecs_executor.events")
cloudpickle.register_pickle_by_value(workload)


async def main() -> None:
    args = driver_common.parse_args("drive_ours.py")
    config = driver_common.control(args.endpoint_url, "config")
    config["cache_dir"] = os.path.join(_HOME, "cache")
    timings: dict[str, dict] = {}
    cycles: list[dict] = []

    def on_event(event: dict) -> None:
        if event["event"] == events.TASK_FINISHED:
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

    executor = ECSExecutor(**config)

    async def run_one(i: int):
        meta = {"dispatch_id": args.dispatch_id, "node_id": i, "results_dir": _HOME}
        return await executor.run(workload.sleep_then_return, [i, args.sleep], {}, meta)

    started = time.time()
    document["tasks"] = await driver_common.run_batch(args.n, run_one, timeout_s=args.timeout)
    document["wall_s"] = time.time() - started
    for task in document["tasks"]:
        found = timings.get(str(task["index"]))
        if found:
            task["task_arn"] = found["task_arn"]
            task["runner_timings"] = found["timings"]
            task["exit_seen"] = found["exit_seen"]
    # DescribeTasks cycles the executor's poller ran, and the most tasks one cycle watched.
    document["poll_cycles"] = len(cycles)
    document["max_watched"] = max((c["watched"] for c in cycles), default=0)
    document["idle"] = await driver_common.idle_calls(args.endpoint_url, args.idle)
    driver_common.emit(document)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
