"""`covalent-ecs doctor` against the sandbox: all ✓ on a deployed stack, and one ✗ with a
named fix for each thing broken, one at a time.

Each test deploys its own stack (`covalent-ecs infra deploy`), pushes the runner image
the way `covalent-ecs publish-image` would (a manifest under this version's tag), then
breaks one thing through the sandbox's AWS API or in the conf file.

The client identity: moto answers GetCallerIdentity with the IAM user (or assumed role)
whose keys signed the request, so a test makes one, gives it a policy, and writes its
keys into the conf; the sandbox's own keys belong to no IAM user (``user/moto``), whose
policies therefore cannot be read: a warning.

What moto cannot emulate, so not tested here: a bucket owned by another account
(moto ignores ExpectedBucketOwner), an identity denied by IAM (moto does not enforce
IAM: "bucket writable" and every access-denied path, including an identity that may
not read its own policies), invalid or expired keys (moto accepts any), and real
network reachability (doctor reads route tables and endpoints; nothing is probed).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from infra_support import deploy, doctor, push_runner_image, statuses, write_conf

from covalent_ecs_executor.config import as_list
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration

ALL_CHECKS = [
    "config",
    "launch settings",
    "credentials",
    "bucket",
    "bucket writable",
    "cluster",
    "execution role",
    "task role",
    "client permissions",
    "subnet",
    "security group",
    "route to ECR",
    "log group",
    "runner image",
    "secrets",
]


@pytest.fixture
def stack(sandbox, tmp_path) -> dict[str, Any]:
    deployed = deploy(sandbox, tmp_path)
    push_runner_image(sandbox, deployed["config"]["ecr_repo_name"])
    return deployed


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def client_policy_arn(sandbox, stack) -> str:
    described = sandbox.client("cloudformation", internal=True).describe_stacks(
        StackName=stack["stack"]
    )
    (arn,) = [
        o["OutputValue"]
        for o in described["Stacks"][0]["Outputs"]
        if o["OutputKey"] == "ClientPolicyArn"
    ]
    return arn


def client_policy_document(sandbox, stack) -> dict[str, Any]:
    """The stack's ClientPolicy, as IAM stores it."""
    iam = sandbox.client("iam", internal=True)
    arn = client_policy_arn(sandbox, stack)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return document if isinstance(document, dict) else json.loads(document)


def write_keys(tmp_path, keys: dict[str, str]) -> str:
    path = tmp_path / f"credentials-{os.urandom(3).hex()}"
    path.write_text(
        "[default]\n" + "".join(f"aws_{name} = {value}\n" for name, value in keys.items())
    )
    return str(path)


def user_with_client_policy(sandbox, stack, tmp_path) -> str:
    """A credentials file of a new IAM user with the stack's ClientPolicy attached."""
    iam = sandbox.client("iam", internal=True)
    name = f"covalent-client-{os.urandom(3).hex()}"
    iam.create_user(UserName=name)
    arn = client_policy_arn(sandbox, stack)
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return write_keys(
        tmp_path, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    )


def test_doctor_passes_on_a_deployed_stack(stack, sandbox, tmp_path):
    credentials = user_with_client_policy(sandbox, stack, tmp_path)
    conf = write_conf(
        tmp_path / "client.conf", {**stack["config"], "credentials": credentials, "profile": ""}
    )
    code, report, lines = doctor(conf)
    assert code == 0, lines
    assert report["ok"] is True
    assert statuses(report) == dict.fromkeys(ALL_CHECKS, "ok")
    assert lines.count("✓") == len(ALL_CHECKS) and "✗" not in lines
    assert f"{len(ALL_CHECKS)} checks: all passed" in lines
    (client,) = [c for c in report["checks"] if c["name"] == "client permissions"]
    assert client["detail"].startswith("IAM user covalent-client-")
    assert "`covalent-ecs ps`" in client["detail"]


