"""Fixtures for publishing tests: real registries on 127.0.0.1 and base images built here.

No public registry is reachable from tests, so they seed a loopback ``docker-registry``
(Debian's registry 2.8, started here) with base images they make themselves:

* ``synthetic_base``: a tiny two-platform base (a few files, no Python) for fast tests
  of the protocol, layers and digests;
* ``debian_base``: a real minimal Debian bookworm root file system with Python 3.11
  (``debootstrap --variant=minbase``), single-platform, for the tests that run the
  published image. The rootfs layer is cached between runs in ``CACHE_DIR`` (building it
  takes ~40 s on a fresh machine; needs root and network access to the Debian mirror).

pip's downloads are cached in ``CACHE_DIR`` too. ``COVALENT_ECS_TESTS_CACHE`` moves it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from waiting import wait_for

from covalent_ecs_executor.image import oci
from covalent_ecs_executor.image.registry import RegistryClient
from covalent_ecs_runtime import contract

CACHE_DIR = Path(
    os.environ.get("COVALENT_ECS_TESTS_CACHE") or Path.home() / ".cache" / "covalent-ecs-tests"
)
DEBIAN_SUITE = "bookworm"  # Python 3.11, the client's minor
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_LAYER_RECIPE = "1"  # bump to rebuild the cached rootfs layer
# Left out of the Debian base: documentation and apt's caches (as python:3.X-slim does).
_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "var/cache/apt", "var/lib/apt/lists", "var/log")  # fmt: skip
USER, PASSWORD = "publisher", "correct horse battery staple"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(
            f"`{name}` is not installed: the publishing tests need the Debian package "
            f"{package} (listed in .ci/apt-packages; `apt-get install {package}`)"
        )
    return path


@dataclass
class Registry:
    """A running ``docker-registry serve`` on 127.0.0.1 with its request log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    credentials: tuple[str, str] | None = None
    repositories: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def client(self) -> RegistryClient:
        return RegistryClient(self.url, credentials=self.credentials)

    def requests(self, method: str, path_part: str) -> int:
        """How many ``method`` requests whose path contains ``path_part`` it has served."""
        pattern = re.compile(rf'"{method} [^"]*{re.escape(path_part)}')
        return len(pattern.findall(self.log_path.read_text(errors="replace")))


def start_registry(root: Path, *, htpasswd: Path | None = None) -> Registry:
    docker_registry = require_tool("docker-registry", "docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    auth = (
        f"auth:\n  htpasswd:\n    realm: covalent-ecs-tests\n    path: {htpasswd}\n"
        if htpasswd
        else ""
    )
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "http:\n  addr: 127.0.0.1:0\n" + auth
    )
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [docker_registry, "serve", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )

    def listening() -> re.Match[str] | None:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited:\n{log_path.read_text()[-2000:]}")
        return re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))

    try:
        # It is ready in ~0.05 s (docs/facts.md); 20 s only bounds a broken start.
        match = wait_for(listening, timeout_s=20, what="docker-registry to listen")
    except BaseException:  # not started: stop it, then report
        process.kill()
        process.wait(timeout=10)
        raise
    return Registry(process, int(match[1]), log_path)


