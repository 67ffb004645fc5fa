"""Name and count the AWS API calls that reach the sandbox.

``classify_request(environ)`` turns one WSGI request into ``"<service>.<Operation>"``
("ecs.RunTask", "s3.PutObject", "sts.GetCallerIdentity") from what is on the wire:

* JSON protocols (ECS, CloudWatch Logs, ECR): the ``X-Amz-Target`` header;
* query protocols (STS, IAM, EC2): the ``Action`` parameter, in the query string or
  the form-encoded body;
* S3 (REST): the method, whether the path names a bucket or a key, and the
  sub-resource in the query. Both path-style (``/<bucket>/<key>``) and
  virtual-hosted (``<bucket>.host/<key>``) requests are understood.

The service is the signing name in the SigV4 credential scope. ``caller_of(environ)``
says who made a call, from the User-Agent: ``"client"`` (the executor's boto3 clients
carry ``covalent-ecs-executor/``), ``"runner"`` (the in-container runner carries
``covalent-ecs-runtime/``), a name given as ``sandbox-caller/<name>`` (tooling such as
the benchmarks labels other programs this way), else ``"other"``. ``CallCounter`` is
the thread-safe tally, per caller, the control API reports; for S3 requests it also
tallies the ``x-amz-expected-bucket-owner`` header each carried (or none), so tests can
check that every client and runner request named the bucket's owner. Pure apart from
reading (and restoring) the request body, so it can be unit-tested with plain dicts.
"""

from __future__ import annotations

import io
import ipaddress
import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

# Requests carrying this in their User-Agent come from the sandbox itself (seed,
# agent, Sandbox.client(internal=True)) and are not counted.
SANDBOX_USER_AGENT_MARKER = "covalent-ecs-sandbox"

# User-Agent markers -> caller names (see the module docstring).
CLIENT_USER_AGENT_MARKER = "covalent-ecs-executor/"
RUNNER_USER_AGENT_MARKER = "covalent-ecs-runtime/"
_CALLER_LABEL = re.compile(r"sandbox-caller/([A-Za-z0-9_.-]+)")
CALLER_CLIENT = "client"
CALLER_RUNNER = "runner"
CALLER_OTHER = "other"

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"^[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request$")
# Smithy RPC v2 (CBOR) puts the operation in the path.
_RPC_V2_PATH = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")
# A form body bigger than this is not parsed for ``Action`` (query protocols are small).
_MAX_FORM_BODY_BYTES = 1024 * 1024

# Bucket sub-resources, by query key, and the noun their operations use:
# GET ?encryption -> GetBucketEncryption, PUT ?encryption -> PutBucketEncryption.
_BUCKET_SUBRESOURCES = {
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "lifecycle": "BucketLifecycleConfiguration",
    "location": "BucketLocation",
    "logging": "BucketLogging",
    "notification": "BucketNotificationConfiguration",
    "ownershipControls": "BucketOwnershipControls",
    "policy": "BucketPolicy",
    "publicAccessBlock": "PublicAccessBlock",
    "tagging": "BucketTagging",
    "versioning": "BucketVersioning",
    "website": "BucketWebsite",
}
_OBJECT_SUBRESOURCES = {
    "acl": "ObjectAcl",
    "tagging": "ObjectTagging",
    "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold",
    "attributes": "ObjectAttributes",
}


def is_sandbox_internal(environ: dict[str, Any]) -> bool:
    return SANDBOX_USER_AGENT_MARKER in environ.get("HTTP_USER_AGENT", "")


def caller_of(environ: dict[str, Any]) -> str:
    """Who made the request: "client", "runner", a ``sandbox-caller/`` label, or "other"."""
    agent = environ.get("HTTP_USER_AGENT", "")
    if CLIENT_USER_AGENT_MARKER in agent:
        return CALLER_CLIENT
    if RUNNER_USER_AGENT_MARKER in agent:
        return CALLER_RUNNER
    label = _CALLER_LABEL.search(agent)
    return label.group(1) if label else CALLER_OTHER


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service name of the request's SigV4 credential scope (header or presigned)."""
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1)
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    if credential:
        match = _QUERY_SCOPE.match(credential[0])
        if match:
            return match.group(1)
    return None


