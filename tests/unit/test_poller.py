"""The shared poller's batching and pacing, against a stand-in ECS that records calls.

The sandbox tests cover the same loop against moto; this one can drive 250 tasks and
throttling deterministically.
"""

import asyncio
import itertools
import threading
import time

import pytest
from botocore.exceptions import ClientError
from waiting import wait_for_async

from covalent_ecs_executor import events, poller, threads
from covalent_ecs_executor.poller import DESCRIBE_TASKS_MAX_ARNS, STOPPED, TaskPoller
from covalent_ecs_runtime import contract


class StandInECS:
    """Answers DescribeTasks from a dict of task states; records each call's ARNs."""

    def __init__(self):
        self.states = {}
        self.calls = []
        self.throttle_next = 0

    def describe_tasks(self, cluster, tasks):
        self.calls.append(list(tasks))
        if self.throttle_next:
            self.throttle_next -= 1
            raise ClientError({"Error": {"Code": "ClientException", "Message": "Rate exceeded"}}, "DescribeTasks")
        found = [self._task(arn) for arn in tasks if arn in self.states]
        missing = [{"arn": arn, "reason": "MISSING"} for arn in tasks if arn not in self.states]
        return {"tasks": found, "failures": missing}

    def _task(self, arn):
        state = self.states[arn]
        container = {"name": contract.CONTAINER_NAME, "lastStatus": "RUNNING"}
        if state in ("exited", "stopped"):
            container.update(lastStatus="STOPPED", exitCode=0)
        return {"taskArn": arn, "lastStatus": "STOPPED" if state == "stopped" else "RUNNING", "containers": [container]}


async def in_thread(fn, /, *args, **kwargs):
    return fn(*args, **kwargs)


# asyncio may fire a timer up to its clock resolution early; a bound checked against
# time.monotonic() gets this much slack (far below any period the tests tell apart).
CLOCK_SLACK_S = 0.005
# A barrier all of a cycle's calls reach at once; only a broken poller waits it out.
BARRIER_CEILING_S = 10.0

# The name poller.py gives its loop's asyncio task.
POLLER_TASK_NAME = "covalent-ecs-poller"


def three_chunks_of_tasks(ecs, state):
    """250 task ARNs in ``state``: DescribeTasks chunks of 100, 100 and 50."""
    arns = [f"arn:task/{i}" for i in range(250)]
    ecs.states = {arn: state for arn in arns}
    return arns


def poller_loop_ended() -> bool:
    return not any(task.get_name() == POLLER_TASK_NAME for task in asyncio.all_tasks())


async def test_250_tasks_cost_3_describe_calls_a_cycle():
    ecs = StandInECS()
    arns = three_chunks_of_tasks(ecs, "running")
    poller = TaskPoller(ecs, in_thread)
    watches = [asyncio.ensure_future(poller.watch("c", arn, interval_s=0.01)) for arn in arns]
    await wait_for_async(lambda: len(ecs.calls) >= 6, what="two polling cycles")
    assert [len(c) for c in ecs.calls[:3]] == [DESCRIBE_TASKS_MAX_ARNS, DESCRIBE_TASKS_MAX_ARNS, 50]
    for arn in arns:
        ecs.states[arn] = "exited"
    done = await asyncio.gather(*watches)
    assert {t["taskArn"] for t in done} == set(arns)


async def test_container_exit_is_enough_unless_stopped_is_asked_for():
    ecs = StandInECS()
    ecs.states = {"a": "exited"}
    poller = TaskPoller(ecs, in_thread)
    assert (await poller.watch("c", "a", interval_s=0.01))["lastStatus"] == "RUNNING"
    waiting = asyncio.ensure_future(poller.watch("c", "a", until=STOPPED, interval_s=0.01))
    seen = len(ecs.calls)
    await wait_for_async(lambda: len(ecs.calls) >= seen + 3, what="three more cycles")
    assert not waiting.done()  # it has seen the exited container three times
    ecs.states["a"] = "stopped"
    assert (await waiting)["lastStatus"] == "STOPPED"


async def test_an_idle_poller_makes_no_calls():
    ecs = StandInECS()
    ecs.states = {"a": "exited"}
    poller = TaskPoller(ecs, in_thread)
    await poller.watch("c", "a", interval_s=0.01)
    calls = len(ecs.calls)
    await wait_for_async(poller_loop_ended, what="the polling loop to end")
    assert len(ecs.calls) == calls and poller.watched == 0


async def test_throttling_slows_the_loop_but_fails_no_task():
    ecs = StandInECS()
    ecs.states = {"a": "running"}
    ecs.throttle_next = 12  # more than MAX_FAILED_CYCLES: throttling must never fail a watch
    poller = TaskPoller(ecs, in_thread)
    watch = asyncio.ensure_future(poller.watch("c", "a", interval_s=0.001))
    await wait_for_async(lambda: ecs.throttle_next == 0, what="every throttled cycle")
    ecs.states["a"] = "exited"
    assert (await asyncio.wait_for(watch, 60))["taskArn"] == "a"


async def test_a_task_ecs_never_knew_fails_after_the_grace_period(monkeypatch):
    from covalent_ecs_executor import poller as poller_module
    from covalent_ecs_executor.errors import LaunchError

    monkeypatch.setattr(poller_module, "MISSING_GRACE_S", 0.05)
    poller = TaskPoller(StandInECS(), in_thread)
    with pytest.raises(LaunchError, match="MISSING"):
        await asyncio.wait_for(poller.watch("c", "ghost", interval_s=0.01), 5)


