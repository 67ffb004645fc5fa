"""Process starters the benchmarks plug into the sandbox's agent (its seam for how a
task's container starts: covalent_ecs_executor/sandbox/starters.py).

- ``ForkServerStarter``: a runner task (``python -m covalent_ecs_runtime ...``) is
  forked from a warm process instead of starting a cold interpreter, which spends most
  of its start importing boto3 and cloudpickle (~0.3-0.5 s of CPU here): at hundreds
  of tasks on two cores the sandbox would measure Python's import time, not the
  executor. Built on multiprocessing's ``forkserver`` start method, which preloads
  forked_runner.py once. Each task is still its own process in its own session, with
  the task's argv, environment, working directory and output. What differs from a
  container start: modules are already imported (``PYTHONPATH`` and interpreter
  options in the task's environment are not applied), and the process is a child of
  the fork server, which ends with the sandbox's process.
- ``ColdRunnerStarter``: a runner task as a cold interpreter (the cold-start row), at
  the same low priority as every task the benchmark starts (``TASK_POLICY``).
- ``DefaultCommandStarter``: an argv for an image's containers that have none (the
  sandbox cannot run an image's default CMD). ``OriginalImageStarter`` is the one for
  covalent-ecs-plugin's image: original/runner_shim.py with benchmarks/.venv-original's
  Python.

The sandbox loads them by name: ``SandboxProcess(starters=["bench_starters:ForkServerStarter"],
env={... "PYTHONPATH": <benchmarks/>})`` (``--starter`` on its command line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
from multiprocessing import reduction
from typing import Any

from covalent_ecs_executor.sandbox.procs import signal_group
from covalent_ecs_executor.sandbox.starters import (
    ContainerSpec,
    TaskProcess,
    host_argv,
    start_process_group,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGINAL_PYTHON = os.path.join(HERE, ".venv-original", "bin", "python")
# covalent-ecs-plugin 0.32.0 registers every task with this image and no command.
ORIGINAL_IMAGE = "public.ecr.aws/covalent/covalent-executor-base:stable"
ORIGINAL_RUNNER = [ORIGINAL_PYTHON, os.path.join(HERE, "original", "runner_shim.py")]
RUNNER_MODULE = "covalent_ecs_runtime"
# Task processes run under this scheduling policy. On Fargate a task's vCPUs are its own;
# here a hundred runners share the host's two cores with the API and the client, and at
# normal priority they delayed the API's answers (DescribeTasks p95 ~1 s at N = 100), so
# the benchmark measured the contention rather than either plugin. Nice 10 was not
# enough: Linux's fair scheduler weighs 100 runnable tasks at nice 10 as 100 x 110
# against the API's 1024. SCHED_IDLE tasks run only on cycles nothing else wants; they
# still get every idle cycle. The same for both plugins' tasks.
TASK_POLICY = os.SCHED_IDLE


def _lower_priority() -> None:
    os.sched_setscheduler(0, TASK_POLICY, os.sched_param(0))


class _OutputFd:
    """The task's output descriptor, sent to the fork server with the task (SCM_RIGHTS):
    multiprocessing duplicates a ``DupFd`` for the child while it pickles the task.
    Rebuilt by forked_runner (not this module, which would import the sandbox there)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        import forked_runner  # noqa: PLC0415 - see ForkServerStarter.start

        return forked_runner.received_fd, (reduction.DupFd(self.fd),)


class ForkedTask:
    """A runner task forked from the fork server (a ``TaskProcess``)."""

    def __init__(self, process: Any, argv: list[str], env: dict[str, str]) -> None:
        self._process = process
        self.pid: int | None = process.pid
        self.argv = argv
        self.env = env

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self) -> int:
        self._process.join()
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        assert self.pid is not None
        # Until the child has made its own session (its first step) it is alone:
        # signal it by pid then.
        if not signal_group(self.pid, sig):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


class ForkServerStarter:
    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["forked_runner"])

    def accepts(self, spec: ContainerSpec) -> bool:
        return _is_runner(spec)

    def start(self, spec: ContainerSpec) -> TaskProcess:
        import forked_runner  # noqa: PLC0415 - the target, by reference: imported in the server

        process = self._context.Process(
            target=forked_runner.run_task,
            args=(spec.argv[3:], spec.env, spec.cwd, _OutputFd(spec.output_fd), TASK_POLICY),
            name=f"task-{spec.task_arn.rsplit('/', 1)[-1][:8]}",
        )
        try:
            process.start()
        except (EOFError, ValueError) as err:  # the fork server is gone or refused it
            raise OSError(f"the benchmark's fork server could not start the task: {err}") from err
        return ForkedTask(process, host_argv(spec.argv), spec.env)

    def close(self) -> None:
        pass  # multiprocessing's fork server ends when this process does


class ColdRunnerStarter:
    """A runner task as a cold interpreter, as the sandbox's default starts it, under
    ``TASK_POLICY`` like every other task of the benchmark (the cold-start row)."""

    def accepts(self, spec: ContainerSpec) -> bool:
        return _is_runner(spec)

    def start(self, spec: ContainerSpec) -> TaskProcess:
        return start_process_group(host_argv(spec.argv), spec, preexec_fn=_lower_priority)

    def close(self) -> None:
        pass


def _is_runner(spec: ContainerSpec) -> bool:
    return host_argv(spec.argv)[:3] == [sys.executable, "-m", RUNNER_MODULE]


class DefaultCommandStarter:
    """Runs ``argv`` on the host for ``image``'s containers that give no command."""

    def __init__(self, image: str, argv: list[str]) -> None:
        self.image = image
        self.argv = list(argv)

    def accepts(self, spec: ContainerSpec) -> bool:
        return spec.image == self.image and not spec.argv

    def start(self, spec: ContainerSpec) -> TaskProcess:
        return start_process_group(
            self.argv, dataclasses.replace(spec, argv=self.argv), preexec_fn=_lower_priority
        )

    def close(self) -> None:
        pass


def OriginalImageStarter() -> DefaultCommandStarter:  # noqa: N802 - named as the starter it makes
    return DefaultCommandStarter(ORIGINAL_IMAGE, ORIGINAL_RUNNER)
