"""The CloudFormation stack behind ``covalent-ecs infra template|deploy|destroy``.

The template (``templates/covalent-ecs.yaml``, package data, validated with cfn-lint in
the tests) creates everything a workflow needs in one account and region. Its outputs
named like a config key in CamelCase (``S3BucketName`` -> ``s3_bucket_name``) are the
``[executors.ecs]`` block; ``config_from_outputs`` turns them into it.

``deploy`` creates the stack (or updates it when it exists) and ``destroy`` deletes it,
both through boto3 with one progress line per stack event. Template parameters are
validated against the template's own constraints before any AWS call.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from .. import aws
from ..config import CONFIG_KEYS
from ..errors import AWSSetupError, ConfigError, ECSExecutorError

TEMPLATE_FILE = "covalent-ecs.yaml"
DEFAULT_STACK_NAME = "covalent-ecs"
# Generated IAM role and policy names (no RoleName in the template) need CAPABILITY_IAM.
CAPABILITIES = ["CAPABILITY_IAM"]
# Outputs that are not config keys, and what they are for.
EXTRA_OUTPUTS = {"ClientPolicyArn": "managed policy for the identity running the Covalent server"}
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
# Delete 1000 keys per DeleteObjects, the S3 maximum.
_DELETE_BATCH = 1000

Echo = Callable[[str], None]


# ------------------------------------------------------------------------ template
def template_body() -> str:
    """The CloudFormation template (YAML), as shipped in the package."""
    return resources.files(__package__).joinpath("templates", TEMPLATE_FILE).read_text()


@cache
def template() -> dict[str, Any]:
    """The template parsed; CloudFormation's short tags (``!Ref``...) become plain values."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]

    _Loader.add_multi_constructor("!", _untagged)
    return dict(yaml.load(template_body(), Loader=_Loader))  # noqa: S506 - SafeLoader subclass


def output_config_key(output_key: str) -> str | None:
    """The config key an output stands for (``EcsClusterName`` -> ``ecs_cluster_name``)."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", output_key).lower()
    return snake if snake in CONFIG_KEYS else None


def config_from_outputs(outputs: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """The ``[executors.ecs]`` values a stack's outputs give. Pure."""
    config: dict[str, Any] = {}
    for output in outputs:
        key = output_config_key(output["OutputKey"])
        if key is None:
            continue
        value: Any = output["OutputValue"]
        if key == "assign_public_ip":
            value = value == "true"
        elif key == "ecs_task_subnet_id" and "," in value:
            value = value.split(",")  # one subnet per availability zone
        config[key] = value
    return config


# ---------------------------------------------------------------------- parameters
def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """``["Name=Value", ...]`` checked against the template's parameters. Pure.

    Raises ConfigError naming every bad parameter and what is valid, so nothing bad
    reaches CloudFormation.
    """
    declared: dict[str, dict[str, Any]] = template()["Parameters"]
    values: dict[str, str] = {}
    problems: list[str] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            problems.append(f"parameter {pair!r}: expected Name=Value")
            continue
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(declared)}"
            problems.append(f"unknown parameter {name!r}; {hint}")
            continue
        problem = _parameter_problem(declared[name], value)
        if problem:
            problems.append(f"parameter {name}={value!r}: {problem}")
        values[name] = value
    effective = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    effective.update(values)
    if effective.get("CreateNetwork") == "false":
        missing = [n for n in ("ExistingSubnetId", "ExistingSecurityGroupId") if not effective[n]]
        if missing:
            problems.append(
                f"CreateNetwork=false needs {' and '.join(missing)} (the tasks' subnet and "
                "security group), or leave CreateNetwork=true to create a public subnet"
            )
    if problems:
        raise ConfigError("invalid stack parameters:\n  " + "\n  ".join(problems))
    return values


