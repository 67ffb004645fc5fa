"""What ``covalent-ecs doctor``'s checks judge, as pure functions: AWS's answers (and the
configuration) in, an ``Outcome`` out. Tested without AWS (tests/unit/test_doctor_rules.py);
the checks that fetch the answers are in ``doctor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import taskdefs
from ..config import build_config
from ..errors import ConfigError
from ..image.refs import ImageRef
from . import iampolicy

# "warn": something doctor could not verify; it does not fail doctor.
Status = Literal["ok", "fail", "skip", "warn"]
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
# What a task in a subnet without internet access needs to reach (AWS docs:
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html).
REQUIRED_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "s3", "logs")


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; ``facts`` (only when it passed) feed later checks."""

    status: Status
    detail: str
    fix: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)


def passed(detail: str, **facts: Any) -> Outcome:
    return Outcome("ok", detail, facts=facts)


def failed(detail: str, fix: str) -> Outcome:
    return Outcome("fail", detail, fix)


def not_checked(detail: str) -> Outcome:
    return Outcome("skip", detail)


def warned(detail: str, fix: str) -> Outcome:
    return Outcome("warn", detail, fix)


WRITE_BLOCK_FIX = (
    "write one: `covalent-ecs infra deploy --write-conf {path}` (AWS), or "
    "`covalent-ecs sandbox --write-conf {path}` (local); or give --conf the file that has it"
)


def judge_config(
    conf_path: str,
    file_exists: bool,
    section: Mapping[str, Any] | None,
    overrides: Mapping[str, Any],
) -> Outcome:
    """Is ``[executors.ecs]`` there, more than defaults, and valid with ``overrides``?"""
    fix = WRITE_BLOCK_FIX.format(path=conf_path)
    if section is None and not file_exists:
        return failed(
            f"cannot read {conf_path}: no such file, so every key would take its default", fix
        )
    if section is None:
        return failed(
            f"{conf_path} has no [executors.ecs] section, so every key would take its default", fix
        )
    try:
        config = build_config(overrides, section)
    except ConfigError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:]] or [str(err)]
        return failed("\n".join(problems), f"fix it in {conf_path}")
    if build_config({}, section) == build_config({}, {}):
        return failed(
            f"[executors.ecs] in {conf_path} holds only the defaults (Covalent writes them "
            "when it first runs): nothing is configured yet",
            fix,
        )
    given = ", ".join(f"--{key.replace('_', '-')}" for key in overrides)
    return passed(
        f"valid ({conf_path}{', with ' + given if given else ''})", validated_config=config
    )


def unreachable_fix(endpoint_url: str) -> str:
    where = endpoint_url or "the AWS endpoint"
    return (
        f"check that {where} is reachable from here (network, proxy, VPN) and is an AWS API "
        "(region, endpoint_url / AWS_ENDPOINT_URL); the credentials were not tried"
    )


def judge_cluster(
    clusters: list[dict[str, Any]], *, name: str, region: str, capacity_provider: str
) -> Outcome:
    if not clusters:
        return failed(
            f"ECS cluster {name} does not exist in {region}",
            "`covalent-ecs infra deploy` creates one; or set ecs_cluster_name",
        )
    cluster = clusters[0]
    if cluster.get("status") != "ACTIVE":
        return failed(
            f"ECS cluster {name} is {cluster.get('status')} (deleted clusters stay INACTIVE)",
            "create it again (`covalent-ecs infra deploy`) or set ecs_cluster_name",
        )
    providers = cluster.get("capacityProviders") or []
    # On-demand tasks launch with launchType FARGATE, which every cluster accepts; Spot
    # goes through a capacity provider strategy, which needs the provider.
    if capacity_provider != "FARGATE" and capacity_provider not in providers:
        return failed(
            f"capacity_provider = {capacity_provider!r}, but cluster {name} has no "
            f"{capacity_provider} capacity provider (it has: {', '.join(providers) or 'none'})",
            f"attach it (`aws ecs put-cluster-capacity-providers --cluster {name} "
            "--capacity-providers FARGATE FARGATE_SPOT --default-capacity-provider-strategy "
            "capacityProvider=FARGATE,weight=1`; the `covalent-ecs infra` stack has it), "
            'or set capacity_provider = "FARGATE"',
        )
    detail = ", ".join(providers) if providers else "launch type FARGATE (no capacity providers)"
    return passed(f"{name} is ACTIVE; {detail}")


