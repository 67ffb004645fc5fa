"""``covalent-ecs report``: a dispatch's tasks from their durable records.

Rows (one per node and launch attempt), totals, a fixed-width text table, the JSON
document ``--json`` prints, and the timeline chart ``--chart`` writes (one bar per
task, coloured by phase; failures and relaunches marked) as a self-contained HTML
file drawn with plotly, an optional extra (``[report]``). Pure apart from
``complete_stops`` (DescribeTasks, for tasks whose run ended before ECS stopped them).
"""

from __future__ import annotations

from typing import Any

from . import pricing, tasklist, timeline
from .errors import ECSExecutorError

REPORT_EXTRA_HINT = "pip install 'covalent-ecs-executor[report]'"
# Where each phase starts (the first mark known), for the chart.
_PHASE_STARTS = {
    "queued": ("created",),
    "pull": ("pull_started",),
    "start": ("pull_stopped", "started"),
    "function": ("function_started", "started"),
    "result": ("function_ended",),
    "deprovision": ("execution_stopped",),
}
PHASE_COLOURS = {
    "queued": "#9e9e9e",
    "pull": "#f4a261",
    "start": "#e9c46a",
    "function": "#2a9d8f",
    "result": "#264653",
    "deprovision": "#c8c8c8",
}


class ReportError(ECSExecutorError):
    """The report cannot be made (no records, no plotting library)."""


def rows_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per node and attempt, in node order."""
    rows = []
    for record in records:
        for attempt in record.get("attempts", []):
            phases = attempt.get("phases_s", {})
            rows.append(
                {
                    "node_id": record.get("node_id"),
                    "attempt": attempt.get("attempt", 1),
                    "attempts": len(record.get("attempts", [])),
                    "status": attempt.get("status", ""),
                    "error": attempt.get("error") or attempt.get("stop_code") or "",
                    **{f"{phase}_s": phases.get(phase) for phase in timeline.PHASES},
                    "vcpu": attempt.get("vcpu"),
                    "memory_gb": attempt.get("memory_gb"),
                    "capacity_provider": attempt.get("capacity_provider", ""),
                    "architecture": attempt.get("architecture", ""),
                    "billed_s": attempt.get("cost", {}).get("billed_s"),
                    "cost_usd": attempt.get("cost", {}).get("usd"),
                    "cost_note": attempt.get("cost", {}).get("note", ""),
                    "stop_estimated": attempt.get("stop_estimated", False),
                    "task_arn": attempt.get("task_arn", ""),
                    "marks": attempt.get("marks", {}),
                }
            )
    return rows


def totals_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Tasks, billed task-seconds, cost, and the time lost to queueing and image pulls."""
    costs = [row["cost_usd"] for row in rows]
    return {
        "tasks": len(rows),
        "failed": sum(row["status"] != timeline.STATUS_COMPLETED for row in rows),
        "relaunches": sum(row["attempt"] > 1 for row in rows),
        "task_seconds": sum(row["billed_s"] or 0.0 for row in rows),
        "cost_usd": sum(c for c in costs if c is not None),
        "cost_unknown_tasks": sum(c is None for c in costs),
        "queued_s": sum(row["queued_s"] or 0.0 for row in rows),
        "pull_s": sum(row["pull_s"] or 0.0 for row in rows),
    }


def price_sources(records: list[dict[str, Any]]) -> list[str]:
    found = {f"{r['prices'].get('taken')} ({r['prices'].get('source')})" for r in records if r.get("prices")}
    return sorted(found)


