"""The runner, started warm: what each task forked by ``bench_starters.ForkServerStarter`` runs.

Importing this module is the warm-up, done once in multiprocessing's fork server (its
``preload``): boto3, botocore and cloudpickle are imported and S3's service model,
endpoint rules and partitions are loaded into a botocore session that each task's
runner gets for its S3 client (and boto3 as its default session). Nothing account-specific is resolved (credentials, region
and endpoint are read from each task's environment when the runner creates its
client). The runner module itself is imported in each task, so the start time it
stamps is the task's own. Standard library and the runner's dependencies only: the
fork server must not carry the sandbox (moto, covalent) into every task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from typing import Any

import boto3
import botocore.session
import cloudpickle  # noqa: F401 - imported here so that each task starts with it loaded
import s3transfer.manager  # noqa: F401 - as above

_core = botocore.session.get_session()
_core.get_service_model("s3")
_core.get_component("endpoint_resolver")
_loader = _core.get_component("data_loader")
_loader.load_service_model("s3", "endpoint-rule-set-1")
_loader.load_data("partitions")
_loader.load_data("sdk-default-configuration")


def received_fd(dup: Any) -> int:
    """The output descriptor the fork server handed this task (bench_starters._OutputFd)."""
    return int(dup.detach())


def run_task(args: list[str], env: dict[str, str], cwd: str, output_fd: int, policy: int) -> None:
    """In the forked task: become the container's process and run the runner under the
    scheduling policy ``policy`` (bench_starters.TASK_POLICY); never returns."""
    code = 1
    try:
        os.setsid()  # own process group: StopTask and the OOM kill reach all of it
        os.sched_setscheduler(0, policy, os.sched_param(0))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.close(devnull)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        boto3.setup_default_session(botocore_session=_core)  # for code that calls boto3.client()
        # The runner builds its client from ``botocore.session.get_session()`` (no boto3):
        # hand it the warm session, or every task loads S3's models again (~70 ms of CPU
        # each, 100 at once at N = 100: the sandbox then measures JSON parsing).
        botocore.session.get_session = lambda env_vars=None: _core
        from covalent_ecs_runtime import runner

        sys.argv = ["covalent_ecs_runtime", *args]
        code = runner.main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the task's output, like a crash
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
