"""Ship a task process's output to CloudWatch Logs the way ECS's awslogs driver does.

``OutputPump`` reads the process's (merged stdout/stderr) pipe on its own thread and
splits it into line events stamped with the time they were read. The agent calls
``flush()`` every few hundred milliseconds and once more after the process exits, so
a task's log stream is readable while it runs. Events go straight into moto's Logs
backend (in-process: never counted as API calls). A partial line is shipped once it
has waited a flush interval, like the driver's buffer.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from moto.backends import get_backend

# CloudWatch Logs' event size limit is 256 KiB including 26 bytes of overhead:
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html
MAX_EVENT_BYTES = 256 * 1024 - 26


def awslogs_stream_name(prefix: str, container_name: str, task_id: str) -> str:
    """The stream ECS creates for a container with ``awslogs-stream-prefix``."""
    return f"{prefix}/{container_name}/{task_id}"


class AwsLogsSink:
    """One CloudWatch Logs stream in moto's backend."""

    def __init__(self, *, account_id: str, region: str, group: str, stream: str) -> None:
        self.group = group
        self.stream = stream
        self._backend = get_backend("logs")[account_id][region]

    def has_group(self) -> bool:
        return self.group in self._backend.groups

    def create_group(self) -> None:
        self._backend.create_log_group(self.group, {})

    def create_stream(self) -> None:
        self._backend.create_log_stream(self.group, self.stream)

    def write(self, events: list[dict[str, Any]]) -> None:
        self._backend.put_log_events(self.group, self.stream, events)


class OutputPump:
    """Reads one pipe to EOF on a thread; ``flush()`` ships what has been read."""

    def __init__(self, fd: int, sink: AwsLogsSink, *, name: str) -> None:
        self._fd = fd
        self._sink = sink
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._partial = b""
        self._partial_since = 0.0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                now_ms = int(time.time() * 1000)
                with self._lock:
                    if not self._partial:
                        self._partial_since = time.monotonic()
                    data = self._partial + chunk
                    *lines, self._partial = data.split(b"\n")
                    for line in lines:
                        self._add(line, now_ms)
        except OSError:
            pass
        finally:
            with self._lock:
                if self._partial:
                    self._add(self._partial, int(time.time() * 1000))
                    self._partial = b""
            os.close(self._fd)
            self.done.set()

    def _add(self, line: bytes, timestamp_ms: int) -> None:
        line = line.removesuffix(b"\r")
        # PutLogEvents rejects empty messages; Docker's awslogs driver skips them.
        for start in range(0, len(line), MAX_EVENT_BYTES):
            message = line[start : start + MAX_EVENT_BYTES].decode("utf-8", errors="replace")
            self._events.append({"timestamp": timestamp_ms, "message": message})

    def flush(self, *, partial_after_s: float) -> None:
        with self._lock:
            if self._partial and time.monotonic() - self._partial_since >= partial_after_s:
                self._add(self._partial, int(time.time() * 1000))
                self._partial = b""
            events, self._events = self._events, []
        if events:
            self._sink.write(events)
