"""``covalent-ecs doctor``: check a configuration against the AWS account before a workflow.

The checks are one table, ``CHECKS``: each row names a check, its function, the facts
it needs from earlier checks and the facts it gives when it passes. A check function
takes its facts as keyword arguments and returns an ``Outcome``; a check whose facts
are missing (because the check giving them failed) is listed as not checked, with the
check that failed. Adding a check is adding a row and a function. What a check judges
is a pure function in ``doctor_rules`` (``judge_config``, ``ecr_route``...), tested
without AWS; ``doctor_report`` renders the results.

The first two checks read and validate the configuration, before any AWS call. The
AWS clients doctor uses connect with a short timeout and few attempts, so an
unreachable endpoint is reported within seconds. Only read calls are made, plus one
small object put and deleted in the bucket.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from covalent_ecs_runtime import contract

from .. import aws
from ..config import ExecutorConfig, as_list
from ..errors import ConfigError, ECSExecutorError
from ..image.refs import default_runner_image, parse_ecr_image
from ..secretrefs import parameter_names, secret_resource
from ..staging import STAGING_ROOT
from . import conffile, iampolicy
from .doctor_rules import (
    Outcome,
    Status,
    caller_principal,
    client_needs,
    ecr_route,
    every_subnet,
    execution_role_needs,
    failed,
    judge_client,
    judge_cluster,
    judge_config,
    judge_log_group,
    judge_role,
    judge_runner_image,
    judge_security_groups,
    judge_subnets,
    not_checked,
    passed,
    unreachable_fix,
)

IAM_FIX = "see README 'IAM roles and policies' for what doctor reads"


@dataclass(frozen=True)
class Check:
    """One line of the report: a check's name, status, what was found, and the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Failed(Exception):
    """Raised by a helper deep inside a check: the check failed with this detail and fix."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True)
class Row:
    name: str
    check: Callable[..., Outcome]
    needs: tuple[str, ...]
    gives: tuple[str, ...] = ()


# Facts every run starts with: where covalent.conf is, and the command-line overrides.
INPUTS = ("conf_path", "overrides")


# ---------------------------------------------------------------------- the checks
def check_config(*, conf_path: str, overrides: Mapping[str, Any]) -> Outcome:
    try:
        section = conffile.read_executor_section(conf_path)
    except ConfigError as err:
        if isinstance(err.__cause__, OSError):
            return failed(str(err), f"make {conf_path} readable, or give --conf another file")
        return failed(
            str(err),
            f"correct the TOML syntax of {conf_path} at that line (the file exists; a key "
            'reads e.g. region = "us-east-1" under [executors.ecs])',
        )
    return judge_config(conf_path, os.path.exists(conf_path), section, overrides)


def check_launch_settings(*, validated_config: ExecutorConfig) -> Outcome:
    try:
        validated_config.require_launch_settings()
    except ConfigError as err:
        return failed(
            str(err), "`covalent-ecs infra deploy --write-conf PATH` writes a complete block"
        )
    return passed(
        f"subnet {validated_config.ecs_task_subnet_id}, security group "
        f"{validated_config.ecs_task_security_group_id}",
        config=validated_config,
    )


def check_credentials(*, config: ExecutorConfig) -> Outcome:
    try:
        # Doctor fails fast: an unreachable endpoint should cost neither the config's
        # full retry budget nor botocore's 60 s connect timeout.
        clients = aws.interactive_clients(config)
    except ConfigError as err:
        return failed(
            str(err),
            "set region/profile/credentials in [executors.ecs] (or --region/--profile/--credentials)",
        )
    sts = clients.sts
    try:
        identity = aws.call(sts.get_caller_identity, "look up the caller (sts:GetCallerIdentity)")
    except ECSExecutorError as err:
        if aws.is_unreachable(err):
            return failed(str(err), unreachable_fix(sts.meta.endpoint_url))
        return failed(
            str(err),
            "set credentials/profile in [executors.ecs] (or --credentials/--profile), or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance/task role applies",
        )
    account = identity["Account"]
    return passed(
        f"{identity['Arn']} (account {account}), region {clients.region}",
        clients=clients,
        account=account,
        caller_arn=identity["Arn"],
    )


def check_bucket(*, config: ExecutorConfig, clients: aws.Clients, account: str) -> Outcome:
    bucket = config.s3_bucket_name
    try:
        # ExpectedBucketOwner: S3 answers 403 when the bucket is another account's, so a
        # look-alike bucket someone else owns is never used for staging.
        aws.call(
            clients.s3.head_bucket,
            f"read s3://{bucket}",
            Bucket=bucket,
            ExpectedBucketOwner=account,
        )
    except ECSExecutorError as err:
        if aws.has_code(err, "404", "NoSuchBucket"):
            return failed(
                f"s3://{bucket} does not exist",
                "`covalent-ecs infra deploy` creates one; or set s3_bucket_name",
            )
        if aws.has_code(err, "403", "AccessDenied"):
            return failed(
                f"s3://{bucket} is not a bucket of account {account} (or this identity may "
                "not read it)",
                "use a bucket in your account (s3_bucket_name), or grant s3:ListBucket on it",
            )
        raise
    return passed(f"s3://{bucket} exists in account {account}", bucket=bucket)


def check_bucket_writable(*, clients: aws.Clients, account: str, bucket: str) -> Outcome:
    key = f"{STAGING_ROOT}/doctor-{secrets.token_hex(6)}"
    s3 = clients.s3
    try:
        aws.call(
            s3.put_object, f"put s3://{bucket}/{key}", Bucket=bucket, Key=key,
            Body=b"covalent-ecs doctor", ServerSideEncryption="AES256",
            ExpectedBucketOwner=account,
        )  # fmt: skip
        aws.call(
            s3.delete_object, f"delete s3://{bucket}/{key}", Bucket=bucket, Key=key,
            ExpectedBucketOwner=account,
        )  # fmt: skip
    except ECSExecutorError as err:
        if aws.is_unreachable(err):
            raise
        return failed(
            str(err),
            f"allow s3:PutObject, s3:GetObject, s3:DeleteObject on "
            f"arn:{clients.partition}:s3:::{bucket}/{STAGING_ROOT}/* for this identity",
        )
    return passed(f"put and deleted s3://{bucket}/{key}")


def check_cluster(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    name = config.ecs_cluster_name
    found = aws.call(clients.ecs.describe_clusters, "describe the cluster", clusters=[name])
    return judge_cluster(
        found.get("clusters") or [],
        name=name,
        region=clients.region,
        capacity_provider=config.capacity_provider,
    )


def check_execution_role(*, config: ExecutorConfig, clients: aws.Clients, account: str) -> Outcome:
    name, documents, trust = _read_role(
        clients, config.ecs_task_execution_role_name, "ecs_task_execution_role_name"
    )
    needs = execution_role_needs(
        parse_ecr_image(runner_image_uri(config, clients)),
        partition=clients.partition,
        region=clients.region,
        account=account,
        log_group=config.ecs_task_log_group_name,
    )
    return judge_role(
        name, trust, iampolicy.missing_actions(documents, needs),
        why="",
        fix="attach AWS's AmazonECSTaskExecutionRolePolicy (or the template's "
        "pull-runner-image-and-write-logs policy) to it",
        purpose="may pull the image and write logs",
    )  # fmt: skip


def check_task_role(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    name, documents, trust = _read_role(clients, config.ecs_task_role_name, "ecs_task_role_name")
    prefix = f"arn:{clients.partition}:s3:::{config.s3_bucket_name}/{STAGING_ROOT}"
    needs = [("s3:GetObject", f"{prefix}/doctor"), ("s3:PutObject", f"{prefix}/doctor")]
    return judge_role(
        name, trust, iampolicy.missing_actions(documents, needs),
        why=" (the runner reads the payload and writes the result there)",
        fix=f"allow s3:GetObject and s3:PutObject on {prefix}/* in the task role",
        purpose="may use the staging prefix",
    )  # fmt: skip


def check_client_permissions(
    *, config: ExecutorConfig, clients: aws.Clients, account: str, caller_arn: str
) -> Outcome:
    """The identity doctor runs as (the one the Covalent server uses, given the same
    settings) may make the executor's calls and those of report/ps/stop/logs. Reads
    only policy documents; when they cannot be read, a warning says what was not verified."""
    needs = client_needs(
        config, partition=clients.partition, region=clients.region, account=account,
        image=parse_ecr_image(runner_image_uri(config, clients)),
    )  # fmt: skip
    principal = caller_principal(caller_arn)
    if principal.kind == "root":
        why = "the root user's permissions are not in IAM policies (it may do everything; run as an IAM user or role instead)"
        return judge_client(principal, None, needs, unreadable=why)
    if principal.kind not in ("user", "role"):
        why = "its permissions come from the session that signed in, which IAM cannot show"
        return judge_client(principal, None, needs, unreadable=why)
    try:
        documents = _identity_policies(clients, principal.kind, principal.name)
    except ECSExecutorError as err:
        if aws.is_unreachable(err):
            raise
        if aws.has_code(err, "NoSuchEntity"):
            why = f"IAM has no {principal.kind} named {principal.name}"
        elif aws.has_code(err, "AccessDenied", "AccessDeniedException"):
            why = "it may not read its own policies (AccessDenied)"
        else:
            raise
        return judge_client(principal, None, needs, unreadable=why)
    return judge_client(principal, documents, needs)


def check_subnet(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    """Every configured subnet exists, and all are in one VPC (ECS requires it)."""
    wanted = as_list(config.ecs_task_subnet_id)
    try:
        found = aws.call(clients.ec2.describe_subnets, "describe the subnets", SubnetIds=wanted)[
            "Subnets"
        ]
    except ECSExecutorError as err:
        if not aws.has_code(err, "InvalidSubnetID.NotFound"):
            raise
        # One call for all; on "not found" find which, one by one.
        found = [s for one in wanted for s in _described_subnet(clients, one)]
    return judge_subnets(found, wanted, clients.region)


def _described_subnet(clients: aws.Clients, subnet_id: str) -> list[dict[str, Any]]:
    try:
        return list(
            aws.call(clients.ec2.describe_subnets, "describe the subnet", SubnetIds=[subnet_id])[
                "Subnets"
            ]
        )
    except ECSExecutorError as err:
        if not aws.has_code(err, "InvalidSubnetID.NotFound"):
            raise
        return []


def check_security_group(*, config: ExecutorConfig, clients: aws.Clients, vpc_id: str) -> Outcome:
    wanted = as_list(config.ecs_task_security_group_id)
    groups = []
    for group_id in wanted:
        try:
            groups += aws.call(
                clients.ec2.describe_security_groups,
                "describe the security group",
                GroupIds=[group_id],
            )["SecurityGroups"]
        except ECSExecutorError as err:
            if not aws.has_code(err, "InvalidGroup.NotFound", "InvalidGroupId.NotFound"):
                raise
    return judge_security_groups(groups, wanted, vpc_id, clients.region)


def check_route_to_ecr(*, config: ExecutorConfig, clients: aws.Clients, vpc_id: str) -> Outcome:
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    ec2 = clients.ec2
    tables = aws.call(ec2.describe_route_tables, "describe route tables", Filters=in_vpc)
    endpoints = aws.call(ec2.describe_vpc_endpoints, "describe VPC endpoints", Filters=in_vpc)
    outcomes = [
        ecr_route(
            tables["RouteTables"],
            endpoints["VpcEndpoints"],
            subnet_id=subnet_id,
            region=clients.region,
            assign_public_ip=config.assign_public_ip,
        )
        for subnet_id in as_list(config.ecs_task_subnet_id)
    ]
    return every_subnet(outcomes)


def check_log_group(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    name = config.ecs_task_log_group_name
    groups = aws.call(
        clients.logs.describe_log_groups, "describe log groups", logGroupNamePrefix=name
    )["logGroups"]
    return judge_log_group(groups, name)


def check_runner_image(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    uri = runner_image_uri(config, clients)
    image = parse_ecr_image(uri)
    if image is None:
        return not_checked(f"{uri} is not in ECR: doctor checks only ECR images")
    if image.region != clients.region:
        return not_checked(f"{uri} is in {image.region}; doctor checks {clients.region}")
    image_id = {"imageDigest": image.digest} if image.digest else {"imageTag": image.tag}
    try:
        aws.call(
            clients.ecr.describe_images,
            "describe the runner image",
            registryId=image.account,
            repositoryName=image.repository,
            imageIds=[image_id],
        )
    except ECSExecutorError as err:
        if aws.has_code(err, "RepositoryNotFoundException"):
            return failed(
                f"ECR repository {image.repository} does not exist in {image.account}/{image.region}",
                "`covalent-ecs infra deploy` creates it; or set ecr_repo_name",
            )
        if aws.has_code(err, "ImageNotFoundException"):
            return failed(
                f"image {uri} is not in ECR: tasks would fail with CannotPullContainerError",
                f"`covalent-ecs publish-image` pushes this version's runner ({contract.runner_image_tag()})",
            )
        raise
    return judge_runner_image(uri, image, contract.runner_image_tag())


def check_secrets(*, config: ExecutorConfig, clients: aws.Clients) -> Outcome:
    """Each ``secrets`` ARN exists (its metadata: doctor never reads a value) and the
    execution role's policies let ECS read it when a task starts."""
    if not config.secrets:
        return passed("none configured")
    problems: list[str] = []
    unchecked: list[str] = []
    needs: list[tuple[str, str]] = []
    for name, value_from in config.secrets.items():
        arn, action, region = secret_resource(value_from)
        needs.append((action, arn))
        if region != clients.region:
            unchecked.append(name)
        elif not _secret_exists(clients, arn):
            problems.append(f"{name}: {arn} does not exist (or is scheduled for deletion)")
    role, documents, _ = _read_role(
        clients, config.ecs_task_execution_role_name, "ecs_task_execution_role_name"
    )
    missing = iampolicy.missing_actions(documents, needs)
    if missing:
        problems.append(f"IAM role {role} may not: {'; '.join(missing)}")
    if problems:
        return failed(
            "; ".join(problems),
            "create the secret or parameter, or correct its ARN in `secrets`; let the "
            "execution role read exactly these ARNs (the infra stack's -p SecretArns=arn1,arn2)",
        )
    note = f"; {', '.join(unchecked)} in another region, existence not checked" if unchecked else ""
    return passed(f"{', '.join(sorted(config.secrets))} exist and {role} may read them{note}")


