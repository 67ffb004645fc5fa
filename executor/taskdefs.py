"""One task definition per distinct configuration, named after a hash of it, reused.

The original plugin registered a definition per task (and the family limit is a
million revisions). Here the definition holds only what RunTask cannot override (image,
roles, log configuration, platform, secrets); cpu/memory/command/env come per task through
``overrides``. Its family name ends in a hash of its content, so "is it registered?"
is one DescribeTaskDefinition per process, and a changed setting gets a new family
instead of silently reusing a stale definition.

Two guards keep what runs what this client asked for:

* the image is pinned by digest (``pinned_image``): an ECR tag is resolved once per
  process (DescribeImages) and the definition names ``repo@sha256:...``, so a later
  push to a mutable tag does not change what runs (a new process resolves again, and
  its definition, with another digest, is another family);
* an existing revision is reused only when its content is what we would register
  (``same_content``): anyone allowed RegisterTaskDefinition can add a revision to our
  family name, with another image or command; such a revision is never run, ours is
  registered next to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from covalent_ecs_runtime import contract

from . import aws
from .config import ExecutorConfig
from .errors import ECSExecutorError, ImagePullError
from .image.refs import parse_ecr_image

logger = logging.getLogger(__name__)

# The definition's own size: the smallest Fargate task. Tasks that ask for more get
# task-level cpu/memory overrides, so every size shares this one definition.
BASE_CPU_UNITS = 256
BASE_MEMORY_MIB = 512
LOG_STREAM_PREFIX = "covalent"
# Hex digits of the content hash in a family name. The infra template's client policy
# matches families as `<prefix>-` + this many `?`: change both together.
FAMILY_HASH_CHARS = 12
_LAYOUT_VERSION = 1  # bump when build_task_definition's shape changes
# What DescribeTaskDefinition adds to what was registered: identity, state, history.
_DESCRIBED_ONLY = frozenset(
    {
        "taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
        "registeredAt", "registeredBy", "deregisteredAt", "deleteRequestedAt",
    }
)  # fmt: skip


def build_task_definition(
    config: ExecutorConfig,
    *,
    image_uri: str,
    execution_role_arn: str,
    task_role_arn: str,
    region: str,
) -> dict[str, Any]:
    """The RegisterTaskDefinition request, family name included. Pure.

    ``secrets`` go here, not in RunTask's overrides (which cannot carry them, and which
    anyone allowed DescribeTasks can read): ECS resolves them with the execution role.
    """
    container: dict[str, Any] = {
        "name": contract.CONTAINER_NAME,
        "image": image_uri,
        "essential": True,
        "entryPoint": contract.ENTRY_POINT,
        "command": ["--version"],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": config.ecs_task_log_group_name,
                "awslogs-region": region,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        },
    }
    if config.secrets:
        container["secrets"] = [
            {"name": name, "valueFrom": arn} for name, arn in sorted(config.secrets.items())
        ]
    body: dict[str, Any] = {
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": str(BASE_CPU_UNITS),
        "memory": str(BASE_MEMORY_MIB),
        "executionRoleArn": execution_role_arn,
        "taskRoleArn": task_role_arn,
        "runtimePlatform": {
            "cpuArchitecture": config.cpu_architecture,
            "operatingSystemFamily": "LINUX",
        },
        "containerDefinitions": [container],
    }
    return {"family": task_definition_family(config.ecs_task_family_name, body), **body}


def task_definition_family(prefix: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"layout": _LAYOUT_VERSION, **body}, sort_keys=True)
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:FAMILY_HASH_CHARS]}"


def log_stream_name(task_arn: str) -> str:
    """The awslogs stream ECS writes a task's container output to."""
    task_id = task_arn.rsplit("/", 1)[-1]
    return f"{LOG_STREAM_PREFIX}/{contract.CONTAINER_NAME}/{task_id}"


def runner_container(task: dict[str, Any]) -> dict[str, Any]:
    """The runner's container in a described task ({} when ECS lists none yet)."""
    for container in task.get("containers", []):
        if container.get("name") == contract.CONTAINER_NAME:
            return dict(container)
    return {}


