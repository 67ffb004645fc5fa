"""The embedded sandbox behaves like ECS Fargate, S3 and CloudWatch Logs to a client.

Everything here goes through the real sandbox (a SandboxProcess shared by the
session): real HTTP, real boto3, real task processes. No mocks.
"""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.exceptions
import cloudpickle
import pytest
from botocore.config import Config
from sandbox_tasks import fargate_definition, in_sandbox_network
from signed_objects import put_signed, read_verified, run_environment
from waiting import wait_for

from covalent_ecs_executor.sandbox.seed import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from covalent_ecs_runtime import contract, signing

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
CONTAINER = "main"




def labelled_client(sandbox: Any, service: str, caller: str) -> Any:
    """A client whose calls the sandbox counts under ``caller`` (``sandbox-caller/`` in
    its User-Agent), apart from every other test's."""
    return boto3.session.Session().client(
        service,
        endpoint_url=sandbox.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(user_agent_extra=f"sandbox-caller/{caller}"),
    )


class Ecs:
    """Small helpers over an ECS client pointed at the sandbox."""

    def __init__(self, sandbox: Any, *, internal: bool = False, caller: str | None = None) -> None:
        self.sandbox = sandbox
        self.config = sandbox.executor_config
        self.client = (
            labelled_client(sandbox, "ecs", caller) if caller
            else sandbox.client("ecs", internal=internal)
        )  # fmt: skip
        self.cluster = self.config["ecs_cluster_name"]

    def register(self, *, image: str = "python:3.11-slim", **container: Any) -> str:
        definition = {
            "name": CONTAINER,
            "image": image,
            "essential": True,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.config["ecs_task_log_group_name"],
                    "awslogs-region": self.config["region"],
                    "awslogs-stream-prefix": "covalent",
                },
            },
        }
        definition.update(container)
        # No container-level memory: Fargate needs only task-level memory (moto patch).
        return self.client.register_task_definition(
            **fargate_definition(f"sandbox-test-{uuid.uuid4().hex[:8]}", definition)
        )["taskDefinition"]["taskDefinitionArn"]

    def run(self, task_definition: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.run_task(
            cluster=self.cluster,
            taskDefinition=task_definition,
            launchType="FARGATE",
            networkConfiguration=in_sandbox_network(self.config),
            **kwargs,
        )
        assert response["failures"] == []
        return response

    def describe(self, arn: str) -> dict[str, Any]:
        return self.client.describe_tasks(cluster=self.cluster, tasks=[arn], include=["TAGS"])[
            "tasks"
        ][0]

    def wait_status(self, arn: str, status: str, timeout_s: float = 15.0) -> dict[str, Any]:
        return wait_for(
            lambda: (task := self.describe(arn))["lastStatus"] == status and task,
            timeout_s=timeout_s,
            what=f"{arn} to be {status}",
        )

    def log_messages(self, task_arn: str) -> list[str]:
        logs = self.sandbox.client("logs", internal=True)
        stream = f"covalent/{CONTAINER}/{task_arn.rsplit('/', 1)[-1]}"
        try:
            events = logs.get_log_events(
                logGroupName=self.config["ecs_task_log_group_name"],
                logStreamName=stream,
                startFromHead=True,
            )["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [event["message"] for event in events]


def agent_record(sandbox: Any, arn: str) -> dict[str, Any]:
    return next(record for record in sandbox.tasks() if record["taskArn"] == arn)


def python_task(code: str) -> dict[str, Any]:
    return {"entryPoint": ["python3", "-c"], "command": [code]}


@pytest.fixture
def ecs(sandbox: Any) -> Ecs:
    return Ecs(sandbox, internal=True)


def test_task_goes_through_ecs_states_and_reports_its_exit_code_and_output(ecs: Ecs) -> None:
    definition = ecs.register(**python_task("print('hello from the task'); raise SystemExit(3)"))

    launched = ecs.run(definition)["tasks"][0]
    arn = launched["taskArn"]
    assert launched["lastStatus"] == "PROVISIONING"
    assert "exitCode" not in launched["containers"][0]

    seen_exit_before_stopped = wait_for(
        lambda: (
            (t := ecs.describe(arn))["containers"][0].get("exitCode") is not None
            and t["lastStatus"] != "STOPPED"
            and t
        ),
        what="the container's exit while the task is not yet STOPPED",
    )
    assert seen_exit_before_stopped["containers"][0]["lastStatus"] == "STOPPED"
    task = ecs.wait_status(arn, "STOPPED")

    container = task["containers"][0]
    assert container["exitCode"] == 3
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["desiredStatus"] == "STOPPED"
    assert (
        task["createdAt"]
        <= task["startedAt"]
        <= task["stoppingAt"]
        <= task["executionStoppedAt"]
        <= task["stoppedAt"]
    )
    history = [h["status"] for h in agent_record(ecs.sandbox, arn)["statusHistory"]]
    assert history == [
        "PROVISIONING",
        "PENDING",
        "RUNNING",
        "DEACTIVATING",
        "STOPPING",
        "DEPROVISIONING",
        "STOPPED",
    ]
    assert ecs.log_messages(arn) == ["hello from the task"]


def test_task_sees_definition_env_with_overrides_on_top_and_reports_overrides(ecs: Ecs) -> None:
    definition = ecs.register(
        environment=[{"name": "FROM_DEFINITION", "value": "d"}, {"name": "BOTH", "value": "d"}],
        **python_task("import json, os; print(json.dumps({**os.environ, 'CWD': os.getcwd()}))"),
    )
    overrides = {
        "containerOverrides": [
            {
                "name": CONTAINER,
                "environment": [
                    {"name": "BOTH", "value": "override"},
                    {"name": "FROM_OVERRIDE", "value": "o"},
                ],
            }
        ],
        "cpu": "512",
        "memory": "1024",
    }
    arn = ecs.run(
        definition,
        overrides=overrides,
        startedBy="covalent-test",
        tags=[{"key": "dispatch", "value": "d1"}],
    )["tasks"][0]["taskArn"]
    task = ecs.wait_status(arn, "STOPPED")

    assert task["containers"][0]["exitCode"] == 0
    assert task["overrides"] == overrides
    assert (task["cpu"], task["memory"]) == ("512", "1024")
    assert task["startedBy"] == "covalent-test"
    assert task["tags"] == [{"key": "dispatch", "value": "d1"}]
    env = json.loads(ecs.log_messages(arn)[0])
    assert env["FROM_DEFINITION"] == "d"
    assert env["BOTH"] == "override"
    assert env["FROM_OVERRIDE"] == "o"
    assert env["AWS_ENDPOINT_URL"] == ecs.sandbox.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["HOME"] == env["CWD"]  # a per-task directory
    assert env["HOME"].endswith(arn.rsplit("/", 1)[-1])
    assert "VIRTUAL_ENV" not in env  # not the host's environment
    record = agent_record(ecs.sandbox, arn)
    assert record["env"]["AWS_SECRET_ACCESS_KEY"] == "****"
    assert record["argv"][0] == sys.executable
    assert record["memoryLimitMiB"] == 1024


def test_command_override_replaces_the_definition_command(ecs: Ecs) -> None:
    definition = ecs.register(**python_task("raise SystemExit(5)"))
    arn = ecs.run(
        definition,
        overrides={"containerOverrides": [{"name": CONTAINER, "command": ["print('overridden')"]}]},
    )["tasks"][0]["taskArn"]
    task = ecs.wait_status(arn, "STOPPED")
    assert task["containers"][0]["exitCode"] == 0
    assert ecs.log_messages(arn) == ["overridden"]


def test_output_is_readable_while_running_and_stop_task_is_user_initiated(ecs: Ecs) -> None:
    definition = ecs.register(
        **python_task("import time; print('working', flush=True); time.sleep(60)")
    )
    arn = ecs.run(definition)["tasks"][0]["taskArn"]
    wait_for(lambda: ecs.log_messages(arn) == ["working"], what="the first log line")
    assert ecs.describe(arn)["lastStatus"] == "RUNNING"

    stopped = ecs.client.stop_task(cluster=ecs.cluster, task=arn, reason="cancelled by the test")
    assert stopped["task"]["desiredStatus"] == "STOPPED"
    task = ecs.wait_status(arn, "STOPPED")

    assert task["stopCode"] == "UserInitiated"
    assert task["stoppedReason"] == "cancelled by the test"
    assert task["containers"][0]["exitCode"] == 143  # SIGTERM
    assert agent_record(ecs.sandbox, arn)["exitCode"] == 143


def test_stop_task_kills_a_process_that_ignores_sigterm(ecs: Ecs) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ignoring', flush=True); time.sleep(60)"
    )
    arn = ecs.run(ecs.register(**python_task(code)))["tasks"][0]["taskArn"]
    wait_for(lambda: ecs.log_messages(arn) == ["ignoring"], what="the task to ignore SIGTERM")
    ecs.client.stop_task(cluster=ecs.cluster, task=arn, reason="stop")
    task = ecs.wait_status(arn, "STOPPED")
    assert task["containers"][0]["exitCode"] == 137  # SIGKILL after the stop timeout


def test_missing_ecr_image_fails_to_pull_and_never_runs(ecs: Ecs) -> None:
    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{ecs.config['ecr_repo_name']}:no-such-tag"
    arn = ecs.run(ecs.register(image=image, **python_task("print('ran')")))["tasks"][0]["taskArn"]
    task = ecs.wait_status(arn, "STOPPED")

    container = task["containers"][0]
    assert "exitCode" not in container
    assert container["reason"].startswith("CannotPullContainerError:")
    assert image in container["reason"]
    assert task["stoppedReason"].startswith("CannotPullContainerError:")
    assert task["stopCode"] == "TaskFailedToStart"
    record = agent_record(ecs.sandbox, arn)
    assert record["pid"] is None and record["argv"] == []
    assert ecs.log_messages(arn) == []


def test_seeded_runner_image_is_pullable(ecs: Ecs) -> None:
    image = (
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/"
        f"{ecs.config['ecr_repo_name']}:{contract.runner_image_tag()}"
    )
    arn = ecs.run(ecs.register(image=image, **python_task("pass")))["tasks"][0]["taskArn"]
    assert ecs.wait_status(arn, "STOPPED")["containers"][0]["exitCode"] == 0


def test_reused_client_token_returns_the_same_task_and_starts_one_process(ecs: Ecs) -> None:
    definition = ecs.register(**python_task("pass"))
    token = uuid.uuid4().hex

    def launch() -> str:
        return ecs.run(definition, clientToken=token)["tasks"][0]["taskArn"]

    with ThreadPoolExecutor(max_workers=5) as pool:
        concurrent = [pool.submit(launch) for _ in range(5)]
        # A ceiling, not a pace: one RunTask is bounded by botocore's 60 s read timeout.
        results = [future.result(timeout=60) for future in concurrent]
    results.append(launch())  # and once more after the first has finished

    assert len(results) == 6 and len(set(results)) == 1
    ecs.wait_status(results[0], "STOPPED")
    assert [r["taskArn"] for r in ecs.sandbox.tasks()].count(results[0]) == 1


def test_api_calls_are_counted_per_operation_and_sandbox_calls_are_not(
    fresh_sandbox: Any,
) -> None:
    config = fresh_sandbox.executor_config
    bucket = config["s3_bucket_name"]
    s3 = fresh_sandbox.client("s3")
    s3.put_object(Bucket=bucket, Key="counted/a.txt", Body=b"a")
    s3.head_object(Bucket=bucket, Key="counted/a.txt")
    s3.get_object(Bucket=bucket, Key="counted/a.txt")
    s3.delete_object(Bucket=bucket, Key="counted/a.txt")
    fresh_sandbox.client("sts").get_caller_identity()
    fresh_sandbox.client("ecs").list_clusters()
    fresh_sandbox.client("logs").describe_log_groups()
    # Internal (marked) clients are the sandbox's own: never counted.
    fresh_sandbox.client("s3", internal=True).list_objects_v2(Bucket=bucket)
    fresh_sandbox.client("ecs", internal=True).list_clusters()

    assert fresh_sandbox.calls() == {
        "ecs.ListClusters": 1,
        "logs.DescribeLogGroups": 1,
        "s3.DeleteObject": 1,
        "s3.GetObject": 1,
        "s3.HeadObject": 1,
        "s3.PutObject": 1,
        "sts.GetCallerIdentity": 1,
    }
    fresh_sandbox.reset_calls()
    assert fresh_sandbox.calls() == {}


def test_multipart_upload_is_counted_as_its_parts(fresh_sandbox: Any) -> None:
    s3 = fresh_sandbox.client("s3")
    body = io.BytesIO(b"x" * (9 * 1024 * 1024))  # above the 8 MiB multipart threshold
    s3.upload_fileobj(body, fresh_sandbox.executor_config["s3_bucket_name"], "counted/big")
    calls = fresh_sandbox.calls()
    assert calls["s3.CreateMultipartUpload"] == 1
    assert calls["s3.UploadPart"] == 2
    assert calls["s3.CompleteMultipartUpload"] == 1


# What ECS's awslogs driver would call: the agent does this work on moto's objects.
AGENT_OPERATIONS = {"logs.CreateLogGroup", "logs.CreateLogStream", "logs.PutLogEvents"}


def test_task_processes_make_counted_calls_but_the_agent_does_not(sandbox: Any) -> None:
    # This test's calls, and its task's, carry a caller name of their own: a task
    # another test started cannot change what is counted here.
    caller = f"counting-test-{uuid.uuid4().hex[:8]}"
    ecs = Ecs(sandbox, caller=caller)
    code = (
        "import boto3; from botocore.config import Config;"
        f" boto3.client('sts', config=Config(user_agent_extra='sandbox-caller/{caller}'))"
        ".get_caller_identity(); print('called sts', flush=True)"
    )
    arn = ecs.run(ecs.register(**python_task(code)))["tasks"][0]["taskArn"]
    task = ecs.wait_status(arn, "STOPPED")
    assert task["containers"][0]["exitCode"] == 0
    assert ecs.log_messages(arn) == ["called sts"]  # the agent shipped the output

    by_caller = sandbox.calls_by_caller()
    calls = dict(by_caller[caller])
    assert calls.pop("sts.GetCallerIdentity") == 1  # from inside the task
    assert calls.pop("ecs.RegisterTaskDefinition") == 1
    assert calls.pop("ecs.RunTask") == 1
    assert set(calls) == {"ecs.DescribeTasks"}
    # Shipping the output made no counted call, whoever the sandbox would blame for it.
    assert not {op for counts in by_caller.values() for op in counts} & AGENT_OPERATIONS


def test_run_task_rejects_bad_count_and_unknown_cluster(ecs: Ecs) -> None:
    definition = ecs.register(**python_task("pass"))
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ecs.run(definition, count=11)
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ecs.client.run_task(
            cluster="no-such-cluster", taskDefinition=definition, launchType="FARGATE"
        )
    assert error.value.response["Error"]["Code"] == "ClusterNotFoundException"


def test_describe_tasks_reports_unknown_tasks_as_missing(ecs: Ecs) -> None:
    unknown = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/{ecs.cluster}/{uuid.uuid4().hex}"
    response = ecs.client.describe_tasks(cluster=ecs.cluster, tasks=[unknown])
    assert response["tasks"] == []
    assert response["failures"] == [{"arn": unknown, "reason": "MISSING"}]


def test_runner_executes_a_staged_payload_and_writes_the_envelope(ecs: Ecs) -> None:
    def add(a: int, b: int, *, scale: int) -> int:
        print("adding", a, b)
        return (a + b) * scale

    config = ecs.config
    bucket = config["s3_bucket_name"]
    prefix = f"tasks/{uuid.uuid4().hex}"
    payload_key, result_key = f"{prefix}/payload.pkl", f"{prefix}/result.pkl"
    s3 = ecs.sandbox.client("s3")
    signing_key = signing.SigningKey.new()
    put_signed(s3, bucket, payload_key, cloudpickle.dumps((add, (2, 3), {"scale": 10})), signing_key)
    image = (
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/"
        f"{config['ecr_repo_name']}:{contract.runner_image_tag()}"
    )
    definition = ecs.register(image=image, entryPoint=contract.ENTRY_POINT)
    env = {
        **contract.client_env(),
        contract.ENV_TASK_LABEL: "dispatch/0",
        **run_environment(signing_key, ACCOUNT),
    }
    arn = ecs.run(
        definition,
        overrides={
            "containerOverrides": [
                {
                    "name": CONTAINER,
                    "command": contract.run_command(
                        bucket=bucket, payload_key=payload_key, result_key=result_key
                    ),
                    "environment": [{"name": k, "value": v} for k, v in env.items()],
                }
            ]
        },
    )["tasks"][0]["taskArn"]
    task = ecs.wait_status(arn, "STOPPED", timeout_s=30)

    assert task["containers"][0]["exitCode"] == contract.EXIT_RESULT_WRITTEN
    envelope = read_verified(s3, bucket, result_key, signing_key)
    assert envelope["outcome"] == contract.OUTCOME_RETURNED
    assert envelope["value"] == 50
    assert envelope["stdout"] == "adding 2 3\n"
    assert envelope["runtime"] == contract.runtime_versions()
    assert "[covalent-ecs-runtime] task dispatch/0: returned" in ecs.log_messages(arn)


def test_task_over_its_memory_is_killed_as_out_of_memory(ecs: Ecs) -> None:
    code = (
        "import time; block = b'x' * (700 * 1024 * 1024);"
        " print('allocated', flush=True); time.sleep(60)"
    )
    arn = ecs.run(ecs.register(**python_task(code)))["tasks"][0]["taskArn"]  # memory 512
    task = ecs.wait_status(arn, "STOPPED", timeout_s=30)

    container = task["containers"][0]
    assert container["exitCode"] == 137
    assert container["reason"].startswith("OutOfMemoryError")
    assert task["stoppedReason"].startswith("OutOfMemoryError")
    assert task["stopCode"] == "EssentialContainerExited"
    assert agent_record(ecs.sandbox, arn)["peakRssBytes"] > 512 * 1024 * 1024


def test_fifty_concurrent_tasks_all_run_and_stop(ecs: Ecs) -> None:
    definition = ecs.register(**python_task("import os; print(os.getpid())"))
    started = time.monotonic()
    arns = [t["taskArn"] for _ in range(5) for t in ecs.run(definition, count=10)["tasks"]]
    assert len(set(arns)) == 50

    def all_stopped() -> list[dict[str, Any]] | None:
        tasks = ecs.client.describe_tasks(cluster=ecs.cluster, tasks=arns)["tasks"]
        return tasks if all(t["lastStatus"] == "STOPPED" for t in tasks) else None

    tasks = wait_for(all_stopped, timeout_s=45, what="50 tasks to stop")
    elapsed = time.monotonic() - started
    assert [t["containers"][0]["exitCode"] for t in tasks] == [0] * 50
    assert all(len(ecs.log_messages(arn)) == 1 for arn in arns)
    print(f"50 tasks from RunTask to all STOPPED in {elapsed:.2f} s")


def test_control_api_serves_the_executor_config_block(sandbox: Any) -> None:
    assert set(sandbox.executor_config) == {
        "credentials",
        "profile",
        "region",
        "s3_bucket_name",
        "ecr_repo_name",
        "ecs_cluster_name",
        "ecs_task_family_name",
        "ecs_task_execution_role_name",
        "ecs_task_role_name",
        "ecs_task_subnet_id",
        "ecs_task_security_group_id",
        "ecs_task_log_group_name",
        "endpoint_url",
    }
    assert sandbox.executor_config["endpoint_url"] == sandbox.endpoint_url
    assert sandbox.health()["status"] == "ok"
    with open(sandbox.executor_config["credentials"]) as f:
        assert "[sandbox]" in f.read()


def test_runner_refuses_a_client_with_another_python_or_cloudpickle(ecs: Ecs) -> None:
    from covalent_ecs_executor.errors import RuntimeSkewError
    from covalent_ecs_executor.failures import envelope_error

    config = ecs.config
    bucket = config["s3_bucket_name"]
    prefix = f"tasks/{uuid.uuid4().hex}"
    payload_key, result_key = f"{prefix}/payload.pkl", f"{prefix}/result.pkl"
    s3 = ecs.sandbox.client("s3")
    signing_key = signing.SigningKey.new()
    put_signed(s3, bucket, payload_key, cloudpickle.dumps((abs, (-1,), {})), signing_key)
    definition = ecs.register(entryPoint=contract.ENTRY_POINT)
    env = {
        contract.ENV_CLIENT_PYTHON: "3.99",
        contract.ENV_CLIENT_CLOUDPICKLE: "0.1",
        **run_environment(signing_key, ACCOUNT),
    }
    arn = ecs.run(
        definition,
        overrides={"containerOverrides": [{
            "name": CONTAINER,
            "command": contract.run_command(bucket=bucket, payload_key=payload_key, result_key=result_key),
            "environment": [{"name": k, "value": v} for k, v in env.items()],
        }]},
    )["tasks"][0]["taskArn"]
    assert ecs.wait_status(arn, "STOPPED", timeout_s=30)["containers"][0]["exitCode"] == 0
    envelope = read_verified(s3, bucket, result_key, signing_key)
    assert envelope["outcome"] == contract.OUTCOME_RUNNER_ERROR
    assert "timings" in envelope and "function_started" not in envelope["timings"]  # never ran
    error = envelope_error(envelope)
    assert isinstance(error, RuntimeSkewError)
    assert f"python {contract.python_minor()} in the runner image, 3.99 on the client" in str(error)
    assert "cloudpickle" in str(error) and "publish-image" in str(error)