def _secret_exists(clients: aws.Clients, arn: str) -> bool:
    try:
        if ":secretsmanager:" in arn:
            described = aws.call(
                clients.secretsmanager.describe_secret, f"describe {arn}", SecretId=arn
            )
            return not described.get("DeletedDate")
        found = aws.call(
            clients.ssm.describe_parameters,
            f"describe {arn}",
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": parameter_names(arn)}],
        )
        return bool(found["Parameters"])
    except ECSExecutorError as err:
        if aws.has_code(err, "ResourceNotFoundException"):
            return False
        raise


CHECKS: tuple[Row, ...] = (
    Row("config", check_config, needs=INPUTS, gives=("validated_config",)),
    Row("launch settings", check_launch_settings, needs=("validated_config",), gives=("config",)),
    Row(
        "credentials",
        check_credentials,
        needs=("config",),
        gives=("clients", "account", "caller_arn"),
    ),
    Row("bucket", check_bucket, needs=("config", "clients", "account"), gives=("bucket",)),
    Row("bucket writable", check_bucket_writable, needs=("clients", "account", "bucket")),
    Row("cluster", check_cluster, needs=("config", "clients")),
    Row("execution role", check_execution_role, needs=("config", "clients", "account")),
    Row("task role", check_task_role, needs=("config", "clients")),
    Row(
        "client permissions",
        check_client_permissions,
        needs=("config", "clients", "account", "caller_arn"),
    ),  # fmt: skip
    Row("subnet", check_subnet, needs=("config", "clients"), gives=("vpc_id",)),
    Row("security group", check_security_group, needs=("config", "clients", "vpc_id")),
    Row("route to ECR", check_route_to_ecr, needs=("config", "clients", "vpc_id")),
    Row("log group", check_log_group, needs=("config", "clients")),
    Row("runner image", check_runner_image, needs=("config", "clients")),
    Row("secrets", check_secrets, needs=("config", "clients")),
)


