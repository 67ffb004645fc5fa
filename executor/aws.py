"""AWS clients for a configuration, and the one place botocore errors become ours.

Clients are cached per process and per connection settings (boto3 clients are
thread-safe; sessions are not), so twenty tasks share one set of connection pools and
one STS lookup. Nothing here is stored on the executor: its attributes must stay
JSON-serialisable (docs/facts.md, "Covalent's plugin interface").
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as EndpointUnreachable
from botocore.parsers import ResponseParserError

from covalent_ecs_runtime.contract import RUNNER_VERSION

from .config import ExecutorConfig, check_endpoint_url
from .errors import (
    AWSSetupError,
    ConfigError,
    ECSExecutorError,
    LaunchError,
    TaskDefinitionInactiveError,
)

# Every boto3 call runs in a thread (threads.py: control, upload and collect pools); the
# S3 client's connection pool serves the last two at once (16 + 64 threads).
MAX_POOL_CONNECTIONS = 96
# botocore's own connect timeout; a command someone waits for at a terminal uses less.
DEFAULT_CONNECT_TIMEOUT_S = 60.0
# For a person at a terminal (`covalent-ecs infra ...`): an unreachable endpoint is
# reported within seconds, not after ten attempts with backoff (~35 s when DNS fails).
INTERACTIVE_MAX_ATTEMPTS = 3
INTERACTIVE_CONNECT_TIMEOUT_S = 3.0
# An error text longer than this is cut (an endpoint may answer with a whole page).
MAX_MESSAGE_CHARS = 400

_ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
}


@dataclass(frozen=True)
class ConnectionSettings:
    """The part of the config that decides which account, region and endpoint we talk to."""

    credentials: str
    profile: str
    region: str
    endpoint_url: str
    retry_mode: str
    max_attempts: int
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    @classmethod
    def of(cls, config: ExecutorConfig) -> ConnectionSettings:
        return cls(
            credentials=config.credentials,
            profile=config.profile,
            region=config.region,
            endpoint_url=config.endpoint_url,
            retry_mode=config.retry_mode,
            max_attempts=config.max_attempts,
        )


class Clients:
    """boto3 clients for one ConnectionSettings, created on first use."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        try:
            self._session = _session(settings)
        except ProfileNotFound as err:
            raise ConfigError(
                f"profile={settings.profile!r} is not in the AWS config or credentials file "
                f"({settings.credentials or 'default chain'}): {err}"
            ) from err
        self.region = self._session.region_name
        if not self.region:
            raise ConfigError(
                "no AWS region: set region in [executors.ecs] (e.g. 'us-east-1'), the "
                "--region option of covalent-ecs commands, or AWS_DEFAULT_REGION"
            )

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        with self._lock:
            if service not in self._clients:
                client = self._session.client(
                    service,
                    endpoint_url=self.settings.endpoint_url or None,
                    config=Config(
                        retries={
                            "mode": self.settings.retry_mode,
                            "max_attempts": self.settings.max_attempts,
                        },
                        max_pool_connections=MAX_POOL_CONNECTIONS,
                        connect_timeout=self.settings.connect_timeout_s,
                        user_agent_extra=f"covalent-ecs-executor/{RUNNER_VERSION}",
                    ),
                )
                _refuse_plain_http(client)
                # First in line, so botocore's own retry handlers (and adaptive mode's
                # rate limiter) see ECS's disguised throttling as throttling.
                event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
                client.meta.events.register_first(event, mark_disguised_throttling)
                self._clients[service] = client
            return self._clients[service]

    @functools.cached_property
    def account_id(self) -> str:
        return call(self.sts.get_caller_identity, "look up the AWS account (sts)")["Account"]

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def role_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:{self.partition}:iam::{self.account_id}:role/{name_or_arn}"

    def ecr_registry(self) -> str:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"{self.account_id}.dkr.ecr.{self.region}.{suffix}"


def _refuse_plain_http(client: Any) -> None:
    """The endpoint botocore resolved (endpoint_url, AWS_ENDPOINT_URL*, the AWS config
    file) must be https://, or http:// to loopback: checked before the client's first call."""
    url = client.meta.endpoint_url
    try:
        check_endpoint_url(url)
    except ValueError as err:
        raise ConfigError(
            f"the AWS endpoint {url!r} (from endpoint_url, AWS_ENDPOINT_URL or the AWS "
            f"config file) is refused: {err}"
        ) from None


def _session(settings: ConnectionSettings) -> boto3.Session:
    core = botocore.session.Session()
    if settings.credentials:
        core.set_config_variable("credentials_file", os.path.expanduser(settings.credentials))
    return boto3.Session(
        botocore_session=core,
        profile_name=settings.profile or None,
        region_name=settings.region or None,
    )


_clients_lock = threading.Lock()
_clients_by_settings: dict[ConnectionSettings, Clients] = {}


def clients_for(config: ExecutorConfig) -> Clients:
    settings = ConnectionSettings.of(config)
    with _clients_lock:
        if settings not in _clients_by_settings:
            _clients_by_settings[settings] = Clients(settings)
        return _clients_by_settings[settings]


