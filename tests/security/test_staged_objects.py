"""Nothing but the task that was asked can write a result the client loads.

Through the executor and the sandbox: the ``hostile_overwrite`` fault stands in for
another task (every task role may write under the staging prefix) that replaces a
running task's result, or its payload, with a forged pickle creating a marker file
when unpickled. The run's key (signing.py) travels only in the RunTask environment
override: it must show up in no S3 object, no log line and no output.
"""

from __future__ import annotations

import io
import pickle
import sys
import uuid
from typing import Any

import cloudpickle
import pytest
from covalent._shared_files.exceptions import TaskRuntimeError
from executor_runs import run_nodes

from covalent_ecs_executor import ECSExecutor, IntegrityError
from covalent_ecs_executor.sandbox.faults import Fault, forged_object
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration
# The runner cannot import this module: pickle its functions by value, as users do.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def new_executor(sandbox: Any, **overrides: Any) -> ECSExecutor:
    executor = ECSExecutor(**{**sandbox.executor_config, **overrides})
    executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
    return executor


def slow_square(x: int) -> int:
    import time

    time.sleep(0.5)  # still running while the victim's objects are forged
    return x * x


def staged_objects(sandbox: Any, bucket: str, dispatch_id: str) -> list[str]:
    """This dispatch's payloads and results left behind (its records stay by design)."""
    s3 = sandbox.client("s3", internal=True)
    prefix = f"covalent-ecs/{dispatch_id}/"
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [o["Key"] for o in listing if "/records/" not in o["Key"]]


def run_secret(sandbox: Any, executor: ECSExecutor, label: str) -> str:
    """The signing key a task got, read back as DescribeTasks shows its overrides."""
    [record] = [r for r in sandbox.tasks() if r["label"] == label]
    ecs = sandbox.client("ecs", internal=True)
    [task] = ecs.describe_tasks(cluster=executor.ecs_cluster_name, tasks=[record["taskArn"]])["tasks"]
    [override] = task["overrides"]["containerOverrides"]
    return {e["name"]: e["value"] for e in override["environment"]}[contract.ENV_SIGNING_SECRET]


@pytest.fixture
def dispatch_id(sandbox: Any):
    dispatch_id = f"security-{uuid.uuid4().hex[:8]}"
    yield dispatch_id
    sandbox.clear_faults()


def test_the_forged_pickle_is_live_so_the_markers_absence_below_means_something(tmp_path):
    marker = tmp_path / "live"
    body, _ = forged_object(Fault(kind="hostile_overwrite", marker=str(marker)), "k")
    pickle.loads(body)
    assert marker.exists()


def test_a_result_another_task_overwrote_fails_the_node_and_is_never_loaded(
    sandbox, dispatch_id, tmp_path
):
    marker = tmp_path / "result-unpickled"
    sandbox.add_fault("hostile_overwrite", label=f"{dispatch_id}/0", target="result",
                      marker=str(marker))  # fmt: skip
    executor = new_executor(sandbox)
    victim, bystander = run_nodes(executor, [(slow_square, (3,), {}), (slow_square, (4,), {})], dispatch_id)

    [fault] = [f for f in sandbox.faults() if f["label"] == f"{dispatch_id}/0"]
    assert fault["used"] == 1 and fault["applied_to"][-1].endswith("/result.pkl")
    forged_uri = fault["applied_to"][-1]
    assert isinstance(victim, TaskRuntimeError)
    cause = victim.__cause__
    assert isinstance(cause, IntegrityError) and cause.object_uri == forged_uri
    assert f"the result {forged_uri} failed its integrity check and was not loaded" in str(victim)
    assert not marker.exists()
    secret = run_secret(sandbox, executor, f"{dispatch_id}/0")
    assert secret not in f"{victim} {cause!r} {executor.task_stderr.getvalue()}"
    assert bystander == 16  # the other task, running alongside, is untouched
    assert staged_objects(sandbox, executor.s3_bucket_name, dispatch_id) == []


def test_a_payload_another_task_overwrote_is_refused_by_the_runner_naming_it(
    sandbox, dispatch_id, tmp_path
):
    marker = tmp_path / "payload-unpickled"
    sandbox.add_fault("hostile_overwrite", label=f"{dispatch_id}/0", target="payload",
                      marker=str(marker))  # fmt: skip
    executor = new_executor(sandbox)
    [victim] = run_nodes(executor, [(slow_square, (5,), {})], dispatch_id)

    [fault] = [f for f in sandbox.faults() if f["label"] == f"{dispatch_id}/0"]
    forged_uri = fault["applied_to"][-1]
    assert forged_uri.endswith("/payload.pkl")
    assert isinstance(victim, TaskRuntimeError)
    assert isinstance(victim.__cause__, IntegrityError)
    assert victim.__cause__.object_uri == forged_uri
    assert f"the task payload {forged_uri} does not carry this run's signature" in str(victim)
    assert "The task did not run" in str(victim)
    assert not marker.exists()


def test_an_unsigned_result_as_runners_before_0_2_0_wrote_is_refused_naming_publish_image(
    sandbox, dispatch_id, tmp_path
):
    marker = tmp_path / "old-result-unpickled"
    sandbox.add_fault("hostile_overwrite", label=f"{dispatch_id}/0", target="result",
                      marker=str(marker), signed=False)  # fmt: skip
    executor = new_executor(sandbox)
    [victim] = run_nodes(executor, [(slow_square, (6,), {})], dispatch_id)

    assert isinstance(victim, TaskRuntimeError)
    assert isinstance(victim.__cause__, IntegrityError)
    assert "carries no signature" in str(victim) and "covalent-ecs publish-image" in str(victim)
    assert not marker.exists()


def print_the_environment() -> str:
    import os

    print(dict(os.environ))
    return "printed"


def test_the_runs_key_is_in_no_s3_object_no_log_line_and_no_output(sandbox, dispatch_id):
    # A versioned bucket keeps every version of every staged object after cleanup.
    bucket = f"versioned-{uuid.uuid4().hex[:8]}"
    s3 = sandbox.client("s3", internal=True)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    executor = new_executor(sandbox, s3_bucket_name=bucket)
    assert run_nodes(executor, [(print_the_environment, (), {})], dispatch_id) == ["printed"]

    [record] = [r for r in sandbox.tasks() if r["label"] == f"{dispatch_id}/0"]
    assert record["env"][contract.ENV_SIGNING_SECRET] == "****"  # the sandbox masks it too
    secret = run_secret(sandbox, executor, f"{dispatch_id}/0")
    needles = (secret.encode(), bytes.fromhex(secret))
    assert len(bytes.fromhex(secret)) == 32

    listing = s3.list_object_versions(Bucket=bucket)
    versions = listing.get("Versions", [])
    # The payload, the result and the run's durable record (observability): all checked.
    assert {v["Key"].rsplit("/", 1)[-1] for v in versions} >= {"payload.pkl", "result.pkl"}
    assert any("/records/" in v["Key"] for v in versions)
    assert listing.get("DeleteMarkers")  # cleaned up, yet every version is still readable
    for version in versions:
        got = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        body = got["Body"].read()
        assert not any(needle in body for needle in needles), version["Key"]
        assert secret not in repr(got["Metadata"])

    logs = sandbox.client("logs", internal=True)
    group, stream = record["logStream"].split(":", 1)
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert any("COVALENT_ECS_TASK" in e["message"] for e in events)  # the environment was logged
    assert not any(secret in e["message"] for e in events)
    output = executor.task_stdout.getvalue() + executor.task_stderr.getvalue()
    assert "COVALENT_ECS_TASK" in output and secret not in output
