"""Plain HTTP only to loopback: the executor's AWS endpoint, and the sandbox's address.

Over plain HTTP to another host, the tasks' code and data would cross the network
unencrypted; the sandbox runs the pickles sent to it, so it must not be reachable
from elsewhere.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from covalent_ecs_executor import ConfigError, ECSExecutor
from covalent_ecs_executor.config import ExecutorConfig
from covalent_ecs_executor.sandbox import Sandbox, SandboxError
from covalent_ecs_executor.sandbox.foreground import serve

# Importing the CLI in a fresh interpreter: a few seconds; a ceiling.
SUBPROCESS_TIMEOUT_S = 120


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:5000", "http://127.8.9.10", "http://[::1]:4566", "http://localhost:4566",
     "https://s3.us-east-1.amazonaws.com", "https://10.0.0.1"],
)  # fmt: skip
def test_https_anywhere_and_plain_http_to_loopback_are_accepted(url):
    assert ExecutorConfig(endpoint_url=url).endpoint_url == url


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1", "http://0.0.0.0:4566", "http://example.com", "http://[fe80::1]"]
)
def test_plain_http_elsewhere_is_a_config_error_naming_the_value(url):
    with pytest.raises(ConfigError) as err:
        ECSExecutor(endpoint_url=url)
    assert f"endpoint_url={url!r}" in str(err.value) and "loopback" in str(err.value)


@pytest.mark.integration
def test_a_plain_http_aws_endpoint_url_is_refused_before_any_aws_call(sandbox, monkeypatch):
    # endpoint_url '' leaves the endpoint to boto3, which reads AWS_ENDPOINT_URL: the
    # endpoint it resolves is checked when the client is made, before its first call
    # (a call would fail to connect: AWSSetupError "<endpoint> is unreachable").
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.1:4566")
    executor = ECSExecutor(**{**sandbox.executor_config, "endpoint_url": "", "max_attempts": 1})

    async def run() -> object:
        return await executor.run(abs, [-1], {}, {"dispatch_id": "loopback", "node_id": 0,
                                                  "results_dir": "/tmp"})  # fmt: skip

    with pytest.raises(TaskRuntimeError) as err:
        asyncio.run(run())
    assert isinstance(err.value.__cause__, ConfigError)
    assert "'http://10.0.0.1:4566'" in str(err.value) and "loopback" in str(err.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_the_sandbox_refuses_to_listen_beyond_loopback(host):
    with pytest.raises(SandboxError) as err:
        Sandbox(host=host)
    assert repr(host) in str(err.value) and "loopback" in str(err.value)


def test_serving_refuses_a_public_address_before_touching_signal_handlers():
    # `covalent-ecs sandbox` offers no host option (it binds 127.0.0.1); a program
    # calling serve() with another host gets the refusal, its handlers left as they were.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(SandboxError, match="only listens on a loopback address"):
        serve(host="0.0.0.0")
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_the_sandbox_command_has_no_way_to_listen_elsewhere():
    done = subprocess.run(
        [sys.executable, "-m", "covalent_ecs_executor.sandbox", "--help"],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--host" not in done.stdout and "127.0.0.1" in done.stdout