def execution_role_needs(
    image: ImageRef | None, *, partition: str, region: str, account: str, log_group: str
) -> list[tuple[str, str]]:
    """(action, resource) pairs the execution role must allow: pull an ECR image, write logs."""
    needs: list[tuple[str, str]] = []
    if image is not None:
        repository = (
            f"arn:{partition}:ecr:{image.region}:{image.account}:repository/{image.repository}"
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
        f"arn:{partition}:logs:{region}:{account}:log-group:{log_group}:log-stream:"
        f"{taskdefs.log_stream_name('doctor')}"
    )
    return needs + [("logs:CreateLogStream", stream), ("logs:PutLogEvents", stream)]


def judge_role(
    name: str, trust: dict[str, Any], missing: list[str], *, why: str, fix: str, purpose: str
) -> Outcome:
    """A role ECS tasks can assume, whose policies allow what it is for."""
    if not iampolicy.trusts_service(trust, ECS_TASKS_SERVICE):
        return failed(
            f"IAM role {name} cannot be assumed by ECS tasks",
            f"add a trust policy statement allowing sts:AssumeRole for the service "
            f"principal {ECS_TASKS_SERVICE}",
        )
    if missing:
        return failed(f"IAM role {name} may not: {'; '.join(missing)}{why}", fix)
    return passed(f"{name} is trusted by {ECS_TASKS_SERVICE} and {purpose}")


def judge_subnets(found: list[dict[str, Any]], wanted: list[str], region: str) -> Outcome:
    """The configured subnets as described: all must exist, in one VPC."""
    by_id = {s["SubnetId"]: s for s in found}
    missing = [one for one in wanted if one not in by_id]
    if missing:
        return failed(
            f"subnet{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"do{'es' if len(missing) == 1 else ''} not exist in {region}",
            "set ecs_task_subnet_id to subnets of this region "
            "(`covalent-ecs infra deploy` creates them)",
        )
    vpcs = sorted({by_id[one]["VpcId"] for one in wanted})
    if len(vpcs) > 1:
        return failed(
            f"the subnets are in {len(vpcs)} VPCs ({', '.join(vpcs)}): ECS needs all of a "
            "task's subnets in one VPC",
            "list subnets of a single VPC in ecs_task_subnet_id",
        )
    zones = sorted({str(by_id[one].get("AvailabilityZone")) for one in wanted})
    spread = f"; {len(zones)} zones: {', '.join(zones)}" if len(wanted) > 1 else f" ({zones[0]})"
    return passed(f"{', '.join(wanted)} in {vpcs[0]}{spread}", vpc_id=vpcs[0])


def judge_security_groups(
    groups: list[dict[str, Any]], wanted: list[str], vpc_id: str, region: str
) -> Outcome:
    """All groups exist in the subnets' VPC; together they allow outbound HTTPS."""
    by_id = {g["GroupId"]: g for g in groups}
    missing = [one for one in wanted if one not in by_id]
    if missing:
        return failed(
            f"security group {', '.join(missing)} does not exist in {region}",
            "set ecs_task_security_group_id (`covalent-ecs infra deploy` creates one)",
        )
    elsewhere = [one for one in wanted if by_id[one].get("VpcId") != vpc_id]
    if elsewhere:
        where = ", ".join(f"{one} is in {by_id[one].get('VpcId')}" for one in elsewhere)
        return failed(
            f"security group {where}, the subnet in {vpc_id}: ECS refuses the pair",
            "use a security group of the subnet's VPC",
        )
    # A task's groups add up: one allowing outbound HTTPS is enough.
    if not any(allows_outbound_https(g.get("IpPermissionsEgress") or []) for g in groups):
        return failed(
            f"security group {', '.join(wanted)} allows no outbound HTTPS (tcp/443): tasks "
            "cannot reach ECR, S3 or CloudWatch Logs",
            "add an egress rule for tcp/443 (or all traffic) to 0.0.0.0/0",
        )
    return passed(f"{', '.join(wanted)} in {vpc_id}, outbound HTTPS allowed")


