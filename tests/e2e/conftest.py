"""A real Covalent server with this plugin installed, configured for the sandbox.

The server reads the same covalent.conf as the test process (tests/conftest.py points
COVALENT_CONFIG_DIR at the session's temp dir), with ``[executors.ecs]`` set to the
sandbox's block, so ``executor="ecs"`` in a lattice runs on the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def covalent_server(sandbox) -> Iterator[object]:
    from covalent_ecs_executor.sandbox.covalent_server import CovalentServer

    with CovalentServer(executor_config=sandbox.executor_config) as server:
        yield server


@pytest.fixture
def dispatch(covalent_server, fresh_sandbox):
    """Dispatch a lattice and wait for its result (bounded)."""
    import covalent as ct

    def run(lattice, *args, timeout_s: float = 240, **kwargs):
        dispatch_id = ct.dispatch(lattice)(*args, **kwargs)
        return ct.get_result(dispatch_id, wait=True, status_only=False)

    return run
