"""The benchmark harness still runs end to end (at N=2, this executor only), so
``make bench`` cannot rot between releases. Figures are printed by the benchmark,
never asserted here: only that every column is produced and the run was clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def test_benchmark_harness_runs_two_tasks_and_writes_its_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--n", "2", "--quick", "--no-cold", "--no-original",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "latest-quick.json").read_text())
    (row,) = report["batches"]
    assert row["plugin"] == "ours" and row["n"] == 2 and row["errors"] == 0
    assert row["calls_per_task"]["client"]["RunTask"] == 1
    assert row["calls_per_task"]["runner"]["S3 GET"] == 1
    assert row["exit_to_return_s"]["count"] == 2
    assert row["runner_start_to_function_s"]["count"] == 2
    markdown = (tmp_path / "latest-quick.md").read_text()
    assert "## N = 2 concurrent tasks" in markdown
    assert "| client RunTask per task | 1 |" in markdown
    assert markdown in result.stdout
