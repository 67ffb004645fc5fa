"""Point the original plugin's boto3 (1.24) at the sandbox, and label its calls.

Its botocore ignores ``AWS_ENDPOINT_URL`` (docs/facts.md, "The original
covalent-ecs-plugin"), and the plugin builds a new
``boto3.Session().client(...)`` for nearly every call, so the one place to reach them
all is ``boto3.session.Session.client``: ``install()`` wraps it to pass the sandbox's
``endpoint_url``, path-style S3 addressing and a ``sandbox-caller/<label>`` User-Agent
token (so the sandbox counts the plugin's client and runner calls apart). Nothing else
of the plugin's behaviour changes. Standard library + boto3 only.
"""

from __future__ import annotations

import functools
from typing import Any


def install(endpoint_url: str, label: str) -> None:
    import boto3.session
    from botocore.config import Config

    original = boto3.session.Session.client
    if getattr(original, "_sandbox_wrapped", False):
        return
    extra = Config(user_agent_extra=f"sandbox-caller/{label}", s3={"addressing_style": "path"})

    @functools.wraps(original)
    def client(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", endpoint_url)
        given = kwargs.get("config")
        kwargs["config"] = given.merge(extra) if given is not None else extra
        return original(self, *args, **kwargs)

    client._sandbox_wrapped = True  # type: ignore[attr-defined]
    boto3.session.Session.client = client  # type: ignore[method-assign]
