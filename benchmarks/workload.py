"""The functions the benchmark runs as tasks, for both plugins.

Pickled by value (``cloudpickle.register_pickle_by_value``): the task processes cannot
import this file. Standard library only, so both plugins' runners can load them.
"""

from __future__ import annotations

import time


def sleep_then_return(index: int, seconds: float) -> int:
    """A task that takes ``seconds`` and returns something small."""
    time.sleep(seconds)
    return index * 2


def size_of(data: bytes) -> int:
    """A task that receives a large argument and returns something small."""
    return len(data)


def make_bytes(size: int) -> bytes:
    """A task that returns a large result."""
    return b"\x01" * size
