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
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import aws, launch
from .errors import ECSExecutorError

CANCEL_REASON = "Cancelled by Covalent"
TIME_LIMIT_REASON = "Time limit exceeded"
START_TIMEOUT_REASON = "Start timeout exceeded"
SHUTDOWN_REASON = "Covalent stopped watching the task"
# How long a run waits for its StopTask before leaving the task to the exit hook
# (botocore's own retries may take longer under throttling; the run must end).
STOP_WAIT_S = 10.0
STOP_ATTEMPTS = 2
# At interpreter exit: StopTask calls in flight at once (RunTask/StopTask refill at
# 40/s per account), and the wait for all of them.
EXIT_STOP_THREADS = 16
EXIT_STOP_WAIT_S = 10.0

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
    # Set once our StopTask was accepted: its container may still be stopping.
    stopped: bool = False


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
async def guard(live: LiveTask, *, run_in_thread: RunInThread, label: str) -> AsyncIterator[LiveTask]:
    """Hold a started task; stop it if the block ends before its container exited.

    ``label`` names the run in stop reasons (e.g. "dispatch <id>, node 3"). When the
    stop fails, the exception ending the block carries ``stop_failure`` (a sentence
    naming the task ARN) for the node's error message.
    """
    reason = stop_reason(None, label)
    error: BaseException | None = None
    try:
        yield live
    except BaseException as exc:
        error = exc
        reason = stop_reason(exc, label)
        raise
    finally:
        if live.exited:
            _forget(live)
        else:
            failure = await _stop_within_bound(live, reason, run_in_thread)
            if failure and error is not None:
                error.stop_failure = failure  # type: ignore[attr-defined]


async def _stop_within_bound(live: LiveTask, reason: str, run_in_thread: RunInThread) -> str:
    """Stop the task, trying twice within STOP_WAIT_S; '' when ECS accepted.

    On failure the task stays registered, so the exit hook tries once more, and the
    returned sentence says which task may still be running.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_WAIT_S
    problem: BaseException | None = None
    for _ in range(STOP_ATTEMPTS):
        attempt = asyncio.ensure_future(
            run_in_thread(stop, live.clients, live.cluster, live.task_arn, reason)
        )
        try:
            await asyncio.wait_for(asyncio.shield(attempt), max(0.0, deadline - loop.time()))
        except (ECSExecutorError, asyncio.TimeoutError) as err:
            problem = err
            if loop.time() >= deadline:
                break
            continue
        except asyncio.CancelledError as err:
            problem = err
            break
        live.stopped = True
        _forget(live)
        return ""
    failure = (
        f"ECS task {live.task_arn} could not be stopped ({type(problem).__name__}: {problem}) "
        f"and may still be running: stop it with "
        f"`aws ecs stop-task --cluster {live.cluster} --task {live.task_arn}`"
    )
    print(f"[covalent-ecs] warning: {failure}", file=sys.stderr)
    return failure


def _forget(live: LiveTask) -> None:
    with _lock:
        _live.pop(live.task_arn, None)


@atexit.register
def stop_all_at_exit() -> None:
    """Stop every task still registered (its run never cleaned up), concurrently.

    Plain daemon threads: concurrent.futures refuses new work once the interpreter is
    shutting down, and a StopTask stuck in retries must not hold the exit past the bound.
    """
    with _lock:
        leftovers = list(_live.values())
        _live.clear()
    if not leftovers:
        return
    reason = f"{SHUTDOWN_REASON} (its process exited)"

    def stop_some() -> None:
        while True:
            try:
                live = leftovers.pop()
            except IndexError:
                return
            with contextlib.suppress(Exception):
                stop(live.clients, live.cluster, live.task_arn, reason)

    threads = [
        threading.Thread(target=stop_some, daemon=True, name="covalent-ecs-exit")
        for _ in range(min(EXIT_STOP_THREADS, len(leftovers)))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + EXIT_STOP_WAIT_S
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


_sigterm_lock = threading.Lock()
_sigterm_installed = False


def install_sigterm_handler() -> bool:
    """In a plain script, make SIGTERM end the process like Ctrl-C does: runs unwind,
    their guards stop their tasks, and the exit hook stops the rest.

    Python's default for SIGTERM kills the process without running ``finally`` blocks or
    exit hooks, which would leave every task running. Only the main thread may set a
    handler, and only the default one is replaced: a Covalent server (uvicorn) or an
    application with its own handler keeps it. True when the handler was installed.
    """
    global _sigterm_installed
    with _sigterm_lock:
        if _sigterm_installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _sigterm_installed = True
        return True


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A second SIGTERM while stopping tasks kills the process as before.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)
