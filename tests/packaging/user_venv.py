"""A virtual environment holding what ``pip install -r requirements.txt`` would, offline.

``user_venv(target, wheel, requirements)`` creates a venv (no pip) whose
site-packages holds this distribution unpacked from its built wheel, and every other
distribution of the requirements' dependency closure (extras and markers evaluated)
linked from the environment running the tests, where they are already installed.
Nothing else is visible: not the editable install of this source tree, not the dev
tools (pytest-asyncio, ruff, ...). Creating one takes well under a second: the
packages are symbolic links, not copies.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

THIS_DISTRIBUTION = "covalent-ecs-executor"


def dependency_closure(requirements: Iterable[str]) -> dict[str, importlib.metadata.Distribution]:
    """Each distribution the requirements install, by canonical name, with their extras."""
    found: dict[str, importlib.metadata.Distribution] = {}
    extras_of: dict[str, set[str]] = {}
    todo = [Requirement(line) for line in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = extras_of.setdefault(name, set())
        if name in found and set(requirement.extras) <= extras:
            continue
        extras |= set(requirement.extras)
        found[name] = dist = importlib.metadata.distribution(requirement.name)
        for line in dist.requires or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append(dependency)
    return found


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The names a distribution put directly in site-packages (packages, modules,
    its .dist-info, .pth files); scripts (outside site-packages) are left out."""
    return {
        file.parts[0]
        for file in dist.files or []
        if file.parts[0] not in ("..", "__pycache__")
    }


def user_venv(target: Path, wheel: Path, requirements: Iterable[str]) -> Path:
    """Create the venv at ``target``; return its Python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=60
    )
    python = target / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    site_packages = Path(purelib)
    closure = dependency_closure(requirements)
    assert THIS_DISTRIBUTION in closure, f"the requirements do not install {THIS_DISTRIBUTION}"
    for name, dist in closure.items():
        if name == THIS_DISTRIBUTION:
            continue
        root = Path(str(dist.locate_file("")))
        for entry in _top_level_entries(dist):
            link = site_packages / entry
            if not link.exists() and (root / entry).exists():
                link.symlink_to(root / entry)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)
    return python
