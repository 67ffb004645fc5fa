"""A real Covalent server with this plugin installed, configured for the sandbox.

The server reads the same covalent.conf as the test process (tests/conftest.py points
COVALENT_CONFIG_DIR at the session's temp dir), with ``[executors.ecs]`` set to the
sandbox's block, so ``executor="ecs"`` in a lattice runs on the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from waiting import wait_for


@pytest.fixture(scope="session")
def covalent_server(sandbox) -> Iterator[object]:
    from covalent_ecs_executor.sandbox.covalent_server import CovalentServer

    with CovalentServer(executor_config=sandbox.executor_config) as server:
        yield server


# A dispatch's final states. ct.get_result(wait=True) polls for them with no ceiling
# (covalent 0.240 retries "for sys.maxsize"), so the tests wait with wait_for instead.
FINAL_STATUSES = {"COMPLETED", "FAILED", "CANCELLED"}
# Every dispatch in these tests takes seconds; this bounds a broken one.
DISPATCH_CEILING_S = 240.0


def final_result(dispatch_id: str, *, timeout_s: float = DISPATCH_CEILING_S) -> Any:
    """The dispatch's result once it reached a final state; fails after ``timeout_s``."""
    import covalent as ct

    wait_for(
        lambda: str(ct.get_result(dispatch_id, status_only=True)["status"]) in FINAL_STATUSES,
        timeout_s=timeout_s,
        interval_s=0.25,  # each poll is a request to the Covalent server
        what=f"dispatch {dispatch_id} to reach a final state",
    )
    return ct.get_result(dispatch_id, wait=False)


@pytest.fixture
def result_of(covalent_server) -> Callable[..., Any]:
    """``result_of(dispatch_id, timeout_s=...)``: its final result (see final_result)."""
    return final_result


@pytest.fixture
def dispatch(covalent_server, fresh_sandbox) -> Callable[..., Any]:
    """Dispatch a lattice and wait (bounded) for its final result."""
    import covalent as ct

    def run(lattice, *args, timeout_s: float = DISPATCH_CEILING_S, **kwargs):
        dispatch_id = ct.dispatch(lattice)(*args, **kwargs)
        return final_result(dispatch_id, timeout_s=timeout_s)

    return run
