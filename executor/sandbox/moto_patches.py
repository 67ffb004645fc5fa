"""Run-time patches that make moto's ECS behave like Fargate for the local agent.

moto (pinned to 5.2.5 in pyproject.toml) models ECS's control plane but never runs a
task, and a few of its shortcuts break a Fargate client (docs/facts.md, "moto and
the sandbox's patches"). We patch it at run time instead of forking it; each patch
below says which quirk it works around. ``install(hooks)`` applies them once per
process and routes new tasks and stop requests to ``hooks`` (the local agent).

What the patched ECS does:

* RunTask accepts Fargate definitions without container-level memory and awsvpc
  tasks in VPCs without DNS hostnames; rejects ``count`` outside 1..10; honours
  ``clientToken`` (same token -> the same tasks, nothing started twice).
* A new task is PROVISIONING with no container exit code, reports task-level
  cpu/memory (after overrides), ``createdAt``, and is handed to the agent; moto's
  own state machine for ``ecs::task`` is frozen so only the agent changes states.
* StopTask records the request (desiredStatus STOPPED, stopCode UserInitiated,
  stoppedReason, stoppingAt) and hands the task to the agent, which stops it.
* DescribeTasks reports unknown ARNs as ``failures`` (reason MISSING) and rejects
  more than 100 ARNs, as ECS does; it looks tasks up by ARN in the named cluster
  instead of scanning every task ever run (which made it slow at a thousand tasks).
* CloudFormation's AWS::EC2::SubnetRouteTableAssociation really associates the
  subnet (DescribeRouteTables shows it) and AWS::EC2::RouteTable can be deleted, so
  the ``covalent-ecs infra`` stack's network is visible to ``doctor`` and deletes;
  an AWS::IAM::Role's inline ``Policies`` read back as JSON, as IAM returns them;
  deleting a stack deletes its AWS::ECS::Cluster (INACTIVE, as DeleteCluster does);
  an ``!If [cond, item, !Ref AWS::NoValue]`` list item that resolves to NoValue is
  dropped from the list, as CloudFormation does (moto kept it as null, and IAM
  refused the policy with a null statement).
* A stack whose resource cannot be created fails as on AWS: CreateStack answers with
  the stack id, the resource's event is CREATE_FAILED with the reason, and the stack
  rolls back as ``OnFailure`` says (instead of a half-made stack that answers HTTP 500).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from moto.core.responses import ActionResult
from moto.core.serialize import AttributePicker, XFormedAttributePicker
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecs import models as ecs_models
from moto.ecs.exceptions import EcsClientException, InvalidParameterException
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api import state_manager

# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html
RUN_TASK_MAX_COUNT = 10
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html
DESCRIBE_TASKS_MAX_ARNS = 100
# ECS does not document how long it remembers a clientToken; the sandbox keeps one
# for an hour, far longer than any retry of the same RunTask.
CLIENT_TOKEN_TTL_S = 3600.0

TASK_MODEL = "ecs::task"
# Entries kept by the serializer's key lookup (_patch_serializer_key_lookup): one per
# (class, member, shape) the sandbox's services answer with, a few thousand at most.
SERIALIZER_KEYS_MAX = 100_000


class TaskHooks(Protocol):
    """What the patched backend tells the local agent."""

    def task_created(self, task: Any) -> None: ...

    def stop_requested(self, task: Any) -> None: ...


_install_lock = threading.Lock()
_installed = False
_hooks: TaskHooks | None = None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def install(hooks: TaskHooks | None) -> None:
    """Apply the patches (once per process) and route task events to ``hooks``."""
    global _installed, _hooks
    with _install_lock:
        _hooks = hooks
        # moto's default state manager moves a task RUNNING -> STOPPED (exit code 0)
        # after a few DescribeTasks calls; "manual" with an unreachable count freezes
        # it, so only the agent changes a task's state. Re-applied on every install
        # because moto's backend reset clears custom transitions.
        state_manager.set_transition(TASK_MODEL, {"progression": "manual", "times": 2**62})
        if _installed:
            return
        _patch_network_interface()
        _patch_resource_requirements()
        _patch_task_init()
        _patch_run_task()
        _patch_stop_task()
        _patch_backend_describe_tasks()
        _patch_describe_tasks()
        _patch_serializer_key_lookup()
        _patch_cloudformation_route_tables()
        _patch_cloudformation_role_policies()
        _patch_cloudformation_cluster_delete()
        _patch_cloudformation_failed_create()
        _patch_cloudformation_no_value_in_lists()
        _installed = True


def uninstall_hooks() -> None:
    """Stop routing task events (the patches themselves stay: they are harmless)."""
    global _hooks
    with _install_lock:
        _hooks = None


def _patch_network_interface() -> None:
    # moto only sets ``private_dns_name`` on an ENI whose VPC has DNS hostnames
    # enabled, but ECS's awsvpc attachment reads it unconditionally: RunTask then
    # fails with HTTP 500 (AttributeError). A class-level default fixes the lookup.
    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = None  # type: ignore[attr-defined]


def _patch_resource_requirements() -> None:
    # moto sums container-level ``memory``/``memoryReservation`` and fails with HTTP
    # 500 (None + int) when a container has neither; Fargate only requires task-level
    # memory. The sums only matter for EC2 placement, so fall back to the task's.
    def resource_requirements(task_definition: Any) -> dict[str, Any]:
        cpu = memory = 0
        ports: list[Any] = []
        for container in task_definition.container_definitions:
            cpu += int(container.get("cpu", container.get("Cpu", 0)) or 0)
            memory += int(
                container.get("memory")
                or container.get("Memory")
                or container.get("memoryReservation")
                or container.get("MemoryReservation")
                or 0
            )
            for mapping in container.get("portMappings", container.get("PortMappings", [])):
                port = mapping.get("hostPort", mapping.get("HostPort"))
                if port is not None:
                    ports.append(port)
        if not memory:
            memory = int(task_definition.memory or 0)
        return {"CPU": cpu, "MEMORY": memory, "PORTS": ports, "PORTS_UDP": []}

    ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(  # type: ignore[method-assign]
        resource_requirements
    )


def _patch_task_init() -> None:
    original_init = ecs_models.Task.__init__

    def task_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        task_definition = args[1] if len(args) > 1 else kwargs["task_definition"]
        # Real ECS starts every task in PROVISIONING; moto starts it RUNNING.
        self.status = "PROVISIONING"
        self.created_at = utc_now()
        self.stop_code = None
        self.stopped_reason = None
        # Task-level cpu/memory as ECS reports them: the overrides win.
        self.cpu = self.overrides.get("cpu") or task_definition.cpu
        self.memory = self.overrides.get("memory") or task_definition.memory
        # moto builds one container from the first definition only, with
        # ``exitCode = 0`` up front and the task *definition* ARN as its taskArn.
        # ECS reports one container per definition, without an exit code until it
        # stops, and the task's ARN.
        containers = []
        for definition in task_definition.container_definitions:
            container = ecs_models.Container(task_definition)
            container.name = definition.get("name")
            container.image = definition.get("image")
            container.cpu = definition.get("cpu", 0)
            container.memory = definition.get("memory")
            container.command = definition.get("command")
            container.environment = definition.get("environment")
            container.container_arn = (
                f"{self.cluster_arn.replace(':cluster/', ':container/')}/{self.id}/"
                f"{container.container_arn.rsplit('/', 1)[-1]}"
            )
            container.task_arn = self.task_arn
            container.last_status = "PENDING"
            container.exitCode = None
            container.reason = None
            containers.append(container)
        self.containers = containers

    ecs_models.Task.__init__ = task_init  # type: ignore[method-assign]


class _ClientTokens:
    """RunTask idempotency: clientToken -> the tasks the first call started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._tasks: dict[tuple[str, str, str], tuple[float, list[Any]]] = {}

    def lock_for(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            # Entries are kept in the order they were put, so the stale ones are first:
            # dropping them costs nothing per call once they are gone (a scan of every
            # token per RunTask grew with the sandbox's age).
            now = self._clock()
            while self._tasks:
                oldest = next(iter(self._tasks))
                if now - self._tasks[oldest][0] <= CLIENT_TOKEN_TTL_S:
                    break
                del self._tasks[oldest]
                self._locks.pop(oldest, None)
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str, str]) -> list[Any] | None:
        entry = self._tasks.get(key)
        return entry[1] if entry else None

    def put(self, key: tuple[str, str, str], tasks: list[Any]) -> None:
        with self._lock:
            self._tasks.pop(key, None)  # to the end: the order stays the order of time
            self._tasks[key] = (self._clock(), tasks)


