"""Deploy the `covalent-ecs infra` stack into a sandbox and run `covalent-ecs doctor` on it.

Shared by tests/integration/test_infra.py, test_doctor.py and tests/e2e; importable
because pytest puts tests/ (tests/conftest.py's folder) on sys.path.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import toml
from typer.testing import CliRunner

from covalent_ecs_executor.cli import app
from covalent_ecs_runtime import contract

CONNECTION_KEYS = ("credentials", "profile", "region", "endpoint_url")


def connection_args(sandbox: Any) -> list[str]:
    config = sandbox.executor_config
    return [arg for key in CONNECTION_KEYS for arg in (f"--{key.replace('_', '-')}", config[key])]


def invoke(*args: str, input: str | None = None) -> Any:
    """Run `covalent-ecs ARGS` in-process (the real typer app); return the click Result."""
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


def unique_stack_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def deploy(sandbox: Any, tmp_path: Path, stack: str | None = None, *params: str) -> dict[str, Any]:
    """`covalent-ecs infra deploy --write-conf`; returns {stack, conf, config, output}."""
    stack = stack or unique_stack_name()
    conf = tmp_path / f"{stack}.conf"
    parameters = [arg for p in (f"RepositoryName={stack}-runner", *params) for arg in ("-p", p)]
    result = invoke(
        "infra", "deploy", "--stack-name", stack, *parameters, "--write-conf", str(conf),
        *connection_args(sandbox),
    )
    assert result.exit_code == 0, result.output
    config = toml.load(conf)["executors"]["ecs"]
    return {"stack": stack, "conf": conf, "config": config, "output": result.output}


def push_runner_image(sandbox: Any, repository: str, tag: str | None = None) -> None:
    """What `covalent-ecs publish-image` leaves in ECR, as the sandbox's seed does it:
    moto's ECR has no registry, so an image is only a manifest under a tag."""
    from covalent_ecs_executor.sandbox.seed import manifest_digest, runner_image_manifest

    manifest = runner_image_manifest()
    sandbox.client("ecr", internal=True).put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageTag=tag or contract.runner_image_tag(),
        imageDigest=manifest_digest(manifest),
    )


def write_conf(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(toml.dumps({"executors": {"ecs": config}}))
    return path


def doctor(conf: Path) -> tuple[int, dict[str, Any], str]:
    """`covalent-ecs doctor --json` then the same without --json: (exit code, report, lines)."""
    as_json = invoke("doctor", "--conf", str(conf), "--json")
    lines = invoke("doctor", "--conf", str(conf))
    assert as_json.exit_code == lines.exit_code
    return as_json.exit_code, json.loads(as_json.stdout), lines.output


def statuses(report: dict[str, Any]) -> dict[str, str]:
    """check name -> status; a check that failed for several reasons is 'fail'."""
    found: dict[str, str] = {}
    for check in report["checks"]:
        if found.get(check["name"]) != "fail":
            found[check["name"]] = check["status"]
    return found
