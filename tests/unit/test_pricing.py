"""The price table and the cost model, checked against tasks priced by hand."""

from __future__ import annotations

import json

import pytest

from covalent_ecs_executor import pricing
from covalent_ecs_executor.config import build_config
from covalent_ecs_executor.errors import ConfigError

SHIPPED = pricing.load_price_table()


def cost(**task) -> pricing.CostEstimate:
    defaults = {"region": "us-east-1", "capacity_provider": "FARGATE", "architecture": "X86_64",
                "storage_gb": 20.0}
    return pricing.estimate(SHIPPED, **{**defaults, **task})


def test_the_shipped_table_is_dated_and_names_its_source():
    assert SHIPPED.taken and SHIPPED.source.startswith("https://aws.amazon.com/fargate/pricing")
    assert "us-east-1" in SHIPPED.regions
    assert SHIPPED.minimum_billed_s == 60 and SHIPPED.free_storage_gb == 20


def test_one_vcpu_two_gb_for_91_seconds_matches_the_hand_computed_price():
    # (1 vCPU x $0.04048 + 2 GB x $0.004445) per hour = $0.04937/h; 91 s of it:
    # 0.04937 * 91 / 3600 = $0.00124796...
    estimate = cost(vcpu=1, memory_gb=2, billed_s=91)
    assert estimate.usd == pytest.approx(0.0012479639, rel=1e-6)
    assert estimate.region == "us-east-1" and estimate.note == ""


def test_spot_and_arm_are_priced_per_their_rows():
    # 0.25 vCPU / 0.5 GB for the one-minute minimum, by hand:
    on_demand = 0.25 * 0.04048 + 0.5 * 0.004445  # $/h
    spot = 0.25 * 0.01334053 + 0.5 * 0.00146489
    arm = 0.25 * 0.03238 + 0.5 * 0.00356
    assert cost(vcpu=0.25, memory_gb=0.5, billed_s=60).usd == pytest.approx(on_demand / 60)
    assert cost(vcpu=0.25, memory_gb=0.5, billed_s=60, capacity_provider="FARGATE_SPOT").usd == pytest.approx(spot / 60)
    assert cost(vcpu=0.25, memory_gb=0.5, billed_s=60, architecture="ARM64").usd == pytest.approx(arm / 60)
    assert spot < arm < on_demand


def test_only_ephemeral_storage_above_the_free_20_gb_is_billed():
    # 4 vCPU, 8 GB, 50 GiB of storage for an hour: 30 GiB are billed at $0.000111/h.
    estimate = cost(vcpu=4, memory_gb=8, storage_gb=50, billed_s=3600)
    assert estimate.usd == pytest.approx(4 * 0.04048 + 8 * 0.004445 + 30 * 0.000111)


@pytest.mark.parametrize(
    ("pull_started", "stopped", "billed"),
    [(100.0, 110.0, 60.0), (100.0, 190.2, 91.0), (100.0, 160.0, 60.0), (None, 150.0, 0.0)],
)
def test_billing_runs_from_pull_start_to_stop_rounded_up_with_a_one_minute_minimum(
    pull_started, stopped, billed
):
    assert pricing.billed_seconds(pull_started, stopped) == billed


def test_a_region_missing_from_the_table_uses_us_east_1_and_says_so():
    estimate = cost(region="eu-west-3", vcpu=1, memory_gb=2, billed_s=60)
    assert estimate.usd == pytest.approx(cost(vcpu=1, memory_gb=2, billed_s=60).usd)
    assert estimate.note == "us-east-1 prices (eu-west-3 is not in the price table)"


def test_a_combination_without_a_price_gives_no_number():
    estimate = cost(architecture="ARM64", capacity_provider="FARGATE_SPOT", vcpu=1, memory_gb=2, billed_s=60)
    assert estimate.usd is None
    assert "no FARGATE_SPOT ARM64 price" in estimate.note
    assert pricing.format_usd(None) == "≈ $?"
    assert pricing.format_usd(0) == "$0" and pricing.format_usd(0.0004) == "≈ $0.0004"


def test_price_table_key_takes_the_users_file(tmp_path):
    document = json.loads(json.dumps({
        "format": 1, "taken": "2026-04", "source": "our negotiated rates", "regions": {
            "eu-west-3": {"FARGATE": {"X86_64": {"vcpu_hour": 0.1, "gb_hour": 0.01}}}}}))
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    config = build_config({"price_table": str(path)}, {})
    table = pricing.load_price_table(config.price_table)
    estimate = pricing.estimate(table, region="eu-west-3", capacity_provider="FARGATE",
                                architecture="X86_64", vcpu=1, memory_gb=1, storage_gb=20,
                                billed_s=3600)
    assert estimate.usd == pytest.approx(0.11)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"format": 1, "taken": "x", "source": "y", "regions": {"us-east-1": {"FARGATE": '
         '{"X86_64": {"vcpu_hour": "cheap", "gb_hour": 0.1}}}}}', "vcpu_hour: expected a price"),
        ('{"format": 1, "taken": "x", "source": "y", "regions": {"us-east-1": {"LAMBDA": {}}}}',
         "expected one of FARGATE, FARGATE_SPOT"),
        ('{"format": 1, "source": "y", "regions": {"us-east-1": {}}}', "'taken' must say"),
    ],
)
def test_a_bad_price_table_is_rejected_naming_the_key(tmp_path, content, message):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="price_table") as info:
        build_config({"price_table": str(path)}, {})
    assert message in str(info.value)


def test_a_missing_price_table_file_is_named():
    with pytest.raises(ConfigError, match=r"price_table='/nonexistent/prices.json': cannot read"):
        build_config({"price_table": "/nonexistent/prices.json"}, {})
