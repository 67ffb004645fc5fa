"""Run one staged task: fetch the payload, run it, write one result envelope.

Kept short on purpose: this is the code users trust with their data inside the
container. The flow is

1. take the run's signing key out of the environment (the task's code never sees it)
   and the account that must own the bucket (every S3 request names it as
   ExpectedBucketOwner),
2. check that this Python minor and cloudpickle match the client's (env, see contract),
3. download ``payload_key`` (cloudpickled ``(function, args, kwargs)``) to a temp file
   and check its MAC (signing.py); a payload that does not verify is never unpickled,
4. call the function with the process's stdout/stderr teed into a capture buffer
   (file-descriptor level, so subprocesses' output is captured too, and still reaches
   the container's log stream live),
5. cloudpickle an envelope (value or error, captured output, timings) to a temp file,
   MACing it as it is written, and upload it to ``result_key`` with the MAC in its
   metadata.

Exit code 0 means the envelope was written, whatever the function did.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import contract, signing

_PROCESS_STARTED = time.time()
_DRAIN_TIMEOUT_S = 1.0
# Whole-download tries when the payload's body breaks mid-stream.
_DOWNLOAD_ATTEMPTS = 3
# Results below this size go up in one PutObject; larger ones through s3transfer's
# multipart upload (imported only then: it and boto3's layers cost ~0.1 s of a cold start).
_SINGLE_PUT_MAX_BYTES = 64 * 1024 * 1024


def _log(message: str) -> None:
    print(f"[covalent-ecs-runtime] {message}", file=sys.stderr, flush=True)


class _Tee:
    """Copy everything written to a file descriptor into a bounded buffer as well."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self._saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self._read_end = read_end
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while chunk := os.read(self._read_end, 65536):
            os.write(self._saved, chunk)
            room = self.limit - self.size
            if len(chunk) > room:
                self.truncated = True
                chunk = chunk[: max(room, 0)]
            if chunk:
                self.chunks.append(chunk)
                self.size += len(chunk)
        os.close(self._read_end)

    def close(self) -> str:
        os.dup2(self._saved, self.fd)  # closes our write end of the pipe
        # The pump sees EOF once every writer is gone. A background process the task
        # started may still hold the pipe: keep what arrived and let the pump go on
        # forwarding to the container's log (daemon thread), rather than wait for it.
        self._thread.join(timeout=_DRAIN_TIMEOUT_S)
        return b"".join(self.chunks).decode("utf-8", errors="replace")


@contextmanager
def _captured_output(envelope: dict[str, Any]) -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    out = _Tee(1, contract.MAX_CAPTURED_BYTES)
    err = _Tee(2, contract.MAX_CAPTURED_BYTES)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        envelope["stdout"] = out.close()
        envelope["stderr"] = err.close()
        envelope["stdout_truncated"] = out.truncated
        envelope["stderr_truncated"] = err.truncated


def _error(kind: str, message: str, exc: BaseException | None = None) -> dict[str, str]:
    return {
        "kind": kind,
        "type": type(exc).__name__ if exc else kind,
        "message": message,
        "traceback": "".join(traceback.format_exception(exc)) if exc else "",
    }


def _skew(versions: dict[str, str]) -> str | None:
    """A message naming what differs from the client, or None."""
    wanted = {
        "python": os.environ.get(contract.ENV_CLIENT_PYTHON),
        "cloudpickle": os.environ.get(contract.ENV_CLIENT_CLOUDPICKLE),
    }
    differences = [
        f"{name} {versions[name]} in the runner image, {want} on the client"
        for name, want in wanted.items()
        if want and want != versions[name]
    ]
    if not differences:
        return None
    return (
        "the runner image does not match the client: "
        + "; ".join(differences)
        + ". Publish a runner image for this client (`covalent-ecs publish-image`) or set"
        " `container_image_uri` to one built with the same Python minor and cloudpickle."
    )


