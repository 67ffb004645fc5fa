"""Worker threads for blocking boto3 calls, in three pools so that no call that decides
when a run returns queues behind bulk work.

boto3 is synchronous, so every AWS call of a run goes to a thread:

* control: RunTask, DescribeTasks, StopTask, task definitions, logs. A cancel's StopTask
  or the poller's DescribeTasks never waits behind a multi-GB transfer.
* upload: payload uploads. Runs stage their payloads shortly before their launch
  slots (ecs.py), so uploads come at Fargate's launch rate, 20 a second after a burst
  of 100 (docs/facts.md): UPLOAD_THREADS keep up while a PutObject takes up to
  UPLOAD_THREADS / 20 s (0.8 s). Not more, because each busy thread competes with the
  event loop for the GIL (pickling, signing, botocore's request building): with a
  hundred busy (1000 uploads at once sharing one pool with downloads, each with its
  own transfer-manager threads) the loop, which hands out every DescribeTasks answer,
  fell seconds behind.
* collect: the S3 calls of a task whose container exited (result download, record,
  cleanup). Their own threads, so an early finisher's result is fetched at once
  rather than after the uploads of every run still waiting to launch; enough of them
  for the 100 tasks of a launch burst finishing together (300 calls): with 32, their
  calls queued for up to 2 s behind each other at N = 1000 in the sandbox.

Shared by every executor of the process (module state: executor attributes must stay
JSON-serialisable). Their threads are daemons (DaemonThreadPool): an exiting process
never waits for a call still running in them.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

# Sized for many concurrent tasks (asyncio's default pool has only cpu_count + 4). A
# control call is short; the upload of a large payload also drives s3transfer's part
# threads.
CONTROL_THREADS = 32
UPLOAD_THREADS = 16
COLLECT_THREADS = 64

class DaemonThreadPool(Executor):
    """ThreadPoolExecutor's job, with threads that never hold the interpreter's exit.

    concurrent.futures' ThreadPoolExecutor joins its workers when the interpreter exits
    (before atexit handlers run), and each first finishes its call and everything still
    queued: a Ctrl-C'd script would wait for a StopTask stuck in botocore's retries, or
    for the rest of a multi-GB upload, with no bound. These threads are daemons, so an
    exiting process waits only for what the live-task guard and the exit hook bound
    (livetasks.STOP_WAIT_S, EXIT_STOP_WAIT_S); a call still running is abandoned with
    the process. Threads start on demand up to ``max_workers``; ``shutdown`` ends them
    once the queue is done. Same constructor as ThreadPoolExecutor, so s3transfer can
    use it for a transfer's part threads (staging._upload_file).
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "covalent-ecs-pool") -> None:
        self._max_workers = max_workers
        self._name = thread_name_prefix
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # waiting workers no submitted call has claimed yet
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.put((future, functools.partial(fn, *args, **kwargs)))
            if self._idle:
                self._idle -= 1  # that worker takes it
            elif len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)  # after every queued call: each worker ends on one
        if wait:
            for thread in threads:
                thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, call  # keep no finished call's arguments or result alive
            with self._lock:
                self._idle += 1


_control = DaemonThreadPool(CONTROL_THREADS, "covalent-ecs")
_upload = DaemonThreadPool(UPLOAD_THREADS, "covalent-ecs-upload")
_collect = DaemonThreadPool(COLLECT_THREADS, "covalent-ecs-collect")


async def _in(pool: Executor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))


async def control(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a control call (ECS, logs, STS) in the control pool."""
    return await _in(_control, fn, *args, **kwargs)


async def upload(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a payload upload (pickling included) in the upload pool. ``fn`` is given
    ``cancelled``, an event set if the awaiting run is cancelled, so a long upload can
    stop rather than go on in its thread (staging.upload_payload)."""
    cancelled = threading.Event()
    try:
        return await _in(_upload, fn, *args, cancelled=cancelled, **kwargs)
    except asyncio.CancelledError:
        cancelled.set()
        raise


async def collect(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a finished task's S3 call (result download, record, cleanup) in its pool."""
    return await _in(_collect, fn, *args, **kwargs)
