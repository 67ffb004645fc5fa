"""The runner's failure paths, each run as the container runs it.

``python -m covalent_ecs_runtime run ...`` in a subprocess, against the sandbox's S3
(its environment points boto3 at the sandbox, as ECS would give it a task role). Each
test stages what the runner reads, runs it, and asserts on its exit code and on the
envelope it wrote — and the client's reading of that envelope (failures.py), so a
contract change breaks here first. Payloads are signed as the client signs them (a
run's key, the bucket's owner in the environment), unless a test says otherwise.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import signal
import subprocess
import sys
import uuid
from typing import Any

import cloudpickle
import pytest
from signed_objects import put_signed, read_verified, run_environment

from covalent_ecs_executor import failures
from covalent_ecs_executor.errors import (
    CapacityError,
    IntegrityError,
    RemoteTaskError,
    RuntimeSkewError,
    StagingError,
    TaskInterruptedError,
)
from covalent_ecs_executor.sandbox.seed import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from covalent_ecs_executor.staging import STAGING_ROOT
from covalent_ecs_runtime import contract, signing

pytestmark = pytest.mark.integration

# A runner process imports boto3 and cloudpickle and makes two S3 requests: generous
# for a loaded 2-core machine, and only reached when something is broken.
RUNNER_TIMEOUT_S = 120
# An account that is not the sandbox's: it owns the look-alike buckets.
FOREIGN_ACCOUNT = "111122223333"


class Staged:
    def __init__(self, sandbox: Any, bucket: str | None = None) -> None:
        self.sandbox = sandbox
        self.s3 = sandbox.client("s3")
        self.bucket = bucket or sandbox.executor_config["s3_bucket_name"]
        self.dispatch_id = f"runner-{uuid.uuid4().hex[:8]}"
        prefix = f"{STAGING_ROOT}/{self.dispatch_id}/0-{uuid.uuid4().hex[:8]}/"
        self.payload_key = prefix + "payload.pkl"
        self.result_key = prefix + "result.pkl"
        self.key = signing.SigningKey.new()
        self.owner = sandbox.client("sts", internal=True).get_caller_identity()["Account"]

    def put_payload(
        self, body: bytes, *, signed: bool = True, key: signing.SigningKey | None = None
    ) -> None:
        """Stage ``body`` as the client does, signed with this run's key (or ``key``)."""
        signing_key = (key or self.key) if signed else None
        put_signed(self.s3, self.bucket, self.payload_key, body, signing_key)

    def run(self, *, with_run_secrets: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(), env=self.env(with_run_secrets=with_run_secrets),
            capture_output=True, text=True, timeout=RUNNER_TIMEOUT_S,
        )  # fmt: skip

    def argv(self) -> list[str]:
        command = contract.run_command(
            bucket=self.bucket, payload_key=self.payload_key, result_key=self.result_key
        )
        return [sys.executable, "-m", contract.RUNTIME_MODULE, *command]

    def env(self, *, with_run_secrets: bool = True) -> dict[str, str]:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.sandbox.executor_config["endpoint_url"],
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            **contract.client_env(),
            contract.ENV_TASK_LABEL: f"{self.dispatch_id}/0",
        }
        if with_run_secrets:
            env.update(run_environment(self.key, self.owner))
        return env

    def envelope(self) -> dict[str, Any]:
        """The result, once its MAC (as the client checks it) verified."""
        return read_verified(self.s3, self.bucket, self.result_key, self.key)


@pytest.fixture
def staged(sandbox: Any) -> Staged:
    return Staged(sandbox)


def test_a_missing_payload_is_reported_as_a_staging_error(staged: Staged) -> None:
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    envelope = staged.envelope()
    assert envelope["outcome"] == contract.OUTCOME_RUNNER_ERROR
    assert envelope["error"]["kind"] == contract.KIND_PAYLOAD_MISSING
    error = failures.envelope_error(envelope)
    assert isinstance(error, StagingError)
    assert staged.payload_key in str(error)


