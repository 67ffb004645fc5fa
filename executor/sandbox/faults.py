"""Fault injection: scripted failures for the sandbox's tasks and API calls.

Tests (and anyone exploring failure handling) script faults through
``Sandbox.add_fault`` / ``SandboxClient.add_fault`` or ``POST /_sandbox/faults``.
A fault applies to the next ``times`` tasks (or requests) that match its ``label``:
the task's ``COVALENT_ECS_TASK`` label ``<dispatch_id>/<node_id>``, a bare
``<dispatch_id>`` for every node of a dispatch, or no label for any task. Once used
up it stays listed (``used`` == ``times``) until ``clear_faults``.

Task faults (the local Fargate agent applies them, agent.py):

    oom                 runs, then is killed after ``after_s``: exit 137, OutOfMemoryError
    pull_failure        never runs: CannotPullContainerError, no exit code
    start_failure       never runs: ResourceInitializationError, no exit code
                        (both take ``reason``: the stopped reason ECS gives instead, e.g.
                        "Timeout waiting for network interface provisioning to complete.")
    slow_start          stays PENDING ``delay_s`` longer, then runs normally
    exit_without_result runs a process that prints a few lines and exits ``exit_code``
                        without writing a result (0 gives "exited cleanly, no result")
    spot_interruption   runs, then after ``after_s`` ECS reclaims it: stop code
                        SpotInterruption, SIGTERM to the container
    hostile_overwrite   stands in for another task (any task role may write under the
                        staging prefix) that overwrites this task's ``target`` object
                        ("result", default, or "payload") with a forged pickle that
                        creates the file ``marker`` when unpickled, signed with a key
                        that is not this run's (``signed=False``: unsigned, as runners
                        before 0.2.0 wrote results). Timed to win the race a real
                        attacker would run: the payload is replaced before the task
                        starts, the result after the runner wrote it and before ECS
                        reports the container's exit (so before the client reads it).

Request faults (the API server applies them, server.py):

    throttle       answers the next ``times`` ``operation`` calls (default ecs.RunTask)
                   with HTTP 400 "Rate exceeded", cycling through ``codes`` (default
                   ThrottlingException, then ECS's disguised ClientException)
    s3_error       answers the next ``times`` S3 requests for the task's staged objects
                   (``operations``, default PutObject and GetObject) with ``status``
                   (default 500 InternalError; 503 answers SlowDown, 403
                   AccessDenied as for a role that lacks the permission)
    server_error   answers the next ``times`` ``operations`` calls (default
                   ecs.DescribeTasks; any ECS operation, e.g. ecs.StopTask) with HTTP 500
                   ServerException, as during an ECS service event
    cut_body       answers the next ``times`` ``operations`` calls (default s3.GetObject)
                   with their headers and the first half of the body, then drops the
                   connection: the network failing mid-download

S3 request faults take ``key_suffix`` to pick objects by the end of their key
(``result.pkl``: only results; ``payload.pkl``: only payloads).
    lost_response  performs the next ``times`` ``operation`` calls (default
                   ecs.RunTask) and then drops the connection before answering: the
                   client sees a reset connection and retries the same request
    capacity_unavailable
                   answers the next ``times`` RunTask calls with no task and a
                   ``failures`` entry "Capacity is unavailable at this time", as ECS does
                   when Fargate has no capacity in the subnet's zone
    slow_response  holds the next ``times`` ``operations`` calls (default
                   s3.PutObject) ``delay_s`` before serving them (a slow upload)

Every injected request fault is also counted in ``calls()`` as
``fault.<kind>.<service>.<Operation>``.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import pickle
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from covalent_ecs_runtime import contract, signing

from ..staging import STAGING_ROOT
from .calls import peek_body

TASK_FAULTS = (
    "oom",
    "pull_failure",
    "start_failure",
    "slow_start",
    "exit_without_result",
    "spot_interruption",
    "hostile_overwrite",
)
REQUEST_FAULTS = (
    "throttle",
    "s3_error",
    "server_error",
    "lost_response",
    "cut_body",
    "slow_response",
    "capacity_unavailable",
)
_DEFAULT_OPERATIONS = {
    "throttle": ["ecs.RunTask"],
    "lost_response": ["ecs.RunTask"],
    "capacity_unavailable": ["ecs.RunTask"],
    "s3_error": ["s3.PutObject", "s3.GetObject"],
    "server_error": ["ecs.DescribeTasks"],
    "slow_response": ["s3.PutObject"],
    "cut_body": ["s3.GetObject"],
}
_MAX_BODY_BYTES = 1024 * 1024


class FaultSpecError(ValueError):
    """A fault description the sandbox does not understand."""


@dataclass
class Fault:
    kind: str
    label: str | None = None
    times: int = 1
    operations: list[str] = field(default_factory=list)
    after_s: float = 0.3
    delay_s: float = 2.0
    exit_code: int = 1
    reason: str = ""
    key_suffix: str = ""  # S3 request faults: only keys ending so (e.g. "result.pkl")
    status: int = 500
    codes: list[str] = field(default_factory=lambda: ["ThrottlingException", "ClientException"])
    target: str = "result"
    marker: str = ""
    signed: bool = True
    id: int = 0
    used: int = 0
    applied_to: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f for f in Fault.__dataclass_fields__ if f not in ("id", "used", "applied_to")}


def parse_fault(spec: dict[str, Any]) -> Fault:
    """A Fault from its JSON description; FaultSpecError names what is wrong."""
    if not isinstance(spec, dict):
        raise FaultSpecError(f"a fault is a JSON object, got {spec!r}")
    kind = spec.get("kind")
    if kind not in TASK_FAULTS + REQUEST_FAULTS:
        raise FaultSpecError(
            f"kind={kind!r} is not a fault; choose one of {', '.join(TASK_FAULTS + REQUEST_FAULTS)}"
        )
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise FaultSpecError(f"unknown fault field(s) {unknown}; known: {sorted(_FIELDS)}")
    fault = Fault(**spec)
    if int(fault.times) < 1:
        raise FaultSpecError(f"times={fault.times!r}: give 1 or more")
    if fault.status not in (403, 500, 503):
        raise FaultSpecError(f"status={fault.status!r}: s3_error answers 403, 500 or 503")
    if kind == "hostile_overwrite":
        if fault.target not in ("result", "payload"):
            raise FaultSpecError(f"target={fault.target!r}: choose 'result' or 'payload'")
        if not os.path.isabs(fault.marker or ""):
            raise FaultSpecError(f"marker={fault.marker!r}: give an absolute path")
    if not fault.operations:
        fault.operations = list(_DEFAULT_OPERATIONS.get(kind, []))
    return fault


def label_matches(wanted: str | None, label: str | None) -> bool:
    """``<dispatch>/<node>`` matches itself; ``<dispatch>`` every node; None anything."""
    if wanted is None:
        return True
    if not label:
        return False
    return label == wanted or label.startswith(f"{wanted}/")


def task_label(environment: list[dict[str, Any]] | None) -> str | None:
    """The ``COVALENT_ECS_TASK`` label in a container's (override) environment."""
    for item in environment or []:
        if item.get("name") == contract.ENV_TASK_LABEL:
            return str(item.get("value", ""))
    return None


