"""The faults row: launches that fail for causes that may pass, at scale.

N tasks on Fargate Spot with ``spot_fallback``; the sandbox is scripted, per task
label (``<dispatch_id>/<node_id>``, faults.py: a fault applies to the next ``times``
matching tasks), so that

- 1% of the tasks fail to start with ECS's ENI provisioning timeout (``start_failure``:
  the container never runs, no exit code),
- 1% of the RunTask calls are refused for capacity (``capacity_unavailable``),
- 10% more are refused for Spot capacity (the same refusal: on Spot with
  ``spot_fallback`` the executor relaunches those on on-demand FARGATE).

Every task should complete; each scripted one once relaunched; and no task's code may
run twice. The agent's records say what ran: a container that never started has
``exitCode`` None, one that ran has a code. Pure functions: bench.py sends the plan
and reads the records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

ENI_TIMEOUT = "Timeout waiting for network interface provisioning to complete."
ENI_SHARE = 0.01
CAPACITY_SHARE = 0.01
SPOT_CAPACITY_SHARE = 0.10
# Fargate's task-launch bucket (docs/facts.md "AWS limits and throttles"), which the sandbox enforces.
LAUNCH_BURST = 100
LAUNCH_RATE_PER_S = 20.0


def _every(n: int, share: float) -> int:
    """The stride that picks ``share`` of ``n`` tasks (at least one task)."""
    return max(1, round(1 / share)) if n * share >= 1 else n


def plan(dispatch_id: str, n: int) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """The sandbox faults to script, and which nodes get which (disjoint, spread out)."""
    picked: dict[str, list[int]] = defaultdict(list)
    taken: set[int] = set()
    for kind, share, offset in (
        ("eni_timeout", ENI_SHARE, 7),
        ("capacity", CAPACITY_SHARE, 57),
        ("spot_capacity", SPOT_CAPACITY_SHARE, 3),
    ):
        stride = _every(n, share)
        for node in range(offset % stride, n, stride):
            if node not in taken and len(picked[kind]) < max(1, round(n * share)):
                picked[kind].append(node)
                taken.add(node)
    specs: list[dict[str, Any]] = []
    for kind, nodes in picked.items():
        for node in nodes:
            label = f"{dispatch_id}/{node}"
            if kind == "eni_timeout":
                specs.append({"kind": "start_failure", "label": label, "reason": ENI_TIMEOUT})
            else:
                specs.append({"kind": "capacity_unavailable", "label": label})
    return specs, dict(picked)


def launch_floor_s(launches: int) -> float:
    """The least time Fargate's launch bucket allows for ``launches`` launches."""
    return max(0.0, (launches - LAUNCH_BURST) / LAUNCH_RATE_PER_S)


def outcome(
    records: list[dict[str, Any]],
    picked: dict[str, list[int]],
    faults: list[dict[str, Any]],
    dispatch_id: str,
) -> dict[str, Any]:
    """What the sandbox saw: tasks started per node, containers that ran, duplicates."""
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_node[(record.get("label") or "").rpartition("/")[2]].append(record)
    ran = {node: sum(r["exitCode"] is not None for r in rs) for node, rs in by_node.items()}
    mine = [f for f in faults if (f.get("label") or "").startswith(f"{dispatch_id}/")]
    return {
        "scripted": {kind: len(nodes) for kind, nodes in picked.items()},
        "faults_applied": sum(f["used"] for f in mine),
        "faults_unused": sum(f["times"] - f["used"] for f in mine),
        "tasks_started": len(records),
        "never_ran": sum(r["exitCode"] is None for r in records),
        "nodes_ran_once": sum(count == 1 for count in ran.values()),
        "duplicate_executions": sum(count - 1 for count in ran.values() if count > 1),
        "eni_nodes_started_twice": sum(
            len(by_node.get(str(node), [])) == 2 for node in picked.get("eni_timeout", [])
        ),
    }


def launch_target_s(launch_attempts: int, backoff_max_s: float) -> dict[str, float]:
    """The launch phase's target: 10% over the floor of every launch attempt (each takes
    a token from the launch bucket, a refused one too, as the sandbox and the executor's
    pacer count them), plus the longest first-relaunch backoff."""
    floor = launch_floor_s(launch_attempts)
    return {
        "launch_attempts": launch_attempts,
        "floor_s": round(floor, 2),
        "backoff_max_s": backoff_max_s,
        "target_s": round(math.ceil((floor * 1.1 + backoff_max_s) * 10) / 10, 1),
    }
