"""Benchmarks: this executor and the original covalent-ecs-plugin, side by side.

    python benchmarks/bench.py               # N = 1, 10, 100, 1000 (x3), faults, 1 GiB runs
    python benchmarks/bench.py --quick       # N <= 100 once, no 1 GiB (a fast check)

One sandbox (a ``SandboxProcess`` enforcing an AWS account's API and Fargate launch
limits unless ``--no-aws-limits``) serves every run. For each N, each plugin's driver
(drive_ours.py in this venv, drive_original.py in benchmarks/.venv-original) runs N
concurrent tasks as a separate client process; the sandbox counts the API calls by
caller and records each task's container start and exit.

Up to ``--real-runner-max-n`` (100) this executor's tasks run the real runner, forked
warm (bench_starters.py); above it they run the scale mode's stand-in container
(stand_in.py: threads of one helper process keeping the runner's contract), so that N = 1000 measures the
executor, its launch pacing and polling, and the local AWS API rather than a thousand
Python processes on two cores. The cold-start row runs the real runner cold.

Every batch of this executor runs ``--repeat`` times (3; 1 with ``--quick``),
interleaved, the original's ``--original-repeat`` times (1), and the report gives the
median with min-max, and the machine's load around each batch. The
faults row runs N tasks on Spot with a scripted share of launches failing
for causes that may pass. Results are printed and written to
``benchmarks/results/latest.{json,md}`` (``latest-quick.*`` with ``--quick``). Not a
test: nothing is asserted; targets are shown met or missed.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import fault_row
from bench_starters import ORIGINAL_PYTHON
from stand_in import STATS_ENV
from stand_in import read_stats as read_stand_in_stats

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
# The sandbox's process starters for the runs (bench_starters.py, stand_in.py), loaded
# by the sandbox's process from benchmarks/ (on its PYTHONPATH). The stand-in takes
# only the tasks a driver marks for it (--stand-in).
STAND_IN = "stand_in:StandInStarter"
FORK_SERVER = "bench_starters:ForkServerStarter"
COLD_RUNNER = "bench_starters:ColdRunnerStarter"
ORIGINAL_IMAGE_CMD = "bench_starters:OriginalImageStarter"
GIB = 1024**3
IDLE_WINDOW_S = 3.0
# Batches up to these N run this many times as often (not with --quick): at N <= 10 a
# batch has ten exits or fewer to sample where they fall in the 0.5 s poll cycle (their
# durations are staggered over it: driver_common.task_seconds); at N = 100 the real
# runners exit within a second of each other and share two cores with the API, so one
# batch's p95 is one draw of that burst.
REPEAT_FACTORS = ((10, 3), (100, 2))

# Operation groups of the table: (column, [sandbox operation names]).
OPERATIONS = (
    ("RunTask", ["ecs.RunTask"]),
    ("RegisterTaskDefinition", ["ecs.RegisterTaskDefinition"]),
    ("DescribeTasks", ["ecs.DescribeTasks"]),
    ("ListTasks", ["ecs.ListTasks"]),
    ("S3 PUT", ["s3.PutObject", "s3.CreateMultipartUpload", "s3.UploadPart",
                "s3.CompleteMultipartUpload"]),
    ("S3 GET", ["s3.GetObject"]),
    ("S3 HEAD", ["s3.HeadObject"]),
    ("S3 DELETE", ["s3.DeleteObject", "s3.DeleteObjects"]),
    ("Logs", ["logs.*"]),
    ("other", ["*"]),
)  # fmt: skip
CALLERS = {"ours": ("client", "runner"), "original": ("original-client", "original-runner")}


# ------------------------------------------------------------------------ helpers
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def group_calls(calls: dict[str, int]) -> dict[str, int]:
    """Sandbox operation counts folded into the table's columns (throttled apart)."""
    grouped = dict.fromkeys([name for name, _ in OPERATIONS], 0)
    grouped["throttled"] = 0
    for op, count in calls.items():
        if op.startswith("throttled."):
            grouped["throttled"] += count
            continue
        for name, patterns in OPERATIONS:
            if any(p == op or p == "*" or (p.endswith(".*") and op.startswith(p[:-1]))
                   for p in patterns):  # fmt: skip
                grouped[name] += count
                break
    return grouped


