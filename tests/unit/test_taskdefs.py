"""Which existing task-definition revision may be reused (pure: described dicts in)."""

from __future__ import annotations

import copy

import pytest

from covalent_ecs_executor import ExecutorConfig
from covalent_ecs_executor.taskdefs import build_task_definition, same_content

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/runner@sha256:" + "a" * 64
WANTED = build_task_definition(
    ExecutorConfig(secrets={"B_TOKEN": "arn:aws:ssm:us-east-1:123456789012:parameter/b",
                            "A_TOKEN": "arn:aws:ssm:us-east-1:123456789012:parameter/a"}),
    image_uri=IMAGE,
    execution_role_arn="arn:aws:iam::123456789012:role/exec",
    task_role_arn="arn:aws:iam::123456789012:role/task",
    region="us-east-1",
)


def described() -> dict:
    """What DescribeTaskDefinition answers for WANTED: its fields, ECS's defaults and own fields."""
    answer = copy.deepcopy(WANTED)
    container = answer["containerDefinitions"][0]
    container.update({"cpu": 0, "portMappings": [], "environment": [], "mountPoints": [],
                      "volumesFrom": [], "systemControls": []})
    container["secrets"] = list(reversed(container["secrets"]))
    answer.update({
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{WANTED['family']}:7",
        "revision": 7, "status": "ACTIVE", "volumes": [], "placementConstraints": [],
        "compatibilities": ["EC2", "FARGATE"], "requiresAttributes": [{"name": "ecs.capability.secrets.ssm.environment-variables"}],
        "registeredAt": "2026-01-01T00:00:00Z", "registeredBy": "arn:aws:iam::123456789012:user/me",
        "enableFaultInjection": False,
    })
    return answer


def test_our_own_revision_as_ecs_describes_it_is_reused():
    assert same_content(described(), WANTED)


def _container(change):
    def apply(answer):
        change(answer["containerDefinitions"][0])
    return apply


FOREIGN = {
    "another image": _container(lambda c: c.update(image="public.ecr.aws/evil/runner:latest")),
    "the same image by tag": _container(lambda c: c.update(image=IMAGE.split("@")[0] + ":v1")),
    "another command": _container(lambda c: c.update(command=["-c", "import os"])),
    "another entry point": _container(lambda c: c.update(entryPoint=["sh", "-c"])),
    "an added environment variable": _container(lambda c: c.update(environment=[{"name": "PYTHONSTARTUP", "value": "/x"}])),
    "another secret": _container(lambda c: c["secrets"].append({"name": "C", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/c"})),
    "another log group": _container(lambda c: c["logConfiguration"]["options"].update({"awslogs-group": "theirs"})),
    "a privileged flag": _container(lambda c: c.update(privileged=True)),
    "a second container": lambda a: a["containerDefinitions"].append(dict(a["containerDefinitions"][0], name="sidecar")),
    "another task role": lambda a: a.update(taskRoleArn="arn:aws:iam::123456789012:role/admin"),
    "another execution role": lambda a: a.update(executionRoleArn="arn:aws:iam::123456789012:role/other"),
    "another platform": lambda a: a.update(runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}),
    "a volume": lambda a: a.update(volumes=[{"name": "host", "host": {"sourcePath": "/"}}]),
    "no task role": lambda a: a.pop("taskRoleArn"),
}


@pytest.mark.parametrize("change", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_revision_with_other_content_is_not_reused(change):
    answer = described()
    change(answer)
    assert not same_content(answer, WANTED)
