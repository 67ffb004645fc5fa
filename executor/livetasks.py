"""The guard from RunTask to the end of ``run()``: no task is left running unwatched.

Every ECS task this process starts is registered here, in the thread that called
RunTask (so a coroutine cancelled while RunTask is in flight still leaves a record).
``guarded(...)`` is the one way a run holds a task: whatever ends the ``async with``
block before the container has exited — an exception, a cancel, a time limit, the
server shutting down — stops the task with a reason naming why. Tasks still
registered when the interpreter exits (their runs never got to clean up) are stopped
then, concurrently and within a bound.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from . import aws, launch
from .errors import ECSExecutorError

CANCEL_REASON = "Cancelled by Covalent"
TIME_LIMIT_REASON = "Time limit exceeded"
SHUTDOWN_REASON = "Covalent stopped watching the task"
# How long a run waits for its StopTask before leaving the task to the exit hook
# (botocore's own retries may take longer under throttling; the run must end).
STOP_WAIT_S = 10.0
# At interpreter exit: StopTask calls in flight at once, and the wait for all of them.
EXIT_STOP_THREADS = 16
EXIT_STOP_WAIT_S = 20.0

# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html
MAX_STOP_REASON_CHARS = 255

RunInThread = Callable[..., Awaitable[Any]]


@dataclass
class LiveTask:
    task_arn: str
    cluster: str
    clients: aws.Clients
    # Set once ECS reported the container exited: the task then stops by itself.
    exited: bool = False


_live: dict[str, LiveTask] = {}
_lock = threading.Lock()


def start(clients: aws.Clients, request: dict[str, Any]) -> LiveTask:
    """RunTask and register the task (blocking; called in a worker thread)."""
    task = launch.run_task(clients.ecs, request)
    live = LiveTask(task_arn=task["taskArn"], cluster=request["cluster"], clients=clients)
    with _lock:
        _live[live.task_arn] = live
    return live


def stop(clients: aws.Clients, cluster: str, task_arn: str, reason: str) -> None:
    """StopTask with ``reason`` (blocking). Raises ECSExecutorError."""
    aws.call(
        clients.ecs.stop_task,
        f"stop the task ({reason})",
        cluster=cluster,
        task=task_arn,
        reason=reason,
    )


_E = TypeVar("_E", bound=BaseException)


def with_stop_reason(exc: _E, reason: str) -> _E:
    """Mark ``exc`` with the StopTask reason the guard should give when it ends a run."""
    exc.stop_reason = reason  # type: ignore[attr-defined]
    return exc


def stop_reason(exc: BaseException | None, label: str) -> str:
    """Why a run stops its task: the exception's own ``stop_reason``, else what ended it."""
    own = getattr(exc, "stop_reason", "")
    if own:
        reason = str(own)
    elif exc is None or isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
        reason = f"{SHUTDOWN_REASON} ({label})"
    else:
        reason = f"{SHUTDOWN_REASON} after {type(exc).__name__} ({label})"
    return reason[:MAX_STOP_REASON_CHARS]


@contextlib.asynccontextmanager
async def guarded(
    clients: aws.Clients,
    request: dict[str, Any],
    *,
    run_in_thread: RunInThread,
    label: str,
) -> AsyncIterator[LiveTask]:
    """RunTask, then yield the live task; stop it if the block ends before it exited.

    ``label`` names the run in stop reasons (e.g. "dispatch <id>, node 3").
    """
    live = await run_in_thread(start, clients, request)
    reason = stop_reason(None, label)
    try:
        yield live
    except BaseException as exc:
        reason = stop_reason(exc, label)
        raise
    finally:
        if live.exited:
            _forget(live)
        else:
            await _stop_within_bound(live, reason, run_in_thread)


async def _stop_within_bound(live: LiveTask, reason: str, run_in_thread: RunInThread) -> None:
    """Stop the task, waiting at most STOP_WAIT_S; on failure leave it to the exit hook."""
    attempt = asyncio.ensure_future(
        run_in_thread(stop, live.clients, live.cluster, live.task_arn, reason)
    )
    try:
        await asyncio.wait_for(asyncio.shield(attempt), STOP_WAIT_S)
    except (ECSExecutorError, asyncio.TimeoutError, asyncio.CancelledError) as err:
        print(
            f"[covalent-ecs] warning: could not stop ECS task {live.task_arn} yet "
            f"({type(err).__name__}: {err}); it will be stopped when this process exits",
            file=sys.stderr,
        )
        return
    _forget(live)


def _forget(live: LiveTask) -> None:
    with _lock:
        _live.pop(live.task_arn, None)


@atexit.register
def stop_all_at_exit() -> None:
    """Stop every task still registered (its run never cleaned up), concurrently."""
    with _lock:
        leftovers = list(_live.values())
        _live.clear()
    if not leftovers:
        return
    reason = f"{SHUTDOWN_REASON} (its process exited)"
    pool = ThreadPoolExecutor(max_workers=EXIT_STOP_THREADS, thread_name_prefix="covalent-ecs-exit")
    futures = [
        pool.submit(stop, live.clients, live.cluster, live.task_arn, reason) for live in leftovers
    ]
    wait(futures, timeout=EXIT_STOP_WAIT_S)
    pool.shutdown(wait=False, cancel_futures=True)
