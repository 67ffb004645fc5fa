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
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import fargate, pricing
from .errors import ConfigError

# Keys Covalent's base executor owns; accepted and kept as attributes, not validated here.
COVALENT_BASE_KEYS = ("log_stdout", "log_stderr", "time_limit", "retries")

_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_SECURITY_GROUP_RE = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # cluster, task family
_ROLE_RE = re.compile(r"^(arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}|[\w+=,.@-]{1,64})$")
_LOG_GROUP_RE = re.compile(r"^[\w#./-]{1,512}$")
_ECR_REPO_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_IMAGE_RE = re.compile(r"^[\w.-]+(:\d+)?(/[\w.-]+)*(:[\w.-]{1,128})?(@sha256:[0-9a-f]{64})?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_CREDENTIALS_FILE = "~/.aws/credentials"


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
    ecs_task_subnet_id: str = Field("", description="Subnet for the task's ENI (required).")
    ecs_task_security_group_id: str = Field("", description="Security group (required).")
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
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every task."
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
    def subnet_id_is_well_formed(cls, value: str) -> str:
        if value and not _SUBNET_RE.match(value):
            raise ValueError("expected 'subnet-' followed by 8 or 17 hex digits")
        return value

    @field_validator("ecs_task_security_group_id")
    @classmethod
    def security_group_id_is_well_formed(cls, value: str) -> str:
        if value and not _SECURITY_GROUP_RE.match(value):
            raise ValueError("expected 'sg-' followed by 8 or 17 hex digits")
        return value

    @field_validator("region")
    @classmethod
    def region_is_well_formed(cls, value: str) -> str:
        if value and not _REGION_RE.match(value):
            raise ValueError("expected a region name such as 'us-east-1'")
        return value

    @field_validator("s3_bucket_name")
    @classmethod
    def bucket_name_follows_s3_rules(cls, value: str) -> str:
        if not _BUCKET_RE.match(value) or ".." in value:
            raise ValueError(
                "S3 bucket names are 3-63 characters of lowercase letters, digits, '.' and '-'"
            )
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
        if value and not _IMAGE_RE.match(value):
            raise ValueError("expected an image reference such as 'repo/name:tag'")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def endpoint_is_an_http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
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

    @field_validator("environment")
    @classmethod
    def environment_names_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name.startswith(("COVALENT_ECS_", "AWS_")):
                raise ValueError(f"{name!r}: names starting COVALENT_ECS_ or AWS_ are reserved")
        return value

    @field_validator("time_limit", "start_timeout")
    @classmethod
    def time_limit_is_positive_or_none(cls, value: float) -> float:
        if value != -1 and value <= 0:
            raise ValueError("give a number of seconds > 0, or -1 for no limit")
        return value

    @field_validator("vcpu", "memory", "time_limit", "start_timeout", "poll_freq", mode="before")
    @classmethod
    def number_is_not_a_bool(cls, value: Any) -> Any:
        # pydantic reads True as 1: vcpu=True would silently become 1 vCPU.
        if isinstance(value, bool):
            raise ValueError("expected a number, not a boolean")
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
    return config


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
        lines.append(f"{source} {key}={problem.get('input')!r}: {message}")
    return lines
