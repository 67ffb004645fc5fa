"""What doctor's client-permissions check judges: whose policies a caller ARN means, and
each missing action named with the commands that need it. Pure (the sandbox test is in
tests/integration/test_doctor.py)."""

from __future__ import annotations

import pytest

from covalent_ecs_executor.config import ExecutorConfig
from covalent_ecs_executor.image.refs import parse_ecr_image
from covalent_ecs_executor.setup.doctor_rules import (
    Principal,
    caller_principal,
    client_needs,
    judge_client,
)


@pytest.mark.parametrize(
    ("arn", "principal"),
    [
        ("arn:aws:iam::123456789012:user/alice", Principal("user", "alice")),
        ("arn:aws:iam::123456789012:user/team/alice", Principal("user", "alice")),
        (
            "arn:aws:sts::123456789012:assumed-role/CovalentServer/i-0abc",
            Principal("role", "CovalentServer"),
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123/alice@example.com",
            Principal("role", "AWSReservedSSO_Dev_0123"),
        ),
        (
            "arn:aws-cn:iam::123456789012:root",
            Principal("root", "the root user of account 123456789012"),
        ),
        (
            "arn:aws:sts::123456789012:federated-user/bob",
            Principal("federated", "federated user bob"),
        ),
    ],
)
def test_a_caller_arn_names_the_identity_whose_policies_apply(arn, principal):
    assert caller_principal(arn) == principal


def needs() -> dict[str, list[tuple[str, str]]]:
    config = ExecutorConfig(s3_bucket_name="staging-bucket", ecs_cluster_name="c")
    image = parse_ecr_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/runner:tag")
    return client_needs(
        config, partition="aws", region="us-east-1", account="123456789012", image=image
    )


def test_the_needs_cover_the_executor_and_every_command():
    found = needs()
    assert list(found) == [
        "the executor", "`covalent-ecs report`", "`covalent-ecs ps`", "`covalent-ecs stop`",
        "`covalent-ecs logs`",
    ]  # fmt: skip
    executor = dict(found["the executor"])
    assert executor["ecr:DescribeImages"] == "arn:aws:ecr:us-east-1:123456789012:repository/runner"
    assert executor["ecs:RunTask"].startswith(
        "arn:aws:ecs:us-east-1:123456789012:task-definition/covalent-fargate-tasks-"
    )
    passed = [resource for action, resource in found["the executor"] if action == "iam:PassRole"]
    assert len(passed) == 2 and all(r.startswith("arn:aws:iam::123456789012:role/") for r in passed)


def test_a_missing_action_is_named_once_with_every_command_that_needs_it():
    allow_all_but_list = {"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecs:ListTasks", "Resource": "*"},
    ]}  # fmt: skip
    outcome = judge_client(Principal("role", "r"), [allow_all_but_list], needs())
    assert outcome.status == "fail"
    assert outcome.detail == (
        "IAM role r may not: ecs:ListTasks (needed by `covalent-ecs ps`, `covalent-ecs stop`, "
        "`covalent-ecs logs`)"
    )
    allow_all = {"Statement": allow_all_but_list["Statement"][:1]}
    allowed = judge_client(Principal("role", "r"), [allow_all], needs())
    assert allowed.status == "ok"


def test_unreadable_policies_warn_and_name_what_was_not_verified():
    outcome = judge_client(
        Principal("root", "the root user of account 1"), None, needs(), unreadable="not in IAM"
    )
    assert outcome.status == "warn"
    assert outcome.detail.startswith(
        "the root user of account 1: not in IAM, so the executor's calls"
    )
    assert "ecs:RunTask" in outcome.detail and "ecs:ListTasks" in outcome.detail
