"""A new user's first hour with `covalent-ecs`, run as a user runs it.

Every command is a subprocess of the installed entry point (the `covalent-ecs` next to
this Python), so what is checked is what a terminal shows: the exit code, no traceback,
no HTML, and the message's key phrases, including text in square brackets (which Rich
would swallow as markup if it were not escaped). The stack tests use a sandbox of
their own, so the default stack and repository names are free.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("covalent-ecs"))
# Ceiling for one command: starting the CLI imports covalent (a few seconds on a busy
# machine) and a stack in the sandbox completes in well under a second.
COMMAND_CEILING_S = 120.0
# Ceiling for a command whose endpoint refuses connections: three attempts (aws.py
# INTERACTIVE_MAX_ATTEMPTS) with at most 1 + 2 s of backoff, plus start-up. botocore's
# default ten attempts back off for about a minute, so this also catches a regression.
UNREACHABLE_CEILING_S = 30.0
POLL = ("--poll-interval", "0.2")


def covalent_ecs(*args: str, timeout_s: float = COMMAND_CEILING_S) -> subprocess.CompletedProcess[str]:
    """Run `covalent-ecs ARGS`; whatever happens, no traceback and no HTML reach the user."""
    result = subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, stream
        assert "<html" not in stream.lower() and "<!doctype" not in stream.lower(), stream
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def connection(config: dict[str, Any], **overrides: str) -> list[str]:
    values = {key: config[key] for key in ("credentials", "profile", "region", "endpoint_url")}
    values.update(overrides)
    return [arg for key, value in values.items() for arg in (f"--{key.replace('_', '-')}", value)]


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from covalent_ecs_executor.sandbox import SandboxProcess

    with SandboxProcess(state_dir=str(tmp_path_factory.mktemp("sandbox"))) as client:
        yield client


# ------------------------------------------------------------------ small things
def test_version_and_help_show_what_a_user_types():
    assert covalent_ecs("--version").stdout.strip() == f"covalent-ecs {version('covalent-ecs-executor')}"
    deploy_help = covalent_ecs("infra", "deploy", "--help").stdout
    assert "NAME=VALUE" in deploy_help and "<list[str]>" not in deploy_help
    for args in (["--help"], ["infra", "destroy", "--help"]):  # --version, --yes, --help
        assert "<bool>" not in covalent_ecs(*args).stdout


def test_a_template_written_into_a_missing_folder_is_one_line_naming_path_and_reason(tmp_path):
    line = error_line(covalent_ecs("infra", "template", "-o", "/nonexistent/dir/t.yaml"))
    assert "/nonexistent/dir/t.yaml: No such file or directory" in line
    assert "there is no folder /nonexistent/dir" in line

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    line = error_line(covalent_ecs("infra", "template", "-o", str(a_file / "t.yaml")))
    assert f"{a_file / 't.yaml'}: Not a directory" in line


def test_a_write_conf_that_cannot_be_written_is_refused_before_deploying(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = covalent_ecs(
        "infra", "deploy", "--write-conf", str(a_file / "covalent.conf"),
        "--region", "us-east-1", "--endpoint-url", f"http://127.0.0.1:{_closed_port()}",
    )
    assert f"cannot write {a_file / 'covalent.conf'}" in error_line(result)
    assert "looking up stack" not in result.stdout  # nothing was sent


def test_publish_image_rejects_an_empty_tag_and_a_bad_repository_before_the_network():
    line = error_line(covalent_ecs("publish-image", "--tag", ""))
    assert "--tag '' is not a valid tag" in line
    result = covalent_ecs("publish-image", "--repository", "Bad Repo")
    assert "--repository 'Bad Repo' is not a valid repository name" in error_line(result)
    assert "publishing" not in result.stderr


def test_bad_input_names_the_key_and_what_is_valid():
    result = covalent_ecs("infra", "deploy", "--region", "us-eats-1")
    assert result.returncode == 1
    assert "region='us-eats-1' is not an AWS region botocore knows; did you mean 'us-east-1'?" in result.stderr
    result = covalent_ecs("infra", "deploy", "-p", "RepositoryNme=x")
    assert result.returncode == 1
    assert "unknown parameter 'RepositoryNme'; did you mean 'RepositoryName'?" in result.stderr


# ------------------------------------------------------------ reaching (or not) AWS
def test_missing_credentials_name_the_section_and_the_flags(own_sandbox):
    # The session's AWS files are empty and its AWS_* variables unset (tests/conftest.py).
    args = connection(own_sandbox.executor_config, credentials="", profile="")
    line = error_line(covalent_ecs("infra", "deploy", *args))
    assert "no AWS credentials found" in line
    assert "Set credentials/profile in [executors.ecs]" in line
    assert "--credentials/--profile" in line


def test_an_unreachable_endpoint_is_named_after_a_progress_line(own_sandbox):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    args = connection(own_sandbox.executor_config, endpoint_url=endpoint)
    result = covalent_ecs("infra", "deploy", *args, timeout_s=UNREACHABLE_CEILING_S)
    assert f"looking up stack covalent-ecs at {endpoint} (us-east-1)" in result.stdout
    assert f"{endpoint}/ is unreachable" in error_line(result)


def test_an_html_error_page_becomes_one_readable_line(own_sandbox, html_endpoint):
    args = connection(own_sandbox.executor_config, endpoint_url=html_endpoint)
    line = error_line(covalent_ecs("infra", "destroy", "--yes", *args))
    assert "the endpoint did not answer like AWS (an HTML page: 500 Internal Server Error)" in line


# ------------------------------------------------------- item 1: infra in the sandbox
def test_a_default_deploy_then_destroy_succeed_and_keep_the_sandbox_runner(own_sandbox):
    config = own_sandbox.executor_config
    deployed = covalent_ecs("infra", "deploy", *POLL, *connection(config))
    assert deployed.returncode == 0, deployed.stderr
    assert "CREATE_COMPLETE" in deployed.stdout
    assert "[executors.ecs] for covalent.conf:" in deployed.stdout
    assert 'ecr_repo_name = "covalent-ecs-runner"' in deployed.stdout

    destroyed = covalent_ecs("infra", "destroy", "--yes", *POLL, *connection(config))
    assert destroyed.returncode == 0, destroyed.stderr
    assert "DELETE_COMPLETE" in destroyed.stdout
    # The runner image the sandbox's own block (and `make demo`) uses is untouched.
    images = own_sandbox.client("ecr", internal=True).describe_images(
        repositoryName=config["ecr_repo_name"],
        imageIds=[{"imageTag": contract.runner_image_tag()}],
    )["imageDetails"]
    assert len(images) == 1


def test_a_failed_creation_is_deleted_with_what_it_had_made(own_sandbox):
    config = own_sandbox.executor_config
    taken = config["ecr_repo_name"]  # the sandbox's own repository: the stack's fails
    failed = covalent_ecs(
        "infra", "deploy", "--stack-name", "taken", "-p", f"RepositoryName={taken}", *POLL,
        *connection(config),
    )
    line = error_line(failed)
    assert "stack taken ended DELETE_COMPLETE: RunnerRepository (AWS::ECR::Repository)" in line
    assert f"RepositoryAlreadyExistsException: The repository with name '{taken}' already exists" in line
    assert "nothing is left to clean up" in line
    assert "CREATE_FAILED        RunnerRepository" in failed.stdout
    # What the stack made before the repository went with it.
    _assert_no_stack_resources(own_sandbox, "taken")

    destroyed = covalent_ecs("infra", "destroy", "--stack-name", "taken", "--yes", *connection(config))
    assert destroyed.returncode == 0 and "nothing to delete" in destroyed.stdout


def test_a_stack_rolled_back_outside_the_cli_is_refused_for_update_and_destroyed(own_sandbox):
    # As the console or `aws cloudformation create-stack` leave it: OnFailure=ROLLBACK.
    from covalent_ecs_executor.setup.infra import CAPABILITIES, template_body

    config = own_sandbox.executor_config
    cloudformation = own_sandbox.client("cloudformation", internal=True)
    cloudformation.create_stack(
        StackName="rolled-back",
        TemplateBody=template_body(),
        Parameters=[{"ParameterKey": "RepositoryName", "ParameterValue": config["ecr_repo_name"]}],
        Capabilities=CAPABILITIES,
    )
    stack = cloudformation.describe_stacks(StackName="rolled-back")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE" and "Outputs" not in stack
    _assert_no_stack_resources(own_sandbox, "rolled-back")

    refused = covalent_ecs("infra", "deploy", "--stack-name", "rolled-back", *connection(config))
    assert (
        "stack rolled-back is ROLLBACK_COMPLETE (its creation failed) and cannot be updated: "
        "run `covalent-ecs infra destroy --stack-name rolled-back` first"
    ) in error_line(refused)

    destroyed = covalent_ecs(
        "infra", "destroy", "--stack-name", "rolled-back", "--yes", *POLL, *connection(config)
    )
    assert destroyed.returncode == 0, destroyed.stderr
    assert "DELETE_COMPLETE" in destroyed.stdout
    live = cloudformation.list_stacks(StackStatusFilter=["ROLLBACK_COMPLETE"])["StackSummaries"]
    assert "rolled-back" not in [summary["StackName"] for summary in live]


# ------------------------------------------------------------------------ helpers
def _assert_no_stack_resources(sandbox: Any, stack: str) -> None:
    groups = sandbox.client("logs", internal=True).describe_log_groups(
        logGroupNamePrefix=f"/covalent-ecs/{stack}/"
    )["logGroups"]
    assert groups == []
    clusters = sandbox.client("ecs", internal=True).describe_clusters(clusters=[stack])["clusters"]
    assert [cluster["status"] for cluster in clusters] in ([], ["INACTIVE"])


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _ErrorPage(BaseHTTPRequestHandler):
    """What a crashed server or a proxy answers: an HTML page, not an AWS response."""

    PAGE = (
        b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
        b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n"
    )

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(500)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def html_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()



def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`covalent-ecs infra template | head -1`: the pipe's reader is gone before the
    template is written; the command ends as Unix tools do, without an error line."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command writes: every write fails with EPIPE
    try:
        done = subprocess.run([CLI, "infra", "template"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=COMMAND_CEILING_S)
    finally:
        os.close(write_end)
    assert done.returncode == 128 + signal.SIGPIPE
    assert done.stderr == ""
