"""Process-group helpers for the local agent: signals and memory use from /proc.

Each task's process is started in its own session, so its process group id equals
its pid and holds everything the container's main process spawned (as a container's
PID namespace would). Memory is the summed RSS of the group, read from
``/proc/<pid>/stat`` in one pass for all groups (cheap enough at a few Hz for
hundreds of tasks).
"""

from __future__ import annotations

import os
import signal

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False if the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def exit_code_from_returncode(returncode: int) -> int:
    """A container's exit code as Docker reports it: 128 + N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def group_rss_bytes(pgids: set[int]) -> dict[int, int]:
    """Resident memory (bytes) of every process in each of ``pgids``, summed by group."""
    totals = dict.fromkeys(pgids, 0)
    if not pgids:
        return totals
    try:
        entries = os.listdir("/proc")
    except OSError:
        return totals
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # Fields after the command name, which is in parentheses and may hold spaces:
        # state(3) ppid(4) pgrp(5) ... rss(24).
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            pgrp = int(fields[2])
            rss_pages = int(fields[21])
        except (IndexError, ValueError):
            continue
        if pgrp in totals:
            totals[pgrp] += rss_pages * _PAGE_SIZE
    return totals