def conditions() -> dict[str, Any]:
    load = os.getloadavg()
    with open("/proc/meminfo") as f:
        mem_total = int(f.readline().split()[1]) // 1024
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpus": os.cpu_count(),
        "memory_mib": mem_total,
        "load_avg_at_start": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _proc_cpu_s(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    # utime(14) stime(15) cutime(16) cstime(17), counted from the state field (3).
    return (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


def sandbox_cpu_s(sandbox: Any, stand_in_stats: str | None = None) -> dict[str, float]:
    """CPU seconds so far of the sandbox's server+agent process, of its task processes
    (reaped children of the sandbox and of multiprocessing's fork server), and of the
    stand-in containers (their host process, stand_in.py)."""
    pid = sandbox.health()["pid"]
    own, children = _proc_cpu_s(pid)
    stand_in = read_stand_in_stats(stand_in_stats)["cpu_s"] if stand_in_stats else 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"forkserver" not in f.read():
                    continue
        except (OSError, ValueError, IndexError):
            continue
        children += sum(_proc_cpu_s(int(entry)))
    return {"server_and_agent": own, "tasks": children, "stand_in": stand_in}


class RssSampler(threading.Thread):
    """Samples a process's VmRSS / VmHWM from /proc every 20 ms until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss_kib = 0
        self.hwm_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.max_rss_kib = max(self.max_rss_kib, int(line.split()[1]))
                        elif line.startswith("VmHWM:"):
                            self.hwm_kib = int(line.split()[1])
            except (OSError, ValueError):
                return
            time.sleep(0.02)


# ------------------------------------------------------------------------ one run
def run_driver(
    plugin: str, endpoint_url: str, extra: list[str], *, timeout_s: float, sample: bool = False
) -> tuple[dict[str, Any], RssSampler | None]:
    python = sys.executable if plugin == "ours" else ORIGINAL_PYTHON
    script = os.path.join(HERE, "drive_ours.py" if plugin == "ours" else "drive_original.py")
    argv = [python, script, "--endpoint-url", endpoint_url, "--timeout", str(timeout_s), *extra]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(process.pid) if sample else None
    if sampler is not None:
        sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout_s + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    if sampler is not None:
        sampler.done.set()
        sampler.join()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        return {"failed": f"driver exited with {process.returncode}: {stderr[-1500:]}"}, sampler
    return json.loads(lines[-1]), sampler


def batch(
    sandbox: Any,
    plugin: str,
    n: int,
    *,
    sleep_s: float,
    timeout_s: float,
    stand_in: bool = False,
    faults: bool = False,
    stand_in_stats: str | None = None,
    repeat: int = 0,
    idle_s: float = IDLE_WINDOW_S,
) -> dict[str, Any]:
    """N concurrent tasks through one plugin; the row of figures for the table.

    ``stand_in``: the tasks run the scale mode's stand-in container; ``faults``: the
    faults row (fault_row.py), on Spot with a share of launches scripted to fail.
    """
    dispatch_id = f"bench-{plugin}-{n}-{repeat}-{int(time.time() * 1000)}"
    extra = ["--n", str(n), "--sleep", str(sleep_s), "--idle", str(idle_s),
             "--dispatch-id", dispatch_id]  # fmt: skip
    if stand_in:
        extra.append("--stand-in")
    picked: dict[str, list[int]] = {}
    if faults:
        specs, picked = fault_row.plan(dispatch_id, n)
        sandbox.add_faults(specs)
        extra += ["--capacity-provider", "FARGATE_SPOT", "--spot-fallback"]
    sandbox.reset_calls()
    load_before = os.getloadavg()[0]
    cpu_before = sandbox_cpu_s(sandbox, stand_in_stats)
    document, _ = run_driver(plugin, sandbox.endpoint_url, extra, timeout_s=timeout_s)
    cpu_after = sandbox_cpu_s(sandbox, stand_in_stats)
    by_caller = sandbox.calls_by_caller()
    row: dict[str, Any] = {"plugin": plugin, "n": n, "sleep_s": sleep_s, "repeat": repeat}
    row["runner"] = "stand-in" if stand_in else "real"
    row["kind"] = "faults" if faults else ""
    row["load_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    if "failed" in document:
        row["failed"] = document["failed"]
        return row
    client_caller, runner_caller = CALLERS[plugin]
    client_calls = group_calls(by_caller.get(client_caller, {}))
    runner_calls = group_calls(by_caller.get(runner_caller, {}))
    # Calls made during the idle window after the batch are reported apart.
    client_calls["DescribeTasks"] -= document.get("idle", {}).get("describe_tasks", 0)
    row["calls_total"] = {"client": client_calls, "runner": runner_calls}
    # Refused calls ("Rate exceeded" from the sandbox's AWS limits), whoever made them.
    throttled: collections.Counter[str] = collections.Counter()
    for calls in by_caller.values():
        throttled.update({op.removeprefix("throttled."): count for op, count in calls.items()
                          if op.startswith("throttled.")})  # fmt: skip
    row["throttled_total"] = sum(throttled.values())
    row["throttled_by_operation"] = dict(throttled)
    row["calls_per_task"] = {
        "client": {k: round(v / n, 3) for k, v in client_calls.items()},
        "runner": {k: round(v / n, 3) for k, v in runner_calls.items()},
    }
    tasks = document["tasks"]
    errors = [t.get("error") for t in tasks if "error" in t]
    row["errors"] = len(errors) + max(0, n - len(tasks))
    row["error_samples"] = sorted(set(errors))[:3]
    row["wall_s"] = round(document["wall_s"], 2)
    row["client_peak_rss_mib"] = round(document["client_rss"]["hwm_kib"] / 1024, 1)
    row["idle"] = document.get("idle", {})

    all_records = [r for r in sandbox.tasks() if _is_of(r, dispatch_id)]
    # The last record of a label is its last launch attempt (the agent keeps them in order).
    records = {_record_key(r): r for r in all_records}

    def record_for(index: int) -> dict[str, Any] | None:
        return records.get(f"{dispatch_id}/{index}") or records.get(
            f"func-{dispatch_id}-{index}.pkl"
        )

    exit_to_return, exit_to_seen, start_to_function, function_to_exit = [], [], [], []
    seen_to_collected, collected_to_return = [], []
    for task in tasks:
        record = record_for(task["index"])
        if record is None or "error" in task or not record.get("endedAt"):
            continue
        exit_to_return.append(task["returned"] - record["endedAt"])
        if "exit_seen" in task:
            exit_to_seen.append(task["exit_seen"] - record["endedAt"])
        if "collected" in task:
            seen_to_collected.append(task["collected"] - task["exit_seen"])
            collected_to_return.append(task["returned"] - task["collected"])
        timings = task.get("runner_timings") or {}
        if "function_started" in timings and "process_started" in timings:
            start_to_function.append(timings["function_started"] - timings["process_started"])
        if "function_ended" in timings:
            function_to_exit.append(record["endedAt"] - timings["function_ended"])
    row["exit_to_return_s"] = _summary(exit_to_return)
    row["exit_to_seen_s"] = _summary(exit_to_seen)
    row["seen_to_collected_s"] = _summary(seen_to_collected)
    row["collected_to_return_s"] = _summary(collected_to_return)
    row["runner_start_to_function_s"] = _summary(start_to_function)
    row["runner_function_end_to_exit_s"] = _summary(function_to_exit)

    provisioned = sorted(
        h["at"] for r in all_records for h in r["statusHistory"] if h["status"] == "PROVISIONING"
    )
    row["launch_phase_s"] = round(provisioned[-1] - provisioned[0], 2) if provisioned else None
    row["peak_live_tasks"] = _peak_live(records.values())
    cycles = document.get("poll_cycles")
    if cycles:
        row["poll_cycles"] = cycles
        row["describe_tasks_per_cycle"] = round(client_calls["DescribeTasks"] / cycles, 2)
        row["describe_tasks_cycle_bound"] = math.ceil(document.get("max_watched", 0) / 100)
    row["poll"] = document.get("poll", {})
    row["call_latency_s"] = document.get("call_latency_s", {})
    row["client_cpu_s"] = document.get("client_cpu_s")
    row["sandbox_cpu_s"] = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after}
    row["cost"] = _costs(row, document, by_caller, n)
    if faults:
        row["faults"] = _fault_figures(sandbox, document, all_records, picked, dispatch_id, client_calls)
    return row


def _is_of(record: dict[str, Any], dispatch_id: str) -> bool:
    """A task of this batch: ours are labelled ``<dispatch_id>/<node_id>``; the
    original's payload file is ``func-<dispatch_id>-<index>.pkl``."""
    if record.get("label"):
        return str(record["label"]).startswith(f"{dispatch_id}/")
    return record.get("env", {}).get("COVALENT_TASK_FUNC_FILENAME", "").startswith(f"func-{dispatch_id}-")


def _record_key(record: dict[str, Any]) -> str:
    return record.get("label") or record["env"].get("COVALENT_TASK_FUNC_FILENAME", "")


def _costs(row: dict[str, Any], document: dict[str, Any], by_caller: dict[str, Any], n: int) -> dict[str, Any]:
    """What each side cost, per unit, so a slow figure can be traced to its side."""
    # Every request the sandbox answered once (throttled.* and fault.* count it twice).
    requests = sum(
        count
        for calls in by_caller.values()
        for op, count in calls.items()
        if not op.startswith(("throttled.", "fault."))
    )
    sandbox = row["sandbox_cpu_s"]
    batch_cpu_s = document.get("batch_cpu_s")
    return {
        "client_cpu_ms_per_task": round(batch_cpu_s * 1000 / n, 2) if batch_cpu_s is not None else None,
        "sandbox_requests": requests,
        "sandbox_cpu_ms_per_request": round(sandbox["server_and_agent"] * 1000 / requests, 2) if requests else None,
        "stand_in_cpu_ms_per_task": round(sandbox["stand_in"] * 1000 / n, 2) if sandbox["stand_in"] else None,
        "task_process_cpu_ms_per_task": round(sandbox["tasks"] * 1000 / n, 1) if sandbox["tasks"] else None,
    }


def _fault_figures(
    sandbox: Any,
    document: dict[str, Any],
    records: list[dict[str, Any]],
    picked: dict[str, list[int]],
    dispatch_id: str,
    client_calls: dict[str, int],
) -> dict[str, Any]:
    from covalent_ecs_executor.ecs import RELAUNCH_BACKOFF_S  # noqa: PLC0415 - heavy import

    figures = fault_row.outcome(records, picked, sandbox.faults(), dispatch_id)
    sandbox.clear_faults()  # used up; no later request need look at them
    figures["relaunches_said_by_executor"] = document.get("relaunches")
    figures.update(fault_row.launch_target_s(client_calls["RunTask"], RELAUNCH_BACKOFF_S))
    return figures


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(percentile(values, 95) or 0.0, 3),
        "max": round(max(values), 3),
        "count": len(values),
    }


def _peak_live(records: Any) -> int:
    events = []
    for r in records:
        if r.get("startedAt") and r.get("endedAt"):
            events += [(r["startedAt"], 1), (r["endedAt"], -1)]
    live = peak = 0
    for _, delta in sorted(events):
        live += delta
        peak = max(peak, live)
    return peak


def big_payload(sandbox: Any, plugin: str, *, receive: bool, size: int) -> dict[str, Any]:
    extra = ["--payload-bytes", str(size)] + (["--receive"] if receive else [])
    document, sampler = run_driver(plugin, sandbox.endpoint_url, extra, timeout_s=900, sample=True)
    row: dict[str, Any] = {"plugin": plugin, "direction": "receive" if receive else "send", "bytes": size}
    if "failed" in document:
        row["failed"] = document["failed"]
        return row
    rss = document["rss"]
    row["seconds"] = round(document["seconds"], 1)
    row["baseline_mib"] = round(rss["baseline_kib"] / 1024, 1)
    row["peak_mib"] = round(rss["peak_kib"] / 1024, 1)
    row["growth_mib"] = round(rss["growth_kib"] / 1024, 1)
    row["sampled_max_rss_mib"] = round(sampler.max_rss_kib / 1024, 1) if sampler else None
    row["peak_reset"] = document.get("peak_reset")
    return row


# ------------------------------------------------------------------------ main
def _sizes(text: str) -> list[int]:
    """``--n``: comma-separated task counts, each at least 1."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 10,100, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every N must be at least 1, got {text!r}")
    return sizes


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive(text: str) -> int:
    return _whole(text, 1)


def _number(text: str, *, above_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
        least = "above 0" if above_zero else "at least 0"
        raise argparse.ArgumentTypeError(f"must be {least}, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """``--sleep``, ``--idle``: a duration, 0 or more."""
    return _number(text, above_zero=False)


def _gib(text: str) -> float:
    """``--payload-gib``: a size above 0."""
    return _number(text, above_zero=True)


def _count(text: str) -> int:
    return _whole(text, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 100, once, no 1 GiB runs")
    parser.add_argument("--n", type=_sizes, default=None, help="comma-separated N (default 1,10,100,1000)")
    parser.add_argument("--repeat", type=_positive, default=None,
                        help="runs of each batch, reported as median and min-max (default 3; 1 with --quick)")
    parser.add_argument("--real-runner-max-n", type=_count, default=100,
                        help="largest N whose tasks run the real runner; larger N run the "
                        "scale mode's stand-in container (default 100)")
    parser.add_argument("--original-max-n", type=_count, default=100,
                        help="largest N run through the original plugin (default 100; see docs/benchmarks.md)")
    parser.add_argument("--original-repeat", type=_positive, default=1,
                        help="runs of the original's batches (default 1: each takes ~10x ours)")
    parser.add_argument("--no-original", action="store_true", help="only this project's executor")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the run without the benchmark's fork server")
    parser.add_argument("--no-faults", action="store_true", help="skip the faults row (launches failing for causes that pass)")
    parser.add_argument("--faults-n", type=_positive, default=None,
                        help="N of the faults row (default: the largest N)")
    parser.add_argument("--payload-gib", type=_gib, default=1.0, help="size of the big-payload runs")
    parser.add_argument("--sleep", type=_seconds, default=0.5, help="seconds each task sleeps")
    parser.add_argument("--idle", type=_seconds, default=IDLE_WINDOW_S,
                        help=f"seconds each driver stays idle after its batch, counting calls (default {IDLE_WINDOW_S:g})")
    parser.add_argument("--no-aws-limits", action="store_true",
                        help="let the sandbox accept calls faster than an AWS account would")
    parser.add_argument("--out", default=RESULTS_DIR, help="folder for latest[-quick].json/.md")
    args = parser.parse_args(argv)  # fmt: skip

    sizes = args.n if args.n else (
        [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    )  # fmt: skip
    repeat = args.repeat or (1 if args.quick else 3)
    def repeats_of(n: int) -> int:  # REPEAT_FACTORS
        factor = next((f for max_n, f in REPEAT_FACTORS if n <= max_n), 1)
        return repeat if args.quick else repeat * factor

    faults_n = None if args.no_faults else (args.faults_n or max(sizes))
    with_original = not args.no_original and os.path.exists(ORIGINAL_PYTHON)
    from covalent_ecs_executor.sandbox import SandboxProcess

    limits = not args.no_aws_limits
    stats_dir = tempfile.mkdtemp(prefix="covalent-ecs-bench-")
    stand_in_stats = os.path.join(stats_dir, "stand-in.json")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")]))
    env[STATS_ENV] = stand_in_stats
    options: dict[str, Any] = {
        "starters": [STAND_IN, FORK_SERVER, ORIGINAL_IMAGE_CMD],
        "aws_limits": limits,
        "env": env,
    }
    report: dict[str, Any] = {
        "conditions": conditions(),
        "aws_limits_enforced": limits,
        "fork_server": True,
        "repeat": repeat,
        "repeat_up_to_n": {str(max_n): repeats_of(max_n) for max_n, _ in REPEAT_FACTORS},
        "original_repeat": min(repeat, args.original_repeat),
        "real_runner_max_n": args.real_runner_max_n,
        "original": {
            "installed": os.path.exists(ORIGINAL_PYTHON),
            "package": _original_version() if with_original else None,
            "max_n": args.original_max_n if with_original else 0,
        },
        "batches": [],
        "payload": [],
    }
    started = time.monotonic()
    _say(f"sandbox: fork server on; AWS limits {'ENFORCED' if limits else 'NOT enforced (--no-aws-limits)'}; "
         f"{repeat} run(s) of each batch "
         f"({', '.join(f'{r} up to N={n}' for n, r in report['repeat_up_to_n'].items())}); "
         f"stand-in container above N={args.real_runner_max_n}")  # fmt: skip

    def run(sandbox: Any, plugin: str, n: int, rep: int, **kwargs: Any) -> None:
        what = "faults row" if kwargs.get("faults") else ("stand-in" if kwargs.get("stand_in") else "")
        _say(f"N={n} {plugin} {what} (run {rep + 1}) ...")
        timeout = 120 + n * (1.0 if plugin == "ours" else 3.0)
        row = batch(sandbox, plugin, n, sleep_s=args.sleep, timeout_s=timeout,
                    stand_in_stats=stand_in_stats, repeat=rep, idle_s=args.idle, **kwargs)  # fmt: skip
        report["batches"].append(row)
        _say(f"  {_brief(row)}")

    try:
        with SandboxProcess(**options) as sandbox:
            for rep in range(max(repeats_of(n) for n in sizes)):
                for n in sizes:
                    if rep >= repeats_of(n):
                        continue
                    stand_in = n > args.real_runner_max_n
                    run(sandbox, "ours", n, rep, stand_in=stand_in)
                    if with_original and n <= args.original_max_n and rep < args.original_repeat:
                        run(sandbox, "original", n, rep)
                if faults_n and rep < repeat:
                    run(sandbox, "ours", faults_n, rep, stand_in=True, faults=True)
            if not args.quick:
                size = int(args.payload_gib * GIB)
                for plugin in ["ours"] + (["original"] if with_original else []):
                    for receive in (False, True):
                        what = "result" if receive else "argument"
                        _say(f"{args.payload_gib:g} GiB {what} ({plugin}) ...")
                        row = big_payload(sandbox, plugin, receive=receive, size=size)
                        report["payload"].append(row)
                        _say(f"  {row}")
        if not args.no_cold:
            # The same N=100 batch with every runner a cold interpreter (no fork server):
            # the fork server's effect, and the fairer comparison with the original (whose
            # runner always starts cold).
            n = min(100, max(sizes))
            cold = {**options, "starters": [COLD_RUNNER, ORIGINAL_IMAGE_CMD]}
            with SandboxProcess(**cold) as sandbox:
                for rep in range(repeat):
                    _say(f"N={n} ours, cold runner starts (no fork server) (run {rep + 1} of {repeat}) ...")
                    row = batch(sandbox, "ours", n, sleep_s=args.sleep, timeout_s=120 + n * 3.0,
                                repeat=rep, idle_s=args.idle)  # fmt: skip
                    row["cold_starts"], row["kind"] = True, "cold"
                    report["batches"].append(row)
                    _say(f"  {_brief(row)}")
    finally:
        shutil.rmtree(stats_dir, ignore_errors=True)
    report["bench_seconds"] = round(time.monotonic() - started, 1)
    report["conditions"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    from report import render_markdown, summarise  # noqa: PLC0415 - sibling module

    report["summary"] = summarise(report)
    markdown = render_markdown(report)
    os.makedirs(args.out, exist_ok=True)
    # A quick check must not overwrite the figures of the last full run.
    stem = os.path.join(args.out, "latest-quick" if args.quick else "latest")
    with open(f"{stem}.json", "w") as f:
        json.dump(report, f, indent=1)
    with open(f"{stem}.md", "w") as f:
        f.write(markdown)
    print(markdown)
    print(f"(written to {os.path.relpath(stem)}.json and .md)")
    return 0


def _original_version() -> str | None:
    out = subprocess.run(
        [ORIGINAL_PYTHON, "-c",
         "import importlib.metadata as m; print(m.version('covalent-ecs-plugin'), "
         "m.version('boto3'), m.version('covalent'))"],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        return None
    plugin, boto3, covalent = out.stdout.split()
    return f"covalent-ecs-plugin {plugin} (boto3 {boto3}, covalent {covalent})"


def _brief(row: dict[str, Any]) -> str:
    if "failed" in row:
        return f"FAILED: {row['failed'][:300]}"
    cost = row.get("cost", {})
    describe = row.get("call_latency_s", {}).get("DescribeTasks", {})
    brief = (
        f"errors={row['errors']} wall={row['wall_s']}s launch={row.get('launch_phase_s')}s "
        f"exit->seen p95={row['exit_to_seen_s'].get('p95')}s exit->return p95="
        f"{row['exit_to_return_s'].get('p95')}s client={cost.get('client_cpu_ms_per_task')} ms/task "
        f"sandbox={cost.get('sandbox_cpu_ms_per_request')} ms/request DescribeTasks p95="
        f"{describe.get('p95')}s throttled={row.get('throttled_by_operation') or 0} load={row['load_1min']}"
    )
    if "faults" in row:
        brief += f" faults={row['faults']}"
    return brief


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