# ------------------------------------------------------------------------ running
def run_checks(
    conf_path: str, overrides: Mapping[str, Any], checks: tuple[Row, ...] = CHECKS
) -> list[Check]:
    """Every row of ``checks`` in order, each listed once: ok, fail, or skip with why."""
    facts: dict[str, Any] = {"conf_path": conf_path, "overrides": dict(overrides)}
    giver = {fact: row.name for row in checks for fact in row.gives}
    results: dict[str, Check] = {}
    root_cause: dict[str, str] = {}  # skipped check -> the check that failed first
    for row in checks:
        missing = [fact for fact in row.needs if fact not in facts]
        if missing:
            blocker = giver[missing[0]]
            root_cause[row.name] = root_cause.get(blocker, blocker)
            results[row.name] = Check(row.name, "skip", skip_reason(results[root_cause[row.name]]))
            continue
        outcome = _outcome(row, {fact: facts[fact] for fact in row.needs})
        if outcome.status == "ok":
            if set(outcome.facts) != set(row.gives):
                raise RuntimeError(
                    f"check {row.name!r} gave {sorted(outcome.facts)}, not {row.gives}"
                )
            facts.update(outcome.facts)
        results[row.name] = Check(row.name, outcome.status, outcome.detail, outcome.fix)
    return list(results.values())


