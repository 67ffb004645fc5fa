"""The code that runs inside the runner container: ``python -m covalent_ecs_runtime``."""

from .contract import RUNNER_VERSION as __version__

__all__ = ["__version__"]
