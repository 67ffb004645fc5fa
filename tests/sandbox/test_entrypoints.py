"""The sandbox's other ways in: in-process ``Sandbox``, ``covalent-ecs sandbox`` (with
and without AWS's rate limits), and ``SandboxProcess``'s start-up failure report."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from waiting import wait_for

from covalent_ecs_executor.sandbox import Sandbox, SandboxError, SandboxProcess

pytestmark = pytest.mark.integration


def test_in_process_sandbox_is_exclusive_and_kills_its_tasks_on_stop() -> None:
    with Sandbox(provision_delay_s=0, deprovision_delay_s=0) as sandbox:
        with pytest.raises(SandboxError, match="already running"):
            Sandbox().start()
        config = sandbox.executor_config
        ecs = sandbox.client("ecs")
        definition = ecs.register_task_definition(
            family="in-process",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "main",
                    "image": "python:3.11-slim",
                    "entryPoint": ["python", "-c"],
                    "command": ["import time; time.sleep(60)"],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.run_task(
            cluster=config["ecs_cluster_name"],
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [config["ecs_task_subnet_id"]],
                    "securityGroups": [config["ecs_task_security_group_id"]],
                }
            },
        )
        pid = wait_for(lambda: sandbox.tasks()[0]["pid"], what="the task's process")
        assert sandbox.calls() == {"ecs.RegisterTaskDefinition": 1, "ecs.RunTask": 1}
        state_dir = sandbox.state_dir
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(state_dir)


def test_sandbox_command_prints_the_conf_block_writes_it_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "covalent.conf"
    conf.write_text('[sdk]\nlog_level = "warning"\n')
    out = tmp_path / "out.txt"
    command = [sys.executable, "-c", "from covalent_ecs_executor.cli import main; main()"]
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [*command, "sandbox", "--write-conf", str(conf)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        # A ceiling, not a pace: the sandbox takes 2-5 s to start, 20 s on a loaded machine.
        wait_for(
            lambda: "Ctrl-C stops it." in out.read_text(), timeout_s=90, what="the sandbox banner"
        )
        text = out.read_text()
        endpoint = re.search(r"export AWS_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", text)[1]
        assert "[executors.ecs]" in text
        assert f'endpoint_url = "{endpoint}"' in text
        written = conf.read_text()
        assert 'log_level = "warning"' in written  # the rest of the conf is kept
        assert f'endpoint_url = "{endpoint}"' in written
        credentials = re.search(r'credentials = "([^"]+)"', written)[1]
        assert Path(credentials).parent == tmp_path / "covalent-ecs-sandbox"  # outlives the run
        with urllib.request.urlopen(f"{endpoint}/_sandbox/health", timeout=5) as response:
            assert b'"ok"' in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert "stopping the sandbox" in out.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sandbox_process_failure_names_the_cause_from_its_stderr() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SandboxError, match=r"(?s)exited with code.*Address already in use"):
            SandboxProcess(port=port, startup_timeout_s=30).start()


def test_the_sandbox_command_enforces_aws_limits_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    command = [sys.executable, "-c", "from covalent_ecs_executor.cli import main; main()"]
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [*command, "sandbox", "--aws-limits", "--state-dir", str(tmp_path / "state")],
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Ctrl-C stops it." in out.read_text(), timeout_s=120)
        text = out.read_text()
        assert "AWS API rate limits are on" in text
        endpoint = re.search(r"export AWS_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", text)[1]
        with urllib.request.urlopen(f"{endpoint}/_sandbox/limits", timeout=5) as response:
            limits = json.loads(response.read())
        assert limits["enabled"] is True
        assert limits["buckets"]["FargateLaunches"] == {"burst": 100, "refill_per_s": 20, "available": 100}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
