"""The poller's period against the sandbox, with DescribeTasks made slow by a scripted
``slow_response`` fault: the call's time is taken out of the period, not added to it.

The poller watches an ARN no task has (ECS answers it as MISSING, which fails a watch
only after poller.MISSING_GRACE_S): the period does not depend on the task, and the
test starts nothing in the shared sandbox.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
from waiting import wait_for_async

from covalent_ecs_executor import aws, events, poller, threads
from covalent_ecs_executor.config import build_config

pytestmark = pytest.mark.integration

INTERVAL_S = 2.0
# Shorter than the interval: start to start, a slow cycle leaves INTERVAL_S - DELAY_S
# idle; sleeping the interval after each cycle (the bug) leaves INTERVAL_S.
DELAY_S = 1.5
SLOW_CYCLES = 3
# Three periods of INTERVAL_S each; ten times that for a loaded 2-core machine.
CYCLES_CEILING_S = 10 * SLOW_CYCLES * INTERVAL_S


def test_a_slow_describe_tasks_is_taken_out_of_the_poll_period(fresh_sandbox):
    config = build_config(fresh_sandbox.executor_config, {})
    clients = aws.clients_for(config)
    cluster = config.ecs_cluster_name
    ghost = f"arn:aws:ecs:{clients.region}:{clients.account_id}:task/{cluster}/{uuid.uuid4().hex}"
    cycles: list[dict] = []

    def on_event(event: dict) -> None:
        if event["event"] == events.POLL_CYCLE:
            cycles.append(event)

    async def watch_slow_cycles() -> None:
        watcher = poller.TaskPoller(clients.ecs, threads.control)
        watch = asyncio.ensure_future(watcher.watch(cluster, ghost, interval_s=INTERVAL_S))
        try:
            await wait_for_async(
                lambda: len(cycles) >= SLOW_CYCLES, timeout_s=CYCLES_CEILING_S,
                what=f"{SLOW_CYCLES} poll cycles",
            )  # fmt: skip
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    fresh_sandbox.add_fault(
        "slow_response", operations=["ecs.DescribeTasks"], delay_s=DELAY_S, times=SLOW_CYCLES
    )
    events.subscribe(on_event)
    try:
        asyncio.run(watch_slow_cycles())
    finally:
        events.unsubscribe(on_event)
        fresh_sandbox.clear_faults()
    slow = cycles[:SLOW_CYCLES]
    assert all(c["describe_calls"] == 1 and c["duration_s"] >= DELAY_S for c in slow), slow
    for before, after in itertools.pairwise(slow):
        idle_s = after["started"] - before["started"] - before["duration_s"]
        assert idle_s < INTERVAL_S, (idle_s, slow)
