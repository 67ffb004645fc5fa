"""The Covalent server's stop is bounded: a server `covalent stop` cannot end is killed
with its children (covalent's own stop waits for it with no ceiling)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil

from covalent_ecs_executor.sandbox import covalent_server

# A parent that starts a child and waits; both only end when killed.
_PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _start(*argv_tail: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, *argv_tail], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    return parent, child_pid


def test_a_server_that_outlived_covalent_stop_is_killed_with_its_children():
    parent, child_pid = _start("covalent_dispatcher._service.app")  # names itself as the server does
    try:
        covalent_server._kill_tree(parent.pid)  # returns once both are gone (reaped)
        assert not psutil.pid_exists(parent.pid)
        assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        for pid in (parent.pid, child_pid):
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
        parent.wait()


def test_a_reused_pid_that_is_not_a_covalent_server_is_left_alone():
    parent, child_pid = _start("some-other-program")
    try:
        covalent_server._kill_tree(parent.pid)
        assert parent.poll() is None and psutil.pid_exists(child_pid)
    finally:
        for pid in (child_pid, parent.pid):
            psutil.Process(pid).kill()
        parent.wait()
