"""Fargate's cost model: a dated price table and the estimate for one task.

Fargate bills a task's vCPU and memory (and ephemeral storage above the free 20 GB)
per second, from the start of its image pull until it stops, with a one-minute minimum
(https://aws.amazon.com/fargate/pricing/). No price API is reachable from every
client, so prices come from a table: ``prices.json`` shipped in this package (dated,
with its source), or the user's own file in the same format (``price_table`` in
``[executors.ecs]``). Every figure here is an estimate, and says so.

Pure apart from reading the table file; units are in the names (``_s``, ``_gb``, ``_hour``).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

SHIPPED_TABLE = "prices.json"
TABLE_FORMAT = 1
# Used when the task's region is not in the table (the estimate then says so).
FALLBACK_REGION = "us-east-1"
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
ARCHITECTURES = ("X86_64", "ARM64")
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Rates:
    vcpu_hour: float
    gb_hour: float
    storage_gb_hour: float


@dataclass(frozen=True)
class PriceTable:
    currency: str
    taken: str
    source: str
    notes: str
    free_storage_gb: float
    minimum_billed_s: float
    # region -> {"FARGATE": {"X86_64": {...}}, ..., "ephemeral_storage_gb_hour": x}
    regions: dict[str, dict[str, Any]]

    def rates(self, region: str, capacity_provider: str, architecture: str) -> tuple[Rates | None, str, str]:
        """(rates or None, the region priced, a note: why no rates / which region's)."""
        note = ""
        priced = region
        if region not in self.regions:
            priced = FALLBACK_REGION if FALLBACK_REGION in self.regions else ""
            if not priced:
                return None, region, f"no prices for {region or 'this region'} in the price table"
            note = f"{priced} prices ({region or 'the region'} is not in the price table)"
        prices = self.regions[priced]
        rates = (prices.get(capacity_provider) or {}).get(architecture)
        if rates is None:
            return None, priced, f"no {capacity_provider} {architecture} price in the price table"
        return (
            Rates(
                vcpu_hour=float(rates["vcpu_hour"]),
                gb_hour=float(rates["gb_hour"]),
                storage_gb_hour=float(prices.get("ephemeral_storage_gb_hour", 0.0)),
            ),
            priced,
            note,
        )

    def describe(self) -> str:
        return f"prices of {self.taken} ({self.source})"


@dataclass(frozen=True)
class CostEstimate:
    """An estimated cost; ``usd`` is None when the table has no price for the task."""

    usd: float | None
    billed_s: float
    region: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "billed_s": self.billed_s, "region": self.region, "note": self.note}


def parse_price_table(document: Any, *, source: str = SHIPPED_TABLE) -> PriceTable:
    """A PriceTable from the JSON document; ValueError naming what is wrong."""
    if not isinstance(document, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(document).__name__}")
    if document.get("format") != TABLE_FORMAT:
        raise ValueError(f"{source}: 'format' must be {TABLE_FORMAT}")
    regions = document.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise ValueError(f"{source}: 'regions' must map region names to prices")
    for region, prices in regions.items():
        if not isinstance(prices, dict):
            raise ValueError(f"{source}: regions.{region} must be an object")
        for provider, by_arch in prices.items():
            if provider == "ephemeral_storage_gb_hour":
                _check_price(by_arch, f"{source}: regions.{region}.{provider}")
                continue
            if provider not in CAPACITY_PROVIDERS or not isinstance(by_arch, dict):
                raise ValueError(
                    f"{source}: regions.{region}.{provider}: expected one of "
                    f"{', '.join(CAPACITY_PROVIDERS)} or ephemeral_storage_gb_hour"
                )
            for arch, rates in by_arch.items():
                where = f"{source}: regions.{region}.{provider}.{arch}"
                if arch not in ARCHITECTURES or not isinstance(rates, dict):
                    raise ValueError(f"{where}: expected one of {', '.join(ARCHITECTURES)}")
                for key in ("vcpu_hour", "gb_hour"):
                    _check_price(rates.get(key), f"{where}.{key}")
    for key in ("taken", "source"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise ValueError(f"{source}: '{key}' must say when and where the prices were taken")
    return PriceTable(
        currency=str(document.get("currency", "USD")),
        taken=document["taken"],
        source=document["source"],
        notes=str(document.get("notes", "")),
        free_storage_gb=float(document.get("free_ephemeral_storage_gb", 20)),
        minimum_billed_s=float(document.get("minimum_billed_s", 60)),
        regions=regions,
    )


def _check_price(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{where}: expected a price (a number >= 0), got {value!r}")


@functools.lru_cache(maxsize=8)
def load_price_table(path: str = "") -> PriceTable:
    """The shipped table (``path`` '') or the JSON file at ``path``; ValueError if unusable."""
    if not path:
        text = resources.files(__package__).joinpath(SHIPPED_TABLE).read_text()
        return parse_price_table(json.loads(text))
    full = os.path.expanduser(path)
    try:
        with open(full) as f:
            document = json.load(f)
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from err
    except ValueError as err:
        raise ValueError(f"{path} is not JSON: {err}") from err
    return parse_price_table(document, source=path)


def billed_seconds(
    pull_started_s: float | None, stopped_s: float | None, *, minimum_s: float = 60.0
) -> float:
    """Seconds Fargate bills: from the image pull's start to the stop, rounded up to a
    second, at least ``minimum_s``; 0 when the pull never started (nothing is billed)."""
    if pull_started_s is None or stopped_s is None:
        return 0.0
    return max(minimum_s, float(math.ceil(max(0.0, stopped_s - pull_started_s))))


def estimate(
    table: PriceTable,
    *,
    region: str,
    capacity_provider: str,
    architecture: str,
    vcpu: float,
    memory_gb: float,
    storage_gb: float,
    billed_s: float,
) -> CostEstimate:
    """What ``billed_s`` seconds of a task of this size cost at the table's prices."""
    rates, priced, note = table.rates(region, capacity_provider, architecture)
    if rates is None:
        return CostEstimate(usd=None, billed_s=billed_s, region=priced, note=note)
    extra_storage_gb = max(0.0, storage_gb - table.free_storage_gb)
    per_hour = (
        vcpu * rates.vcpu_hour + memory_gb * rates.gb_hour + extra_storage_gb * rates.storage_gb_hour
    )
    return CostEstimate(
        usd=per_hour * billed_s / SECONDS_PER_HOUR, billed_s=billed_s, region=priced, note=note
    )


def format_usd(usd: float | None) -> str:
    """``≈ $0.0004`` (more decimals for tinier sums); ``≈ $?`` when the price is unknown."""
    if usd is None:
        return "≈ $?"
    if usd == 0:
        return "$0"  # nothing billed: the image pull never started
    if usd >= 1:
        return f"≈ ${usd:,.2f}"
    return f"≈ ${usd:.4f}" if usd >= 0.0001 else f"≈ ${usd:.6f}"