def classify_request(environ: dict[str, Any], *, server_host: str = "127.0.0.1") -> str:
    """``"<service>.<Operation>"`` for one request; ``"<service>.Unknown"`` if unsure."""
    service = signing_service(environ) or "unknown"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}.{target.rsplit('.', 1)[-1]}"
    path = environ.get("PATH_INFO", "/")
    rpc = _RPC_V2_PATH.match(path)
    if rpc:
        return f"{service}.{rpc.group(1)}"
    if service == "s3":
        return f"s3.{_s3_operation(environ, server_host=server_host)}"
    action = _query_action(environ)
    return f"{service}.{action or 'Unknown'}"


def _query_action(environ: dict[str, Any]) -> str | None:
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return action[0]
    content_type = environ.get("CONTENT_TYPE", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    body = peek_body(environ, limit=_MAX_FORM_BODY_BYTES)
    if body is None:
        return None
    action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
    return action[0] if action else None


def peek_body(environ: dict[str, Any], *, limit: int) -> bytes | None:
    """Read the request body and put it back so the wrapped app still sees it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0 or length > limit:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def s3_bucket_and_key(environ: dict[str, Any], server_host: str) -> tuple[str, str]:
    """The bucket and key an S3 request names (path-style or virtual-hosted)."""
    path = environ.get("PATH_INFO", "/")
    host = environ.get("HTTP_HOST", "")
    host = host if host.startswith("[") else host.rsplit(":", 1)[0]  # drop the port
    virtual_hosted = (
        host
        and not host.startswith("[")
        and not _is_ip(host)
        and host not in (server_host, "localhost")
        and "." in host
        and not host.startswith("s3.")
    )
    if virtual_hosted:
        return host.split(".", 1)[0], path.lstrip("/")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _s3_operation(environ: dict[str, Any], *, server_host: str) -> str:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, key = s3_bucket_and_key(environ, server_host)
    verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
    if not bucket:
        return "ListBuckets" if method == "GET" else "Unknown"
    if not key:
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        for name, noun in _BUCKET_SUBRESOURCES.items():
            if name in query and verb:
                return f"{verb}{noun}"
        if "uploads" in query and method == "GET":
            return "ListMultipartUploads"
        if "versions" in query and method == "GET":
            return "ListObjectVersions"
        return {
            "GET": "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
        }.get(method, "Unknown")
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if copy else "UploadPart"
        return {
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, "Unknown")
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    for name, noun in _OBJECT_SUBRESOURCES.items():
        if name in query and verb:
            return f"{verb}{noun}"
    return {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "PUT": "CopyObject" if copy else "PutObject",
        "DELETE": "DeleteObject",
    }.get(method, "Unknown")


# The header S3 checks against the bucket's owning account (WSGI name).
EXPECTED_BUCKET_OWNER_HEADER = "HTTP_X_AMZ_EXPECTED_BUCKET_OWNER"
NO_EXPECTED_OWNER = "none"


def expected_bucket_owner(environ: dict[str, Any]) -> str | None:
    return environ.get(EXPECTED_BUCKET_OWNER_HEADER) or None


class CallCounter:
    """Thread-safe counts of ``"<service>.<Operation>"`` names, kept per caller, and of
    the ExpectedBucketOwner each S3 request carried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._owners: dict[str, Counter[tuple[str, str]]] = {}

    def add(self, name: str, caller: str = CALLER_OTHER) -> None:
        with self._lock:
            self._counts.setdefault(caller, Counter())[name] += 1

    def add_expected_owner(self, name: str, caller: str, owner: str | None) -> None:
        """Record the ExpectedBucketOwner an S3 request ``name`` carried (None: none)."""
        with self._lock:
            self._owners.setdefault(caller, Counter())[(name, owner or NO_EXPECTED_OWNER)] += 1

    def snapshot(self) -> dict[str, int]:
        """Counts summed over every caller."""
        with self._lock:
            total: Counter[str] = Counter()
            for counts in self._counts.values():
                total.update(counts)
            return dict(sorted(total.items()))

    def snapshot_by_caller(self) -> dict[str, dict[str, int]]:
        """``{caller: {operation: count}}`` (see ``caller_of``)."""
        with self._lock:
            return {
                caller: dict(sorted(counts.items()))
                for caller, counts in sorted(self._counts.items())
            }

    def expected_owners(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{caller: {"s3.PutObject": {"<account>" or "none": count}}}``."""
        with self._lock:
            result: dict[str, dict[str, dict[str, int]]] = {}
            for caller, counts in sorted(self._owners.items()):
                for (name, owner), count in sorted(counts.items()):
                    result.setdefault(caller, {}).setdefault(name, {})[owner] = count
            return result

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._owners.clear()
