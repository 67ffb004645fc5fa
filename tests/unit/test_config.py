"""Configuration: precedence, defaults and rejection of bad input before any AWS call.

What cannot be checked before an AWS call is checked by the first one and named there:
a bucket, cluster, log group or role that does not exist (AWSSetupError naming it), a
bucket owned by another account (S3 answers 403: "AWS denied access", naming the
bucket and the IAM policy to check), a subnet in another VPC than the security group
(RunTask's failure reason). Everything below needs no network.
"""

import os

import pytest

from covalent_ecs_executor import ConfigError, ECSExecutor, ExecutorConfig
from covalent_ecs_executor.config import build_config, plugin_defaults
from covalent_ecs_executor.ecs import _EXECUTOR_PLUGIN_DEFAULTS

GOOD = {"ecs_task_subnet_id": "subnet-0123abcd", "ecs_task_security_group_id": "sg-0123abcd"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token-AbCdEf"


def test_plugin_defaults_are_the_model_defaults():
    assert _EXECUTOR_PLUGIN_DEFAULTS == plugin_defaults() == ExecutorConfig().model_dump(mode="json")
    assert _EXECUTOR_PLUGIN_DEFAULTS["vcpu"] == 0.25 and _EXECUTOR_PLUGIN_DEFAULTS["memory"] == 0.5
    assert _EXECUTOR_PLUGIN_DEFAULTS["ecs_task_execution_role_name"] == "ecsTaskExecutionRole"


def test_arguments_win_over_the_file_including_falsy_ones():
    config = build_config(
        {"assign_public_ip": False, "profile": "", **GOOD},
        {"assign_public_ip": True, "profile": "work", "region": "eu-west-1"},
    )
    assert config.assign_public_ip is False
    assert config.profile == ""
    assert config.region == "eu-west-1"


def test_a_falsy_argument_is_validated_not_replaced():
    with pytest.raises(ConfigError, match=r"argument poll_freq=0: Input should be greater than 0"):
        build_config({"poll_freq": 0}, {"poll_freq": 2})


def test_executor_attributes_are_plain_json():
    import json

    executor = ECSExecutor(vcpu=2, memory=4, environment={"MODE": "fast"}, **GOOD)
    restored = json.loads(json.dumps(executor.__dict__))
    assert restored["vcpu"] == 2 and restored["memory"] == 4
    assert restored["environment"] == {"MODE": "fast"}


def test_server_side_rebuild_keeps_the_client_values():
    # Covalent's server does Class(**[executors.ecs]) then from_dict(client.to_dict()).
    client = ECSExecutor(vcpu=1, memory=2, **GOOD)
    server = ECSExecutor().from_dict(client.to_dict())
    assert server.config().cpu_units == 1024 and server.config().memory_mib == 2048
    assert server.config().ecs_task_subnet_id == GOOD["ecs_task_subnet_id"]


def test_missing_subnet_and_security_group_are_named_at_launch():
    with pytest.raises(ConfigError, match="ecs_task_subnet_id and ecs_task_security_group_id must be set"):
        build_config({}, {}).require_launch_settings()


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        ECSExecutor(vpcu=1, poll_freq=-1, ecs_task_subnet_id="subnet-x")
    text = str(caught.value)
    assert "did you mean 'vcpu'?" in text
    assert "poll_freq=-1" in text
    assert "ecs_task_subnet_id='subnet-x'" in text


BAD_INPUTS = [
    ({"vcpu": 0.3}, "vcpu=0.3 is not a Fargate size"),
    ({"vcpu": 0}, "vcpu=0 is not a Fargate size"),
    ({"vcpu": "lots"}, "vcpu='lots'"),
    ({"memory": 3}, "memory=3 GB is not offered with vcpu=0.25; choose one of 0.5, 1, 2 GB"),
    ({"vcpu": 1, "memory": 1}, "memory=1 GB is not offered with vcpu=1; choose one of 2, 3, 4, 5, 6, 7, 8 GB"),
    ({"memory": 0.0001}, "not a whole number of MiB"),
    ({"poll_freq": -1}, "poll_freq=-1"),
    ({"poll_freq": 600}, "poll_freq=600"),
    ({"ecs_task_subnet_id": "subnet-xyz"}, "expected 'subnet-' followed by 8 or 17 hex digits"),
    ({"ecs_task_subnet_id": "sg-0123abcd"}, "ecs_task_subnet_id='sg-0123abcd'"),
    ({"ecs_task_security_group_id": "subnet-0123abcd"}, "expected 'sg-' followed by 8 or 17 hex digits"),
    ({"region": "mars-north-1a"}, "expected a region name such as 'us-east-1'"),
    ({"s3_bucket_name": "My_Bucket"}, "S3 bucket names are 3-63 characters"),
    ({"s3_bucket_name": "ab"}, "s3_bucket_name='ab'"),
    ({"ecs_cluster_name": "has space"}, "ecs_cluster_name='has space'"),
    ({"ecs_task_role_name": "arn:aws:s3:::bucket"}, "expected an IAM role name or a role ARN"),
    ({"ecr_repo_name": "Upper/Case"}, "ECR repository names are lowercase"),
    ({"container_image_uri": "not a uri"}, "expected an image reference"),
    ({"endpoint_url": "localhost:5000"}, "expected an http:// or https:// URL"),
    ({"credentials": "/no/such/credentials"}, "no such file"),
    ({"environment": {"1BAD": "x"}}, "'1BAD' is not a valid environment variable name"),
    ({"environment": {"AWS_SECRET_ACCESS_KEY": "x"}}, "reserved"),
    ({"environment": "A=1"}, "environment=*** (value not shown): Input should be a valid dictionary"),
    ({"time_limit": 0}, "give a number of seconds > 0, or -1 for no limit"),
    ({"retry_mode": "aggressive"}, "retry_mode='aggressive'"),
    ({"max_attempts": 0}, "max_attempts=0"),
    ({"cpu_architecture": "arm64"}, "cpu_architecture='arm64'"),
    ({"capacity_provider": "SPOT"}, "capacity_provider='SPOT'"),
    ({"assign_public_ip": "maybe"}, "assign_public_ip='maybe'"),
    ({"memroy": 1}, "unknown argument 'memroy'; did you mean 'memory'?"),
    ({"subnet": "subnet-0123abcd"}, "unknown argument 'subnet'"),
    ({"vcpu": True}, "vcpu=True: expected a number, not a boolean"),
    ({"time_limit": -5}, "time_limit=-5: give a number of seconds > 0, or -1 for no limit"),
    ({"ephemeral_storage": 19}, "ephemeral_storage=19: give GiB from 21 to 200, or 20 for Fargate's default"),
    ({"ephemeral_storage": 201}, "ephemeral_storage=201"),
    ({"ecs_task_subnet_id": ["subnet-0123abcd", "subnet-0123abcd"]}, "lists an id twice"),
    ({"ecs_task_subnet_id": [f"subnet-0123ab{i:02x}" for i in range(17)]}, "ECS takes at most 16; got 17"),
    ({"ecs_task_subnet_id": []}, "give at least one id"),
    ({"ecs_task_security_group_id": ["sg-0123abcd", "nope"]}, "'nope': expected 'sg-'"),
    ({"launch_attempts": 0}, "launch_attempts=0"),
    ({"launch_attempts": True}, "launch_attempts=True: expected a number, not a boolean"),
    ({"spot_fallback": True}, "spot_fallback=true applies only to Spot tasks"),
    ({"start_timeout": 0}, "start_timeout=0: give a number of seconds > 0, or -1 for no limit"),
    ({"start_timeout": True}, "start_timeout=True: expected a number, not a boolean"),
    ({"max_attempts": 51}, "max_attempts=51"),
    ({"poll_freq": "fast"}, "poll_freq='fast'"),
    ({"environment": {"A": 1}}, "environment.A=*** (value not shown): Input should be a valid string"),
    ({"ecs_task_log_group_name": "bad group!"}, "ecs_task_log_group_name='bad group!'"),
    ({"ecs_task_execution_role_name": ""}, "expected an IAM role name or a role ARN"),
    ({"memory": -1}, "memory=-1 GB is not offered with vcpu=0.25"),
    ({"cache_dir": __file__}, "cache_dir=" + repr(__file__) + ": exists and is not a folder"),
    ({"cache_dir": os.path.join(__file__, "cache")}, "is a file, not a folder"),
    # Not a number anyone meant: NaN and infinity, before they reach a conversion.
    ({"memory": float("inf")}, "memory=inf: expected a number of GB that Fargate offers with vcpu"),
    ({"vcpu": float("nan")}, "vcpu=nan: expected a Fargate size: one of 0.25, 0.5, 1, 2, 4, 8, 16"),
    ({"vcpu": "inf"}, "vcpu='inf': expected a Fargate size"),
    ({"poll_freq": float("nan")}, "poll_freq=nan: expected a number of seconds > 0 and at most 60"),
    ({"time_limit": float("nan")}, "time_limit=nan: expected a number of seconds > 0, or -1 for no limit"),
    ({"time_limit": float("inf")}, "time_limit=inf: expected a number of seconds > 0, or -1 for no limit"),
    ({"memory": 10**400}, "expected a number of GB"),
    ({"start_timeout": float("nan")}, "start_timeout=nan: expected a number of seconds > 0, or -1 for no limit"),
    ({"ephemeral_storage": float("inf")}, "ephemeral_storage=inf: expected a number of GiB: 20 (Fargate's default) or 21-200"),
    ({"launch_attempts": float("nan")}, "launch_attempts=nan: expected a whole number from 1 to 10"),
    # A region AWS does not have (an emulator may use any: test below).
    ({"region": "us-eats-1"}, "region='us-eats-1' is not an AWS region botocore knows; did you mean 'us-east-1'?"),
    # S3's naming rules beyond the characters.
    ({"s3_bucket_name": "192.168.1.1"}, "s3_bucket_name='192.168.1.1': S3 bucket names may not look like an IP address"),
    ({"s3_bucket_name": "xn--abc"}, "S3 reserves bucket names starting 'xn--'"),
    ({"s3_bucket_name": "sthree-data"}, "S3 reserves bucket names starting 'sthree-'"),
    ({"s3_bucket_name": "a.-b"}, "s3_bucket_name='a.-b': S3 bucket names may not contain '.-'"),
    ({"s3_bucket_name": "a-.b"}, "may not contain '-.'"),
    ({"s3_bucket_name": "a..b"}, "may not contain '..'"),
    ({"s3_bucket_name": "bucket-s3alias"}, "S3 reserves bucket names ending '-s3alias'"),
    ({"s3_bucket_name": "bucket--ol-s3"}, "S3 reserves bucket names ending '--ol-s3'"),
    ({"s3_bucket_name": "-bucket"}, "starting and ending with a letter or digit"),
    ({"endpoint_url": "http://x y"}, "endpoint_url='http://x y': expected an http:// or https:// URL"),
    ({"endpoint_url": "http://127.0.0.1:port"}, "expected an http:// or https:// URL"),
    ({"endpoint_url": "ftp://example.com"}, "expected an http:// or https:// URL"),
    # RunTask's overrides (the environment travels in them) hold at most 8192 characters.
    ({"environment": {f"V{i}": "x" * 100 for i in range(80)}}, "environment: with these 80 variables a task's RunTask overrides would be up to"),
    ({"environment": {"BIG": "x" * 8000}}, "ECS accepts at most 8192"),
    ({"secrets": {"1BAD": SECRET_ARN}}, "'1BAD' is not a valid environment variable name"),
    ({"secrets": {"AWS_SESSION_TOKEN": SECRET_ARN}}, "reserved"),
    ({"secrets": {"TOKEN": "hunter2"}}, "'TOKEN': 'hunter2' is not a Secrets Manager secret ARN"),
    ({"secrets": {"TOKEN": "arn:aws:s3:::bucket/key"}}, "or an SSM parameter ARN (arn:aws:ssm:"),
    ({"secrets": {"TOKEN": "arn:aws:secretsmanager:us-east-1:12345:secret:x"}}, "is not a Secrets Manager"),
    ({"secrets": {"TOKEN": "arn:aws:ssm:us-east-1:123456789012:parameter"}}, "is not a Secrets Manager"),
    ({"secrets": {"TOKEN": 5}}, "secrets.TOKEN=5: Input should be a valid string"),
    ({"secrets": ["TOKEN"]}, "secrets=['TOKEN']: Input should be a valid dictionary"),
    (
        {"secrets": {"TOKEN": SECRET_ARN}, "environment": {"TOKEN": "x"}},
        "TOKEN set in both environment and secrets; keep each name in one",
    ),
]


@pytest.mark.parametrize(("given", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_rejected_naming_the_key(given, message):
    with pytest.raises(ConfigError) as caught:
        ECSExecutor(**given)
    assert message in str(caught.value)


def test_a_cache_dir_that_cannot_be_created_is_rejected_before_any_aws_call(tmp_path):
    # A regular file where a folder must be: fails for root too (CI runs as root,
    # where a permission-based check could never fail).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder; choose a writable folder"):
        ECSExecutor(cache_dir=str(blocker / "cache"))


def test_an_unknown_key_in_the_file_is_named():
    with pytest.raises(ConfigError, match=r"unknown key in \[executors.ecs\] 'ecs_task_subnet'; did you mean"):
        build_config({}, {"ecs_task_subnet": "subnet-0123abcd"})


def test_an_emulator_endpoint_may_use_any_well_formed_region():
    config = build_config({"region": "xx-local-1", "endpoint_url": "http://127.0.0.1:4566"}, {})
    assert config.region == "xx-local-1"


def test_every_region_botocore_knows_is_accepted():
    from covalent_ecs_executor.config import known_regions

    assert {"us-east-1", "cn-north-1", "us-gov-west-1", "eusc-de-east-1"} <= known_regions()
    for region in known_regions():
        assert build_config({"region": region}, {}).region == region


def test_an_environment_that_fits_the_overrides_is_accepted():
    from covalent_ecs_executor.launch import MAX_OVERRIDES_CHARS, worst_case_overrides_chars

    config = build_config({"environment": {"BIG": "x" * 7000}}, {})
    assert worst_case_overrides_chars(config) <= MAX_OVERRIDES_CHARS


def test_repr_shows_the_task_size_and_where_it_runs_never_credentials(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("")
    executor = ECSExecutor(
        vcpu=1, memory=2, region="eu-west-1", ecs_cluster_name="work",
        capacity_provider="FARGATE_SPOT", credentials=str(credentials), profile="secret-profile",
    )
    assert repr(executor) == (
        "ECSExecutor(vcpu=1.0, memory=2.0, ecs_cluster_name='work', region='eu-west-1', "
        "capacity_provider='FARGATE_SPOT')"
    )


@pytest.mark.parametrize(
    "arn",
    [
        SECRET_ARN,
        SECRET_ARN + ":password::",  # a JSON key of the secret (ECS's valueFrom form)
        SECRET_ARN + "::AWSPREVIOUS:",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/team/db-password",
        "arn:aws:ssm:us-east-1:123456789012:parameter/plain_name",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbCdEf",
    ],
)
def test_secret_and_parameter_arns_are_accepted(arn):
    assert build_config({"secrets": {"TOKEN": arn}}, {}).secrets == {"TOKEN": arn}


@pytest.mark.parametrize(
    "given",
    [
        {"container_image_uri": "robot:hunter2@registry.example.com/runner:1"},
        {"container_image_uri": "registry.example.com/Runner:1", "endpoint_url": "http://robot:hunter2@bad host"},
    ],
)
def test_credentials_in_a_url_or_image_reference_are_never_echoed(given):
    with pytest.raises(ConfigError) as caught:
        ECSExecutor(**given)
    assert "hunter2" not in str(caught.value) and "***@" in str(caught.value)


def test_an_environment_value_is_never_echoed_in_an_error():
    with pytest.raises(ConfigError) as caught:
        ECSExecutor(environment={"bad name": "s3cr3t-value", "API_TOKEN": "other-s3cr3t"})
    assert "'bad name' is not a valid environment variable name" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_secret_looking_environment_names_are_warned_about_once_without_their_values(caplog):
    import logging

    environment = {"MY_API_TOKEN": "t0k3n-value", "DB_PASSWORD": "pw-value", "MODE": "fast"}
    with caplog.at_level(logging.WARNING, logger="covalent_ecs_executor.config"):
        build_config({"environment": environment}, {})
        build_config({"environment": environment}, {})  # the same config again: no repeat
        ECSExecutor(environment=environment, **GOOD)
    (record,) = caplog.records
    message = record.getMessage()
    assert "DB_PASSWORD, MY_API_TOKEN look like a credential" in message
    assert "name it in `secrets` instead" in message
    assert "t0k3n" not in message and "pw-value" not in message and "MODE" not in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="covalent_ecs_executor.config"):
        build_config({"environment": {"MODE": "fast"}}, {})
        build_config({"secrets": {"MY_API_TOKEN": SECRET_ARN}}, {})
    assert caplog.records == []
