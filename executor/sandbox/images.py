"""Decide whether the local agent can "pull" a task's image, and how big it is.

The sandbox has no registry: an image reference only has to resolve. An ECR URI
(``<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>`` or ``...@sha256:<digest>``)
must name a repository and an image (tag or digest) that exist in moto's ECR backend,
as a real pull would need; any other reference (Docker Hub, public.ecr.aws, ...) is
treated as pullable. How a pulled image's container then runs is up to the agent's
process starters (starters.py).
"""

from __future__ import annotations

import json
from typing import Any

from moto.backends import get_backend

from ..image.refs import ImageRef, parse_ecr_image


def _find(ref: ImageRef) -> tuple[Any, Any]:
    """(repository or None, image or None) in moto's ECR backend."""
    repository = get_backend("ecr")[ref.account][ref.region].repositories.get(ref.repository)
    if repository is None:
        return None, None
    for candidate in list(repository.images):
        if ref.digest and candidate.get_image_digest() == ref.digest:
            return repository, candidate
        if not ref.digest and ref.tag in candidate.image_tags:
            return repository, candidate
    return repository, None


def image_pull_error(image: str) -> str | None:
    """``None`` if ``image`` can be pulled, else the ECS ``CannotPullContainerError`` text."""
    ref = parse_ecr_image(image)
    if ref is None:
        return None
    repository, found = _find(ref)
    prefix = (
        "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {image}"
    )
    if repository is None:
        return f"{prefix}: repository {ref.repository} not found in {ref.account}/{ref.region}"
    if found is None:
        return f"{prefix}: {image}: not found"
    return None


def image_size_bytes(image: str) -> int | None:
    """The compressed size of an ECR image's layers (what a pull downloads), from its
    manifest in moto's ECR backend; None for other references or an image index."""
    ref = parse_ecr_image(image)
    found = _find(ref)[1] if ref is not None else None
    if found is None:
        return None
    try:
        layers = json.loads(found.image_manifest).get("layers") or []
        return sum(int(layer.get("size", 0)) for layer in layers) or None
    except (ValueError, TypeError, AttributeError):
        return None
