"""Why a task failed, in one message a user can act on. Pure: dicts in, errors out.

Two sources: the runner's result envelope (the function raised, or the runner could
not run it), and, when there is no envelope, what ECS says about the stopped task
(stop code, stopped reason, the container's exit code and reason) plus the tail of
its log stream.
References: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html
"""

from __future__ import annotations

from typing import Any

from covalent_ecs_runtime import contract

from .errors import (
    CapacityError,
    ECSExecutorError,
    ImagePullError,
    IntegrityError,
    LaunchError,
    NetworkSetupError,
    OutOfMemoryError,
    RemoteTaskError,
    RuntimeSkewError,
    StagingError,
    StartTimeoutError,
    TaskInterruptedError,
    TaskStoppedError,
)
from .taskdefs import runner_container

OOM_EXIT_CODE = 137
_CAPACITY_MARKERS = ("Capacity is unavailable", "capacity", "Insufficient")
STOP_CODE_FAILED_TO_START = "TaskFailedToStart"
# ENOSPC's message, as the task's Python (or any tool it runs) prints it.
_DISK_FULL = "No space left on device"
_DISK_FULL_HINT = (
    "\nThe task ran out of disk space: raise `ephemeral_storage` (GiB, up to 200; "
    "Fargate gives 20 by default), e.g. ECSExecutor(ephemeral_storage=50)."
)
STOP_CODE_SPOT_INTERRUPTION = "SpotInterruption"
# Why a container never started that says nothing about the user's task: worth a new
# launch (docs/facts.md, "Fargate in production": peers retry the same causes).
_TRANSIENT_START_MARKERS = (
    "Capacity is unavailable",
    "network interface provisioning",
    "Timeout waiting for network interface",
)
# A ResourceInitializationError or CannotPullContainerError is transient only when it
# says the service timed out or was overloaded (a missing image or role is not).
_TRANSIENT_CAUSE_MARKERS = (
    "timeout",
    "timed out",
    "i/o timeout",
    "TooManyRequests",
    "toomanyrequests",
    "429",
    "500 Internal",
    "502 Bad Gateway",
    "503 Service",
    "504 Gateway",
    "Service Unavailable",
    "connection reset",
)


def is_capacity_shortfall(reasons: str) -> bool:
    return any(marker in reasons for marker in _CAPACITY_MARKERS)


def transient_start_failure(reasons: str) -> bool:
    """ECS's reason says the container never started for a cause that may pass."""
    if any(marker in reasons for marker in _TRANSIENT_START_MARKERS):
        return True
    if "ResourceInitializationError" in reasons or "CannotPullContainerError" in reasons:
        lowered = reasons.lower()
        return any(marker.lower() in lowered for marker in _TRANSIENT_CAUSE_MARKERS)
    return False


def relaunch_reason(error: BaseException, *, rerun_on_interruption: bool = False) -> str | None:
    """Why ``error`` deserves another launch (one line), or None when it does not.

    Only failures that prove the user's code never ran qualify — a task whose container
    ran is never relaunched — except a Spot interruption when the user opted in.
    """
    if isinstance(error, StartTimeoutError):
        return f"still {error.phase} at start_timeout"
    if isinstance(error, LaunchError) and error.transient:
        return error.reasons or str(error)
    if isinstance(error, TaskStoppedError):
        reason = error.stopped_reason or ""
        if error.exit_code is None and error.stop_code == STOP_CODE_FAILED_TO_START:
            return reason if transient_start_failure(reason) else None
        if rerun_on_interruption and error.stop_code == STOP_CODE_SPOT_INTERRUPTION:
            return f"Spot interruption ({reason})" if reason else "Spot interruption"
    return None


def lacks_capacity(error: BaseException) -> bool:
    """The launch failed because Fargate (Spot) had no capacity."""
    if isinstance(error, LaunchError):
        return is_capacity_shortfall(error.reasons or str(error))
    if isinstance(error, TaskStoppedError) and error.exit_code is None:
        return is_capacity_shortfall(error.stopped_reason or "")
    return False


def check_envelope_format(found: str | None, result_uri: str) -> None:
    """Refuse a result from its metadata (contract.META_FORMAT), before any byte of it
    is unpickled: unsigned (a runner older than format 2, or another writer), or of a
    format this client does not read (a runner of another version)."""
    publish = (
        "publish the runner for this client (`covalent-ecs publish-image`) or point "
        "container_image_uri at it"
    )
    if not found:
        raise IntegrityError(
            f"the result {result_uri} was not loaded: it carries no signature. Runners before "
            f"0.2.0 (envelope format 1) wrote unsigned results: {publish}. If the task did "
            "run this client's runner, something other than the task wrote this object: "
            "check who else may write to the staging bucket.",
            object_uri=result_uri,
        )
    if found != str(contract.ENVELOPE_FORMAT):
        raise RuntimeSkewError(
            f"the result {result_uri} has envelope format {found!r} and was not loaded; this "
            f"client reads format {contract.ENVELOPE_FORMAT} (runner {contract.RUNNER_VERSION}). "
            f"The task ran on a runner image of another version: {publish}."
        )


