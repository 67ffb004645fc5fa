"""A real Covalent server with this plugin installed, configured for the sandbox.

``covalent_server`` is the pytest plugin's ``covalent_ecs_server`` (the one way to
start one for tests, covalent_ecs_pytest/plugin.py): its covalent.conf, which the test
process reads too, has ``[executors.ecs]`` set to the sandbox's block, so
``executor="ecs"`` in a lattice runs on the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# Every dispatch in these tests takes seconds; this bounds a broken one.
DISPATCH_CEILING_S = 240.0


@pytest.fixture(scope="session")
def covalent_server(covalent_ecs_server: Any) -> Any:
    return covalent_ecs_server


@pytest.fixture
def result_of(covalent_server) -> Callable[..., Any]:
    """``result_of(dispatch_id, timeout_s=...)``: its final result, waited for with a
    ceiling (CovalentServer.result; ct.get_result(wait=True) has none)."""

    def result(dispatch_id: str, *, timeout_s: float = DISPATCH_CEILING_S) -> Any:
        return covalent_server.result(dispatch_id, timeout_s=timeout_s)

    return result


@pytest.fixture
def dispatch(result_of, fresh_sandbox) -> Callable[..., Any]:
    """Dispatch a lattice and wait (bounded) for its final result."""
    import covalent as ct

    def run(lattice, *args, timeout_s: float = DISPATCH_CEILING_S, **kwargs):
        return result_of(ct.dispatch(lattice)(*args, **kwargs), timeout_s=timeout_s)

    return run
