"""publish-image's ECR side against the sandbox's ECR API (moto has no registry to push
to, so these stop at the login: repository, scan on push, token, registry host)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from covalent_ecs_executor import aws
from covalent_ecs_executor.config import build_config
from covalent_ecs_executor.errors import AWSSetupError
from covalent_ecs_executor.image import publish

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


def test_publish_image_to_ecr_without_credentials_fails_with_what_to_set(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [str(Path(sys.executable).with_name("covalent-ecs")), "publish-image"],
        capture_output=True,
        text=True,
        timeout=120,
        # No credentials anywhere (tests/conftest.py empties the AWS files and env), and
        # a covalent.conf of its own (the e2e tests write the sandbox's into the shared one).
        env={
            **os.environ,
            "AWS_DEFAULT_REGION": "us-east-1",
            "COVALENT_CONFIG_DIR": str(tmp_path / "covalent-config"),
        },
    )
    assert result.returncode == 1
    assert "could not look up the ECR repository: no AWS credentials found" in result.stderr
    assert result.stdout == ""


def test_ecr_target_knows_when_the_repositorys_tags_are_immutable(fresh_sandbox: Any) -> None:
    config = build_config(fresh_sandbox.executor_config, {})
    ecr = fresh_sandbox.client("ecr", internal=True)
    ecr.create_repository(repositoryName="runner-immutable", imageTagMutability="IMMUTABLE")
    immutable = publish.ecr_target(aws.clients_for(config), "runner-immutable", print)
    created = publish.ecr_target(aws.clients_for(config), "runner-created", print)
    try:
        assert immutable.immutable_tags is True
        assert created.immutable_tags is False  # created by publish: ECR's default, MUTABLE
    finally:
        immutable.client.close()
        created.client.close()
