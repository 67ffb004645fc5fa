"""The repository refers to nothing a user's clone lacks: facts live in docs/facts.md,
not in notes kept outside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
# Built from parts so this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "NOTES" + r"\.md", "/" + "work/"]))
# What a checkout holds besides the project's own files (when git cannot list them).
_NOT_OURS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}


def project_files() -> list[Path]:
    """Every file git tracks, or every file outside venvs and caches without git."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name]
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and not _NOT_OURS.intersection(path.relative_to(ROOT).parts)
        and not any(part.startswith(".venv") or part.endswith(".egg-info") for part in path.parts)
    ]


def test_the_file_list_is_the_project():
    names = {path.relative_to(ROOT).as_posix() for path in project_files()}
    assert {"README.md", "docs/facts.md", "pyproject.toml", "executor/ecs.py"} <= names


def test_no_file_refers_to_notes_outside_the_repository():
    offenders = []
    for path in project_files():
        if not path.is_file():  # deleted in the work tree but still tracked
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
