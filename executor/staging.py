"""S3 staging: where a task's payload and result live, and moving them.

Per task the client makes three S3 requests when objects are small: one PutObject for
the payload (multipart above the transfer manager's 8 MiB threshold), one GetObject for
the result (streamed to disk: ``download_file`` would add a HeadObject), and one
DeleteObjects for both keys. Objects are pickled to and from files in ``cache_dir``, so
a large argument or result is never held in memory twice.

Two trust checks ride on those same requests, at no extra request:

* every request names the account that must own the bucket (``ExpectedBucketOwner``),
  so a bucket of another account (a look-alike of a global name) gets nothing and
  gives nothing: S3 answers 403;
* payload and result carry an HMAC of the run's key in their metadata (signing.py):
  the payload's is written as it is pickled, the result's is checked over the bytes
  streamed to disk before they are unpickled. A result that does not verify raises
  ``IntegrityError`` and is never loaded.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle

from covalent_ecs_runtime import contract, signing

from . import aws, failures
from .errors import ECSExecutorError, IntegrityError, StagingError

STAGING_ROOT = "covalent-ecs"
# boto3's transfer manager goes multipart above this (docs/facts.md, "S3"). Below it a
# payload is one PutObject sent directly: ``upload_file`` would start a transfer manager
# and its threads per call for that same request, which at 1000 concurrent runs is
# most of the client's upload CPU and hundreds of threads contending for the GIL.
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
# How often a multipart upload looks whether its run was cancelled.
CANCEL_CHECK_S = 0.1
# Whole-download tries when the body breaks mid-stream, and the first pause between them.
DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_BACKOFF_S = 0.5
# Encrypt staged objects at rest even where the bucket has no default encryption.
_SSE = {"ServerSideEncryption": "AES256"}


@dataclass(frozen=True)
class Bucket:
    """The staging bucket and the account that must own it (ExpectedBucketOwner)."""

    name: str
    owner: str

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"


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


def upload_payload(
    s3: Any,
    bucket: Bucket,
    key: str,
    payload: Any,
    cache_dir: str,
    signing_key: signing.SigningKey,
    *,
    cancelled: threading.Event | None = None,
) -> int:
    """Pickle ``payload`` to a temp file, MACing it as it is written, and upload it with
    the MAC in its metadata; returns its size in bytes. A multipart upload stops between
    parts once ``cancelled`` is set (the run awaiting it was cancelled)."""
    fd, path = tempfile.mkstemp(prefix="payload-", suffix=".pkl", dir=_cache_dir(cache_dir))
    try:
        with os.fdopen(fd, "wb") as f:
            writer = signing.MacWriter(f, signing_key.mac(signing.PURPOSE_PAYLOAD, key))
            cloudpickle.dump(payload, writer)
        size = os.path.getsize(path)
        extra = {
            **_SSE,
            "ExpectedBucketOwner": bucket.owner,
            "Metadata": contract.object_metadata(writer.mac.hexdigest()),
        }
        action = f"upload the task payload to {bucket.uri(key)}"
        if size >= MULTIPART_THRESHOLD_BYTES:
            _staging_call(
                _upload_file, action, Client=s3, Filename=path, Bucket=bucket.name, Key=key,
                ExtraArgs=extra, Cancelled=cancelled or threading.Event(),
            )
        else:
            # botocore rewinds a seekable body when it retries the request.
            with open(path, "rb") as body:
                _staging_call(s3.put_object, action, Bucket=bucket.name, Key=key, Body=body, **extra)
        return size
    finally:
        os.unlink(path)


def _upload_file(
    *, Client: Any, Filename: str, Bucket: str, Key: str, ExtraArgs: dict[str, Any], Cancelled: threading.Event
) -> None:
    """A multipart upload through boto3's transfer manager that a cancel can stop.

    ``s3.upload_file`` cannot be stopped from outside: its part uploads run in the
    transfer manager's own (non-daemon) threads, which the interpreter joins at exit, so
    a script interrupted during a multi-GB upload would wait for all of it. Here a set
    ``Cancelled`` cancels the transfer (parts in flight finish, the rest are skipped),
    and the part threads are daemons, so an exiting process waits for none of them."""
    from boto3.s3.transfer import TransferConfig
    from s3transfer.manager import TransferManager

    from .threads import DaemonThreadPool

    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD_BYTES)
    # Its part threads are daemons too: an exiting process does not wait for a part.
    with TransferManager(Client, config, executor_cls=DaemonThreadPool) as manager:
        future = manager.upload(Filename, Bucket, Key, extra_args=ExtraArgs)
        while not future.done():
            if Cancelled.wait(CANCEL_CHECK_S):
                future.cancel()
                break
        future.result()  # raises the upload's error, or CancelledError once cancelled


def download_result(
    s3: Any, bucket: Bucket, key: str, cache_dir: str, signing_key: signing.SigningKey
) -> dict[str, Any] | None:
    """The task's result envelope, or None when the runner never wrote one.

    Raises IntegrityError, before unpickling anything, when the object is unsigned or
    its MAC does not match the bytes received. A download the network broke mid-stream
    (botocore retries the request, not the body) is started again, up to
    DOWNLOAD_ATTEMPTS times; past that the StagingError says the result is kept.
    """
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            return _download_result_once(s3, bucket, key, cache_dir, signing_key)
        except signing.BrokenStream as broken:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise StagingError(
                    f"could not download the result {bucket.uri(key)} after {attempt} tries: "
                    f"{broken.__cause__}. The task finished; its result is kept in the bucket "
                    "(the staging lifecycle rule removes it)."
                ) from broken.__cause__
            time.sleep(DOWNLOAD_BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _download_result_once(
    s3: Any, bucket: Bucket, key: str, cache_dir: str, signing_key: signing.SigningKey
) -> dict[str, Any] | None:
    uri = bucket.uri(key)
    try:
        response = _staging_call(
            s3.get_object,
            f"download the result {uri}",
            Bucket=bucket.name,
            Key=key,
            ExpectedBucketOwner=bucket.owner,
        )
    except StagingError as err:
        if aws.has_code(err, "NoSuchKey", "404"):
            return None
        raise
    body = response["Body"]
    metadata = response.get("Metadata") or {}
    try:
        # Decided from the response headers: an unsigned or foreign-format body is not read.
        failures.check_envelope_format(metadata.get(contract.META_FORMAT), uri)
    except ECSExecutorError:
        body.close()
        raise
    mac = signing_key.mac(signing.PURPOSE_RESULT, key)
    fd, path = tempfile.mkstemp(prefix="result-", suffix=".pkl", dir=_cache_dir(cache_dir))
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                signing.copy_body(body, signing.MacWriter(f, mac))
            except OSError as err:  # the local disk (a broken read is BrokenStream): no retry
                raise StagingError(f"could not save the result {uri} in {cache_dir}: {err}") from err
        if not mac.matches(metadata.get(contract.META_MAC)):
            raise IntegrityError(
                f"the result {uri} failed its integrity check and was not loaded: its bytes "
                "do not carry this run's signature, so something other than the task wrote "
                "or replaced it. Check who else may write to the staging bucket's prefix "
                "(the task role of every task may).",
                object_uri=uri,
            )
        try:
            with open(path, "rb") as f:
                envelope = cloudpickle.load(f)
        except Exception as err:  # noqa: BLE001 - a broken result must name its key
            raise StagingError(f"could not read the result {uri}: {err}") from err
    finally:
        os.unlink(path)
    return envelope


def delete_task_objects(
    s3: Any, bucket: Bucket, keys: TaskKeys, *, attempts: int = 1, keep: Collection[str] = ()
) -> None:
    """Delete the payload and every attempt's result of a task in one request, except
    the keys in ``keep`` (a result that could not be read is left for the user)."""
    objects = [
        {"Key": key} for key in (keys.payload, *keys.all_results(attempts)) if key not in keep
    ]
    response = _staging_call(
        s3.delete_objects,
        f"delete {bucket.uri(keys.prefix)}*",
        Bucket=bucket.name,
        Delete={"Objects": objects, "Quiet": True},
        ExpectedBucketOwner=bucket.owner,
    )
    errors = response.get("Errors") or []
    if errors:
        raise StagingError(
            f"could not delete staged objects under {bucket.uri(keys.prefix)}: "
            + "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors)
        )


def _staging_call(method: Any, action: str, /, **kwargs: Any) -> Any:
    """``aws.call``, with any failure reported as a StagingError (the message names the
    s3:// object and, from aws.py, the cause: access denied, no bucket, throttling...)."""
    try:
        return aws.call(method, action, **kwargs)
    except ECSExecutorError as err:
        raise StagingError(str(err)) from err
