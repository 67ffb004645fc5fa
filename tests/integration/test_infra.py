"""`covalent-ecs infra deploy|destroy` against the sandbox's CloudFormation (moto's).

Every test deploys its own stack (unique name) into the session's sandbox and reads
what was created back through the sandbox's AWS API. moto 5.2.5 ignores some template
properties (capacity providers, public access block, lifecycle rules, bucket policy,
EmptyOnDelete, ManagedPolicyArns; scan on push is stored but not returned): those are checked in the template itself
(tests/unit/test_infra_template.py), not here.
"""

from __future__ import annotations

import json

import pytest
import toml
from infra_support import connection_args, deploy, invoke, push_runner_image, unique_stack_name

pytestmark = pytest.mark.integration


def test_deploy_creates_the_resources_and_prints_the_config_block(sandbox, tmp_path):
    stack = deploy(sandbox, tmp_path, None, "LogRetentionDays=30")
    config, output = stack["config"], stack["output"]

    assert f"creating stack {stack['stack']}" in output
    assert "CREATE_COMPLETE" in output and "[executors.ecs]" in output
    assert "Next: `covalent-ecs publish-image`" in output
    # The block reaches what was deployed, through the same connection.
    for key in ("credentials", "profile", "region", "endpoint_url"):
        assert config[key] == sandbox.executor_config[key]
    assert config["ecs_cluster_name"] == stack["stack"]
    assert config["ecr_repo_name"] == f"{stack['stack']}-runner"
    assert config["assign_public_ip"] is True

    s3 = sandbox.client("s3", internal=True)
    encryption = s3.get_bucket_encryption(Bucket=config["s3_bucket_name"])
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    group = sandbox.client("logs", internal=True).describe_log_groups(
        logGroupNamePrefix=config["ecs_task_log_group_name"]
    )["logGroups"][0]
    assert group["retentionInDays"] == 30
    # (moto keeps ImageScanningConfiguration in CloudFormation's casing, so DescribeRepositories
    # does not show scanOnPush: the template test checks it.)
    (repository,) = sandbox.client("ecr", internal=True).describe_repositories(
        repositoryNames=[config["ecr_repo_name"]]
    )["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"  # a pushed tag never moves
    cluster = sandbox.client("ecs", internal=True).describe_clusters(
        clusters=[config["ecs_cluster_name"]]
    )["clusters"][0]
    assert cluster["status"] == "ACTIVE"


def role_statements(sandbox, role_arn):
    iam = sandbox.client("iam", internal=True)
    role = role_arn.rsplit("/", 1)[-1]
    return [
        statement
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        for statement in iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]
        if statement  # moto leaves `!If [..., AWS::NoValue]` as null
    ]


