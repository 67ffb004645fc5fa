"""The staging bucket must belong to the client's account, on every S3 request.

The sandbox enforces ``ExpectedBucketOwner`` as S3 does (403 AccessDenied, the owner
not revealed; moto alone ignores it) and records, per caller, the owner each S3
request named.
"""

from __future__ import annotations

import uuid
from typing import Any

import botocore.exceptions
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from executor_runs import run_nodes

from covalent_ecs_executor import ECSExecutor, StagingError
from covalent_ecs_runtime import runner

pytestmark = pytest.mark.integration

FOREIGN_ACCOUNT = "111122223333"
# Above the transfer manager's 8 MiB multipart threshold: CreateMultipartUpload,
# UploadPart and CompleteMultipartUpload must name the owner too.
# Above the runner's single-PutObject limit (and the client's 8 MiB multipart threshold):
# both sides' multipart uploads are exercised.
MULTIPART_BYTES = runner._SINGLE_PUT_MAX_BYTES + 1024 * 1024


def new_dispatch_id() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}"


def account_of(sandbox: Any) -> str:
    return sandbox.client("sts", internal=True).get_caller_identity()["Account"]


def test_the_sandbox_answers_a_wrong_expected_owner_with_403_like_s3(sandbox):
    s3 = sandbox.client("s3", internal=True)
    bucket = sandbox.executor_config["s3_bucket_name"]
    key = f"covalent-ecs/owner-check-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x", ExpectedBucketOwner=account_of(sandbox))
    try:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=FOREIGN_ACCOUNT)
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert account_of(sandbox) not in str(err.value)  # the owner is not revealed
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"  # no header: moto's way
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_every_client_and_runner_s3_request_names_the_accounts_bucket_owner(fresh_sandbox):
    def echo(data: bytes) -> bytes:
        return data

    executor = ECSExecutor(**fresh_sandbox.executor_config)
    blob = b"b" * MULTIPART_BYTES
    assert run_nodes(executor, [(abs, (-7,), {}), (echo, (blob,), {})], new_dispatch_id()) == [7, blob]

    account = account_of(fresh_sandbox)
    owners = fresh_sandbox.expected_owners()
    for caller in ("client", "runner"):
        assert all(set(by_owner) == {account} for by_owner in owners[caller].values()), owners
    assert {"s3.PutObject", "s3.GetObject", "s3.DeleteObjects", "s3.CreateMultipartUpload",
            "s3.UploadPart", "s3.CompleteMultipartUpload"} <= set(owners["client"])  # fmt: skip
    assert {"s3.GetObject", "s3.PutObject", "s3.CreateMultipartUpload", "s3.UploadPart",
            "s3.CompleteMultipartUpload"} <= set(owners["runner"])  # fmt: skip


def test_a_bucket_of_another_account_fails_the_node_at_the_first_request(fresh_sandbox):
    bucket = f"covalent-look-alike-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.create_foreign_bucket(bucket, FOREIGN_ACCOUNT)
    s3 = fresh_sandbox.client("s3", internal=True)
    # The look-alike accepts writes from anyone who does not name the owner: what this
    # test guards against would happen.
    s3.put_object(Bucket=bucket, Key="probe", Body=b"accepted")
    s3.delete_object(Bucket=bucket, Key="probe")

    executor = ECSExecutor(**{**fresh_sandbox.executor_config, "s3_bucket_name": bucket})
    [failed] = run_nodes(executor, [(abs, (-1,), {})], new_dispatch_id())

    account = account_of(fresh_sandbox)
    assert isinstance(failed, TaskRuntimeError)
    assert isinstance(failed.__cause__, StagingError)
    message = str(failed)
    assert f"could not upload the task payload to s3://{bucket}/" in message
    assert f"S3 denied access to bucket {bucket!r}" in message
    assert f"belong to account {account}" in message
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing written there
    calls = fresh_sandbox.calls_by_caller()["client"]
    assert calls["refused.s3.PutObject"] == 1  # the first S3 request, not retried
    assert "ecs.RunTask" not in calls  # no task was started
    owners = fresh_sandbox.expected_owners()["client"]
    assert all(set(by_owner) == {account} for by_owner in owners.values()), owners
