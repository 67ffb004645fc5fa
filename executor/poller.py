"""One poller for every task: batched DescribeTasks for all live tasks of a process.

``await watch_task(...)`` returns the described task once its container has exited (or,
with ``until=STOPPED``, once the task itself is STOPPED). Per event loop and per AWS
connection there is one loop that describes every watched task in chunks of
``DESCRIBE_TASKS_MAX_ARNS``, so N live tasks cost ceil(N / 100) calls a cycle instead
of N; it starts a cycle every ``poll_freq`` (start to start), backs off on throttling
without failing anyone, and ends when nothing is watched (an idle executor makes no
calls).

Waiting for the container's exit rather than the task's STOPPED matters: on Fargate a
task spends several more seconds deprovisioning its network interface after the
container has exited and the result is already in S3.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import aws, events, taskdefs
from .errors import AWSSetupError, LaunchError

# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html
DESCRIBE_TASKS_MAX_ARNS = 100
# DescribeTasks may not see a task for a moment after RunTask (eventual consistency).
MISSING_GRACE_S = 30.0
# Consecutive failed cycles (network, 5xx after botocore's retries) tolerated before
# the watchers are failed with the error.
MAX_FAILED_CYCLES = 10
MAX_BACKOFF_S = 20.0
# ECS refills Describe*/List* at 20 calls/s per account (docs/facts.md, "AWS limits and
# throttles"). With many tasks a cycle is many calls: stretch the cycle so the poller
# alone uses at most half of that, leaving room for other clients (1000 tasks: 10
# calls, 1 s).
DESCRIBE_CALLS_PER_S = 10.0

# Sustained throttling is logged at most this often, with the rate the poller got.
THROTTLE_LOG_INTERVAL_S = 60.0

log = logging.getLogger(__name__)

EXITED = "exited"
STOPPED = "stopped"

RunInThread = Callable[..., Awaitable[Any]]


def container_exited(task: dict[str, Any]) -> bool:
    """The runner's container has stopped (its result, if any, is already written)."""
    container = taskdefs.runner_container(task)
    return container.get("lastStatus") == "STOPPED" or container.get("exitCode") is not None


def container_started(task: dict[str, Any]) -> bool:
    """The runner's container is running or has run (time_limit counts from here)."""
    if task.get("lastStatus") in ("RUNNING", "DEACTIVATING", "STOPPING", "STOPPED"):
        return True
    container = taskdefs.runner_container(task)
    return container.get("lastStatus") in ("RUNNING", "STOPPED")


def is_done(task: dict[str, Any], until: str) -> bool:
    if task.get("lastStatus") == "STOPPED":
        return True
    return until == EXITED and container_exited(task)


@dataclass
class _Watch:
    cluster: str
    until: str
    future: asyncio.Future[dict[str, Any]]
    interval_s: float
    added: float = field(default_factory=time.monotonic)


