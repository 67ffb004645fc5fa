"""The sandbox's API server keeps connections alive, as AWS's endpoints do, and stays
in step whatever the application read of a request's body (server.SandboxRequestHandler)."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from covalent_ecs_executor.sandbox.server import ApiServer

ANSWERED: list[str] = []


def _ignores_the_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    # Answers from the path alone and never reads wsgi.input, as a policy refusing a call might.
    ANSWERED.append(environ["PATH_INFO"])
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def server() -> Iterator[ApiServer]:
    api = ApiServer(_ignores_the_body, host="127.0.0.1", port=0)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _peer_port(connection: http.client.HTTPConnection) -> int:
    assert connection.sock is not None
    return int(connection.sock.getsockname()[1])


def test_one_connection_serves_many_requests_even_when_a_body_is_left_unread(server: ApiServer) -> None:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    seen = []
    for i in range(5):
        connection.request("PUT", f"/object-{i}", body=b"x" * 100_000)  # not read by the app
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, f"/object-{i}".encode())
        assert answer.getheader("Connection") != "close"
        seen.append(_peer_port(connection))
    assert len(set(seen)) == 1  # the same socket each time: nothing reconnected
    # Without TCP_NODELAY each answer's last write waited for the client's delayed ACK
    # (40 ms per request on a kept-alive connection).
    (server_side,) = server.open_connections()
    assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    connection.close()


def test_a_chunked_request_is_answered_and_its_connection_closed(server: ApiServer) -> None:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("PUT", "/chunked", body=iter([b"abc", b"def"]), encode_chunked=True)
    answer = connection.getresponse()
    assert (answer.status, answer.read()) == (200, b"/chunked")
    assert answer.getheader("Connection") == "close"  # its body's end is not known up front
    connection.close()


def test_a_request_whose_body_never_fully_arrives_is_not_answered(
    server: ApiServer, capfd: pytest.CaptureFixture[str]
) -> None:
    ANSWERED.clear()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"PUT /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)  # the network drops mid-upload
        assert sock.recv(1024) == b""  # closed without an answer
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("GET", "/after")
    assert connection.getresponse().read() == b"/after"  # the server goes on serving
    connection.close()
    assert ANSWERED == ["/after"]  # the application never saw the cut request
    assert "Traceback" not in capfd.readouterr().err


def test_stopping_the_server_closes_kept_alive_connections() -> None:
    api = ApiServer(_ignores_the_body, host="127.0.0.1", port=0)
    api.start()
    connection = http.client.HTTPConnection(api.host, api.port, timeout=10)
    connection.request("GET", "/first")
    assert connection.getresponse().read() == b"/first"
    api.stop()
    assert connection.sock is not None
    connection.sock.settimeout(10)
    assert connection.sock.recv(1) == b""  # closed by the server, not left to its idle timeout
    connection.close()
    with pytest.raises(OSError):
        socket.create_connection((api.host, api.port), timeout=2).close()
