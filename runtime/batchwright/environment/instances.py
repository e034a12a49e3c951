"""Capacities of EC2 instance types, from the one data file shipped with the package.

Both halves read this table: the construct library to expand instance classes and
keywords into the concrete sizes it describes, the runtime to check that a request fits.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: What the Batch instance-type keywords expand to (AWS Batch API doc for
#: ``ComputeResource.instanceTypes``; ``optimal`` is now equivalent to ``default_x86_64``).
KEYWORD_FAMILIES: dict[str, tuple[str, ...]] = {
    "default_x86_64": ("m6i", "c6i", "r6i", "c7i"),
    "optimal": ("m6i", "c6i", "r6i", "c7i"),
    "default_arm64": ("m6g", "c6g", "r6g", "c7g"),
}

#: Memory the default Batch AMI's ECS agent keeps for itself (MiB).
ECS_AGENT_RESERVED_MIB = 32
#: Share of nominal memory assumed lost to kernel and firmware before the agent registers
#: the instance (observed 2.5-6.3%; see the README's fit-check section).
PLATFORM_MEMORY_OVERHEAD = 0.05


@dataclass(frozen=True)
class InstanceCapacity:
    """What one EC2 instance type offers to Batch jobs."""

    name: str
    vcpus: int
    memory_mib: int
    architecture: str = "x86_64"
    gpus: int = 0
    neuron_devices: int = 0
    efa_interfaces: int = 0

    @property
    def family(self) -> str:
        """The family part of the name (``c5`` for ``c5.xlarge``)."""
        return self.name.split(".", 1)[0]

    @property
    def efa(self) -> bool:
        """Whether the type supports EFA."""
        return self.efa_interfaces > 0

    @property
    def job_memory_mib(self) -> int:
        """Memory a job can actually request on this type, after the platform overhead
        and the ECS agent's reserve. A request above this stays RUNNABLE forever."""
        return int(self.memory_mib * (1 - PLATFORM_MEMORY_OVERHEAD)) - ECS_AGENT_RESERVED_MIB


@cache
def catalog() -> dict[str, InstanceCapacity]:
    """Every instance type of the shipped table, by name."""
    rows: dict[str, InstanceCapacity] = {}
    text = resources.files(__package__).joinpath("instance_types.csv").read_text()
    for row in csv.DictReader(text.splitlines()):
        rows[row["instance_type"]] = InstanceCapacity(
            name=row["instance_type"],
            vcpus=int(row["vcpus"]),
            memory_mib=int(row["memory_mib"]),
            architecture=row["architecture"],
            gpus=int(row["gpus"] or 0),
            neuron_devices=int(row["neuron_devices"] or 0),
            efa_interfaces=int(row["max_efa_interfaces"] or 0)
            if row["efa_supported"] == "true"
            else 0,
        )
    return rows


def expand(names: Iterable[str]) -> list[str]:
    """Expands instance classes (``c5``) and keywords (``optimal``) into the concrete
    sizes of the table, keeping concrete sizes as they are; order is preserved and
    duplicates dropped. Unknown names are kept (callers decide whether that is an error).
    """
    table = catalog()
    out: list[str] = []
    for name in names:
        families = KEYWORD_FAMILIES.get(name, (name,) if "." not in name else ())
        sizes = [n for f in families for n, c in table.items() if c.family == f] or [name]
        for size in sizes:
            if size not in out:
                out.append(size)
    return out


def lookup(name: str) -> InstanceCapacity | None:
    """The capacity of one concrete instance type, or None when the table lacks it."""
    return catalog().get(name)
