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
JSON-serialisable).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Sized for many concurrent tasks (asyncio's default pool has only cpu_count + 4). A
# control call is short; the upload of a large payload also drives s3transfer's part
# threads.
CONTROL_THREADS = 32
UPLOAD_THREADS = 16
COLLECT_THREADS = 64

_control = ThreadPoolExecutor(max_workers=CONTROL_THREADS, thread_name_prefix="covalent-ecs")
_upload = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="covalent-ecs-upload")
_collect = ThreadPoolExecutor(
    max_workers=COLLECT_THREADS, thread_name_prefix="covalent-ecs-collect"
)


async def _in(pool: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))


async def control(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a control call (ECS, logs, STS) in the control pool."""
    return await _in(_control, fn, *args, **kwargs)


async def upload(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a payload upload (pickling included) in the upload pool."""
    return await _in(_upload, fn, *args, **kwargs)


async def collect(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a finished task's S3 call (result download, record, cleanup) in its pool."""
    return await _in(_collect, fn, *args, **kwargs)
