"""Pure pieces of failure handling: throttling relabelled, the launch pacer, AWS's
token buckets as the sandbox models them, and fault descriptions."""

import json

import pytest

from covalent_ecs_executor import aws, launch
from covalent_ecs_executor.sandbox.faults import (
    FaultBook,
    FaultSpecError,
    label_matches,
    parse_fault,
)
from covalent_ecs_executor.sandbox.limits import DISGUISED_EVERY, AwsLimits, BucketSpec, TokenBucket


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


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_launch_pacer_lets_the_burst_through_then_spaces_launches():
    clock = FakeClock()
    pacer = launch.LaunchPacer(burst=3, rate_per_s=2, clock=clock)
    assert [pacer.reserve() for _ in range(3)] == [0, 0, 0]
    assert [pacer.reserve() for _ in range(3)] == [0.5, 1.0, 1.5]  # queued behind
    clock.now = 10.0  # idle: the bucket refills, but only to its burst
    assert [pacer.reserve() for _ in range(4)] == [0, 0, 0, 0.5]


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(BucketSpec(burst=2, refill_per_s=1), clock)
    assert bucket.take() and bucket.take() and not bucket.take()
    clock.now = 1.0
    assert bucket.take() and not bucket.take()
    clock.now = 100.0
    assert bucket.available() == 2


def run_task_environ(count):
    import io

    body = json.dumps({"count": count}).encode()
    return {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}


def test_aws_limits_count_launches_and_refuse_like_ecs():
    clock = FakeClock()
    limits = AwsLimits(clock)
    # Fargate launches (100 burst) run out before RunTask calls (100 burst) do.
    for _ in range(10):
        assert limits.refusal("ecs.RunTask", run_task_environ(10)) is None
    codes = [limits.refusal("ecs.RunTask", run_task_environ(1)) for _ in range(DISGUISED_EVERY)]
    assert codes == ["ThrottlingException"] * (DISGUISED_EVERY - 1) + ["ClientException"]
    assert limits.refusal("ecs.DescribeTasks", {}) is None  # its own bucket
    assert limits.refusal("s3.PutObject", {}) is None  # not an ECS limit
    clock.now = 1.0  # 20 launches refilled
    assert limits.refusal("ecs.RunTask", run_task_environ(10)) is None


def test_a_fault_names_what_is_wrong_with_it():
    with pytest.raises(FaultSpecError, match="kind='oops' is not a fault; choose one of oom"):
        parse_fault({"kind": "oops"})
    with pytest.raises(FaultSpecError, match="times=0"):
        parse_fault({"kind": "oom", "times": 0})
    assert parse_fault({"kind": "s3_error"}).operations == ["s3.PutObject", "s3.GetObject"]


def test_a_fault_matches_its_node_its_dispatch_or_anything():
    assert label_matches("d1/3", "d1/3") and not label_matches("d1/3", "d1/30")
    assert label_matches("d1", "d1/30") and not label_matches("d1", "d10/3")
    assert label_matches(None, None) and not label_matches("d1", None)


def test_a_fault_is_used_up_after_times_tasks():
    book = FaultBook()
    book.add({"kind": "oom", "label": "d1", "times": 2})
    taken = [book.take_task_fault(label, f"arn-{n}") for n, label in enumerate(["d2/0", "d1/0", "d1/1", "d1/2"])]
    assert [f.kind if f else None for f in taken] == [None, "oom", "oom", None]
    assert book.records()[0]["applied_to"] == ["arn-1", "arn-2"]


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
    while RunningForever.calls < 2:
        await asyncio.sleep(0.01)
    watch.cancel()  # what ECSExecutor does on cancel or time limit
    await asyncio.sleep(0.05)
    assert poller.watched == 0
    calls = RunningForever.calls
    await asyncio.sleep(0.3)
    assert RunningForever.calls == calls  # the loop ended: nothing left to describe
