"""The wheel built from this source tree, once per session (tests/packaging)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Building the wheel of a pure-Python project is a few seconds; this is a ceiling.
BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, timeout=BUILD_TIMEOUT_S, cwd=out,
    )  # fmt: skip
    (wheel,) = out.glob("covalent_ecs_executor-*.whl")
    return wheel