class TaskPoller:
    """Watches tasks for one AWS connection on one event loop."""

    def __init__(self, ecs: Any, run_in_thread: RunInThread) -> None:
        self._ecs = ecs
        self._run_in_thread = run_in_thread
        self._watches: dict[str, list[_Watch]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.cycles = 0  # DescribeTasks cycles run (throttling reports; events tell watchers)
        self.restarts = 0  # times the loop died with tasks watched and was restarted
        self._throttled_since: float | None = None
        self._throttled_logged = 0.0
        self._calls_while_throttled = 0

    @property
    def watched(self) -> int:
        return len(self._watches)

    def latest(self, task_arn: str) -> dict[str, Any] | None:
        """The task as last described (None before the first cycle saw it)."""
        return self._latest.get(task_arn)

    async def watch(
        self, cluster: str, task_arn: str, *, until: str = EXITED, interval_s: float = 0.5
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        entry = _Watch(cluster=cluster, until=until, future=loop.create_future(), interval_s=interval_s)
        self._watches.setdefault(task_arn, []).append(entry)
        self._ensure_loop()
        try:
            return await entry.future
        finally:
            entries = self._watches.get(task_arn, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._watches.pop(task_arn, None)
                self._latest.pop(task_arn, None)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), name="covalent-ecs-poller"
            )
            self._loop_task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A loop that died (a bug, not an AWS error: those are handled in _run) while
        tasks are still watched is restarted, so no watcher waits forever."""
        if task.cancelled() or not self._watches:
            return
        error = task.exception()
        self.restarts += 1
        log.error("covalent-ecs poller loop died (%r); restarting it", error)
        if self.restarts > MAX_FAILED_CYCLES:
            self._fail_all(error or RuntimeError("the poller loop ended"))
            return
        self._ensure_loop()

    async def _run(self) -> None:
        """Cycle every period, start to start: a cycle's own duration (DescribeTasks
        latency, a busy event loop) is taken out of the wait rather than added to it,
        so completion is seen within one period plus one call, not two."""
        loop = asyncio.get_running_loop()
        failed_cycles = 0
        backoff_s = 0.0
        started = loop.time()  # the first cycle waits one period: a new task is PROVISIONING
        while self._watches:
            interval_s = min(w.interval_s for ws in self._watches.values() for w in ws)
            chunks = -(-len(self._watches) // DESCRIBE_TASKS_MAX_ARNS)
            # Starts at most DESCRIBE_CALLS_PER_S calls a second apart on average; after
            # a failed (e.g. throttled) cycle the backoff counts from its end, so a slow
            # throttled call is never followed by another at once.
            period_s = max(interval_s, chunks / DESCRIBE_CALLS_PER_S)
            await asyncio.sleep(max(started + period_s - loop.time(), backoff_s))
            started = loop.time()
            try:
                await self._cycle()
            except Exception as err:  # noqa: BLE001 - decided below, per kind
                failed_cycles += 1
                backoff_s = min(max(backoff_s * 2, interval_s * 2), MAX_BACKOFF_S)
                if aws.is_throttling(err):
                    self._note_throttled()
                    continue  # throttling never fails a task: it only slows us down
                if failed_cycles >= MAX_FAILED_CYCLES:
                    self._fail_all(err)
                    failed_cycles = 0
            else:
                failed_cycles = 0
                backoff_s = 0.0
                self._throttled_since = None

    def _note_throttled(self) -> None:
        """Say so, at most once a minute, while DescribeTasks stays throttled."""
        now = time.monotonic()
        if self._throttled_since is None:
            self._throttled_since = now
            self._calls_while_throttled = self.cycles
        elif now - self._throttled_logged >= THROTTLE_LOG_INTERVAL_S:
            elapsed = now - self._throttled_since
            cycles = self.cycles - self._calls_while_throttled
            log.warning(
                "covalent-ecs: DescribeTasks throttled for %.0f s (%.2f cycles/s got through "
                "for %d watched tasks); task completion is seen later. Other clients in the "
                "account may share the Describe* rate (20/s).",
                elapsed,
                cycles / elapsed if elapsed else 0.0,
                len(self._watches),
            )
            self._throttled_logged = now

    async def _cycle(self) -> None:
        """Describe every watched task, its ceil(N / 100) calls at once: they are
        independent, and a task in the last chunk is then seen one call after its exit
        rather than one call per chunk (the calls' rate is _run's to keep)."""
        self.cycles += 1
        started, started_clock = time.time(), time.monotonic()
        watched = len(self._watches)
        by_cluster: dict[str, list[str]] = {}
        for arn, entries in list(self._watches.items()):
            for cluster in {e.cluster for e in entries}:
                by_cluster.setdefault(cluster, []).append(arn)
        chunks = [
            (cluster, arns[start : start + DESCRIBE_TASKS_MAX_ARNS])
            for cluster, arns in by_cluster.items()
            for start in range(0, len(arns), DESCRIBE_TASKS_MAX_ARNS)
        ]
        responses = await asyncio.gather(
            *(self._run_in_thread(self._ecs.describe_tasks, cluster=cluster, tasks=chunk)
              for cluster, chunk in chunks),
            return_exceptions=True,
        )  # fmt: skip
        failed: BaseException | None = None
        for (cluster, _), response in zip(chunks, responses, strict=True):
            if isinstance(response, BaseException):
                failed = failed or response  # the chunks that answered are still settled
            else:
                self._settle(cluster, response)
        events.emit(
            events.POLL_CYCLE, watched=watched, describe_calls=len(chunks), started=started,
            duration_s=time.monotonic() - started_clock,
        )  # fmt: skip
        if failed is not None:
            raise failed

    def _settle(self, cluster: str, response: dict[str, Any]) -> None:
        for task in response.get("tasks", []):
            if task["taskArn"] in self._watches:
                self._latest[task["taskArn"]] = task
            for entry in list(self._watches.get(task["taskArn"], [])):
                if entry.cluster == cluster and not entry.future.done() and is_done(task, entry.until):
                    entry.future.set_result(task)
        now = time.monotonic()
        for failure in response.get("failures", []):
            for entry in list(self._watches.get(failure.get("arn", ""), [])):
                if entry.future.done() or now - entry.added < MISSING_GRACE_S:
                    continue
                entry.future.set_exception(
                    LaunchError(
                        f"ECS reports task {failure.get('arn')} as {failure.get('reason')} in "
                        f"cluster {cluster} {MISSING_GRACE_S:.0f} s after it was started"
                    )
                )

    def _fail_all(self, err: Exception) -> None:
        error = aws.translate_client_error(err, "describe tasks") if hasattr(err, "response") else (
            AWSSetupError(f"could not describe tasks after {MAX_FAILED_CYCLES} tries: {err}")
        )
        for entries in self._watches.values():
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(error)


_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, TaskPoller]] = (
    weakref.WeakKeyDictionary()
)


def poller_for(clients: aws.Clients, run_in_thread: RunInThread) -> TaskPoller:
    """The poller of this event loop for this AWS connection (module-level registry:
    executor attributes must stay JSON-serialisable)."""
    per_loop = _pollers.setdefault(asyncio.get_running_loop(), {})
    if clients.settings not in per_loop:
        per_loop[clients.settings] = TaskPoller(clients.ecs, run_in_thread)
    return per_loop[clients.settings]
