"""Where a task's time and money went: phases and cost from what was observed. Pure.

Three clocks meet here: ECS's timestamps (DescribeTasks: ``createdAt``,
``pullStartedAt``, ``pullStoppedAt``, ``startedAt``, ``executionStoppedAt``,
``stoppedAt``), the runner's own (the result envelope's ``timings``: process start,
payload read, function start and end) and the client's (upload, result download).
Each phase is the difference of two marks; a phase whose marks are missing (the task
never got that far) is None. Marks from different clocks are only as good as the
clocks' agreement (Fargate hosts and most clients sync to NTP): a phase spanning two
clocks is clamped at 0.

    queued       createdAt      -> pullStartedAt     capacity, network interface
    pull         pullStartedAt  -> pullStoppedAt     the image pull (billed)
    start        pullStoppedAt  -> function start    container start, interpreter and
                                                     imports, payload download + unpickle
    function     function start -> function end      the user's code
    result       function end   -> result downloaded result pickled, uploaded, seen, fetched
    deprovision  executionStoppedAt -> stoppedAt     ECS detaching the network interface

A task whose container ran but wrote no result (OOM, killed) has no runner marks: its
``function`` is then the container's run (startedAt -> executionStoppedAt).

``AttemptSeen`` / ``RunSeen`` are what the executor fills in while a task runs;
``build_timeline`` turns one attempt into a JSON-ready dict (the durable record keeps a
list of them); ``summary_line`` is the line printed at the end of the node's stderr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import pricing
from .fargate import CPU_UNITS_PER_VCPU, MIB_PER_GB

PHASES = ("queued", "pull", "start", "function", "result", "deprovision")
# The summary line leaves out deprovisioning: it is rarely known when the result is.
SUMMARY_PHASES = ("queued", "pull", "start", "function", "result")
DEFAULT_STORAGE_GB = 20.0
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_CANCELLED = "cancelled"
_ECS_MARKS = {
    "created": "createdAt",
    "pull_started": "pullStartedAt",
    "pull_stopped": "pullStoppedAt",
    "started": "startedAt",
    "execution_stopped": "executionStoppedAt",
    "stopping": "stoppingAt",
    "stopped": "stoppedAt",
}
_RUNNER_MARKS = {
    "process_started": "process_started",
    "runner_started": "runner_started",
    "payload_fetched": "payload_fetched",
    "function_started": "function_started",
    "function_ended": "function_ended",
    "result_written": "result_written",
}


@dataclass
class AttemptSeen:
    """What the client saw of one launch attempt (filled in while it runs)."""

    number: int
    capacity_provider: str = ""  # as launched (a Spot fallback relaunches on FARGATE)
    task_arn: str = ""
    described: dict[str, Any] = field(default_factory=dict)  # the latest DescribeTasks view
    runner_timings: dict[str, float] = field(default_factory=dict)
    exit_seen: float | None = None  # client clock: the poller saw the container exit
    result_downloaded: float | None = None  # client clock
    ended: float | None = None  # client clock: the attempt ended (success, failure, stop)
    download_s: float | None = None
    status: str = STATUS_FAILED
    error: str = ""  # the error's type name (never its message: it may hold user data)


@dataclass
class RunSeen:
    """One ``run()`` of a node: its upload, then one or more launch attempts."""

    upload_s: float | None = None
    attempts: list[AttemptSeen] = field(default_factory=list)
    timelines: list[dict[str, Any]] = field(default_factory=list)  # built when the run ends

    def begin(self, number: int, *, capacity_provider: str) -> AttemptSeen:
        seen = AttemptSeen(number=number, capacity_provider=capacity_provider)
        self.attempts.append(seen)
        return seen

    def ended(self, error: BaseException | None) -> None:
        """The current attempt's outcome: completed, cancelled, or failed with the error's type."""
        seen = self.current
        if seen is None:
            return
        seen.ended = time.time()
        if error is None:
            seen.status = STATUS_COMPLETED
        elif type(error).__name__ in ("TaskCancelledError", "CancelledError"):
            seen.status = STATUS_CANCELLED
        else:
            seen.status = STATUS_FAILED
            # A remote exception is named by its own type (e.g. ValueError), not ours.
            remote_type = str(getattr(error, "remote_type", "") or "")
            seen.error = remote_type.rsplit(".", 1)[-1] or type(error).__name__

    def summary_lines(self) -> list[str]:
        return [summary_line(t, attempts=len(self.timelines)) for t in self.timelines]

    @property
    def current(self) -> AttemptSeen | None:
        return self.attempts[-1] if self.attempts else None

    def saw(self, described: dict[str, Any] | None) -> None:
        """Keep the latest described task of the current attempt."""
        if described and self.current is not None:
            self.current.described = described


@dataclass(frozen=True)
class TaskSize:
    """What the task was billed as, when the described task does not say."""

    vcpu: float
    memory_gb: float
    capacity_provider: str
    architecture: str


def epoch_s(value: Any) -> float | None:
    """A timestamp as seconds since the epoch: boto3 datetimes, ISO text, or numbers."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, end - start)