def test_a_role_without_list_tasks_is_named_with_the_commands_that_need_it(
    stack, sandbox, tmp_path
):
    document = client_policy_document(sandbox, stack)
    document["Statement"] = [
        s
        for s in document["Statement"]
        if isinstance(s, dict) and s.get("Sid") != "ListTasksInThisCluster"
    ]
    iam = sandbox.client("iam", internal=True)
    role = f"covalent-client-{os.urandom(3).hex()}"
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
    ]}  # fmt: skip
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName=role, PolicyName="client", PolicyDocument=json.dumps(document))
    session = sandbox.client("sts", internal=True).assume_role(
        RoleArn=role_arn, RoleSessionName="doctor"
    )
    keys = session["Credentials"]
    credentials = write_keys(tmp_path, {
        "access_key_id": keys["AccessKeyId"], "secret_access_key": keys["SecretAccessKey"],
        "session_token": keys["SessionToken"],
    })  # fmt: skip
    conf = write_conf(
        tmp_path / "role.conf", {**stack["config"], "credentials": credentials, "profile": ""}
    )

    code, report, lines = doctor(conf)

    assert code == 1, lines
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["client permissions"]
    (client,) = [c for c in report["checks"] if c["name"] == "client permissions"]
    # The assumed-role session is judged by its role's policies.
    assert client["detail"].startswith(f"IAM role {role} may not: ecs:ListTasks (needed by ")
    assert client["detail"].count("ecs:ListTasks") == 1
    for command in ("ps", "stop", "logs"):
        assert f"`covalent-ecs {command}`" in client["detail"]
    assert (
        "`covalent-ecs report`" not in client["detail"] and "the executor" not in client["detail"]
    )
    assert "ClientPolicyArn" in client["fix"]
    assert "✗ client permissions:" in lines


def test_unreadable_client_policies_are_a_warning_naming_what_was_not_verified(stack, sandbox):
    # The sandbox's keys belong to no IAM user: its policies cannot be read.
    code, report, lines = doctor(stack["conf"])

    assert code == 0, lines
    assert report["ok"] is True
    (client,) = [c for c in report["checks"] if c["name"] == "client permissions"]
    assert client["status"] == "warn"
    assert "IAM user moto: IAM has no user named moto" in client["detail"]
    assert "were not verified" in client["detail"]
    assert "ecs:ListTasks" in client["detail"] and "ecs:RunTask" in client["detail"]
    assert "! client permissions:" in lines and "hint:" in lines
    others = {
        name: status for name, status in statuses(report).items() if name != "client permissions"
    }
    assert others == dict.fromkeys(others, "ok")
    assert f"{len(ALL_CHECKS)} checks: {len(ALL_CHECKS) - 1} passed, 1 warning" in lines


@pytest.mark.parametrize("capacity_provider", ["FARGATE", "FARGATE_SPOT"])
def test_doctor_passes_on_the_sandbox_block(sandbox, tmp_path, capacity_provider):
    config = {**sandbox.executor_config, "capacity_provider": capacity_provider}
    code, report, lines = doctor(write_conf(tmp_path / "covalent.conf", config))
    assert code == 0, lines


def test_doctor_checks_every_subnet_of_a_list(sandbox, tmp_path):
    config = sandbox.executor_config
    ec2 = sandbox.client("ec2")
    vpc_id = ec2.describe_subnets(SubnetIds=[config["ecs_task_subnet_id"]])["Subnets"][0]["VpcId"]
    second = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock="10.42.77.0/24", AvailabilityZone="us-east-1c"
    )["Subnet"]["SubnetId"]
    public = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [config["ecs_task_subnet_id"]]}]
    )["RouteTables"][0]["RouteTableId"]
    association = ec2.associate_route_table(RouteTableId=public, SubnetId=second)
    try:
        subnets = [config["ecs_task_subnet_id"], second]
        code, report, lines = doctor(
            write_conf(tmp_path / "two.conf", {**config, "ecs_task_subnet_id": subnets})
        )
        assert code == 0, lines
        assert "2 zones: us-east-1a, us-east-1c" in lines
        absent = "subnet-0123456789abcdef0"
        code, report, lines = doctor(
            write_conf(
                tmp_path / "absent.conf", {**config, "ecs_task_subnet_id": [*subnets, absent]}
            )
        )
        assert code == 1 and statuses(report)["subnet"] == "fail"
        assert f"{absent} does not exist" in lines
    finally:
        ec2.disassociate_route_table(AssociationId=association["AssociationId"])
        ec2.delete_subnet(SubnetId=second)