def stop_registry(registry: Registry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


@pytest.fixture(scope="session")
def publish_dirs() -> Iterator[Path]:
    """A session-wide publish cache (cold at the session's start) and the pip cache."""
    work = Path(tempfile.mkdtemp(prefix="covalent-ecs-publish-tests-"))
    saved = {name: os.environ.get(name) for name in ("COVALENT_ECS_PUBLISH_CACHE", "PIP_CACHE_DIR")}
    os.environ["COVALENT_ECS_PUBLISH_CACHE"] = str(work / "publish-cache")
    os.environ["PIP_CACHE_DIR"] = str(CACHE_DIR / "pip")
    yield work
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(publish_dirs: Path) -> Iterator[Registry]:
    """An open registry (no auth) on 127.0.0.1."""
    running = start_registry(publish_dirs / "registry")
    yield running
    stop_registry(running)


@pytest.fixture(scope="session")
def auth_registry(publish_dirs: Path) -> Iterator[Registry]:
    """A registry with htpasswd Basic auth over plain HTTP (like ECR's Basic scheme)."""
    htpasswd_tool = require_tool("htpasswd", "apache2-utils")
    entry = subprocess.run(
        [htpasswd_tool, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    htpasswd = publish_dirs / "htpasswd"
    htpasswd.write_text(entry)
    running = start_registry(publish_dirs / "auth-registry", htpasswd=htpasswd)
    running.credentials = (USER, PASSWORD)
    yield running
    stop_registry(running)


def push_base_image(
    registry: Registry,
    repository: str,
    tag: str,
    layer: oci.Layer,
    *,
    platforms: list[str],
    env: dict[str, str],
    as_index: bool = True,
) -> str:
    """Push a one-layer image for ``platforms`` (an index, or a lone manifest)."""
    manifests = []
    with registry.client() as client:
        client.upload_blob(repository, layer.digest, layer.path)
        for platform in platforms:
            architecture, variant = oci.PLATFORMS[platform]
            config = {
                "architecture": architecture,
                "os": "linux",
                **({"variant": variant} if variant else {}),
                "config": {"Env": [f"{k}={v}" for k, v in env.items()], "Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                "history": [{"created": oci.EPOCH, "created_by": "covalent-ecs tests"}],
            }
            body = oci.canonical_json(config)
            config_path = Path(layer.path).with_name(f"config-{architecture}.json")
            config_path.write_bytes(body)
            config_blob = oci.Blob(
                str(config_path), oci.sha256_digest(body), len(body), oci.MEDIA_CONFIG
            )
            client.upload_blob(repository, config_blob.digest, config_blob.path)
            manifest = oci.canonical_json(oci.manifest(config_blob, [layer.descriptor()]))
            manifests.append((platform, manifest))
        if not as_index:
            ((platform, manifest),) = manifests
            return client.put_manifest(repository, tag, manifest, oci.MEDIA_MANIFEST)
        for _platform, manifest in manifests:
            client.put_manifest(
                repository, oci.sha256_digest(manifest), manifest, oci.MEDIA_MANIFEST
            )
        index = oci.canonical_json(oci.index(manifests))
        return client.put_manifest(repository, tag, index, oci.MEDIA_INDEX)


@pytest.fixture(scope="session")
def synthetic_base(registry: Registry, publish_dirs: Path) -> str:
    """``<registry>/base/synthetic:1``: linux/amd64 + linux/arm64, one tiny layer."""
    tree = publish_dirs / "synthetic-rootfs"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text('PRETTY_NAME="covalent-ecs synthetic base"\n')
    layer = oci.write_layer(oci.tree_entries(str(tree), ""), str(publish_dirs / "synthetic.tar.gz"))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION": contract.python_minor() + ".0"}
    push_base_image(registry, "base/synthetic", "1", layer, platforms=list(oci.PLATFORMS), env=env)
    push_base_image(registry, "base/amd64-only", "1", layer, platforms=["linux/amd64"], env=env)
    return f"{registry.host}/base/synthetic:1"


def debian_rootfs_layer() -> oci.Layer:
    """The cached Debian bookworm + python3 rootfs layer, built on first use."""
    cache = CACHE_DIR / f"debian-{DEBIAN_SUITE}-python3-{DEBIAN_LAYER_RECIPE}"
    record = cache / "layer.json"
    if record.exists():
        data = json.loads(record.read_text())
        path = cache / "layer.tar.gz"
        if path.exists() and path.stat().st_size == data["size"]:
            return oci.Layer(
                str(path), data["digest"], data["size"], oci.MEDIA_LAYER_GZIP, data["diff_id"]
            )
    debootstrap = require_tool("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        pytest.fail("building the Debian base image needs root (debootstrap, chroot)")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    try:
        rootfs = work / "rootfs"
        result = subprocess.run(
            [debootstrap, "--variant=minbase", "--include=python3,python-is-python3",
             DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.fail(
                f"debootstrap could not build the Debian base (exit {result.returncode}); it "
                f"needs root and access to {DEBIAN_MIRROR}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        for relative in _TRIM:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
        for mount_point in ("proc", "sys", "dev"):
            for child in (rootfs / mount_point).iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
        # Debian's stdlib .pyc are timestamp-checked: keep file times in this layer.
        layer = oci.write_layer(
            oci.tree_entries(str(rootfs), ""),
            str(work / "layer.tar.gz"),
            keep_mtime=True,
            keep_owner=True,
        )
        os.replace(layer.path, cache / "layer.tar.gz")
        record.write_text(
            json.dumps({"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id})
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return debian_rootfs_layer()


@pytest.fixture(scope="session")
def debian_base(registry: Registry) -> str:
    """``<registry>/base/debian-python:3.11``: a lone linux/amd64 manifest."""
    layer = debian_rootfs_layer()
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHON_VERSION": "3.11",
        "LANG": "C.UTF-8",
    }
    push_base_image(
        registry,
        "base/debian-python",
        "3.11",
        layer,
        platforms=["linux/amd64"],
        env=env,
        as_index=False,
    )
    return f"{registry.host}/base/debian-python:3.11"


@pytest.fixture(scope="session")
def skopeo() -> str:
    return require_tool("skopeo", "skopeo")


@pytest.fixture(scope="session")
def umoci() -> str:
    return require_tool("umoci", "umoci")
