"""Run nodes through ``ECSExecutor.run()`` directly (no Covalent server).

Importable because pytest puts tests/ (tests/conftest.py's folder) on sys.path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from covalent_ecs_executor import ECSExecutor


def run_nodes(
    executor: ECSExecutor, calls: list[tuple[Any, tuple, dict]], dispatch_id: str
) -> list[Any]:
    """Run each ``(fn, args, kwargs)`` as node 0, 1, ... concurrently; a node that
    failed gives its exception in its place."""

    async def main() -> list[Any]:
        return await asyncio.gather(
            *[
                executor.run(fn, list(args), dict(kwargs),
                             {"dispatch_id": dispatch_id, "node_id": i, "results_dir": "/tmp"})
                for i, (fn, args, kwargs) in enumerate(calls)
            ],
            return_exceptions=True,
        )  # fmt: skip

    return asyncio.run(main())
