"""Pure pieces of throttling handling: ECS's disguised throttling relabelled for
botocore, the client-side launch pacer, and the poller letting go of a cancelled watch.
(The sandbox's model of AWS's limits is tested in tests/sandbox/.)"""

import pytest
from fake_clock import FakeClock
from waiting import wait_for_async

from covalent_ecs_executor import aws, launch


def parsed(code, message):
    return (None, {"Error": {"Code": code, "Message": message}})


@pytest.mark.parametrize("code", ["ClientException", "InvalidParameterException"])
def test_ecs_rate_exceeded_in_disguise_becomes_throttling_for_botocore(code):
    response = parsed(code, "Rate exceeded")
    assert aws.mark_disguised_throttling(response=response) is None  # botocore decides
    assert response[1]["Error"] == {
        "Code": "ThrottlingException", "Message": "Rate exceeded", "OriginalCode": code,
    }  # fmt: skip


def test_a_real_client_error_is_left_alone():
    response = parsed("ClientException", "Cluster not found.")
    aws.mark_disguised_throttling(response=response)
    assert response[1]["Error"]["Code"] == "ClientException"
    aws.mark_disguised_throttling(response=None)  # a connection error has no response


def test_the_launch_pacer_lets_the_burst_through_then_spaces_launches():
    clock = FakeClock()
    pacer = launch.LaunchPacer(burst=3, rate_per_s=2, clock=clock)
    assert [pacer.reserve() for _ in range(3)] == [0, 0, 0]
    assert [pacer.reserve() for _ in range(3)] == [0.5, 1.0, 1.5]  # queued behind
    clock.now = 10.0  # idle: the bucket refills, but only to its burst
    assert [pacer.reserve() for _ in range(4)] == [0, 0, 0, 0.5]


async def test_a_cancelled_watch_leaves_the_poller_and_its_calls_stop():
    import asyncio

    from covalent_ecs_executor.poller import TaskPoller

    class RunningForever:
        calls = 0

        def describe_tasks(self, cluster, tasks):
            RunningForever.calls += 1
            return {"tasks": [{"taskArn": arn, "lastStatus": "RUNNING", "containers": []} for arn in tasks]}

    async def in_thread(fn, /, *args, **kwargs):
        return fn(*args, **kwargs)

    poller = TaskPoller(RunningForever(), in_thread)
    watch = asyncio.ensure_future(poller.watch("c", "a", interval_s=0.01))
    await wait_for_async(lambda: RunningForever.calls >= 2, what="two polling cycles")
    watch.cancel()  # what ECSExecutor does on cancel or time limit
    await wait_for_async(lambda: poller.watched == 0, what="the watch to leave")
    # The loop ends, nothing left to describe (the name poller.py gives its task).
    await wait_for_async(
        lambda: not any(t.get_name() == "covalent-ecs-poller" for t in asyncio.all_tasks()),
        what="the polling loop to end",
    )
