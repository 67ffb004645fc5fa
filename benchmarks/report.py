"""Render a benchmark report (bench.py's JSON) as Markdown: targets, side by side."""

from __future__ import annotations

import math
from typing import Any

from bench import OPERATIONS

GIB = 1024**3
# Issue 6's scale targets.
EXIT_TO_RETURN_P95_S = 1.0
IDLE_DESCRIBE_PER_S = 1.0
CLIENT_S3_PER_TASK = 3
RSS_GROWTH_MIB = 64
# 1000 launches against a 100-burst, 20/s bucket: (1000 - 100) / 20 = 45 s, +10%.
LAUNCH_PHASE_S = 45 * 1.1


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 10:
            return str(int(value))
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _ratio(ours: Any, original: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(original, (int, float)):
        return ""
    if ours == 0:
        return "∞" if original else "="
    return f"{original / ours:.1f}×"


def _s3(calls: dict[str, float]) -> float:
    return sum(calls.get(k, 0) for k in ("S3 PUT", "S3 GET", "S3 HEAD", "S3 DELETE"))


def _rows(row: dict[str, Any] | None) -> dict[str, Any]:
    """The metrics shown per batch, by label."""
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
    for name, _ in OPERATIONS:
        out[f"client {name} per task"] = client.get(name, 0)
    out["client S3 requests per task"] = round(_s3(client), 3)
    out["runner S3 requests per task"] = round(_s3(runner), 3)
    out["throttled calls (all callers)"] = row.get("throttled_total", 0)
    out["runner: process start → function start, p50 (s)"] = row[
        "runner_start_to_function_s"
    ].get("p50")
    out["runner: process start → function start, p95 (s)"] = row[
        "runner_start_to_function_s"
    ].get("p95")
    out["runner: function end → container exit, p50 (s)"] = row[
        "runner_function_end_to_exit_s"
    ].get("p50")
    out["runner: function end → container exit, p95 (s)"] = row[
        "runner_function_end_to_exit_s"
    ].get("p95")
    out["launch phase: first → last RunTask accepted (s)"] = row.get("launch_phase_s")
    out["peak live tasks"] = row.get("peak_live_tasks")
    out["DescribeTasks per poll cycle"] = row.get("describe_tasks_per_cycle")
    out["client peak RSS (MiB)"] = row.get("client_peak_rss_mib")
    out["client CPU (s)"] = row.get("client_cpu_s")
    cpu = row.get("sandbox_cpu_s") or {}
    out["sandbox server+agent CPU (s)"] = cpu.get("server_and_agent")
    out["task processes CPU (s)"] = cpu.get("tasks")
    if idle.get("seconds"):
        out["idle DescribeTasks per s"] = round(idle["describe_tasks"] / idle["seconds"], 2)
    return out


def _find(report: dict[str, Any], plugin: str, n: int, cold: bool = False) -> dict[str, Any] | None:
    for row in report["batches"]:
        if row["plugin"] == plugin and row["n"] == n and bool(row.get("cold_starts")) == cold:
            return row
    return None


def _targets(report: dict[str, Any]) -> list[str]:
    ours = [r for r in report["batches"] if r["plugin"] == "ours" and "failed" not in r and not r.get("cold_starts")]
    if not ours:
        return ["No run of this executor completed."]
    biggest = max(ours, key=lambda r: r["n"])
    n = biggest["n"]
    per = biggest["calls_per_task"]["client"]
    limits = report["aws_limits_enforced"]
    lines = ["| target (issue 6) | measured (this executor) | met |", "|---|---|---|"]

    def add(target: str, measured: str, ok: bool | None) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if ok else ('n/a' if ok is None else '**no**')} |")

    add(f"1 RunTask per task (N={n})", _fmt(per.get("RunTask")), per.get("RunTask") == 1)
    registered = max(r["calls_total"]["client"]["RegisterTaskDefinition"] for r in ours)
    add("0 RegisterTaskDefinition after the first", f"≤ {registered} per batch", registered <= 1)
    worst_s3 = max(_s3(r["calls_per_task"]["client"]) for r in ours)
    add(f"≤ {CLIENT_S3_PER_TASK} client S3 requests per task", _fmt(worst_s3), worst_s3 <= CLIENT_S3_PER_TASK)
    per_cycle = [(r.get("describe_tasks_per_cycle"), r.get("describe_tasks_cycle_bound")) for r in ours]
    per_cycle = [(a, b) for a, b in per_cycle if a is not None]
    if per_cycle:
        add(
            "DescribeTasks ≤ ⌈live tasks / 100⌉ per poll cycle",
            ", ".join(f"{_fmt(a)} (bound {b})" for a, b in per_cycle),
            all(a <= b for a, b in per_cycle),
        )
    for r in sorted(ours, key=lambda r: r["n"]):
        seen = r["exit_to_seen_s"].get("p95", math.inf)
        returned = r["exit_to_return_s"].get("p95", math.inf)
        add(
            f"N={r['n']}: completion detected ≤ {EXIT_TO_RETURN_P95_S:g} s (p95) after container exit",
            f"p95 {_fmt(seen)} s (executor returned: p95 {_fmt(returned)} s)",
            seen <= EXIT_TO_RETURN_P95_S,
        )
    idle = [r["idle"]["describe_tasks"] / r["idle"]["seconds"] for r in ours if r.get("idle", {}).get("seconds")]
    if idle:
        add(f"idle executor ≤ {IDLE_DESCRIBE_PER_S:g} DescribeTasks/s", f"{_fmt(max(idle))} /s", max(idle) <= IDLE_DESCRIBE_PER_S)
    if n >= 1000:
        add(
            f"{n} concurrent tasks, zero errors{'' if limits else ' (AWS limits NOT enforced)'}",
            f"{biggest['errors']} errors",
            biggest["errors"] == 0,
        )
        launch = biggest.get("launch_phase_s")
        add(
            f"launch phase ≤ {LAUNCH_PHASE_S:.1f} s under the 100 burst / 20 per s launch bucket",
            f"{_fmt(launch)} s" + ("" if limits else " (limits not enforced: not comparable)"),
            (launch is not None and launch <= LAUNCH_PHASE_S) if limits else None,
        )
    for row in report.get("payload", []):
        if row["plugin"] != "ours":
            continue
        if "failed" in row:
            add(f"{row['bytes'] / GIB:g} GiB {row['direction']}: RSS growth ≤ {RSS_GROWTH_MIB} MiB", "failed: " + row["failed"][:120], False)
            continue
        add(
            f"{row['bytes'] / GIB:g} GiB {'argument' if row['direction'] == 'send' else 'result'}: client RSS growth ≤ {RSS_GROWTH_MIB} MiB",
            f"{_fmt(row['growth_mib'])} MiB",
            row["growth_mib"] <= RSS_GROWTH_MIB,
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    original = report["original"]
    out = [
        "# covalent-ecs-executor benchmarks",
        "",
        f"Run {c['date_utc']} UTC on {c['cpus']} CPUs, {c['memory_mib']} MiB RAM, Python "
        f"{c['python']}; load average at start {c['load_avg_at_start']} (machine shared with "
        f"other jobs: timings are noisy). Took {report.get('bench_seconds')} s.",
        "",
        f"- Sandbox AWS limits (token buckets): **{'enforced' if report['aws_limits_enforced'] else 'NOT enforced'}**.",
        "- Runner tasks of this executor start from the benchmark's pre-warmed fork server (bench_starters.py) "
        "(see the cold-start row); the original's runner always starts a cold interpreter.",
        f"- Original plugin: {original.get('package') or 'not installed (run benchmarks/setup_original.sh)'}"
        f", run up to N={original.get('max_n')}; its defaults (poll_freq 10 s).",
        "",
        "## Targets",
        "",
        *_targets(report),
        "",
    ]
    sizes = sorted({r["n"] for r in report["batches"] if not r.get("cold_starts")})
    for n in sizes:
        ours, orig = _find(report, "ours", n), _find(report, "original", n)
        a, b = _rows(ours), _rows(orig)
        out += [f"## N = {n} concurrent tasks", ""]
        for label, row in (("this executor", ours), ("original", orig)):
            if row is not None and "failed" in row:
                out += [f"{label} failed: `{row['failed'][:400]}`", ""]
            elif row is not None and row.get("error_samples"):
                out += [f"{label} errors (samples): " + "; ".join(f"`{e[:200]}`" for e in row["error_samples"]), ""]
        if orig is None and original.get("installed"):
            out += [f"(original not run at N={n}: above --original-max-n={original.get('max_n')}; see docs/benchmarks.md)", ""]
        out += ["| metric | this executor | original | original / ours |", "|---|---|---|---|"]
        for label in a or b:
            out.append(f"| {label} | {_fmt(a.get(label))} | {_fmt(b.get(label))} | {_ratio(a.get(label), b.get(label))} |")
        out.append("")
    cold = [r for r in report["batches"] if r.get("cold_starts")]
    if cold:
        n = cold[0]["n"]
        warm, c0 = _rows(_find(report, "ours", n)), _rows(cold[0])
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
        out += [
            "## Large payloads (client process RSS)",
            "",
            "Baseline: RSS with the argument already built. Growth: peak − baseline − the "
            "returned value itself (which must be in memory once).",
            "",
            "| payload | plugin | seconds | RSS before run (MiB) | peak (MiB) | growth (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for row in report["payload"]:
            what = f"{row['bytes'] / GIB:g} GiB {'argument' if row['direction'] == 'send' else 'result'}"
            who = "this executor" if row["plugin"] == "ours" else "original"
            if "failed" in row:
                out.append(f"| {what} | {who} | failed: {row['failed'][-300:]} | | | |")
            else:
                out.append(f"| {what} | {who} | {_fmt(row['seconds'])} | {_fmt(row['baseline_mib'])} | {_fmt(row['peak_mib'])} | {_fmt(row['growth_mib'])} |")
        out.append("")
    return "\n".join(out) + "\n"
