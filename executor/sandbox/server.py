"""The sandbox's HTTP server: moto's AWS API behind our WSGI middleware.

``SandboxMiddleware`` sees every request first:

1. ``/_sandbox/...`` goes to the control API (control.py);
2. every other request is named (calls.py) and counted per caller, unless it carries the
   sandbox's own User-Agent marker (seed, ``Sandbox.client(internal=True)``);
   (S3 requests also have the ExpectedBucketOwner they carried recorded);
3. then each of ``request_policies`` may answer instead of moto: a policy gets
   ``(operation, environ, start_response)`` and returns a WSGI response iterable
   after calling ``start_response`` itself, or None to pass. Three exist:
   ``BucketOwnerPolicy`` (S3's ExpectedBucketOwner check, which moto ignores),
   ``ThrottlingPolicy`` (AWS's token buckets, limits.py, with ``aws_limits``) and
   ``FaultPolicy`` (scripted request faults, faults.py);
4. everything else goes to moto's ``DomainDispatcherApplication``.

``ApiServer`` runs it on a werkzeug threaded server (one thread per connection, kept
alive: ``SandboxRequestHandler``) bound
to the given host (127.0.0.1 by default; loopback only, see ``Sandbox``) in a
background thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from .calls import (
    CallCounter,
    caller_of,
    classify_request,
    expected_bucket_owner,
    is_sandbox_internal,
    s3_bucket_and_key,
)
from .control import CONTROL_PREFIX, ControlAPI
from .faults import FaultBook
from .limits import AwsLimits

RequestPolicy = Callable[[str, dict[str, Any], Any], "Iterable[bytes] | None"]


class MotoDispatcher(DomainDispatcherApplication):
    """moto's dispatcher with each host's backend looked up once.

    moto resolves every request's backend under one lock, and the lookup lists moto's
    package folder and stats each entry (about 200 syscalls) before matching its URL
    patterns. Under a few hundred concurrent requests the lock's holder gives the GIL
    away at each syscall, and every request queues behind it: the sandbox's latency
    jumped from tens of milliseconds to a second at N = 1000. A host's backend never
    changes while the server runs, so the answer is kept (for at most
    ``MAX_HOSTS`` hosts; the sandbox serves a handful).
    """

    MAX_HOSTS = 1024

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backend_of_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backend_of_host[host]
        except KeyError:
            pass
        backend = super().get_backend_for_host(host)
        if len(self._backend_of_host) < self.MAX_HOSTS:
            self._backend_of_host[host] = backend
        return backend


class SandboxRequestHandler(MotoRequestHandler):
    """moto's request handler, with two changes for a server that answers hundreds of
    calls a second:

    - no werkzeug access log: the sandbox counts and reports its requests itself, and
      formatting a log line per request (its timestamp included) was a measurable share
      of the server's time;
    - connections are kept alive, as AWS's endpoints keep them. werkzeug's development
      server closes every connection after one answer (http.server cannot tell how much
      of a request's body the application left unread); here a request's body, when it
      states its length (up to ``KEEP_ALIVE_MAX_BODY``), is read whole before the
      application sees it, so the connection is in step for the next request whatever
      the application read. Otherwise (chunked, no length, larger) the connection closes
      after the answer, as before. Answers are sent without Nagle's delay
      (``TCP_NODELAY``). An idle connection closes after ``timeout`` seconds;
      ``ApiServer.stop`` closes the rest.
    """

    KEEP_ALIVE_MAX_BODY = 64 * 1024 * 1024
    timeout = 60  # socketserver.StreamRequestHandler: an idle kept-alive connection's limit
    _keep_alive = False

    def setup(self) -> None:
        super().setup()
        # An answer goes out in more than one write (status and headers, then the body):
        # on a kept-alive connection Nagle's algorithm held the last one until the
        # client's delayed ACK, 40 ms per request. Closing the connection used to flush it.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.open_connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.open_connections.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def run_wsgi(self) -> None:
        stream = self.rfile
        try:
            body = self._whole_body()
        except OSError:  # the client went away (or stalled past ``timeout``) mid-body
            self.close_connection = True
            return
        self._keep_alive = body is not None
        if body is not None:
            self.rfile = io.BytesIO(body)  # werkzeug hands it to the application as wsgi.input
        try:
            super().run_wsgi()
        finally:
            self.rfile = stream
        if not self._keep_alive:
            self.close_connection = True

    def _whole_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 <= length <= self.KEEP_ALIVE_MAX_BODY:
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionAbortedError("the request's body ended early")
        return body

    def send_header(self, keyword: str, value: str) -> None:
        # werkzeug asks for "Connection: close" on every answer (see the class docstring).
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        if format.startswith("Request timed out"):
            return None  # an idle kept-alive connection reaching ``timeout``: not an error
        super().log_error(format, *args)


class _OpenConnections:
    """The server's live connections, so that stopping it closes the kept-alive ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def snapshot(self) -> list[socket.socket]:
        with self._lock:
            return list(self._sockets)

    def close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SandboxMiddleware:
    def __init__(
        self, *, control: ControlAPI, counter: CallCounter, server_host: str = "127.0.0.1"
    ) -> None:
        self.control = control
        self.counter = counter
        self.server_host = server_host
        self.request_policies: list[RequestPolicy] = []
        self._moto = MotoDispatcher(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        operation = classify_request(environ, server_host=self.server_host)
        if not is_sandbox_internal(environ):
            caller = caller_of(environ)
            self.counter.add(operation, caller)
            if operation.startswith("s3."):
                self.counter.add_expected_owner(operation, caller, expected_bucket_owner(environ))
        for policy in self.request_policies:
            answer = policy(operation, environ, start_response)
            if answer is not None:
                return answer
        return self._moto(environ, start_response)

    def downstream(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """moto itself, for policies that let a call happen and then interfere."""
        return self._moto(environ, start_response)


def _drain(environ: dict[str, Any]) -> None:
    # Read an unanswered request's body, so a kept-alive connection stays in step.
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if length > 0:
        environ["wsgi.input"].read(length)


# ECS's RunTask `failures` reason when Fargate has no capacity for the request.
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)


def json_answer(start_response: Any, document: dict[str, Any]) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4())),
         ("Content-Length", str(len(body)))],
    )  # fmt: skip
    return [body]


