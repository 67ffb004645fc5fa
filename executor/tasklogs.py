"""Reading a task's CloudWatch log stream (only on failure paths)."""

from __future__ import annotations

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
