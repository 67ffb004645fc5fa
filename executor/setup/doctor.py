"""``covalent-ecs doctor``: check a configuration against the AWS account before a workflow.

Each check gives one ``Check`` (ok / fail / skip) with what was found and, on failure,
the fix. Checks run in order and later ones are skipped when what they need failed
(no credentials: no AWS check; no subnet: no route check). The configuration is
validated first (``config.build_config``), before any AWS call.

What is checked (README "Setting up AWS" lists the same):
config, launch settings, credentials/region, bucket (exists, in the caller's account),
bucket writable (put + delete under the staging prefix), cluster (ACTIVE), execution
role (exists, trusted by ecs-tasks.amazonaws.com, may pull the image and write logs),
task role (exists, trusted, may read/write the staging prefix), subnet and security
group (exist, one VPC, outbound HTTPS), route to ECR (public IP + internet gateway,
NAT gateway, or VPC endpoints), log group, runner image (in ECR, this version's tag).

Only read calls are made, plus one small object put and deleted in the bucket.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from covalent_ecs_runtime import contract

from .. import aws, taskdefs
from ..config import ExecutorConfig, build_config
from ..errors import ConfigError, ECSExecutorError
from ..image.refs import parse_ecr_image
from ..staging import STAGING_ROOT
from . import iampolicy

Status = Literal["ok", "fail", "skip"]
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
# Doctor fails fast: a missing endpoint should not cost the config's full retry budget.
DOCTOR_MAX_ATTEMPTS = 3
# What a task in a subnet without internet access needs to reach (AWS docs:
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html).
REQUIRED_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "s3", "logs")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class _Failed(Exception):
    """A check failed; carries its detail and fix."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str = "") -> Check:
    return Check(name, "fail", detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


# ---------------------------------------------------------------------- entry point
def run_checks(
    given: Mapping[str, Any], from_file: Mapping[str, Any], *, source: str = ""
) -> list[Check]:
    """Every check for ``given`` (overrides) over ``from_file`` ([executors.ecs])."""
    return list(_checks(given, from_file, source))


def _checks(given: Mapping[str, Any], from_file: Mapping[str, Any], source: str) -> Iterator[Check]:
    try:
        config = build_config(given, from_file)
    except ConfigError as err:
        lines = str(err).splitlines()
        for problem in [line.strip() for line in lines[1:]] or [str(err)]:
            yield fail("config", problem, f"fix it in {source or '[executors.ecs]'}")
        return
    yield ok("config", f"valid ({source})" if source else "valid")
    try:
        config.require_launch_settings()
    except ConfigError as err:
        yield fail(
            "launch settings",
            str(err),
            "`covalent-ecs infra deploy --write-conf PATH` writes a complete block",
        )
        return

    config = config.model_copy(update={"max_attempts": min(config.max_attempts, DOCTOR_MAX_ATTEMPTS)})
    try:
        clients = aws.clients_for(config)
        identity = clients.sts.get_caller_identity()
    except ConfigError as err:
        yield fail("credentials", str(err), "set region/profile/credentials in [executors.ecs]")
        return
    except (ClientError, BotoCoreError) as err:
        translated = (
            aws.translate_client_error(err, "look up the caller (sts:GetCallerIdentity)")
            if isinstance(err, ClientError)
            else aws.translate_botocore_error(err, "look up the caller (sts:GetCallerIdentity)")
        )
        yield fail(
            "credentials",
            str(translated),
            "set credentials/profile in [executors.ecs], or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or run where an instance/task role applies",
        )
        return
    account = identity["Account"]
    yield ok("credentials", f"{identity['Arn']} (account {account}), region {clients.region}")

    context = _Context(config, clients, account)
    for name, check in context.checks():
        try:
            yield check()
        except _Failed as err:
            yield fail(name, err.detail, err.fix)
        except ECSExecutorError as err:
            yield fail(name, str(err), "see README 'IAM roles and policies' for what doctor reads")
        except ClientError as err:
            yield fail(name, str(aws.translate_client_error(err, f"check the {name}")))
        except BotoCoreError as err:
            yield fail(name, str(aws.translate_botocore_error(err, f"check the {name}")))
        except ValueError as err:  # a policy document that is not JSON
            yield fail(name, f"could not read what AWS answered: {err}")


# ------------------------------------------------------------------------- checks
class _Context:
    """One configuration against one account: the checks after credentials."""

    def __init__(self, config: ExecutorConfig, clients: aws.Clients, account: str) -> None:
        self.config = config
        self.clients = clients
        self.account = account
        self.partition = clients.partition
        self.region = clients.region
        self.vpc_id: str | None = None
        self.subnet_ok = False
        self.bucket_ok = False

    def checks(self) -> list[tuple[str, Callable[[], Check]]]:
        return [
            ("bucket", self.bucket),
            ("bucket writable", self.bucket_writable),
            ("cluster", self.cluster),
            ("execution role", self.execution_role),
            ("task role", self.task_role),
            ("subnet", self.subnet),
            ("security group", self.security_group),
            ("route to ECR", self.route_to_ecr),
            ("log group", self.log_group),
            ("runner image", self.runner_image),
        ]

    # -- S3 --------------------------------------------------------------------------
    def bucket(self) -> Check:
        bucket = self.config.s3_bucket_name
        try:
            # ExpectedBucketOwner: S3 answers 403 when the bucket is another account's,
            # so a look-alike bucket someone else owns is never used for staging.
            self.clients.s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=self.account)
        except ClientError as err:
            code = aws.error_code(err)
            if code in ("404", "NoSuchBucket"):
                raise _Failed(
                    f"s3://{bucket} does not exist",
                    "`covalent-ecs infra deploy` creates one; or set s3_bucket_name",
                ) from err
            if code in ("403", "AccessDenied"):
                raise _Failed(
                    f"s3://{bucket} is not a bucket of account {self.account} (or this identity "
                    "may not read it)",
                    "use a bucket in your account (s3_bucket_name), or grant s3:ListBucket on it",
                ) from err
            raise
        self.bucket_ok = True
        return ok("bucket", f"s3://{bucket} exists in account {self.account}")

    def bucket_writable(self) -> Check:
        if not self.bucket_ok:
            return skip("bucket writable", "needs the bucket")
        bucket = self.config.s3_bucket_name
        key = f"{STAGING_ROOT}/doctor-{secrets.token_hex(6)}"
        s3 = self.clients.s3
        try:
            s3.put_object(
                Bucket=bucket, Key=key, Body=b"covalent-ecs doctor", ServerSideEncryption="AES256",
                ExpectedBucketOwner=self.account,
            )
            s3.delete_object(Bucket=bucket, Key=key, ExpectedBucketOwner=self.account)
        except ClientError as err:
            raise _Failed(
                f"cannot put and delete s3://{bucket}/{key}: {aws.error_code(err)}: "
                f"{err.response.get('Error', {}).get('Message', '')}",
                f"allow s3:PutObject, s3:GetObject, s3:DeleteObject on "
                f"arn:{self.partition}:s3:::{bucket}/{STAGING_ROOT}/* for this identity",
            ) from err
        return ok("bucket writable", f"put and deleted s3://{bucket}/{key}")

    # -- ECS -------------------------------------------------------------------------
    def cluster(self) -> Check:
        name = self.config.ecs_cluster_name
        found = aws.call(self.clients.ecs.describe_clusters, "describe the cluster", clusters=[name])
        clusters = found.get("clusters") or []
        if not clusters:
            raise _Failed(
                f"ECS cluster {name} does not exist in {self.region}",
                "`covalent-ecs infra deploy` creates one; or set ecs_cluster_name",
            )
        cluster = clusters[0]
        if cluster.get("status") != "ACTIVE":
            raise _Failed(
                f"ECS cluster {name} is {cluster.get('status')} (deleted clusters stay INACTIVE)",
                "create it again (`covalent-ecs infra deploy`) or set ecs_cluster_name",
            )
        providers = cluster.get("capacityProviders") or []
        # On-demand tasks launch with launchType FARGATE, which every cluster accepts;
        # Spot goes through a capacity provider strategy, which needs the provider.
        wanted = self.config.capacity_provider
        if wanted != "FARGATE" and wanted not in providers:
            raise _Failed(
                f"capacity_provider = {wanted!r}, but cluster {name} has no {wanted} capacity "
                f"provider (it has: {', '.join(providers) or 'none'})",
                f"attach it (`aws ecs put-cluster-capacity-providers --cluster {name} "
                "--capacity-providers FARGATE FARGATE_SPOT --default-capacity-provider-strategy "
                "capacityProvider=FARGATE,weight=1`; the `covalent-ecs infra` stack has it), "
                'or set capacity_provider = "FARGATE"',
            )
        detail = ", ".join(providers) if providers else "launch type FARGATE (no capacity providers)"
        return ok("cluster", f"{name} is ACTIVE; {detail}")

    # -- IAM -------------------------------------------------------------------------
    def _role(self, name_or_arn: str, key: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        name = name_or_arn.rsplit("/", 1)[-1]
        iam = self.clients.iam
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as err:
            if aws.error_code(err) == "NoSuchEntity":
                raise _Failed(
                    f"IAM role {name} does not exist",
                    f"`covalent-ecs infra deploy` creates it; or set {key}",
                ) from err
            raise aws.translate_client_error(err, f"read IAM role {name}") from err
        documents = [
            iampolicy.as_document(
                aws.call(iam.get_role_policy, f"read {name}'s policy", RoleName=name, PolicyName=p)[
                    "PolicyDocument"
                ]
            )
            for p in aws.call(iam.list_role_policies, f"list {name}'s policies", RoleName=name)[
                "PolicyNames"
            ]
        ]
        attached = aws.call(
            iam.list_attached_role_policies, f"list {name}'s policies", RoleName=name
        )["AttachedPolicies"]
        for policy in attached:
            known = iampolicy.aws_managed_policy(policy["PolicyArn"])
            if known is not None:
                documents.append(known)
                continue
            version = aws.call(iam.get_policy, "read a policy", PolicyArn=policy["PolicyArn"])[
                "Policy"
            ]["DefaultVersionId"]
            documents.append(
                iampolicy.as_document(
                    aws.call(
                        iam.get_policy_version,
                        "read a policy",
                        PolicyArn=policy["PolicyArn"],
                        VersionId=version,
                    )["PolicyVersion"]["Document"]
                )
            )
        return name, documents, iampolicy.as_document(role["AssumeRolePolicyDocument"])

    def _trusted(self, name: str, trust: dict[str, Any]) -> None:
        if not iampolicy.trusts_service(trust, ECS_TASKS_SERVICE):
            raise _Failed(
                f"IAM role {name} cannot be assumed by ECS tasks",
                f"add a trust policy statement allowing sts:AssumeRole for the service "
                f"principal {ECS_TASKS_SERVICE}",
            )

    def execution_role(self) -> Check:
        name, documents, trust = self._role(
            self.config.ecs_task_execution_role_name, "ecs_task_execution_role_name"
        )
        self._trusted(name, trust)
        needs: list[tuple[str, str]] = []
        image = parse_ecr_image(self.image_uri())
        if image is not None:
            repository = (
                f"arn:{self.partition}:ecr:{image.region}:{image.account}:repository/{image.repository}"
            )
            needs.append(("ecr:GetAuthorizationToken", "*"))
            needs += [
                (action, repository)
                for action in (
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                )
            ]
        stream = (
            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:"
            f"{self.config.ecs_task_log_group_name}:log-stream:"
            f"{taskdefs.log_stream_name('doctor')}"
        )
        needs += [("logs:CreateLogStream", stream), ("logs:PutLogEvents", stream)]
        missing = iampolicy.missing_actions(documents, needs)
        if missing:
            raise _Failed(
                f"IAM role {name} may not: {'; '.join(missing)}",
                "attach AWS's AmazonECSTaskExecutionRolePolicy (or the template's "
                "pull-runner-image-and-write-logs policy) to it",
            )
        return ok(
            "execution role",
            f"{name} is trusted by {ECS_TASKS_SERVICE} and may pull the image and write logs",
        )

    def task_role(self) -> Check:
        name, documents, trust = self._role(self.config.ecs_task_role_name, "ecs_task_role_name")
        self._trusted(name, trust)
        objects = f"arn:{self.partition}:s3:::{self.config.s3_bucket_name}/{STAGING_ROOT}/doctor"
        missing = iampolicy.missing_actions(
            documents, [("s3:GetObject", objects), ("s3:PutObject", objects)]
        )
        if missing:
            raise _Failed(
                f"IAM role {name} may not: {'; '.join(missing)} (the runner reads the "
                "payload and writes the result there)",
                f"allow s3:GetObject and s3:PutObject on arn:{self.partition}:s3:::"
                f"{self.config.s3_bucket_name}/{STAGING_ROOT}/* in the task role",
            )
        return ok("task role", f"{name} is trusted by {ECS_TASKS_SERVICE} and may use the staging prefix")

    # -- network ---------------------------------------------------------------------
    def subnet(self) -> Check:
        subnet_id = self.config.ecs_task_subnet_id
        try:
            subnet = self.clients.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
        except ClientError as err:
            if "NotFound" in aws.error_code(err):
                raise _Failed(
                    f"subnet {subnet_id} does not exist in {self.region}",
                    "set ecs_task_subnet_id to a subnet of this region "
                    "(`covalent-ecs infra deploy` creates one)",
                ) from err
            raise aws.translate_client_error(err, "describe the subnet") from err
        self.vpc_id = subnet["VpcId"]
        self.subnet_ok = True
        return ok("subnet", f"{subnet_id} in {self.vpc_id} ({subnet.get('AvailabilityZone')})")

    def security_group(self) -> Check:
        group_id = self.config.ecs_task_security_group_id
        try:
            group = self.clients.ec2.describe_security_groups(GroupIds=[group_id])[
                "SecurityGroups"
            ][0]
        except ClientError as err:
            if "NotFound" in aws.error_code(err):
                raise _Failed(
                    f"security group {group_id} does not exist in {self.region}",
                    "set ecs_task_security_group_id (`covalent-ecs infra deploy` creates one)",
                ) from err
            raise aws.translate_client_error(err, "describe the security group") from err
        if self.vpc_id and group.get("VpcId") != self.vpc_id:
            raise _Failed(
                f"security group {group_id} is in {group.get('VpcId')}, the subnet in "
                f"{self.vpc_id}: ECS refuses the pair",
                "use a security group of the subnet's VPC",
            )
        if not allows_outbound_https(group.get("IpPermissionsEgress") or []):
            raise _Failed(
                f"security group {group_id} allows no outbound HTTPS (tcp/443): tasks "
                "cannot reach ECR, S3 or CloudWatch Logs",
                "add an egress rule for tcp/443 (or all traffic) to 0.0.0.0/0",
            )
        return ok("security group", f"{group_id} in {group.get('VpcId')}, outbound HTTPS allowed")

    def route_to_ecr(self) -> Check:
        if not self.subnet_ok or not self.vpc_id:
            return skip("route to ECR", "needs the subnet")
        ec2 = self.clients.ec2
        tables = aws.call(
            ec2.describe_route_tables,
            "describe route tables",
            Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}],
        )["RouteTables"]
        endpoints = aws.call(
            ec2.describe_vpc_endpoints,
            "describe VPC endpoints",
            Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}],
        )["VpcEndpoints"]
        status, detail, fix = ecr_route(
            tables,
            endpoints,
            subnet_id=self.config.ecs_task_subnet_id,
            region=self.region,
            assign_public_ip=self.config.assign_public_ip,
        )
        return Check("route to ECR", status, detail, fix)

    # -- logs and image ----------------------------------------------------------------
    def log_group(self) -> Check:
        name = self.config.ecs_task_log_group_name
        groups = aws.call(
            self.clients.logs.describe_log_groups, "describe log groups", logGroupNamePrefix=name
        )["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == name), None)
        if group is None:
            raise _Failed(
                f"log group {name} does not exist: tasks fail with ResourceInitializationError",
                "`covalent-ecs infra deploy` creates it; or set ecs_task_log_group_name",
            )
        retention = group.get("retentionInDays")
        kept = f"kept {retention} days" if retention else "kept forever (no retention set)"
        return ok("log group", f"{name} exists, {kept}")

    def image_uri(self) -> str:
        if self.config.container_image_uri:
            return self.config.container_image_uri
        return (
            f"{self.clients.ecr_registry()}/{self.config.ecr_repo_name}:{contract.runner_image_tag()}"
        )

    def runner_image(self) -> Check:
        uri = self.image_uri()
        image = parse_ecr_image(uri)
        if image is None:
            return skip("runner image", f"{uri} is not in ECR: doctor checks only ECR images")
        if image.region != self.region:
            return skip("runner image", f"{uri} is in {image.region}; doctor checks {self.region}")
        wanted = contract.runner_image_tag()
        image_id = {"imageDigest": image.digest} if image.digest else {"imageTag": image.tag}
        try:
            self.clients.ecr.describe_images(
                registryId=image.account, repositoryName=image.repository, imageIds=[image_id]
            )
        except ClientError as err:
            code = aws.error_code(err)
            if code == "RepositoryNotFoundException":
                raise _Failed(
                    f"ECR repository {image.repository} does not exist in {image.account}/{image.region}",
                    "`covalent-ecs infra deploy` creates it; or set ecr_repo_name",
                ) from err
            if code == "ImageNotFoundException":
                raise _Failed(
                    f"image {uri} is not in ECR: tasks would fail with CannotPullContainerError",
                    f"`covalent-ecs publish-image` pushes this version's runner ({wanted})",
                ) from err
            raise aws.translate_client_error(err, "describe the runner image") from err
        if image.tag and image.tag.startswith("runner-") and image.tag != wanted:
            raise _Failed(
                f"image {uri} is another version's runner; this client needs {wanted}",
                "`covalent-ecs publish-image`, then clear container_image_uri (or point it at "
                "the new tag)",
            )
        if image.tag == wanted:
            return ok("runner image", f"{uri} exists and is this version's runner")
        return ok(
            "runner image",
            f"{uri} exists (custom image: the runner checks Python and cloudpickle at run time)",
        )


# ------------------------------------------------------------------- pure helpers
def allows_outbound_https(egress_rules: list[dict[str, Any]]) -> bool:
    """True when some egress rule covers tcp/443 (to any destination)."""
    for rule in egress_rules:
        protocol = str(rule.get("IpProtocol"))
        if protocol == "-1":
            return True
        if protocol in ("tcp", "6") and rule.get("FromPort", 0) <= 443 <= rule.get("ToPort", 65535):
            return True
    return False


def ecr_route(
    route_tables: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
    *,
    subnet_id: str,
    region: str,
    assign_public_ip: bool,
) -> tuple[Status, str, str]:
    """Can a task in ``subnet_id`` reach ECR, S3 and CloudWatch Logs? Pure.

    The subnet's route table is the one associated with it, else the VPC's main one.
    """
    table = next(
        (t for t in route_tables for a in t.get("Associations", []) if a.get("SubnetId") == subnet_id),
        None,
    ) or next(
        (t for t in route_tables for a in t.get("Associations", []) if a.get("Main")), None
    )
    default_routes = [
        route
        for route in (table or {}).get("Routes", [])
        if route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("State") != "blackhole"
    ]
    table_id = (table or {}).get("RouteTableId", "no route table")
    services = {
        str(e.get("ServiceName", "")).removeprefix(f"com.amazonaws.{region}.")
        for e in endpoints
        if e.get("State", "available").lower() == "available"
    }
    missing_endpoints = [s for s in REQUIRED_ENDPOINT_SERVICES if s not in services]
    for route in default_routes:
        gateway = str(route.get("GatewayId", ""))
        if gateway.startswith("igw-"):
            if assign_public_ip:
                return "ok", f"{subnet_id} routes 0.0.0.0/0 to {gateway}; tasks get a public IP", ""
            if not missing_endpoints:
                break
            return (
                "fail",
                f"{subnet_id} routes 0.0.0.0/0 to {gateway} but assign_public_ip is false: "
                "tasks without a public IP cannot use an internet gateway",
                "set assign_public_ip = true, or route the subnet through a NAT gateway",
            )
        if route.get("NatGatewayId"):
            return "ok", f"{subnet_id} routes 0.0.0.0/0 to NAT gateway {route['NatGatewayId']}", ""
    if not missing_endpoints:
        return "ok", f"the VPC has endpoints for {', '.join(REQUIRED_ENDPOINT_SERVICES)}", ""
    for route in default_routes:
        target = next((str(v) for k, v in route.items() if k.endswith("Id") and v), "a target")
        return (
            "ok",
            f"{subnet_id} routes 0.0.0.0/0 to {target}; doctor cannot tell if that reaches ECR",
            "",
        )
    return (
        "fail",
        f"{subnet_id} has no route to ECR: {table_id} has no 0.0.0.0/0 route to an internet "
        f"or NAT gateway, and the VPC has no endpoints for {', '.join(missing_endpoints)}",
        "use a public subnet with assign_public_ip = true (`covalent-ecs infra deploy` creates "
        "one), add a NAT gateway route, or add VPC endpoints for ecr.api, ecr.dkr, s3 and logs",
    )


def summary(checks: list[Check]) -> dict[str, Any]:
    """The JSON document ``doctor --json`` prints."""
    return {
        "ok": not any(check.status == "fail" for check in checks),
        "checks": [check.as_dict() for check in checks],
    }
