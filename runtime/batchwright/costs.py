"""Cost estimates from a dated price table: what a task costs per hour while it runs.

The table (``environment/prices.csv``, shipped with the package) holds On-Demand list
prices of the instance catalog's types and Fargate's per-vCPU-hour and per-GB-hour
prices, for the regions the catalog covers; its header names its sources and date.
Prices are facts with a date, not a bill: AWS bills by the second per instance or task,
and a Batch compute environment may run instances no job fills.

**Method.** A task on EC2 is charged its share of the instance it runs on: the largest of
its vCPU, memory and GPU fractions of that instance, times the instance's hourly price
(a task holding half the memory of an instance keeps others off that half, whatever its
vCPUs). A task on Fargate pays its vCPUs and GB at Fargate's rates (x86_64, Linux).
Spot prices move by the hour and by zone, so Spot is an *estimate*, labelled one: the
On-Demand price less an assumed saving (:data:`SPOT_SAVING`, :data:`FARGATE_SPOT_SAVING`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

from batchwright.environment.instances import InstanceCapacity, lookup

#: Assumed saving of EC2 Spot over On-Demand. AWS advertises "up to 90%"; the saving of a
#: given type, zone and hour is anywhere below that, so a middle figure is assumed and
#: every Spot figure is labelled an estimate.
SPOT_SAVING = 0.6
#: Assumed saving of Fargate Spot over Fargate (AWS advertises "up to 70%").
FARGATE_SPOT_SAVING = 0.5
#: The region assumed when a queue's region is unknown.
DEFAULT_REGION = "us-east-1"
#: MiB per GB as Fargate bills memory (its sizes are GiB, billed "per GB").
MIB_PER_GB = 1024


@dataclass(frozen=True)
class Footprint:
    """What one task holds while it runs, and where: enough to estimate its cost."""

    vcpus: float
    memory_mib: int
    gpus: int = 0
    #: ``EC2``, ``SPOT``, ``FARGATE`` or ``FARGATE_SPOT``.
    platform: str = "EC2"
    region: str | None = None
    #: The EC2 instance type (``None`` on Fargate).
    instance_type: str | None = None
    #: True when the instance type is the plan's smallest fitting one, not the one AWS used.
    instance_type_estimated: bool = False


@dataclass(frozen=True)
class Estimate:
    """An hourly price estimate and how it was made."""

    usd_per_hour: float
    #: How the figure was made, e.g. ``"50% of m6i.large at $0.096/h (memory)"``.
    basis: str
    #: The figure assumes a Spot saving (so it is an estimate even more than the rest).
    spot: bool = False
    #: The date of the price table.
    priced_on: str = ""

    def cost(self, seconds: float) -> float:
        """The estimated cost of running ``seconds`` at this rate."""
        return self.usd_per_hour * seconds / 3600.0

    @property
    def label(self) -> str:
        """``$0.0480/h`` (``~$0.0192/h Spot est.`` for Spot)."""
        if self.spot:
            return f"~${self.usd_per_hour:.4f}/h Spot est."
        return f"${self.usd_per_hour:.4f}/h"


@dataclass(frozen=True)
class PriceTable:
    """On-Demand prices by (region, item) and the table's date and sources."""

    prices: dict[tuple[str, str], float]
    #: The date the prices were retrieved (``YYYY-MM-DD``), from the table's header.
    date: str
    #: The header's comment lines (sources, scope).
    notes: tuple[str, ...]

    def price(self, region: str | None, item: str) -> float | None:
        """The hourly price of ``item`` (an instance type or ``fargate-vcpu-x86_64`` etc.)
        in ``region`` (:data:`DEFAULT_REGION` when unknown), or ``None``."""
        return self.prices.get((region or DEFAULT_REGION, item))

    def regions(self) -> list[str]:
        """The regions the table prices."""
        return sorted({region for region, _ in self.prices})


def parse_prices(text: str) -> PriceTable:
    """The table of a ``prices.csv`` text: ``#`` comment lines (one of them
    ``# date: YYYY-MM-DD``), then ``region,item,usd_per_hour`` rows."""
    lines = text.splitlines()
    notes = tuple(line[1:].strip() for line in lines if line.startswith("#"))
    rows = csv.DictReader(io.StringIO("\n".join(x for x in lines if not x.startswith("#"))))
    prices = {(row["region"], row["item"]): float(row["usd_per_hour"]) for row in rows}
    dated = [n.split(":", 1)[1].split() for n in notes if n.lower().startswith("date:")]
    date = dated[0][0] if dated and dated[0] else ""
    return PriceTable(prices, date, notes)


@cache
def price_table() -> PriceTable:
    """The price table shipped with the package."""
    text = resources.files("batchwright.environment").joinpath("prices.csv").read_text()
    return parse_prices(text)


def instance_share(footprint: Footprint, instance: InstanceCapacity) -> tuple[float, str]:
    """The task's share of the instance (0-1] and the resource that sets it."""
    shares = {
        "vCPU": footprint.vcpus / instance.vcpus,
        "memory": footprint.memory_mib / instance.memory_mib,
    }
    if footprint.gpus and instance.gpus:
        shares["GPU"] = footprint.gpus / instance.gpus
    resource = max(shares, key=lambda k: shares[k])
    return min(1.0, shares[resource]), resource


def estimate(footprint: Footprint, table: PriceTable | None = None) -> Estimate | None:
    """The hourly estimate of one task, or ``None`` when the table has no price for it
    (an instance type or region it does not cover)."""
    table = table or price_table()
    region, where = footprint.region, ""
    if region not in table.regions():
        # An unresolved deploy-time region, or one the table does not cover: priced as
        # the default region, and said so.
        region = DEFAULT_REGION
        where = (
            f", {DEFAULT_REGION} prices (region {footprint.region or 'unknown'} not in the table)"
        )
    footprint = replace(footprint, region=region)
    if footprint.platform in ("FARGATE", "FARGATE_SPOT"):
        vcpu = table.price(footprint.region, "fargate-vcpu-x86_64")
        gb = table.price(footprint.region, "fargate-gb-x86_64")
        if vcpu is None or gb is None:
            return None
        memory_gb = footprint.memory_mib / MIB_PER_GB
        hourly = footprint.vcpus * vcpu + memory_gb * gb
        basis = f"Fargate {footprint.vcpus:g} vCPU x ${vcpu}/h + {memory_gb:g} GB x ${gb}/h{where}"
        if footprint.platform == "FARGATE_SPOT":
            return Estimate(
                hourly * (1 - FARGATE_SPOT_SAVING),
                f"{basis}, less an assumed {FARGATE_SPOT_SAVING:.0%} Fargate Spot saving",
                spot=True,
                priced_on=table.date,
            )
        return Estimate(hourly, basis, priced_on=table.date)
    if footprint.instance_type is None:
        return None
    instance = lookup(footprint.instance_type)
    price = table.price(footprint.region, footprint.instance_type)
    if instance is None or price is None:
        return None
    share, resource = instance_share(footprint, instance)
    planned = " (the plan's smallest fitting type)" if footprint.instance_type_estimated else ""
    basis = f"{share:.0%} ({resource}) of {instance.name}{planned} at ${price}/h{where}"
    if footprint.platform == "SPOT":
        return Estimate(
            share * price * (1 - SPOT_SAVING),
            f"{basis} On-Demand, less an assumed {SPOT_SAVING:.0%} Spot saving",
            spot=True,
            priced_on=table.date,
        )
    return Estimate(share * price, basis, priced_on=table.date)