def pinned_image(clients: aws.Clients, image_uri: str) -> str:
    """``image_uri`` by digest: the digest its ECR tag points at now, or as given.

    A reference that already has ``@sha256:`` is kept. An image outside ECR (or in ECR
    in another region) cannot be resolved here: its tag is kept, and a log line says
    so. A missing ECR image fails now, before any task is started.
    """
    if "@sha256:" in image_uri:
        return image_uri
    ref = parse_ecr_image(image_uri)
    if ref is None or ref.region != clients.region:
        logger.warning(
            "runner image %s is not pinned by digest (only this region's ECR tags are "
            "resolved): each task runs whatever the tag points at when it starts. Give "
            "container_image_uri as repo@sha256:<digest> to pin it.",
            image_uri,
        )
        return image_uri
    try:
        described = aws.call(
            clients.ecr.describe_images,
            f"look up the digest of {image_uri} (ecr:DescribeImages)",
            registryId=ref.account,
            repositoryName=ref.repository,
            imageIds=[{"imageTag": ref.tag}],
        )
    except ECSExecutorError as err:
        if aws.has_code(err, "ImageNotFoundException", "RepositoryNotFoundException"):
            raise ImagePullError(
                f"the runner image {image_uri} is not in ECR; no task was started. "
                "`covalent-ecs publish-image` pushes this version's runner, or set "
                "container_image_uri to an image that exists."
            ) from err
        raise
    digest = str(described["imageDetails"][0]["imageDigest"])
    return f"{ref.registry}/{ref.repository}@{digest}"


def same_content(described: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Does a described revision hold exactly what ``wanted`` would register? Pure.

    ECS fills in defaults (``cpu: 0``, empty lists, ``false`` flags) and adds its own
    fields (ARN, revision, status...): those are ignored. Anything else that differs
    or is extra (another image, command, environment, role, volume, a second
    container) makes it another definition.
    """
    mine = {k: v for k, v in described.items() if k not in _DESCRIBED_ONLY}
    return _normalized(mine) == _normalized(wanted)


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {key: _normalized(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, "", [], {}, False, 0)}
    if isinstance(value, list):
        items = [_normalized(item) for item in value]
        # name/value lists (environment, secrets) compare as sets of names.
        if items and all(isinstance(item, dict) and "name" in item for item in items):
            items.sort(key=lambda item: str(item["name"]))
        return items
    return value


def ensure_registered(ecs: Any, definition: dict[str, Any]) -> str:
    """ARN of an ACTIVE revision of this family with exactly this content, registering
    one when the latest revision is missing, inactive or different."""
    family = definition["family"]
    try:
        described = aws.call(
            ecs.describe_task_definition,
            f"describe task definition {family}",
            taskDefinition=family,
        )["taskDefinition"]
        if described.get("status") == "ACTIVE":
            if same_content(described, definition):
                return str(described["taskDefinitionArn"])
            logger.warning(
                "task definition %s is not what this configuration registers (image %s): "
                "registering ours; the other revision is never run",
                described.get("taskDefinitionArn"),
                next(iter(described.get("containerDefinitions") or [{}])).get("image"),
            )
    except ECSExecutorError as err:
        # ECS answers ClientException "Unable to describe task definition" for an
        # unknown family; anything else is a real error.
        if not aws.has_code(err, "ClientException"):
            raise
    registered = aws.call(
        ecs.register_task_definition, f"register task definition {family}", **definition
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


RunInThread = Callable[..., Awaitable[Any]]


class TaskDefinitionCache:
    """Per-process memo of the pinned image and the definition's ARN, so concurrent
    tasks resolve the tag once and look the family up once."""

    def __init__(self) -> None:
        self._values: dict[tuple[Any, ...], str] = {}
        # asyncio locks belong to one event loop; tests and tools may run several.
        self._locks: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    async def _once(self, key: tuple[Any, ...], run_in_thread: RunInThread, *call: Any) -> str:
        if key in self._values:
            return self._values[key]
        loop_locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock = loop_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._values:
                self._values[key] = await run_in_thread(*call)
        return self._values[key]

    async def pinned_image(
        self, clients: aws.Clients, image_uri: str, run_in_thread: RunInThread
    ) -> str:
        key = ("image", clients.settings, image_uri)
        return await self._once(key, run_in_thread, pinned_image, clients, image_uri)

    async def arn(
        self, clients: aws.Clients, definition: dict[str, Any], run_in_thread: RunInThread
    ) -> str:
        key = ("definition", clients.settings, definition["family"])
        return await self._once(key, run_in_thread, ensure_registered, clients.ecs, definition)

    def forget(self, clients: aws.Clients, family: str) -> None:
        """Drop a memo, e.g. after ECS reported the definition INACTIVE."""
        self._values.pop(("definition", clients.settings, family), None)
