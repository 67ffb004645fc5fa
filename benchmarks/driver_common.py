"""What both drivers share: options, the concurrent batch, the idle check, JSON out.

A driver is a client process: ``drive_ours.py`` (this project's executor, in the
project's venv) or ``drive_original.py`` (covalent-ecs-plugin, in its own venv). Both
run N tasks concurrently with ``asyncio.gather`` against one sandbox and print one JSON
document. Standard library only: it runs in both venvs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

# In a task's environment (the executor's ``environment``): run the task's container as
# the scale mode's stand-in (stand_in.py), for this many seconds.
STAND_IN_ENV = "BENCH_STAND_IN_S"

# Real-runner tasks sleep ``--sleep`` plus ``(i % 10)`` steps of this much, so their exits
# spread over one poll period (0.5 s by default). Were they all to end together, every
# exit of a batch would meet the same poll phase and a batch's exit->seen median would be
# one random draw in [0, poll period), which two runs need not agree on.
STAGGER_STEP_S = 0.05


def isolate_home() -> str:
    """Keep covalent's config/db and boto3's files out of $HOME (set before imports)."""
    root = tempfile.mkdtemp(prefix="covalent-ecs-bench-driver-")
    for name, sub in (
        ("COVALENT_CONFIG_DIR", "covalent/config"),
        ("COVALENT_DATA_DIR", "covalent/data"),
        ("COVALENT_CACHE_DIR", "covalent/cache"),
        ("COVALENT_LOGDIR", "covalent/logs"),
    ):
        os.environ[name] = os.path.join(root, sub)
        os.makedirs(os.environ[name], exist_ok=True)
    os.environ["COVALENT_DATABASE"] = os.path.join(root, "covalent", "data", "db.sqlite")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    return root


def parser(prog: str) -> argparse.ArgumentParser:
    """The options both drivers take (a driver may add its own, then ``parse_args()``)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--endpoint-url", required=True, help="the sandbox's endpoint")
    parser.add_argument("--n", type=int, default=1, help="concurrent tasks")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each task sleeps")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds idle after the batch")
    parser.add_argument("--dispatch-id", default=f"bench-{int(time.time() * 1000)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    parser.add_argument(
        "--payload-bytes", type=int, default=0,
        help="send an argument of this size (scenario 'send'), or with --receive get a "
        "result of this size",
    )  # fmt: skip
    parser.add_argument("--receive", action="store_true")
    return parser


def task_seconds(index: int, base_s: float) -> float:
    """How long task ``index`` of a real-runner batch sleeps (see ``STAGGER_STEP_S``)."""
    return round(base_s + (index % 10) * STAGGER_STEP_S, 3)


def control(endpoint_url: str, name: str) -> Any:
    """GET the sandbox control API (not counted as an AWS call)."""
    with urllib.request.urlopen(f"{endpoint_url}/_sandbox/{name}", timeout=30) as response:
        return json.loads(response.read())


def rss_kib() -> dict[str, int]:
    """This process's current and peak resident memory (KiB) from /proc."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                values[name] = int(value.split()[0])
    return {"rss_kib": values.get("VmRSS", 0), "hwm_kib": values.get("VmHWM", 0)}


async def run_batch(
    n: int, run_one: Callable[[int], Awaitable[Any]], *, timeout_s: float
) -> list[dict[str, Any]]:
    """Run ``run_one(0..n-1)`` concurrently; per task: start, return time, value or error."""

    async def timed(i: int) -> dict[str, Any]:
        started = time.time()
        try:
            value = await run_one(i)
        except BaseException as exc:  # noqa: BLE001 - counted and reported, not raised
            return {
                "index": i, "started": started, "returned": time.time(),
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }  # fmt: skip
        return {"index": i, "started": started, "returned": time.time(), "value": repr(value)[:80]}

    try:
        return await asyncio.wait_for(
            asyncio.gather(*(timed(i) for i in range(n))), timeout=timeout_s
        )
    except asyncio.TimeoutError:
        return [{"index": -1, "error": f"batch timed out after {timeout_s:.0f} s"}]


async def idle_calls(endpoint_url: str, seconds: float) -> dict[str, Any]:
    """ECS calls this process makes while it has nothing running, over ``seconds``."""
    if seconds <= 0:
        return {}
    before = control(endpoint_url, "calls")
    await asyncio.sleep(seconds)
    after = control(endpoint_url, "calls")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "seconds": seconds,
        "describe_tasks": delta.get("ecs.DescribeTasks", 0),
        "all_calls": sum(v for v in delta.values() if v > 0),
    }


def clear_peak_rss() -> bool:
    """Reset VmHWM so the peak measured is the run's (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


async def measure_payload(
    args: argparse.Namespace, run: Callable[[Any, list[Any]], Awaitable[Any]], workload: Any
) -> dict[str, Any]:
    """One task with a large argument (or result); this process's RSS around it.

    The baseline is taken with the argument already built (it is the caller's object);
    for a large result, the value returned is subtracted from the peak, as it must be
    in memory once. What is left is what the plugin itself held.
    """
    if args.receive:
        fn, fn_args, result_bytes = workload.make_bytes, [args.payload_bytes], args.payload_bytes
    else:
        fn, fn_args, result_bytes = workload.size_of, [b"\x01" * args.payload_bytes], 0
    baseline = rss_kib()["rss_kib"]
    document: dict[str, Any] = {"peak_reset": clear_peak_rss()}
    started = time.time()
    value = await run(fn, fn_args)
    document["seconds"] = time.time() - started
    document["ok"] = len(value) if isinstance(value, bytes) else value
    peak = rss_kib()["hwm_kib"]
    document["rss"] = {
        "baseline_kib": baseline,
        "peak_kib": peak,
        "result_bytes": result_bytes,
        "growth_kib": peak - baseline - result_bytes // 1024,
    }
    return document


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    times = os.times()
    return times.user + times.system


def emit(document: dict[str, Any]) -> None:
    document["client_rss"] = rss_kib()
    times = os.times()
    document["client_cpu_s"] = round(times.user + times.system, 2)
    print(json.dumps(document))