def test_an_unreadable_payload_is_reported_without_running_anything(staged: Staged) -> None:
    staged.put_payload(b"this is not a pickle")
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    envelope = staged.envelope()
    assert envelope["error"]["kind"] == contract.KIND_PAYLOAD_UNREADABLE
    assert "function_started" not in envelope["timings"]
    error = failures.envelope_error(envelope)
    assert isinstance(error, RuntimeSkewError)
    assert "could not be unpickled" in str(error)


def test_an_unpicklable_return_value_is_reported_with_its_type(staged: Staged) -> None:
    def returns_a_lock() -> Any:  # nested: pickled by value, as a user's function is
        import threading

        return threading.Lock()

    staged.put_payload(cloudpickle.dumps((returns_a_lock, (), {})))
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    envelope = staged.envelope()
    assert envelope["outcome"] == contract.OUTCOME_RUNNER_ERROR
    assert envelope["error"]["kind"] == contract.KIND_RESULT_UNPICKLABLE
    assert envelope["value"] is None
    error = failures.envelope_error(envelope)
    assert isinstance(error, RemoteTaskError)
    assert "could not be pickled" in str(error) and "lock" in str(error).lower()


def test_output_beyond_the_capture_limit_is_truncated_and_flagged(staged: Staged) -> None:
    def prints(size: int) -> int:
        import sys

        sys.stdout.write("x" * size)
        sys.stdout.flush()
        return size

    size = contract.MAX_CAPTURED_BYTES + 4096
    staged.put_payload(cloudpickle.dumps((prints, (size,), {})))
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr[-2000:]
    envelope = staged.envelope()
    assert envelope["value"] == size
    assert envelope["stdout_truncated"] is True
    assert len(envelope["stdout"]) == contract.MAX_CAPTURED_BYTES
    assert envelope["stderr_truncated"] is False
    # The container's own stdout (its log stream) still got every byte.
    assert len(done.stdout) == size


def test_a_result_that_cannot_be_uploaded_exits_3_and_the_client_names_it(
    staged: Staged,
) -> None:
    staged.put_payload(cloudpickle.dumps((abs, (-3,), {})))
    # 403 is not retried: the runner's only PutObject fails.
    staged.sandbox.add_fault(
        "s3_error", label=staged.dispatch_id, operations=["s3.PutObject"], status=403
    )
    try:
        done = staged.run()
    finally:
        staged.sandbox.clear_faults()
    assert done.returncode == contract.EXIT_NO_RESULT
    assert f"could not write the result to s3://{staged.bucket}/{staged.result_key}" in done.stderr
    task = {
        "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/c/1",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [
            {"name": contract.CONTAINER_NAME, "exitCode": contract.EXIT_NO_RESULT}
        ],
    }
    message = str(failures.classify_stopped_task(task, result_uri="s3://b/k"))
    assert "the runner could not write its result to s3://b/k" in message
    assert "exit code 3" in message and "s3:PutObject" in message


