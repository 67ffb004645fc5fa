"""Timelines from ECS, runner and client marks; the summary line; the record (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from covalent_ecs_executor import pricing, records, timeline

T0 = 1_700_000_000.0
ARN = "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef"
SIZE = timeline.TaskSize(vcpu=0.25, memory_gb=0.5, capacity_provider="FARGATE", architecture="X86_64")
PRICES = pricing.load_price_table()


def at(offset_s: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset_s, tz=timezone.utc)


def completed_attempt() -> timeline.AttemptSeen:
    seen = timeline.AttemptSeen(number=1, task_arn=ARN, status=timeline.STATUS_COMPLETED)
    seen.described = {
        "taskArn": ARN, "lastStatus": "DEACTIVATING", "cpu": "256", "memory": "512",
        "capacityProviderName": "FARGATE_SPOT",
        "createdAt": at(0), "pullStartedAt": at(2.1), "pullStoppedAt": at(10.0),
        "startedAt": at(10.4), "executionStoppedAt": at(72.0),
    }
    seen.runner_timings = {
        "process_started": T0 + 10.6, "runner_started": T0 + 10.7, "payload_fetched": T0 + 10.8,
        "function_started": T0 + 11.0, "function_ended": T0 + 72.0 - 0.5, "result_written": T0 + 71.55,
    }
    seen.exit_seen = T0 + 72.1
    seen.result_downloaded = T0 + 71.8
    return seen


def test_phases_come_from_ecs_runner_and_client_marks():
    built = timeline.build_timeline(completed_attempt(), size=SIZE, region="us-east-1", prices=PRICES)
    phases = built["phases_s"]
    assert phases["queued"] == pytest.approx(2.1)
    assert phases["pull"] == pytest.approx(7.9)
    assert phases["start"] == pytest.approx(1.0)  # pull end -> function start
    assert phases["function"] == pytest.approx(60.5)
    assert phases["result"] == pytest.approx(0.3)
    assert phases["deprovision"] is None  # not STOPPED yet when the result was in
    assert built["runner_start"]["container_s"] == pytest.approx(0.4)
    assert built["runner_start"]["unpickle_s"] == pytest.approx(0.2)
    # Billed from pull start to the last known sign of life (not yet STOPPED): 70 s.
    assert built["stop_estimated"] is True
    assert built["cost"]["billed_s"] == 70
    spot_per_hour = 0.25 * 0.01334053 + 0.5 * 0.00146489
    assert built["cost"]["usd"] == pytest.approx(spot_per_hour * 70 / 3600)


def test_the_summary_line_has_the_issues_shape():
    built = timeline.build_timeline(completed_attempt(), size=SIZE, region="us-east-1", prices=PRICES)
    assert timeline.summary_line(built) == (
        "[covalent-ecs] queued 2.1 s · pull 7.9 s · start 1.0 s · function 60.5 s · result 0.3 s"
        f" · 0.25 vCPU / 0.5 GB FARGATE_SPOT X86_64 · ≈ $0.000079 · task {ARN}"
    )


def test_a_task_that_never_started_costs_nothing_and_says_why():
    seen = timeline.AttemptSeen(number=1, task_arn=ARN, error="CapacityError")
    seen.described = {"createdAt": at(0), "stoppedAt": at(5), "executionStoppedAt": at(4),
                      "stopCode": "TaskFailedToStart", "lastStatus": "STOPPED"}
    built = timeline.build_timeline(seen, size=SIZE, region="us-east-1", prices=PRICES)
    assert built["phases_s"]["queued"] == pytest.approx(4)
    assert built["phases_s"]["pull"] is None and built["phases_s"]["function"] is None
    assert built["cost"]["usd"] == 0
    line = timeline.summary_line(built, attempts=2)
    assert line.startswith("[covalent-ecs] attempt 1 of 2: failed (CapacityError) · queued 4.0 s · 0.25 vCPU")


def test_a_container_killed_without_a_result_counts_its_run_as_the_function():
    seen = timeline.AttemptSeen(number=1, task_arn=ARN, error="OutOfMemoryError")
    seen.described = {"createdAt": at(0), "pullStartedAt": at(1), "pullStoppedAt": at(2),
                      "startedAt": at(2.5), "executionStoppedAt": at(30), "stoppedAt": at(31)}
    phases = timeline.build_timeline(seen, size=SIZE, region="us-east-1", prices=PRICES)["phases_s"]
    assert phases["start"] == pytest.approx(0.5)
    assert phases["function"] == pytest.approx(27.5)
    assert phases["deprovision"] == pytest.approx(1)


def test_timestamps_are_read_from_datetimes_iso_text_and_numbers():
    assert timeline.epoch_s(at(1)) == T0 + 1
    assert timeline.epoch_s(at(1).isoformat()) == T0 + 1
    assert timeline.epoch_s(T0) == T0
    assert timeline.epoch_s(None) is None and timeline.epoch_s("garbage") is None


def test_a_record_totals_its_attempts_and_keeps_no_output():
    first = timeline.build_timeline(completed_attempt(), size=SIZE, region="us-east-1", prices=PRICES)
    record = records.build_record(
        dispatch_id="d", node_id=3, cluster="c", region="us-east-1", log_group="g",
        prices={"taken": PRICES.taken, "source": PRICES.source}, attempts=[first, first],
    )
    assert record["cost_usd"] == pytest.approx(2 * first["cost"]["usd"])
    assert record["status"] == "completed"
    assert records.record_key("d", 3, "tok") == "covalent-ecs/d/records/3-tok.json"
    assert "stdout" not in str(record) and "value" not in record


def test_a_task_given_up_while_pulling_is_billed_until_the_attempt_ended():
    # start_timeout: the guard stopped it while PENDING; ECS's stop is not known yet.
    seen = timeline.AttemptSeen(number=1, task_arn=ARN, error="StartTimeoutError")
    seen.described = {"createdAt": at(0), "pullStartedAt": at(1), "lastStatus": "PENDING"}
    seen.ended = T0 + 91.5
    built = timeline.build_timeline(seen, size=SIZE, region="us-east-1", prices=PRICES)
    assert built["phases_s"]["queued"] == pytest.approx(1)
    assert built["stop_estimated"] and built["cost"]["billed_s"] == 91
