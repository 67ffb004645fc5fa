"""Reading a task's CloudWatch log stream: its tail in failure messages, and
``covalent-ecs logs`` (the whole stream, ``--follow`` while the task runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import aws
from .errors import ECSExecutorError

LOG_TAIL_LINES = 40


def log_tail(logs: Any, group: str, stream: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a stream; '' when it does not exist (container never ran).

    Never raises: a failure message must not be lost because the logs are unreadable.
    """
    try:
        response = aws.call(
            logs.get_log_events,
            f"read log stream {group}/{stream}",
            logGroupName=group,
            logStreamName=stream,
            limit=lines,
            startFromHead=False,
        )
    except ECSExecutorError as err:
        if aws.has_code(err, "ResourceNotFoundException"):
            return ""
        return f"({err})"
    return "\n".join(event.get("message", "").rstrip("\n") for event in response.get("events", []))


def follow(
    logs: Any,
    group: str,
    stream: str,
    *,
    echo: Callable[[str], None],
    running: Callable[[], bool],
    poll_interval_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print a stream's lines from its start; with ``running`` true, keep printing new
    ones until it turns false, then the rest. Returns how many lines were printed.

    ``running`` is asked before each read, so the lines a task wrote before it stopped
    are all printed after it stopped. A stream that does not exist yet (the container
    has not started) reads as empty. Raises ECSExecutorError for other errors.
    """
    token: str | None = None
    printed = 0
    while True:
        still_running = running()
        request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if token:
            request["nextToken"] = token
        try:
            response = aws.call(logs.get_log_events, f"read log stream {group}/{stream}", **request)
        except ECSExecutorError as err:
            if not aws.has_code(err, "ResourceNotFoundException"):
                raise
            response = {}
        events = response.get("events", [])
        for event in events:
            echo(event.get("message", "").rstrip("\n"))
        printed += len(events)
        token = response.get("nextForwardToken") or token
        if events:
            continue  # more may be waiting: read on before sleeping
        if not still_running:
            return printed
        sleep(poll_interval_s)
