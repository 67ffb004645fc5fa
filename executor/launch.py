"""The RunTask request for one task (pure), and sending it.

Everything that varies per task travels in ``overrides``: the runner's command (which
payload and result keys), its environment (with the run's signing key and the account
that must own the bucket), and task-level cpu/memory when the task asks for another
size than the shared definition's.

The signing key is in the environment override only: RunTask overrides are visible to
principals allowed to call DescribeTasks (who may run tasks themselves), never to the
task role, and never written to S3 or a log. The request built here holds it: it is
sent, never printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from covalent_ecs_runtime import contract, signing

from . import aws, failures
from .config import FARGATE_DEFAULT_STORAGE_GIB, ExecutorConfig, as_list
from .errors import ConfigError, LaunchError
from .staging import Bucket, TaskKeys, task_keys
from .taskdefs import BASE_CPU_UNITS, BASE_MEMORY_MIB

# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html
MAX_OVERRIDES_CHARS = 8192
MAX_CLIENT_TOKEN_CHARS = 64
MAX_STARTED_BY_CHARS = 128
TAG_DISPATCH_ID = "covalent:dispatch-id"
TAG_NODE_ID = "covalent:node-id"
# The longest ids a task's overrides carry, for the size check at config time: Covalent's
# dispatch ids are UUIDs (36 characters); node ids index a workflow's graph, and seven
# digits cover ten million electrons.
LONGEST_DISPATCH_ID = "00000000-0000-0000-0000-000000000000"
LONGEST_NODE_ID = 9_999_999

# Fargate's task-launch token bucket per account and region: burst 100, refill 20/s
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html,
# docs/facts.md "AWS limits and throttles"). RunTask's own bucket (burst 100, refill
# 40/s) is wider, so launches are what a burst of tasks runs into. The pacer stays a
# little inside it: other clients in the account and RunTask retries draw on the same
# bucket.
LAUNCH_BURST = 90
LAUNCH_RATE_PER_S = 19.0


STARTED_BY_PREFIX = "covalent/"


def started_by(dispatch_id: str, node_id: int | str) -> str:
    """RunTask's ``startedBy``: how ``covalent-ecs ps``/``stop``/``logs`` find a node's
    tasks without the Covalent server (ListTasks filters on it)."""
    return f"{STARTED_BY_PREFIX}{dispatch_id}/{node_id}"[:MAX_STARTED_BY_CHARS]


def client_token(dispatch_id: str, node_id: int | str, attempt: str) -> str:
    """Idempotency token: a retried RunTask (lost response) never starts a second task."""
    digest = hashlib.sha256(f"{dispatch_id}/{node_id}/{attempt}".encode()).hexdigest()
    return digest[:MAX_CLIENT_TOKEN_CHARS]


def task_environment(
    config: ExecutorConfig,
    dispatch_id: str,
    node_id: int | str,
    *,
    bucket_owner: str,
    signing_key: signing.SigningKey,
) -> dict[str, str]:
    return {
        **config.environment,
        **contract.client_env(),
        contract.ENV_TASK_LABEL: f"{dispatch_id}/{node_id}",
        contract.ENV_BUCKET_OWNER: bucket_owner,
        contract.ENV_SIGNING_SECRET: signing_key.env_value(),
    }


def build_overrides(
    config: ExecutorConfig,
    *,
    bucket: Bucket,
    keys: TaskKeys,
    dispatch_id: str,
    node_id: int | str,
    signing_key: signing.SigningKey,
) -> dict[str, Any]:
    """RunTask's ``overrides``: the runner's command, its environment, the task's size. Pure."""
    environment = task_environment(
        config, dispatch_id, node_id, bucket_owner=bucket.owner, signing_key=signing_key
    )
    container_override: dict[str, Any] = {
        "name": contract.CONTAINER_NAME,
        "command": contract.run_command(
            bucket=bucket.name, payload_key=keys.payload, result_key=keys.result
        ),
        "environment": [{"name": name, "value": value} for name, value in environment.items()],
    }
    overrides: dict[str, Any] = {"containerOverrides": [container_override]}
    if (config.cpu_units, config.memory_mib) != (BASE_CPU_UNITS, BASE_MEMORY_MIB):
        overrides["cpu"] = str(config.cpu_units)
        overrides["memory"] = str(config.memory_mib)
    if config.ephemeral_storage != FARGATE_DEFAULT_STORAGE_GIB:
        overrides["ephemeralStorage"] = {"sizeInGiB": config.ephemeral_storage}
    return overrides


def overrides_chars(overrides: dict[str, Any]) -> int:
    """The size ECS limits (MAX_OVERRIDES_CHARS): the overrides as compact JSON."""
    return len(json.dumps(overrides, separators=(",", ":")))