_client_tokens = _ClientTokens()


def _patch_run_task() -> None:
    original_backend_run_task = ecs_models.EC2ContainerServiceBackend.run_task
    original_response_run_task = EC2ContainerServiceResponse.run_task

    def backend_run_task(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        count = args[2] if len(args) > 2 else kwargs.get("count", 1)
        # moto accepts any count; ECS rejects more than 10 per call.
        if not 1 <= int(count) <= RUN_TASK_MAX_COUNT:
            raise InvalidParameterException(
                f"count must be between 1 and {RUN_TASK_MAX_COUNT}, got {count}."
            )
        # moto runs a deregistered (INACTIVE) definition; ECS refuses it.
        definition_str = args[1] if len(args) > 1 else kwargs.get("task_definition_str", "")
        if self.describe_task_definition(definition_str).status == "INACTIVE":
            raise EcsClientException("TaskDefinition is inactive")
        tasks = original_backend_run_task(self, *args, **kwargs)
        hooks = _hooks
        if hooks is not None:
            for task in tasks:
                hooks.task_created(task)
        return tasks

    def response_run_task(self: Any) -> ActionResult:
        # moto ignores clientToken; ECS returns the first call's tasks for a repeated
        # token, so a retried RunTask never starts a second task.
        token = self._get_param("clientToken")
        if not token:
            return original_response_run_task(self)
        key = (self.current_account, self.region, token)
        with _client_tokens.lock_for(key):
            tasks = _client_tokens.get(key)
            if tasks is not None:
                return ActionResult({"tasks": tasks, "failures": []})
            result = original_response_run_task(self)
            _client_tokens.put(key, list(result.result["tasks"]))  # type: ignore[index]
            return result

    ecs_models.EC2ContainerServiceBackend.run_task = backend_run_task  # type: ignore[method-assign]
    EC2ContainerServiceResponse.run_task = response_run_task  # type: ignore[method-assign]


def _find_task(backend: Any, cluster_str: str, task_str: str) -> Any:
    cluster = backend._get_cluster(cluster_str)
    task_id = task_str.split("/")[-1]
    for task in backend.tasks.get(cluster.name, {}).values():
        if task.id == task_id:
            return task
    # moto raises a bare Exception here (HTTP 500); ECS answers with a 400.
    raise InvalidParameterException("The referenced task was not found.")


def _patch_stop_task() -> None:
    # moto's StopTask marks the task STOPPED on the spot; ECS only records the request
    # (desiredStatus STOPPED) and the agent stops the container, which takes time.
    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str | None) -> Any:
        task = _find_task(self, cluster_str, task_str)
        if task.desired_status != "STOPPED":
            task.desired_status = "STOPPED"
            task.stop_code = "UserInitiated"
            task.stopped_reason = reason or "Task stopped by user"
            task.stopping_at = utc_now()
            hooks = _hooks
            if hooks is not None:
                hooks.stop_requested(task)
        return task

    ecs_models.EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]


