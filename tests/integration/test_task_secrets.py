"""`secrets`: a value from the sandbox's Secrets Manager / SSM Parameter Store reaches
the task's environment (resolved by the agent as ECS does with the execution role),
and travels in no request the client makes and in no S3 object.

The task proves it got the values by returning their SHA-256 (a task printing or
returning a secret would put it in its result envelope, an S3 object, by choice).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import pytest

from covalent_ecs_executor import ECSExecutor, aws

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
# Every AWS client the executor uses (checked after the run: no other was created).
SERVICES = ("s3", "ecs", "sts", "logs", "ecr")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(executor: ECSExecutor, fn: Any) -> tuple[Any, str]:
    dispatch_id = f"secrets-{uuid.uuid4().hex[:8]}"
    run = executor.run(fn, [], {}, {"dispatch_id": dispatch_id, "node_id": 0, "results_dir": "/tmp"})
    # A run takes about a second in the sandbox: a ceiling for a broken one, not a pace.
    value = asyncio.run(asyncio.wait_for(run, 120))
    return value, f"{dispatch_id}/0"


class SentRequests:
    """What the executor's own boto3 clients put on the wire (botocore's before-send)."""

    def __init__(self, clients: aws.Clients) -> None:
        self.clients = clients
        self.requests: list[tuple[str, str, bytes]] = []

    def _record(self, request: Any, **_: Any) -> None:
        body = request.body
        # Streamed bodies (the payload upload) are not read here: the object itself is
        # checked in the bucket.
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else b""
        self.requests.append((request.url, json.dumps(dict(request.headers), default=str), data))

    def __enter__(self) -> SentRequests:
        for service in SERVICES:
            getattr(self.clients, service).meta.events.register("before-send", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        for service in SERVICES:
            getattr(self.clients, service).meta.events.unregister("before-send", self._record)

    def containing(self, needle: str) -> list[str]:
        return [url for url, headers, body in self.requests if needle in url or needle in headers or needle.encode() in body]


@pytest.fixture
def versioned_bucket(fresh_sandbox):
    """A staging bucket that keeps every object version: what was written stays readable
    after the executor deletes it."""
    s3 = fresh_sandbox.client("s3", internal=True)
    bucket = f"secrets-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield bucket
    listed = s3.list_object_versions(Bucket=bucket)
    for entry in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
    s3.delete_bucket(Bucket=bucket)


def test_secrets_reach_the_task_and_no_request_or_object(fresh_sandbox, versioned_bucket):
    unique = uuid.uuid4().hex[:10]
    token, auth, user = f"tok-{uuid.uuid4().hex}", f"auth-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex}"
    secretsmanager = fresh_sandbox.client("secretsmanager", internal=True)
    token_arn = secretsmanager.create_secret(Name=f"api-token-{unique}", SecretString=token)["ARN"]
    login_arn = secretsmanager.create_secret(
        Name=f"db-login-{unique}", SecretString=json.dumps({"user": user, "password": "unused"})
    )["ARN"]
    fresh_sandbox.client("ssm", internal=True).put_parameter(
        Name=f"/covalent-tests/{unique}/upstream-auth", Value=auth, Type="SecureString"
    )
    secrets = {
        "API_TOKEN": token_arn,
        "UPSTREAM_AUTH": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/covalent-tests/{unique}/upstream-auth",
        "DB_USER": f"{login_arn}:user::",  # one key of a JSON secret
    }
    executor = ECSExecutor(**{
        **fresh_sandbox.executor_config, "s3_bucket_name": versioned_bucket, "secrets": secrets,
        "ecs_task_family_name": f"secrets-{unique}",
    })
    def uses_secrets():  # defined here: cloudpickle sends it by value
        import hashlib
        import os

        print(f"API_TOKEN has {len(os.environ['API_TOKEN'])} characters")
        return [hashlib.sha256(os.environ[name].encode()).hexdigest() for name in secrets]

    clients = aws.clients_for(executor.config())
    with SentRequests(clients) as sent:
        value, label = run(executor, uses_secrets)
    assert value == [sha256(token), sha256(auth), sha256(user)]
    assert set(clients._clients) <= set(SERVICES)  # every client the run used was watched

    for secret in (token, auth, user):
        assert sent.containing(secret) == []
    run_task = [body for url, _, body in sent.requests if b"RunTask" in body or b'"overrides"' in body]
    assert run_task and all(b"API_TOKEN" not in body and b"secretsmanager" not in body for body in run_task)

    s3 = fresh_sandbox.client("s3", internal=True)
    versions = s3.list_object_versions(Bucket=versioned_bucket).get("Versions", [])
    assert len(versions) >= 2  # the payload and the result were written (then deleted)
    for version in versions:
        body = s3.get_object(Bucket=versioned_bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        for secret in (token, auth, user):
            assert secret.encode() not in body, version["Key"]

    # The definition names the ARNs; the sandbox's task record hides the values.
    (record,) = [r for r in fresh_sandbox.tasks() if r["label"] == label]
    assert {name: record["env"][name] for name in secrets} == dict.fromkeys(secrets, "****")


def test_a_secret_that_does_not_exist_stops_the_task_before_it_runs(fresh_sandbox):
    from covalent._shared_files.exceptions import TaskRuntimeError

    missing = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:no-such-secret-AbCdEf"
    executor = ECSExecutor(**{
        **fresh_sandbox.executor_config, "secrets": {"API_TOKEN": missing},
        "ecs_task_family_name": f"secrets-{uuid.uuid4().hex[:6]}",
    })
    with pytest.raises(TaskRuntimeError) as caught:
        run(executor, abs)
    message = str(caught.value)
    assert "[NetworkSetupError]" in message and "could not read a secret named in `secrets`" in message
    assert missing in message and "the container never ran" in message