class _Interrupted(BaseException):
    """Raised in the function's frame when the container gets SIGTERM."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the function runs, SIGTERM ends it with _Interrupted (Python's default
    would kill the process at once, losing its output and any envelope)."""

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills as before
        raise _Interrupted()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_payload(path: str, envelope: dict[str, Any]) -> None:
    import cloudpickle

    try:
        with open(path, "rb") as f:
            function, args, kwargs = cloudpickle.load(f)
    except Exception as exc:  # noqa: BLE001 - reported to the client, not swallowed
        envelope["outcome"] = contract.OUTCOME_RUNNER_ERROR
        envelope["error"] = _error(
            contract.KIND_PAYLOAD_UNREADABLE, f"the task payload could not be unpickled: {exc}", exc
        )
        return
    envelope["timings"]["function_started"] = time.time()
    try:
        with _captured_output(envelope), _sigterm_interrupts():
            value = function(*args, **kwargs)
    except _Interrupted:
        # ECS sends SIGTERM, then SIGKILL after the container's stopTimeout (a Spot
        # interruption gives two minutes): enough to write what the task printed so far.
        envelope["outcome"] = contract.OUTCOME_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - the user's exception is the result
        envelope["outcome"] = contract.OUTCOME_RAISED
        envelope["error"] = _error("user", str(exc), exc)
        envelope["error"]["type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        # Start the traceback at the user's code, not at this function's call.
        envelope["error"]["traceback"] = "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        )
    else:
        envelope["outcome"] = contract.OUTCOME_RETURNED
        envelope["value"] = value
    envelope["timings"]["function_ended"] = time.time()


def _write_envelope(
    envelope: dict[str, Any], path: str, key: signing.SigningKey, result_key: str
) -> str:
    """Pickle the envelope to ``path``; return the MAC of the bytes written."""
    import cloudpickle

    try:
        with open(path, "wb") as f:
            writer = signing.MacWriter(f, key.mac(signing.PURPOSE_RESULT, result_key))
            cloudpickle.dump(envelope, writer)
    except Exception as exc:  # noqa: BLE001 - an unpicklable return value is reported
        envelope["value"] = None
        envelope["outcome"] = contract.OUTCOME_RUNNER_ERROR
        envelope["error"] = _error(
            contract.KIND_RESULT_UNPICKLABLE,
            f"the task's return value could not be pickled: {exc}",
            exc,
        )
        with open(path, "wb") as f:
            writer = signing.MacWriter(f, key.mac(signing.PURPOSE_RESULT, result_key))
            cloudpickle.dump(envelope, writer)
    return writer.mac.hexdigest()


def _download_payload(
    s3: Any, bucket: str, key: str, path: str, owner: str, signing_key: signing.SigningKey
) -> bool:
    """The payload, downloaded again when the network breaks its body mid-stream
    (botocore retries requests, not bodies); True when it carries this run's MAC."""
    for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
        try:
            return _download_payload_once(s3, bucket, key, path, owner, signing_key)
        except signing.BrokenStream as broken:
            if attempt == _DOWNLOAD_ATTEMPTS:
                raise broken.__cause__ from None  # type: ignore[misc]
            _log(f"the payload download broke ({broken.__cause__}); trying again")
            time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _download_payload_once(
    s3: Any, bucket: str, key: str, path: str, owner: str, signing_key: signing.SigningKey
) -> bool:
    """One streamed GetObject (``download_file`` would add a HeadObject per task); True
    when the bytes carry this run's MAC. An unsigned object's body is not even read."""
    response = s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)
    claimed = (response.get("Metadata") or {}).get(contract.META_MAC)
    if not claimed:
        response["Body"].close()
        return False
    mac = signing_key.mac(signing.PURPOSE_PAYLOAD, key)
    with open(path, "wb") as f:
        signing.copy_body(response["Body"], signing.MacWriter(f, mac))
    return mac.matches(claimed)


def _take_run_secrets() -> tuple[signing.SigningKey, str] | None:
    """The signing key (removed from the environment, so the task's code and its
    subprocesses never see it) and the bucket's expected owner; None if not sent."""
    key_text = os.environ.pop(contract.ENV_SIGNING_SECRET, "")
    owner = os.environ.get(contract.ENV_BUCKET_OWNER, "")
    try:
        key = signing.SigningKey.from_env_value(key_text)
    except ValueError:
        return None
    return (key, owner) if owner else None