def _patch_backend_describe_tasks() -> None:
    # moto scans every task of every cluster for each call, comparing each with every
    # requested ARN: O(all tasks ever run x 100) per call, which dominates the sandbox
    # at a thousand tasks (benchmarks). ECS looks tasks up in the named cluster only:
    # find them by ARN there; anything given another way (a bare id) takes moto's path.
    original = ecs_models.EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
        cluster = self._get_cluster(cluster_str)
        if not tasks:
            raise InvalidParameterException("Tasks cannot be empty.")
        in_cluster = self.tasks.get(cluster.name, {})
        found = [in_cluster.get(arn) for arn in tasks]
        if any(task is None for task in found):
            return original(self, cluster_str, tasks)
        for task in found:
            task.advance()
        return found

    ecs_models.EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]


def _patch_describe_tasks() -> None:
    original = EC2ContainerServiceResponse.describe_tasks

    def describe_tasks(self: Any) -> ActionResult:
        wanted = self._get_param("tasks", []) or []
        # moto accepts any number of ARNs; ECS rejects more than 100 per call.
        if len(wanted) > DESCRIBE_TASKS_MAX_ARNS:
            raise InvalidParameterException(
                f"Tasks cannot contain more than {DESCRIBE_TASKS_MAX_ARNS} elements."
            )
        result = original(self)
        found = result.result["tasks"]  # type: ignore[index]
        known = {task.id for task in found}
        # moto silently drops unknown tasks; ECS lists them as failures.
        failures = [
            {"arn": arn, "reason": "MISSING"} for arn in wanted if arn.split("/")[-1] not in known
        ]
        result.result["failures"] = failures  # type: ignore[index]
        return result

    EC2ContainerServiceResponse.describe_tasks = describe_tasks  # type: ignore[method-assign]


