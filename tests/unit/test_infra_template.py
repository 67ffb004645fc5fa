"""The CloudFormation template: valid for CloudFormation (cfn-lint), outputs that are
config keys, least-privilege roles, and the properties moto ignores (so the sandbox
tests cannot see them): capacity providers, public access block, lifecycle rule."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest

from covalent_ecs_executor.config import CONFIG_KEYS
from covalent_ecs_executor.errors import ConfigError
from covalent_ecs_executor.setup import iampolicy, infra
from covalent_ecs_executor.staging import STAGING_ROOT

RESOURCES = infra.template()["Resources"]


def test_template_passes_cfn_lint(tmp_path):
    from cfnlint.api import lint_file

    path = Path(str(resources.files("covalent_ecs_executor.setup").joinpath("templates", infra.TEMPLATE_FILE)))
    assert lint_file(path) == []
    # ... and cfn-lint does look: a wrong property type in a copy is reported.
    broken = tmp_path / "broken.yaml"
    broken.write_text(infra.template_body().replace("ScanOnPush: true", "ScanOnPush: sometimes"))
    assert [match.rule.id for match in lint_file(broken)] == ["E3012"]


def test_template_command_prints_the_packaged_template():
    from typer.testing import CliRunner

    from covalent_ecs_executor.cli import app

    result = CliRunner().invoke(app, ["infra", "template"])
    assert result.exit_code == 0
    assert result.stdout == infra.template_body()


def test_outputs_map_one_to_one_to_config_keys():
    outputs = infra.template()["Outputs"]
    mapped = {key: infra.output_config_key(key) for key in outputs}
    extra = {key for key, value in mapped.items() if value is None}
    assert extra == set(infra.EXTRA_OUTPUTS)
    keys = [value for value in mapped.values() if value]
    assert len(keys) == len(set(keys))
    assert set(keys) <= set(CONFIG_KEYS)
    # Every resource the executor names in its config comes from the stack.
    assert set(keys) == {
        "region", "s3_bucket_name", "ecs_cluster_name", "ecs_task_log_group_name", "ecr_repo_name",
        "ecs_task_execution_role_name", "ecs_task_role_name", "ecs_task_subnet_id",
        "ecs_task_security_group_id", "assign_public_ip",
    }
    for key, output in outputs.items():
        if mapped[key]:
            assert output["Description"].startswith(mapped[key])


def test_config_from_outputs_converts_assign_public_ip_and_ignores_extras():
    config = infra.config_from_outputs([
        {"OutputKey": "AssignPublicIp", "OutputValue": "false"},
        {"OutputKey": "EcsClusterName", "OutputValue": "c"},
        {"OutputKey": "ClientPolicyArn", "OutputValue": "arn:aws:iam::1:policy/p"},
    ])
    assert config == {"assign_public_ip": False, "ecs_cluster_name": "c"}


def test_bucket_is_encrypted_private_and_expires_only_staging_objects():
    bucket = RESOURCES["StagingBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Prefix"] == f"{STAGING_ROOT}/"
    assert lifecycle["ExpirationInDays"] == "StagingExpirationDays"  # the !Ref


def test_cluster_offers_fargate_and_spot_and_the_repository_scans_on_push():
    assert RESOURCES["Cluster"]["Properties"]["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert RESOURCES["RunnerRepository"]["Properties"]["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert RESOURCES["TaskLogGroup"]["Properties"]["RetentionInDays"] == "LogRetentionDays"


def test_task_role_reaches_only_the_staging_prefix_and_braket_is_conditional():
    (policy,) = RESOURCES["TaskRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    staging = next(s for s in statements if isinstance(s, dict) and s["Sid"] == "ReadPayloadWriteResult")
    assert staging["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert staging["Resource"].endswith(f"/{STAGING_ROOT}/*")
    # braket:* only inside `!If [AllowBraket, ..., !Ref AWS::NoValue]`, off by default.
    (conditional,) = [s for s in statements if isinstance(s, list)]
    assert conditional[0] == "AllowBraket" and conditional[1]["Action"] == "braket:*"
    assert infra.template()["Parameters"]["AllowBraket"]["Default"] == "false"
    assert "braket" not in str([s for s in statements if isinstance(s, dict)])


def test_client_policy_grants_what_the_readme_lists():
    statements = RESOURCES["ClientPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        action
        for statement in statements
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert {
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "ecs:RunTask", "ecs:DescribeTasks",
        "ecs:StopTask", "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition",
        "ecs:TagResource", "iam:PassRole", "logs:GetLogEvents", "sts:GetCallerIdentity",
    } <= actions
    assert not any(action.endswith(":*") or action == "*" for action in actions)


@pytest.mark.parametrize("command", sorted(iampolicy.COMMAND_NEEDS))
def test_client_policy_allows_what_report_ps_stop_and_logs_call(command):
    # The template's intrinsic functions, as the loader flattens them, filled in.
    names = {"partition": "aws", "region": "us-east-1", "account": "123456789012",
             "bucket": "b", "cluster": "covalent-ecs", "log_group": "/covalent-ecs/covalent-ecs/tasks"}
    text = str(RESOURCES["ClientPolicy"]["Properties"]["PolicyDocument"])
    for placeholder, value in (
        ("${StagingBucket.Arn}", "arn:aws:s3:::b"), ("StagingBucket.Arn", "arn:aws:s3:::b"),
        ("${AWS::Partition}", "aws"), ("${AWS::Region}", "us-east-1"),
        ("${AWS::AccountId}", "123456789012"), ("${Cluster}", "covalent-ecs"),
        ("${TaskLogGroup}", names["log_group"]),
    ):
        text = text.replace(placeholder, value)
    document = ast.literal_eval(text)
    assert iampolicy.missing_actions([document], iampolicy.command_needs(command, **names)) == []
    # ListTasks names no task: it is held to the stack's cluster by a condition.
    (listing,) = [s for s in document["Statement"] if s.get("Action") == "ecs:ListTasks"]
    assert listing["Condition"] == {"ArnEquals": {"ecs:cluster": "Cluster.Arn"}}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["LogRetentionDays=2"], "choose one of"),
        (["Nope=1"], "unknown parameter 'Nope'"),
        (["StagingExpirationDays=x"], "expected a number"),
        (["RepositoryName=Upper"], "must match"),
        (["BucketName"], "expected Name=Value"),
        (["CreateNetwork=false", "ExistingSubnetId=subnet-0123abcd"], "ExistingSecurityGroupId"),
    ],
)
def test_bad_parameters_are_named(pairs, message):
    with pytest.raises(ConfigError, match=message):
        infra.parse_parameters(pairs)


def test_good_parameters_pass_through():
    pairs = ["CreateNetwork=false", "ExistingSubnetId=subnet-0123abcd", "ExistingSecurityGroupId=sg-0123abcd"]
    assert infra.parse_parameters(pairs)["ExistingSubnetId"] == "subnet-0123abcd"