def test_doctor_checks_secrets_exist_and_are_readable_without_reading_them(sandbox, tmp_path):
    unique = os.urandom(4).hex()
    secret = sandbox.client("secretsmanager", internal=True).create_secret(
        Name=f"doctor-token-{unique}", SecretString="never-read-by-doctor"
    )["ARN"]
    sandbox.client("ssm", internal=True).put_parameter(
        Name=f"/doctor/{unique}/auth", Value="never-read-either", Type="SecureString"
    )
    parameter = f"arn:aws:ssm:us-east-1:123456789012:parameter/doctor/{unique}/auth"
    deployed = deploy(sandbox, tmp_path, None, f"SecretArns={secret},{parameter}")
    push_runner_image(sandbox, deployed["config"]["ecr_repo_name"])
    secrets = {"API_TOKEN": f"{secret}:token::", "UPSTREAM_AUTH": parameter}
    conf = write_conf(tmp_path / "secrets.conf", {**deployed["config"], "secrets": secrets})
    sandbox.reset_calls()

    code, report, lines = doctor(conf)

    assert code == 0, lines
    (check,) = [c for c in report["checks"] if c["name"] == "secrets"]
    assert check["detail"].startswith("API_TOKEN, UPSTREAM_AUTH exist and ")
    calls = sandbox.calls()
    assert calls["secretsmanager.DescribeSecret"] == 2 and calls["ssm.DescribeParameters"] == 2
    assert not any("GetSecretValue" in name or "GetParameter" in name for name in calls)
    assert "never-read" not in lines


# Each case: what to break (sandbox, stack config) -> conf overrides, the check that must
# fail, and words its fix must contain. Pointing the conf at another bucket or repository
# also fails a role check: the stack's roles are scoped to its own bucket and repository.
ALSO_FAILS = {"missing_bucket": {"task role"}, "missing_repository": {"execution role"}}
Breaker = Callable[[Any, dict[str, Any]], dict[str, Any]]


def bad_memory(sandbox, config):
    return {"memory": 3}


def no_subnet(sandbox, config):
    return {"ecs_task_subnet_id": ""}


def unknown_profile(sandbox, config):
    return {"profile": "nobody"}


def no_credentials(sandbox, config):
    # An empty credentials file and no AWS_* variables (tests/conftest.py): no keys.
    return {"credentials": "", "profile": ""}


def missing_bucket(sandbox, config):
    return {"s3_bucket_name": "covalent-ecs-no-such-bucket"}


def deleted_cluster(sandbox, config):
    sandbox.client("ecs", internal=True).delete_cluster(cluster=config["ecs_cluster_name"])
    return {}


def spot_on_a_cluster_without_spot(sandbox, config):
    sandbox.client("ecs", internal=True).put_cluster_capacity_providers(
        cluster=config["ecs_cluster_name"],
        capacityProviders=["FARGATE"],
        defaultCapacityProviderStrategy=[],
    )
    return {"capacity_provider": "FARGATE_SPOT"}


def missing_cluster(sandbox, config):
    return {"ecs_cluster_name": "no-such-cluster"}