def marks_of(seen: AttemptSeen) -> dict[str, float | None]:
    """Every mark of one attempt, epoch seconds (None where not known)."""
    marks = {name: epoch_s(seen.described.get(key)) for name, key in _ECS_MARKS.items()}
    marks.update({name: epoch_s(seen.runner_timings.get(key)) for name, key in _RUNNER_MARKS.items()})
    marks["exit_seen"] = seen.exit_seen
    marks["result_downloaded"] = seen.result_downloaded
    marks["ended"] = seen.ended
    return marks


def phases_of(marks: dict[str, float | None]) -> dict[str, float | None]:
    """The six phases in seconds (see the module docstring)."""
    container_up = marks["pull_stopped"] or marks["started"]
    ran_runner = marks["function_started"] is not None
    never_pulled_end = marks["execution_stopped"] or marks["stopping"] or marks["stopped"]
    return {
        "queued": _span(marks["created"], marks["pull_started"] or never_pulled_end),
        "pull": _span(marks["pull_started"], marks["pull_stopped"]),
        "start": _span(container_up, marks["function_started"] if ran_runner else marks["started"]),
        "function": (
            _span(marks["function_started"], marks["function_ended"])
            if ran_runner
            else _span(marks["started"], marks["execution_stopped"] or marks["exit_seen"])
        ),
        "result": _span(marks["function_ended"], marks["result_downloaded"]),
        "deprovision": _span(marks["execution_stopped"], marks["stopped"]),
    }


def runner_start_of(marks: dict[str, float | None]) -> dict[str, float | None]:
    """The ``start`` phase broken down (the runner's own start-up cost)."""
    return {
        "container_s": _span(marks["pull_stopped"], marks["started"]),
        "interpreter_s": _span(marks["started"], marks["process_started"]),
        "imports_s": _span(marks["process_started"], marks["runner_started"]),
        "payload_s": _span(marks["runner_started"], marks["payload_fetched"]),
        "unpickle_s": _span(marks["payload_fetched"], marks["function_started"]),
    }


def size_of(described: dict[str, Any], fallback: TaskSize) -> TaskSize:
    """The task's billed size: ECS's task-level cpu/memory when described, else the config's."""
    try:
        vcpu = int(described["cpu"]) / CPU_UNITS_PER_VCPU
        memory_gb = int(described["memory"]) / MIB_PER_GB
    except (KeyError, TypeError, ValueError):
        vcpu, memory_gb = fallback.vcpu, fallback.memory_gb
    return TaskSize(
        vcpu=vcpu,
        memory_gb=memory_gb,
        capacity_provider=described.get("capacityProviderName") or fallback.capacity_provider,
        architecture=fallback.architecture,
    )


def build_timeline(
    seen: AttemptSeen, *, size: TaskSize, region: str, prices: pricing.PriceTable
) -> dict[str, Any]:
    """One attempt as a JSON-ready dict: marks, phases, size, cost."""
    described = seen.described
    marks = marks_of(seen)
    if seen.capacity_provider:
        size = TaskSize(size.vcpu, size.memory_gb, seen.capacity_provider, size.architecture)
    task_size = size_of(described, size)
    storage_gb = storage_gb_of(described)
    cost = _cost(marks, task_size, storage_gb, region=region, prices=prices)
    return {
        "attempt": seen.number,
        "task_arn": seen.task_arn,
        "status": seen.status,
        "error": seen.error,
        "stop_code": described.get("stopCode") or "",
        "stopped_reason": described.get("stoppedReason") or "",
        "last_status": described.get("lastStatus") or "",
        "vcpu": task_size.vcpu,
        "memory_gb": task_size.memory_gb,
        "storage_gb": storage_gb,
        "capacity_provider": task_size.capacity_provider,
        "architecture": task_size.architecture,
        "marks": marks,
        "phases_s": phases_of(marks),
        "runner_start": runner_start_of(marks),
        "client": {"download_s": seen.download_s},
        "stop_estimated": marks["stopped"] is None,
        "cost": cost.as_dict(),
    }