def interactive_clients(config: ExecutorConfig) -> Clients:
    """Clients for a command someone waits for: few attempts, a short connect timeout."""
    settings = dataclasses.replace(
        ConnectionSettings.of(config),
        max_attempts=min(config.max_attempts, INTERACTIVE_MAX_ATTEMPTS),
        connect_timeout_s=INTERACTIVE_CONNECT_TIMEOUT_S,
    )
    return Clients(settings)


# What boto3 calls raise: AWS's answers, botocore's own failures, an unparsable answer,
# and boto3's transfer-manager wrappers.
_BOTO_ERRORS = (ClientError, BotoCoreError, ResponseParserError, Boto3Error)


def call(method: Any, action: str, /, **kwargs: Any) -> Any:
    """Call a boto3 method; translate botocore errors into ours, naming ``action``.

    The translated error is always raised ``from`` the botocore one, so callers ask
    ``has_code(err, ...)`` / ``is_unreachable(err)`` without importing botocore.
    """
    try:
        return method(**kwargs)
    except _BOTO_ERRORS as err:
        raise translate(err, action, **_bucket_facts(kwargs)) from _botocore_cause(err)


def pages(client: Any, operation: str, action: str, /, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """``client.get_paginator(operation).paginate(**kwargs)``, translated like ``call``."""
    try:
        yield from client.get_paginator(operation).paginate(**kwargs)
    except _BOTO_ERRORS as err:
        raise translate(err, action, **_bucket_facts(kwargs)) from _botocore_cause(err)


def is_boto_error(err: BaseException) -> bool:
    """Raised by boto3 / botocore (for boundaries that catch everything)."""
    return isinstance(err, _BOTO_ERRORS)


def translate(
    err: Exception,
    action: str,
    *,
    bucket: str | None = None,
    expected_bucket_owner: str | None = None,
) -> ECSExecutorError:
    """Our error for a botocore (or boto3 transfer) error, naming ``action``."""
    cause = _botocore_cause(err)
    if isinstance(cause, ClientError):
        return translate_client_error(
            cause, action, bucket=bucket, expected_bucket_owner=expected_bucket_owner
        )
    return translate_botocore_error(cause, action)


def _bucket_facts(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The bucket and ExpectedBucketOwner an S3 call named (upload_file: in ExtraArgs)."""
    extra_args = kwargs.get("ExtraArgs") or {}
    return {
        "bucket": kwargs.get("Bucket"),
        "expected_bucket_owner": kwargs.get("ExpectedBucketOwner")
        or extra_args.get("ExpectedBucketOwner"),
    }


def _botocore_cause(err: Exception) -> Exception:
    # boto3's transfer manager raises S3UploadFailedError while handling the ClientError
    # that says why (its __context__): that one is translated.
    context = err.__context__
    if isinstance(err, Boto3Error) and isinstance(context, (ClientError, BotoCoreError)):
        return context
    return err


def has_code(err: BaseException, *codes: str) -> bool:
    """True when ``err`` was raised (by ``call``, ``pages``) from an AWS answer with one of
    ``codes`` (e.g. ``"NoSuchKey"``, ``"404"``). Follows ``__cause__``, so an error that
    wraps ours (a StagingError raised from it) answers too."""
    found = _cause_of_type(err, ClientError)
    return isinstance(found, ClientError) and error_code(found) in codes


def is_unreachable(err: BaseException) -> bool:
    """True when ``err`` came from reaching no AWS API at the endpoint: DNS, connection
    refused, connect timeout, TLS, or an answer that is not an AWS API's."""
    return _cause_of_type(err, (EndpointUnreachable, ResponseParserError)) is not None


def _cause_of_type(
    err: BaseException | None, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    while err is not None:
        if isinstance(err, kind):
            return err
        err = err.__cause__
    return None


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def translate_client_error(
    err: ClientError,
    action: str,
    *,
    bucket: str | None = None,
    expected_bucket_owner: str | None = None,
) -> ECSExecutorError:
    """Our error for ``err``. For an S3 call that carried ``ExpectedBucketOwner``, pass
    it and the bucket: S3 answers a bucket of another account with a plain 403."""
    code = error_code(err)
    message = readable(err.response.get("Error", {}).get("Message", "") or str(err))
    if expected_bucket_owner and code in ("AccessDenied", "403"):
        # S3 does not say whether the owner differs or the identity lacks permission.
        return AWSSetupError(
            f"could not {action}: S3 denied access to bucket {bucket!r} ({code}). Every "
            f"staging request requires the bucket to belong to account {expected_bucket_owner} "
            "(ExpectedBucketOwner), and S3 answers 403 without naming the owner when it "
            "belongs to another account. If s3_bucket_name names a bucket someone else owns "
            "(a look-alike of a global name, say), create one in account "
            f"{expected_bucket_owner} and set s3_bucket_name to it; otherwise let this "
            "identity s3:PutObject, s3:GetObject and s3:DeleteObject under its staging prefix."
        )
    if code in _ACCESS_DENIED_CODES:
        return AWSSetupError(
            f"could not {action}: AWS denied access ({code}: {message}). Check the "
            "credentials/profile and the IAM policy of the identity in use "
            "(README: 'IAM roles and policies')."
        )
    if is_throttling(err):
        return LaunchError(
            f"could not {action}: AWS kept throttling the call ({code}: {message}) through "
            "every retry. Raise max_attempts, or start fewer tasks at once."
        )
    if code in _DISGUISED_THROTTLING_CODES and "inactive" in message.lower():
        # ECS: "TaskDefinition is inactive" — it was deregistered after we looked it up.
        return TaskDefinitionInactiveError(
            f"could not {action}: the task definition was deregistered ({code}: {message})"
        )
    if code == "NoSuchBucket":
        return AWSSetupError(
            f"could not {action}: the bucket does not exist ({message}). Create it or set "
            "s3_bucket_name to an existing bucket."
        )
    if code == "ClusterNotFoundException":
        return AWSSetupError(
            f"could not {action}: the ECS cluster does not exist ({message}). Create it or set "
            "ecs_cluster_name to an existing cluster."
        )
    return AWSSetupError(f"could not {action}: {code}: {message}")


def translate_botocore_error(err: Exception, action: str) -> ECSExecutorError:
    if isinstance(err, NoCredentialsError):
        return AWSSetupError(
            f"could not {action}: no AWS credentials found. Set credentials/profile in "
            "[executors.ecs] (or the --credentials/--profile options of covalent-ecs "
            "commands), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role."
        )
    if isinstance(err, EndpointUnreachable):
        endpoint = (getattr(err, "kwargs", None) or {}).get("endpoint_url", "the AWS endpoint")
        return AWSSetupError(
            f"could not {action}: {endpoint} is unreachable ({_connection_cause(err)}). "
            "Check network access, the region and endpoint_url / AWS_ENDPOINT_URL."
        )
    if isinstance(err, ResponseParserError):
        # Not an AWS answer: a proxy's or a crashed server's error page, or no body.
        # botocore appends the body as a bytes repr after this sentence.
        body = str(err).partition("Further retries may succeed:")[2].strip()
        body = body[2:-1] if body[:2] in ("b'", 'b"') else body
        return AWSSetupError(
            f"could not {action}: the endpoint did not answer like AWS "
            f"({readable(body) or 'an empty body'}). Check endpoint_url / AWS_ENDPOINT_URL "
            "and any proxy in between."
        )
    return AWSSetupError(f"could not {action}: {readable(str(err))}")


_HTML = re.compile(r"<\s*(!doctype\s+html|html|head|body)\b", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def readable(text: str) -> str:
    """An error text as one short line; an HTML page becomes its title. Pure.

    Endpoints that are not AWS (a proxy, a crashed emulator) answer with HTML pages,
    which botocore passes on as the error message.
    """
    if _HTML.search(text):
        title = _HTML_TITLE.search(text)
        text = f"an HTML page: {title.group(1)}" if title else "an HTML page"
    # Real newlines, and the escaped ones of a bytes repr.
    line = " ".join(text.replace("\\n", " ").split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def _connection_cause(err: Exception) -> str:
    # urllib3 prefixes its reason with the connection's repr: keep only the reason.
    cause = str((getattr(err, "kwargs", None) or {}).get("error") or err)
    return readable(re.sub(r"^\w*Connection\w*\(host=[^)]*\): ", "", cause))


_THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
}


_DISGUISED_THROTTLING_CODES = {"ClientException", "InvalidParameterException"}
RATE_EXCEEDED = "Rate exceeded"


def mark_disguised_throttling(response: Any = None, **_: Any) -> None:
    """``needs-retry`` hook: relabel ECS's throttling-in-disguise as ThrottlingException.

    ECS sometimes answers a throttled call with ``ClientException`` or
    ``InvalidParameterException`` and "Rate exceeded" (docs/facts.md, "AWS limits and
    throttles"). botocore
    only retries error codes it knows, so without this such a call fails at once. The
    parsed response is rewritten in place (the original code is kept as
    ``OriginalCode``); botocore's standard/adaptive handlers then back off, count the
    attempt against ``max_attempts`` and slow the client's send rate, as for any
    throttling. Returns None: the retry decision stays botocore's.
    """
    if not response or len(response) < 2 or not isinstance(response[1], dict):
        return
    error = response[1].get("Error") or {}
    if error.get("Code") in _DISGUISED_THROTTLING_CODES and RATE_EXCEEDED in str(
        error.get("Message", "")
    ):
        error["OriginalCode"] = error["Code"]
        error["Code"] = "ThrottlingException"


def is_throttling(err: BaseException) -> bool:
    """True for throttling, including ECS's disguised kind.

    ECS sometimes answers a throttled call with ``ClientException`` or
    ``InvalidParameterException`` and "Rate exceeded" in the message (docs/facts.md,
    "AWS limits and throttles").
    """
    if not isinstance(err, ClientError):
        return False
    message = str(err.response.get("Error", {}).get("Message", ""))
    return error_code(err) in _THROTTLE_CODES or RATE_EXCEEDED in message
