"""HMAC-SHA256 over staged objects: only the holders of a run's key write what is loaded.

The client makes one random key per ``run()`` (``SigningKey.new()``) and gives it to
its task only in the container's environment override (contract.ENV_SIGNING_SECRET).
Anyone else who can write under the staging prefix (another task, say) cannot make
a MAC that verifies, so neither side unpickles an object it did not get from the
other: the runner checks the payload before loading it, the client checks the result
over the exact bytes it streamed to disk before loading it.

A MAC covers a domain string, the object's role (payload or result) and its S3 key,
then the object's bytes: a payload copied over a result, or one run's result copied
to another attempt's key, does not verify. Standard library only: the runner image
imports this too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, BinaryIO

KEY_BYTES = 32  # 256 bits
# A streamed object's body is read (and MACed, and written) this much at a time.
STREAM_CHUNK_BYTES = 1024 * 1024
PURPOSE_PAYLOAD = "payload"
PURPOSE_RESULT = "result"
_DOMAIN = "covalent-ecs-staged-object/v1"


class SigningKey:
    """A run's secret. Its repr and str never show it, and it refuses to be pickled,
    so it cannot end up in a log line, an error message or a staged object by accident."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ValueError(f"a signing key has at least {KEY_BYTES} bytes")
        self._secret = secret

    @classmethod
    def new(cls) -> SigningKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_env_value(cls, text: str) -> SigningKey:
        """The key from its environment form (hex). The message never repeats ``text``."""
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            raise ValueError("the signing key in the environment is not hex") from None
        return cls(secret)

    def env_value(self) -> str:
        """The key's environment form: only for the RunTask environment override."""
        return self._secret.hex()

    def mac(self, purpose: str, object_key: str) -> Mac:
        """A MAC for the object ``object_key`` in role ``purpose``; feed it the bytes."""
        mac = hmac.new(self._secret, digestmod=hashlib.sha256)
        # JSON: unambiguous whatever characters the key holds.
        mac.update(json.dumps([_DOMAIN, purpose, object_key]).encode() + b"\n")
        return Mac(mac)

    def __repr__(self) -> str:
        return "SigningKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a SigningKey is never pickled")


class Mac:
    """HMAC-SHA256 being computed over an object's bytes."""

    def __init__(self, mac: hmac.HMAC) -> None:
        self._mac = mac

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.hexdigest()

    def matches(self, claimed: str | None) -> bool:
        """True when ``claimed`` (hex, e.g. from object metadata) is this MAC."""
        if not claimed:
            return False
        # As bytes: compare_digest refuses non-ASCII str, and a claim is anyone's text.
        claimed_bytes = claimed.strip().lower().encode("utf-8", errors="replace")
        return hmac.compare_digest(self.hexdigest().encode(), claimed_bytes)


class MacWriter:
    """A binary file that MACs every byte written through it (``pickle.dump`` target),
    so an object is signed as it is written, without reading it back."""

    def __init__(self, file: BinaryIO, mac: Mac) -> None:
        self._file = file
        self.mac = mac

    def write(self, data: bytes) -> int:
        self.mac.update(data)
        return self._file.write(data)


class BrokenStream(Exception):
    """A streamed object's body stopped mid-way (its cause says how). botocore retries
    requests, not bodies, so the caller may start the whole download again."""


def copy_body(body: Any, writer: MacWriter) -> None:
    """Stream an S3 object's ``body`` into ``writer`` (which MACs every byte), chunk by
    chunk: the payload (runner) and the result (client) are read this one way. A read
    that fails raises BrokenStream; a write that fails raises its OSError."""
    chunks = body.iter_chunks(STREAM_CHUNK_BYTES)
    while True:
        try:
            chunk = next(chunks, None)
        except Exception as exc:  # noqa: BLE001 - botocore/urllib3 stream errors vary
            raise BrokenStream() from exc
        if chunk is None:
            return
        writer.write(chunk)