def execution_role_trusts_ec2(sandbox, config):
    sandbox.client("iam", internal=True).update_assume_role_policy(
        RoleName=role_name(config["ecs_task_execution_role_name"]),
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    return {}


def execution_role_without_policy(sandbox, config):
    iam = sandbox.client("iam", internal=True)
    role = role_name(config["ecs_task_execution_role_name"])
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    return {}


def missing_task_role(sandbox, config):
    return {"ecs_task_role_name": "NoSuchCovalentRole"}


def task_role_for_another_bucket(sandbox, config):
    iam = sandbox.client("iam", internal=True)
    role = role_name(config["ecs_task_role_name"])
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    iam.put_role_policy(
        RoleName=role,
        PolicyName=name,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject"],
                        "Resource": "arn:aws:s3:::some-other-bucket/covalent-ecs/*",
                    }
                ],
            }
        ),
    )
    return {}


def missing_subnet(sandbox, config):
    return {"ecs_task_subnet_id": "subnet-0123456789abcdef0"}


def security_group_of_another_vpc(sandbox, config):
    return {"ecs_task_security_group_id": sandbox.executor_config["ecs_task_security_group_id"]}


def security_group_without_egress(sandbox, config):
    ec2 = sandbox.client("ec2", internal=True)
    group_id = config["ecs_task_security_group_id"]
    rules = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0][
        "IpPermissionsEgress"
    ]
    ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=rules)
    return {}


