"""The CloudFormation template: valid for CloudFormation (cfn-lint), outputs that are
config keys, least-privilege roles, and the properties moto ignores (so the sandbox
tests cannot see them): capacity providers, public access block, lifecycle rule."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest

from covalent_ecs_executor import taskdefs
from covalent_ecs_executor.config import CONFIG_KEYS, ExecutorConfig
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
        "ecs_task_security_group_id", "assign_public_ip", "ecs_task_family_name",
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


def _statements(resource: str) -> list:
    properties = RESOURCES[resource]["Properties"]
    if "PolicyDocument" in properties:
        return properties["PolicyDocument"]["Statement"]
    (policy,) = properties["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _conditional(statements: list, condition: str) -> list[dict]:
    """The statements inside ``!If [condition, statement, !Ref AWS::NoValue]``."""
    found = [s[1] for s in statements if isinstance(s, list) and s[0] == condition]
    assert all(s[2] == "AWS::NoValue" for s in statements if isinstance(s, list) and s[0] == condition)
    return found


def _listed(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def test_task_role_may_get_and_put_under_the_staging_prefix_and_not_list_the_bucket():
    statements = _statements("TaskRole")
    unconditional = [s for s in statements if isinstance(s, dict)]
    # One statement: GetObject/PutObject on the staging prefix. No ListBucket, so a task
    # cannot find other tasks' keys (it still needs to know them to touch them).
    assert unconditional == [
        {
            "Sid": "ReadPayloadWriteResult",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "${StagingBucket.Arn}/" + f"{STAGING_ROOT}/*",
        }
    ]
    actions = {a for s in statements for a in _listed((s if isinstance(s, dict) else s[1])["Action"])}
    assert "s3:ListBucket" not in {a for s in unconditional for a in _listed(s["Action"])}
    assert not any(a.endswith(":*") for a in actions)


def test_braket_grants_its_task_actions_and_its_results_bucket_only_when_asked():
    assert infra.template()["Parameters"]["AllowBraket"]["Default"] == "false"
    quantum, results = _conditional(_statements("TaskRole"), "AllowBraket")
    assert quantum["Action"] == [
        "braket:CreateQuantumTask", "braket:GetQuantumTask", "braket:CancelQuantumTask",
        "braket:SearchQuantumTasks", "braket:GetDevice", "braket:SearchDevices",
    ]
    assert results["Action"] == ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    bucket = "arn:${AWS::Partition}:s3:::amazon-braket-${AWS::Region}-${AWS::AccountId}"
    assert results["Resource"] == [bucket, f"{bucket}/*"]
    assert results["Condition"] == {"StringEquals": {"aws:ResourceAccount": "AWS::AccountId"}}


def test_execution_role_reads_exactly_the_secret_arns_given_and_none_by_default():
    parameter = infra.template()["Parameters"]["SecretArns"]
    assert parameter["Type"] == "CommaDelimitedList" and parameter["Default"] == ""
    (secrets,) = _conditional(_statements("TaskExecutionRole"), "HasSecrets")
    assert secrets["Action"] == ["secretsmanager:GetSecretValue", "ssm:GetParameters"]
    assert secrets["Resource"] == "SecretArns"  # the !Ref: exactly the ARNs given
    # Nothing else in the execution role mentions secrets.
    assert "secret" not in str([s for s in _statements("TaskExecutionRole") if isinstance(s, dict)]).lower()


def test_client_policy_runs_only_this_stacks_task_definition_families():
    statements = {s["Sid"]: s for s in _statements("ClientPolicy") if isinstance(s, dict)}
    run = statements["RunTasksInThisCluster"]
    assert run["Action"] == "ecs:RunTask"
    prefix = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/${AWS::StackName}-"
    assert run["Resource"] == prefix + "?" * taskdefs.FAMILY_HASH_CHARS + ":*"
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": "Cluster.Arn"}}
    # ... and the stack tells the executor that prefix.
    assert infra.template()["Outputs"]["EcsTaskFamilyName"]["Value"] == "AWS::StackName"


def test_the_iam_wildcard_matches_exactly_our_family_names():
    import fnmatch

    config = ExecutorConfig(ecs_task_family_name="covalent-ecs")
    family = taskdefs.build_task_definition(
        config, image_uri="r/i@sha256:" + "0" * 64, execution_role_arn="e", task_role_arn="t",
        region="us-east-1",
    )["family"]
    pattern = "covalent-ecs-" + "?" * taskdefs.FAMILY_HASH_CHARS + ":*"
    assert fnmatch.fnmatchcase(f"{family}:3", pattern)
    # Another stack whose name starts with this one's does not match.
    other = taskdefs.build_task_definition(
        ExecutorConfig(ecs_task_family_name="covalent-ecs-dev"), image_uri="r/i@sha256:" + "0" * 64,
        execution_role_arn="e", task_role_arn="t", region="us-east-1",
    )["family"]
    assert not fnmatch.fnmatchcase(f"{other}:1", pattern)


def test_doctor_reads_name_the_roles_cluster_and_repository_where_iam_allows():
    statements = {s["Sid"]: s for s in _statements("ClientPolicy") if isinstance(s, dict)}
    assert statements["DoctorReadsTheCluster"]["Resource"] == "Cluster.Arn"
    assert statements["DoctorReadsTheRoles"]["Resource"] == ["TaskExecutionRole.Arn", "TaskRole.Arn"]
    assert statements["ResolveRunnerImage"]["Resource"] == "RunnerRepository.Arn"
    assert set(statements["ResolveRunnerImage"]["Action"]) == {"ecr:DescribeImages", "ecr:DescribeRepositories"}
    # Only actions IAM cannot scope are on "*" (documented in docs/security.md).
    unscoped = {
        action
        for statement in _statements("ClientPolicy")
        for s in ([statement] if isinstance(statement, dict) else [statement[1]])
        if s["Resource"] == "*"
        for action in _listed(s["Action"])
    }
    assert unscoped == {
        "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeRouteTables",
        "ec2:DescribeVpcEndpoints", "logs:DescribeLogGroups", "ssm:DescribeParameters",
        "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "sts:GetCallerIdentity",
        "ecs:ListTasks",  # held to the cluster by a condition (test below)
    }
    secret_metadata, parameter_metadata = _conditional(_statements("ClientPolicy"), "HasSecrets")
    assert secret_metadata == {
        "Sid": "DoctorReadsSecretMetadata", "Effect": "Allow",
        "Action": "secretsmanager:DescribeSecret", "Resource": "SecretArns",
    }
    assert parameter_metadata["Action"] == "ssm:DescribeParameters"


def test_client_policy_grants_what_the_readme_lists():
    statements = [s for s in _statements("ClientPolicy") if isinstance(s, dict)]
    actions = {action for statement in statements for action in _listed(statement["Action"])}
    assert {
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "ecs:RunTask", "ecs:DescribeTasks",
        "ecs:StopTask", "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition",
        "ecs:TagResource", "iam:PassRole", "logs:GetLogEvents", "sts:GetCallerIdentity",
        "ecr:DescribeImages",
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
    (listing,) = [s for s in iampolicy.statements(document) if s.get("Action") == "ecs:ListTasks"]
    assert listing["Condition"] == {"ArnEquals": {"ecs:cluster": "Cluster.Arn"}}


def test_the_repository_keeps_tags_immutable():
    assert RESOURCES["RunnerRepository"]["Properties"]["ImageTagMutability"] == "IMMUTABLE"


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
