"""One task definition per distinct configuration, named after a hash of it, reused.

The original plugin registered a definition per task (and the family limit is a
million revisions). Here the definition holds only what RunTask cannot override (image,
roles, log configuration, platform); cpu/memory/command/env come per task through
``overrides``. Its family name ends in a hash of its content, so "is it registered?"
is one DescribeTaskDefinition per process, and a changed setting gets a new family
instead of silently reusing a stale definition.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from typing import Any

from covalent_ecs_runtime import contract

from . import aws
from .config import ExecutorConfig
from .errors import ECSExecutorError

# The definition's own size: the smallest Fargate task. Tasks that ask for more get
# task-level cpu/memory overrides, so every size shares this one definition.
BASE_CPU_UNITS = 256
BASE_MEMORY_MIB = 512
LOG_STREAM_PREFIX = "covalent"
_LAYOUT_VERSION = 1  # bump when build_task_definition's shape changes


def build_task_definition(
    config: ExecutorConfig,
    *,
    image_uri: str,
    execution_role_arn: str,
    task_role_arn: str,
    region: str,
) -> dict[str, Any]:
    """The RegisterTaskDefinition request, family name included. Pure."""
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
        "containerDefinitions": [
            {
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
        ],
    }
    return {"family": task_definition_family(config.ecs_task_family_name, body), **body}


def task_definition_family(prefix: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"layout": _LAYOUT_VERSION, **body}, sort_keys=True)
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


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


def ensure_registered(ecs: Any, definition: dict[str, Any]) -> str:
    """ARN of an ACTIVE definition of this family, registering it when there is none."""
    family = definition["family"]
    try:
        described = aws.call(
            ecs.describe_task_definition,
            f"describe task definition {family}",
            taskDefinition=family,
        )["taskDefinition"]
        if described.get("status") == "ACTIVE":
            return str(described["taskDefinitionArn"])
    except ECSExecutorError as err:
        # ECS answers ClientException "Unable to describe task definition" for an
        # unknown family; anything else is a real error.
        if not aws.has_code(err, "ClientException"):
            raise
    registered = aws.call(
        ecs.register_task_definition, f"register task definition {family}", **definition
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


class TaskDefinitionCache:
    """Per-process memo of family -> ARN, so concurrent tasks look it up once."""

    def __init__(self) -> None:
        self._arns: dict[tuple[Any, str], str] = {}
        # asyncio locks belong to one event loop; tests and tools may run several.
        self._locks: weakref.WeakKeyDictionary[Any, dict[tuple[Any, str], asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    async def arn(self, clients: aws.Clients, definition: dict[str, Any], run_in_thread: Any) -> str:
        key = (clients.settings, definition["family"])
        if key in self._arns:
            return self._arns[key]
        loop_locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock = loop_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._arns:
                self._arns[key] = await run_in_thread(ensure_registered, clients.ecs, definition)
        return self._arns[key]

    def forget(self, clients: aws.Clients, family: str) -> None:
        """Drop a memo, e.g. after ECS reported the definition INACTIVE."""
        self._arns.pop((clients.settings, family), None)