def no_default_route(sandbox, config):
    ec2 = sandbox.client("ec2", internal=True)
    subnets = config["ecs_task_subnet_id"]  # the stack's two subnets share a route table
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": as_list(subnets)}]
    )["RouteTables"]
    ec2.delete_route(RouteTableId=tables[0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    return {}


def no_public_ip(sandbox, config):
    return {"assign_public_ip": False}


def deleted_log_group(sandbox, config):
    sandbox.client("logs", internal=True).delete_log_group(
        logGroupName=config["ecs_task_log_group_name"]
    )
    return {}


def image_not_published(sandbox, config):
    sandbox.client("ecr", internal=True).batch_delete_image(
        repositoryName=config["ecr_repo_name"], imageIds=[{"imageTag": contract.runner_image_tag()}]
    )
    return {}


def missing_repository(sandbox, config):
    return {"ecr_repo_name": "no-such-runner-repo"}


def another_versions_runner(sandbox, config):
    tag = "runner-0.0.1-py3.8-cloudpickle2.2.1"
    push_runner_image(sandbox, config["ecr_repo_name"], tag)
    registry = f"123456789012.dkr.ecr.{config['region']}.amazonaws.com"
    return {"container_image_uri": f"{registry}/{config['ecr_repo_name']}:{tag}"}


def missing_secret(sandbox, config):
    return {
        "secrets": {
            "API_TOKEN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-AbCdEf"
        }
    }


def secret_the_execution_role_may_not_read(sandbox, config):
    # The secret exists, but the stack was deployed without SecretArns.
    arn = sandbox.client("secretsmanager", internal=True).create_secret(
        Name=f"doctor-{os.urandom(4).hex()}", SecretString="unused"
    )["ARN"]
    return {"secrets": {"API_TOKEN": arn}}


CASES: list[tuple[Breaker, str, str]] = [
    (bad_memory, "config", "fix it in"),
    (no_subnet, "launch settings", "infra deploy --write-conf"),
    (unknown_profile, "credentials", "profile"),
    (no_credentials, "credentials", "AWS_ACCESS_KEY_ID"),
    (missing_bucket, "bucket", "infra deploy"),
    (deleted_cluster, "cluster", "create it again"),
    (missing_cluster, "cluster", "ecs_cluster_name"),
    (spot_on_a_cluster_without_spot, "cluster", 'capacity_provider = "FARGATE"'),
    (execution_role_trusts_ec2, "execution role", "ecs-tasks.amazonaws.com"),
    (execution_role_without_policy, "execution role", "AmazonECSTaskExecutionRolePolicy"),
    (missing_task_role, "task role", "ecs_task_role_name"),
    (task_role_for_another_bucket, "task role", "s3:GetObject and s3:PutObject"),
    (missing_subnet, "subnet", "ecs_task_subnet_id"),
    (security_group_of_another_vpc, "security group", "subnet's VPC"),
    (security_group_without_egress, "security group", "tcp/443"),
    (no_default_route, "route to ECR", "NAT gateway"),
    (no_public_ip, "route to ECR", "assign_public_ip = true"),
    (deleted_log_group, "log group", "ecs_task_log_group_name"),
    (image_not_published, "runner image", "covalent-ecs publish-image"),
    (missing_repository, "runner image", "ecr_repo_name"),
    (another_versions_runner, "runner image", "covalent-ecs publish-image"),
    (missing_secret, "secrets", "create the secret or parameter"),
    (secret_the_execution_role_may_not_read, "secrets", "-p SecretArns="),
]


@pytest.mark.parametrize(
    ("breaker", "check", "fix"), CASES, ids=[case[0].__name__ for case in CASES]
)
def test_doctor_names_the_broken_part_and_its_fix(
    fresh_sandbox, stack, tmp_path, breaker, check, fix
):
    overrides = breaker(fresh_sandbox, stack["config"])
    conf = write_conf(tmp_path / "broken.conf", {**stack["config"], **overrides})
    fresh_sandbox.reset_calls()

    code, report, lines = doctor(conf)

    assert code == 1, lines
    assert report["ok"] is False
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert {c["name"] for c in failed} == {check} | ALSO_FAILS.get(breaker.__name__, set()), lines
    assert any(fix in c["fix"] for c in failed if c["name"] == check), failed
    assert f"✗ {check}:" in lines and "fix:" in lines and "Traceback" not in lines
    if check in ("config", "launch settings"):
        assert fresh_sandbox.calls() == {}  # validated before any AWS call


def test_an_unreadable_conf_is_a_failed_check_not_a_traceback(tmp_path):
    conf = tmp_path / "covalent.conf"
    conf.write_text("[executors.ecs\nbroken")
    code, report, lines = doctor(conf)
    assert code == 1 and report["checks"][0]["name"] == "config"
    assert "not valid TOML" in report["checks"][0]["detail"]
    assert "line 1, column 1" in report["checks"][0]["detail"]
    assert "correct the TOML syntax" in report["checks"][0]["fix"]
    missing = doctor(tmp_path / "absent.conf")
    assert missing[0] == 1 and "cannot read" in missing[1]["checks"][0]["detail"]
    assert os.path.exists(conf)
    for listed, text in ((report, lines), missing[1:]):
        assert [c["name"] for c in listed["checks"]] == ALL_CHECKS
        assert text.count("– ") == len(ALL_CHECKS) - 1 and "not checked: config failed" in text
        assert f"{len(ALL_CHECKS)} checks: 1 failed, {len(ALL_CHECKS) - 1} not checked" in text


def test_an_unreachable_endpoint_is_named_as_such_and_credentials_are_not_blamed(tmp_path):
    # A port nothing listens on: bound, then closed (no sandbox needed).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = x\naws_secret_access_key = y\n")
    config = {
        "region": "us-east-1",
        "endpoint_url": f"http://127.0.0.1:{port}",
        "credentials": str(credentials),
        "ecs_task_subnet_id": "subnet-0123abcd",
        "ecs_task_security_group_id": "sg-0123abcd",
    }

    code, report, lines = doctor(write_conf(tmp_path / "covalent.conf", config))

    assert code == 1, lines
    by_name = {c["name"]: c for c in report["checks"]}
    assert [c["name"] for c in report["checks"]] == ALL_CHECKS
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed == [by_name["credentials"]], lines
    assert "is unreachable" in failed[0]["detail"]
    assert f"http://127.0.0.1:{port}" in failed[0]["detail"]
    assert f"check that http://127.0.0.1:{port} is reachable" in failed[0]["fix"]
    assert "AWS_ACCESS_KEY_ID" not in failed[0]["fix"]
    assert by_name["bucket"] == {
        "name": "bucket", "status": "skip", "detail": "not checked: credentials failed", "fix": ""
    }  # fmt: skip
    assert "✗ credentials: could not look up the caller" in lines and "Traceback" not in lines
