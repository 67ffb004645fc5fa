"""The executor's configuration: one pydantic model, validated once, before any AWS call.

Values come from three places, in this order of precedence:
1. arguments given to ``ECSExecutor(...)`` (a falsy value given is validated, never
   swapped for the file's value),
2. the ``[executors.ecs]`` block of covalent.conf,
3. the defaults below.

``ExecutorConfig.model_fields`` also produces ``_EXECUTOR_PLUGIN_DEFAULTS``, so the
defaults written into covalent.conf cannot drift from the model.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import fargate, pricing
from .errors import ConfigError
from .image.refs import ImageRef

# Keys Covalent's base executor owns; accepted and kept as attributes, not validated here.
COVALENT_BASE_KEYS = ("log_stdout", "log_stderr", "time_limit", "retries")

_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_SECURITY_GROUP_RE = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3 general purpose bucket naming rules beyond the characters and length:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_BUCKET_BAD_NEIGHBOURS = ("..", ".-", "-.")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # cluster, task family
_ROLE_RE = re.compile(r"^(arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}|[\w+=,.@-]{1,64})$")
_LOG_GROUP_RE = re.compile(r"^[\w#./-]{1,512}$")
_ECR_REPO_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARN_REGION = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d"
# What ECS takes as a container secret's valueFrom (full ARNs only): a Secrets Manager
# secret, optionally with ":json-key:version-stage:version-id", or an SSM parameter.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html
_SECRET_ARN_RE = re.compile(
    rf"^arn:aws[a-z-]*:secretsmanager:{_ARN_REGION}:\d{{12}}:secret:[A-Za-z0-9/_+=.@-]{{1,512}}"
    r"(:[^:]*:[^:]*:[^:]*)?$"
)
_PARAMETER_ARN_RE = re.compile(
    rf"^arn:aws[a-z-]*:ssm:{_ARN_REGION}:\d{{12}}:parameter/[A-Za-z0-9_./-]{{1,2048}}$"
)
# Environment names that usually hold a credential: their values belong in `secrets`.
_SECRET_LOOKING_NAME_RE = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
# Keys whose values are never echoed in an error message (they may hold credentials).
_VALUES_NOT_SHOWN = ("environment",)
# "user:password@" at the start of a reference or after "//" in a URL.
_USERINFO_RE = re.compile(r"(^|//)[^/@\s:]*:[^/@\s]*@")

logger = logging.getLogger(__name__)

DEFAULT_CREDENTIALS_FILE = "~/.aws/credentials"

# awsvpcConfiguration limits and Fargate's ephemeral storage range (RunTask API reference).
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5
FARGATE_DEFAULT_STORAGE_GIB = 20
MIN_EPHEMERAL_STORAGE_GIB = 21
MAX_EPHEMERAL_STORAGE_GIB = 200


def _check_id_list(value: str | list[str], pattern: re.Pattern[str], prefix: str, most: int) -> None:
    """One id or a list of them: each well formed, no repeats, at most ``most``."""
    ids = [value] if isinstance(value, str) else value
    if isinstance(value, list):
        if not value:
            raise ValueError("give at least one id, or '' to set it later")
        if len(value) > most:
            raise ValueError(f"ECS takes at most {most}; got {len(value)}")
        if len(set(value)) != len(value):
            raise ValueError("lists an id twice")
    for one in ids:
        if (one or isinstance(value, list)) and not pattern.match(one):
            raise ValueError(f"{one!r}: expected '{prefix}' followed by 8 or 17 hex digits")


def as_list(value: str | list[str]) -> list[str]:
    """A subnet / security group setting as the list RunTask takes ('' -> [])."""
    if isinstance(value, str):
        return [value] if value else []
    return list(value)


# What each number key accepts, said when it is NaN or infinite.
_NUMBER_EXPECTED = {
    "vcpu": "a Fargate size: one of " + ", ".join(f"{v:g}" for v in fargate.vcpu_choices()),
    "memory": "a number of GB that Fargate offers with vcpu (0.5 to 120)",
    "time_limit": "a number of seconds > 0, or -1 for no limit",
    "start_timeout": "a number of seconds > 0, or -1 for no limit",
    "poll_freq": "a number of seconds > 0 and at most 60",
    "ephemeral_storage": f"a number of GiB: {FARGATE_DEFAULT_STORAGE_GIB} (Fargate's default) "
    f"or {MIN_EPHEMERAL_STORAGE_GIB}-{MAX_EPHEMERAL_STORAGE_GIB}",
    "launch_attempts": "a whole number from 1 to 10",
    "max_attempts": "a whole number from 1 to 50",
}


@functools.cache
def known_regions() -> frozenset[str]:
    """The regions of every AWS partition, from botocore's own data (no network)."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("partitions")["partitions"]
    return frozenset(
        region
        for partition in partitions
        for region in partition.get("regions", {})
        if not region.endswith("-global")  # pseudo regions of global endpoints
    )


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: the only hosts spoken to over plain HTTP, and the
    only addresses the sandbox listens on."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str) -> None:
    """Raise ValueError unless ``url`` is https://, or http:// to a loopback address."""
    if not _is_http_url(url):
        raise ValueError("expected an http:// or https:// URL such as http://127.0.0.1:4566")
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            "plain http:// is only allowed to a loopback address (127.0.0.0/8, ::1, "
            "localhost: the sandbox); over it the tasks' code and data would cross the "
            "network unencrypted. Use https://"
        )


