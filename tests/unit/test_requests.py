"""The task definition and RunTask request built for a config (pure, no AWS)."""

import json
import uuid

import pytest

from covalent_ecs_executor import ConfigError, ExecutorConfig
from covalent_ecs_executor.launch import (
    MAX_OVERRIDES_CHARS,
    build_run_task_request,
    client_token,
    overrides_chars,
    worst_case_overrides_chars,
)
from covalent_ecs_executor.staging import Bucket, task_keys
from covalent_ecs_executor.taskdefs import build_task_definition, log_stream_name
from covalent_ecs_runtime import contract, signing

KEY = signing.SigningKey(bytes(range(32)))
BASE = {"ecs_task_subnet_id": "subnet-0123abcd", "ecs_task_security_group_id": "sg-0123abcd"}
ROLES = {
    "execution_role_arn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
    "task_role_arn": "arn:aws:iam::123456789012:role/CovalentFargateTaskRole",
    "region": "us-east-1",
}


def definition(**config):
    return build_task_definition(ExecutorConfig(**{**BASE, **config}), image_uri="repo/runner:1", **ROLES)


def request(**config):
    return build_run_task_request(
        ExecutorConfig(**{**BASE, **config}),
        task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/f:1",
        bucket=Bucket(name="bucket", owner="123456789012"),
        keys=task_keys("dispatch-1", 3, "tok"),
        dispatch_id="dispatch-1",
        node_id=3,
        attempt="tok",
        signing_key=KEY,
    )


def test_task_sizes_share_one_task_definition():
    assert definition(vcpu=0.25, memory=0.5) == definition(vcpu=4, memory=16)


def test_a_changed_image_or_role_gets_another_family():
    families = {
        definition()["family"],
        build_task_definition(ExecutorConfig(**BASE), image_uri="repo/runner:2", **ROLES)["family"],
        definition(ecs_task_log_group_name="other")["family"],
        definition(cpu_architecture="ARM64")["family"],
    }
    assert len(families) == 4
    assert all(f.startswith("covalent-fargate-tasks-") for f in families)


def test_the_definition_runs_the_runner_and_logs_to_cloudwatch():
    container = definition()["containerDefinitions"][0]
    assert container["entryPoint"] == ["python", "-m", "covalent_ecs_runtime"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "covalent-fargate-task-logs"
    assert log_stream_name("arn:aws:ecs:us-east-1:1:task/c/abc123") == "covalent/covalent-runner/abc123"


def test_default_size_sends_no_cpu_memory_override():
    overrides = request()["overrides"]
    assert "cpu" not in overrides and "memory" not in overrides


def test_other_sizes_are_task_level_overrides_in_aws_units():
    overrides = request(vcpu=2, memory=4)["overrides"]
    assert (overrides["cpu"], overrides["memory"]) == ("2048", "4096")


def test_the_command_points_the_runner_at_this_tasks_keys():
    keys = task_keys("dispatch-1", 3, "tok")
    command = request()["overrides"]["containerOverrides"][0]["command"]
    assert command == contract.run_command(bucket="bucket", payload_key=keys.payload, result_key=keys.result)
    assert keys.payload == "covalent-ecs/dispatch-1/3-tok/payload.pkl"


def test_the_environment_carries_client_versions_and_user_variables():
    env = {e["name"]: e["value"] for e in request(environment={"MODE": "x"})["overrides"]["containerOverrides"][0]["environment"]}
    assert env["MODE"] == "x"
    assert env[contract.ENV_CLIENT_PYTHON] == contract.python_minor()
    assert env[contract.ENV_TASK_LABEL] == "dispatch-1/3"


def test_network_tags_and_idempotency_token():
    sent = request(assign_public_ip=False)
    assert sent["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-0123abcd"],
        "securityGroups": ["sg-0123abcd"],
        "assignPublicIp": "DISABLED",
    }
    assert sent["clientToken"] == client_token("dispatch-1", 3, "tok")
    assert len(sent["clientToken"]) <= 64
    assert {"key": "covalent:node-id", "value": "3"} in sent["tags"]
    assert client_token("d", 1, "a") != client_token("d", 1, "b")


