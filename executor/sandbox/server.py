"""The sandbox's HTTP server: moto's AWS API behind our WSGI middleware.

``SandboxMiddleware`` sees every request first:

1. ``/_sandbox/...`` goes to the control API (control.py);
2. every other request is named (calls.py) and counted per caller, unless it carries the
   sandbox's own User-Agent marker (seed, ``Sandbox.client(internal=True)``);
3. then each of ``request_policies`` may answer instead of moto. This is where API
   throttling (token buckets per operation, NOTES.md "AWS limits") and fault
   injection will plug in: a policy gets ``(operation, environ)`` and returns a WSGI
   response iterable after calling ``start_response`` itself, or None to pass.
4. everything else goes to moto's ``DomainDispatcherApplication``.

``ApiServer`` runs it on a werkzeug threaded server (one thread per request) bound
to the given host (127.0.0.1 by default) in a background thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from .calls import CallCounter, caller_of, classify_request, is_sandbox_internal
from .control import CONTROL_PREFIX, ControlAPI

RequestPolicy = Callable[[str, dict[str, Any], Any], "Iterable[bytes] | None"]


class SandboxMiddleware:
    def __init__(
        self, *, control: ControlAPI, counter: CallCounter, server_host: str = "127.0.0.1"
    ) -> None:
        self.control = control
        self.counter = counter
        self.server_host = server_host
        self.request_policies: list[RequestPolicy] = []
        self._moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        operation = classify_request(environ, server_host=self.server_host)
        if not is_sandbox_internal(environ):
            self.counter.add(operation, caller_of(environ))
        for policy in self.request_policies:
            answer = policy(operation, environ, start_response)
            if answer is not None:
                return answer
        return self._moto(environ, start_response)


class ApiServer:
    """A werkzeug server for ``app`` on ``host:port`` (0 = a free port), in a thread."""

    def __init__(self, app: Any, *, host: str, port: int) -> None:
        # werkzeug logs every request at INFO; the sandbox reports its own events.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
