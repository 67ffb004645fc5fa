"""Where tasks' time and money go, through a real Covalent server and the sandbox:
the summary line on each node, ``covalent-ecs report`` (table, JSON, chart), and
``ps`` / ``logs --follow`` / ``stop`` on a task that is still running."""

from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import covalent as ct
import pytest
from typer.testing import CliRunner
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.cli import app

pytestmark = pytest.mark.e2e

# Only to prove nothing hangs: each dispatch here takes a few seconds.
DISPATCH_BOUND_S = 120


def conf_args() -> list[str]:
    return ["--conf", str(Path(os.environ["COVALENT_CONFIG_DIR"]) / "covalent.conf")]


def cli(*args: str):
    result = CliRunner().invoke(app, [*args, *conf_args()])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def last_line(text: str) -> str:
    return [line for line in (text or "").splitlines() if line.strip()][-1]


@ct.electron(executor="ecs")
def quick(x):
    return x * 2


@ct.electron(executor="ecs")
def fails_after_the_others(doubled, tripled):
    # Takes the others' results: it runs (and fails the dispatch) only once they are done.
    raise ValueError(f"bad input {doubled + tripled}")


@pytest.fixture
def one_relaunch(fresh_sandbox):
    # The next task launched fails to start for a passing cause: it is relaunched.
    fresh_sandbox.clear_faults()
    fresh_sandbox.add_fault(
        "start_failure", reason="Timeout waiting for network interface provisioning to complete."
    )
    yield fresh_sandbox
    fresh_sandbox.clear_faults()


