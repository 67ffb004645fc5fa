"""No finished result is lost: a broken download is tried again, a result that could not
be read is kept, and a failed cleanup is only a warning."""

from __future__ import annotations

import contextlib
import io
import uuid
from typing import Any

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from executor_runs import run_nodes

from covalent_ecs_executor import ECSExecutor, StagingError, staging

pytestmark = pytest.mark.integration


def _staged(sandbox: Any, dispatch_id: str) -> list[str]:
    s3 = sandbox.client("s3", internal=True)
    bucket = sandbox.executor_config["s3_bucket_name"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{staging.STAGING_ROOT}/{dispatch_id}/")
    return [o["Key"] for o in listed.get("Contents", []) if "/records/" not in o["Key"]]


def _run_one(sandbox: Any, dispatch_id: str, **config: Any) -> tuple[Any, str]:
    out = io.StringIO()
    # Outside Covalent the node's streams are this process's.
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        executor = ECSExecutor(**{**sandbox.executor_config, **config})
        (value,) = run_nodes(executor, [(pow, (3, 4), {})], dispatch_id)
    return value, out.getvalue()


def test_a_download_the_network_breaks_mid_stream_is_tried_again(fresh_sandbox):
    dispatch_id = f"cut-once-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.add_fault("cut_body", label=dispatch_id, key_suffix="result.pkl")
    value, _ = _run_one(fresh_sandbox, dispatch_id)
    assert value == 81
    assert fresh_sandbox.calls()["fault.cut_body.s3.GetObject"] == 1
    assert _staged(fresh_sandbox, dispatch_id) == []


def test_a_result_that_cannot_be_downloaded_is_kept_and_named(fresh_sandbox):
    dispatch_id = f"cut-always-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.add_fault(
        "cut_body", label=dispatch_id, key_suffix="result.pkl", times=staging.DOWNLOAD_ATTEMPTS
    )
    value, _ = _run_one(fresh_sandbox, dispatch_id)
    assert isinstance(value, TaskRuntimeError)
    assert isinstance(value.__cause__, StagingError)
    message = str(value)
    assert f"after {staging.DOWNLOAD_ATTEMPTS} tries" in message
    assert "its result is kept in the bucket" in message
    (kept,) = _staged(fresh_sandbox, dispatch_id)  # the payload went, the result stayed
    assert kept.endswith("/result.pkl") and kept in message


def test_a_cleanup_that_fails_is_a_warning_and_the_result_is_returned(fresh_sandbox):
    dispatch_id = f"cleanup-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.add_fault("server_error", operations=["s3.DeleteObjects"], times=20)
    try:
        # Two botocore attempts: the cleanup gives up quickly (the default is ten).
        value, stderr = _run_one(fresh_sandbox, dispatch_id, max_attempts=2)
    finally:
        fresh_sandbox.clear_faults()
    assert value == 81
    assert "[covalent-ecs] warning: could not delete" in stderr, stderr
    left = _staged(fresh_sandbox, dispatch_id)
    assert len(left) == 2  # payload and result: for the bucket's lifecycle rule
    s3 = fresh_sandbox.client("s3", internal=True)
    bucket = fresh_sandbox.executor_config["s3_bucket_name"]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in left]})


def test_the_runner_tries_a_payload_download_again_when_it_breaks(fresh_sandbox):
    dispatch_id = f"cut-payload-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.add_fault("cut_body", label=dispatch_id, key_suffix="payload.pkl")
    value, _ = _run_one(fresh_sandbox, dispatch_id)
    assert value == 81
    assert fresh_sandbox.calls_by_caller()["runner"]["s3.GetObject"] == 2
