"""The tasks this plugin started, found from ECS alone (``covalent-ecs ps``/``stop``/``logs``).

The Covalent server may be gone (``kill -9``), so nothing here asks it: every task
carries ``startedBy = "covalent/<dispatch_id>/<node_id>"`` (launch.started_by).
ListTasks filters on an exact ``startedBy`` (one node's tasks) or lists a cluster's
tasks by desired status; DescribeTasks (at most 100 ARNs per call) gives their state.

Pure helpers (``parse_started_by``, ``ps_rows``, ``stop_reason``) and short functions
that take the ECS client.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterable
from typing import Any

from . import aws, launch, pricing, timeline
from .errors import ConfigError
from .poller import DESCRIBE_TASKS_MAX_ARNS

# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html
LIST_TASKS_MAX_RESULTS = 100
STOP_REASON = "Stopped with covalent-ecs stop"
_STATUSES = ("RUNNING", "STOPPED")  # ListTasks' desiredStatus values


def parse_started_by(value: str | None) -> tuple[str, str] | None:
    """(dispatch_id, node_id) from a ``startedBy`` this plugin set; None for any other."""
    if not value or not value.startswith(launch.STARTED_BY_PREFIX):
        return None
    dispatch_id, sep, node_id = value[len(launch.STARTED_BY_PREFIX) :].rpartition("/")
    return (dispatch_id, node_id) if sep and dispatch_id else None


def cluster_of(task_arn: str, default: str) -> str:
    """The cluster in a task ARN (``.../task/<cluster>/<id>``); ``default`` for old-style ARNs."""
    resource = task_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "task" else default


def list_task_arns(
    ecs: Any, cluster: str, *, desired_status: str = "RUNNING", started_by: str | None = None
) -> list[str]:
    """Every task ARN ListTasks gives (all pages)."""
    request: dict[str, Any] = {
        "cluster": cluster,
        "desiredStatus": desired_status,
        "maxResults": LIST_TASKS_MAX_RESULTS,
    }
    if started_by:
        request["startedBy"] = started_by
    arns: list[str] = []
    while True:
        page = aws.call(ecs.list_tasks, f"list the tasks of cluster {cluster}", **request)
        arns += page.get("taskArns", [])
        if not page.get("nextToken"):
            return arns
        request["nextToken"] = page["nextToken"]


def describe(ecs: Any, cluster: str, arns: Iterable[str]) -> list[dict[str, Any]]:
    """DescribeTasks in chunks of 100; tasks ECS no longer knows are left out."""
    wanted = list(dict.fromkeys(arns))
    found: list[dict[str, Any]] = []
    for start in range(0, len(wanted), DESCRIBE_TASKS_MAX_ARNS):
        chunk = wanted[start : start + DESCRIBE_TASKS_MAX_ARNS]
        response = aws.call(ecs.describe_tasks, f"describe tasks in {cluster}", cluster=cluster, tasks=chunk)
        found += response.get("tasks", [])
    return found


def live_tasks(ecs: Any, cluster: str, *, dispatch_id: str | None = None) -> list[dict[str, Any]]:
    """This plugin's tasks in ``cluster`` that are not stopped (of one dispatch if given)."""
    tasks = describe(ecs, cluster, list_task_arns(ecs, cluster))
    ours = []
    for task in tasks:
        ids = parse_started_by(task.get("startedBy"))
        if ids is None or task.get("lastStatus") == "STOPPED":
            continue
        if dispatch_id is None or ids[0] == dispatch_id:
            ours.append(task)
    return sorted(ours, key=lambda t: timeline.epoch_s(t.get("createdAt")) or 0.0)


def node_tasks(ecs: Any, cluster: str, dispatch_id: str, node_id: str) -> list[dict[str, Any]]:
    """One node's tasks ECS still knows (running, and stopped within about an hour), oldest first."""
    started_by = launch.started_by(dispatch_id, node_id)
    arns = [
        arn
        for status in _STATUSES
        for arn in list_task_arns(ecs, cluster, desired_status=status, started_by=started_by)
    ]
    tasks = describe(ecs, cluster, arns) if arns else []
    return sorted(tasks, key=lambda t: timeline.epoch_s(t.get("createdAt")) or 0.0)


