"""Image references: the one parser, and the default runner image's URI. Pure.

``[registry/]repository[:tag][@sha256:<digest>]``, read the way Docker reads them: the
first path component is a registry when it has a '.' or a ':' or is ``localhost``;
otherwise the reference is Docker Hub's (``python:3.11`` is
``registry-1.docker.io/library/python:3.11``). An ECR registry
(``<account>.dkr.ecr.<region>.amazonaws.com[.cn]``) also gives its account and region.

Used by config validation (``container_image_uri``), the registry client and publishing
(the base image), ``covalent-ecs doctor`` and the sandbox's agent (can it "pull" it?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from covalent_ecs_runtime import contract

from ..errors import ConfigError

DOCKER_HUB = "registry-1.docker.io"

# Docker's grammar, simplified: lowercase path components separated by '.', '_', '__'
# or dashes; a tag of at most 128 word characters, '.' and '-'.
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d+)?$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
_EXPECTED = "expected an image reference such as 'repo/name:tag' or 'host:port/repo@sha256:<64 hex>'"


@dataclass(frozen=True)
class ImageRef:
    """``registry/repository[:tag][@digest]``; ``account`` / ``region`` for ECR, else None."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse ``text``; raise ConfigError naming it and what is expected."""
        ref = text.strip()
        rest, has_digest, digest = ref.partition("@")
        if "/" in digest:  # "user:password@host/repo": credentials, never to be printed
            raise ConfigError(
                f"image reference '***@{digest}': credentials in an image reference are not "
                "accepted; log in with `docker login`/`skopeo login` (~/.docker/config.json)"
            )
        first, _, remainder = rest.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:  # Docker Hub shorthand: python:3.11-slim -> library/python
            registry, path = DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
        repository, has_tag, tag = path.partition(":")
        if not (
            _HOST.match(registry)
            and _REPOSITORY.match(repository)
            and (not has_tag or _TAG.match(tag))
        ):
            raise ConfigError(f"image reference {text!r} is not valid: {_EXPECTED}")
        if has_digest and not _DIGEST.match(digest):
            raise ConfigError(
                f"image reference {text!r} has a malformed digest {digest!r}: "
                "expected sha256: and 64 lowercase hex digits"
            )
        return cls(registry, repository, tag or (None if digest else "latest"), digest or None)

    @property
    def reference(self) -> str:
        """What a registry's manifest endpoint takes: the digest if any, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def account(self) -> str | None:
        match = _ECR_HOST.match(self.registry)
        return match["account"] if match else None

    @property
    def region(self) -> str | None:
        match = _ECR_HOST.match(self.registry)
        return match["region"] if match else None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_ecr_image(image: str) -> ImageRef | None:
    """The reference when ``image`` is a valid ECR image URI; None for anything else."""
    try:
        ref = ImageRef.parse(image)
    except ConfigError:
        return None
    return ref if ref.account else None


def default_runner_image(registry_host: str, repository: str) -> str:
    """This client version's runner image in ``repository`` of ``registry_host``: what a
    task runs when ``container_image_uri`` is empty (``covalent-ecs publish-image`` pushes it)."""
    return f"{registry_host}/{repository}:{contract.runner_image_tag()}"
