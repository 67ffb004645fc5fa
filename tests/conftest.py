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
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

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
