"""The sandbox's model of AWS's limits and its scripted faults: pure pieces (token
buckets, fault descriptions and matching), then the same through a running sandbox."""

from __future__ import annotations

import json
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from fake_clock import FakeClock

from covalent_ecs_executor.sandbox.faults import (
    FaultBook,
    FaultSpecError,
    label_matches,
    parse_fault,
)
from covalent_ecs_executor.sandbox.limits import DISGUISED_EVERY, AwsLimits, BucketSpec, TokenBucket


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


# ------------------------------------------------------- through a running sandbox
CALLER = f"limits-test-{uuid.uuid4().hex[:8]}"
THROTTLED = "throttled.ecs.RegisterTaskDefinition"


@pytest.mark.integration
def test_aws_limits_refuse_calls_beyond_the_bucket_as_ecs_does(limited_sandbox):
    assert limited_sandbox.limits()["buckets"]["RegisterTaskDefinition"]["burst"] == 20
    throttled_before = limited_sandbox.calls().get(THROTTLED, 0)
    no_retries = boto3.session.Session().client(
        "ecs",
        endpoint_url=limited_sandbox.endpoint_url,
        region_name=limited_sandbox.executor_config["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # Its calls are counted under their own caller: the sandbox is shared.
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            user_agent_extra=f"sandbox-caller/{CALLER}",
        ),
    )
    refused = []
    for n in range(40):  # burst 20, refill 1/s: over the bucket unless this takes 15 s
        try:
            no_retries.register_task_definition(
                family="limits-test",
                containerDefinitions=[{"name": "main", "image": "busybox", "memory": 64}],
            )
        except botocore.exceptions.ClientError as err:
            refused.append((n, err.response["Error"]))
    assert len(refused) >= 5
    assert refused[0][0] >= 19  # the burst went through first
    assert {e["Message"] for _, e in refused} == {"Rate exceeded"}
    # Mostly ThrottlingException, and now and then ECS's disguise.
    assert {e["Code"] for _, e in refused} == {"ThrottlingException", "ClientException"}
    assert limited_sandbox.calls_by_caller()[CALLER] == {"ecs.RegisterTaskDefinition": 40}
    # Refusals are counted apart from their caller; nothing else registers meanwhile.
    throttled = limited_sandbox.calls()[THROTTLED] - throttled_before
    assert throttled == len(refused)


@pytest.mark.integration
def test_a_fault_the_sandbox_does_not_know_is_refused_naming_the_kinds(sandbox):
    before = sandbox.faults()
    with pytest.raises(ValueError, match="kind='meteor' is not a fault; choose one of oom, "):
        sandbox.add_fault("meteor")
    with pytest.raises(ValueError, match=r"unknown fault field\(s\) \['after'\]"):
        sandbox.add_fault("oom", after=3)
    assert sandbox.faults() == before  # nothing was added