# ------------------------------------------------------------- signing and bucket owner
class _Marker:
    """Unpickling this creates ``path``: a forged payload that would run code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_the_marker_pickle_is_live_so_its_absence_below_means_something(tmp_path) -> None:
    marker = tmp_path / "live"
    pickle.loads(pickle.dumps(_Marker(str(marker))))
    assert marker.exists()


@pytest.mark.parametrize("forgery", ["unsigned", "signed with another key"])
def test_a_payload_without_this_runs_signature_is_never_unpickled(
    staged: Staged, tmp_path, forgery: str
) -> None:
    marker = tmp_path / "unpickled"
    body = pickle.dumps((_Marker(str(marker)), (), {}))
    if forgery == "unsigned":
        staged.put_payload(body, signed=False)
    else:
        staged.put_payload(body, key=signing.SigningKey.new())
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    assert not marker.exists()
    envelope = staged.envelope()  # itself signed: the client trusts this report
    assert envelope["error"]["kind"] == contract.KIND_PAYLOAD_UNVERIFIED
    assert "function_started" not in envelope["timings"]
    uri = f"s3://{staged.bucket}/{staged.payload_key}"
    error = failures.envelope_error(envelope, payload_uri=uri)
    assert isinstance(error, IntegrityError) and error.object_uri == uri
    assert uri in str(error) and "was not loaded" in str(error)


def test_the_signing_key_is_gone_before_the_tasks_code_runs(staged: Staged) -> None:
    def look_for_the_key() -> Any:
        import os
        import subprocess
        import sys

        from covalent_ecs_runtime import contract

        print(dict(os.environ))
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(dict(os.environ))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return os.environ.get(contract.ENV_SIGNING_SECRET), child.stdout

    staged.put_payload(cloudpickle.dumps((look_for_the_key, (), {})))
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    in_task, in_child = staged.envelope()["value"]
    secret = staged.key.env_value()
    assert in_task is None
    assert contract.ENV_SIGNING_SECRET not in in_child and secret not in in_child
    assert secret not in done.stdout and secret not in done.stderr  # the container's log


def test_without_its_key_and_owner_the_runner_reads_and_writes_nothing(staged: Staged) -> None:
    staged.put_payload(cloudpickle.dumps((abs, (-1,), {})))
    staged.sandbox.reset_calls()
    done = staged.run(with_run_secrets=False)
    assert done.returncode == contract.EXIT_USAGE
    assert contract.ENV_SIGNING_SECRET in done.stderr and "covalent-ecs publish-image" in done.stderr
    assert "runner" not in staged.sandbox.calls_by_caller()


def test_every_runner_request_names_the_accounts_bucket_owner(staged: Staged) -> None:
    staged.put_payload(cloudpickle.dumps((abs, (-4,), {})))
    staged.sandbox.reset_calls()
    done = staged.run()
    assert done.returncode == contract.EXIT_RESULT_WRITTEN, done.stderr
    assert staged.envelope()["value"] == 4
    runner = staged.sandbox.expected_owners()["runner"]
    assert set(runner) == {"s3.GetObject", "s3.PutObject"}
    assert all(set(owners) == {staged.owner} for owners in runner.values()), runner


def test_a_bucket_of_another_account_gets_nothing_from_the_runner(sandbox: Any) -> None:
    bucket = f"look-alike-{uuid.uuid4().hex[:8]}"
    sandbox.create_foreign_bucket(bucket, FOREIGN_ACCOUNT)
    staged = Staged(sandbox, bucket=bucket)
    staged.put_payload(cloudpickle.dumps((abs, (-5,), {})))  # moto lets anyone write there
    sandbox.reset_calls()
    done = staged.run()
    assert done.returncode == contract.EXIT_NO_RESULT
    assert f"could not write the result to s3://{bucket}/{staged.result_key}" in done.stderr
    owners = sandbox.expected_owners()["runner"]
    assert all(set(by_owner) == {staged.owner} for by_owner in owners.values()), owners
    refused = sandbox.calls_by_caller()["runner"]
    assert refused["refused.s3.GetObject"] == 1 and refused["refused.s3.PutObject"] >= 1
    keys = [o["Key"] for o in staged.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [staged.payload_key]  # no result was written there


def test_sigterm_while_the_function_runs_writes_an_interrupted_envelope_with_the_output(
    staged: Staged,
) -> None:
    def works_until_stopped() -> None:
        import time

        print("step 1 done", flush=True)
        time.sleep(120)

    staged.put_payload(cloudpickle.dumps((works_until_stopped, (), {})))
    runner = subprocess.Popen(
        staged.argv(), env=staged.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert runner.stdout is not None
        for line in runner.stdout:  # the container's log: the task printed its first line
            if "step 1 done" in line:
                break
        runner.send_signal(signal.SIGTERM)  # what ECS sends on a Spot interruption
        assert runner.wait(timeout=RUNNER_TIMEOUT_S) == contract.EXIT_RESULT_WRITTEN
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    envelope = staged.envelope()
    assert envelope["outcome"] == contract.OUTCOME_INTERRUPTED
    assert envelope["stdout"] == "step 1 done\n"
    spot = {"taskArn": "arn:t", "stopCode": "SpotInterruption", "stoppedReason": "Your Spot Task was interrupted."}
    error = failures.envelope_error(envelope, task=spot)
    assert isinstance(error, CapacityError)
    assert "was interrupted by Spot after" in str(error) and "rerun_on_interruption" in str(error)
    other = failures.envelope_error(envelope, task={"stopCode": "UserInitiated"})
    assert isinstance(other, TaskInterruptedError)