def envelope_error(
    envelope: dict[str, Any], *, payload_uri: str = "", task: dict[str, Any] | None = None
) -> ECSExecutorError | None:
    """The error an envelope reports, or None when the function returned. ``task`` (as
    ECS described it) says who stopped an interrupted one."""
    outcome = envelope.get("outcome")
    if outcome == contract.OUTCOME_RETURNED:
        return None
    if outcome == contract.OUTCOME_INTERRUPTED:
        return interrupted_error(envelope, task or {})
    error = envelope.get("error") or {}
    message = error.get("message", "")
    if outcome == contract.OUTCOME_RAISED:
        remote_type = error.get("type", "Exception")
        traceback = error.get("traceback", "")
        hint = ""
        if _DISK_FULL in message or _DISK_FULL in traceback:
            hint = _DISK_FULL_HINT
        elif remote_type.endswith("ModuleNotFoundError"):
            hint = (
                "\nThe runner image lacks a module the task imports: install it in the task "
                "with deps_pip=ct.DepsPip(packages=[...]), or for your own module call "
                "cloudpickle.register_pickle_by_value(module) before dispatching."
            )
        return RemoteTaskError(
            f"{remote_type}: {message}{hint}\n\nRemote traceback (in the ECS task):\n{traceback}".rstrip(),
            remote_type=remote_type,
            remote_traceback=traceback,
        )
    kind = error.get("kind")
    if kind == contract.KIND_RUNTIME_SKEW:
        return RuntimeSkewError(message)
    if kind == contract.KIND_PAYLOAD_UNREADABLE:
        return RuntimeSkewError(
            f"{message}. The runner image lacks something the task needs: a module the "
            "function imports (add it with deps_pip) or a matching covalent version."
        )
    if kind == contract.KIND_PAYLOAD_MISSING:
        return StagingError(message)
    if kind == contract.KIND_PAYLOAD_UNVERIFIED:
        return IntegrityError(
            f"{message}. The task did not run. Check who else may write to the staging "
            "bucket's prefix (the task role of every task may).",
            object_uri=payload_uri,
        )
    if kind == contract.KIND_RESULT_UNPICKLABLE:
        return RemoteTaskError(
            f"{message}. Return a value cloudpickle can serialise.",
            remote_type=error.get("type", ""),
            remote_traceback=error.get("traceback", ""),
        )
    return ECSExecutorError(f"the runner reported an unknown outcome {outcome!r}: {message}")


def interrupted_error(envelope: dict[str, Any], task: dict[str, Any]) -> TaskStoppedError:
    """The runner wrote an "interrupted" envelope: ECS sent SIGTERM while the function
    ran. Spot reclaiming capacity is a CapacityError (relaunched when
    ``rerun_on_interruption``); any other stop a TaskInterruptedError."""
    timings = envelope.get("timings") or {}
    ran_s = max(
        0.0,
        float(timings.get("function_ended") or 0) - float(timings.get("function_started") or 0),
    )
    stop_code = task.get("stopCode")
    reason = task.get("stoppedReason") or ""
    arn = task.get("taskArn", "")
    facts = dict(task_arn=arn, stop_code=stop_code, stopped_reason=reason, exit_code=None)
    where = f"ECS task {arn}" if arn else "the ECS task"
    stated = f"(stop code {stop_code}, reason: {reason or 'none given'})"
    if stop_code in (STOP_CODE_SPOT_INTERRUPTION, "TerminationNotice"):
        return CapacityError(
            f"{where} was interrupted by Spot after {ran_s:.1f} s of running the function "
            f"{stated}; its output so far is above. Set rerun_on_interruption = true to run "
            'it again, or use capacity_provider = "FARGATE" for long tasks.',
            **facts,
        )
    return TaskInterruptedError(
        f"{where} was stopped (SIGTERM) after {ran_s:.1f} s of running the function "
        f"{stated}; its output so far is above.",
        **facts,
    )


