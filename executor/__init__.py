"""Covalent executor plugin: run electrons as AWS ECS Fargate tasks.

``covalent`` is imported first on purpose: importing it loads every installed executor
plugin, this one included, and a plugin module imported half-way (before covalent)
would be registered without its class (docs/facts.md,
"Covalent's plugin interface": the circular-import trap).
"""

import covalent  # noqa: F401  (see above)

from .config import ExecutorConfig
from .ecs import ECSExecutor
from .errors import (
    AWSSetupError,
    CapacityError,
    ConfigError,
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
    TaskTimeoutError,
)

__version__ = "0.1.0"

__all__ = [
    "AWSSetupError",
    "CapacityError",
    "ConfigError",
    "ECSExecutor",
    "ECSExecutorError",
    "ExecutorConfig",
    "ImagePullError",
    "IntegrityError",
    "LaunchError",
    "NetworkSetupError",
    "OutOfMemoryError",
    "RemoteTaskError",
    "RuntimeSkewError",
    "StagingError",
    "StartTimeoutError",
    "TaskInterruptedError",
    "TaskStoppedError",
    "TaskTimeoutError",
    "__version__",
]
