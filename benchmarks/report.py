"""Render a benchmark report (bench.py's JSON) as Markdown: targets, side by side.

Each batch may have run several times (``--repeat``): the runs of one plugin, N and
kind (plain, cold runner starts, faults row) are folded into one figure per metric,
the median with min-max (``summarise``), and targets are judged on the medians
(errors, throttling and duplicate executions on the worst run).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench import OPERATIONS

GIB = 1024**3
# The scale targets (docs/benchmarks.md).
EXIT_TO_RETURN_P95_S = 1.0
IDLE_DESCRIBE_PER_S = 1.0
# Payload PUT, record PUT (the durable task record, records.py: one per run, by design),
# result GET, DeleteObjects (docs/benchmarks.md, "What the figures mean").
CLIENT_S3_PER_TASK = 4
RSS_GROWTH_MIB = 64
# 1000 launches against a 100-burst, 20/s bucket: (1000 - 100) / 20 = 45 s, +10%.
LAUNCH_PHASE_S = 45 * 1.1
# Client CPU per task above this is to be profiled and reduced.
CLIENT_CPU_MS_PER_TASK = 20.0
# The launch target for the faults row is stated for N = 1000: far beyond the
# launch burst, where relaunches queue behind the pacer rather than wait to be seen.
FAULTS_TARGET_MIN_N = 1000

RUN_TASK_CALLS = "client RunTask calls per task (botocore retries not counted)"
# Metrics judged on the worst run, not the median.
WORST_OF = ("errors", "throttled calls (all callers)", "duplicate executions of user code")
KINDS = {"": "", "cold": "cold runner starts", "faults": "faults row"}


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, dict):  # a spread: median (min–max)
        if value["min"] == value["max"]:
            return _fmt(value["median"], digits)
        return f"{_fmt(value['median'], digits)} ({_fmt(value['min'], digits)}–{_fmt(value['max'], digits)})"
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 10:
            return str(int(value))
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _median(value: Any) -> Any:
    return value["median"] if isinstance(value, dict) else value


def _ratio(ours: Any, original: Any) -> str:
    ours, original = _median(ours), _median(original)
    if not isinstance(ours, (int, float)) or not isinstance(original, (int, float)):
        return ""
    if ours == 0:
        return "∞" if original else "="
    return f"{original / ours:.1f}×"


def _s3(calls: dict[str, float]) -> float:
    return sum(calls.get(k, 0) for k in ("S3 PUT", "S3 GET", "S3 HEAD", "S3 DELETE"))


def _rows(row: dict[str, Any] | None) -> dict[str, Any]:
    """The metrics of one run of a batch, by label."""
    if row is None or "failed" in row:
        return {}
    client = row["calls_per_task"]["client"]
    runner = row["calls_per_task"]["runner"]
    idle = row.get("idle") or {}
    out: dict[str, Any] = {
        "errors": row["errors"],
        "wall time per batch (s)": row["wall_s"],
        "container exit → executor returns, p50 (s)": row["exit_to_return_s"].get("p50"),
        "container exit → executor returns, p95 (s)": row["exit_to_return_s"].get("p95"),
        "container exit → exit seen by poller, p50 (s)": row["exit_to_seen_s"].get("p50"),
        "container exit → exit seen by poller, p95 (s)": row["exit_to_seen_s"].get("p95"),
    }
    # seen -> returns, in two parts: fetch + verify the result; then clean-up and record.
    for what, key in (("exit seen → result collected", "seen_to_collected_s"),
                      ("result collected → executor returns", "collected_to_return_s")):  # fmt: skip
        for q in ("p50", "p95"):
            out[f"{what}, {q} (s)"] = (row.get(key) or {}).get(q)
    for name, _ in OPERATIONS:
        out[f"client {name} per task"] = client.get(name, 0)
    # The sandbox counts HTTP requests, botocore's retries of a request included; the
    # executor's own RunTask calls are what its boto3 client was asked to make.
    made = (row.get("call_latency_s") or {}).get("RunTask", {}).get("count")
    out[RUN_TASK_CALLS] = round(made / row["n"], 3) if made is not None else None
    out["client S3 requests per task"] = round(_s3(client), 3)
    out["runner S3 requests per task"] = round(_s3(runner), 3)
    out["throttled calls (all callers)"] = row.get("throttled_total", 0)
    for what, key in (("process start → function start", "runner_start_to_function_s"),
                      ("function end → container exit", "runner_function_end_to_exit_s")):  # fmt: skip
        for q in ("p50", "p95"):
            out[f"runner: {what}, {q} (s)"] = row[key].get(q)
    out["launch phase: first → last RunTask accepted (s)"] = row.get("launch_phase_s")
    out["peak live tasks"] = row.get("peak_live_tasks")
    out["DescribeTasks per poll cycle"] = row.get("describe_tasks_per_cycle")
    out["client peak RSS (MiB)"] = row.get("client_peak_rss_mib")
    out["client CPU, whole process (s)"] = row.get("client_cpu_s")
    cpu = row.get("sandbox_cpu_s") or {}
    out["sandbox server+agent CPU (s)"] = cpu.get("server_and_agent")
    out["task processes CPU (s)"] = cpu.get("tasks") or None
    out["stand-in containers CPU (s)"] = cpu.get("stand_in") or None
    out.update(_cost_rows(row))
    if idle.get("seconds"):
        out["idle DescribeTasks per s"] = round(idle["describe_tasks"] / idle["seconds"], 2)
    faults = row.get("faults")
    if faults:
        out["tasks started (agent records)"] = faults["tasks_started"]
        out["containers that never ran"] = faults["never_ran"]
        out["relaunches (said on the nodes' stderr)"] = faults["relaunches_said_by_executor"]
        out["scripted faults applied"] = faults["faults_applied"]
        out["duplicate executions of user code"] = faults["duplicate_executions"]
        out["launch attempts (client RunTask calls)"] = faults["launch_attempts"]
        out["launch floor for those attempts (s)"] = faults["floor_s"]
        out["launch phase target: floor × 1.1 + backoff (s)"] = faults["target_s"]
    return out


def _cost_rows(row: dict[str, Any]) -> dict[str, Any]:
    """Where the time and CPU went, per side: client, sandbox, containers."""
    cost = row.get("cost") or {}
    latency = row.get("call_latency_s") or {}
    poll = row.get("poll") or {}
    load = row.get("load_1min") or {}
    out: dict[str, Any] = {
        "client CPU per task, batch only (ms)": cost.get("client_cpu_ms_per_task"),
        "sandbox CPU per request, server+agent (ms)": cost.get("sandbox_cpu_ms_per_request"),
        "sandbox requests answered": cost.get("sandbox_requests"),
        "stand-in container CPU per task (ms)": cost.get("stand_in_cpu_ms_per_task"),
        "task process CPU per task (ms)": cost.get("task_process_cpu_ms_per_task"),
    }
    for operation in ("DescribeTasks", "RunTask", "PutObject", "GetObject"):
        for q in ("p50", "p95"):
            out[f"{operation} latency at the client, {q} (s)"] = latency.get(operation, {}).get(q)
    for q in ("p50", "p95"):
        out[f"poll cycle period (start to start), {q} (s)"] = poll.get("period_s", {}).get(q)
    out["poll cycle duration, p95 (s)"] = poll.get("duration_s", {}).get("p95")
    out["load average (1 min) before / after the batch"] = (
        f"{load['before']:g} / {load['after']:g}" if load else None
    )
    return out


# ------------------------------------------------------------------ repeated runs
def _kind(row: dict[str, Any]) -> str:
    return row.get("kind") or ("cold" if row.get("cold_starts") else "")


def _spread(values: list[Any], label: str) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        present = [v for v in values if v is not None]
        return present[0] if len(present) == 1 else ("; ".join(map(str, present)) or None)
    if len(numbers) == 1:
        return numbers[0]
    middle = max(numbers) if label in WORST_OF else statistics.median(numbers)
    return {"median": round(middle, 4), "min": min(numbers), "max": max(numbers), "runs": len(numbers)}


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (plugin, N, kind): its runs folded into median (min–max) per metric."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in report["batches"]:
        groups.setdefault((row["plugin"], row["n"], _kind(row)), []).append(row)
    summary = []
    for (plugin, n, kind), rows in groups.items():
        per_run = [_rows(r) for r in rows]
        labels = [label for run in per_run for label in run]
        metrics = {label: _spread([run.get(label) for run in per_run], label) for label in dict.fromkeys(labels)}
        summary.append({
            "plugin": plugin, "n": n, "kind": kind, "runs": len(rows),
            "runner": rows[0].get("runner", "real"),
            "failed": [r["failed"][-600:] for r in rows if "failed" in r],
            "error_samples": sorted({e for r in rows for e in r.get("error_samples", [])})[:3],
            "metrics": metrics,
        })  # fmt: skip
    return summary


def _group(summary: list[dict[str, Any]], plugin: str, n: int, kind: str = "") -> dict[str, Any] | None:
    return next((g for g in summary if (g["plugin"], g["n"], g["kind"]) == (plugin, n, kind)), None)


def _value(group: dict[str, Any] | None, label: str) -> Any:
    return (group or {}).get("metrics", {}).get(label)


# ------------------------------------------------------------------------ targets
def _targets(report: dict[str, Any], summary: list[dict[str, Any]]) -> list[str]:
    ours = [g for g in summary if g["plugin"] == "ours" and g["kind"] == "" and g["metrics"]]
    if not ours:
        return ["No run of this executor completed."]
    biggest = max(ours, key=lambda g: g["n"])
    n = biggest["n"]
    limits = report["aws_limits_enforced"]
    lines = [
        "Judged on the median of the runs (errors, throttling and duplicates: on the worst run).",
        "",
        "| target | measured (this executor) | met |",
        "|---|---|---|",
    ]

    def add(target: str, measured: Any, ok: bool | None) -> None:
        shown = measured if isinstance(measured, str) else _fmt(measured)
        lines.append(f"| {target} | {shown} | {'yes' if ok else ('n/a' if ok is None else '**no**')} |")

    def at_most(value: Any, bound: float) -> bool:
        middle = _median(value)
        return middle is not None and middle <= bound

    run_task, requests = _value(biggest, RUN_TASK_CALLS), _value(biggest, "client RunTask per task")
    add(
        f"1 RunTask per task (N={n})",
        f"{_fmt(run_task, 3)} by the executor ({_fmt(requests, 3)} HTTP requests, botocore's retries included)",
        _median(run_task) == 1,
    )
    registered = max(r["calls_total"]["client"]["RegisterTaskDefinition"] for r in report["batches"]
                     if r["plugin"] == "ours" and "failed" not in r)  # fmt: skip
    add("0 RegisterTaskDefinition after the first", f"≤ {registered} per batch", registered <= 1)
    worst_s3 = max(_median(_value(g, "client S3 requests per task")) or 0 for g in ours)
    add(f"≤ {CLIENT_S3_PER_TASK} client S3 requests per task (payload PUT, record PUT, result GET, "
        "DeleteObjects)", _fmt(worst_s3), worst_s3 <= CLIENT_S3_PER_TASK)  # fmt: skip
    per_cycle = [(_value(g, "DescribeTasks per poll cycle"), g) for g in ours]
    bounds = {
        g["n"]: max((r.get("describe_tasks_cycle_bound") or 0) for r in report["batches"]
                    if r["plugin"] == "ours" and r["n"] == g["n"] and _kind(r) == "")
        for g in ours
    }  # fmt: skip
    per_cycle = [(v, g) for v, g in per_cycle if v is not None]
    if per_cycle:
        add(
            "DescribeTasks ≤ ⌈live tasks / 100⌉ per poll cycle",
            ", ".join(f"{_fmt(v)} (bound {bounds[g['n']]})" for v, g in per_cycle),
            all(at_most(v, bounds[g["n"]]) for v, g in per_cycle),
        )
    for g in sorted(ours, key=lambda g: g["n"]):
        seen = _value(g, "container exit → exit seen by poller, p95 (s)")
        returned = _value(g, "container exit → executor returns, p95 (s)")
        add(
            f"N={g['n']}{_runner_note(g)}: completion detected ≤ {EXIT_TO_RETURN_P95_S:g} s (p95) after container exit",
            f"p95 {_fmt(seen)} s (executor returned: p95 {_fmt(returned)} s)",
            at_most(seen, EXIT_TO_RETURN_P95_S),
        )
    idle = [_median(_value(g, "idle DescribeTasks per s")) for g in ours]
    idle = [v for v in idle if v is not None]
    if idle:
        add(f"idle executor ≤ {IDLE_DESCRIBE_PER_S:g} DescribeTasks/s", f"{_fmt(max(idle))} /s", max(idle) <= IDLE_DESCRIBE_PER_S)
    if n >= 1000:
        errors, throttled = _value(biggest, "errors"), _value(biggest, "throttled calls (all callers)")
        add(
            f"N={n}: zero errors, zero throttled{'' if limits else ' (AWS limits NOT enforced)'}",
            f"{_fmt(errors)} errors, {_fmt(throttled)} throttled",
            _median(errors) == 0 and _median(throttled) == 0,
        )
        launch = _value(biggest, "launch phase: first → last RunTask accepted (s)")
        add(
            f"N={n}: launch phase ≤ {LAUNCH_PHASE_S:.1f} s under the 100 burst / 20 per s launch bucket",
            f"{_fmt(launch)} s" + ("" if limits else " (limits not enforced: not comparable)"),
            at_most(launch, LAUNCH_PHASE_S) if limits else None,
        )
    cpu = _value(biggest, "client CPU per task, batch only (ms)")
    add(f"N={n}: client CPU per task ≤ ~{CLIENT_CPU_MS_PER_TASK:g} ms", f"{_fmt(cpu)} ms", at_most(cpu, CLIENT_CPU_MS_PER_TASK))
    for g in summary:
        if g["plugin"] == "ours" and g["kind"] == "faults":
            lines += _fault_targets(g, limits)
    for row in report.get("payload", []):
        if row["plugin"] != "ours":
            continue
        what = f"{row['bytes'] / GIB:g} GiB {'argument' if row['direction'] == 'send' else 'result'}"
        if "failed" in row:
            add(f"{what}: client RSS growth ≤ {RSS_GROWTH_MIB} MiB", "failed: " + row["failed"][:120], False)
            continue
        add(f"{what}: client RSS growth ≤ {RSS_GROWTH_MIB} MiB", f"{_fmt(row['growth_mib'])} MiB", row["growth_mib"] <= RSS_GROWTH_MIB)
    return lines


def _fault_targets(group: dict[str, Any], limits: bool) -> list[str]:
    n = group["n"]
    errors = _value(group, "errors")
    duplicates = _value(group, "duplicate executions of user code")
    launch = _value(group, "launch phase: first → last RunTask accepted (s)")
    target = _value(group, "launch phase target: floor × 1.1 + backoff (s)")
    relaunches = _value(group, "relaunches (said on the nodes' stderr)")
    scripted = _value(group, "scripted faults applied")
    rows = [
        (f"faults row N={n}: all COMPLETED, relaunches counted", f"{_fmt(errors)} errors; {_fmt(relaunches)} relaunches for {_fmt(scripted)} scripted faults",
         _median(errors) == 0 and _median(relaunches) == _median(scripted)),
        (f"faults row N={n}: zero duplicate executions of user code", _fmt(duplicates), _median(duplicates) == 0),
        (f"faults row N={n}: launch phase ≤ floor of its launch attempts × 1.1 + relaunch backoff",
         f"{_fmt(launch)} s (target {_fmt(target)} s)"
         + ("" if n >= FAULTS_TARGET_MIN_N else f"; n/a below N={FAULTS_TARGET_MIN_N}: the floor is "
            "within the burst, so the phase is the time to see a failed start plus the backoff"),
         (_median(launch) is not None and _median(launch) <= (_median(target) or 0))
         if limits and n >= FAULTS_TARGET_MIN_N else None),
    ]  # fmt: skip
    return [f"| {t} | {m} | {'yes' if ok else ('n/a' if ok is None else '**no**')} |" for t, m, ok in rows]


def _runner_note(group: dict[str, Any]) -> str:
    return " (stand-in)" if group.get("runner") == "stand-in" else ""


# ----------------------------------------------------------------------- sections
COST_LABELS = (
    "client CPU per task, batch only (ms)",
    "sandbox CPU per request, server+agent (ms)",
    "stand-in container CPU per task (ms)",
    "task process CPU per task (ms)",
    "DescribeTasks latency at the client, p50 (s)",
    "DescribeTasks latency at the client, p95 (s)",
    "RunTask latency at the client, p95 (s)",
    "poll cycle period (start to start), p50 (s)",
    "poll cycle period (start to start), p95 (s)",
    "load average (1 min) before / after the batch",
)


def _costs(summary: list[dict[str, Any]]) -> list[str]:
    """Each side's cost per batch of this executor, so a slow figure can be traced."""
    ours = [g for g in summary if g["plugin"] == "ours" and g["metrics"]]
    if not ours:
        return []
    names = [f"N={g['n']}{_runner_note(g)}{' ' + KINDS[g['kind']] if g['kind'] else ''}" for g in ours]
    out = [
        "## Where the time and CPU go (this executor)",
        "",
        "Client: the driver process during the batch (imports excluded). Sandbox: its "
        "process's CPU (API server and agent; the stand-in containers run in a process of "
        "their own), per request it answered (every caller). Latencies: each call as the executor's boto3 client saw it, retries "
        "included. Poll period: the poller's `poll_cycle` events, start to start.",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label in COST_LABELS:
        out.append(f"| {label} | " + " | ".join(_fmt(_value(g, label), 3) for g in ours) + " |")
    out.append("")
    return out


def _repeat_note(report: dict[str, Any]) -> str:
    more = {n: r for n, r in (report.get("repeat_up_to_n") or {}).items() if r != report.get("repeat")}
    if not more:
        return ""
    times = ", ".join(f"{r} times up to N={n}" for n, r in more.items())
    return (f" ({times}: up to N=10 a batch has ten exits or fewer to sample the poll "
            "cycle's phase with; at N=100 one batch is one draw of the runners' exit burst)")


def render_markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    original = report["original"]
    summary = report.get("summary") or summarise(report)
    repeat = report.get("repeat", 1)
    out = [
        "# covalent-ecs-executor benchmarks",
        "",
        f"Run {c['date_utc']} UTC on {c['cpus']} CPUs, {c['memory_mib']} MiB RAM, Python "
        f"{c['python']}; load average at start {c['load_avg_at_start']}, at end "
        f"{c.get('load_avg_at_end', '–')} (machine shared with other jobs: timings are noisy). "
        f"Took {report.get('bench_seconds')} s.",
        "",
        f"- Each batch of this executor ran {repeat} time(s){_repeat_note(report)}, the original's "
        f"{report.get('original_repeat', repeat)}; figures are the median (min–max) of the runs.",
        f"- Sandbox AWS limits (token buckets): **{'enforced' if report['aws_limits_enforced'] else 'NOT enforced'}**.",
        f"- Up to N={report.get('real_runner_max_n', '–')} this executor's tasks run the real runner, "
        "forked from the benchmark's pre-warmed fork server (bench_starters.py; see the cold-start row); "
        "above it they run the scale mode's stand-in container (stand_in.py: a thread of one "
        "helper process that reads the payload, waits the task's time and writes the runner's result envelope).",
        "- The original's runner always starts a cold interpreter.",
        f"- Original plugin: {original.get('package') or 'not installed (run benchmarks/setup_original.sh)'}"
        f", run up to N={original.get('max_n')}; its defaults (poll_freq 10 s).",
        "",
        "## Targets",
        "",
        *_targets(report, summary),
        "",
        *_costs(summary),
    ]
    sizes = sorted({g["n"] for g in summary if g["kind"] == ""})
    for n in sizes:
        ours, orig = _group(summary, "ours", n), _group(summary, "original", n)
        a, b = (ours or {}).get("metrics", {}), (orig or {}).get("metrics", {})
        out += [f"## N = {n} concurrent tasks{_runner_note(ours or {})}", ""]
        out += _problems(ours, "this executor") + _problems(orig, "original")
        if orig is None and original.get("installed"):
            out += [f"(original not run at N={n}: above --original-max-n={original.get('max_n')}; see docs/benchmarks.md)", ""]
        out += ["| metric | this executor | original | original / ours |", "|---|---|---|---|"]
        for label in a or b:
            out.append(f"| {label} | {_fmt(a.get(label))} | {_fmt(b.get(label))} | {_ratio(a.get(label), b.get(label))} |")
        out.append("")
    for group in (g for g in summary if g["kind"] == "faults"):
        out += _faults_section(group)
    cold = next((g for g in summary if g["kind"] == "cold"), None)
    if cold:
        n = cold["n"]
        warm, c0 = (_group(summary, "ours", n) or {}).get("metrics", {}), cold["metrics"]
        out += [
            f"## Effect of the benchmark's fork server (this executor, N = {n})",
            "",
            "| metric | fork server | cold interpreter per task |",
            "|---|---|---|",
        ]
        for label in ("wall time per batch (s)", "runner: process start → function start, p50 (s)",
                      "runner: process start → function start, p95 (s)",
                      "container exit → executor returns, p95 (s)", "errors"):  # fmt: skip
            out.append(f"| {label} | {_fmt(warm.get(label))} | {_fmt(c0.get(label))} |")
        out.append("")
    if report.get("payload"):
        out += _payload_section(report["payload"])
    return "\n".join(out) + "\n"


def _problems(group: dict[str, Any] | None, label: str) -> list[str]:
    if group is None:
        return []
    out = [f"{label} failed: `{f}`" for f in group["failed"]]
    if group["error_samples"]:
        out.append(f"{label} errors (samples): " + "; ".join(f"`{e[:200]}`" for e in group["error_samples"]))
    return [*out, ""] if out else []


def _faults_section(group: dict[str, Any]) -> list[str]:
    metrics = group["metrics"]
    out = [
        f"## Faults row: N = {group['n']} on Spot with launches failing",
        "",
        "FARGATE_SPOT with `spot_fallback`; per task label the sandbox fails 1% of the tasks "
        "at start (ENI provisioning timeout: the container never runs), refuses 1% of "
        "the RunTask calls for capacity, and 10% more for Spot capacity (relaunched on "
        "FARGATE). Duplicates are counted from the sandbox agent's records (a container "
        "that ran has an exit code).",
        "",
        *_problems(group, "faults row"),
        "| metric | this executor |",
        "|---|---|",
    ]
    for label, value in metrics.items():
        out.append(f"| {label} | {_fmt(value)} |")
    out.append("")
    return out


def _payload_section(payload: list[dict[str, Any]]) -> list[str]:
    out = [
        "## Large payloads (client process RSS)",
        "",
        "Baseline: RSS with the argument already built. Growth: peak − baseline − the "
        "returned value itself (which must be in memory once).",
        "",
        "| payload | plugin | seconds | RSS before run (MiB) | peak (MiB) | growth (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in payload:
        what = f"{row['bytes'] / GIB:g} GiB {'argument' if row['direction'] == 'send' else 'result'}"
        who = "this executor" if row["plugin"] == "ours" else "original"
        if "failed" in row:
            out.append(f"| {what} | {who} | failed: {row['failed'][-300:]} | | | |")
        else:
            out.append(f"| {what} | {who} | {_fmt(row['seconds'])} | {_fmt(row['baseline_mib'])} | {_fmt(row['peak_mib'])} | {_fmt(row['growth_mib'])} |")
    out.append("")
    return out

