"""Test-session isolation and the shared sandbox.

At import time (before anything imports covalent or boto3 reads its config):
Covalent's config/data/cache and AWS's config/credentials files point at a temporary
directory, so a test run never writes to $HOME nor reads a developer's ~/.aws.

Fixtures:
  sandbox        (session) a SandboxProcess's SandboxClient: the local AWS API and
                 Fargate agent over HTTP, shared by tests and any Covalent server.
  fresh_sandbox  (function) the same sandbox with its API call counts reset.
  limited_sandbox (session) another SandboxProcess, throttling like an AWS account
                 (aws_limits=True), for the tests of AWS's rate limits.

After every test that used one of these sandboxes, each task still live in it is
stopped and waited for (``_no_task_outlives_its_test``): a task left running would
otherwise show up in the next test's call counts and task records.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from waiting import wait_for

if TYPE_CHECKING:
    from covalent_ecs_executor.sandbox import SandboxClient

_SESSION_DIR = tempfile.mkdtemp(prefix="covalent-ecs-tests-")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)

for _name, _sub in (
    ("COVALENT_CONFIG_DIR", "covalent/config"),
    ("COVALENT_DATA_DIR", "covalent/data"),
    ("COVALENT_CACHE_DIR", "covalent/cache"),
    ("COVALENT_LOGDIR", "covalent/logs"),
    ("XDG_CACHE_HOME", "covalent/xdg-cache"),
):
    os.environ[_name] = os.path.join(_SESSION_DIR, _sub)
    os.makedirs(os.environ[_name], exist_ok=True)
# The e2e Covalent server runs without Dask: electrons and post-processing default to
# "local". Read when covalent is imported (covalent_server.ISOLATION_LAYOUT).
os.environ["COVALENT_DISABLE_DASK"] = "1"
os.environ["COVALENT_DATABASE"] = os.path.join(
    _SESSION_DIR, "covalent", "data", "dispatcher.sqlite"
)

# Empty AWS files and no ambient AWS identity: tests only ever talk to the sandbox.
for _name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    _path = os.path.join(_SESSION_DIR, "aws", _name.lower())
    os.makedirs(os.path.dirname(_path), exist_ok=True)
    open(_path, "w").close()
    os.environ[_name] = _path
for _name in (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
):
    os.environ.pop(_name, None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxClient]:
    from covalent_ecs_executor.sandbox import SandboxProcess

    with SandboxProcess(state_dir=os.path.join(_SESSION_DIR, "sandbox")) as client:
        yield client


@pytest.fixture(scope="session")
def limited_sandbox() -> Iterator[SandboxClient]:
    from covalent_ecs_executor.sandbox import SandboxProcess

    with SandboxProcess(aws_limits=True) as client:
        yield client


@pytest.fixture
def fresh_sandbox(sandbox: SandboxClient) -> SandboxClient:
    sandbox.reset_calls()
    return sandbox


# StopTask's bound in the sandbox's agent: SIGTERM, SIGKILL after its stop timeout
# (2 s), at most 2 s for the output pipe to drain, then deprovisioning (0.3 s). Six
# times that, for a busy 2-core machine; it only matters when something is broken.
TASK_STOP_CEILING_S = 30.0
_SHARED_SANDBOXES = ("sandbox", "limited_sandbox")


def live_task_arns(sandbox: SandboxClient) -> set[str]:
    """Tasks not yet STOPPED: the agent's records, and every task ECS still wants
    running (ListTasks also sees a task the agent has not picked up yet)."""
    live = {r["taskArn"] for r in sandbox.tasks() if r["lastStatus"] != "STOPPED"}
    ecs = sandbox.client("ecs", internal=True)
    for cluster in ecs.list_clusters()["clusterArns"]:
        listed = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
        live.update(listed)
    return live


def stop_tasks(sandbox: SandboxClient, arns: set[str], reason: str) -> None:
    """StopTask each task and wait (bounded) until the agent reports it STOPPED."""
    ecs = sandbox.client("ecs", internal=True)
    for arn in arns:
        cluster = arn.split(":task/", 1)[1].rsplit("/", 1)[0]  # .../task/<cluster>/<id>
        ecs.stop_task(cluster=cluster, task=arn, reason=reason)

    def all_stopped() -> bool:
        status = {r["taskArn"]: r["lastStatus"] for r in sandbox.tasks()}
        return all(status.get(arn) == "STOPPED" for arn in arns)

    wait_for(all_stopped, timeout_s=TASK_STOP_CEILING_S, what=f"{len(arns)} task(s) to stop")


@pytest.fixture(autouse=True)
def _no_task_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop and wait for every task the test left live in a shared sandbox. Tests run
    one at a time and this runs after each one that used a sandbox, so whatever is live
    then was started by the test that just ended."""
    yield
    for name in _SHARED_SANDBOXES:
        if name not in request.fixturenames:
            continue
        shared: Any = request.getfixturevalue(name)
        left = live_task_arns(shared)
        if left:
            stop_tasks(shared, left, reason=f"the test {request.node.name} ended")
