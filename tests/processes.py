"""The processes a test's subprocess left behind, read from /proc (no psutil).

A process belongs to a run when its environment, command line or working directory
mentions a path only that run uses (its TMPDIR): Covalent's server and the sandbox
inherit the environment; a sandbox task gets an environment of its own but runs in a
folder under the sandbox's state directory, which is under TMPDIR.
"""

from __future__ import annotations

import os
import signal


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child a test will Ctrl-C: SIGINT at its default.

    A job a non-interactive shell starts in the background (``make test &`` in a
    script, some CI runners) inherits SIGINT *ignored*, and passes that on to every
    process it starts; Python then installs no KeyboardInterrupt handler and asyncio
    none of its own, so the test's SIGINT would reach nobody. Reset it, as a terminal's
    foreground job has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone meanwhile, or not ours to read
        return b""


def processes_mentioning(text: str) -> list[str]:
    """Live processes but this one whose environment, command line or working
    directory contains ``text``, as ``"<pid>: <command line>"``. Zombies are left
    out: they have ended, only their exit status waits to be collected."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if not stat or stat[stat.rfind(b")") + 2 :].startswith(b"Z"):
            continue
        cmdline = _read(f"/proc/{entry}/cmdline")
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd").encode()
        except OSError:
            cwd = b""
        if any(needle in part for part in (_read(f"/proc/{entry}/environ"), cmdline, cwd)):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry}: {command}")
    return found
