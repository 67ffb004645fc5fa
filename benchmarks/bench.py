"""Benchmarks: this executor and the original covalent-ecs-plugin, side by side.

    python benchmarks/bench.py               # N = 1, 10, 100, 1000 and the 1 GiB runs
    python benchmarks/bench.py --quick       # N <= 100, no 1 GiB (a fast check)

One sandbox (a ``SandboxProcess`` enforcing an AWS account's API and Fargate launch
limits unless ``--no-aws-limits``) serves every run. For each N, each plugin's driver (drive_ours.py in this venv,
drive_original.py in benchmarks/.venv-original) runs N concurrent tasks as a separate
client process; the sandbox counts the API calls by caller and records each task's
container start and exit. The table is printed and written to
``benchmarks/results/latest.{json,md}`` (``latest-quick.*`` with ``--quick``). Not a
test: nothing is asserted; targets from issue 6 are shown met or missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from bench_starters import ORIGINAL_PYTHON

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
# The sandbox's process starters for the runs (bench_starters.py), loaded by the
# sandbox's process from benchmarks/ (on its PYTHONPATH).
FORK_SERVER = "bench_starters:ForkServerStarter"
ORIGINAL_IMAGE_CMD = "bench_starters:OriginalImageStarter"
GIB = 1024**3
IDLE_WINDOW_S = 3.0

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


def sandbox_cpu_s(sandbox: Any) -> dict[str, float]:
    """CPU seconds so far of the sandbox's server+agent process, and of its task
    processes (reaped children of the sandbox and of multiprocessing's fork server)."""
    pid = sandbox.health()["pid"]
    own, children = _proc_cpu_s(pid)
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
    return {"server_and_agent": own, "tasks": children}


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


def batch(sandbox: Any, plugin: str, n: int, *, sleep_s: float, timeout_s: float) -> dict[str, Any]:
    """N concurrent tasks through one plugin; the row of figures for the table."""
    dispatch_id = f"bench-{plugin}-{n}-{int(time.time())}"
    sandbox.reset_calls()
    cpu_before = sandbox_cpu_s(sandbox)
    document, _ = run_driver(
        plugin,
        sandbox.endpoint_url,
        ["--n", str(n), "--sleep", str(sleep_s), "--idle", str(IDLE_WINDOW_S),
         "--dispatch-id", dispatch_id],
        timeout_s=timeout_s,
    )  # fmt: skip
    cpu_after = sandbox_cpu_s(sandbox)
    by_caller = sandbox.calls_by_caller()
    row: dict[str, Any] = {"plugin": plugin, "n": n, "sleep_s": sleep_s}
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
    row["throttled_total"] = sum(
        count
        for calls in by_caller.values()
        for op, count in calls.items()
        if op.startswith("throttled.")
    )
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

    records = {
        r["env"].get("COVALENT_ECS_TASK") or r["env"].get("COVALENT_TASK_FUNC_FILENAME", ""): r
        for r in sandbox.tasks()
        if dispatch_id in json.dumps(r.get("env", {}))
    }

    def record_for(index: int) -> dict[str, Any] | None:
        return records.get(f"{dispatch_id}/{index}") or records.get(
            f"func-{dispatch_id}-{index}.pkl"
        )

    exit_to_return, exit_to_seen, start_to_function, function_to_exit = [], [], [], []
    for task in tasks:
        record = record_for(task["index"])
        if record is None or "error" in task or not record.get("endedAt"):
            continue
        exit_to_return.append(task["returned"] - record["endedAt"])
        if "exit_seen" in task:
            exit_to_seen.append(task["exit_seen"] - record["endedAt"])
        timings = task.get("runner_timings") or {}
        if "function_started" in timings and "process_started" in timings:
            start_to_function.append(timings["function_started"] - timings["process_started"])
        if "function_ended" in timings:
            function_to_exit.append(record["endedAt"] - timings["function_ended"])
    row["exit_to_return_s"] = _summary(exit_to_return)
    row["exit_to_seen_s"] = _summary(exit_to_seen)
    row["runner_start_to_function_s"] = _summary(start_to_function)
    row["runner_function_end_to_exit_s"] = _summary(function_to_exit)

    provisioned = sorted(
        h["at"] for r in records.values() for h in r["statusHistory"] if h["status"] == "PROVISIONING"
    )
    row["launch_phase_s"] = round(provisioned[-1] - provisioned[0], 2) if provisioned else None
    row["peak_live_tasks"] = _peak_live(records.values())
    cycles = document.get("poll_cycles")
    if cycles:
        row["poll_cycles"] = cycles
        row["describe_tasks_per_cycle"] = round(client_calls["DescribeTasks"] / cycles, 2)
        row["describe_tasks_cycle_bound"] = math.ceil(document.get("max_watched", 0) / 100)
    row["client_cpu_s"] = document.get("client_cpu_s")
    row["sandbox_cpu_s"] = {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_after}
    return row


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
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 100 and no 1 GiB runs")
    parser.add_argument("--n", default=None, help="comma-separated N (default 1,10,100,1000)")
    parser.add_argument("--original-max-n", type=int, default=100,
                        help="largest N run through the original plugin (default 100; see docs/benchmarks.md)")
    parser.add_argument("--no-original", action="store_true", help="only this project's executor")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the run without the benchmark's fork server")
    parser.add_argument("--payload-gib", type=float, default=1.0, help="size of the big-payload runs")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each task sleeps")
    parser.add_argument("--no-aws-limits", action="store_true",
                        help="let the sandbox accept calls faster than an AWS account would")
    parser.add_argument("--out", default=RESULTS_DIR, help="folder for latest[-quick].json/.md")
    args = parser.parse_args(argv)  # fmt: skip

    sizes = [int(x) for x in args.n.split(",")] if args.n else (
        [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    )  # fmt: skip
    with_original = not args.no_original and os.path.exists(ORIGINAL_PYTHON)
    from covalent_ecs_executor.sandbox import SandboxProcess

    limits = not args.no_aws_limits
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")]))
    options: dict[str, Any] = {
        "starters": [FORK_SERVER, ORIGINAL_IMAGE_CMD],
        "aws_limits": limits,
        "env": env,
    }
    report: dict[str, Any] = {
        "conditions": conditions(),
        "aws_limits_enforced": limits,
        "fork_server": True,
        "original": {
            "installed": os.path.exists(ORIGINAL_PYTHON),
            "package": _original_version() if with_original else None,
            "max_n": args.original_max_n if with_original else 0,
        },
        "batches": [],
        "payload": [],
    }
    started = time.monotonic()
    _say(f"sandbox: fork server on; AWS limits {'ENFORCED' if limits else 'NOT enforced (--no-aws-limits)'}")
    with SandboxProcess(**options) as sandbox:
        for n in sizes:
            plugins = ["ours"] + (["original"] if with_original and n <= args.original_max_n else [])
            for plugin in plugins:
                _say(f"N={n} {plugin} ...")
                timeout = 120 + n * (1.0 if plugin == "ours" else 3.0)
                row = batch(sandbox, plugin, n, sleep_s=args.sleep, timeout_s=timeout)
                report["batches"].append(row)
                _say(f"  {_brief(row)}")
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
        cold = {**options, "starters": [ORIGINAL_IMAGE_CMD]}
        _say(f"N={n} ours, cold runner starts (no fork server) ...")
        with SandboxProcess(**cold) as sandbox:
            row = batch(sandbox, "ours", n, sleep_s=args.sleep, timeout_s=120 + n * 3.0)
        row["cold_starts"] = True
        report["batches"].append(row)
        _say(f"  {_brief(row)}")
    report["bench_seconds"] = round(time.monotonic() - started, 1)

    from report import render_markdown  # noqa: PLC0415 - sibling module

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
    return (
        f"errors={row['errors']} wall={row['wall_s']}s exit->return p95="
        f"{row['exit_to_return_s'].get('p95')}s per task: {row['calls_per_task']['client']}"
    )


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
