"""ECR image references: ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>[:tag][@digest]``.

Shared by ``covalent-ecs doctor`` (does the configured image exist?) and the sandbox's
local agent (can it "pull" a task's image?). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def parse_ecr_image(image: str) -> EcrImage | None:
    """The parts of an ECR image URI, or None for any other image reference."""
    match = _ECR_IMAGE.match(image)
    if not match:
        return None
    tag, digest = match["tag"], match["digest"]
    return EcrImage(
        account=match["account"],
        region=match["region"],
        repository=match["repo"],
        tag=tag if tag or digest else "latest",
        digest=digest,
    )