def document(dispatch_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``report --json`` prints."""
    rows = rows_of(records)
    return {
        "dispatch_id": dispatch_id,
        "estimate": True,
        "prices": price_sources(records),
        "rows": rows,
        "totals": totals_of(rows),
    }


def complete_stops(
    ecs: Any, records: list[dict[str, Any]], *, prices: pricing.PriceTable
) -> list[dict[str, Any]]:
    """Records whose runs ended before ECS stopped the task, completed with ECS's stop
    times while it still describes the task (about an hour); others are unchanged."""
    pending: dict[str, list[str]] = {}
    for record in records:
        for attempt in record.get("attempts", []):
            if attempt.get("stop_estimated") and attempt.get("task_arn"):
                cluster = tasklist.cluster_of(attempt["task_arn"], record.get("cluster", ""))
                pending.setdefault(cluster, []).append(attempt["task_arn"])
    if not pending:
        return records
    described = {
        task["taskArn"]: task
        for cluster, arns in pending.items()
        for task in tasklist.describe(ecs, cluster, arns)
        if task.get("stoppedAt")
    }
    completed = []
    for record in records:
        attempts = [
            timeline.with_stop(a, described[a["task_arn"]], region=record.get("region", ""), prices=prices)
            if a.get("task_arn") in described
            else a
            for a in record.get("attempts", [])
        ]
        completed.append({**record, "attempts": attempts})
    return completed


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _usd(value: float | None) -> str:
    return "?" if value is None else f"{value:.6f}"


def format_table(dispatch_id: str, records: list[dict[str, Any]]) -> str:
    """The report as fixed-width text (what ``covalent-ecs report`` prints)."""
    rows = rows_of(records)
    totals = totals_of(rows)
    header = ["node", "try", "status", "queued", "pull", "start", "function", "result",
              "deprov", "vCPU/GB", "capacity", "arch", "cost $"]  # fmt: skip
    lines = [header]
    for row in rows:
        status = row["status"] + (f" ({row['error']})" if row["error"] and row["status"] != "completed" else "")
        lines.append(
            [
                str(row["node_id"]),
                f"{row['attempt']}/{row['attempts']}",
                status,
                *(_seconds(row[f"{phase}_s"]) for phase in timeline.PHASES),
                f"{row['vcpu']:g}/{row['memory_gb']:g}" if row["vcpu"] is not None else "",
                row["capacity_provider"],
                row["architecture"],
                _usd(row["cost_usd"]) + ("*" if row["stop_estimated"] else ""),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"Dispatch {dispatch_id}: seconds per phase, estimated cost per task"]
    text += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.append(
        f"Total: {totals['tasks']} tasks ({totals['failed']} failed, {totals['relaunches']} "
        f"relaunches), {totals['task_seconds']:.0f} billed task-seconds, ≈ ${totals['cost_usd']:.6f}"
        + (f" (+ {totals['cost_unknown_tasks']} tasks without a price)" if totals["cost_unknown_tasks"] else "")
        + f"; {totals['queued_s']:.1f} s queued and {totals['pull_s']:.1f} s pulling images"
    )
    notes = ["Estimates: Fargate bills per second from the image pull's start to the task's "
             "stop, at least a minute; prices " + "; ".join(price_sources(records) or ["unknown"])]
    if any(row["stop_estimated"] for row in rows):
        notes.append("* ECS had not yet reported the task's stop: billed until its container exited")
    return "\n".join(text + notes)


def require_plotly() -> Any:
    """plotly's graph_objects, or ReportError saying how to install it."""
    try:
        import plotly.graph_objects as go
    except ImportError as err:
        raise ReportError(f"the timeline chart needs plotly: {REPORT_EXTRA_HINT}") from err
    return go


def chart_html(dispatch_id: str, records: list[dict[str, Any]]) -> str:
    """A self-contained HTML page: one horizontal bar per task, coloured by phase."""
    go = require_plotly()
    rows = rows_of(records)
    if not rows:
        raise ReportError(f"dispatch {dispatch_id} has no task records to chart")
    created = [row["marks"].get("created") for row in rows if row["marks"].get("created")]
    origin = min(created) if created else 0.0
    labels = [f"node {row['node_id']} · try {row['attempt']}" for row in rows]
    figure = go.Figure()
    for phase in timeline.PHASES:
        bases, lengths = [], []
        for row in rows:
            start = next((row["marks"][m] for m in _PHASE_STARTS[phase] if row["marks"].get(m)), None)
            length = row[f"{phase}_s"]
            known = start is not None and length is not None
            bases.append(start - origin if known else None)
            lengths.append(length if known else None)
        figure.add_trace(
            go.Bar(
                name=phase, y=labels, x=lengths, base=bases, orientation="h",
                marker_color=PHASE_COLOURS[phase],
                hovertemplate=f"{phase} %{{x:.1f}} s<extra>%{{y}}</extra>",
            )
        )  # fmt: skip
    marked = [(label, row) for label, row in zip(labels, rows, strict=True) if row["status"] != "completed" or row["attempt"] > 1]
    if marked:
        ends = [max((v for v in row["marks"].values() if v), default=origin) - origin for _, row in marked]
        texts = [
            ("✗ " + (row["error"] or row["status"])) if row["status"] != "completed" else "↻ relaunch"
            for _, row in marked
        ]
        figure.add_trace(
            go.Scatter(
                name="failed / relaunched", y=[label for label, _ in marked], x=ends,
                mode="markers+text", text=texts, textposition="middle right",
                marker={"symbol": "x", "color": "#d62828", "size": 10},
            )
        )  # fmt: skip
    totals = totals_of(rows)
    figure.update_layout(
        title=f"Dispatch {dispatch_id}: {totals['tasks']} tasks, ≈ ${totals['cost_usd']:.4f} "
        f"(estimate; prices {'; '.join(price_sources(records))})",
        barmode="overlay",
        xaxis_title="seconds since the first task was created",
        yaxis={"autorange": "reversed"},
        height=max(300, 40 * len(rows) + 160),
    )
    return str(figure.to_html(include_plotlyjs=True, full_html=True))
