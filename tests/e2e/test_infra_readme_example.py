"""The README's "Your first workflow" block, run as written against a Covalent server
whose [executors.ecs] is the sandbox's. The block's last line prints the result and
its trailing comment says what it prints: both are checked, so the README cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"
# Two electrons take seconds; this bounds a broken run (the interpreter start included).
EXAMPLE_CEILING_S = 240
MARKER = "<!-- tested: tests/e2e/test_infra_readme_example.py runs this block as written -->"


def readme_example() -> tuple[str, str]:
    """(code, expected output) of the block after MARKER; fails if its shape changed."""
    text = README.read_text()
    assert text.count(MARKER) == 1, "the README's tested example lost its marker"
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)\n```", after, flags=re.S)
    assert match, "the line after the marker must open a ```python block"
    code = match.group(1)
    last = code.strip().splitlines()[-1]
    expected = re.fullmatch(r"print\(.*\)\s+# (.+)", last)
    assert expected, f"the block must end with print(...)  # <its output>, not {last!r}"
    return code, expected.group(1)


def test_the_readme_first_workflow_runs_and_prints_what_it_says(covalent_server, fresh_sandbox):
    code, expected = readme_example()
    # Run as a user runs it: a script in its own process (its functions live in
    # __main__, so cloudpickle ships them by value). The block waits for its result
    # with ct.get_result(wait=True), which has no ceiling: the process timeout is one.
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_CEILING_S,
        env=os.environ.copy(),  # this session's covalent.conf, pointing at the sandbox
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == expected
    assert fresh_sandbox.calls()["ecs.RunTask"] == 2  # both electrons ran as ECS tasks
