"""S3 staging: where a task's payload and result live, and moving them.

Per task the client makes three S3 requests when objects are small: one PutObject for
the payload (multipart above the transfer manager's 8 MiB threshold), one GetObject for
the result (streamed to disk: ``download_file`` would add a HeadObject), and one
DeleteObjects for both keys. Objects are pickled to and from files in ``cache_dir``, so
a large argument or result is never held in memory twice.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle

from . import aws
from .errors import ECSExecutorError, StagingError

STAGING_ROOT = "covalent-ecs"
_STREAM_CHUNK_BYTES = 1024 * 1024
# Encrypt staged objects at rest even where the bucket has no default encryption.
_SSE = {"ServerSideEncryption": "AES256"}


@dataclass(frozen=True)
class TaskKeys:
    prefix: str
    payload: str
    result: str

    def for_attempt(self, number: int) -> TaskKeys:
        """The same payload; launch attempt ``number``'s own result key (1 = the first).

        A relaunched task never writes where an earlier attempt's runner might still write.
        """
        if number == 1:
            return self
        return replace(self, result=f"{self.prefix}result-{number}.pkl")

    def all_results(self, attempts: int) -> list[str]:
        return [self.for_attempt(n).result for n in range(1, attempts + 1)]


def task_keys(dispatch_id: str, node_id: int | str, token: str | None = None) -> TaskKeys:
    """Keys for one execution of a node.

    ``covalent-ecs/<dispatch_id>/<node_id>-<token>/``: grouped per dispatch (so one
    lifecycle rule or prefix policy covers them), unguessable per execution (token).
    """
    token = token or secrets.token_hex(12)
    prefix = f"{STAGING_ROOT}/{dispatch_id}/{node_id}-{token}/"
    return TaskKeys(prefix=prefix, payload=prefix + "payload.pkl", result=prefix + "result.pkl")


def _cache_dir(cache_dir: str) -> str:
    path = os.path.expanduser(cache_dir)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise StagingError(f"cache_dir={cache_dir!r} cannot be created: {err}") from err
    if not os.access(path, os.W_OK):
        raise StagingError(f"cache_dir={cache_dir!r} is not writable; choose another folder")
    return path


def upload_payload(s3: Any, bucket: str, key: str, payload: Any, cache_dir: str) -> int:
    """Pickle ``payload`` to a temp file and upload it; returns its size in bytes."""
    fd, path = tempfile.mkstemp(prefix="payload-", suffix=".pkl", dir=_cache_dir(cache_dir))
    try:
        with os.fdopen(fd, "wb") as f:
            cloudpickle.dump(payload, f)
        size = os.path.getsize(path)
        _staging_call(
            s3.upload_file,
            f"upload the task payload to s3://{bucket}/{key}",
            Filename=path,
            Bucket=bucket,
            Key=key,
            ExtraArgs=_SSE,
        )
        return size
    finally:
        os.unlink(path)


def download_result(s3: Any, bucket: str, key: str, cache_dir: str) -> dict[str, Any] | None:
    """The task's result envelope, or None when the runner never wrote one."""
    try:
        response = _staging_call(
            s3.get_object, f"download the result s3://{bucket}/{key}", Bucket=bucket, Key=key
        )
    except StagingError as err:
        if aws.has_code(err, "NoSuchKey", "404"):
            return None
        raise
    fd, path = tempfile.mkstemp(prefix="result-", suffix=".pkl", dir=_cache_dir(cache_dir))
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in response["Body"].iter_chunks(_STREAM_CHUNK_BYTES):
                f.write(chunk)
        with open(path, "rb") as f:
            envelope = cloudpickle.load(f)
    except Exception as err:  # noqa: BLE001 - a broken result must name its key
        raise StagingError(f"could not read the result s3://{bucket}/{key}: {err}") from err
    finally:
        os.unlink(path)
    return envelope


def delete_task_objects(s3: Any, bucket: str, keys: TaskKeys, *, attempts: int = 1) -> None:
    """Delete the payload and every attempt's result of a task in one request."""
    objects = [{"Key": key} for key in (keys.payload, *keys.all_results(attempts))]
    response = _staging_call(
        s3.delete_objects,
        f"delete s3://{bucket}/{keys.prefix}*",
        Bucket=bucket,
        Delete={"Objects": objects, "Quiet": True},
    )
    errors = response.get("Errors") or []
    if errors:
        raise StagingError(
            f"could not delete staged objects under s3://{bucket}/{keys.prefix}: "
            + "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors)
        )


def _staging_call(method: Any, action: str, /, **kwargs: Any) -> Any:
    """``aws.call``, with any failure reported as a StagingError (the message names the
    s3:// object and, from aws.py, the cause: access denied, no bucket, throttling...)."""
    try:
        return aws.call(method, action, **kwargs)
    except ECSExecutorError as err:
        raise StagingError(str(err)) from err