def _patch_serializer_key_lookup() -> None:
    # moto's response serializer works out, for every member of every object it writes,
    # which attribute names might hold it (alias providers: the model's names, the
    # class's prefix, snake_case...). The answer depends only on the object's class, the
    # member and its shape, yet it is recomputed each time: about a third of the 75 ms of
    # CPU a DescribeTasks of 100 tasks took. Remember it per that key.
    for picker in (AttributePicker, XFormedAttributePicker):
        _remember_possible_keys(picker)


def _remember_possible_keys(picker: type[AttributePicker]) -> None:
    compute = picker.get_possible_keys
    known: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def get_possible_keys(self: Any, context: Any) -> Any:
        shape = context.shape
        parent = getattr(shape, "parent", None)
        key = (
            tuple(self.alias_providers),
            type(context.obj),
            context.key,
            None if context.service_model is None else context.service_model.service_name,
            None if shape is None else (shape.name, shape.type_name),
            None if parent is None else parent.name,
        )
        keys = known.get(key)
        if keys is None:
            keys = tuple(compute(self, context))
            if len(known) < SERIALIZER_KEYS_MAX:
                known[key] = keys
        return keys

    picker.get_possible_keys = get_possible_keys  # type: ignore[method-assign]


def _patch_cloudformation_route_tables() -> None:
    # moto 5.2.5's CloudFormation keeps a SubnetRouteTableAssociation in a side table
    # that DescribeRouteTables never shows (so a public subnet looks routeless), and
    # has no delete for AWS::EC2::RouteTable (so DeleteStack fails: the VPC still has
    # a route table). Associate for real, and give both resources a delete.
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.subnets import SubnetRouteTableAssociation

    def create_association(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
        region_name: str, **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        backend = ec2_backends[account_id][region_name]
        association = cls(properties["RouteTableId"], properties["SubnetId"])
        association.association_id = backend.associate_route_table(
            properties["RouteTableId"], subnet_id=properties["SubnetId"]
        )
        return association

    def delete_association(self: Any, account_id: str, region_name: str) -> None:
        association_id = getattr(self, "association_id", None)
        if association_id:
            ec2_backends[account_id][region_name].disassociate_route_table(association_id)

    def delete_route_table(self: Any, account_id: str, region_name: str) -> None:
        ec2_backends[account_id][region_name].delete_route_table(self.id)

    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(create_association)  # type: ignore[method-assign,assignment]
    SubnetRouteTableAssociation.delete = delete_association  # type: ignore[attr-defined]
    RouteTable.delete = delete_route_table  # type: ignore[attr-defined]


def _patch_cloudformation_role_policies() -> None:
    # moto 5.2.5 stores an AWS::IAM::Role's inline ``Policies`` as the parsed dict, so
    # GetRolePolicy answers its Python repr (single quotes), which no client can parse.
    # IAM stores and returns policy documents as JSON text.
    import json

    from moto.iam.models import Role

    if getattr(Role.put_policy, "_covalent_ecs_patched", False):
        return
    original = Role.put_policy

    def put_policy(self: Any, policy_name: str, policy_json: Any) -> None:
        if not isinstance(policy_json, str):
            policy_json = json.dumps(policy_json)
        original(self, policy_name, policy_json)

    put_policy._covalent_ecs_patched = True  # type: ignore[attr-defined]
    Role.put_policy = put_policy  # type: ignore[method-assign]


def _patch_cloudformation_cluster_delete() -> None:
    # moto 5.2.5 has no CloudFormation delete for AWS::ECS::Cluster: after DeleteStack
    # the cluster stays ACTIVE. ECS's DeleteCluster leaves it INACTIVE.
    def delete_cluster(self: Any, account_id: str, region_name: str) -> None:
        ecs_models.ecs_backends[account_id][region_name].delete_cluster(self.arn)

    ecs_models.Cluster.delete = delete_cluster  # type: ignore[attr-defined]


_FAILED_RESOURCE = "_covalent_ecs_failed_resource"


def _patch_cloudformation_failed_create() -> None:
    # moto 5.2.5 creates a stack's resources inside CreateStack and lets the first
    # resource error escape as CreateStack's answer, leaving the half-made stack in
    # place: its outputs name a resource that was never made, so every DescribeStacks
    # answers HTTP 500 and the stack can never be deleted. CloudFormation accepts the
    # stack, marks the resource CREATE_FAILED with the reason and then, as OnFailure
    # says, rolls back (ROLLBACK, the default: ROLLBACK_COMPLETE, deletable), deletes
    # the stack (DELETE) or leaves it CREATE_FAILED (DO_NOTHING).
    from moto.cloudformation import parsing
    from moto.cloudformation.models import Event, OutputMap, Stack
    from moto.cloudformation.responses import CloudFormationResponse

    original_create_resource = parsing.parse_and_create_resource

    def parse_and_create_resource(
        logical_id: str, resource_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return original_create_resource(logical_id, resource_json, *args, **kwargs)
        except Exception as err:
            # Resources are created lazily through their references: the innermost
            # one is the resource that failed.
            if not hasattr(err, _FAILED_RESOURCE):
                setattr(err, _FAILED_RESOURCE, (logical_id, resource_json.get("Type", "")))
            raise

    original_create_resources = Stack.create_resources

    def create_resources(self: Any) -> None:
        try:
            original_create_resources(self)
        except Exception as err:
            failed = getattr(err, _FAILED_RESOURCE, None)
            if failed is None:
                raise
            logical_id, resource_type = failed
            self.events.append(
                Event(
                    self.stack_id, self.name, logical_id, "", resource_type, "CREATE_FAILED",
                    _reason(err), None,
                )
            )
            self.status = "CREATE_FAILED"
            self._add_stack_event(
                "CREATE_FAILED",
                resource_status_reason=f"The following resource(s) failed to create: [{logical_id}].",
            )
            # A stack that failed to create has no outputs (they name missing resources).
            self.output_map = OutputMap(self.resource_map, {}, self.stack_id)

    original_response = CloudFormationResponse.create_stack

    def create_stack(self: Any) -> ActionResult:
        result = original_response(self)
        backend = self.cloudformation_backend
        name = self._get_param("StackName")
        stack = next((s for s in backend.stacks.values() if s.name == name), None)
        if stack is not None and stack.status == "CREATE_FAILED":
            on_failure = self._get_param("OnFailure") or (
                "DO_NOTHING" if self._get_bool_param("DisableRollback", False) else "ROLLBACK"
            )
            if on_failure != "DO_NOTHING":
                _roll_back(backend, stack, delete_stack=on_failure == "DELETE")
        return result

    parsing.parse_and_create_resource = parse_and_create_resource
    Stack.create_resources = create_resources  # type: ignore[method-assign]
    CloudFormationResponse.create_stack = create_stack  # type: ignore[method-assign]


def _roll_back(backend: Any, stack: Any, *, delete_stack: bool) -> None:
    """Delete what a failed creation made; with ``delete_stack`` the stack goes too."""
    begin, failed, done = (
        ("DELETE_IN_PROGRESS", "DELETE_FAILED", "DELETE_COMPLETE")
        if delete_stack
        else ("ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED", "ROLLBACK_COMPLETE")
    )
    stack.status = begin
    stack._add_stack_event(begin, resource_status_reason="The stack failed to create.")
    try:
        stack.resource_map.delete()
    except Exception as err:  # noqa: BLE001 - any moto error: the stack stays, deletable
        stack.status = failed
        stack._add_stack_event(failed, resource_status_reason=_reason(err))
        return
    stack.status = done
    stack._add_stack_event(done)
    if delete_stack:
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack


def _reason(err: Exception) -> str:
    """A resource error as CloudFormation shows it: the service's code and message."""
    code = getattr(err, "error_type", None) or getattr(err, "code", None)
    if isinstance(code, str):  # moto's service errors carry AWS's code and message
        return f"{code}: {getattr(err, 'message', None) or err}"
    return f"{type(err).__name__}: {err}"
def _patch_cloudformation_no_value_in_lists() -> None:
    # moto 5.2.5's clean_json drops a NoValue dict value but keeps a NoValue list item
    # as None: a conditional policy statement (`- !If [Cond, {...}, !Ref AWS::NoValue]`)
    # becomes a null statement and CreatePolicy answers MalformedPolicyDocument.
    # CloudFormation removes such items. Only intrinsics (dicts) that resolve to None
    # are dropped; a literal null in a list stays.
    from moto.cloudformation import parsing

    if getattr(parsing.clean_json, "_covalent_ecs_patched", False):
        return
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, list):
            cleaned = [(item, clean_json(item, resources_map)) for item in resource_json]
            return [value for item, value in cleaned if value is not None or not isinstance(item, dict)]
        return original(resource_json, resources_map)

    clean_json._covalent_ecs_patched = True  # type: ignore[attr-defined]
    parsing.clean_json = clean_json
