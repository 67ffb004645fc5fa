"""A thin client for the OCI distribution API (Docker registry v2) over httpx.

Just what publishing needs: read manifests and blobs, HEAD before upload, cross-repo
mount, a streamed blob upload, and manifest PUT. Auth follows the registry's
``WWW-Authenticate`` challenge: ``Basic`` (ECR, htpasswd) with the given credentials,
or ``Bearer`` (Docker Hub, public.ecr.aws, GHCR...) with a token fetched from the realm,
anonymously when no credentials are given.

Registry quirks handled here (docs/facts.md, "ECR and registries"):

* ECR drops chunks after the first in multi-chunk uploads (aws/containers-roadmap#2831),
  so a blob is one streamed PATCH with a Content-Length, then an empty PUT.
* httpx's ``params=`` replaces the upload Location's own query string (its upload
  state): ``digest=`` is appended to the URL by hand.
* a mount answers 201 when done and 202 (with an upload URL) when it could not mount.

Where credentials may go (they are the registry's, or a 12-hour ECR token):

* over HTTPS only; plain HTTP only to loopback (127.0.0.1, localhost, ::1), for the
  registry itself, an upload ``Location`` and a token realm alike: anything else on
  plain HTTP is refused before a byte is sent;
* the ``Authorization`` header (Basic or Bearer) only to the registry's own host and
  port; an upload ``Location`` on another host gets the blob without it, and only the
  registry's own 401 challenges are answered;
* Basic credentials to the token realm the registry names (Docker Hub's is another
  host), over HTTPS;
* never printed: a registry URL with ``user:password@`` is refused, and every URL in a
  message goes through ``redacted``.

Digests read from a registry (an index's or manifest's descriptors) are checked to be
``sha256:`` + 64 hex digits (``checked_digest``) before they name a URL, a cache file
or a blob to upload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import ECSExecutorError
from .oci import INDEX_TYPES, MANIFEST_TYPES
from .refs import DOCKER_HUB

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_ACCEPT_MANIFESTS = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))


class RegistryError(ECSExecutorError):
    """A registry refused or failed a request; the message says which and what to do."""


class RegistryAuthError(RegistryError):
    """No credentials, or the registry denied access to the repository (401/403)."""


class RegistryUnreachableError(RegistryError):
    """The registry could not be reached (DNS, connection refused, TLS, timeout)."""


class NotFoundError(RegistryError):
    """The manifest or blob does not exist."""


def redacted(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: fit to print."""
    return re.sub(r"//[^/?#]*@", "//***@", url)


def checked_digest(value: Any, where: str) -> str:
    """``value`` if it is ``sha256:`` + 64 hex digits; else a RegistryError naming ``where``.

    A digest from a registry's answer becomes a URL path, a cache file name and a blob
    to upload: ``sha256:../../x`` must never get that far.
    """
    if isinstance(value, str) and _DIGEST_RE.match(value):
        return value
    raise RegistryError(
        f"{where} names a malformed digest {str(value)[:100]!r} (expected sha256: followed "
        "by 64 lowercase hex digits); refusing to use it"
    )


def secure_transport(url: str) -> bool:
    """HTTPS, or plain HTTP to a loopback host: where anything of ours may be sent."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


def base_url(registry: str) -> str:
    """``https://host`` (or ``http://`` for loopback) for a registry host or URL."""
    shown = redacted(registry if "://" in registry else f"//{registry}").removeprefix("//")
    parts = urlsplit(registry if "://" in registry else f"//{registry.rstrip('/')}")
    if parts.username is not None or "@" in parts.netloc:
        raise RegistryError(
            f"registry {shown!r}: credentials in the URL are not accepted (they would end up "
            "in logs); set COVALENT_ECS_REGISTRY_USERNAME/COVALENT_ECS_REGISTRY_PASSWORD or "
            "log in with `docker login`/`skopeo login`"
        )
    if "://" in registry:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"registry {shown!r}: expected https://host[:port] or host[:port]")
        if not secure_transport(registry):
            raise RegistryError(
                f"registry {shown!r}: plain HTTP is only allowed for 127.0.0.1/localhost; "
                "use https://"
            )
        return f"{parts.scheme}://{parts.netloc}"
    return f"{'http' if parts.hostname in _LOOPBACK else 'https'}://{parts.netloc}"


def credentials_for(registry_host: str) -> tuple[str, str] | None:
    """Credentials for ``registry_host``: env vars, else ``~/.docker/config.json``'s ``auths``.

    ``COVALENT_ECS_REGISTRY_USERNAME``/``COVALENT_ECS_REGISTRY_PASSWORD`` apply to the
    target registry of ``publish-image`` only (the caller decides); Docker's config file
    is read for any registry, like skopeo does (credential helpers are not run).
    """
    path = os.path.join(
        os.environ.get("DOCKER_CONFIG", os.path.expanduser("~/.docker")), "config.json"
    )
    try:
        with open(path) as f:
            auths = json.load(f).get("auths") or {}
    except (OSError, ValueError):
        return None
    for key, value in auths.items():
        host = urlsplit(key if "://" in key else f"//{key}").netloc
        if host in (registry_host, "index.docker.io" if registry_host == DOCKER_HUB else ""):
            encoded = (value or {}).get("auth")
            if encoded:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
                return user, password
    return None