def test_overrides_over_8192_characters_are_refused_before_any_call():
    # The configuration refuses an environment that could overflow them (test_config);
    # launch still refuses ids longer than that bound assumes.
    config = ExecutorConfig(**BASE)
    room = MAX_OVERRIDES_CHARS - worst_case_overrides_chars(config)
    config = ExecutorConfig(**BASE, environment={"BIG": "x" * (room - 40)})
    long_id = "d" * 200
    with pytest.raises(ConfigError, match=f"at most {MAX_OVERRIDES_CHARS}"):
        build_run_task_request(
            config,
            task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/f:1",
            bucket=Bucket(name=config.s3_bucket_name, owner="123456789012"),
            keys=task_keys(long_id, 3, "tok"),
            dispatch_id=long_id,
            node_id=3,
            attempt="tok",
            signing_key=KEY,
        )
    assert len(json.dumps(request()["overrides"])) < MAX_OVERRIDES_CHARS


@pytest.mark.parametrize("launch_attempts", [1, 3, 10])
def test_the_config_time_bound_is_the_size_of_the_last_attempt_with_the_longest_ids(
    launch_attempts,
):
    config = ExecutorConfig(
        **BASE, vcpu=1, memory=2, ephemeral_storage=50, environment={"MODE": "fast"},
        launch_attempts=launch_attempts,
    )  # fmt: skip
    dispatch_id, node_id = str(uuid.uuid4()), 1234567  # a UUID, seven digits
    sizes = [
        overrides_chars(
            build_run_task_request(
                config,
                task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/f:1",
                bucket=Bucket(name=config.s3_bucket_name, owner="123456789012"),
                keys=task_keys(dispatch_id, node_id).for_attempt(attempt),
                dispatch_id=dispatch_id,
                node_id=node_id,
                attempt=str(attempt),
                signing_key=KEY,
            )["overrides"]
        )
        for attempt in range(1, launch_attempts + 1)
    ]
    assert max(sizes) == sizes[-1] == worst_case_overrides_chars(config)


def test_on_demand_is_a_launch_type_and_spot_a_capacity_provider_strategy():
    on_demand = request()
    assert on_demand["launchType"] == "FARGATE" and "capacityProviderStrategy" not in on_demand
    spot = request(capacity_provider="FARGATE_SPOT")
    # RunTask refuses launchType together with a strategy.
    assert "launchType" not in spot
    assert spot["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def test_a_subnet_list_and_extra_disk_reach_the_runtask_request():
    config = ExecutorConfig(
        ecs_task_subnet_id=["subnet-0123abcd", "subnet-0123abce"],
        ecs_task_security_group_id="sg-0123abcd",
        ephemeral_storage=50,
    )
    request = build_run_task_request(
        config, task_definition_arn="arn:td", bucket=Bucket(name="b", owner="123456789012"),
        keys=task_keys("d", 0, "t"), dispatch_id="d", node_id=0, attempt="t-1", signing_key=KEY,
    )
    network = request["networkConfiguration"]["awsvpcConfiguration"]
    assert network["subnets"] == ["subnet-0123abcd", "subnet-0123abce"]
    assert network["securityGroups"] == ["sg-0123abcd"]
    assert request["overrides"]["ephemeralStorage"] == {"sizeInGiB": 50}


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token-AbCdEf"
PARAMETER_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/team/db-password"


def test_secrets_are_in_the_definition_and_never_in_the_run_task_request():
    secrets = {"API_TOKEN": SECRET_ARN, "DB_PASSWORD": PARAMETER_ARN}
    container = definition(secrets=secrets)["containerDefinitions"][0]
    assert container["secrets"] == [
        {"name": "API_TOKEN", "valueFrom": SECRET_ARN},
        {"name": "DB_PASSWORD", "valueFrom": PARAMETER_ARN},
    ]
    # Part of the content hash: another secret is another family.
    assert definition(secrets=secrets)["family"] != definition()["family"]
    assert definition(secrets={"API_TOKEN": SECRET_ARN})["family"] != definition(secrets=secrets)["family"]
    # No definition without secrets carries an empty list (the family stays as it was).
    assert "secrets" not in definition()["containerDefinitions"][0]
    sent = json.dumps(request(secrets=secrets))
    assert "API_TOKEN" not in sent and "secretsmanager" not in sent and "parameter/" not in sent


def test_the_environment_carries_the_bucket_owner_and_the_runs_signing_key():
    env = {e["name"]: e["value"] for e in request()["overrides"]["containerOverrides"][0]["environment"]}
    assert env[contract.ENV_BUCKET_OWNER] == "123456789012"
    assert signing.SigningKey.from_env_value(env[contract.ENV_SIGNING_SECRET]).env_value() == KEY.env_value()
