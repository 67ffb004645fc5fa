"""Worker threads for blocking boto3 calls: control calls never queue behind transfers.

boto3 is synchronous, so every AWS call of a run goes to a thread. Two pools: one for
control calls (RunTask, DescribeTasks, StopTask, task definitions, logs) and one for
S3 transfers of payloads and results, so that a cancel's StopTask or the poller's
DescribeTasks never waits behind a multi-GB upload. Shared by every executor of the
process (module state: executor attributes must stay JSON-serialisable).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Sized for many concurrent tasks (asyncio's default pool has only cpu_count + 4). A
# control call is short; a transfer thread also drives s3transfer's own part threads.
CONTROL_THREADS = 32
TRANSFER_THREADS = 32

_control = ThreadPoolExecutor(max_workers=CONTROL_THREADS, thread_name_prefix="covalent-ecs")
_transfer = ThreadPoolExecutor(
    max_workers=TRANSFER_THREADS, thread_name_prefix="covalent-ecs-transfer"
)


async def control(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a control call (ECS, logs, STS) in the control pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_control, functools.partial(fn, *args, **kwargs))


async def transfer(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run an S3 transfer (payload upload, result download, cleanup) in its own pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_transfer, functools.partial(fn, *args, **kwargs))
