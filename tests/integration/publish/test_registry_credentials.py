"""Where the registry client's credentials may go, and which digests it accepts.

A small scripted HTTP server on 127.0.0.1 plays the registry (and, as an HTTP proxy,
every other host): it records each request's headers, so a test sees exactly what
left the client. The client has credentials in every test; the assertions are that
they reach the registry's own host only, and nothing goes over plain HTTP to a
non-loopback host (an upload ``Location`` or a token realm the registry names).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from covalent_ecs_executor.errors import ConfigError
from covalent_ecs_executor.image import publish
from covalent_ecs_executor.image.refs import ImageRef
from covalent_ecs_executor.image.registry import (
    RegistryAuthError,
    RegistryClient,
    RegistryError,
    base_url,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "publisher", "s3cret-registry-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
DIGEST = "sha256:" + "ab" * 32

Answer = tuple[int, dict[str, str], bytes]
Script = Callable[[str, str, dict[str, str]], Answer]


@dataclass
class Seen:
    method: str
    target: str  # the request line's target: a path, or an absolute URL through a proxy
    headers: dict[str, str]


@dataclass
class ScriptedServer:
    """An HTTP server on 127.0.0.1 answering with ``script``; ``seen`` is what it got."""

    script: Script
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def credentials_seen(self) -> list[Seen]:
        return [s for s in self.seen if "authorization" in s.headers or PASSWORD in json.dumps(s.headers)]


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        scripted = ScriptedServer(script)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                scripted.seen.append(Seen(self.command, self.path, headers))
                status, reply_headers, body = scripted.script(self.command, self.path, headers)
                self.send_response(status)
                for name, value in {**reply_headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        scripted.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=scripted.server.serve_forever, daemon=True).start()
        started.append(scripted)
        return scripted

    yield start
    for scripted in started:
        assert scripted.server is not None
        scripted.server.shutdown()
        scripted.server.server_close()


@pytest.fixture
def proxy(serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    """Every plain-HTTP request to a non-loopback host goes through this recorder (httpx
    honours HTTP_PROXY), so a request the client should never make is seen, not lost."""
    recorder = serve(lambda method, target, headers: (200, {"Content-Type": "application/json"}, b'{"token": "t"}'))
    for name in ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # The harness itself: a client made now does send such a request to the recorder.
    with httpx.Client() as client:
        client.get("http://harness-check.example.invalid/")
    assert [s.target for s in recorder.seen] == ["http://harness-check.example.invalid/"]
    recorder.seen.clear()
    return recorder


def basic_registry(upload_location: str) -> Script:
    """A registry that wants Basic auth and sends uploads to ``upload_location``."""

    def script(method: str, target: str, headers: dict[str, str]) -> Answer:
        if headers.get("authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="tests"'}, b""
        if method == "POST" and "/blobs/uploads/" in target:
            return 202, {"Location": upload_location}, b""
        return 404, {}, b""

    return script


def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(b"layer bytes")
    return path


def test_an_upload_location_on_another_host_gets_the_blob_but_no_credentials(serve, tmp_path):
    storage = serve(lambda method, target, headers: (
        (202, {"Location": "/upload/1?state=2"}, b"") if method == "PATCH" else (201, {}, b"")
    ))
    registry = serve(basic_registry(f"{storage.url}/upload/1?state=1"))
    with RegistryClient(registry.url, credentials=(USER, PASSWORD)) as client:
        client.upload_blob("runner", DIGEST, str(blob(tmp_path)))
    assert [s.method for s in storage.seen] == ["PATCH", "PUT"]  # the upload happened there
    assert storage.credentials_seen() == []
    assert [s.headers.get("authorization") for s in registry.seen] == [None, BASIC]  # and here


def test_an_upload_location_on_plain_http_is_refused_before_anything_is_sent(serve, proxy, tmp_path):
    registry = serve(basic_registry("http://uploads.example.invalid/upload/1"))
    refused = pytest.raises(RegistryError, match=r"uploads\.example\.invalid/upload/1 over plain HTTP: refused")
    with RegistryClient(registry.url, credentials=(USER, PASSWORD)) as client, refused:
        client.upload_blob("runner", DIGEST, str(blob(tmp_path)))
    assert proxy.seen == []


def test_a_token_realm_on_plain_http_gets_no_credentials(serve, proxy):
    challenge = 'Bearer realm="http://auth.example.invalid/token",service="registry.tests"'
    registry = serve(lambda method, target, headers: (401, {"WWW-Authenticate": challenge}, b""))
    refused = pytest.raises(RegistryAuthError, match=r"auth\.example\.invalid/token: refused")
    with RegistryClient(registry.url, credentials=(USER, PASSWORD)) as client, refused:
        client.blob_exists("runner", DIGEST)
    assert proxy.seen == []
    assert registry.credentials_seen() == []


def test_a_token_realm_on_https_elsewhere_is_where_credentials_go(serve, proxy):
    # The control case: a realm the client may use gets the Basic credentials (Docker
    # Hub's realm is another host). Plain HTTP to loopback stands in for HTTPS here.
    realm = serve(lambda method, target, headers: (200, {"Content-Type": "application/json"}, b'{"token": "tok"}'))

    def script(method: str, target: str, headers: dict[str, str]) -> Answer:
        if headers.get("authorization") == "Bearer tok":
            return 200, {}, b""
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="tests"'}, b""

    registry = serve(script)
    with RegistryClient(registry.url, credentials=(USER, PASSWORD)) as client:
        assert client.blob_exists("runner", DIGEST)
    assert [s.headers.get("authorization") for s in realm.seen] == [BASIC]
    assert [s.headers.get("authorization") for s in registry.seen] == [None, "Bearer tok"]


@pytest.mark.parametrize(
    "registry",
    ["https://publisher:s3cret-registry-password@registry.example", "publisher:s3cret-registry-password@registry.example"],
)
def test_credentials_in_a_registry_url_are_refused_without_being_printed(registry):
    with pytest.raises(RegistryError, match="credentials in the URL are not accepted") as caught:
        base_url(registry)
    assert PASSWORD not in str(caught.value)


def test_credentials_in_an_image_reference_are_refused_without_being_printed():
    with pytest.raises(ConfigError, match="credentials in an image reference") as caught:
        ImageRef.parse(f"{USER}:{PASSWORD}@registry.example/base/python:3.11")
    assert PASSWORD not in str(caught.value)


def test_publish_image_never_prints_a_password_given_in_the_url():
    from test_publish_image import publish_image  # the CLI, as a user runs it

    result = publish_image("--registry", f"https://{USER}:{PASSWORD}@registry.example")
    assert result.returncode == 1
    assert "credentials in the URL are not accepted" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def manifest_server(serve: Callable[[Script], ScriptedServer], documents: dict[str, dict[str, Any]]) -> ScriptedServer:
    def script(method: str, target: str, headers: dict[str, str]) -> Answer:
        for suffix, document in documents.items():
            if target.endswith(suffix):
                return 200, {"Content-Type": document["mediaType"]}, json.dumps(document).encode()
        return 404, {}, b""

    return serve(script)


INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.mark.parametrize(
    "documents",
    [
        {"/manifests/1": {"mediaType": INDEX, "manifests": [
            {"digest": "sha256:../../../../escaped", "platform": {"os": "linux", "architecture": "amd64"}}]}},
        {"/manifests/1": {"mediaType": MANIFEST, "config": {"digest": "sha256:../../../escaped"}, "layers": []}},
        {"/manifests/1": {"mediaType": MANIFEST, "config": {"digest": "../../escaped"}, "layers": []}},
    ],
    ids=["index entry", "manifest config", "no algorithm"],
)
def test_a_malformed_digest_in_a_base_manifest_names_no_file_and_no_request(serve, tmp_path, documents):
    base = manifest_server(serve, documents)
    cache = tmp_path / "cache" / "publish"
    cache.mkdir(parents=True)
    refused = pytest.raises(RegistryError, match="names a malformed digest .*refusing to use it")
    with RegistryClient(base.url) as client, refused:
        publish.resolve_base(client, ImageRef.parse(f"{base.host}/base:1"), ["linux/amd64"], str(cache))
    assert [s.target for s in base.seen] == ["/v2/base/manifests/1"]  # nothing fetched after it
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "publish"]  # no file written


def test_a_malformed_digest_is_never_uploaded(serve, tmp_path):
    registry = serve(basic_registry("/upload/1"))
    refused = pytest.raises(RegistryError, match="malformed digest")
    with RegistryClient(registry.url, credentials=(USER, PASSWORD)) as client, refused:
        client.upload_blob("runner", "sha256:../x", str(blob(tmp_path)))
    assert registry.seen == []