def _parameter_problem(spec: Mapping[str, Any], value: str) -> str | None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(choice) for choice in allowed]:
        return f"choose one of {', '.join(str(choice) for choice in allowed)}"
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return "expected a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"must be at least {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"must be at most {spec['MaxValue']}"
    pattern = spec.get("AllowedPattern")
    if pattern and not re.fullmatch(pattern, value):
        return f"{spec.get('Description', '').strip()} (must match {pattern})"
    return None


def check_stack_name(name: str) -> str:
    if not _STACK_NAME_RE.match(name):
        raise ConfigError(
            f"stack name {name!r}: use a letter then up to 127 letters, digits and '-' "
            "(it also names the ECS cluster)"
        )
    return name


# -------------------------------------------------------------------- deploy/destroy
def describe_stack(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack, or None when there is none of that name (or it was deleted)."""
    try:
        stacks = aws.call(
            cloudformation.describe_stacks, f"describe stack {stack_name}", StackName=stack_name
        )["Stacks"]
    except ECSExecutorError as err:
        # CloudFormation answers ValidationError "Stack with id X does not exist".
        if aws.has_code(err, "ValidationError") and "does not exist" in str(err):
            return None
        raise
    live = [stack for stack in stacks if stack.get("StackStatus") != "DELETE_COMPLETE"]
    return dict(live[0]) if live else None


def deploy(
    clients: aws.Clients,
    stack_name: str,
    parameters: Mapping[str, str],
    *,
    echo: Echo,
    poll_interval_s: float = 5.0,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Create or update the stack; return the ``[executors.ecs]`` values of its outputs."""
    cloudformation = clients.cloudformation
    echo(f"looking up stack {stack_name} at {cloudformation.meta.endpoint_url} ({clients.region})")
    existing = describe_stack(cloudformation, stack_name)
    request = {
        "StackName": stack_name,
        "TemplateBody": template_body(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": "covalent-ecs:stack", "Value": stack_name}],
    }
    seen = _event_ids(cloudformation, stack_name) if existing else set()
    if existing is None:
        echo(f"creating stack {stack_name} in {clients.region}")
        # DELETE on failure: a failed first attempt leaves nothing to clean up before
        # the next one (ROLLBACK would leave a ROLLBACK_COMPLETE stack to delete).
        created = aws.call(
            cloudformation.create_stack, f"create stack {stack_name}", OnFailure="DELETE", **request
        )
        # Follow it by id: a failed creation deletes the stack, and a deleted stack's
        # name no longer resolves (its id does, with the events saying why).
        stack_id = created["StackId"]
        done = {"CREATE_COMPLETE"}
    else:
        status = existing["StackStatus"]
        if status.endswith("_IN_PROGRESS"):
            raise AWSSetupError(
                f"stack {stack_name} is {status}: wait for it to finish, then run this again"
            )
        if status in _NOT_UPDATABLE:
            raise AWSSetupError(
                f"stack {stack_name} is {status} ({_NOT_UPDATABLE[status]}) and cannot be "
                f"updated: run `covalent-ecs infra destroy --stack-name {stack_name}` first"
            )
        echo(f"updating stack {stack_name} ({status}) in {clients.region}")
        try:
            aws.call(cloudformation.update_stack, f"update stack {stack_name}", **request)
        except ECSExecutorError as err:
            up_to_date = "No updates are to be performed" in str(err)
            if not (aws.has_code(err, "ValidationError") and up_to_date):
                raise
            echo("the stack is up to date")
            return config_from_outputs(existing.get("Outputs", []))
        stack_id = existing["StackId"]
        done = {"UPDATE_COMPLETE"}
    stack = _wait(
        cloudformation, stack_name, stack_id, seen, done, echo, poll_interval_s, timeout_s
    )
    return config_from_outputs(stack.get("Outputs", []))


def stack_outputs(clients: aws.Clients, stack_name: str) -> list[dict[str, str]]:
    stack = describe_stack(clients.cloudformation, stack_name)
    return list(stack.get("Outputs", [])) if stack else []


def destroy(
    clients: aws.Clients,
    stack_name: str,
    *,
    echo: Echo,
    poll_interval_s: float = 5.0,
    timeout_s: float = 1800.0,
) -> bool:
    """Empty the staging bucket and delete the stack; False when there was no stack."""
    cloudformation = clients.cloudformation
    echo(f"looking up stack {stack_name} at {cloudformation.meta.endpoint_url} ({clients.region})")
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        echo(f"no stack named {stack_name} in {clients.region}: nothing to delete")
        return False
    values = config_from_outputs(stack.get("Outputs", []))
    if values.get("s3_bucket_name"):
        # CloudFormation cannot delete a bucket that still holds objects.
        bucket = values["s3_bucket_name"]
        echo(f"emptied s3://{bucket} ({empty_bucket(clients.s3, bucket)} objects)")
    if values.get("ecr_repo_name"):
        # The template's EmptyOnDelete does this on AWS; emptying first also covers
        # stacks made before it and emulators without it (moto 5.2.5).
        repository = values["ecr_repo_name"]
        echo(f"emptied ECR repository {repository} ({empty_repository(clients.ecr, repository)} images)")
    seen = _event_ids(cloudformation, stack_name)
    echo(f"deleting stack {stack_name} in {clients.region}")
    aws.call(cloudformation.delete_stack, f"delete stack {stack_name}", StackName=stack["StackId"])
    # Follow it by id: after deletion a name no longer resolves, an id does.
    _wait(
        cloudformation, stack_name, stack["StackId"], seen, {"DELETE_COMPLETE"}, echo,
        poll_interval_s, timeout_s,
    )
    return True


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object in ``bucket``; return how many were deleted."""
    removed = 0
    try:
        for page in aws.pages(s3, "list_objects_v2", f"list s3://{bucket}", Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                aws.call(
                    s3.delete_objects,
                    f"empty s3://{bucket}",
                    Bucket=bucket,
                    Delete={"Objects": batch, "Quiet": True},
                )
                removed += len(batch)
    except ECSExecutorError as err:
        if aws.has_code(err, "NoSuchBucket"):
            return removed
        raise
    return removed


def empty_repository(ecr: Any, repository: str) -> int:
    """Delete every image in an ECR repository; return how many were deleted."""
    removed = 0
    try:
        for page in aws.pages(
            ecr, "list_images", f"list images in {repository}", repositoryName=repository
        ):
            ids = page.get("imageIds", [])
            # BatchDeleteImage takes at most 100 image ids per call.
            for start in range(0, len(ids), 100):
                batch = ids[start : start + 100]
                aws.call(
                    ecr.batch_delete_image,
                    f"empty ECR repository {repository}",
                    repositoryName=repository,
                    imageIds=batch,
                )
                removed += len(batch)
    except ECSExecutorError as err:
        if aws.has_code(err, "RepositoryNotFoundException"):
            return removed
        raise
    return removed


def _event_ids(cloudformation: Any, stack: str) -> set[str]:
    try:
        events = aws.call(
            cloudformation.describe_stack_events, f"read stack {stack}'s events", StackName=stack
        )["StackEvents"]
    except ECSExecutorError:
        return set()
    return {event["EventId"] for event in events}


def describe_event(event: Mapping[str, Any]) -> str:
    """One progress line: time, status, logical id, type and reason."""
    when = event.get("Timestamp")
    stamp = when.strftime("%H:%M:%S") if hasattr(when, "strftime") else str(when or "")
    reason = event.get("ResourceStatusReason") or ""
    line = (
        f"{stamp} {event.get('ResourceStatus', ''):<20} {event.get('LogicalResourceId', '')}"
        f" ({event.get('ResourceType', '')})"
    )
    return f"{line}: {reason}" if reason else line


def _wait(
    cloudformation: Any,
    stack_name: str,
    stack_id: str,
    seen: set[str],
    done: set[str],
    echo: Echo,
    poll_interval_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    new_events: list[Mapping[str, Any]] = []
    while True:
        events = aws.call(
            cloudformation.describe_stack_events, f"follow stack {stack_name}", StackName=stack_id
        )["StackEvents"]
        for event in reversed(events):  # newest first from the API
            if event["EventId"] not in seen:
                seen.add(event["EventId"])
                new_events.append(event)
                echo(describe_event(event))
        described = aws.call(
            cloudformation.describe_stacks, f"describe stack {stack_name}", StackName=stack_id
        )["Stacks"][0]
        status = described["StackStatus"]
        if status in done:
            return dict(described)
        if not status.endswith("_IN_PROGRESS"):
            raise AWSSetupError(failure_message(stack_name, status, new_events))
        if time.monotonic() > deadline:
            raise AWSSetupError(
                f"stack {stack_name} is still {status} after {timeout_s:g} s; follow it in the "
                "CloudFormation console, then run this again"
            )
        time.sleep(poll_interval_s)


def failure_message(stack_name: str, status: str, events: Iterable[Mapping[str, Any]]) -> str:
    """Why a stack operation ended in ``status``, from its events (oldest first). Pure."""
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    # The resources' own events say why; the stack's event only lists which failed.
    causes = [e for e in failed if e.get("ResourceType") != _STACK_TYPE] or failed
    reasons = "; ".join(
        f"{e.get('LogicalResourceId', '')} ({e.get('ResourceType', '')}): "
        f"{e.get('ResourceStatusReason') or e.get('ResourceStatus', '')}"
        for e in causes
    )
    outcome = _OUTCOMES.get(status, f"it is {status}").format(stack=stack_name)
    hint = (
        " A name is taken: choose another with -p (e.g. -p RepositoryName=..., -p BucketName=...)."
        if "already exist" in reasons.lower()
        else ""
    )
    why = reasons or "no resource event says why"
    return f"stack {stack_name} ended {status}: {why}. {outcome}.{hint}"


_STACK_TYPE = "AWS::CloudFormation::Stack"
# Statuses a create/update/delete can end in, and what the user can do next.
_DESTROY_HINT = "`covalent-ecs infra destroy --stack-name {stack}` deletes it"
_OUTCOMES = {
    "DELETE_COMPLETE": "It was not created; CloudFormation deleted what it had made, so "
    "nothing is left to clean up",
    "ROLLBACK_COMPLETE": "It was not created and was rolled back; " + _DESTROY_HINT,
    "ROLLBACK_FAILED": "It was not created and its rollback failed; " + _DESTROY_HINT,
    "CREATE_FAILED": "It was not created; " + _DESTROY_HINT,
    "UPDATE_ROLLBACK_COMPLETE": "It was not updated; the previous version is back in place",
    "UPDATE_ROLLBACK_FAILED": "It was not updated and its rollback failed; continue the "
    "rollback in the CloudFormation console",
    "DELETE_FAILED": "It was not deleted; fix the cause, then run "
    "`covalent-ecs infra destroy --stack-name {stack}` again",
}
# Stacks CloudFormation cannot update (a failed creation), and why.
_NOT_UPDATABLE = {
    "ROLLBACK_COMPLETE": "its creation failed",
    "ROLLBACK_FAILED": "its creation failed",
    "CREATE_FAILED": "its creation failed",
    "DELETE_FAILED": "its deletion failed",
}
