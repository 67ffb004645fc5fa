"""Decide whether the local agent can "pull" a task's image.

The sandbox has no registry: an image reference only has to resolve. An ECR URI
(``<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>`` or ``...@sha256:<digest>``)
must name a repository and an image (tag or digest) that exist in moto's ECR backend,
as a real pull would need; any other reference (Docker Hub, public.ecr.aws, ...) is
treated as pullable. How a pulled image's container then runs is up to the agent's
process starters (starters.py).
"""

from __future__ import annotations

from moto.backends import get_backend

from ..image.refs import parse_ecr_image


def image_pull_error(image: str) -> str | None:
    """``None`` if ``image`` can be pulled, else the ECS ``CannotPullContainerError`` text."""
    ref = parse_ecr_image(image)
    if ref is None:
        return None
    backend = get_backend("ecr")[ref.account][ref.region]
    prefix = (
        "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {image}"
    )
    repository = backend.repositories.get(ref.repository)
    if repository is None:
        return f"{prefix}: repository {ref.repository} not found in {ref.account}/{ref.region}"
    for candidate in list(repository.images):
        if ref.digest and candidate.get_image_digest() == ref.digest:
            return None
        if not ref.digest and ref.tag in candidate.image_tags:
            return None
    return f"{prefix}: {image}: not found"