def every_subnet(outcomes: list[Outcome]) -> Outcome:
    """One outcome for several subnets' routes: the first failure, else all passed."""
    for outcome in outcomes:
        if outcome.status != "ok":
            return outcome
    if len(outcomes) == 1:
        return outcomes[0]
    return passed("; ".join(o.detail for o in outcomes))


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
) -> Outcome:
    """Can a task in ``subnet_id`` reach ECR, S3 and CloudWatch Logs?

    The subnet's route table is the one associated with it, else the VPC's main one.
    """
    table = next(
        (
            t
            for t in route_tables
            for a in t.get("Associations", [])
            if a.get("SubnetId") == subnet_id
        ),
        None,
    ) or next((t for t in route_tables for a in t.get("Associations", []) if a.get("Main")), None)
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
                return passed(f"{subnet_id} routes 0.0.0.0/0 to {gateway}; tasks get a public IP")
            if not missing_endpoints:
                break
            return failed(
                f"{subnet_id} routes 0.0.0.0/0 to {gateway} but assign_public_ip is false: "
                "tasks without a public IP cannot use an internet gateway",
                "set assign_public_ip = true, or route the subnet through a NAT gateway",
            )
        if route.get("NatGatewayId"):
            return passed(f"{subnet_id} routes 0.0.0.0/0 to NAT gateway {route['NatGatewayId']}")
    if not missing_endpoints:
        return passed(f"the VPC has endpoints for {', '.join(REQUIRED_ENDPOINT_SERVICES)}")
    for route in default_routes:
        target = next((str(v) for k, v in route.items() if k.endswith("Id") and v), "a target")
        return passed(
            f"{subnet_id} routes 0.0.0.0/0 to {target}; doctor cannot tell if that reaches ECR"
        )
    return failed(
        f"{subnet_id} has no route to ECR: {table_id} has no 0.0.0.0/0 route to an internet "
        f"or NAT gateway, and the VPC has no endpoints for {', '.join(missing_endpoints)}",
        "use a public subnet with assign_public_ip = true (`covalent-ecs infra deploy` creates "
        "one), add a NAT gateway route, or add VPC endpoints for ecr.api, ecr.dkr, s3 and logs",
    )


def judge_log_group(groups: list[dict[str, Any]], name: str) -> Outcome:
    group = next((g for g in groups if g["logGroupName"] == name), None)
    if group is None:
        return failed(
            f"log group {name} does not exist: tasks fail with ResourceInitializationError",
            "`covalent-ecs infra deploy` creates it; or set ecs_task_log_group_name",
        )
    retention = group.get("retentionInDays")
    kept = f"kept {retention} days" if retention else "kept forever (no retention set)"
    return passed(f"{name} exists, {kept}")


def judge_runner_image(uri: str, image: ImageRef, wanted_tag: str) -> Outcome:
    """An image that exists: this version's runner, another version's, or a custom one."""
    if image.tag and image.tag.startswith("runner-") and image.tag != wanted_tag:
        return failed(
            f"image {uri} is another version's runner; this client needs {wanted_tag}",
            "`covalent-ecs publish-image`, then clear container_image_uri (or point it at "
            "the new tag)",
        )
    if image.tag == wanted_tag:
        return passed(f"{uri} exists and is this version's runner")
    return passed(
        f"{uri} exists (custom image: the runner checks Python and cloudpickle at run time)"
    )


# ------------------------------------------------------------ the client identity
EXECUTOR_USER = "the executor"
COMMAND_USERS = {command: f"`covalent-ecs {command}`" for command in iampolicy.COMMAND_NEEDS}
CLIENT_POLICY_FIX = (
    "attach the stack's client policy (output ClientPolicyArn of `covalent-ecs infra "
    "deploy`) to {principal}, or allow these actions on these resources"
)


