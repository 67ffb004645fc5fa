"""OCI image pieces: reproducible layer tarballs, image config, manifest and index.

Everything here is a pure function of its inputs, so the same inputs give the same
digests (docs/facts.md, "Building the runner image without Docker"):

* tar entries are sorted, owners are 0:0 unless given, mtimes are fixed, modes are
  normalised (0755 for directories and executables, 0644 otherwise);
* gzip is written with mtime 0 and no file name;
* the image config's ``created`` and history dates are the epoch.

A layer's ``diff_id`` is the sha256 of the uncompressed tar (what the config lists);
its ``digest`` is the sha256 of the gzip bytes (what the manifest lists). gzip bytes can
differ between zlib versions, so "same image" is decided on diff_ids.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)

EPOCH = "1970-01-01T00:00:00Z"
GZIP_LEVEL = 6  # level 9 costs ~3x the time for ~2% fewer bytes
_CHUNK = 1024 * 1024

# Docker's platform names for the architectures Fargate runs.
PLATFORMS = {"linux/amd64": ("amd64", ""), "linux/arm64": ("arm64", "v8")}


@dataclass(frozen=True)
class Blob:
    """A content-addressed file: ``digest`` and ``size`` of the bytes at ``path``."""

    path: str
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Layer(Blob):
    diff_id: str = ""

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, inner: BinaryIO | None) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file system entry of a layer: where it comes from and how it is stored."""

    name: str  # path in the image, without a leading "/"
    source: str | None  # host path; None for a directory made up here
    uid: int = 0
    gid: int = 0


def tree_entries(src_dir: str, prefix: str, *, uid: int = 0, gid: int = 0) -> list[Entry]:
    """``src_dir``'s contents placed at ``prefix`` in the image (parents included)."""
    prefix = prefix.strip("/")
    entries = []
    parts = prefix.split("/") if prefix else []
    for depth in range(1, len(parts) + 1):
        entries.append(Entry("/".join(parts[:depth]), None))
    for root, dirs, files in os.walk(src_dir):
        dirs.sort()
        rel_root = os.path.relpath(root, src_dir)
        for name in sorted(dirs + files):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            entries.append(
                Entry(f"{prefix}/{rel}" if prefix else rel, os.path.join(root, name), uid, gid)
            )
    return entries


def write_layer(
    entries: Iterable[Entry],
    out_path: str,
    *,
    keep_mtime: bool = False,
    keep_owner: bool = False,
) -> Layer:
    """Write a reproducible gzipped tar of ``entries`` to ``out_path``.

    ``keep_mtime``/``keep_owner`` keep the source files' values (a base rootfs whose
    stdlib .pyc files are timestamp-based needs its mtimes); otherwise mtime is 0 and the
    owner is the entry's. Device nodes, sockets and FIFOs are skipped (not in images).
    """
    tmp = out_path + ".partial"
    with open(tmp, "wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=GZIP_LEVEL
        ) as gz:  # type: ignore[arg-type]
            plain = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for entry in sorted(entries, key=lambda e: e.name):
                    _add(tar, entry, keep_mtime=keep_mtime, keep_owner=keep_owner)
    os.replace(tmp, out_path)
    return Layer(
        path=out_path,
        digest=compressed.digest,
        size=compressed.size,
        media_type=MEDIA_LAYER_GZIP,
        diff_id=plain.digest,
    )


def _add(tar: tarfile.TarFile, entry: Entry, *, keep_mtime: bool, keep_owner: bool) -> None:
    info = tarfile.TarInfo(entry.name)
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = 0
    if entry.source is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    st = os.lstat(entry.source)
    if keep_mtime:
        info.mtime = int(st.st_mtime)
    if keep_owner:
        info.uid, info.gid = st.st_uid, st.st_gid
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = stat.S_IMODE(st.st_mode) if keep_owner else 0o755
        tar.addfile(info)
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(entry.source)
        info.mode = 0o777
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        if keep_owner:
            info.mode = stat.S_IMODE(st.st_mode)
        else:
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
        with open(entry.source, "rb") as f:
            tar.addfile(info, f)
    # device nodes, sockets, FIFOs: skipped on purpose


def canonical_json(document: dict[str, Any]) -> bytes:
    """The bytes pushed for a config/manifest/index: sorted keys, no spaces."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_config(
    base: dict[str, Any],
    *,
    added: list[tuple[str, Layer]],
    env: dict[str, str],
    entrypoint: list[str],
    user: str,
    workdir: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    """The base image's config with our layers, env (ours win), entrypoint, user, labels."""
    base_cfg = dict(base.get("config") or {})
    merged_env: dict[str, str] = {}
    for item in base_cfg.get("Env") or []:
        name, _, value = item.partition("=")
        merged_env[name] = value
    merged_env.update(env)
    config = {
        key: value
        for key, value in base_cfg.items()
        if key not in {"Env", "Entrypoint", "Cmd", "User", "WorkingDir", "Labels"}
    }
    config.update(
        {
            "Env": [f"{k}={v}" for k, v in merged_env.items()],
            "Entrypoint": list(entrypoint),
            "User": user,
            "WorkingDir": workdir,
            "Labels": {**(base_cfg.get("Labels") or {}), **labels},
        }
    )
    history = list(base.get("history") or [])
    history += [
        {"created": EPOCH, "created_by": f"covalent-ecs publish-image: {what}"} for what, _ in added
    ]
    return {
        "architecture": base.get("architecture"),
        "os": base.get("os", "linux"),
        **({"variant": base["variant"]} if base.get("variant") else {}),
        "created": EPOCH,
        "config": config,
        "rootfs": {
            "type": "layers",
            "diff_ids": list(base.get("rootfs", {}).get("diff_ids") or [])
            + [layer.diff_id for _, layer in added],
        },
        "history": history,
    }


def manifest(
    config: Blob, layers: list[dict[str, Any]], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
    }
    if annotations:
        document["annotations"] = annotations
    return document


def index(
    entries: list[tuple[str, bytes]], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """An image index over ``(platform, manifest bytes)`` pairs."""
    manifests = []
    for platform, body in entries:
        architecture, variant = PLATFORMS[platform]
        descriptor_platform = {"architecture": architecture, "os": "linux"}
        if variant:
            descriptor_platform["variant"] = variant
        manifests.append(
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": sha256_digest(body),
                "size": len(body),
                "platform": descriptor_platform,
            }
        )
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
    }
    if annotations:
        document["annotations"] = annotations
    return document
