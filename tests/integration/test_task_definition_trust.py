"""What runs is what this client registered: the runner image pinned by digest, and a
revision someone else put in our task-definition family never run.

Through the sandbox: ECSExecutor.run() registers and launches; the tests read the
described task and its definition back through the sandbox's ECS API.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import pytest

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.errors import ImagePullError
from covalent_ecs_executor.sandbox.seed import manifest_digest, runner_image_manifest
from covalent_ecs_executor.taskdefs import build_task_definition
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
# A run takes about a second in the sandbox: a ceiling for a broken one, not a pace.
RUN_CEILING_S = 120


def run_one(sandbox: Any, executor: ECSExecutor, fn: Any, *args: Any) -> tuple[Any, str]:
    """Run ``fn(*args)`` as node 0 of a new dispatch; (value, the task's ARN)."""
    dispatch_id = f"trust-{uuid.uuid4().hex[:8]}"
    value = asyncio.run(asyncio.wait_for(
        executor.run(fn, list(args), {}, {"dispatch_id": dispatch_id, "node_id": 0, "results_dir": "/tmp"}),
        RUN_CEILING_S,
    ))
    (record,) = [r for r in sandbox.tasks() if r["label"] == f"{dispatch_id}/0"]
    return value, str(record["taskArn"])


def new_executor(sandbox: Any, **config: Any) -> ECSExecutor:
    """An executor with a family of its own (nothing memoised for it in this process)."""
    family = {"ecs_task_family_name": f"trust-{uuid.uuid4().hex[:6]}"}
    return ECSExecutor(**{**sandbox.executor_config, **family, **config})


def described(sandbox: Any, task_arn: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The described task and the task definition it ran."""
    ecs = sandbox.client("ecs", internal=True)
    cluster = sandbox.executor_config["ecs_cluster_name"]
    (task,) = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    return task, definition


def image_digest(sandbox: Any, repository: str, tag: str) -> str:
    ecr = sandbox.client("ecr", internal=True)
    (image,) = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    return str(image["imageDigest"])


def push(sandbox: Any, repository: str, tag: str, *, variant: str) -> str:
    """An image (a manifest only: the sandbox has no registry) under ``tag``; its digest."""
    manifest = json.loads(runner_image_manifest())
    manifest["annotations"] = {"variant": variant}
    body = json.dumps(manifest)
    sandbox.client("ecr", internal=True).put_image(
        repositoryName=repository, imageManifest=body, imageTag=tag, imageDigest=manifest_digest(body)
    )
    return manifest_digest(body)


def test_the_runner_image_runs_by_the_digest_its_tag_resolved_to(fresh_sandbox):
    executor = new_executor(fresh_sandbox)
    value, task_arn = run_one(fresh_sandbox, executor, pow, 2, 5)
    assert value == 32
    repository = fresh_sandbox.executor_config["ecr_repo_name"]
    pinned = f"{REGISTRY}/{repository}@{image_digest(fresh_sandbox, repository, contract.runner_image_tag())}"
    task, definition = described(fresh_sandbox, task_arn)
    assert definition["containerDefinitions"][0]["image"] == pinned
    assert task["containers"][0]["image"] == pinned
    # The tag is resolved by the client at most once per process (an earlier test in this
    # process may already have resolved it), before the task definition is registered.
    assert fresh_sandbox.calls_by_caller()["client"].get("ecr.DescribeImages", 0) <= 1


def test_a_tag_pushed_again_later_does_not_change_what_runs(fresh_sandbox):
    repository = f"pinned-{uuid.uuid4().hex[:8]}"
    fresh_sandbox.client("ecr", internal=True).create_repository(repositoryName=repository)
    first = push(fresh_sandbox, repository, "v1", variant="first")
    push(fresh_sandbox, repository, "first", variant="first")  # keeps the first image once v1 moves
    config = {"container_image_uri": f"{REGISTRY}/{repository}:v1"}
    executor = new_executor(fresh_sandbox, **config)
    assert run_one(fresh_sandbox, executor, abs, -1)[0] == 1

    second = push(fresh_sandbox, repository, "v1", variant="second")  # the mutable tag moves
    assert second != first and image_digest(fresh_sandbox, repository, "v1") == second
    again = new_executor(fresh_sandbox, **config, ecs_task_family_name=executor.ecs_task_family_name)
    value, task_arn = run_one(fresh_sandbox, again, abs, -2)
    assert value == 2
    _, definition = described(fresh_sandbox, task_arn)
    assert definition["containerDefinitions"][0]["image"] == f"{REGISTRY}/{repository}@{first}"


def test_a_missing_runner_tag_fails_before_any_task_is_started(fresh_sandbox):
    repository = fresh_sandbox.executor_config["ecr_repo_name"]
    executor = new_executor(fresh_sandbox, container_image_uri=f"{REGISTRY}/{repository}:no-such-tag")
    from covalent._shared_files.exceptions import TaskRuntimeError

    with pytest.raises(TaskRuntimeError, match=r"\[ImagePullError\].*no-such-tag is not in ECR") as caught:
        run_one(fresh_sandbox, executor, abs, -1)
    assert isinstance(caught.value.__cause__, ImagePullError)
    calls = fresh_sandbox.calls()
    assert "ecs.RunTask" not in calls and "ecs.RegisterTaskDefinition" not in calls


def test_a_foreign_revision_in_our_family_is_never_run(fresh_sandbox):
    executor = new_executor(fresh_sandbox)
    config = executor.config()
    repository = config.ecr_repo_name
    ours = f"{REGISTRY}/{repository}@{image_digest(fresh_sandbox, repository, contract.runner_image_tag())}"
    definition = build_task_definition(
        config,
        image_uri=ours,
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{config.ecs_task_execution_role_name}",
        task_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{config.ecs_task_role_name}",
        region="us-east-1",
    )
    # Someone else (allowed RegisterTaskDefinition) adds a revision to our family name
    # with their image: it becomes the family's latest ACTIVE revision.
    foreign_image = f"{REGISTRY}/{repository}:foreign"
    push(fresh_sandbox, repository, "foreign", variant="foreign")
    foreign = copy.deepcopy(definition)
    foreign["containerDefinitions"][0]["image"] = foreign_image
    ecs = fresh_sandbox.client("ecs", internal=True)
    foreign_arn = ecs.register_task_definition(**foreign)["taskDefinition"]["taskDefinitionArn"]
    assert ecs.describe_task_definition(taskDefinition=definition["family"])["taskDefinition"][
        "taskDefinitionArn"
    ] == foreign_arn

    value, task_arn = run_one(fresh_sandbox, executor, max, 3, 7)
    assert value == 7
    task, ran = described(fresh_sandbox, task_arn)
    assert task["taskDefinitionArn"] != foreign_arn
    assert ran["family"] == definition["family"] and ran["revision"] == 2  # ours, next to theirs
    assert ran["containerDefinitions"][0]["image"] == ours
    assert task["containers"][0]["image"] == ours
    assert fresh_sandbox.calls_by_caller()["client"]["ecs.RegisterTaskDefinition"] == 1
