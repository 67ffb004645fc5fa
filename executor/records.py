"""The durable record of each node's task(s): one small JSON object per ``run()``.

Written once when a node's run ends (one PutObject, every launch attempt included), to
``covalent-ecs/<dispatch_id>/records/<node_id>-<token>.json`` in the staging bucket:
under the staging prefix, so the bucket's lifecycle rule expires records like
everything else there, and outside the per-task prefix that cleanup deletes. It
survives the Covalent server, so ``covalent-ecs report`` and ``logs`` need only the
bucket. A record holds timings, sizes, ARNs, ECS's stop codes and error *type* names:
never task output, arguments, environment or error messages (they may hold user data).
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import aws
from .errors import StagingError
from .staging import STAGING_ROOT

RECORD_FORMAT = 1
RECORDS_DIR = "records"
_SSE = {"ServerSideEncryption": "AES256"}


def records_prefix(dispatch_id: str) -> str:
    return f"{STAGING_ROOT}/{dispatch_id}/{RECORDS_DIR}/"


def record_key(dispatch_id: str, node_id: int | str, token: str) -> str:
    """One key per run of a node: a node run again (Covalent retries) keeps both."""
    return f"{records_prefix(dispatch_id)}{node_id}-{token}.json"


def build_record(
    *,
    dispatch_id: str,
    node_id: int | str,
    cluster: str,
    region: str,
    log_group: str,
    prices: dict[str, str],
    attempts: list[dict[str, Any]],
    upload_s: float | None = None,
    written_at: float | None = None,
) -> dict[str, Any]:
    """The record of one run: its attempts (timeline.build_timeline dicts) and totals."""
    costs = [a["cost"]["usd"] for a in attempts]
    final = attempts[-1]["status"] if attempts else ""
    return {
        "format": RECORD_FORMAT,
        "dispatch_id": dispatch_id,
        "node_id": node_id,
        "status": final,
        "cluster": cluster,
        "region": region,
        "log_group": log_group,
        "prices": prices,
        "cost_usd": None if any(c is None for c in costs) else sum(costs),
        "upload_s": upload_s,
        "written_at": time.time() if written_at is None else written_at,
        "attempts": attempts,
    }


def put_record(
    s3: Any, bucket: str, key: str, record: dict[str, Any], *, expected_owner: str
) -> None:
    """One PutObject, only into a bucket ``expected_owner`` (an account id) owns, as
    every staging request (staging.py). Raises ECSExecutorError."""
    body = json.dumps(record, separators=(",", ":"), default=str).encode()
    aws.call(
        s3.put_object,
        f"write the task record s3://{bucket}/{key}",
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ExpectedBucketOwner=expected_owner,
        **_SSE,
    )


def list_record_keys(
    s3: Any, bucket: str, dispatch_id: str, node_id: int | str | None = None
) -> list[str]:
    """The record keys of a dispatch, or of one of its nodes (paginated ListObjectsV2).
    Raises ECSExecutorError."""
    keys: list[str] = []
    prefix = records_prefix(dispatch_id) + ("" if node_id is None else f"{node_id}-")
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = aws.call(s3.list_objects_v2, f"list s3://{bucket}/{prefix}", **request)
        keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")]
        if not page.get("IsTruncated"):
            break
        request["ContinuationToken"] = page["NextContinuationToken"]
    return keys


def read_record(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    response = aws.call(s3.get_object, f"read s3://{bucket}/{key}", Bucket=bucket, Key=key)
    try:
        record = json.loads(response["Body"].read())
    except ValueError as err:
        raise StagingError(f"s3://{bucket}/{key} is not a task record (not JSON): {err}") from err
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise StagingError(
            f"s3://{bucket}/{key} is not a task record of format {RECORD_FORMAT}; "
            "was it written by another version of covalent-ecs-executor?"
        )
    return record


def read_dispatch(
    s3: Any, bucket: str, dispatch_id: str, node_id: int | str | None = None
) -> list[dict[str, Any]]:
    """Every record of a dispatch (or of one node), in node order."""
    keys = list_record_keys(s3, bucket, dispatch_id, node_id)
    records = [read_record(s3, bucket, key) for key in keys]
    return sorted(records, key=lambda r: (_node_order(r.get("node_id")), r.get("written_at", 0)))


def _node_order(node_id: Any) -> tuple[int, str]:
    text = str(node_id)
    return (int(text), "") if text.isdigit() else (1 << 62, text)
