"""The sandbox's control API, served under ``/_sandbox/`` next to the AWS API.

    GET  /_sandbox/health        {"status": "ok", "endpoint_url", "tasks_active"}
    GET  /_sandbox/config        the executor config block ([executors.ecs])
    GET  /_sandbox/calls         {"ecs.RunTask": 3, ...} API calls made by clients
    GET  /_sandbox/calls/by-caller  {"client": {...}, "runner": {...}} the same, per caller
    POST /_sandbox/calls/reset   zero the counts
    GET  /_sandbox/calls/expected-owners  {"client": {"s3.PutObject": {"<account>": 2}}}:
                                 the ExpectedBucketOwner each S3 request carried ("none")
    POST /_sandbox/buckets/foreign  {"name", "account"}: a bucket another account owns
    GET  /_sandbox/tasks         the agent's record of every task (secrets masked)
    GET  /_sandbox/faults        scripted faults and how often each was used
    POST /_sandbox/faults        add faults: a JSON object or list (faults.py); 400 if bad
    POST /_sandbox/faults/clear  remove every fault
    GET  /_sandbox/limits        AWS's token buckets (limits.py), {"enabled": false} if off

Each endpoint is one entry in ``ControlAPI.routes``. Plain WSGI + JSON: no
framework, no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

CONTROL_PREFIX = "/_sandbox/"


class SandboxState(Protocol):
    """What the control API reads from a running sandbox."""

    @property
    def endpoint_url(self) -> str: ...

    @property
    def executor_config(self) -> dict[str, Any]: ...

    def calls(self) -> dict[str, int]: ...

    def calls_by_caller(self) -> dict[str, dict[str, int]]: ...

    def reset_calls(self) -> None: ...

    def expected_owners(self) -> dict[str, dict[str, dict[str, int]]]: ...

    def create_foreign_bucket(self, name: str, account: str) -> dict[str, str]: ...

    def tasks(self) -> list[dict[str, Any]]: ...

    def health(self) -> dict[str, Any]: ...

    def add_faults(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def faults(self) -> list[dict[str, Any]]: ...

    def clear_faults(self) -> None: ...

    def limits(self) -> dict[str, Any]: ...


class BadRequest(ValueError):
    """The caller sent something the endpoint cannot use (HTTP 400)."""


def read_json(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return json.loads(environ["wsgi.input"].read(length) if length else b"null")
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc


Handler = Callable[[dict[str, Any]], Any]


class ControlAPI:
    def __init__(self, state: SandboxState) -> None:
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "health"): lambda environ: state.health(),
            ("GET", "config"): lambda environ: state.executor_config,
            ("GET", "calls"): lambda environ: state.calls(),
            ("GET", "calls/by-caller"): lambda environ: state.calls_by_caller(),
            ("POST", "calls/reset"): self._reset(state),
            ("GET", "calls/expected-owners"): lambda environ: state.expected_owners(),
            ("POST", "buckets/foreign"): self._create_foreign_bucket(state),
            ("GET", "tasks"): lambda environ: state.tasks(),
            ("GET", "faults"): lambda environ: state.faults(),
            ("POST", "faults"): self._add_faults(state),
            ("POST", "faults/clear"): self._clear_faults(state),
            ("GET", "limits"): lambda environ: state.limits(),
        }

    @staticmethod
    def _add_faults(state: SandboxState) -> Handler:
        def add(environ: dict[str, Any]) -> Any:
            body = read_json(environ)
            try:
                return state.add_faults(body if isinstance(body, list) else [body])
            except ValueError as exc:  # faults.FaultSpecError
                raise BadRequest(str(exc)) from exc

        return add

    @staticmethod
    def _create_foreign_bucket(state: SandboxState) -> Handler:
        def create(environ: dict[str, Any]) -> Any:
            body = read_json(environ)
            if not isinstance(body, dict) or not {"name", "account"} <= set(body):
                raise BadRequest('expected {"name": "<bucket>", "account": "<12 digits>"}')
            try:
                return state.create_foreign_bucket(str(body["name"]), str(body["account"]))
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc

        return create

    @staticmethod
    def _clear_faults(state: SandboxState) -> Handler:
        def clear(environ: dict[str, Any]) -> Any:
            state.clear_faults()
            return {"cleared": True}

        return clear

    @staticmethod
    def _reset(state: SandboxState) -> Handler:
        def reset(environ: dict[str, Any]) -> Any:
            state.reset_calls()
            return {"reset": True}

        return reset

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        name = environ.get("PATH_INFO", "")[len(CONTROL_PREFIX) :].strip("/")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        handler = self.routes.get((method, name))
        if handler is None:
            known = sorted(f"{m} {CONTROL_PREFIX}{p}" for m, p in self.routes)
            status, body = "404 Not Found", {"error": f"no such endpoint; try {known}"}
        else:
            try:
                status, body = "200 OK", handler(environ)
            except BadRequest as exc:
                status, body = "400 Bad Request", {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                status, body = "500 Internal Server Error", {"error": repr(exc)}
        data = json.dumps(body, default=str).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]
