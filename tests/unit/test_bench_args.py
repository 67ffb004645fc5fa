"""benchmarks/bench.py refuses bad options with argparse's one-line error, before it
starts anything (no sandbox, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--n", "abc"], "argument --n: expected comma-separated whole numbers such as 10,100, got 'abc'"),
        (["--n", "0,10"], "argument --n: every N must be at least 1, got '0,10'"),
        (["--repeat", "-1"], "argument --repeat: must be at least 1, got -1"),
        (["--faults-n", "x"], "argument --faults-n: expected a whole number, got 'x'"),
        (["--real-runner-max-n", "-2"], "argument --real-runner-max-n: must be at least 0, got -2"),
        (["--sleep", "-1"], "argument --sleep: must be at least 0, got '-1'"),
        (["--sleep", "nan"], "argument --sleep: must be at least 0, got 'nan'"),
        (["--idle", "soon"], "argument --idle: expected a number, got 'soon'"),
        (["--payload-gib", "0"], "argument --payload-gib: must be above 0, got '0'"),
    ],
)
def test_a_bad_option_is_named_in_one_line(option: list[str], said: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH), *option], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"benchmarks/bench.py: error: {said}"
    assert "Traceback" not in done.stderr and done.stdout == ""
