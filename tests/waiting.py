"""Waiting on a condition in tests: poll until truthy, with a ceiling (never a pace).

``wait_for`` for plain code, ``wait_for_async`` inside an event loop (it yields to the
loop between polls, so the code under test keeps running)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest


def _timed_out(predicate: Callable[[], Any], timeout_s: float, what: str) -> NoReturn:
    pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")


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
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            _timed_out(predicate, timeout_s, what)
        time.sleep(interval_s)


async def wait_for_async(
    predicate: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    what: str = "",
    interval_s: float = 0.005,
) -> Any:
    """``wait_for`` for a coroutine: the same contract, sleeping with asyncio."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            _timed_out(predicate, timeout_s, what)
        await asyncio.sleep(interval_s)