def test_the_task_role_may_only_get_and_put_under_the_staging_prefix(sandbox, tmp_path):
    config = deploy(sandbox, tmp_path)["config"]
    statements = role_statements(sandbox, config["ecs_task_role_name"])
    assert "braket" not in json.dumps(statements)
    bucket = config["s3_bucket_name"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/covalent-ecs/*")
    ]
    # The execution role reads no secret unless SecretArns names some.
    assert "secretsmanager" not in json.dumps(role_statements(sandbox, config["ecs_task_execution_role_name"]))
    # The config block names this stack's family prefix (the client policy's RunTask scope).
    assert config["ecs_task_family_name"] == config["ecs_cluster_name"]


def test_braket_is_granted_only_when_asked_for(sandbox, tmp_path):
    config = deploy(sandbox, tmp_path, None, "AllowBraket=true")["config"]
    statements = {s.get("Sid"): s for s in role_statements(sandbox, config["ecs_task_role_name"])}
    assert "braket:CreateQuantumTask" in statements["BraketQuantumTasks"]["Action"]
    assert statements["BraketResultsBucket"]["Resource"][0] == "arn:aws:s3:::amazon-braket-us-east-1-123456789012"


def test_the_execution_role_reads_exactly_the_secrets_named(sandbox, tmp_path):
    arns = [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token-AbCdEf",
        "arn:aws:ssm:us-east-1:123456789012:parameter/team/db-password",
    ]
    config = deploy(sandbox, tmp_path, None, f"SecretArns={','.join(arns)}")["config"]
    statements = {s.get("Sid"): s for s in role_statements(sandbox, config["ecs_task_execution_role_name"])}
    assert statements["ReadTaskSecrets"]["Action"] == ["secretsmanager:GetSecretValue", "ssm:GetParameters"]
    assert statements["ReadTaskSecrets"]["Resource"] == arns


def test_write_conf_keeps_other_sections_and_keys(sandbox, tmp_path):
    conf = tmp_path / "covalent.conf"
    conf.write_text(
        '[sdk]\nlog_level = "debug"\n\n[executors.ecs]\nvcpu = 1.0\nmemory = 2.0\n'
        'endpoint_url = "http://127.0.0.1:1"\n'
    )
    name = unique_stack_name()
    result = invoke(
        "infra", "deploy", "--stack-name", name, "-p", f"RepositoryName={name}-runner",
        "--write-conf", str(conf), *connection_args(sandbox),
    )
    assert result.exit_code == 0, result.output
    written = toml.load(conf)
    assert written["sdk"] == {"log_level": "debug"}
    section = written["executors"]["ecs"]
    assert section["vcpu"] == 1.0 and section["memory"] == 2.0  # the user's keys stay
    assert section["endpoint_url"] == sandbox.executor_config["endpoint_url"]  # stale one replaced
    assert section["ecs_cluster_name"] == name


def test_deploying_an_existing_stack_updates_it_in_place(sandbox, tmp_path):
    first = deploy(sandbox, tmp_path)
    again = deploy(sandbox, tmp_path, first["stack"], "LogRetentionDays=60")
    assert f"updating stack {first['stack']}" in again["output"]
    assert again["config"]["s3_bucket_name"] == first["config"]["s3_bucket_name"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "LogRetentionDays=2"], "choose one of 1, 3, 5, 7, 14"),
        (["-p", "LogRetention=30"], "did you mean 'LogRetentionDays'?"),
        (["-p", "StagingExpirationDays=0"], "must be at least 1"),
        (["-p", "CreateNetwork=false"], "CreateNetwork=false needs ExistingSubnetId"),
        (["--stack-name", "1-bad"], "stack name '1-bad'"),
        (["--region", "mars"], "region='mars'"),
    ],
)
def test_bad_input_is_rejected_before_any_aws_call(fresh_sandbox, args, message):
    connection = connection_args(fresh_sandbox)
    if "--region" in args:
        index = connection.index("--region")
        del connection[index : index + 2]
    result = invoke("infra", "deploy", *args, *connection)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert fresh_sandbox.calls() == {}


def test_destroy_empties_the_bucket_and_repository_and_deletes_the_stack(sandbox, tmp_path):
    stack = deploy(sandbox, tmp_path)
    config = stack["config"]
    s3 = sandbox.client("s3", internal=True)
    s3.put_object(Bucket=config["s3_bucket_name"], Key="covalent-ecs/left/behind.pkl", Body=b"x")
    push_runner_image(sandbox, config["ecr_repo_name"])

    refused = invoke("infra", "destroy", "--stack-name", stack["stack"], *connection_args(sandbox), input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    result = invoke("infra", "destroy", "--stack-name", stack["stack"], "--yes", *connection_args(sandbox))
    assert result.exit_code == 0, result.output
    assert f"emptied s3://{config['s3_bucket_name']} (1 objects)" in result.output
    assert f"emptied ECR repository {config['ecr_repo_name']} (1 images)" in result.output
    assert "DELETE_COMPLETE" in result.output

    assert config["s3_bucket_name"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    repositories = sandbox.client("ecr", internal=True).describe_repositories()["repositories"]
    assert config["ecr_repo_name"] not in [r["repositoryName"] for r in repositories]
    cluster = sandbox.client("ecs", internal=True).describe_clusters(
        clusters=[config["ecs_cluster_name"]]
    )["clusters"]
    assert [c["status"] for c in cluster] in ([], ["INACTIVE"])

    again = invoke("infra", "destroy", "--stack-name", stack["stack"], "--yes", *connection_args(sandbox))
    assert again.exit_code == 0 and "nothing to delete" in again.output


def test_a_deploy_that_cannot_create_a_resource_says_which_and_why(sandbox):
    # The sandbox already has its runner repository: the stack's fails, as on AWS in
    # the stack's events, and CloudFormation deletes the stack (OnFailure=DELETE).
    taken = sandbox.executor_config["ecr_repo_name"]
    name = unique_stack_name()
    result = invoke(
        "infra", "deploy", "--stack-name", name, "-p", f"RepositoryName={taken}",
        *connection_args(sandbox),
    )
    assert result.exit_code == 1
    assert "CREATE_FAILED        RunnerRepository (AWS::ECR::Repository)" in result.output
    assert f"stack {name} ended DELETE_COMPLETE: RunnerRepository" in result.output
    assert "RepositoryAlreadyExistsException" in result.output and taken in result.output
    assert "nothing is left to clean up" in result.output
    assert "Traceback" not in result.output
    again = invoke("infra", "destroy", "--stack-name", name, "--yes", *connection_args(sandbox))
    assert again.exit_code == 0 and "nothing to delete" in again.output