def _s3_path_matches(wanted: str | None, path: str) -> bool:
    # Staged objects live at covalent-ecs/<dispatch_id>/<node_id>-<token>/ (staging.py).
    root = f"/{STAGING_ROOT}/"
    if root not in path:
        return False
    if wanted is None:
        return True
    dispatch_id, _, node_id = wanted.partition("/")
    if node_id:
        return f"{root}{dispatch_id}/{node_id}-" in path
    return f"{root}{dispatch_id}/" in path


def _run_task_label(environ: dict[str, Any]) -> str | None:
    body = peek_body(environ, limit=_MAX_BODY_BYTES)
    if not body:
        return None
    try:
        request = json.loads(body)
    except ValueError:
        return None
    for override in (request.get("overrides") or {}).get("containerOverrides") or []:
        label = task_label(override.get("environment"))
        if label:
            return label
    return None


class _Marker:
    """Unpickling this creates the file ``path``: what a forged pickle could do instead."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def forged_object(fault: Fault, object_key: str) -> tuple[bytes, dict[str, str]]:
    """The body and metadata a hostile writer puts at ``object_key``."""
    if fault.target == "result":
        # An envelope as a runner writes it; unsigned ones were format 1 (runner 0.1.0).
        forged: Any = {
            **contract.new_envelope(),
            "format": contract.ENVELOPE_FORMAT if fault.signed else 1,
            "outcome": contract.OUTCOME_RETURNED,
            "value": _Marker(fault.marker),
        }
        role = signing.PURPOSE_RESULT
    else:
        forged = (_Marker(fault.marker), (), {})
        role = signing.PURPOSE_PAYLOAD
    body = pickle.dumps(forged)
    if not fault.signed:
        return body, {}
    mac = signing.SigningKey.new().mac(role, object_key)  # the attacker's own key
    mac.update(body)
    return body, contract.object_metadata(mac.hexdigest())


def forge_staged_object(fault: Fault, command: list[str]) -> str:
    """Overwrite the ``fault.target`` object named in a runner ``command``, straight in
    moto's S3 (the agent never uses HTTP); returns its s3:// URI."""
    from moto.s3.models import s3_backends

    bucket = command[command.index("--bucket") + 1]
    key = command[command.index(f"--{fault.target}-key") + 1]
    body, metadata = forged_object(fault, key)
    partition, account = s3_backends.bucket_accounts[bucket]
    stored = s3_backends[account][partition].put_object(bucket, key, body)
    stored.set_metadata({f"x-amz-meta-{name}": value for name, value in metadata.items()}, replace=True)
    return f"s3://{bucket}/{key}"


