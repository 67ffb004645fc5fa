"""AWS clients for a configuration, and the one place botocore errors become ours.

Clients are cached per process and per connection settings (boto3 clients are
thread-safe; sessions are not), so twenty tasks share one set of connection pools and
one STS lookup. Nothing here is stored on the executor: its attributes must stay
JSON-serialisable (docs/facts.md, "Covalent's plugin interface").
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from covalent_ecs_runtime.contract import RUNNER_VERSION

from .config import ExecutorConfig
from .errors import (
    AWSSetupError,
    ConfigError,
    ECSExecutorError,
    LaunchError,
    TaskDefinitionInactiveError,
)

# Every boto3 call runs in a thread (threads.py: control and transfer pools); each
# client's connection pool serves both.
MAX_POOL_CONNECTIONS = 64

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
                "no AWS region: set region in [executors.ecs] (e.g. 'us-east-1') or "
                "AWS_DEFAULT_REGION"
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
                        user_agent_extra=f"covalent-ecs-executor/{RUNNER_VERSION}",
                    ),
                )
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


def call(method: Any, action: str, /, **kwargs: Any) -> Any:
    """Call a boto3 method; translate botocore errors into ours, naming ``action``."""
    try:
        return method(**kwargs)
    except ClientError as err:
        raise translate_client_error(err, action) from err
    except (BotoCoreError, NoRegionError) as err:
        raise translate_botocore_error(err, action) from err


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def translate_client_error(err: ClientError, action: str) -> ECSExecutorError:
    code = error_code(err)
    message = err.response.get("Error", {}).get("Message", "") or str(err)
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
            "[executors.ecs], or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role."
        )
    if isinstance(err, EndpointConnectionError):
        return AWSSetupError(
            f"could not {action}: cannot reach the AWS endpoint ({err}). Check network access, "
            "the region and endpoint_url / AWS_ENDPOINT_URL."
        )
    return AWSSetupError(f"could not {action}: {err}")


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
