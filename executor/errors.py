"""The exceptions this plugin raises, one class per cause a user can act on.

    ECSExecutorError                  base class users can catch
     ├ ConfigError (also ValueError)  raised before any AWS call; names key, value, valid choices
     ├ AWSSetupError                  missing bucket / cluster / role / credentials / permissions
     ├ StagingError                   S3 upload, download, cleanup
     │   └ IntegrityError               a staged object lacks its run's MAC: it was not loaded
     ├ LaunchError                    RunTask refused, or its `failures` list was not empty
     │   └ TaskDefinitionInactiveError  the task definition was deregistered meanwhile
     ├ TaskStoppedError               the task stopped without writing a result
     │   ├ OutOfMemoryError
     │   ├ ImagePullError
     │   ├ CapacityError
     │   ├ NetworkSetupError
     │   └ TaskInterruptedError       SIGTERM while the function ran; its output so far kept
     ├ RuntimeSkewError               the runner's Python / cloudpickle differ from the client's
     ├ RemoteTaskError                the user's function raised inside the task
     └ TaskTimeoutError               the task ran past its time limit
         └ StartTimeoutError          its container did not start within start_timeout

At the Covalent boundary (ecs.py) each of these becomes a ``TaskRuntimeError`` whose
message is ``str(error)``, with the typed error kept as ``__cause__``.
"""

from __future__ import annotations


class ECSExecutorError(Exception):
    """Base class for every error of covalent-ecs-executor."""


class ConfigError(ECSExecutorError, ValueError):
    """The configuration is invalid. Raised before any AWS call."""


class AWSSetupError(ECSExecutorError):
    """The AWS account lacks something the configuration names, or denies access to it."""


class StagingError(ECSExecutorError):
    """Uploading the payload, or downloading / deleting the result, failed."""


class IntegrityError(StagingError):
    """A staged object (result or payload) does not carry its run's MAC, so it was not
    unpickled: something other than the task (or the client) wrote it, or a runner too
    old to sign wrote it."""

    def __init__(self, message: str, *, object_uri: str) -> None:
        super().__init__(message)
        self.object_uri = object_uri


class LaunchError(ECSExecutorError):
    """ECS did not start the task.

    ``reasons`` are ECS's RunTask ``failures`` reasons when it gave any; ``transient``
    says they name a cause that may pass (no capacity, an ENI timeout).
    """

    def __init__(self, message: str, *, reasons: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.reasons = reasons
        self.transient = transient


class TaskDefinitionInactiveError(LaunchError):
    """RunTask refused a task definition that was deregistered (INACTIVE)."""


class TaskStoppedError(ECSExecutorError):
    """The task stopped without writing a result.

    Carries what ECS said about it, so callers can branch on facts rather than on text.
    """

    def __init__(
        self,
        message: str,
        *,
        task_arn: str = "",
        stop_code: str | None = None,
        stopped_reason: str | None = None,
        exit_code: int | None = None,
        log_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.task_arn = task_arn
        self.stop_code = stop_code
        self.stopped_reason = stopped_reason
        self.exit_code = exit_code
        self.log_tail = log_tail


class OutOfMemoryError(TaskStoppedError):
    """The container was killed for using more memory than the task has."""


class ImagePullError(TaskStoppedError):
    """The runner image could not be pulled: the container never ran."""


class CapacityError(TaskStoppedError):
    """Fargate had no capacity for the task (or a Spot task was reclaimed)."""


class TaskInterruptedError(TaskStoppedError):
    """ECS stopped the container (SIGTERM) while the function ran; the runner kept the
    output printed so far. A Spot interruption is a CapacityError instead."""


class NetworkSetupError(TaskStoppedError):
    """The task's network, secrets or log configuration could not be set up."""


class RuntimeSkewError(ECSExecutorError):
    """The runner image's Python minor or cloudpickle differs from the client's."""


class RemoteTaskError(ECSExecutorError):
    """The user's function raised an exception inside the task."""

    def __init__(self, message: str, *, remote_type: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class TaskTimeoutError(ECSExecutorError):
    """The task ran longer than its time limit and was stopped."""


class StartTimeoutError(TaskTimeoutError):
    """The task's container did not start within ``start_timeout``; it was stopped.

    ``phase`` is the last status ECS reported (PROVISIONING, PENDING...).
    """

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase
