"""publish-image's ECR side against the sandbox's ECR API (moto has no registry to push
to, so these stop at the login: repository, scan on push, token, registry host)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from covalent_ecs_executor import aws, publish
from covalent_ecs_executor.config import build_config
from covalent_ecs_executor.errors import AWSSetupError

pytestmark = pytest.mark.integration


def test_ecr_target_creates_the_repository_with_scan_on_push_and_logs_in(
    fresh_sandbox: Any,
) -> None:
    config = build_config(fresh_sandbox.executor_config, {})
    lines: list[str] = []
    target = publish.ecr_target(aws.clients_for(config), "runner-published", lines.append)
    try:
        ecr = fresh_sandbox.client("ecr", internal=True)
        (repository,) = ecr.describe_repositories(repositoryNames=["runner-published"])[
            "repositories"
        ]
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
        assert lines == ["created ECR repository runner-published (scan on push)"]
        assert target.registry.endswith(".dkr.ecr.us-east-1.amazonaws.com")
        assert target.repository == "runner-published"
        # ECR's token is base64("AWS:<password>"), sent as is in a Basic header.
        assert base64.b64decode(target.client._basic or "").startswith(b"AWS:")
        # A second publish finds the repository and does not create it again.
        again: list[str] = []
        publish.ecr_target(aws.clients_for(config), "runner-published", again.append).client.close()
        assert again == []
        assert fresh_sandbox.calls().get("ecr.CreateRepository") == 1
    finally:
        target.client.close()


def test_ecr_target_without_credentials_says_so(fresh_sandbox: Any) -> None:
    config = build_config({**fresh_sandbox.executor_config, "credentials": "", "profile": ""}, {})
    with pytest.raises(AWSSetupError, match="no AWS credentials found"):
        publish.ecr_target(aws.clients_for(config), "runner-published", print)