@pytest.mark.parametrize(
    ("task", "started"),
    [
        ({}, False),
        ({"lastStatus": "PROVISIONING"}, False),
        ({"lastStatus": "PENDING", "containers": [{"name": contract.CONTAINER_NAME, "lastStatus": "PENDING"}]}, False),
        ({"lastStatus": "RUNNING"}, True),
        ({"lastStatus": "PENDING", "containers": [{"name": contract.CONTAINER_NAME, "lastStatus": "RUNNING"}]}, True),
        ({"lastStatus": "STOPPED"}, True),
    ],
)
def test_time_limit_starts_when_the_runner_container_starts(task, started):
    assert poller.container_started(task) is started


async def test_each_cycle_is_a_poll_cycle_event_with_its_watched_tasks_and_calls():
    ecs = StandInECS()
    arns = three_chunks_of_tasks(ecs, "running")
    cycles = []

    def on_event(event):
        if event["event"] == events.POLL_CYCLE:
            cycles.append(event)

    events.subscribe(on_event)
    try:
        watcher = TaskPoller(ecs, in_thread)
        watches = [asyncio.ensure_future(watcher.watch("c", arn, interval_s=0.01)) for arn in arns]
        await wait_for_async(lambda: len(cycles) >= 2, what="two poll-cycle events")
        for arn in arns:
            ecs.states[arn] = "exited"
        await asyncio.wait_for(asyncio.gather(*watches), 60)  # a ceiling, not a pace
    finally:
        events.unsubscribe(on_event)
    assert len(ecs.calls) == 3 * len(cycles)  # every call belongs to a reported cycle
    assert {(c["watched"], c["describe_calls"]) for c in cycles} == {(250, 3)}
    assert all(c["duration_s"] >= 0 and c["started"] > 0 for c in cycles)


class TimedECS(StandInECS):
    """Also records when each DescribeTasks call started (loop clock: time.monotonic)."""

    def __init__(self):
        super().__init__()
        self.started_at = []

    def describe_tasks(self, cluster, tasks):
        self.started_at.append(time.monotonic())
        return super().describe_tasks(cluster, tasks)


async def test_many_chunks_stretch_the_period_to_the_describe_rate():
    # 250 tasks: 3 calls a cycle, so cycles start at least 3 / DESCRIBE_CALLS_PER_S apart
    # however short the interval asked for.
    ecs = TimedECS()
    arns = three_chunks_of_tasks(ecs, "running")
    watcher = TaskPoller(ecs, in_thread)
    watches = [asyncio.ensure_future(watcher.watch("c", arn, interval_s=0.001)) for arn in arns]
    await wait_for_async(lambda: len(ecs.calls) >= 9, what="three cycles")
    for arn in arns:
        ecs.states[arn] = "exited"
    await asyncio.wait_for(asyncio.gather(*watches), 60)  # a ceiling, not a pace
    cycle_starts = ecs.started_at[::3]
    period_s = 3 / poller.DESCRIBE_CALLS_PER_S
    assert all(b - a >= period_s - CLOCK_SLACK_S for a, b in itertools.pairwise(cycle_starts))


async def test_after_a_throttled_cycle_the_backoff_counts_from_its_end():
    ecs = TimedECS()
    ecs.states = {"a": "running"}
    ecs.throttle_next = 1
    watcher = TaskPoller(ecs, in_thread)
    watch = asyncio.ensure_future(watcher.watch("c", "a", interval_s=0.2))
    await wait_for_async(lambda: len(ecs.calls) >= 2, what="the cycle after the throttled one")
    ecs.states["a"] = "exited"
    await asyncio.wait_for(watch, 60)
    # The first backoff is twice the interval, counted from the throttled call's end.
    assert ecs.started_at[1] - ecs.started_at[0] >= 2 * 0.2 - CLOCK_SLACK_S


async def test_the_chunks_of_a_cycle_are_described_at_once():
    # Each call waits for the cycle's other two at a barrier: described one after the
    # other, the first would wait out the barrier's ceiling and the cycle would fail.
    barrier = threading.Barrier(3, timeout=BARRIER_CEILING_S)

    class MeetingECS(StandInECS):
        def describe_tasks(self, cluster, tasks):
            if len(self.calls) < 3:
                barrier.wait()
            return super().describe_tasks(cluster, tasks)

    ecs = MeetingECS()
    arns = three_chunks_of_tasks(ecs, "exited")
    watcher = TaskPoller(ecs, threads.control)
    done = await asyncio.wait_for(
        asyncio.gather(*[watcher.watch("c", arn, interval_s=0.01) for arn in arns]), 60
    )
    assert {t["taskArn"] for t in done} == set(arns)
    assert len(ecs.calls) == 3 and not barrier.broken  # one cycle saw every exit


async def test_a_failed_chunk_does_not_hold_back_the_tasks_of_the_others():
    class OneChunkFails(StandInECS):
        def describe_tasks(self, cluster, tasks):
            if "arn:task/0" in tasks and len(self.calls) < 3:
                self.calls.append(list(tasks))
                raise ClientError({"Error": {"Code": "ServerException", "Message": "boom"}}, "DescribeTasks")
            return super().describe_tasks(cluster, tasks)

    ecs = OneChunkFails()
    arns = three_chunks_of_tasks(ecs, "exited")
    watcher = TaskPoller(ecs, in_thread)
    watches = {arn: asyncio.ensure_future(watcher.watch("c", arn, interval_s=0.01)) for arn in arns}
    later = [arns[DESCRIBE_TASKS_MAX_ARNS], arns[-1]]  # in the second and third chunks
    await asyncio.wait_for(asyncio.gather(*(watches[arn] for arn in later)), 60)
    assert len(ecs.calls) == 3  # the first cycle, whose first chunk failed
    await asyncio.wait_for(asyncio.gather(*watches.values()), 60)
