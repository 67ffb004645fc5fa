"""benchmarks/compare.py: the reproducibility rule, on two hand-made reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"


def _report(wall: dict, seen_p95: dict, s3_per_task: float, latency: dict) -> dict:
    return {
        "conditions": {"date_utc": "2026-12-01 00:00:00", "load_avg_at_start": [0.5, 0.5, 0.5]},
        "summary": [{
            "plugin": "ours", "n": 1000, "kind": "", "runs": 3,
            "metrics": {
                "wall time per batch (s)": wall,
                "container exit → exit seen by poller, p95 (s)": seen_p95,
                "client S3 requests per task": {"median": s3_per_task, "min": s3_per_task, "max": s3_per_task},
                "RunTask latency at the client, p50 (s)": latency,
                "load average (1 min) before / after the batch": "0.5 / 0.6",
            },
        }],
    }


def _spread(median: float, low: float | None = None, high: float | None = None) -> dict:
    return {"median": median, "min": median if low is None else low, "max": median if high is None else high}


def _compare(tmp_path: Path, first: dict, second: dict) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, report in (("first.json", first), ("second.json", second)):
        (tmp_path / name).write_text(json.dumps(report))
        paths.append(str(tmp_path / name))
    return subprocess.run([sys.executable, str(COMPARE), *paths], capture_output=True, text=True, timeout=60)


def test_medians_within_a_quarter_or_the_first_runs_spread_agree(tmp_path):
    first = _report(_spread(50.0), _spread(0.8, 0.5, 1.6), 4, _spread(0.07))
    # wall +24%; p95 1.5 s is +88% but inside the first run's 0.5-1.6 s spread
    second = _report(_spread(62.0), _spread(1.5), 4, _spread(0.075))
    done = _compare(tmp_path, first, second)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 of 4 figures agree" in done.stdout


def test_a_headline_median_outside_both_bounds_fails_and_is_named(tmp_path):
    first = _report(_spread(50.0, 49.0, 52.0), _spread(0.8), 4, _spread(0.07))
    second = _report(_spread(63.0), _spread(0.8), 4, _spread(0.07))
    done = _compare(tmp_path, first, second)
    assert done.returncode == 1
    assert "| ours N=1000 | wall time per batch (s) | 50 (49–52) | 63 | 1.26× |" in done.stdout


def test_a_changed_request_count_fails_while_other_figures_only_inform(tmp_path):
    first = _report(_spread(50.0), _spread(0.8), 4, _spread(0.07))
    second = _report(_spread(50.0), _spread(0.8), 3, _spread(0.5))
    done = _compare(tmp_path, first, second)
    assert done.returncode == 1
    headline, other = done.stdout.split("Other figures")
    assert "client S3 requests per task" in headline and "RunTask latency" in other


def test_a_file_that_is_not_a_report_is_named_without_a_traceback(tmp_path):
    (tmp_path / "x.json").write_text("<html>")
    done = subprocess.run([sys.executable, str(COMPARE), str(tmp_path / "x.json"), str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "x.json" in done.stderr and "Traceback" not in done.stderr


def test_scopes_the_launch_phase_to_paced_batches_and_the_cold_row_to_its_wall_time():
    sys.path.insert(0, str(COMPARE.parent))
    try:
        from compare import is_headline
    finally:
        sys.path.remove(str(COMPARE.parent))
    launch, returns = "launch phase: first → last RunTask accepted (s)", "container exit → executor returns, p95 (s)"
    assert is_headline(("ours", 1000, ""), launch) and is_headline(("ours", 100, ""), launch)
    assert not is_headline(("ours", 10, ""), launch)  # ten launches inside the burst: not paced
    assert is_headline(("ours", 10, ""), returns)
    assert is_headline(("ours", 100, "cold"), "wall time per batch (s)")
    assert not is_headline(("ours", 100, "cold"), returns)  # a saturated machine's tail, for tracing