def _fetch_and_run(
    s3: Any,
    bucket: str,
    payload_key: str,
    payload_path: str,
    owner: str,
    signing_key: signing.SigningKey,
    envelope: dict[str, Any],
) -> None:
    """Download and verify the payload, then run it; the envelope records what happened."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri = f"s3://{bucket}/{payload_key}"
    try:
        verified = _download_payload(s3, bucket, payload_key, payload_path, owner, signing_key)
    except (ClientError, BotoCoreError) as exc:
        envelope["outcome"] = contract.OUTCOME_RUNNER_ERROR
        envelope["error"] = _error(
            contract.KIND_PAYLOAD_MISSING,
            # Without s3:ListBucket (the task role has none) S3 answers 403, not 404, for a
            # missing key: the two cannot be told apart here.
            f"the task payload {uri} is missing or not readable (the bucket must belong to "
            f"account {owner}): {exc}",
            exc,
        )
        return
    if not verified:
        envelope["outcome"] = contract.OUTCOME_RUNNER_ERROR
        envelope["error"] = _error(
            contract.KIND_PAYLOAD_UNVERIFIED,
            f"the task payload {uri} does not carry this run's signature, so it was not "
            "loaded: something other than the client that started this task wrote or "
            "replaced it",
        )
        return
    envelope["timings"]["payload_fetched"] = time.time()
    _log(f"running task {os.environ.get(contract.ENV_TASK_LABEL, payload_key)}")
    _run_payload(payload_path, envelope)


def _s3_client() -> Any:
    """botocore's client straight from a session: boto3's session and resource layers
    add imports and nothing the runner uses (credentials, region and AWS_ENDPOINT_URL
    are resolved by botocore either way)."""
    import botocore.session
    from botocore.config import Config

    # The user agent lets the sandbox (and S3 access logs) tell runner calls from client calls.
    return botocore.session.get_session().create_client(
        "s3",
        config=Config(
            retries={"mode": "standard", "max_attempts": 10},
            user_agent_extra=f"covalent-ecs-runtime/{contract.RUNNER_VERSION}",
        ),
    )


def _upload_result(s3: Any, path: str, bucket: str, key: str, owner: str, mac_hex: str) -> None:
    """One PutObject, or a multipart upload for a large result; both name the owner."""
    extra = {
        "ServerSideEncryption": "AES256",
        "ExpectedBucketOwner": owner,
        "Metadata": contract.object_metadata(mac_hex),
    }
    if os.path.getsize(path) < _SINGLE_PUT_MAX_BYTES:
        with open(path, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return
    from s3transfer.manager import TransferManager

    with TransferManager(s3) as manager:
        manager.upload(path, bucket, key, extra_args=extra).result()


def run(bucket: str, payload_key: str, result_key: str) -> int:
    run_secrets = _take_run_secrets()
    if run_secrets is None:
        # Without both, nothing may be read (unverifiable) or written (unsigned, or to a
        # bucket of any owner): the client that started this task is older than this runner.
        _log(
            f"the task's environment lacks {contract.ENV_SIGNING_SECRET} or "
            f"{contract.ENV_BUCKET_OWNER}: the client that started it is older than runner "
            f"{contract.RUNNER_VERSION}. Run it on the runner image of the client's version "
            "(`covalent-ecs publish-image` with that client installed)."
        )
        return contract.EXIT_USAGE
    signing_key, owner = run_secrets
    envelope = contract.new_envelope()
    envelope["timings"]["process_started"] = _PROCESS_STARTED
    envelope["timings"]["runner_started"] = time.time()
    versions = contract.runtime_versions()
    envelope["runtime"] = versions
    label = os.environ.get(contract.ENV_TASK_LABEL, payload_key)
    s3 = _s3_client()

    with tempfile.TemporaryDirectory(prefix="covalent-ecs-") as workdir:
        payload_path = os.path.join(workdir, "payload.pkl")
        result_path = os.path.join(workdir, "result.pkl")
        skew = _skew(versions)
        if skew:
            envelope["outcome"] = contract.OUTCOME_RUNNER_ERROR
            envelope["error"] = _error(contract.KIND_RUNTIME_SKEW, skew)
        else:
            _fetch_and_run(s3, bucket, payload_key, payload_path, owner, signing_key, envelope)
        if envelope["error"]:
            _log(f"task {label}: {envelope['error']['type']}: {envelope['error']['message']}")
        envelope["timings"]["result_written"] = time.time()
        mac_hex = _write_envelope(envelope, result_path, signing_key, result_key)
        try:
            _upload_result(s3, result_path, bucket, result_key, owner, mac_hex)
        except Exception as exc:  # noqa: BLE001 - nothing else can tell the client
            _log(f"could not write the result to s3://{bucket}/{result_key}: {exc}")
            return contract.EXIT_NO_RESULT
    _log(f"task {label}: {envelope['outcome']}")
    return contract.EXIT_RESULT_WRITTEN


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m covalent_ecs_runtime")
    parser.add_argument("--version", action="store_true", help="print the runtime's versions")
    sub = parser.add_subparsers(dest="command")
    run_parser = sub.add_parser("run", help="run one staged task")
    run_parser.add_argument("--bucket", required=True)
    run_parser.add_argument("--payload-key", required=True)
    run_parser.add_argument("--result-key", required=True)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return contract.EXIT_USAGE if exc.code else 0
    if args.version:
        versions = contract.runtime_versions()
        print(" ".join(f"{name}={value}" for name, value in versions.items()))
        return 0
    if args.command != "run":
        parser.print_help(sys.stderr)
        return contract.EXIT_USAGE
    return run(args.bucket, args.payload_key, args.result_key)
