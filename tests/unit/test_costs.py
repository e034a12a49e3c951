"""Cost arithmetic against hand-computed cases (a small table of our own, so each figure
below is worked out by hand), and the shipped price table's coverage and provenance."""

from __future__ import annotations

import pytest

from batchwright.costs import (
    DEFAULT_REGION,
    FARGATE_SPOT_SAVING,
    SPOT_SAVING,
    Footprint,
    estimate,
    parse_prices,
    price_table,
)
from batchwright.environment.instances import catalog

TABLE = parse_prices(
    """# date: 2026-01-15
# source: hand-made for these tests
region,item,usd_per_hour
us-east-1,m5.large,0.096
us-east-1,p3.8xlarge,12.24
us-east-1,fargate-vcpu-x86_64,0.04048
us-east-1,fargate-gb-x86_64,0.004445
eu-west-1,m5.large,0.107
"""
)


def test_the_table_parses_with_its_date_and_notes() -> None:
    assert TABLE.date == "2026-01-15"
    assert TABLE.price("us-east-1", "m5.large") == 0.096
    assert TABLE.regions() == ["eu-west-1", "us-east-1"]
    assert "source: hand-made for these tests" in TABLE.notes


def test_ec2_on_demand_charges_the_larger_of_the_vcpu_and_memory_shares() -> None:
    # m5.large: 2 vCPU, 8192 MiB. 1 vCPU = 50 %, 6144 MiB = 75 %: memory decides.
    cost = estimate(Footprint(1, 6144, 0, "EC2", "us-east-1", "m5.large"), TABLE)
    assert cost is not None
    assert cost.usd_per_hour == pytest.approx(0.75 * 0.096)  # $0.072/h
    assert cost.cost(1800) == pytest.approx(0.036)  # half an hour
    assert not cost.spot
    assert cost.label == "$0.0720/h"
    assert "75% (memory) of m5.large" in cost.basis


def test_a_vcpu_bound_task_pays_its_vcpu_share() -> None:
    # 2 vCPU of 2 = 100 %, 1024 MiB = 12.5 %: the whole instance.
    cost = estimate(Footprint(2, 1024, 0, "EC2", "us-east-1", "m5.large"), TABLE)
    assert cost is not None and cost.usd_per_hour == pytest.approx(0.096)
    assert "100% (vCPU)" in cost.basis


def test_a_gpu_task_pays_its_gpu_share() -> None:
    # p3.8xlarge: 32 vCPU, 249856 MiB, 4 GPUs. 1 GPU = 25 % beats 4 vCPU (12.5 %).
    cost = estimate(Footprint(4, 16384, 1, "EC2", "us-east-1", "p3.8xlarge"), TABLE)
    assert cost is not None
    assert cost.usd_per_hour == pytest.approx(12.24 / 4)  # $3.06/h
    assert "(GPU)" in cost.basis


def test_spot_is_an_estimate_and_labelled_one() -> None:
    cost = estimate(Footprint(1, 4096, 0, "SPOT", "us-east-1", "m5.large"), TABLE)
    assert cost is not None and cost.spot
    # 50 % of $0.096, less the assumed saving.
    assert cost.usd_per_hour == pytest.approx(0.048 * (1 - SPOT_SAVING))
    assert cost.label.startswith("~$") and cost.label.endswith("Spot est.")
    assert "assumed" in cost.basis


def test_fargate_pays_per_vcpu_and_per_gb() -> None:
    # 0.5 vCPU x $0.04048 + 1 GB x $0.004445 = $0.024685/h.
    cost = estimate(Footprint(0.5, 1024, 0, "FARGATE", "us-east-1"), TABLE)
    assert cost is not None
    assert cost.usd_per_hour == pytest.approx(0.024685)
    spot = estimate(Footprint(0.5, 1024, 0, "FARGATE_SPOT", "us-east-1"), TABLE)
    assert spot is not None and spot.spot
    assert spot.usd_per_hour == pytest.approx(0.024685 * (1 - FARGATE_SPOT_SAVING))


def test_prices_follow_the_region_and_an_unknown_region_says_whose_prices_it_used() -> None:
    ireland = estimate(Footprint(2, 1024, 0, "EC2", "eu-west-1", "m5.large"), TABLE)
    assert ireland is not None and ireland.usd_per_hour == pytest.approx(0.107)
    unresolved = estimate(Footprint(2, 1024, 0, "EC2", "${Token[AWS.Region.9]}", "m5.large"), TABLE)
    assert unresolved is not None and unresolved.usd_per_hour == pytest.approx(0.096)
    assert f"{DEFAULT_REGION} prices" in unresolved.basis


def test_what_the_table_cannot_price_has_no_estimate() -> None:
    assert estimate(Footprint(1, 1024, 0, "EC2", "us-east-1", "c5.large"), TABLE) is None
    assert estimate(Footprint(1, 1024, 0, "EC2", "us-east-1", None), TABLE) is None


def test_the_shipped_table_prices_the_catalog_and_names_its_sources() -> None:
    table = price_table()
    assert len(table.date) == 10 and table.date[4] == "-"
    assert any("source" in note.lower() for note in table.notes)
    regions = table.regions()
    assert {"us-east-1", "us-east-2", "us-west-2"} <= set(regions)
    unpriced = [name for name in catalog() if all(table.price(r, name) is None for r in regions)]
    # Sold only through EC2 Capacity Blocks, or with no On-Demand list price in any
    # source (the table's header says so): they get no estimate rather than a guess.
    assert sorted(unpriced) == ["p5e.48xlarge", "trn2.48xlarge"]
    assert any("p5e.48xlarge" in note for note in table.notes)
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        assert table.price(region, "fargate-vcpu-x86_64")
        assert table.price(region, "fargate-gb-x86_64")
