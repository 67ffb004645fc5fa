"""The sandbox's other ways in: in-process ``Sandbox``, its one command line
(``covalent-ecs sandbox`` = ``python -m covalent_ecs_executor.sandbox``, with and
without AWS's rate limits), and ``SandboxProcess``'s start-up failure report."""

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
import typer
from sandbox_tasks import run_one_container
from waiting import wait_for

from covalent_ecs_executor import cli
from covalent_ecs_executor.sandbox import Sandbox, SandboxError, SandboxProcess

pytestmark = pytest.mark.integration

# Both ways a user starts the sandbox, as subprocesses (the console script's code path).
COVALENT_ECS = [sys.executable, "-c", "from covalent_ecs_executor.cli import main; main()"]
SANDBOX_COMMANDS = {
    "covalent-ecs sandbox": [*COVALENT_ECS, "sandbox"],
    "python -m covalent_ecs_executor.sandbox": [sys.executable, "-m", "covalent_ecs_executor.sandbox"],
}
# Help and errors as a user's terminal would get them, at a fixed width.
PLAIN_ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def test_in_process_sandbox_is_exclusive_and_kills_its_tasks_on_stop() -> None:
    with Sandbox(provision_delay_s=0, deprovision_delay_s=0) as sandbox:
        with pytest.raises(SandboxError, match="already running"):
            Sandbox().start()
        run_one_container(
            sandbox,
            image="python:3.11-slim",
            entry_point=["python", "-c"],
            command=["import time; time.sleep(60)"],
            ecs=sandbox.client("ecs"),  # counted
        )
        # The agent takes a new task up on its next tick, after RunTask has answered.
        pid = wait_for(
            lambda: next((r["pid"] for r in sandbox.tasks() if r["pid"]), None), what="the task's process"
        )
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
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [*COVALENT_ECS, "sandbox", "--write-conf", str(conf)],
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
        # No --state-dir: a temporary folder (as its help says), removed on exit.
        state_dir = Path(re.search(r"state in (\S+)\)", text)[1])
        assert Path(credentials).parent == state_dir and Path(credentials).is_file()
        assert tmp_path not in state_dir.parents
        with urllib.request.urlopen(f"{endpoint}/_sandbox/health", timeout=5) as response:
            assert b'"ok"' in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert "stopping the sandbox" in out.read_text()
        assert not state_dir.exists()
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


def test_both_sandbox_commands_parse_the_same_options() -> None:
    grouped = typer.main.get_command(cli.app).commands["sandbox"]  # type: ignore[attr-defined]
    alone = typer.main.get_command(cli.sandbox_app)
    spec = {
        (tuple(p.opts), getattr(p, "is_flag", False), p.multiple, p.default) for p in grouped.params
    }
    assert spec == {
        (tuple(p.opts), getattr(p, "is_flag", False), p.multiple, p.default) for p in alone.params
    }
    options = {opt for opts, *_ in spec for opt in opts}
    # What SandboxProcess and the README rely on.
    assert {"--port", "--state-dir", "--ready-file", "--write-conf", "--provision-delay",
            "--deprovision-delay", "--aws-limits", "--starter"} <= options  # fmt: skip


def test_both_sandbox_commands_show_the_same_help_without_type_labels_on_flags() -> None:
    helps = {}
    for name, command in SANDBOX_COMMANDS.items():
        result = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, timeout=60, env=PLAIN_ENV
        )
        assert result.returncode == 0, result.stderr
        helps[name] = result.stdout
    listed = {name: re.findall(r"(?m)^\W*(--[a-z-]+)", text) for name, text in helps.items()}
    assert listed["covalent-ecs sandbox"] == listed["python -m covalent_ecs_executor.sandbox"]
    assert "--starter" in listed["covalent-ecs sandbox"]
    for text in helps.values():
        flag_rows = [line for line in text.splitlines() if re.search(r"--(aws-limits|help)\b", line)]
        assert len(flag_rows) == 2
        assert not any("<bool>" in row for row in flag_rows), flag_rows


@pytest.mark.parametrize("name", sorted(SANDBOX_COMMANDS))
def test_an_unwritable_write_conf_is_one_line_naming_the_path_and_the_reason(name: str) -> None:
    path = "/proc/nope/covalent.conf"
    result = subprocess.run(
        [*SANDBOX_COMMANDS[name], "--write-conf", path],
        capture_output=True, text=True, timeout=60, env=PLAIN_ENV,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert path in output
    assert "No such file or directory" in output or "Permission denied" in output


def test_the_sandbox_command_enforces_aws_limits_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [*COVALENT_ECS, "sandbox", "--aws-limits", "--state-dir", str(tmp_path / "state")],
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
