"""Reading a task's CloudWatch log stream (only on failure paths)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

LOG_TAIL_LINES = 40


def log_tail(logs: Any, group: str, stream: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a stream; '' when it does not exist (container never ran).

    Never raises: a failure message must not be lost because the logs are unreadable.
    """
    try:
        response = logs.get_log_events(
            logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return ""
        return f"(could not read log stream {group}/{stream}: {code})"
    except BotoCoreError as err:
        return f"(could not read log stream {group}/{stream}: {err})"
    return "\n".join(event.get("message", "").rstrip("\n") for event in response.get("events", []))
