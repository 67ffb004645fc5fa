"""boto3 clients pointed at a sandbox, with its fake credentials.

``internal=True`` marks a client's User-Agent with ``covalent-ecs-sandbox`` so the
sandbox does not count its calls (seed, tooling). S3 uses path-style addressing so
requests look the same whatever host name the endpoint uses.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from .calls import SANDBOX_USER_AGENT_MARKER
from .seed import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY


def make_client(service: str, endpoint_url: str, *, internal: bool = False) -> Any:
    config = Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 3},
        user_agent_extra=SANDBOX_USER_AGENT_MARKER if internal else None,
    )
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=config,
    )