def classify_stopped_task(
    task: dict[str, Any],
    *,
    log_tail: str = "",
    image_uri: str = "",
    memory_mib: int | None = None,
    result_uri: str = "",
) -> TaskStoppedError:
    """The error for a task that stopped without writing a result."""
    container = runner_container(task)
    exit_code = container.get("exitCode")
    container_reason = container.get("reason") or ""
    stop_code = task.get("stopCode")
    stopped_reason = task.get("stoppedReason") or ""
    # ECS often repeats the container's reason as the task's (e.g. OutOfMemoryError).
    reasons = " ".join(dict.fromkeys(r for r in (container_reason, stopped_reason) if r))
    arn = task.get("taskArn", "")
    facts = dict(
        task_arn=arn,
        stop_code=stop_code,
        stopped_reason=stopped_reason or container_reason,
        exit_code=exit_code,
        log_tail=log_tail,
    )
    tail = f"\nLast lines of the task's log:\n{log_tail}" if log_tail.strip() else ""
    where = f"ECS task {arn}" if arn else "the ECS task"
    stated = f"(stop code {stop_code}, reason: {reasons or 'none given'}"
    stated += f", exit code {exit_code})" if exit_code is not None else ", the container never ran)"

    if "OutOfMemoryError" in reasons or (exit_code == OOM_EXIT_CODE and "memory" in reasons.lower()):
        size = f"{memory_mib / 1024:g} GB" if memory_mib else "the task's memory"
        return OutOfMemoryError(
            f"{where} ran out of memory at {size} and was killed {stated}. "
            "Raise `memory` (and `vcpu` if Fargate needs it for that size), e.g. "
            f"ECSExecutor(memory=...).{tail}",
            **facts,
        )
    if "CannotPullContainerError" in reasons or "pull image" in reasons.lower():
        return ImagePullError(
            f"{where} could not pull the runner image {image_uri or ''} {stated}. Check that the "
            "image exists (`covalent-ecs publish-image`, or container_image_uri) and that "
            "the task can reach ECR: assign_public_ip=true in a public subnet, or a NAT "
            "gateway / VPC endpoints in a private one.",
            **facts,
        )
    if "ResourceInitializationError" in reasons and "unable to retrieve secret" in reasons:
        return NetworkSetupError(
            f"{where} could not be set up {stated}. ECS could not read a secret named in "
            "`secrets`: check that each ARN exists in this account and region and that the "
            "execution role may read it (secretsmanager:GetSecretValue / ssm:GetParameters; "
            "the infra stack's SecretArns parameter); `covalent-ecs doctor` checks both.",
            **facts,
        )
    if "ResourceInitializationError" in reasons:
        return NetworkSetupError(
            f"{where} could not be set up {stated}. ECS could not prepare its secrets, "
            "log group or network: check that ecs_task_log_group_name exists, that the "
            "execution role may write logs and pull the image, and that the subnet can reach "
            "ECR and CloudWatch Logs.",
            **facts,
        )
    if stop_code in ("SpotInterruption", "TerminationNotice") or (
        exit_code is None and is_capacity_shortfall(reasons)
    ):
        return CapacityError(
            f"{where} lost or never got Fargate capacity {stated}. Run the task again; "
            "for Spot, consider on-demand Fargate for long tasks (capacity_provider=\"FARGATE\").",
            **facts,
        )
    if stop_code == "UserInitiated":
        return TaskStoppedError(
            f"{where} was stopped before it wrote a result {stated}.{tail}", **facts
        )
    if exit_code is None:
        return TaskStoppedError(f"{where} stopped before its container ran {stated}.{tail}", **facts)
    if exit_code == contract.EXIT_USAGE:
        return TaskStoppedError(
            f"{where}: the runner refused to start {stated}: its command or environment is "
            "not what it expects, as when the runner image and this client are of different "
            "versions. Publish the runner for this client (`covalent-ecs publish-image`) or "
            f"point container_image_uri at it.{tail}",
            **facts,
        )
    if exit_code == contract.EXIT_NO_RESULT:
        return TaskStoppedError(
            f"{where}: the runner could not write its result{' to ' + result_uri if result_uri else ''} "
            f"{stated}. The task ran, but its S3 upload failed: check that the task role may "
            "s3:PutObject under the staging prefix and that the task can reach S3; the log "
            f"tail says why.{tail}",
            **facts,
        )
    if _DISK_FULL in log_tail:
        return TaskStoppedError(
            f"{where} ran out of disk space and exited with code {exit_code} without writing "
            f"a result {stated}.{_DISK_FULL_HINT}{tail}",
            **facts,
        )
    missing = f" at {result_uri}" if result_uri else ""
    return TaskStoppedError(
        f"{where} exited with code {exit_code} without writing a result{missing} {stated}.{tail}",
        **facts,
    )