def json_error(start_response: Any, code: str, message: str, status: str = "400 Bad Request") -> list[bytes]:
    """An error as ECS (awsJson1_1) answers it."""
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


# The S3 errors the s3_error fault can answer: (code, message, HTTP reason).
S3_FAULT_ERRORS = {
    403: ("AccessDenied", "Access Denied", "Forbidden"),
    500: ("InternalError", "We encountered an internal error. Please try again.",
          "Internal Server Error"),
    503: ("SlowDown", "Please reduce your request rate.", "Service Unavailable"),
}  # fmt: skip


def s3_error(start_response: Any, status: int) -> list[bytes]:
    code, message, reason = S3_FAULT_ERRORS[status]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/xml"), ("x-amz-request-id", request_id),
         ("Content-Length", str(len(body)))],
    )  # fmt: skip
    return [body]


def s3_bucket_owner(bucket: str) -> str | None:
    """The account that owns ``bucket`` in moto, or None if there is no such bucket."""
    from moto.s3.models import s3_backends

    found = s3_backends.bucket_accounts.get(bucket)
    return found[1] if found else None


class BucketOwnerPolicy:
    """S3's ExpectedBucketOwner: a request naming another account than the bucket's
    owner gets 403 AccessDenied, which (like S3) does not reveal the owner. moto
    ignores the header; without this a look-alike bucket would pass every test."""

    def __init__(self, counter: CallCounter, server_host: str) -> None:
        self.counter = counter
        self.server_host = server_host

    def __call__(self, operation: str, environ: dict[str, Any], start_response: Any) -> Any:
        expected = expected_bucket_owner(environ)
        if expected is None or not operation.startswith("s3."):
            return None
        bucket, _ = s3_bucket_and_key(environ, self.server_host)
        owner = s3_bucket_owner(bucket) if bucket else None
        if owner is None or owner == expected:
            return None  # no such bucket: moto answers NoSuchBucket, as S3 does
        self.counter.add(f"refused.{operation}", caller_of(environ))
        _drain(environ)
        return s3_error(start_response, 403)


