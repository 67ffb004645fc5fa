"""examples/user-project as a user runs it, with the commands of docs/testing.md's CI
workflow: its tests pass through the installed plugin, in a venv holding only what its
requirements.txt installs (this distribution from its built wheel, not this source
tree), from a copy of the folder, with a temporary HOME and TMPDIR. Afterwards no
process of the run is left, and HOME holds only what importing covalent writes there
(the example's modules import it, as users' modules do), nothing from the fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from docs_text import DOCS, section
from processes import processes_mentioning
from user_venv import user_venv

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user-project"
# The example's session takes about half a minute (README of the example); this is a
# ceiling for a loaded 2-core machine.
SESSION_CEILING_S = 300


def ci_steps() -> dict[str, str]:
    """The ``run`` command of each named step of docs/testing.md's workflow file."""
    text = section(DOCS / "testing.md", "Testing your workflows in CI")
    (workflow,) = [block.removeprefix("yaml\n") for block in text.split("```")[1::2] if block.startswith("yaml\n")]
    steps = yaml.safe_load(workflow)["jobs"]["test"]["steps"]
    return {step["name"]: step["run"] for step in steps if "run" in step}


def plain_env(python: Path, home: Path, tmp: Path) -> dict[str, str]:
    """A login-like environment: none of this test session's Covalent or AWS variables."""
    return {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8"}


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its file's text (folders: ""), ``root`` spelt $HOME."""
    return {
        str(path.relative_to(root)): path.read_text().replace(str(root), "$HOME") if path.is_file() else ""
        for path in sorted(root.rglob("*"))
    }


def test_the_example_project_passes_as_its_ci_workflow_runs_it(built_wheel, tmp_path):
    steps = ci_steps()
    assert steps["Install"] == "pip install -r requirements.txt"
    project = tmp_path / "user-project"
    shutil.copytree(EXAMPLE, project)
    requirements = (project / "requirements.txt").read_text().split()
    python = user_venv(tmp_path / "venv", built_wheel, requirements)  # the Install step, offline
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = plain_env(python, home, tmp)
    located = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('covalent_ecs_executor').origin)"],
        capture_output=True, text=True, check=True, timeout=60, env=env, cwd=project,
    ).stdout  # fmt: skip
    assert located.startswith(str(tmp_path / "venv")), f"not the installed wheel: {located}"

    started = time.monotonic()
    run = subprocess.run(
        steps["Run the workflow tests"], shell=True, cwd=project, env=env,
        capture_output=True, text=True, timeout=SESSION_CEILING_S,
    )  # fmt: skip
    elapsed_s = time.monotonic() - started
    print(f"\nexample user-project session: {elapsed_s:.1f} s")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "2 passed" in run.stdout

    assert processes_mentioning(str(tmp)) == []
    assert os.listdir(tmp) == []  # the fixtures' session folder is gone
    baseline_home = tmp_path / "baseline-home"
    baseline_home.mkdir()
    subprocess.run(
        [str(python), "-c", "import covalent"], check=True, timeout=60,
        env=plain_env(python, baseline_home, tmp), cwd=project,
    )  # fmt: skip
    assert not (home / ".aws").exists()
    assert tree(home) == tree(baseline_home)
