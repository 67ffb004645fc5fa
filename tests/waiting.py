"""Waiting on a condition in tests: poll until truthy, with a ceiling (never a pace)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail the
    test after ``timeout_s``. The ceiling only matters when something is broken, so keep
    it generous: CI machines are sometimes slow."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.02)