def worst_case_overrides_chars(config: ExecutorConfig) -> int:
    """The largest overrides any task of ``config`` can have (config validation uses it):
    the longest ids, and the last launch attempt's result key (the longest)."""
    keys = task_keys(LONGEST_DISPATCH_ID, LONGEST_NODE_ID).for_attempt(config.launch_attempts)
    return overrides_chars(
        build_overrides(
            config,
            # Only lengths matter here: an account id has 12 digits, every key 256 bits.
            bucket=Bucket(name=config.s3_bucket_name, owner="0" * 12),
            keys=keys,
            dispatch_id=LONGEST_DISPATCH_ID,
            node_id=LONGEST_NODE_ID,
            signing_key=signing.SigningKey(bytes(signing.KEY_BYTES)),
        )
    )


def build_run_task_request(
    config: ExecutorConfig,
    *,
    task_definition_arn: str,
    bucket: Bucket,
    keys: TaskKeys,
    dispatch_id: str,
    node_id: int | str,
    attempt: str,
    signing_key: signing.SigningKey,
) -> dict[str, Any]:
    """The RunTask request. Pure; raises ConfigError when the overrides are too long.

    The configuration refuses an environment that could make them too long
    (``environment_fits_run_task_overrides``); this check is the last guard, for ids
    longer than that bound assumes.
    """
    overrides = build_overrides(
        config,
        bucket=bucket,
        keys=keys,
        dispatch_id=dispatch_id,
        node_id=node_id,
        signing_key=signing_key,
    )
    size = overrides_chars(overrides)
    if size > MAX_OVERRIDES_CHARS:
        raise ConfigError(
            f"the task's RunTask overrides are {size} characters; ECS accepts at most "
            f"{MAX_OVERRIDES_CHARS}. Shorten the values in 'environment' "
            f"({len(config.environment)} variables) or pass large data as task arguments."
        )
    return {
        "cluster": config.ecs_cluster_name,
        "taskDefinition": task_definition_arn,
        **_capacity(config),
        "platformVersion": "LATEST",
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": as_list(config.ecs_task_subnet_id),
                "securityGroups": as_list(config.ecs_task_security_group_id),
                "assignPublicIp": "ENABLED" if config.assign_public_ip else "DISABLED",
            }
        },
        "overrides": overrides,
        "clientToken": client_token(dispatch_id, node_id, attempt),
        "startedBy": started_by(dispatch_id, node_id),
        "tags": [
            {"key": TAG_DISPATCH_ID, "value": str(dispatch_id)},
            {"key": TAG_NODE_ID, "value": str(node_id)},
        ],
    }


class LaunchPacer:
    """A token bucket on our side of the wire: at most ``burst`` launches at once, then
    ``rate_per_s``. Not a scheduler: every caller gets its launch, some a little later.

    A thousand tasks dispatched together would otherwise hit Fargate's launch bucket
    all at once; botocore's retries do absorb throttling, but its retry quota (a few
    hundred throttled retries per client) would run out long before 900 tasks got
    through, failing tasks. Thread-safe; callers on any event loop share one bucket.
    """

    def __init__(
        self,
        *,
        burst: int = LAUNCH_BURST,
        rate_per_s: float = LAUNCH_RATE_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate_per_s = rate_per_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self, count: int = 1) -> float:
        """Take ``count`` launches; return how many seconds to wait before using them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            self._tokens -= count  # may go negative: later callers queue behind
            delay = max(0.0, -self._tokens / self.rate_per_s)
            return delay

    async def acquire(self, count: int = 1) -> None:
        delay = self.reserve(count)
        if delay > 0:
            await asyncio.sleep(delay)


# Two buckets with the same figures. ``launch_schedule`` gives each run a slot when it
# is called, so that its payload is staged shortly before it; ``launch_pacer`` lets
# each RunTask go when it is actually sent. A run that reaches its slot late (its
# task definition or its upload took longer) spent a slot the schedule counts as used:
# paced by the schedule alone, every late run went at once, and a start delayed by
# 3 s sent 90 + 3 x 19 launches together, more than Fargate's bucket, which refills
# only up to its burst of 100, holds.
launch_schedule = LaunchPacer()
launch_pacer = LaunchPacer()


def _capacity(config: ExecutorConfig) -> dict[str, Any]:
    """On-demand Fargate, or Spot through a capacity provider strategy.

    RunTask takes ``launchType`` or ``capacityProviderStrategy``, never both; Spot needs
    the cluster to have the FARGATE_SPOT capacity provider (the infra template adds it).
    """
    if config.capacity_provider == "FARGATE":
        return {"launchType": "FARGATE"}
    return {"capacityProviderStrategy": [{"capacityProvider": config.capacity_provider, "weight": 1}]}


def run_task(ecs: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Send RunTask; return the started task or raise LaunchError with ECS's reasons."""
    response = aws.call(ecs.run_task, f"run a task in cluster {request['cluster']}", **request)
    tasks = response.get("tasks") or []
    if tasks:
        return dict(tasks[0])
    refusals = response.get("failures") or []
    reasons = "; ".join(
        f"{f.get('reason', 'unknown')}" + (f" ({f['detail']})" if f.get("detail") else "")
        for f in refusals
    )
    raise LaunchError(
        f"ECS did not start the task in cluster {request['cluster']}: {reasons or 'no reason given'}",
        reasons=reasons,
        transient=failures.transient_start_failure(reasons),
    )
