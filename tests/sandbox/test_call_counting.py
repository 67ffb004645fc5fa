"""The sandbox tells the executor's calls from the runner's (and other programs')."""

from __future__ import annotations

from covalent_ecs_executor.sandbox.calls import CallCounter, caller_of


def _agent(user_agent: str) -> dict[str, str]:
    return {"HTTP_USER_AGENT": user_agent}


def test_callers_are_named_from_the_user_agent() -> None:
    assert caller_of(_agent("Boto3/1.40 md/Botocore#1.40 covalent-ecs-executor/0.1.0")) == "client"
    assert caller_of(_agent("Boto3/1.40 covalent-ecs-runtime/0.1.0")) == "runner"
    assert caller_of(_agent("Boto3/1.24.35 sandbox-caller/original-client")) == "original-client"
    assert caller_of(_agent("aws-cli/2.15")) == "other"
    assert caller_of({}) == "other"


def test_counts_are_kept_per_caller_and_summed_for_the_total() -> None:
    counter = CallCounter()
    counter.add("s3.PutObject", "client")
    counter.add("s3.PutObject", "runner")
    counter.add("s3.GetObject", "runner")
    counter.add("ecs.RunTask")
    assert counter.snapshot() == {"ecs.RunTask": 1, "s3.GetObject": 1, "s3.PutObject": 2}
    assert counter.snapshot_by_caller() == {
        "client": {"s3.PutObject": 1},
        "other": {"ecs.RunTask": 1},
        "runner": {"s3.GetObject": 1, "s3.PutObject": 1},
    }
    counter.reset()
    assert counter.snapshot_by_caller() == {}
