"""The runner image's own layers: dependencies (per architecture) and the runner package.

* **dependencies**: ``pip install --target --no-deps --platform ... --only-binary :all:``
  of ``RUNNER_DISTRIBUTIONS`` at the versions installed on this client (so the image's
  cloudpickle, covalent and boto3 are the client's), under ``DEPS_DIR`` in the image.
  covalent is an sdist only on PyPI, so it is built into a (pure Python) wheel first and
  found with ``--find-links``. What the runner never imports is removed (covalent's UI,
  dispatcher and migrations, tests, console scripts), then every module is compiled with
  ``--invalidation-mode unchecked-hash`` and the image path as the .pyc's source path:
  pip's own .pyc would embed its random temp dir (docs/facts.md, "Building the runner
  image without Docker"). Shipping .pyc cuts the runner's import time from ~2 s to
  ~0.4 s.
* **runner**: the ``covalent_ecs_runtime`` package (sources + .pyc) under ``RUNNER_DIR``,
  and the runner user's home directory.

Built layers are cached by a key of everything that goes into them, so a warm publish
does not run pip at all.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from covalent_ecs_runtime import contract

from ..errors import ECSExecutorError
from . import oci

DEPS_DIR = "/opt/covalent-ecs/site-packages"
RUNNER_DIR = "/opt/covalent-ecs/runner"
RUNNER_UID = 65532  # the conventional "nonroot" id; no passwd entry needed
RUNNER_HOME = "/home/runner"

# What `python -m covalent_ecs_runtime run` imports, directly or by unpickling a task
# (covalent.executor.utils.wrappers pulls in all of `import covalent`): found by
# importing that chain in a clean interpreter with only these on sys.path, then
# removing each package in turn. Jinja2/MarkupSafe are only used by covalent's server.
RUNNER_DISTRIBUTIONS = (
    "covalent",
    "cloudpickle",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
    "requests",
    "certifi",
    "charset-normalizer",
    "idna",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "typing_extensions",
    "dask",
    "distributed",
    "click",
    "locket",
    "toolz",
    "PyYAML",
    "msgpack",
    "psutil",
    "sortedcontainers",
    "tblib",
    "tornado",
    "zict",
    "packaging",
    "importlib_metadata",
    "zipp",
    "networkx",
    "aiofiles",
    "filelock",
    "furl",
    "orderedmultidict",
    "lazy-importer",
    "toml",
    "watchdog",
)
# Removed from the dependency layer: never imported by the runner.
PRUNED_TOP_LEVEL = ("covalent_ui", "covalent_dispatcher", "covalent_migrations", "bin")
PRUNED_DIR_NAMES = ("tests", "__pycache__")
# Bump when the layer recipe changes, so cached layers are rebuilt.
RECIPE_VERSION = "1"

# Fargate platform -> the CPU name in wheel tags. pip does not widen a custom
# ``--platform`` to older manylinux tags, so every tag up to glibc 2.36 (Debian
# bookworm, the python:3.X-slim bases) is listed: ``pip_platform_tags``.
WHEEL_ARCHITECTURES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
MAX_GLIBC_MINOR = 36


def pip_platform_tags(platform: str) -> list[str]:
    arch = WHEEL_ARCHITECTURES[platform]
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(MAX_GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


Report = Callable[[str], None]


class LayerBuildError(ECSExecutorError):
    """pip or compileall failed while building a layer."""


def pinned_requirements() -> list[str]:
    """``name==version`` of each runner distribution, as installed on this client."""
    pins = []
    for name in dict.fromkeys(RUNNER_DISTRIBUTIONS):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError as err:
            raise LayerBuildError(
                f"{name} is not installed here, so its version for the runner image is "
                "unknown: reinstall covalent-ecs-executor (pip install covalent-ecs-executor)"
            ) from err
        pins.append(f"{name}=={version}")
    return pins


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise LayerBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _compile(tree: str, image_path: str) -> None:
    """Reproducible .pyc: content-hash based, source paths as seen in the image."""
    _run(
        [
            sys.executable, "-m", "compileall", "-q", "-j0",
            "--invalidation-mode", "unchecked-hash",
            "-s", tree, "-p", image_path, tree,
        ],
        "compiling .pyc files",
    )  # fmt: skip


def _prune(tree: str) -> None:
    for name in PRUNED_TOP_LEVEL:
        shutil.rmtree(os.path.join(tree, name), ignore_errors=True)
    for root, dirs, _files in os.walk(tree):
        for name in list(dirs):
            if name in PRUNED_DIR_NAMES:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                dirs.remove(name)


def _covalent_wheel(cache_dir: str, pin: str) -> str:
    """A folder holding covalent's wheel (built once from its sdist, then cached)."""
    wheels = os.path.join(cache_dir, "wheels")
    os.makedirs(wheels, exist_ok=True)
    version = pin.split("==", 1)[1]
    if not any(f.startswith(f"covalent-{version}-") for f in os.listdir(wheels)):
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, pin],
            f"building the {pin} wheel (it is published as an sdist only)",
        )
    return wheels


