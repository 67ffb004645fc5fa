"""``covalent-ecs publish-image``: build the runner image without Docker and push it.

Steps (each line of progress goes to ``report``):

1. **target**: ECR (``ecr.get_authorization_token`` through the executor's AWS client
   factory; the repository is created if missing, with scan on push) or any registry
   given with ``--registry``;
2. **base**: read the base image's index and, per platform, its manifest and config
   (any registry; anonymous Bearer tokens for public ones); check its Python minor is
   the client's;
3. **layers**: the base's layers, then the dependency layer of each platform and the
   runner layer (layers.py), then an image config and manifest per platform and one
   index over them (oci.py);
4. **push**: every blob is HEAD-checked first, mounted from the base's repository when
   both are on the same registry, else uploaded (base layers are fetched into the local
   cache first); manifests already there are not pushed again; the index is tagged
   ``<tag>-<12 hex digits of its digest>``, then ``<tag>``. A tag that already points
   at this index is left alone (so re-publishing into a repository with immutable tags
   works); one that points at another image is moved where the registry allows it, and
   fails with what to do where tags are immutable.

Everything that goes into the image is pinned to this client (Python minor,
cloudpickle, covalent, boto3 versions) and every layer is reproducible, so publishing
again with nothing changed uploads nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covalent_ecs_runtime import contract

from ..errors import ConfigError, ECSExecutorError
from . import layers, oci
from .refs import ImageRef
from .registry import RegistryClient, RegistryError, checked_digest, credentials_for

DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
ENV_CACHE_DIR = "COVALENT_ECS_PUBLISH_CACHE"
ENV_USERNAME = "COVALENT_ECS_REGISTRY_USERNAME"
ENV_PASSWORD = "COVALENT_ECS_REGISTRY_PASSWORD"
LABEL_PREFIX = "io.covalent-ecs"

Report = Callable[[str], None]

# OCI distribution spec tag grammar; 115 leaves room for "-<12 hex digits>".
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,114}$")
# Repository names: the OCI distribution spec's grammar, and ECR's stricter one (2-256
# characters, one separator between alphanumerics; CreateRepository's pattern).
_OCI_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_OCI_REPOSITORY_RE = re.compile(rf"^{_OCI_COMPONENT}(?:/{_OCI_COMPONENT})*$")
_ECR_REPOSITORY_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")


def default_base_image() -> str:
    """The official ``python:3.X-slim`` of this client's minor, from a registry with no login.

    public.ecr.aws mirrors Docker Hub's official images and serves them anonymously
    (Docker Hub itself rate-limits anonymous pulls).
    """
    return f"public.ecr.aws/docker/library/python:{contract.python_minor()}-slim"


def cache_dir() -> str:
    path = os.environ.get(ENV_CACHE_DIR) or os.path.expanduser("~/.cache/covalent-ecs/publish")
    os.makedirs(path, exist_ok=True)
    return path


def check_tag(tag: str) -> str:
    """``tag`` if the registry would accept it (and its digest-suffixed twin). Pure."""
    if not _TAG_RE.match(tag):
        raise ConfigError(
            f"--tag {tag!r} is not a valid tag: use letters, digits, '_', '.', '-' (not "
            "first), at most 115 characters (the digest-suffixed tag adds 13); leave "
            "--tag out for this version's runner tag"
        )
    return tag


def check_repository(repository: str, *, ecr: bool) -> str:
    """``repository`` if ECR (or any OCI registry) would accept the name. Pure."""
    if ecr and 2 <= len(repository) <= 256 and _ECR_REPOSITORY_RE.match(repository):
        return repository
    if not ecr and _OCI_REPOSITORY_RE.match(repository):
        return repository
    raise ConfigError(
        f"--repository {repository!r} is not a valid repository name: use lowercase "
        "letters and digits, with '.', '_' or '-' between them and '/' between path "
        f"parts{' (2-256 characters in ECR)' if ecr else ''}, e.g. covalent-ecs-runner"
    )


def parse_platforms(values: list[str]) -> list[str]:
    """``--platform`` values (repeated or comma-separated) -> known platforms, in order."""
    platforms: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item not in oci.PLATFORMS:
                raise ECSExecutorError(
                    f"--platform {item!r} is not supported; choose from "
                    f"{', '.join(oci.PLATFORMS)} (Fargate's X86_64 and ARM64)"
                )
            if item not in platforms:
                platforms.append(item)
    return platforms or list(DEFAULT_PLATFORMS)


@dataclass
class Target:
    client: RegistryClient
    repository: str
    # A pushed tag cannot be moved (ECR's IMMUTABLE): a tag pointing at another image
    # fails the publish with what to do, before the registry refuses it.
    immutable_tags: bool = False

    @property
    def registry(self) -> str:
        return self.client.host


@dataclass
class PlatformImage:
    platform: str
    base_digest: str
    layers: list[oci.Layer]  # base layers first; path "" until a base blob is fetched
    base_repository: str
    config: oci.Blob
    manifest: bytes

    @property
    def compressed_size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass
class PublishResult:
    # registry/repository@sha256:... : usable as container_image_uri, by docker, skopeo
    # (which refuse tag and digest together) and ECS.
    reference: str
    digest: str
    tags: list[str]
    images: list[PlatformImage]
    uploaded_blobs: int = 0
    uploaded_bytes: int = 0
    present_blobs: int = 0
    mounted_blobs: int = 0
    pushed_manifests: int = 0
    seconds: float = 0.0
    base_blobs_fetched: int = 0
    notes: list[str] = field(default_factory=list)


# -- targets ------------------------------------------------------------------------
def registry_target(registry: str, repository: str) -> Target:
    """Any registry; credentials from the env vars, else ~/.docker/config.json."""
    client = RegistryClient(registry)
    username, password = os.environ.get(ENV_USERNAME), os.environ.get(ENV_PASSWORD)
    credentials = (username, password or "") if username else credentials_for(client.host)
    if credentials:
        client.close()
        client = RegistryClient(registry, credentials=credentials)
    return Target(client, repository)


def ecr_target(clients: Any, repository: str, report: Report) -> Target:
    """ECR of the configured account/region; creates ``repository`` if it is missing."""
    from .. import aws

    ecr = clients.ecr
    mutability = "MUTABLE"
    try:
        (found,) = aws.call(
            ecr.describe_repositories, "look up the ECR repository", repositoryNames=[repository]
        )["repositories"]
        mutability = str(found.get("imageTagMutability") or "MUTABLE")
    except ECSExecutorError as err:
        if not aws.has_code(err, "RepositoryNotFoundException"):
            raise
        aws.call(
            ecr.create_repository,
            f"create the ECR repository {repository!r}",
            repositoryName=repository,
            imageScanningConfiguration={"scanOnPush": True},
        )
        report(f"created ECR repository {repository} (scan on push)")
    data = aws.call(ecr.get_authorization_token, "get an ECR login token")["authorizationData"][0]
    token = data["authorizationToken"]
    # The token is base64("AWS:<password>"), used as is in a Basic header (valid 12 h).
    base64.b64decode(token)  # a malformed token fails here, not at the first upload
    registry = data.get("proxyEndpoint") or f"https://{clients.ecr_registry()}"
    # IMMUTABLE, or IMMUTABLE_WITH_EXCLUSION (whose exclusions we do not read).
    immutable = mutability.startswith("IMMUTABLE")
    return Target(RegistryClient(registry, basic_token=token), repository, immutable_tags=immutable)


def configured_executor() -> Any:
    """The ``[executors.ecs]`` block of covalent.conf, validated (subnet etc. not needed)."""
    from ..config import build_config
    from ..setup.conffile import default_conf_path, read_executor_section

    return build_config({}, read_executor_section(default_conf_path()) or {})


# -- the base image -----------------------------------------------------------------
def _base_client(base: ImageRef, target: Target) -> RegistryClient:
    if base.registry == target.registry:
        return target.client
    return RegistryClient(base.registry, credentials=credentials_for(base.registry))


def _platform_of(descriptor: dict[str, Any]) -> str | None:
    platform = descriptor.get("platform") or {}
    for name, (architecture, _variant) in oci.PLATFORMS.items():
        if platform.get("os") == "linux" and platform.get("architecture") == architecture:
            return name
    return None


def _read_json_blob(
    client: RegistryClient, repository: str, digest: str, cache: str
) -> dict[str, Any]:
    path = _blob_path(cache, digest)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.get_blob(repository, digest, path)
    with open(path) as f:
        return json.load(f)


def _blob_path(cache: str, digest: str) -> str:
    checked_digest(digest, "a blob to cache")  # never a path outside the cache
    return os.path.join(cache, "blobs", digest.replace(":", "/"))


def resolve_base(
    client: RegistryClient, base: ImageRef, platforms: list[str], cache: str
) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """``platform -> (manifest digest, manifest, config)`` of the base image."""
    body, media_type, digest = client.get_manifest(base.repository, base.reference)
    document = json.loads(body)
    manifests: dict[str, tuple[str, dict[str, Any]]] = {}
    if media_type in oci.INDEX_TYPES:
        for descriptor in document.get("manifests") or []:
            name = _platform_of(descriptor)
            if name in platforms and name not in manifests:
                wanted = checked_digest(descriptor.get("digest"), f"the base image {base}'s index")
                sub_body, _, sub_digest = client.get_manifest(base.repository, wanted)
                manifests[name] = (sub_digest, json.loads(sub_body))
        available = sorted({p for d in document.get("manifests") or [] if (p := _platform_of(d))})
    else:
        config_digest = checked_digest(
            (document.get("config") or {}).get("digest"), f"the base image {base}'s manifest"
        )
        config = _read_json_blob(client, base.repository, config_digest, cache)
        name = f"{config.get('os', 'linux')}/{config.get('architecture')}"
        available = [name]
        if name in platforms:
            manifests[name] = (digest, document)
    missing = [p for p in platforms if p not in manifests]
    if missing:
        raise RegistryError(
            f"the base image {base} has no {', '.join(missing)} image (it has: "
            f"{', '.join(available) or 'none'}). Choose a base image for every platform, or "
            f"publish only {', '.join(available) or 'other platforms'} with --platform."
        )
    resolved = {}
    for name in platforms:
        manifest_digest, manifest = manifests[name]
        where = f"the base image {base}'s {name} manifest"
        for layer in manifest.get("layers") or []:
            checked_digest(layer.get("digest"), where)
        config_digest = checked_digest((manifest.get("config") or {}).get("digest"), where)
        config = _read_json_blob(client, base.repository, config_digest, cache)
        resolved[name] = (manifest_digest, manifest, config)
    return resolved


def _check_python(base: ImageRef, config: dict[str, Any], report: Report) -> None:
    """The base's Python must be the client's minor: cloudpickle is not portable across."""
    env = dict(item.partition("=")[::2] for item in (config.get("config") or {}).get("Env") or [])
    version = env.get("PYTHON_VERSION")
    wanted = contract.python_minor()
    if not version:
        report(
            f"note: {base} does not say its Python version (no PYTHON_VERSION in its env); "
            f"it must be Python {wanted} with `python` on PATH"
        )
        return
    if ".".join(version.split(".")[:2]) != wanted:
        raise ECSExecutorError(
            f"the base image {base} has Python {version}, this client runs Python {wanted}: "
            f"tasks pickled here cannot be loaded there. Use a python:{wanted} base image "
            "(--base-image) or publish from a client on that Python."
        )


# -- building -----------------------------------------------------------------------
def _labels() -> dict[str, str]:
    import importlib.metadata

    versions = contract.runtime_versions()
    return {
        "org.opencontainers.image.title": "covalent-ecs-runner",
        "org.opencontainers.image.version": contract.RUNNER_VERSION,
        f"{LABEL_PREFIX}.python": versions["python"],
        f"{LABEL_PREFIX}.cloudpickle": versions["cloudpickle"],
        f"{LABEL_PREFIX}.runner": versions["runner"],
        f"{LABEL_PREFIX}.covalent": importlib.metadata.version("covalent"),
        f"{LABEL_PREFIX}.boto3": importlib.metadata.version("boto3"),
    }


def image_environment() -> dict[str, str]:
    return {
        "HOME": layers.RUNNER_HOME,  # `import covalent` writes its config under $HOME
        "PYTHONPATH": f"{layers.RUNNER_DIR}:{layers.DEPS_DIR}",
        "PYTHONDONTWRITEBYTECODE": "1",  # .pyc are shipped; the user cannot write there
        "PYTHONUNBUFFERED": "1",  # output reaches CloudWatch as it is written
    }


def build_images(
    base: ImageRef,
    resolved: dict[str, tuple[str, dict[str, Any], dict[str, Any]]],
    cache: str,
    report: Report,
) -> list[PlatformImage]:
    runner = layers.runner_layer(cache)
    images = []
    for platform, (base_digest, base_manifest, base_config) in resolved.items():
        deps = layers.dependency_layer(platform, cache, report)
        base_layers = [
            oci.Layer(
                path=_blob_path(cache, d["digest"]),
                digest=d["digest"],
                size=d["size"],
                # Docker's gzip layer type is the same bytes as OCI's.
                media_type=oci.MEDIA_LAYER_GZIP
                if d["mediaType"] == oci.DOCKER_LAYER_GZIP
                else d["mediaType"],
            )
            for d in base_manifest["layers"]
        ]
        labels = _labels() | {
            "org.opencontainers.image.base.name": str(base),
            "org.opencontainers.image.base.digest": base_digest,
        }
        config_doc = oci.image_config(
            base_config,
            added=[("dependencies", deps), ("runner", runner)],
            env=image_environment(),
            entrypoint=contract.ENTRY_POINT,
            user=f"{layers.RUNNER_UID}:{layers.RUNNER_UID}",
            workdir=layers.RUNNER_HOME,
            labels=labels,
        )
        config_bytes = oci.canonical_json(config_doc)
        config_digest = oci.sha256_digest(config_bytes)
        config_path = _blob_path(cache, config_digest)
        os.makedirs(os.path.dirname(config_path), exist_ok=True)
        with open(config_path, "wb") as f:
            f.write(config_bytes)
        config = oci.Blob(config_path, config_digest, len(config_bytes), oci.MEDIA_CONFIG)
        all_layers = [*base_layers, deps, runner]
        manifest = oci.canonical_json(
            oci.manifest(config, [layer.descriptor() for layer in all_layers])
        )
        images.append(
            PlatformImage(platform, base_digest, all_layers, base.repository, config, manifest)
        )
    return images


# -- pushing ------------------------------------------------------------------------
def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _push_blobs(
    target: Target,
    base_client: RegistryClient,
    images: list[PlatformImage],
    result: PublishResult,
    report: Report,
) -> None:
    seen: set[str] = set()
    same_registry = base_client is target.client
    for image in images:
        arch = image.platform.split("/")[1]
        base_count = len(image.layers) - 2
        blobs: list[tuple[str, oci.Blob]] = [
            *((f"base layer {i + 1}", layer) for i, layer in enumerate(image.layers[:base_count])),
            ("dependencies", image.layers[-2]),
            ("runner", image.layers[-1]),
            ("config", image.config),
        ]
        for what, blob in blobs:
            if blob.digest in seen:
                continue
            seen.add(blob.digest)
            label = f"[{arch}] {what} {blob.digest[7:19]} {_mb(blob.size)}"
            if target.client.blob_exists(target.repository, blob.digest):
                result.present_blobs += 1
                report(f"{label}: already in {target.repository}")
                continue
            is_base = what.startswith("base")
            mountable = is_base and same_registry and image.base_repository != target.repository
            if mountable and target.client.mount_blob(
                target.repository, blob.digest, image.base_repository
            ):
                result.mounted_blobs += 1
                report(f"{label}: mounted from {image.base_repository}")
                continue
            if is_base and not os.path.exists(blob.path):
                os.makedirs(os.path.dirname(blob.path), exist_ok=True)
                started = time.monotonic()
                base_client.get_blob(image.base_repository, blob.digest, blob.path)
                result.base_blobs_fetched += 1
                report(
                    f"{label}: fetched from the base registry in {time.monotonic() - started:.1f} s"
                )
            started = time.monotonic()
            target.client.upload_blob(target.repository, blob.digest, blob.path)
            seconds = max(time.monotonic() - started, 1e-6)
            result.uploaded_blobs += 1
            result.uploaded_bytes += blob.size
            report(f"{label}: uploaded in {seconds:.2f} s ({_mb(int(blob.size / seconds))}/s)")


def _push_manifests(
    target: Target, images: list[PlatformImage], tag: str, result: PublishResult, report: Report
) -> tuple[str, list[str]]:
    client, repository = target.client, target.repository
    for image in images:
        digest = oci.sha256_digest(image.manifest)
        if client.manifest_digest(repository, digest) == digest:
            continue
        client.put_manifest(repository, digest, image.manifest, oci.MEDIA_MANIFEST)
        result.pushed_manifests += 1
    index = oci.canonical_json(oci.index([(image.platform, image.manifest) for image in images]))
    digest = oci.sha256_digest(index)
    pinned_tag = f"{tag}-{digest[7:19]}"
    # The digest-suffixed tag first: it names only this index, so it never collides,
    # and a refused version tag still leaves the image pushed and named.
    for name in (pinned_tag, tag):
        current = client.manifest_digest(repository, name)
        if current == digest:
            report(f"tag {name}: already points at {digest[:19]}")
            continue
        if current is not None and target.immutable_tags:
            raise _tag_taken(target, name, current, digest, pinned_tag)
        try:
            client.put_manifest(repository, name, index, oci.MEDIA_INDEX)
        except RegistryError as err:
            if current is None:
                raise
            raise _tag_taken(target, name, current, digest, pinned_tag, refusal=str(err)) from err
        result.pushed_manifests += 1
        report(f"tag {name} -> {digest[:19]}")
    return digest, [tag, pinned_tag]


def _tag_taken(
    target: Target, tag: str, current: str, digest: str, pinned_tag: str, refusal: str = ""
) -> RegistryError:
    where = f"{target.registry}/{target.repository}"
    why = f" ({refusal})" if refusal else " and the repository's tags are immutable"
    return RegistryError(
        f"tag {tag} in {where} already points at another image ({current[:19]}){why}; this "
        f"build is {digest[:19]}. It was pushed as {where}@{digest} (tag {pinned_tag}): set "
        "container_image_uri to that, or publish under another --tag. (The same client and "
        "base image give the same digest: a changed base image or dependency made this one.)"
    )


def publish(
    target: Target,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    platforms: list[str] | None = None,
    report: Report = print,
) -> PublishResult:
    """Build the runner image for ``platforms`` on ``base_image`` and push it to ``target``."""
    started = time.monotonic()
    tag = check_tag(contract.runner_image_tag() if tag is None else tag)
    platforms = platforms or list(DEFAULT_PLATFORMS)
    base = ImageRef.parse(base_image or default_base_image())
    cache = cache_dir()
    report(f"publishing the runner image {target.registry}/{target.repository}:{tag}")
    report(f"base image {base} for {', '.join(platforms)}")
    # Fail on credentials, access or reachability before minutes of building: a HEAD
    # with push scope is refused (401/403) exactly like an upload would be.
    target.client.blob_exists(target.repository, oci.sha256_digest(b""))
    base_client = _base_client(base, target)
    try:
        resolved = resolve_base(base_client, base, platforms, cache)
        _check_python(base, next(iter(resolved.values()))[2], report)
        images = build_images(base, resolved, cache, report)
        result = PublishResult(reference="", digest="", tags=[], images=images)
        _push_blobs(target, base_client, images, result, report)
        digest, tags = _push_manifests(target, images, tag, result, report)
    finally:
        if base_client is not target.client:
            base_client.close()
    result.digest, result.tags = digest, tags
    result.reference = f"{target.registry}/{target.repository}@{digest}"
    result.seconds = time.monotonic() - started
    for image in images:
        report(
            f"{image.platform}: {len(image.layers)} layers, {_mb(image.compressed_size)} "
            f"compressed (dependencies {_mb(image.layers[-2].size)}, runner "
            f"{_mb(image.layers[-1].size)})"
        )
    if result.uploaded_blobs == 0 and result.pushed_manifests == 0:
        report(
            f"nothing changed: {target.registry} already has every blob and manifest "
            f"({result.present_blobs} blobs checked, 0 bytes uploaded)"
        )
    else:
        report(
            f"uploaded {result.uploaded_blobs} blobs ({_mb(result.uploaded_bytes)}), "
            f"mounted {result.mounted_blobs}, {result.present_blobs} already there, "
            f"{result.pushed_manifests} manifests pushed, in {result.seconds:.1f} s"
        )
    return result
