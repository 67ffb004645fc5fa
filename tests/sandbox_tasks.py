"""Running one raw ECS task in a sandbox (no executor), for the sandbox's own tests."""

from __future__ import annotations

from typing import Any

from waiting import wait_for

CONTAINER = "main"


def fargate_definition(family: str, container: dict[str, Any]) -> dict[str, Any]:
    """RegisterTaskDefinition's arguments for one container at Fargate's smallest size
    (no container-level memory: Fargate needs only the task's)."""
    return {
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [container],
    }


def in_sandbox_network(config: dict[str, Any]) -> dict[str, Any]:
    """RunTask's ``networkConfiguration`` for the sandbox's subnet and security group."""
    return {
        "awsvpcConfiguration": {
            "subnets": [config["ecs_task_subnet_id"]],
            "securityGroups": [config["ecs_task_security_group_id"]],
        }
    }


def run_one_container(
    sandbox: Any,
    *,
    image: str,
    command: list[str] | None = None,
    entry_point: list[str] | None = None,
    log_prefix: str | None = None,
    ecs: Any = None,
) -> str:
    """Register a one-container Fargate definition and RunTask it; the task's ARN.

    ``ecs`` defaults to an uncounted client; ``log_prefix`` sends the output to the
    sandbox's log group (``awslogs``).
    """
    config = sandbox.executor_config
    ecs = ecs or sandbox.client("ecs", internal=True)
    container: dict[str, Any] = {"name": CONTAINER, "image": image}
    if command is not None:
        container["command"] = command
    if entry_point is not None:
        container["entryPoint"] = entry_point
    if log_prefix:
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": config["ecs_task_log_group_name"],
                "awslogs-stream-prefix": log_prefix,
            },
        }
    definition = ecs.register_task_definition(
        **fargate_definition(f"raw-{log_prefix or 'task'}", container)
    )["taskDefinition"]["taskDefinitionArn"]
    return ecs.run_task(
        cluster=config["ecs_cluster_name"],
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration=in_sandbox_network(config),
    )["tasks"][0]["taskArn"]


def stopped_record(sandbox: Any, arn: str) -> dict[str, Any]:
    """The agent's record of task ``arn`` once it is STOPPED (waits, with a ceiling)."""
    return wait_for(
        lambda: next(
            (r for r in sandbox.tasks() if r["taskArn"] == arn and r["lastStatus"] == "STOPPED"),
            None,
        ),
        what=f"{arn} to stop",
    )


def log_messages(sandbox: Any, record: dict[str, Any]) -> list[str]:
    """The lines a task wrote to its log stream (its agent record names the stream)."""
    group, stream = record["logStream"].split(":", 1)
    logs = sandbox.client("logs", internal=True)
    events = logs.get_log_events(logGroupName=group, logStreamName=stream)["events"]
    return [e["message"] for e in events]