class FaultBook:
    """The scripted faults of one sandbox; thread-safe (API threads and the agent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, specs: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = [parse_fault(s) for s in (specs if isinstance(specs, list) else [specs])]
        with self._lock:
            for fault in parsed:
                fault.id = next(self._ids)
                self._faults.append(fault)
            return [f.record() for f in parsed]

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.record() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, kinds: tuple[str, ...], matches: Any, what: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.used < fault.times and matches(fault):
                    fault.used += 1
                    fault.applied_to.append(what)
                    return fault
        return None

    def take_task_fault(self, label: str | None, task_arn: str) -> Fault | None:
        """The fault the agent should apply to a new task, if any (used up by this)."""
        return self._take(TASK_FAULTS, lambda f: label_matches(f.label, label), task_arn)

    def take_request_fault(self, operation: str, environ: dict[str, Any]) -> Fault | None:
        """The fault the server should apply to this request, if any."""
        with self._lock:
            wanted = [
                f for f in self._faults
                if f.kind in REQUEST_FAULTS and f.used < f.times and operation in f.operations
            ]  # fmt: skip
        if not wanted:
            return None  # the common case: no body parsing
        path = environ.get("PATH_INFO", "")
        label = _run_task_label(environ) if operation == "ecs.RunTask" else None

        def matches(fault: Fault) -> bool:
            if operation not in fault.operations:
                return False
            # DeleteObjects names its keys in the body: it matches unlabelled faults only.
            if operation.startswith("s3.") and operation != "s3.DeleteObjects":
                return _s3_path_matches(fault.label, path) and path.endswith(fault.key_suffix)
            return label_matches(fault.label, label) if fault.label else True

        return self._take(REQUEST_FAULTS, matches, operation)