@dataclass(frozen=True)
class Principal:
    """Whose policies decide what the caller may do: an IAM ``user`` or ``role`` by
    name, or ``kind`` "root" / "federated" / "unknown" when none can be read."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"IAM {self.kind} {self.name}" if self.kind in ("user", "role") else self.name


def caller_principal(arn: str) -> Principal:
    """The identity behind a GetCallerIdentity ARN. An assumed role's session
    (``arn:aws:sts::1:assumed-role/Name/session``) is role ``Name``; paths are dropped
    (IAM's Get*/List* calls take the bare name)."""
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else ""
    kind, _, rest = resource.partition("/")
    if kind == "assumed-role" and rest:
        return Principal("role", rest.split("/", 1)[0])
    if kind in ("user", "role") and rest:
        return Principal(kind, rest.rsplit("/", 1)[-1])
    if resource == "root":
        return Principal("root", f"the root user of account {arn.split(':')[4]}")
    if kind == "federated-user":
        return Principal("federated", f"federated user {rest}")
    return Principal("unknown", arn)


def client_needs(
    config: Any, *, partition: str, region: str, account: str, image: ImageRef | None
) -> dict[str, list[tuple[str, str]]]:
    """User ("the executor", "`covalent-ecs ps`"...) -> the (action, resource) pairs
    the client identity needs for it, for this configuration."""

    def role_arn(name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:{partition}:iam::{account}:role/{name_or_arn}"

    names = {
        "partition": partition, "region": region, "account": account,
        "bucket": config.s3_bucket_name, "cluster": config.ecs_cluster_name,
        "log_group": config.ecs_task_log_group_name,
        "family": taskdefs.task_definition_family(config.ecs_task_family_name, {}),
        "execution_role_arn": role_arn(config.ecs_task_execution_role_name),
        "task_role_arn": role_arn(config.ecs_task_role_name),
    }  # fmt: skip
    executor = [(action, resource.format(**names)) for action, resource in iampolicy.EXECUTOR_NEEDS]
    if image is not None:
        action, resource = iampolicy.ECR_IMAGE_NEED
        executor.append((action, resource.format(
            partition=partition, ecr_region=image.region, ecr_account=image.account,
            repository=image.repository,
        )))  # fmt: skip
    return {
        EXECUTOR_USER: executor,
        **{
            user: iampolicy.command_needs(command, **names)
            for command, user in COMMAND_USERS.items()
        },
    }


def _users_of(needs: dict[str, list[tuple[str, str]]]) -> str:
    commands = [user for user in needs if user != EXECUTOR_USER]
    return f"{EXECUTOR_USER}'s calls and those of {', '.join(commands)}"


def judge_client(
    principal: Principal,
    documents: list[dict[str, Any]] | None,
    needs: dict[str, list[tuple[str, str]]],
    *,
    unreadable: str = "",
) -> Outcome:
    """Do the client identity's policies allow what the executor and the commands call?
    ``documents`` None: they could not be read (``unreadable`` says why): a warning."""
    if documents is None:
        actions = sorted({action for pairs in needs.values() for action, _ in pairs})
        return warned(
            f"{principal}: {unreadable}, so {_users_of(needs)} were not verified "
            f"({', '.join(actions)})",
            "let this identity read its own policies (iam:Get*/List* on itself) for doctor "
            "to check them, or check by hand that it has the stack's client policy "
            "(ClientPolicyArn of `covalent-ecs infra deploy`)",
        )
    missing = iampolicy.missing_with_users(documents, needs)
    if missing:
        return failed(
            f"{principal} may not: " + "; ".join(missing),
            CLIENT_POLICY_FIX.format(principal=principal),
        )
    count = len({pair for pairs in needs.values() for pair in pairs})
    return passed(f"{principal} may make {_users_of(needs)} ({count} action/resource pairs)")