def test_summary_lines_report_json_and_chart_of_a_mixed_dispatch(result_of, one_relaunch, tmp_path):
    # Built here: an executor object reads covalent.conf (the sandbox's block) when made.
    @ct.electron(executor=ECSExecutor(capacity_provider="FARGATE_SPOT"))
    def quick_on_spot(x):
        return x * 3

    @ct.lattice
    def mixed(x):
        doubled, tripled = quick(x), quick_on_spot(x)
        return fails_after_the_others(doubled, tripled)

    dispatch_id = ct.dispatch(mixed)(5)
    result = result_of(dispatch_id, timeout_s=DISPATCH_BOUND_S)
    assert str(result.status) == "FAILED"

    # Every node's stderr ends with its summary line(s); the relaunched node has one per attempt.
    graph = result.lattice.transport_graph
    names = {graph.get_node_value(n, "name"): n for n in graph._graph.nodes}
    stderr = {name: result.get_node_result(names[name])["stderr"] or "" for name in
              ("quick", "quick_on_spot", "fails_after_the_others")}
    for name, text in stderr.items():
        assert last_line(text).startswith("[covalent-ecs] "), (name, text)
        assert "vCPU / 0.5 GB" in last_line(text) and "≈ $" in last_line(text)
    assert "FARGATE_SPOT X86_64" in last_line(stderr["quick_on_spot"])
    assert last_line(stderr["fails_after_the_others"]).startswith(
        ("[covalent-ecs] failed (ValueError) · queued", "[covalent-ecs] attempt 2 of 2: failed (ValueError)")
    )
    relaunched = [name for name, text in stderr.items() if "attempt 1 of 2: failed" in text]
    assert len(relaunched) == 1, stderr
    assert "[covalent-ecs] attempt 2 of 2: " in last_line(stderr[relaunched[0]])

    # The report: one row per node and attempt; costs add up; Spot is cheaper.
    chart = tmp_path / "timeline.html"
    table = cli("report", dispatch_id, "--chart", str(chart))
    assert table.exit_code == 0, table.output
    print(f"\n{table.stdout}")
    assert f"Dispatch {dispatch_id}" in table.stdout and "Total: 4 tasks (2 failed, 1 relaunches)" in table.stdout

    document = json.loads(cli("report", dispatch_id, "--json").stdout)
    rows = [row for row in document["rows"] if row["node_id"] in names.values()]
    assert len(rows) == 4
    assert document["totals"]["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in document["rows"]))
    # The relaunched attempt's container never ran; the other three ran the code.
    ran = [row for row in rows if row["function_s"] is not None]
    assert len(ran) == 3 and all(row["start_s"] is not None for row in ran)
    # Every task here lasts well under Fargate's one-minute minimum: the same billed time,
    # so the price per row is the rate: every Spot row is cheaper than every on-demand one.
    assert {row["billed_s"] for row in ran} == {60}
    spot = [row["cost_usd"] for row in ran if row["capacity_provider"] == "FARGATE_SPOT"]
    on_demand = [row["cost_usd"] for row in ran if row["capacity_provider"] == "FARGATE"]
    assert spot and on_demand and max(spot) < min(on_demand)

    # The chart: a self-contained HTML page whose figure has one bar per task and phase.
    page = chart.read_text()
    scripts = ScriptCollector()
    scripts.feed(page)
    assert scripts.sources == [] and max(map(len, scripts.bodies)) > 1_000_000  # plotly.js inside
    traces = {trace["name"]: trace for trace in plotted_traces(page)}
    labels = {f"node {row['node_id']} · try {row['attempt']}" for row in rows}
    for phase in ("queued", "pull", "start", "function", "result"):
        assert traces[phase]["type"] == "bar" and labels <= set(traces[phase]["y"])
    function_bars = dict(zip(traces["function"]["y"], traces["function"]["x"], strict=True))
    assert all(function_bars[f"node {row['node_id']} · try {row['attempt']}"] is not None for row in ran)
    marks = traces["failed / relaunched"]["text"]
    assert "✗ ValueError" in marks and "↻ relaunch" in marks


def plotted_traces(page: str) -> list[dict]:
    """The traces passed to Plotly.newPlot in the page's scripts (parsed as HTML, then JSON)."""
    scripts = ScriptCollector()
    scripts.feed(page)
    body = next(s for s in scripts.bodies if "Plotly.newPlot(" in s)
    start = body.index("[", body.index("Plotly.newPlot("))
    traces, _ = json.JSONDecoder().raw_decode(body[start:])
    return traces


class ScriptCollector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []
        self.sources: list[str] = []  # scripts loaded from elsewhere
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        if self._in_script:
            self.bodies.append("")
            self.sources += [value for name, value in attrs if name == "src"]

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.bodies[-1] += data


@ct.electron(executor="ecs")
def long_running():
    import time

    print("working on it", flush=True)
    time.sleep(600)  # stopped by the test long before


@ct.lattice
def long_flow():
    return long_running()


def test_ps_lists_a_running_task_logs_follow_streams_it_and_stop_ends_it(result_of, fresh_sandbox):
    dispatch_id = ct.dispatch(long_flow)()
    follow = None
    try:
        def running():
            return [t for t in fresh_sandbox.tasks()
                    if (t.get("label") or "").startswith(f"{dispatch_id}/") and t["lastStatus"] == "RUNNING"]

        (task,) = wait_for(running, timeout_s=DISPATCH_BOUND_S, what="the task to be RUNNING")

        # logs --follow prints what the task writes while it runs (its own process: streaming).
        follow = subprocess.Popen(
            [str(Path(sys.executable).with_name("covalent-ecs")), "logs", dispatch_id, "0", "--follow",
             *conf_args()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(follow.stdout), daemon=True)
        reader.start()
        wait_for(lambda: any("working on it" in line for line in lines), timeout_s=60,
                 what="logs --follow to print the task's line")
        assert follow.poll() is None  # still following: the task still runs

        listed = json.loads(cli("ps", "--dispatch", dispatch_id, "--json").stdout)
        assert [(row["node_id"], row["status"], row["task_arn"]) for row in listed] == [
            ("0", "RUNNING", task["taskArn"])]
        assert listed[0]["cost_so_far_usd"] > 0

        stopped = cli("stop", "--dispatch", dispatch_id, "--yes")
        assert stopped.exit_code == 0, stopped.output
        assert f"stopped {task['taskArn']}" in stopped.stdout

        record = wait_for(
            lambda: next((t for t in fresh_sandbox.tasks()
                          if t["taskArn"] == task["taskArn"] and t["lastStatus"] == "STOPPED"), None),
            timeout_s=60, what="the task to stop",
        )
        assert record["stopCode"] == "UserInitiated"
        assert record["stoppedReason"].startswith(f"Stopped with covalent-ecs stop (dispatch {dispatch_id}) by ")
        assert follow.wait(timeout=60) == 0  # --follow returns once the task stopped
        assert cli("ps", "--dispatch", dispatch_id).stdout.startswith("no live tasks")
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
        ct.cancel(dispatch_id)  # no task may outlive the test
    result = result_of(dispatch_id, timeout_s=DISPATCH_BOUND_S)
    assert str(result.status) in ("FAILED", "CANCELLED")