Progress = Callable[[int], None]


class RegistryClient:
    """One registry, one set of credentials; tokens are cached per scope."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: tuple[str, str] | None = None,
        basic_token: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url(registry)
        self.host = urlsplit(self.base_url).netloc
        self._credentials = credentials
        # ECR hands out the base64 "AWS:<password>" string ready for a Basic header.
        self._basic = basic_token or (
            base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            if credentials
            else None
        )
        self._tokens: dict[str, str] = {}  # Bearer tokens by scope
        self._send_basic = False  # set once the registry has asked for Basic auth
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return (
            urljoin(self.base_url + "/", path.lstrip("/")) if not path.startswith("http") else path
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        repository: str,
        push: bool = False,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        url = self._url(path)
        if not secure_transport(url):
            raise RegistryError(
                f"{self.host} sent the client to {redacted(url)} over plain HTTP: refused "
                "(credentials and image data go only over HTTPS, or plain HTTP to "
                "127.0.0.1/localhost). Check the registry's configuration."
            )
        # Credentials only to the registry's own host: an upload Location elsewhere
        # (object storage, a CDN) carries its own authorisation in the URL.
        own_host = urlsplit(url).netloc == self.host
        headers = dict(kwargs.pop("headers", {}) or {})
        content = kwargs.pop("content", None)
        for attempt in range(2):
            auth = self._auth_header(scope) if own_host else None
            if auth:
                headers["Authorization"] = auth
            body = content() if callable(content) else content
            request = self._client.build_request(method, url, headers=headers, content=body)
            try:
                response = self._client.send(
                    request, stream=stream, follow_redirects=kwargs.get("follow_redirects", False)
                )
            except httpx.TransportError as err:
                raise RegistryUnreachableError(
                    f"cannot reach the registry {self.base_url} ({type(err).__name__}: "
                    f"{redacted(str(err))}). Check the URL, the network and that the registry "
                    "is running."
                ) from err
            if response.status_code != 401 or attempt == 1 or not own_host:
                break
            response.close()
            if not self._answer_challenge(response, scope):
                break
        if response.status_code in (401, 403):
            raise self._denied(response, repository, push=push)
        return response

    def _auth_header(self, scope: str) -> str | None:
        if scope in self._tokens:
            return f"Bearer {self._tokens[scope]}"
        if self._basic and self._send_basic:
            return f"Basic {self._basic}"
        return None

    def _answer_challenge(self, response: httpx.Response, scope: str) -> bool:
        """Prepare credentials for the challenge; False if there is nothing to try."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self._basic:
                return False
            self._send_basic = True
            return True
        if scheme.lower() != "bearer":
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
        realm = params.get("realm")
        if not realm:
            return False
        if not secure_transport(realm) or urlsplit(realm).username is not None:
            raise RegistryAuthError(
                f"{self.host} asks for a token from {redacted(realm)}: refused, credentials "
                "and tokens go only over HTTPS (or plain HTTP to 127.0.0.1/localhost) and "
                "never in a URL. Check the registry's token service configuration."
            )
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        headers = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
        try:
            answer = self._client.get(realm, params=query, headers=headers)
        except httpx.TransportError as err:
            raise RegistryUnreachableError(
                f"cannot reach the token service {redacted(realm)} of {self.base_url}: "
                f"{redacted(str(err))}"
            ) from err
        if answer.status_code != 200:
            return False
        body = answer.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._tokens[scope] = token
        return True

    def _denied(
        self, response: httpx.Response, repository: str, *, push: bool
    ) -> RegistryAuthError:
        what = "push to" if push else "pull from"
        detail = _error_text(response)
        if not self._basic:
            return RegistryAuthError(
                f"{self.host} asks for credentials to {what} {repository!r} and none were "
                f"found (HTTP {response.status_code}{detail}). Set "
                "COVALENT_ECS_REGISTRY_USERNAME/COVALENT_ECS_REGISTRY_PASSWORD, or log in "
                "with `docker login`/`skopeo login` (~/.docker/config.json)."
            )
        return RegistryAuthError(
            f"{self.host} denied access to {what} repository {repository!r} (HTTP "
            f"{response.status_code}{detail}). Check the credentials and that they may "
            f"{'push' if push else 'pull'} this repository."
        )

    def _check(self, response: httpx.Response, action: str, *ok: int) -> httpx.Response:
        if response.status_code in ok:
            return response
        if response.status_code == 404:
            raise NotFoundError(f"{action}: not found on {self.host}{_error_text(response)}")
        raise RegistryError(f"{action}: HTTP {response.status_code}{_error_text(response)}")

    # -- reading --------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """``(body, media type, digest)`` of a manifest or index."""
        response = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", repository=repository,
            headers={"Accept": _ACCEPT_MANIFESTS},
        )  # fmt: skip
        self._check(response, f"read manifest {repository}:{reference}", 200)
        body = response.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(
                f"manifest {repository}@{reference} from {self.host} has digest {digest}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in (*INDEX_TYPES, *MANIFEST_TYPES):
            media_type = json.loads(body).get("mediaType", media_type)
        return body, media_type, digest

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest a tag or digest points at, or None if there is none."""
        response = self._request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", repository=repository,
            headers={"Accept": _ACCEPT_MANIFESTS},
        )  # fmt: skip
        if response.status_code == 404:
            return None
        self._check(response, f"look up manifest {repository}:{reference}", 200)
        return response.headers.get("Docker-Content-Digest")

    def blob_exists(self, repository: str, digest: str) -> bool:
        checked_digest(digest, f"a blob of {repository}")
        response = self._request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, push=True
        )
        if response.status_code == 404:
            return False
        self._check(response, f"check blob {digest[:19]} in {repository}", 200)
        return True

    def get_blob(self, repository: str, digest: str, dest: str) -> int:
        """Download a blob to ``dest`` (verified against its digest); returns its size."""
        checked_digest(digest, f"a blob of {repository}")
        h = hashlib.sha256()
        size = 0
        tmp = f"{dest}.partial"
        # Blob GETs often redirect to storage (S3, a CDN); httpx drops Authorization then.
        response = self._request(
            "GET", f"/v2/{repository}/blobs/{digest}", repository=repository,
            stream=True, follow_redirects=True,
        )  # fmt: skip
        try:
            if response.status_code != 200:
                response.read()
            self._check(response, f"download blob {digest[:19]} of {repository}", 200)
            with open(tmp, "wb") as f:
                for chunk in response.iter_bytes(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
        except httpx.TransportError as err:
            raise RegistryUnreachableError(
                f"download of blob {digest[:19]} from {self.host} failed: {err}"
            ) from err
        finally:
            response.close()
        if "sha256:" + h.hexdigest() != digest:
            os.remove(tmp)
            raise RegistryError(
                f"blob {digest} from {self.host}/{repository} does not match its digest"
            )
        os.replace(tmp, dest)
        return size

    # -- writing --------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; True if the registry mounted it (201)."""
        checked_digest(digest, f"a blob of {from_repository}")
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
            repository=repository,
            push=True,
        )
        if response.status_code == 201:
            return True
        self._check(response, f"mount blob {digest[:19]} into {repository}", 202)
        # 202: the registry opened an upload instead; abandon it (it expires).
        return False

    def upload_blob(
        self, repository: str, digest: str, path: str, *, progress: Progress | None = None
    ) -> None:
        """Upload ``path`` as one streamed PATCH then an empty PUT with the digest."""
        checked_digest(digest, f"a blob for {repository}")
        start = self._request(
            "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, push=True
        )
        self._check(start, f"start upload of {digest[:19]} to {repository}", 202)
        location = self._url(_location(start, self.base_url))
        size = os.path.getsize(path)

        def body() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        patched = self._request(
            "PATCH", location, repository=repository, push=True, content=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "Content-Range": f"0-{max(size - 1, 0)}",
            },
        )  # fmt: skip
        # ECR answers 201 to a PATCH, the spec says 202.
        self._check(patched, f"upload {digest[:19]} to {repository}", 202, 201)
        location = self._url(_location(patched, self.base_url))
        separator = "&" if "?" in location else "?"
        done = self._request(
            "PUT", f"{location}{separator}digest={digest}", repository=repository, push=True,
            headers={"Content-Length": "0"},
        )  # fmt: skip
        self._check(done, f"finish upload of {digest[:19]} to {repository}", 201)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self._request(
            "PUT", f"/v2/{repository}/manifests/{reference}", repository=repository, push=True,
            content=body, headers={"Content-Type": media_type},
        )  # fmt: skip
        self._check(response, f"push manifest {repository}:{reference}", 201)
        return response.headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(body).hexdigest()
        )


def _location(response: httpx.Response, base: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(f"{base} answered HTTP {response.status_code} without a Location")
    if urlsplit(location).username is not None:
        raise RegistryError(f"{base} sent an upload location with credentials in it: refused")
    # A relative Location is relative to the URL that answered (RFC 9110), which after
    # an upload moved to another host is not the registry's.
    return urljoin(str(response.url), location)


def _error_text(response: httpx.Response) -> str:
    """The registry's own error codes/messages, if it sent any."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    return f": {text}" if text else ""


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES
