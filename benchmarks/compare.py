"""Is a benchmark reproducible? Compare two runs of bench.py (its JSON reports).

    python benchmarks/compare.py [FIRST.json [SECOND.json]]
    make bench-compare        # the committed results against the run `make bench` just wrote

The rule, for every batch group (plugin, N, kind) both runs measured: a timing
or CPU figure of the second run agrees with the first when its median is within 25% of
the first's median or within the first run's spread (min-max over --repeat runs),
whichever is wider; differences under 10 ms always agree (below what a shared 2-core
machine's scheduler resolves). Per-task request counts must be equal.

The headline figures (those the README and the targets quote: wall time, completion
seen and returned, launch phase, client CPU per task, errors, requests per task) decide
the exit status; every other figure (per-call latencies, RSS, sandbox CPU) is listed
when it disagrees, for tracing, and does not fail the comparison. Two scopes:

- the launch phase is a headline figure where the launch bucket binds (N above the
  pacer's burst of 90); below it, ten launches take 30-110 ms and the figure is the
  client's thread scheduling;
- the cold-start row (100 cold interpreters, 40-50 s of CPU on two cores in 25-30 s)
  measures the machine's saturation on purpose: its wall time is the headline figure
  (the fork server's effect), its latency tails are listed for tracing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"
RELATIVE_TOLERANCE = 0.25
ABSOLUTE_FLOOR_S = 0.010
HEADLINE = (
    "errors",
    "wall time per batch (s)",
    "container exit → executor returns, p50 (s)",
    "container exit → executor returns, p95 (s)",
    "container exit → exit seen by poller, p50 (s)",
    "container exit → exit seen by poller, p95 (s)",
    "launch phase: first → last RunTask accepted (s)",
    "client CPU per task, batch only (ms)",
    "client S3 requests per task",
    "client RunTask calls per task (botocore retries not counted)",
    "runner S3 requests per task",
)
TIMING_SUFFIXES = ("(s)", "(ms)")
# Counts that do not depend on timing (how many poll cycles a batch lasted does).
EXACT = (
    "errors",
    "client RunTask calls per task (botocore retries not counted)",
    "client S3 requests per task",
    "client S3 PUT per task",
    "client S3 GET per task",
    "client S3 HEAD per task",
    "client S3 DELETE per task",
    "runner S3 requests per task",
)
LAUNCH_PHASE = "launch phase: first → last RunTask accepted (s)"
PACER_BURST = 90  # covalent_ecs_executor/launch.py, LAUNCH_BURST
COLD_HEADLINE = ("errors", "wall time per batch (s)")
# Machine facts and run-length artefacts, not results.
SKIPPED = ("load average", "sandbox requests answered")


def agrees(first: dict[str, float], second: dict[str, float], *, floor: float = ABSOLUTE_FLOOR_S) -> bool:
    """The rule for one figure: ``first``/``second`` are {median, min, max}."""
    difference = abs(second["median"] - first["median"])
    if difference <= max(RELATIVE_TOLERANCE * abs(first["median"]), floor):
        return True
    return first["min"] <= second["median"] <= first["max"]


def _judge(name: str, first: dict[str, float], second: dict[str, float]) -> bool:
    if name.endswith("(ms)"):
        return agrees(first, second, floor=ABSOLUTE_FLOOR_S * 1000)
    if name.endswith(TIMING_SUFFIXES):
        return agrees(first, second)
    if name in EXACT:
        return first["median"] == second["median"]
    return agrees(first, second, floor=0.0)  # other counts (poll cycles, peak live tasks)


def _groups(report: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(g["plugin"], g["n"], g["kind"]): g["metrics"] for g in report["summary"]}


def is_headline(key: tuple[str, int, str], name: str) -> bool:
    """Does this figure of this batch group decide the comparison (see the module doc)?"""
    _, n, kind = key
    if kind == "cold":
        return name in COLD_HEADLINE
    if name == LAUNCH_PHASE:
        return n > PACER_BURST
    return name in HEADLINE


def compare(first: dict[str, Any], second: dict[str, Any]) -> tuple[list[list[str]], list[list[str]], int]:
    """(headline figures that disagree, other figures that disagree, figures compared)."""
    headline: list[list[str]] = []
    other: list[list[str]] = []
    compared = 0
    second_groups = _groups(second)
    for key, metrics in _groups(first).items():
        theirs_all = second_groups.get(key)
        if theirs_all is None:
            continue
        plugin, n, kind = key
        label = f"{plugin} N={n}" + (f" {kind}" if kind else "")
        for name, figure in metrics.items():
            theirs = theirs_all.get(name)
            if not isinstance(figure, dict) or not isinstance(theirs, dict) or name.startswith(SKIPPED):
                continue
            if figure.get("median") is None or theirs.get("median") is None:
                continue
            compared += 1
            if _judge(name, figure, theirs):
                continue
            ratio = theirs["median"] / figure["median"] if figure["median"] else float("inf")
            row = [label, name, _spread(figure), _spread(theirs), f"{ratio:.2f}×"]
            (headline if is_headline(key, name) else other).append(row)
    return headline, other, compared


def _spread(figure: dict[str, float]) -> str:
    if figure["min"] == figure["max"]:
        return f"{figure['median']:g}"
    return f"{figure['median']:g} ({figure['min']:g}–{figure['max']:g})"


def _load(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: cannot read the benchmark report {path}: {err}") from None
    if not isinstance(report, dict) or "summary" not in report:
        raise SystemExit(f"error: {path} is not a bench.py report (no 'summary'); run `make bench` first")
    return report


def _committed(path: Path) -> dict[str, Any]:
    """The report as committed at HEAD (what the README quotes)."""
    relative = path.resolve().relative_to(Path(__file__).resolve().parent.parent)
    shown = subprocess.run(["git", "show", f"HEAD:{relative.as_posix()}"], capture_output=True, text=True,
                           cwd=Path(__file__).parent, check=False)
    if shown.returncode != 0:
        raise SystemExit(f"error: cannot read the committed {relative} (git show: "
                         f"{shown.stderr.strip() or shown.returncode}); name two reports instead")
    return json.loads(shown.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", nargs="?", type=Path, help="the earlier run's JSON report (default: "
                        f"{RESULTS} as committed at git HEAD)")
    parser.add_argument("second", nargs="?", type=Path, default=RESULTS,
                        help=f"the later run's JSON report (default: {RESULTS})")
    args = parser.parse_args(argv)
    first = _load(args.first) if args.first else _committed(RESULTS)
    second = _load(args.second)
    headline, other, compared = compare(first, second)
    for run, report in (("first", first), ("second", second)):
        conditions = report.get("conditions", {})
        print(f"{run}: {conditions.get('date_utc', '?')} UTC, load average at start "
              f"{conditions.get('load_avg_at_start', '?')}, at end {conditions.get('load_avg_at_end', '?')}")
    for title, rows in (("Headline figures that disagree", headline), ("Other figures that disagree (for tracing)", other)):
        if rows:
            print(f"\n{title}:\n\n| batch | figure | first | second | second / first |\n|---|---|---|---|---|")
            for row in rows:
                print("| " + " | ".join(row) + " |")
    print(f"\n{compared - len(headline) - len(other)} of {compared} figures agree; headline figures "
          f"that disagree: {len(headline)} (timings: median within {RELATIVE_TOLERANCE:.0%} of the "
          f"first run's, or within its spread, or within {ABSOLUTE_FLOOR_S * 1000:.0f} ms; per-task counts: equal).")
    return 1 if headline else 0


if __name__ == "__main__":
    sys.exit(main())