class ExecutorConfig(BaseModel):
    """Every key of ``[executors.ecs]``. See the README's configuration reference."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # -- where and as whom ------------------------------------------------------------
    credentials: str = Field(
        DEFAULT_CREDENTIALS_FILE,
        description="Path of an AWS shared-credentials file; '' for boto3's default chain.",
    )
    profile: str = Field("", description="Profile in that file; '' for boto3's default.")
    region: str = Field("", description="AWS region; '' takes boto3's (AWS_DEFAULT_REGION...).")
    endpoint_url: str = Field(
        "", description="AWS endpoint override (the sandbox); '' takes AWS_ENDPOINT_URL if set."
    )
    # -- resources the tasks use -------------------------------------------------------
    s3_bucket_name: str = Field("covalent-fargate-task-resources", description="Staging bucket.")
    ecr_repo_name: str = Field("covalent-ecs-runner", description="ECR repository of the runner.")
    container_image_uri: str = Field(
        "",
        description="Runner image; '' means this version's runner in ecr_repo_name.",
    )
    ecs_cluster_name: str = Field("covalent-fargate-cluster", description="ECS cluster.")
    ecs_task_family_name: str = Field(
        "covalent-fargate-tasks",
        description="Prefix of the task-definition family (a config hash is appended).",
    )
    ecs_task_execution_role_name: str = Field(
        "ecsTaskExecutionRole", description="Role ECS uses to pull the image and write logs."
    )
    ecs_task_role_name: str = Field(
        "CovalentFargateTaskRole", description="Role the task runs as (reads/writes staging)."
    )
    ecs_task_subnet_id: str | list[str] = Field(
        "",
        description="Subnet for the task's ENI (required), or a list of up to 16 (ECS picks "
        "one per task: subnets in several zones avoid capacity shortfalls).",
    )
    ecs_task_security_group_id: str | list[str] = Field(
        "", description="Security group (required), or a list of up to 5."
    )
    assign_public_ip: bool = Field(
        True, description="Give tasks a public IP (needed to reach ECR from a public subnet)."
    )
    ecs_task_log_group_name: str = Field(
        "covalent-fargate-task-logs", description="CloudWatch Logs group for task output."
    )
    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(
        "FARGATE",
        description="FARGATE (on demand) or FARGATE_SPOT (cheaper; AWS may interrupt tasks).",
    )
    spot_fallback: bool = Field(
        False,
        description="With FARGATE_SPOT: relaunch on on-demand FARGATE when Spot has no capacity.",
    )
    rerun_on_interruption: bool = Field(
        False,
        description="With FARGATE_SPOT: relaunch a task Spot interrupted (its code runs again).",
    )
    launch_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Launches per task when ECS fails to start it for a passing cause "
        "(no capacity, network or image-pull timeouts); the code never ran on those.",
    )
    cpu_architecture: Literal["X86_64", "ARM64"] = Field(
        "X86_64", description="Fargate CPU architecture (the runner image is multi-arch)."
    )
    # -- per task ----------------------------------------------------------------------
    vcpu: float = Field(0.25, description="vCPUs per task (a Fargate size).")
    memory: float = Field(0.5, description="Memory per task in GB (must fit vcpu, see Fargate).")
    ephemeral_storage: int = Field(
        FARGATE_DEFAULT_STORAGE_GIB,
        description="Task disk in GiB: 20 (Fargate's default, free) or 21-200 (billed above 20).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every task."
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Environment name -> Secrets Manager secret or SSM parameter ARN; ECS puts the "
            "value in every task's environment (task definition `secrets`)."
        ),
    )
    time_limit: float = Field(
        -1,
        description="Seconds a task's container may run before it is stopped; -1 for no limit.",
    )
    start_timeout: float = Field(
        900,
        description="Seconds a task may wait for its container to start (queued, pulling); "
        "-1 for no limit.",
    )
    # -- client behaviour --------------------------------------------------------------
    cache_dir: str = Field(
        "~/.cache/covalent-ecs", description="Local folder for payloads being staged."
    )
    poll_freq: float = Field(
        0.5, gt=0, le=60, description="Seconds between DescribeTasks cycles while tasks run."
    )
    retry_mode: Literal["adaptive", "standard", "legacy"] = Field(
        "adaptive", description="botocore retry mode for every AWS client."
    )
    max_attempts: int = Field(10, ge=1, le=50, description="botocore attempts per AWS call.")
    price_table: str = Field(
        "",
        description="JSON file of Fargate prices for cost estimates (the format of the "
        "shipped prices.json); '' uses the shipped, dated table.",
    )

    # ---------------------------------------------------------------- field validators
    @field_validator("ecs_task_subnet_id")
    @classmethod
    def subnet_ids_are_well_formed(cls, value: str | list[str]) -> str | list[str]:
        _check_id_list(value, _SUBNET_RE, "subnet-", MAX_SUBNETS)
        return value

    @field_validator("ecs_task_security_group_id")
    @classmethod
    def security_group_ids_are_well_formed(cls, value: str | list[str]) -> str | list[str]:
        _check_id_list(value, _SECURITY_GROUP_RE, "sg-", MAX_SECURITY_GROUPS)
        return value

    @field_validator("ephemeral_storage")
    @classmethod
    def ephemeral_storage_is_a_fargate_size(cls, value: int) -> int:
        if not FARGATE_DEFAULT_STORAGE_GIB <= value <= MAX_EPHEMERAL_STORAGE_GIB:
            raise ValueError(
                f"give GiB from {MIN_EPHEMERAL_STORAGE_GIB} to {MAX_EPHEMERAL_STORAGE_GIB}, "
                f"or {FARGATE_DEFAULT_STORAGE_GIB} for Fargate's default"
            )
        return value

    @field_validator("region")
    @classmethod
    def region_is_well_formed(cls, value: str) -> str:
        if value and value not in known_regions() and not _REGION_RE.match(value):
            raise ValueError("expected a region name such as 'us-east-1'")
        return value

    @field_validator("s3_bucket_name")
    @classmethod
    def bucket_name_follows_s3_rules(cls, value: str) -> str:
        if not _BUCKET_RE.match(value):
            raise ValueError(
                "S3 bucket names are 3-63 characters of lowercase letters, digits, '.' and "
                "'-', starting and ending with a letter or digit"
            )
        neighbours = [pair for pair in _BUCKET_BAD_NEIGHBOURS if pair in value]
        if neighbours:
            pairs = " or ".join(map(repr, neighbours))
            raise ValueError(f"S3 bucket names may not contain {pairs}")
        if _is_ip_address(value):
            raise ValueError("S3 bucket names may not look like an IP address")
        prefix = next((p for p in _BUCKET_RESERVED_PREFIXES if value.startswith(p)), None)
        if prefix:
            raise ValueError(f"S3 reserves bucket names starting {prefix!r}")
        suffix = next((x for x in _BUCKET_RESERVED_SUFFIXES if value.endswith(x)), None)
        if suffix:
            raise ValueError(f"S3 reserves bucket names ending {suffix!r}")
        return value

    @field_validator("ecs_cluster_name", "ecs_task_family_name")
    @classmethod
    def ecs_name_is_well_formed(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("use 1-255 letters, digits, '-' and '_'")
        return value

    @field_validator("ecs_task_execution_role_name", "ecs_task_role_name")
    @classmethod
    def role_is_a_name_or_arn(cls, value: str) -> str:
        if not _ROLE_RE.match(value):
            raise ValueError("expected an IAM role name or a role ARN")
        return value

    @field_validator("ecs_task_log_group_name")
    @classmethod
    def log_group_is_well_formed(cls, value: str) -> str:
        if not _LOG_GROUP_RE.match(value):
            raise ValueError("use 1-512 characters of letters, digits, '_', '-', '/', '.', '#'")
        return value

    @field_validator("ecr_repo_name")
    @classmethod
    def ecr_repo_is_well_formed(cls, value: str) -> str:
        if not (2 <= len(value) <= 256 and _ECR_REPO_RE.match(value)):
            raise ValueError("ECR repository names are lowercase, e.g. 'covalent-ecs-runner'")
        return value

    @field_validator("container_image_uri")
    @classmethod
    def image_is_a_reference(cls, value: str) -> str:
        if value:
            ImageRef.parse(value)  # a ConfigError is a ValueError: pydantic reports it
        return value

    @field_validator("endpoint_url")
    @classmethod
    def endpoint_is_https_or_loopback(cls, value: str) -> str:
        if value:
            check_endpoint_url(value)
        return value

    @field_validator("credentials")
    @classmethod
    def credentials_file_exists_if_named(cls, value: str) -> str:
        # The default path may be absent (env vars or an instance role supply
        # credentials then); a path the user chose must exist, or it would be ignored.
        if value and value != DEFAULT_CREDENTIALS_FILE and not os.path.isfile(
            os.path.expanduser(value)
        ):
            raise ValueError("no such file; give the path of an AWS credentials file or ''")
        return value

    @field_validator("environment", "secrets")
    @classmethod
    def environment_names_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name.startswith(("COVALENT_ECS_", "AWS_")):
                raise ValueError(f"{name!r}: names starting COVALENT_ECS_ or AWS_ are reserved")
        return value

    @field_validator("secrets")
    @classmethod
    def secrets_are_secret_or_parameter_arns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, arn in value.items():
            if not (_SECRET_ARN_RE.match(arn) or _PARAMETER_ARN_RE.match(arn)):
                raise ValueError(
                    f"{name!r}: {arn!r} is not a Secrets Manager secret ARN "
                    "(arn:aws:secretsmanager:<region>:<account>:secret:<name>) or an SSM "
                    "parameter ARN (arn:aws:ssm:<region>:<account>:parameter/<name>)"
                )
        return value

    @field_validator("time_limit", "start_timeout")
    @classmethod
    def time_limit_is_positive_or_none(cls, value: float) -> float:
        if value != -1 and value <= 0:
            raise ValueError("give a number of seconds > 0, or -1 for no limit")
        return value

    @field_validator(
        "vcpu", "memory", "time_limit", "start_timeout", "poll_freq", "ephemeral_storage",
        "launch_attempts", "max_attempts", mode="before",
    )  # fmt: skip
    @classmethod
    def number_is_finite_not_a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads True as 1: vcpu=True would silently become 1 vCPU.
        if isinstance(value, bool):
            raise ValueError("expected a number, not a boolean")
        # NaN passes every comparison's negation (time_limit=nan meant "no limit") and
        # inf overflows the MiB conversion: neither is a size or a duration.
        if isinstance(value, (int, float, str)):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            except ValueError:
                return value  # not a number at all: pydantic says so
            if not math.isfinite(number):
                raise ValueError(f"expected {_NUMBER_EXPECTED[str(info.field_name)]}")
        return value

    @field_validator("cache_dir")
    @classmethod
    def cache_dir_is_writable(cls, value: str) -> str:
        # Checked without creating anything: the folder, or the nearest folder above
        # it that exists, must be writable (staging creates the rest on first use).
        path = os.path.abspath(os.path.expanduser(value))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError("exists and is not a folder; choose a writable folder")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise ValueError(f"{existing!r} is a file, not a folder; choose a writable folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{existing!r} is not writable; choose a writable folder")
        return value

    @field_validator("price_table")
    @classmethod
    def price_table_is_readable(cls, value: str) -> str:
        if value:
            pricing.load_price_table(value)  # ValueError naming what is wrong
        return value

    @field_validator("vcpu")
    @classmethod
    def vcpu_is_a_fargate_size(cls, value: float) -> float:
        fargate.cpu_units(value)
        return value

    @model_validator(mode="after")
    def secret_names_are_not_also_environment_names(self) -> ExecutorConfig:
        both = sorted(set(self.secrets) & set(self.environment))
        if both:
            raise ValueError(
                f"{', '.join(both)} set in both environment and secrets; keep each name in one"
            )
        return self

    @model_validator(mode="after")
    def spot_options_need_spot(self) -> ExecutorConfig:
        if self.capacity_provider != "FARGATE_SPOT":
            given = [k for k in ("spot_fallback", "rerun_on_interruption") if getattr(self, k)]
            if given:
                raise ValueError(
                    f"{' and '.join(given)}=true applies only to Spot tasks: set "
                    "capacity_provider='FARGATE_SPOT', or set it to false"
                )
        return self

    @model_validator(mode="after")
    def memory_must_fit_fargate_cpu(self) -> ExecutorConfig:
        try:
            fargate.task_size(self.vcpu, self.memory)
        except ValueError as err:
            raise ValueError(str(err)) from None
        return self

    @model_validator(mode="after")
    def region_is_known_unless_endpoint_given(self) -> ExecutorConfig:
        # An emulator (endpoint_url, or AWS_ENDPOINT_URL that '' defers to) may use
        # any region name; AWS itself only has the regions botocore knows.
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL", "")
        if self.region and not endpoint and self.region not in known_regions():
            close = difflib.get_close_matches(self.region, sorted(known_regions()), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "e.g. 'us-east-1'"
            raise ValueError(
                f"region={self.region!r} is not an AWS region botocore knows; {hint} (a "
                "region newer than this botocore: upgrade boto3; an emulator: set endpoint_url)"
            )
        return self

    @model_validator(mode="after")
    def environment_fits_run_task_overrides(self) -> ExecutorConfig:
        # launch.py imports this module: import it here, when a config is validated.
        from .launch import MAX_OVERRIDES_CHARS, worst_case_overrides_chars

        size = worst_case_overrides_chars(self)
        if size > MAX_OVERRIDES_CHARS:
            count = len(self.environment)
            raise ValueError(
                f"environment: with these {count} variable{'s' if count != 1 else ''} a task's "
                f"RunTask overrides would be up to {size} characters; ECS accepts at most "
                f"{MAX_OVERRIDES_CHARS}. Shorten the values (or the bucket name), or pass "
                "large data as task arguments"
            )
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def cpu_units(self) -> int:
        return fargate.task_size(self.vcpu, self.memory)[0]

    @property
    def memory_mib(self) -> int:
        return fargate.task_size(self.vcpu, self.memory)[1]

    @property
    def time_limit_s(self) -> float | None:
        return None if self.time_limit == -1 else self.time_limit

    @property
    def start_timeout_s(self) -> float | None:
        return None if self.start_timeout == -1 else self.start_timeout

    def require_launch_settings(self) -> None:
        """Keys that have no usable default must be set before a task can launch."""
        missing = [
            key
            for key in ("ecs_task_subnet_id", "ecs_task_security_group_id")
            if not getattr(self, key)
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} must be set (in [executors.ecs] of covalent.conf "
                "or as ECSExecutor arguments): tasks need a subnet and a security group. "
                "`covalent-ecs sandbox` prints a working block for local runs."
            )


CONFIG_KEYS = tuple(ExecutorConfig.model_fields)


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_http_url(value: str) -> bool:
    if any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def plugin_defaults() -> dict[str, Any]:
    """The block Covalent writes into ``[executors.ecs]`` of covalent.conf."""
    return ExecutorConfig().model_dump(mode="json")


def build_config(given: Mapping[str, Any], from_file: Mapping[str, Any]) -> ExecutorConfig:
    """Validate ``given`` over ``from_file``; raise ConfigError naming every bad key."""
    unknown = [key for key in given if key not in CONFIG_KEYS]
    file_unknown = [
        key for key in from_file if key not in CONFIG_KEYS and key not in COVALENT_BASE_KEYS
    ]
    problems = [_unknown_key_message(key, "argument") for key in unknown]
    problems += [_unknown_key_message(key, "key in [executors.ecs]") for key in file_unknown]
    merged = {key: value for key, value in from_file.items() if key in CONFIG_KEYS}
    merged.update({key: value for key, value in given.items() if key in CONFIG_KEYS})
    try:
        config = ExecutorConfig(**merged)
    except ValidationError as err:
        problems += _describe(err, given)
    if problems:
        raise ConfigError("invalid ECS executor configuration:\n  " + "\n  ".join(problems))
    _warn_about_secret_looking_environment(config)
    return config


_warned_environment_names: set[tuple[str, ...]] = set()


def _warn_about_secret_looking_environment(config: ExecutorConfig) -> None:
    """Once per set of names: ``environment`` values travel in every RunTask's overrides."""
    names = tuple(sorted(n for n in config.environment if _SECRET_LOOKING_NAME_RE.search(n)))
    if not names or names in _warned_environment_names:
        return
    _warned_environment_names.add(names)
    logger.warning(
        "environment %s look%s like a credential: `environment` values travel in every "
        "RunTask request (readable by anyone allowed ecs:DescribeTasks, and logged by "
        "CloudTrail). Store the value in Secrets Manager or SSM Parameter Store and name "
        "it in `secrets` instead (docs/security.md).",
        ", ".join(names),
        "s" if len(names) == 1 else "",
    )


def _unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(CONFIG_KEYS)}"
    return f"unknown {where} {key!r}{hint}"


def _describe(err: ValidationError, given: Mapping[str, Any]) -> list[str]:
    lines = []
    for problem in err.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a cross-field rule such as memory_must_fit_fargate_cpu
            lines.append(message)
            continue
        key = ".".join(str(part) for part in problem["loc"])
        source = "argument" if problem["loc"][0] in given else "[executors.ecs] key"
        lines.append(f"{source} {key}={_shown(problem['loc'], problem.get('input'))}: {message}")
    return lines


def _shown(location: tuple[Any, ...], value: Any) -> str:
    """The input as an error message shows it: never an ``environment`` value, and never
    the ``user:password@`` of a URL or image reference."""
    if location[0] not in _VALUES_NOT_SHOWN:
        if isinstance(value, str):
            return repr(_USERINFO_RE.sub(r"\1***@", value))
        return repr(value)
    if isinstance(value, dict):
        return repr({name: "***" for name in value})
    return "*** (value not shown)"