def tasks_by_arn(ecs: Any, default_cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    """The named tasks; ConfigError for one ECS does not know or this plugin did not start."""
    by_cluster: dict[str, list[str]] = {}
    for arn in arns:
        if not arn.startswith("arn:") or ":task/" not in arn:
            raise ConfigError(f"{arn!r} is not a task ARN (arn:aws:ecs:<region>:<account>:task/...)")
        by_cluster.setdefault(cluster_of(arn, default_cluster), []).append(arn)
    found = [task for cluster, chunk in by_cluster.items() for task in describe(ecs, cluster, chunk)]
    known = {task["taskArn"] for task in found}
    missing = [arn for arn in arns if arn not in known]
    if missing:
        raise ConfigError(f"ECS does not know {', '.join(missing)} (stopped over an hour ago?)")
    strangers = [t["taskArn"] for t in found if parse_started_by(t.get("startedBy")) is None]
    if strangers:
        raise ConfigError(
            f"{', '.join(strangers)} was not started by covalent-ecs-executor (its startedBy "
            "does not begin with 'covalent/'): stop it with `aws ecs stop-task` if you mean to"
        )
    return found


def stop_reason(scope: str) -> str:
    """Why, and by whom: ECS shows it as the task's stoppedReason (at most 255 characters)."""
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - getuser fails without a passwd entry; the reason stays useful
        who = socket.gethostname()
    return f"{STOP_REASON} ({scope}) by {who}"[:255]


def stop(ecs: Any, tasks: list[dict[str, Any]], reason: str, default_cluster: str) -> list[tuple[str, str]]:
    """StopTask each; [(task ARN, '' or what went wrong)]."""
    outcome = []
    for task in tasks:
        arn = task["taskArn"]
        cluster = task.get("clusterArn") or cluster_of(arn, default_cluster)
        try:
            aws.call(ecs.stop_task, f"stop task {arn}", cluster=cluster, task=arn, reason=reason)
        except Exception as err:  # noqa: BLE001 - one refusal must not hide the other stops
            outcome.append((arn, str(err)))
        else:
            outcome.append((arn, ""))
    return outcome


def ps_rows(
    tasks: list[dict[str, Any]],
    *,
    now_s: float,
    prices: pricing.PriceTable,
    region: str,
    architecture: str,
) -> list[dict[str, Any]]:
    """One row per live task: dispatch, node, status, age, size, cost so far. Pure."""
    rows = []
    for task in tasks:
        dispatch_id, node_id = parse_started_by(task.get("startedBy")) or ("?", "?")
        fallback = timeline.TaskSize(0.25, 0.5, "FARGATE", architecture)
        size = timeline.size_of(task, fallback)
        created = timeline.epoch_s(task.get("createdAt"))
        cost = timeline.cost_between(
            timeline.epoch_s(task.get("pullStartedAt")),
            now_s,
            size,
            timeline.storage_gb_of(task),
            region=region,
            prices=prices,
        )
        rows.append(
            {
                "dispatch_id": dispatch_id,
                "node_id": node_id,
                "status": task.get("lastStatus", ""),
                "desired_status": task.get("desiredStatus", ""),
                "age_s": None if created is None else max(0.0, now_s - created),
                "vcpu": size.vcpu,
                "memory_gb": size.memory_gb,
                "capacity_provider": size.capacity_provider,
                "cost_so_far_usd": cost.usd,
                "task_arn": task["taskArn"],
            }
        )
    return rows


def node_attempts(
    records: list[dict[str, Any]], described: list[dict[str, Any]], *, log_group: str
) -> list[dict[str, Any]]:
    """A node's tasks, oldest first, from its durable records (finished runs) and from
    ECS (running, or stopped recently): task ARN, creation time, log group. Pure."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        for attempt in record.get("attempts", []):
            if attempt.get("task_arn"):
                found[attempt["task_arn"]] = {
                    "task_arn": attempt["task_arn"],
                    "created_s": (attempt.get("marks") or {}).get("created"),
                    "log_group": record.get("log_group") or log_group,
                    "cluster": record.get("cluster", ""),
                }
    for task in described:
        found.setdefault(
            task["taskArn"],
            {
                "task_arn": task["taskArn"],
                "created_s": timeline.epoch_s(task.get("createdAt")),
                "log_group": log_group,
                "cluster": task.get("clusterArn", ""),
            },
        )
    return sorted(found.values(), key=lambda a: a["created_s"] or 0.0)


def is_stopped(ecs: Any, cluster: str, task_arn: str) -> bool:
    """True once ECS reports the task STOPPED (or no longer knows it)."""
    tasks = describe(ecs, cluster_of(task_arn, cluster), [task_arn])
    return not tasks or tasks[0].get("lastStatus") == "STOPPED"
