"""How the local agent starts a task's container: the one seam for it.

The agent (agent.py) decides *what* a container runs and hands it over as a
``ContainerSpec``: the image, the argv ECS would run (``entryPoint`` + ``command``),
the environment, a working directory and where the output goes. A ``ProcessStarter``
decides *how* it runs and returns a ``TaskProcess`` handle that the agent polls and
signals. For each task the agent asks its starters in order; the first whose
``accepts(spec)`` is true starts it, and ``HostStarter`` (a plain subprocess on this
host) takes whatever is left.

In the product: ``HostStarter`` and ``ImageRootStarter`` (image_roots.py: a real
image's root file system, chrooted). Benchmarks add their own (benchmarks/bench_starters.py)
through ``Sandbox(starters=[...])`` or ``--starter MODULE:ATTR``.

The contract a starter keeps:

- ``start`` raises ``OSError`` when the container cannot start; the agent reports the
  message as ``CannotStartContainerError: <message>`` (the container never ran).
- ``spec.output_fd`` is the write end of the container's merged stdout/stderr. The
  agent closes its own copy once ``start`` returns: a starter that writes after that
  keeps a duplicate (``os.dup``) and closes it when the container ends (that close is
  what tells the log pump the output is complete).
- ``TaskProcess.pid`` leads a process group that holds everything the container runs
  (as a container's PID namespace would): the agent sums that group's memory to
  enforce the task's limit. ``None`` means the container has no host process (e.g. a
  stand-in that runs in a thread): nothing is measured or limited.
- ``poll`` answers like ``Popen.poll``: ``None`` while running, else the return code,
  ``-N`` for death by signal N. ``send_signal`` reaches every process of the container
  and does nothing once it is gone. ``wait`` blocks until it has ended.
- ``close`` is called once when the sandbox stops, after every task was killed.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .procs import signal_group

_PYTHON_NAME = re.compile(r"^python(3(\.\d+)?)?$")
NO_COMMAND = (
    "the sandbox cannot run an image's default command; give the container an entryPoint"
    " or command"
)


@dataclass(frozen=True)
class ContainerSpec:
    """What the agent asks a starter to run for one task."""

    task_arn: str
    image: str
    argv: list[str]  # entryPoint + command as the task gives them; may be empty
    env: dict[str, str]  # what the container sees (definition, overrides, sandbox AWS)
    cwd: str  # a per-task directory on the host, also HOME
    output_fd: int  # stdout and stderr go here (see the module docstring)


class TaskProcess(Protocol):
    """A started container, as the agent watches it."""

    pid: int | None
    argv: list[str]  # what actually runs (shown in ``tasks()``)
    env: dict[str, str]  # its environment (shown in ``tasks()``, secrets masked)

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...


@runtime_checkable
class ProcessStarter(Protocol):
    def accepts(self, spec: ContainerSpec) -> bool: ...

    def start(self, spec: ContainerSpec) -> TaskProcess: ...

    def close(self) -> None: ...


class ProcessGroup:
    """A ``TaskProcess`` for a ``Popen`` started in a session (process group) of its own."""

    def __init__(self, popen: subprocess.Popen[bytes], env: dict[str, str]) -> None:
        self._popen = popen
        self.pid: int | None = popen.pid
        self.argv = [str(a) for a in popen.args]  # type: ignore[union-attr]
        self.env = env

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self) -> int:
        return self._popen.wait()

    def send_signal(self, sig: int) -> None:
        assert self.pid is not None
        signal_group(self.pid, sig)


def start_process_group(
    argv: list[str],
    spec: ContainerSpec,
    *,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> ProcessGroup:
    """Run ``argv`` as the container's main process (``env`` defaults to the spec's)."""
    if not argv:
        raise OSError(NO_COMMAND)
    env = spec.env if env is None else env
    popen = subprocess.Popen(
        argv,
        env=env,
        cwd=spec.cwd,
        stdin=subprocess.DEVNULL,
        stdout=spec.output_fd,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: StopTask and the OOM kill reach all of it
        close_fds=True,
        preexec_fn=preexec_fn,
    )
    return ProcessGroup(popen, env)


def host_argv(argv: list[str]) -> list[str]:
    """``argv`` with a python interpreter name as argv[0] swapped for this one."""
    argv = list(argv)
    if argv and _PYTHON_NAME.match(os.path.basename(argv[0])):
        argv[0] = sys.executable
    return argv


class HostStarter:
    """The default: the container's argv as a subprocess on this host, with this
    process's interpreter standing in for the image's ``python``."""

    def accepts(self, spec: ContainerSpec) -> bool:
        return True

    def start(self, spec: ContainerSpec) -> TaskProcess:
        return start_process_group(host_argv(spec.argv), spec)

    def close(self) -> None:
        pass


def load_starter(path: str) -> ProcessStarter:
    """``"module:attr"`` -> a starter: ``attr`` is a starter or a no-argument factory of one.

    Raises ``ValueError`` naming what is wrong (for ``--starter``).
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{path!r} is not MODULE:ATTR (e.g. mystarters:StandInStarter)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r}: {err}") from err
    try:
        found = getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"module {module_name!r} has no {attr!r}") from err
    # A class also "has" accepts/start/close: only an instance counts as a starter.
    if (isinstance(found, type) or not isinstance(found, ProcessStarter)) and callable(found):
        found = found()
    starter = found
    if not isinstance(starter, ProcessStarter):
        raise ValueError(f"{path} is not a process starter (accepts, start, close)")
    return starter