def storage_gb_of(described: dict[str, Any]) -> float:
    """The task's ephemeral storage (GiB): its override, else Fargate's default 20."""
    return float((described.get("ephemeralStorage") or {}).get("sizeInGiB") or DEFAULT_STORAGE_GB)


def _cost(
    marks: dict[str, float | None],
    size: TaskSize,
    storage_gb: float,
    *,
    region: str,
    prices: pricing.PriceTable,
) -> pricing.CostEstimate:
    # Billing runs to the task's stop; before ECS reports it, to the last sign of life
    # (the container's exit, else the end of the attempt, when the guard stopped it).
    billed_until = (
        marks["stopped"] or marks["execution_stopped"] or marks["exit_seen"] or marks.get("ended")
    )
    return cost_between(marks["pull_started"], billed_until, size, storage_gb, region=region, prices=prices)


def cost_between(
    pull_started_s: float | None,
    until_s: float | None,
    size: TaskSize,
    storage_gb: float,
    *,
    region: str,
    prices: pricing.PriceTable,
) -> pricing.CostEstimate:
    """What a task of ``size`` costs from its pull's start until ``until_s`` (e.g. now)."""
    billed_s = pricing.billed_seconds(pull_started_s, until_s, minimum_s=prices.minimum_billed_s)
    return pricing.estimate(
        prices,
        region=region,
        capacity_provider=size.capacity_provider,
        architecture=size.architecture,
        vcpu=size.vcpu,
        memory_gb=size.memory_gb,
        storage_gb=storage_gb,
        billed_s=billed_s,
    )


def with_stop(
    attempt: dict[str, Any], described: dict[str, Any], *, region: str, prices: pricing.PriceTable
) -> dict[str, Any]:
    """A built timeline completed with the stop marks ECS reported later (the run ended
    before the task was STOPPED): deprovisioning and the billed time become known."""
    marks = dict(attempt["marks"])
    for name in ("execution_stopped", "stopping", "stopped"):
        value = epoch_s(described.get(_ECS_MARKS[name]))
        if value is not None:
            marks[name] = value
    size = TaskSize(
        attempt["vcpu"], attempt["memory_gb"], attempt["capacity_provider"], attempt["architecture"]
    )
    cost = _cost(marks, size, attempt["storage_gb"], region=region, prices=prices)
    return {
        **attempt,
        "marks": marks,
        "phases_s": phases_of(marks),
        "stop_estimated": marks["stopped"] is None,
        "cost": cost.as_dict(),
    }


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def _gb(value: float) -> str:
    return f"{value:g}"


def summary_line(timeline: dict[str, Any], *, attempts: int = 1) -> str:
    """``[covalent-ecs] queued 2.1 s · pull 7.9 s · ... · ≈ $0.0004 · task <arn>``."""
    parts: list[str] = []
    if timeline["status"] != STATUS_COMPLETED:
        why = timeline["error"] or timeline["stop_code"] or ""
        parts.append(f"{timeline['status']}" + (f" ({why})" if why else ""))
    phases = timeline["phases_s"]
    parts += [f"{name} {_seconds(phases[name])}" for name in SUMMARY_PHASES if phases.get(name) is not None]
    parts.append(
        f"{_gb(timeline['vcpu'])} vCPU / {_gb(timeline['memory_gb'])} GB "
        f"{timeline['capacity_provider']} {timeline['architecture']}"
    )
    cost = timeline["cost"]
    price = pricing.format_usd(cost["usd"])
    if cost["note"]:
        price += f" ({cost['note']})"
    parts.append(price)
    if timeline["task_arn"]:
        parts.append(f"task {timeline['task_arn']}")
    prefix = f"attempt {timeline['attempt']} of {attempts}: " if attempts > 1 else ""
    return f"[covalent-ecs] {prefix}" + " · ".join(parts)
