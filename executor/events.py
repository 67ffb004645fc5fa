"""Task events: what the executor did, for whoever watches (benchmarks, metrics, logs).

    from covalent_ecs_executor import events

    def on_event(event: dict) -> None:
        if event["event"] == events.TASK_FINISHED:
            print(event["task_arn"], event["timings"])

    events.subscribe(on_event)      # every executor in this process
    ...
    events.unsubscribe(on_event)

Each event is a plain dict (JSON-ready) with ``"event"`` naming its kind:

- ``task_finished`` (``TASK_FINISHED``): a task's result envelope came back.
  ``dispatch_id``, ``node_id``, ``task_arn``; ``timings``: the runner's stamps
  (``covalent_ecs_runtime.contract``, epoch seconds: process_started,
  function_started, function_ended, ...); ``exit_seen``: when the poller saw the
  container's exit (epoch seconds).
- ``poll_cycle`` (``POLL_CYCLE``): the poller described every task it watches once.
  ``watched`` (tasks watched), ``describe_calls`` (DescribeTasks calls made),
  ``started`` (epoch seconds) and ``duration_s``.

Callbacks run synchronously on the thread that emits (the event loop's): keep them
short and never block. A callback that raises is logged and skipped; it never fails
a task. Subscribers live in a module registry, not on the executor (whose attributes
must stay JSON).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

TASK_FINISHED = "task_finished"
POLL_CYCLE = "poll_cycle"

Event = dict[str, Any]
Callback = Callable[[Event], None]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_subscribers: tuple[Callback, ...] = ()


def subscribe(callback: Callback) -> None:
    """Call ``callback(event)`` for every event from now on (once, however often given)."""
    global _subscribers
    with _lock:
        if callback not in _subscribers:
            _subscribers = (*_subscribers, callback)


def unsubscribe(callback: Callback) -> None:
    """Stop calling ``callback``; a callback never subscribed is ignored."""
    global _subscribers
    with _lock:
        _subscribers = tuple(c for c in _subscribers if c != callback)


def emit(kind: str, **fields: Any) -> None:
    """Tell every subscriber (the executor's side; subscribers only receive)."""
    subscribers = _subscribers  # a tuple: replaced, never changed, so no lock to read
    if not subscribers:
        return
    event: Event = {"event": kind, **fields}
    for callback in subscribers:
        try:
            callback(dict(event))
        except Exception:  # noqa: BLE001 - a watcher must not fail the task it watches
            _log.exception("covalent-ecs event subscriber %r failed on %s", callback, kind)