def _blob_path(cache_dir: str, digest: str) -> str:
    return os.path.join(cache_dir, "blobs", digest.replace(":", "/"))


def _cached_layer(cache_dir: str, key: str) -> oci.Layer | None:
    record = os.path.join(cache_dir, "layers", f"{key}.json")
    try:
        with open(record) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    path = _blob_path(cache_dir, data["digest"])
    if not os.path.exists(path) or os.path.getsize(path) != data["size"]:
        return None
    return oci.Layer(path, data["digest"], data["size"], oci.MEDIA_LAYER_GZIP, data["diff_id"])


def _store_layer(cache_dir: str, key: str, tmp_path: str, layer: oci.Layer) -> oci.Layer:
    path = _blob_path(cache_dir, layer.digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.replace(tmp_path, path)
    os.makedirs(os.path.join(cache_dir, "layers"), exist_ok=True)
    with open(os.path.join(cache_dir, "layers", f"{key}.json"), "w") as f:
        json.dump({"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id}, f)
    return oci.Layer(path, layer.digest, layer.size, layer.media_type, layer.diff_id)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def dependency_layer(platform: str, cache_dir: str, report: Report) -> oci.Layer:
    """The dependency layer for ``platform`` (built, or taken from the cache)."""
    pins = pinned_requirements()
    python = contract.python_minor()
    key = _key("deps", RECIPE_VERSION, platform, python, pins)
    cached = _cached_layer(cache_dir, key)
    if cached:
        report(f"dependencies for {platform}: cached layer {cached.digest[:19]}")
        return cached
    report(f"dependencies for {platform}: pip install {len(pins)} packages (Python {python})")
    covalent_pin = next(p for p in pins if p.startswith("covalent=="))
    with tempfile.TemporaryDirectory(prefix="covalent-ecs-deps-", dir=cache_dir) as work:
        target = os.path.join(work, "site-packages")
        _run(
            [
                sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "--no-deps", "--no-compile", "--target", target,
                *(arg for tag in pip_platform_tags(platform) for arg in ("--platform", tag)),
                "--implementation", "cp",
                "--python-version", python, "--only-binary", ":all:",
                "--find-links", _covalent_wheel(cache_dir, covalent_pin), *pins,
            ],
            f"pip install for {platform}",
        )  # fmt: skip
        _prune(target)
        _compile(target, DEPS_DIR)
        tmp = os.path.join(work, "layer.tar.gz")
        layer = oci.write_layer(oci.tree_entries(target, DEPS_DIR), tmp)
        return _store_layer(cache_dir, key, tmp, layer)


def runner_layer(cache_dir: str) -> oci.Layer:
    """``covalent_ecs_runtime`` (from this installation) and the runner's home directory."""
    package = Path(contract.__file__).parent
    with tempfile.TemporaryDirectory(prefix="covalent-ecs-runner-", dir=cache_dir) as work:
        tree = os.path.join(work, "runner")
        target = os.path.join(tree, contract.RUNTIME_MODULE)
        os.makedirs(target)
        for source in sorted(package.glob("*.py")):
            shutil.copyfile(source, os.path.join(target, source.name))
        _compile(tree, RUNNER_DIR)
        entries = oci.tree_entries(tree, RUNNER_DIR)
        entries.append(oci.Entry("home", None))
        entries.append(oci.Entry(RUNNER_HOME.strip("/"), None, RUNNER_UID, RUNNER_UID))
        tmp = os.path.join(work, "layer.tar.gz")
        layer = oci.write_layer(entries, tmp)
        return _store_layer(cache_dir, _key("runner", layer.diff_id), tmp, layer)
