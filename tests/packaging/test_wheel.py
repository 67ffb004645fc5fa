"""The built wheel (not the editable install) carries every package and data file.

An editable install imports straight from the source tree, so a subpackage missing
from pyproject's package list, or a template missing from its package data, would pass
every other test and break ``pip install covalent-ecs-executor``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = {
    "executor": "covalent_ecs_executor",
    "runtime_image": "covalent_ecs_runtime",
    "pytest_plugin": "covalent_ecs_pytest",
}


def _source_packages() -> set[str]:
    packages = set()
    for folder, name in SOURCE_ROOTS.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            packages.add(".".join((name, *relative)))
    return packages


def test_the_wheel_holds_every_subpackage_the_template_and_the_entry_points(built_wheel) -> None:
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    in_wheel = {
        name.rsplit("/", 1)[0].replace("/", ".")
        for name in names
        if name.endswith("/__init__.py")
    }
    assert in_wheel == _source_packages()
    assert "covalent_ecs_executor/setup/templates/covalent-ecs.yaml" in names
    assert "covalent_ecs_executor/py.typed" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ecs = covalent_ecs_executor.ecs" in text
    assert "covalent-ecs = covalent_ecs_executor.cli:main" in text
    assert "[pytest11]\ncovalent_ecs = covalent_ecs_pytest.plugin" in text