def _outcome(row: Row, facts: Mapping[str, Any]) -> Outcome:
    try:
        return row.check(**facts)
    except Failed as err:
        return failed(err.detail, err.fix)
    except ECSExecutorError as err:
        return failed(str(err), aws_error_fix(err, facts.get("clients")))
    except ValueError as err:  # a policy document that is not JSON
        return failed(f"could not read what AWS answered: {err}", IAM_FIX)


def skip_reason(cause: Check) -> str:
    """Why a check was not run, naming the earlier check it waited for. Pure."""
    if cause.status == "fail":
        return f"not checked: {cause.name} failed"
    return f"not checked: {cause.name} was not checked"


# ----------------------------------------------------------------- I/O helpers
def runner_image_uri(config: ExecutorConfig, clients: aws.Clients) -> str:
    return config.container_image_uri or default_runner_image(
        clients.ecr_registry(), config.ecr_repo_name
    )


def _read_role(
    clients: aws.Clients, name_or_arn: str, key: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """The role's name, its policy documents (inline and attached), and its trust policy."""
    name = name_or_arn.rsplit("/", 1)[-1]
    iam = clients.iam
    try:
        role = aws.call(iam.get_role, f"read IAM role {name}", RoleName=name)["Role"]
    except ECSExecutorError as err:
        if aws.has_code(err, "NoSuchEntity"):
            raise Failed(
                f"IAM role {name} does not exist",
                f"`covalent-ecs infra deploy` creates it; or set {key}",
            ) from err
        raise
    documents = _identity_policies(clients, "role", name)
    return name, documents, iampolicy.as_document(role["AssumeRolePolicyDocument"])


# IAM's calls per kind of identity: inline policies, attached managed policies.
_POLICY_CALLS = {
    "role": ("list_role_policies", "get_role_policy", "list_attached_role_policies", "RoleName"),
    "user": ("list_user_policies", "get_user_policy", "list_attached_user_policies", "UserName"),
    "group": (
        "list_group_policies",
        "get_group_policy",
        "list_attached_group_policies",
        "GroupName",
    ),
}


def _identity_policies(clients: aws.Clients, kind: str, name: str) -> list[dict[str, Any]]:
    """The policy documents of an IAM role, user (its groups' included) or group: inline
    and attached. Only documents are read; AWS managed ones we know are not fetched."""
    iam = clients.iam
    list_inline, get_inline, list_attached, name_key = _POLICY_CALLS[kind]
    reading = f"read the policies of IAM {kind} {name}"
    named = {name_key: name}
    inline = aws.call(getattr(iam, list_inline), reading, **named)["PolicyNames"]
    documents = [
        iampolicy.as_document(
            aws.call(getattr(iam, get_inline), reading, **named, PolicyName=policy)[
                "PolicyDocument"
            ]
        )
        for policy in inline
    ]
    attached = aws.call(getattr(iam, list_attached), reading, **named)
    for policy in attached["AttachedPolicies"]:
        arn = policy["PolicyArn"]
        known = iampolicy.aws_managed_policy(arn)
        if known is not None:
            documents.append(known)
            continue
        version = aws.call(iam.get_policy, reading, PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = aws.call(iam.get_policy_version, reading, PolicyArn=arn, VersionId=version)
        documents.append(iampolicy.as_document(document["PolicyVersion"]["Document"]))
    if kind == "user":
        groups = aws.call(iam.list_groups_for_user, reading, UserName=name)["Groups"]
        for group in groups:
            documents += _identity_policies(clients, "group", group["GroupName"])
    return documents


def aws_error_fix(err: ECSExecutorError, clients: aws.Clients | None) -> str:
    """The fix for an AWS call a check could not make."""
    if aws.is_unreachable(err):
        return unreachable_fix(clients.settings.endpoint_url if clients else "")
    return IAM_FIX
