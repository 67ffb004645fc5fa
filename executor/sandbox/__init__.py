"""The embedded sandbox: a local AWS API (moto) plus a local Fargate agent.

Try the executor offline or test workflows in CI, with no AWS account::

    with Sandbox() as sandbox:                  # in this process
        config = sandbox.executor_config        # the [executors.ecs] block
    with start_sandbox_process() as sandbox:    # in a child process, over HTTP
        sandbox.calls()                         # {"ecs.RunTask": 1, ...}

``covalent-ecs sandbox`` runs one in the foreground.
"""

from .process import SandboxClient, SandboxProcess, start_sandbox_process
from .sandbox import Sandbox, SandboxError

__all__ = ["Sandbox", "SandboxClient", "SandboxError", "SandboxProcess", "start_sandbox_process"]
