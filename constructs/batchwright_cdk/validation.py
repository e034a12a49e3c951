"""Synth-time checks of the environment's settings, and the error they raise.

Two tiers, as in aws-cdk's ``aws_batch``: everything a single spec can get wrong fails in
its constructor (:func:`check_compute_environment`, :func:`check_queue`); the few
invariants a later ``add_*`` call could still repair are registered on the construct's
node and run at synthesis (see :class:`batchwright_cdk.environment.BatchEnvironment`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk

from batchwright.environment.instances import KEYWORD_FAMILIES, InstanceCapacity, catalog, expand
from batchwright.errors import InvalidValue

if TYPE_CHECKING:
    from batchwright_cdk.queues import ComputeEnvironmentSpec, QueueSpec

#: AWS Batch accepts at most this many compute environments behind one job queue.
MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE = 3
#: Root volume sizes accepted (GiB): the AMI snapshot's size up to gp3's maximum.
ROOT_VOLUME_RANGE = (30, 16_384)
#: Bounds of a job queue's job state time limit (seconds).
RUNNABLE_TIMEOUT_RANGE = (600, 86_400)
#: Architecture of the Batch instance-type keywords.
KEYWORD_ARCHITECTURES: dict[str, str] = {
    "default_x86_64": "x86_64",
    "optimal": "x86_64",
    "default_arm64": "arm64",
}
_QUEUE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class EnvironmentConfigError(InvalidValue):
    """A setting of a batchwright environment is invalid; raised at construct time or synth.

    The message names the spec (``where``), the prop, the value received, what is wrong
    and what is allowed.
    """


def fail(where: str, key: str, value: Any, problem: str, fix: str) -> EnvironmentConfigError:
    """Builds the error (callers ``raise`` it, so the traceback points at the check)."""
    return EnvironmentConfigError(where=where, key=key, value=value, problem=problem, fix=fix)


def known(value: Any) -> bool:
    """Whether a number is known at synthesis (not None and not a deploy-time token such
    as a ``CfnParameter``'s ``value_as_number``): only known numbers are range-checked."""
    return value is not None and not cdk.Token.is_unresolved(value)


def check_count(where: str, key: str, value: int | None, *, minimum: int) -> None:
    """Checks an optional whole number against its lower bound (tokens pass)."""
    if known(value) and (not isinstance(value, int) or value < minimum):
        raise fail(
            where,
            key,
            value,
            f"must be a whole number of at least {minimum}",
            f"Use {minimum} or more, or leave {key} out",
        )


def resolve_capacities(
    names: Iterable[str], declared: Mapping[str, InstanceCapacity], where: str
) -> list[InstanceCapacity]:
    """Expands classes and keywords to concrete sizes and returns each size's capacity.

    A size the shipped table lacks must be declared by the user (``instance_capacities``);
    an unknown class cannot be expanded at all and is refused.
    """
    table = catalog()
    out: list[InstanceCapacity] = []
    for name in expand(names):
        capacity = declared.get(name) or table.get(name)
        if capacity is not None:
            out.append(capacity)
            continue
        if "." not in name:
            raise fail(
                where,
                "instance_types",
                name,
                "is an instance class batchwright's instance table does not know",
                "Name concrete sizes (e.g. 'x2idn.16xlarge') and declare their capacities "
                "with BatchEnvironment(instance_capacities=[InstanceCapacity(...)])",
            )
        raise fail(
            where,
            "instance_types",
            name,
            "is not in batchwright's instance table, so its vCPUs and memory are unknown",
            "Declare it with BatchEnvironment(instance_capacities=[InstanceCapacity("
            f"name={name!r}, vcpus=..., memory_mib=...)]) or pick a listed type",
        )
    return out


def architectures(names: Iterable[str], capacities: Iterable[InstanceCapacity]) -> set[str]:
    """The CPU architectures of a list of instance types (keywords included)."""
    found = {KEYWORD_ARCHITECTURES[n] for n in names if n in KEYWORD_FAMILIES}
    found.update(c.architecture for c in capacities)
    return found


def check_compute_environment(spec: ComputeEnvironmentSpec, where: str) -> None:
    """Checks one compute environment spec on its own (no instance table needed for most)."""
    if known(spec.max_vcpus) and spec.max_vcpus <= 0:
        raise fail(where, "max_vcpus", spec.max_vcpus, "must be positive", "Use 1 or more")
    if known(spec.min_vcpus) and spec.min_vcpus < 0:
        raise fail(where, "min_vcpus", spec.min_vcpus, "must not be negative", "Use 0 or more")
    if known(spec.min_vcpus) and known(spec.max_vcpus) and spec.min_vcpus > spec.max_vcpus:
        raise fail(
            where,
            "min_vcpus",
            spec.min_vcpus,
            f"is greater than max_vcpus={spec.max_vcpus}",
            "Lower min_vcpus (0 lets the environment scale to zero) or raise max_vcpus",
        )
    volume = spec.root_volume_gib
    if (
        volume is not None
        and known(volume)
        and not (ROOT_VOLUME_RANGE[0] <= volume <= ROOT_VOLUME_RANGE[1])
    ):
        raise fail(
            where,
            "root_volume_gib",
            spec.root_volume_gib,
            "is outside what the ECS-optimized AMI and gp3 allow",
            f"Use {ROOT_VOLUME_RANGE[0]} to {ROOT_VOLUME_RANGE[1]} GiB",
        )
    # Before the Fargate checks: efa=True on Fargate is about the platform, not about an
    # accelerator the caller may not have written.
    if spec.efa and spec.platform != "EC2":
        raise fail(
            where,
            "platform",
            spec.platform,
            "is not allowed for an EFA compute environment",
            "EFA (multi-node) jobs need on-demand capacity: use platform 'EC2', or leave "
            "EFA out of this environment",
        )
    if spec.is_fargate:
        if spec.root_volume_gib is not None:
            raise fail(
                where,
                "root_volume_gib",
                spec.root_volume_gib,
                f"cannot be set on a {spec.platform} compute environment",
                "Fargate storage is set per job (ephemeral storage); drop root_volume_gib",
            )
        if spec.instance_types:
            raise fail(
                where,
                "instance_types",
                list(spec.instance_types),
                f"cannot be set on a {spec.platform} compute environment",
                "Fargate chooses the hardware; drop instance_types or use platform EC2/SPOT",
            )
        if spec.accelerator != "none":
            raise fail(
                where,
                "accelerator",
                spec.accelerator,
                f"is not available on {spec.platform}",
                "Fargate offers no GPUs, Neuron devices or EFA; use an EC2 platform",
            )
        if not known(spec.min_vcpus) or spec.min_vcpus:
            raise fail(
                where,
                "min_vcpus",
                spec.min_vcpus,
                f"cannot be set on a {spec.platform} compute environment",
                "Fargate has no minimum capacity; leave min_vcpus at 0",
            )


#: EFA-capable sizes an error suggests, per accelerator of the environment.
_EFA_EXAMPLES: dict[str, str] = {
    "none": "'c5n.18xlarge', 'c6in.32xlarge' or 'p4d.24xlarge'",
    "efa": "'c5n.18xlarge', 'c6in.32xlarge' or 'p4d.24xlarge'",
    "gpu": "'p4d.24xlarge', 'p5.48xlarge' or 'g5.48xlarge'",
    "neuron": "'trn1.32xlarge', 'trn1n.32xlarge' or 'trn2.48xlarge'",
}


def check_accelerator_types(
    spec: ComputeEnvironmentSpec, capacities: list[InstanceCapacity], where: str
) -> None:
    """Checks that the instance types can give what the accelerator promises."""
    if spec.accelerator == "gpu" and not any(c.gpus for c in capacities):
        raise fail(
            where,
            "instance_types",
            list(spec.instance_types),
            "has no GPU instance type, so GPU jobs would wait forever",
            "Add NVIDIA types such as 'g5' or 'g6.xlarge'",
        )
    if spec.accelerator == "neuron":
        if not any(c.neuron_devices for c in capacities):
            raise fail(
                where,
                "instance_types",
                list(spec.instance_types),
                "has no Inferentia/Trainium instance type",
                "Add Neuron types such as 'inf2', 'trn1' or 'trn2.48xlarge'",
            )
        gpu = [c.name for c in capacities if c.gpus]
        if gpu:
            raise fail(
                where,
                "instance_types",
                gpu,
                "are GPU types, which the Neuron AMI cannot drive",
                "Put GPU types in a separate 'gpu' queue",
            )
    if spec.efa:
        not_efa = [c.name for c in capacities if not c.efa]
        if not_efa:
            raise fail(
                where,
                "instance_types",
                not_efa,
                "do not support EFA",
                f"Use EFA-capable sizes such as {_EFA_EXAMPLES[spec.accelerator]}",
            )


def check_queue(spec: QueueSpec) -> None:
    """Checks a queue spec's shape: key, count and mix of its compute environments."""
    where = f"QueueSpec {spec.key!r}"
    if not _QUEUE_KEY.match(spec.key):
        raise fail(
            "QueueSpec",
            "key",
            spec.key,
            "is not a valid queue key",
            "Use 1-64 letters, digits, '-' or '_', starting with a letter or digit",
        )
    count = len(spec.compute_environments)
    if not 1 <= count <= MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE:
        raise fail(
            where,
            "compute_environments",
            f"{count} environments",
            "is outside what AWS Batch allows per job queue",
            f"Give 1 to {MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE}; split the rest into another queue",
        )
    ces = spec.compute_environments
    _refuse_mixed(
        where,
        {"FARGATE" if ce.is_fargate else "EC2" for ce in ces},
        [ce.platform for ce in ces],
        "mixes EC2/SPOT with FARGATE/FARGATE_SPOT, which AWS Batch refuses",
        "Keep EC2 and SPOT in one queue, FARGATE and FARGATE_SPOT in another",
    )
    _refuse_mixed(
        where,
        {ce.efa for ce in ces},
        [_accelerator_kind(ce) for ce in ces],
        "mixes EFA and non-EFA environments, so multi-node jobs could land on either",
        "Give the EFA environment its own queue",
    )
    accelerators = {ce.accelerator for ce in ces} - {"none"}
    _refuse_mixed(
        where,
        accelerators,
        sorted(accelerators),
        "mixes accelerators, so the queue cannot say what its jobs get",
        "Give GPU and Neuron environments their own queues",
    )
    if known(spec.priority) and not 0 <= spec.priority <= 1000:
        raise fail(where, "priority", spec.priority, "is out of range", "Use 0 to 1000")
    timeout = spec.runnable_timeout_seconds
    if (
        timeout is not None
        and known(timeout)
        and not (RUNNABLE_TIMEOUT_RANGE[0] <= timeout <= RUNNABLE_TIMEOUT_RANGE[1])
    ):
        raise fail(
            where,
            "runnable_timeout_seconds",
            timeout,
            "is outside what AWS Batch accepts for a job state time limit",
            f"Use {RUNNABLE_TIMEOUT_RANGE[0]} to {RUNNABLE_TIMEOUT_RANGE[1]} seconds, or omit it",
        )


def _accelerator_kind(spec: ComputeEnvironmentSpec) -> str:
    """The accelerator as an error quotes it: ``gpu+efa`` for a GPU environment with EFA."""
    if spec.efa and spec.accelerator != "efa":
        return f"{spec.accelerator}+efa"
    return spec.accelerator


def _refuse_mixed(where: str, kinds: set[Any], shown: Any, problem: str, fix: str) -> None:
    """Refuses a queue whose compute environments fall into more than one of ``kinds``
    (``shown`` is the value the error quotes)."""
    if len(kinds) > 1:
        raise fail(where, "compute_environments", shown, problem, fix)


def check_queue_architectures(
    spec: QueueSpec, capacities: Mapping[int, list[InstanceCapacity]]
) -> None:
    """Refuses a queue whose instance types span CPU architectures: one image cannot run on
    both, so a job would fail depending on where it lands."""
    found: set[str] = set()
    for index, ce in enumerate(spec.compute_environments):
        found |= architectures(ce.instance_types, capacities.get(index, []))
    if len(found) > 1:
        raise fail(
            f"QueueSpec {spec.key!r}",
            "instance_types",
            sorted(found),
            "mixes CPU architectures",
            "Keep x86_64 and arm64 (Graviton) types in separate queues",
        )
