"""Report rows, totals and chart from records (pure), and the commands' input checks,
which must answer before any AWS call."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from covalent_ecs_executor import pricing, records, report, tasklist, timeline
from covalent_ecs_executor.cli import app

PRICES = pricing.load_price_table()
SIZE = timeline.TaskSize(vcpu=1, memory_gb=2, capacity_provider="FARGATE", architecture="X86_64")


def attempt(number: int, *, start_s: float, run_s: float, status: str = "completed", **described):
    def at(offset):
        return datetime.fromtimestamp(1_700_000_000 + start_s + offset, tz=timezone.utc)

    seen = timeline.AttemptSeen(number=number, task_arn=f"arn:aws:ecs:us-east-1:1:task/c/{number}{start_s}",
                                status=status)
    seen.described = {"createdAt": at(0), "pullStartedAt": at(1), "pullStoppedAt": at(3),
                      "startedAt": at(3.5), "executionStoppedAt": at(4 + run_s), "stoppedAt": at(5 + run_s),
                      **described}
    return timeline.build_timeline(seen, size=SIZE, region="us-east-1", prices=PRICES)


def record(node_id, *attempts):
    return records.build_record(dispatch_id="d", node_id=node_id, cluster="c", region="us-east-1",
                                log_group="g", prices={"taken": PRICES.taken, "source": PRICES.source},
                                attempts=list(attempts))


RECORDS = [
    record(0, attempt(1, start_s=0, run_s=100)),
    record(1, attempt(1, start_s=0, run_s=10, status="failed", stopCode="TaskFailedToStart"),
           attempt(2, start_s=20, run_s=10)),
]


def test_totals_add_up_the_rows():
    rows = report.rows_of(RECORDS)
    totals = report.totals_of(rows)
    assert [(r["node_id"], r["attempt"]) for r in rows] == [(0, 1), (1, 1), (1, 2)]
    # Billed from pull start to stop: 104 s, then the one-minute minimum twice (14 s each).
    assert [r["billed_s"] for r in rows] == [104, 60, 60]
    assert totals["task_seconds"] == 224
    assert totals["cost_usd"] == pytest.approx((1 * 0.04048 + 2 * 0.004445) * 224 / 3600)
    assert totals["queued_s"] == pytest.approx(3) and totals["pull_s"] == pytest.approx(6)
    assert (totals["failed"], totals["relaunches"]) == (1, 1)


def test_the_table_has_a_row_per_attempt_and_says_it_is_an_estimate():
    text = report.format_table("d", RECORDS)
    lines = text.splitlines()
    assert lines[1].split()[:4] == ["node", "try", "status", "queued"]
    assert lines[3].split()[:3] == ["1", "1/2", "failed"]
    assert "Total: 3 tasks (1 failed, 1 relaunches), 224 billed task-seconds" in text
    assert "Estimates:" in text and PRICES.taken in text


def test_the_chart_names_the_extra_to_install_when_plotly_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # `import plotly...` now raises ImportError
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(report.ReportError, match=r"pip install 'covalent-ecs-executor\[report\]'"):
        report.chart_html("d", RECORDS)
    result = CliRunner().invoke(app, ["report", "d", "--chart", "x.html", "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "pip install 'covalent-ecs-executor[report]'" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "a/b"], "dispatch id 'a/b' is not a Covalent dispatch id"),
        (["stop"], "exactly one of --dispatch ID, --all, or task ARNs"),
        (["stop", "--all", "--dispatch", "d"], "(got --dispatch and --all)"),
        (["logs", "d", "0", "--attempt", "0"], "Invalid value for '--attempt'"),
        (["ps", "--conf", "/nonexistent/covalent.conf"], "--conf /nonexistent/covalent.conf: no such file"),
        (["ps", "--region", "mars"], "region='mars'"),
    ],
)
def test_bad_input_is_named_before_any_aws_call(args, message):
    # The endpoint is a closed port: reaching AWS would fail with another message.
    result = CliRunner().invoke(app, [*args, "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output


def test_only_tasks_this_plugin_started_are_recognised():
    assert tasklist.parse_started_by("covalent/5f0c/3") == ("5f0c", "3")
    assert tasklist.parse_started_by("ecs-svc/123") is None
    assert tasklist.cluster_of("arn:aws:ecs:us-east-1:1:task/prod/abc", "x") == "prod"
    assert tasklist.cluster_of("arn:aws:ecs:us-east-1:1:task/abc", "x") == "x"
