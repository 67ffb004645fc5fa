"""Waiting on a condition in tests: poll until truthy, with a ceiling (never a pace).

``wait_for`` for plain code, ``wait_for_async`` inside an event loop (it yields to the
loop between polls, so the code under test keeps running)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


class _Poll:
    """One condition under a deadline: each call polls once; truthy when it holds."""

    def __init__(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
        self._predicate = predicate
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        self._what = what or str(predicate)
        self.value: Any = None

    def __call__(self) -> bool:
        self.value = self._predicate()
        if self.value:
            return True
        if time.monotonic() > self._deadline:
            pytest.fail(f"timed out after {self._timeout_s} s waiting for {self._what}")
        return False


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    what: str = "",
    interval_s: float = 0.02,
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail the
    test after ``timeout_s``. The ceiling only matters when something is broken, so keep
    it generous: CI machines are sometimes slow. ``interval_s`` spaces the polls (longer
    for a predicate that costs a server round trip)."""
    poll = _Poll(predicate, timeout_s, what)
    while not poll():
        time.sleep(interval_s)
    return poll.value


async def wait_for_async(
    predicate: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    what: str = "",
    interval_s: float = 0.005,
) -> Any:
    """``wait_for`` for a coroutine: the same contract, sleeping with asyncio."""
    poll = _Poll(predicate, timeout_s, what)
    while not poll():
        await asyncio.sleep(interval_s)
    return poll.value