class ThrottlingPolicy:
    """Refuses calls AWS's token buckets would refuse (limits.py)."""

    def __init__(self, limits: AwsLimits, counter: CallCounter) -> None:
        self.limits = limits
        self.counter = counter

    def __call__(self, operation: str, environ: dict[str, Any], start_response: Any) -> Any:
        if is_sandbox_internal(environ):
            return None
        code = self.limits.refusal(operation, environ)
        if code is None:
            return None
        self.counter.add(f"throttled.{operation}")
        _drain(environ)
        return json_error(start_response, code, "Rate exceeded")


class FaultPolicy:
    """Applies scripted request faults (faults.py): throttle, s3_error, lost_response,
    slow_response."""

    def __init__(self, book: FaultBook, counter: CallCounter, downstream: Any) -> None:
        self.book = book
        self.counter = counter
        self.downstream = downstream

    def __call__(self, operation: str, environ: dict[str, Any], start_response: Any) -> Any:
        if is_sandbox_internal(environ):
            return None
        fault = self.book.take_request_fault(operation, environ)
        if fault is None:
            return None
        self.counter.add(f"fault.{fault.kind}.{operation}")
        if fault.kind == "throttle":
            _drain(environ)
            code = fault.codes[(fault.used - 1) % len(fault.codes)] if fault.codes else "ThrottlingException"
            return json_error(start_response, code, "Rate exceeded")
        if fault.kind == "s3_error":
            _drain(environ)
            return s3_error(start_response, fault.status)
        if fault.kind == "server_error":
            _drain(environ)
            if operation.startswith("s3."):
                return s3_error(start_response, 500)
            return json_error(
                start_response, "ServerException", "Service unavailable (sandbox fault)",
                status="500 Internal Server Error",
            )  # fmt: skip
        if fault.kind == "capacity_unavailable":
            _drain(environ)
            return json_answer(start_response, {"tasks": [], "failures": [{"reason": CAPACITY_UNAVAILABLE}]})
        if fault.kind == "slow_response":
            time.sleep(fault.delay_s)  # this request's own server thread
            return None
        if fault.kind == "cut_body":
            return self._cut_body(environ, start_response)
        return self._lose_response(environ, start_response)

    def _cut_body(self, environ: dict[str, Any], start_response: Any) -> Any:
        # The real answer's status and headers (its full Content-Length), half its body,
        # then the connection is cut: the client's read fails mid-stream.
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            answer["status"], answer["headers"] = status, headers

        body = b"".join(self.downstream(environ, keep))
        start_response(answer["status"], answer["headers"])

        def half_then_cut() -> Any:
            yield body[: len(body) // 2]
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        return half_then_cut()

    def _lose_response(self, environ: dict[str, Any], start_response: Any) -> Any:
        # The call happens (moto runs it to the end), then the connection is cut before
        # a byte of the answer is sent: what a client sees when a response is lost.
        for _chunk in self.downstream(environ, lambda *args, **kwargs: None):
            pass
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # werkzeug's handler ignores the broken connection when it tries to answer.
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return []


class ApiServer:
    """A werkzeug server for ``app`` on ``host:port`` (0 = a free port), in a thread."""

    def __init__(self, app: Any, *, host: str, port: int) -> None:
        # werkzeug logs every request at INFO; the sandbox reports its own events.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=SandboxRequestHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._server.open_connections = _OpenConnections()  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-api",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def open_connections(self) -> list[socket.socket]:
        """The server's side of each connection open now."""
        return self._server.open_connections.snapshot()  # type: ignore[attr-defined]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
        self._server.open_connections.close_all()  # type: ignore[attr-defined]
