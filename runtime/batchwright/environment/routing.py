"""Routing and the pre-flight fit check: which queue of an environment runs a step.

Pure functions over an :class:`EnvironmentDescriptor` and a step's checked
:class:`BatchOptions`. A step is routed, among the queues that can run it, to:

1. the platform its options imply (an option limited to one platform in the option
   table, e.g. ``ephemeral_storage`` or a fractional ``cpu`` -> Fargate, ``gpu`` or
   ``privileged`` -> EC2; :func:`~batchwright.batch.platforms.implied_platform`),
   otherwise EC2 before Fargate;
2. a queue of its accelerator kind only: Neuron queues for ``inferentia``/``trainium``,
   GPU queues for ``gpu``, EFA queues for ``efa`` alone, and plain queues otherwise
   (``efa`` with GPUs or Neuron devices needs compute environments whose instances have
   EFA interfaces attached: the descriptor's ``efa``);
   a parallel step (``num_parallel``) only a queue that runs multi-node jobs, with room
   in its max vCPUs for one instance per node;
3. Spot before on-demand when the step has ``@retry`` (on-demand before Spot otherwise);
4. the queue whose smallest fitting instance is smallest.

A request *fits* a queue when some instance type of its compute environments offers the
vCPUs, the memory left after the platform overhead and the ECS agent's reserve, the GPUs,
Neuron devices and EFA interfaces asked for, within the environment's max vCPUs — or, on
Fargate, when a valid vCPU/memory pair holds it. A step that fits nowhere is refused with
a small table of the largest request each queue takes, naming queues by their keys.

``queue=`` names one of the environment's queues by key, name or ARN. A value with a
``:`` (an ARN) that the environment lacks is a queue outside it, checked by the live
check. A plain name the environment lacks is refused as a mistyped key when it resembles
a key (:func:`difflib.get_close_matches`, or one of its ``-``/``_`` separated words is a
key, as in ``gpu-large``); any other plain name is taken as a queue outside the
environment.

Without an environment (or for a queue outside it), :func:`check_anywhere` still refuses
a request no instance type of the catalog
(:mod:`batchwright.environment.instances`) and no Fargate size can hold.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import (
    FARGATE_SIZES,
    fargate_size,
    implied_platform,
    platform_keys,
    vcpu_text,
)
from batchwright.environment.descriptor import EnvironmentDescriptor, QueueDescription
from batchwright.environment.instances import InstanceCapacity, catalog
from batchwright.errors import InvalidValue


@dataclass(frozen=True)
class Fit:
    """How a request fits one queue."""

    queue: QueueDescription
    #: Instance types that can hold the request, smallest first (Fargate: the size used).
    instance_types: tuple[str, ...]
    #: Why it does not fit, when ``instance_types`` is empty.
    problem: str = ""
    #: Whether it does not fit for want of a capability (GPUs on Fargate, EFA on Spot),
    #: whatever the size asked for.
    lacks_capability: bool = False
    #: Whether it would fit but for the node count of a parallel step (one instance per
    #: node within the compute environment's max vCPUs).
    too_many_nodes: bool = False

    @property
    def fits(self) -> bool:
        """Whether the request can ever be placed on this queue."""
        return bool(self.instance_types)


@dataclass(frozen=True)
class Route:
    """The outcome of routing one step: where it goes and why, or why it cannot go."""

    step: str
    queue: QueueDescription | None
    #: The queue as the job is submitted to it: the descriptor's ARN or the step's choice.
    queue_id: str | None
    platform: str | None
    instance_types: tuple[str, ...]
    reason: str
    #: ``"ok"`` or the refusal message.
    verdict: str

    @property
    def ok(self) -> bool:
        """Whether the step can run where it was routed."""
        return self.verdict == "ok"


def accelerator_of(options: BatchOptions) -> str:
    """The accelerator kind a step needs: ``neuron``, ``gpu``, ``efa`` or ``none``. EFA
    alongside Neuron devices or GPUs is asked of a Neuron or GPU queue whose compute
    environments have EFA interfaces (see :func:`fit`); ``efa`` alone of an EFA queue."""
    if options.inferentia > 0:
        return "neuron"
    if options.gpu > 0:
        return "gpu"
    if options.efa > 0:
        return "efa"
    return "none"


def _not_multi_node(queue: QueueDescription) -> str:
    """Why a queue cannot take multi-node parallel jobs, in words."""
    rule = "AWS Batch runs multi-node parallel jobs on on-demand EC2 in private subnets only"
    if queue.is_fargate:
        return f"queue '{queue.key}' is a Fargate queue, and {rule}"
    if queue.is_spot or any(ce.platform != "EC2" for ce in queue.compute_environments):
        return f"queue '{queue.key}' is a Spot queue, and {rule}"
    return (
        f"the environment's descriptor says queue '{queue.key}' cannot run multi-node "
        f"parallel jobs ({rule}: its subnets are public, or the descriptor predates "
        "batchwright's multi-node support; deploy the environment again to refresh it)"
    )


def _offers(capacity: InstanceCapacity, options: BatchOptions) -> bool:
    return (
        options.cpu <= capacity.vcpus
        and options.memory <= capacity.job_memory_mib
        and options.gpu <= capacity.gpus
        and options.inferentia <= capacity.neuron_devices
        and options.efa <= capacity.efa_interfaces
    )


def _size_text(
    vcpus: float,
    memory: int,
    gpus: int = 0,
    neuron: int = 0,
    efa: int = 0,
    *,
    shown: Iterable[str] = (),
) -> str:
    """``2 vCPU / 8192 MiB / 1 GPU``: accelerators when there are any, or when ``shown``
    names them (``gpu``, ``inferentia``, ``efa``: a request for them meets zero)."""
    parts = [f"{vcpu_text(vcpus)} vCPU", f"{memory} MiB"]
    for key, count, what in (
        ("gpu", gpus, "GPU"),
        ("inferentia", neuron, "Neuron devices"),
        ("efa", efa, "EFA interfaces"),
    ):
        if count or key in shown:
            parts.append(f"{count} {what}")
    return " / ".join(parts)


def describe_request(options: BatchOptions) -> str:
    """The request in words: ``2 vCPU / 8192 MiB / 1 GPU``."""
    return _size_text(options.cpu, options.memory, options.gpu, options.inferentia, options.efa)


#: The option keys of the request's dimensions, in the order refusals name them.
_DIMENSIONS = (
    ("cpu", "vcpus"),
    ("memory", "memory_mib"),
    ("gpu", "gpus"),
    ("inferentia", "neuron_devices"),
    ("efa", "efa_interfaces"),
)


@dataclass(frozen=True)
class Offer:
    """The largest request one queue can take: what its largest instance type gives a job
    (after the memory overhead, vCPUs capped by its compute environment's max vCPUs), or
    Fargate's largest size."""

    queue: QueueDescription
    vcpus: float
    memory_mib: int
    gpus: int = 0
    neuron_devices: int = 0
    efa_interfaces: int = 0
    #: The instance type; ``""`` on Fargate.
    instance_type: str = ""

    def size(self, options: BatchOptions) -> str:
        """``48 vCPU / 186745 MiB / 4 GPU``: vCPUs, memory and the accelerators that
        matter to ``options`` (those it asks for, and the queue's own kind)."""
        asked = [key for key in ("gpu", "inferentia", "efa") if getattr(options, key)]
        own = {"gpu": "gpu", "neuron": "inferentia", "efa": "efa"}.get(self.queue.accelerator)
        shown = [*asked, *([own] if own else [])]
        return _size_text(
            self.vcpus,
            self.memory_mib,
            self.gpus if "gpu" in shown else 0,
            self.neuron_devices if "inferentia" in shown else 0,
            self.efa_interfaces if "efa" in shown else 0,
            shown=asked,
        )

    def describe(self, options: BatchOptions) -> str:
        """``4 vCPU / 7750 MiB on c5.xlarge`` (see :meth:`size`)."""
        return f"{self.size(options)} on {self.instance_type or 'Fargate'}"


def largest_offer(queue: QueueDescription, env: EnvironmentDescriptor) -> Offer | None:
    """The largest request ``queue`` can take, or ``None`` when no capacity is known."""
    if queue.is_fargate:
        cpu, mib = FARGATE_SIZES[-1]
        return Offer(queue, cpu, mib)
    best: Offer | None = None
    for ce in queue.compute_environments:
        for name in ce.instance_types:
            capacity = env.capacity(name)
            if capacity is None:
                continue
            offer = Offer(
                queue,
                min(capacity.vcpus, ce.max_vcpus),
                capacity.job_memory_mib,
                capacity.gpus,
                capacity.neuron_devices,
                capacity.efa_interfaces,
                capacity.name,
            )
            if best is None or (offer.memory_mib, offer.vcpus) > (best.memory_mib, best.vcpus):
                best = offer
    return best


def largest_request(
    queue: QueueDescription, env: EnvironmentDescriptor, options: BatchOptions
) -> str:
    """The largest request that fits ``queue``, in words (for refusals about ``options``)."""
    offer = largest_offer(queue, env)
    return offer.describe(options) if offer else ""


def fit(
    options: BatchOptions,
    queue: QueueDescription,
    env: EnvironmentDescriptor,
    *,
    nodes: int | None = None,
) -> Fit:
    """Whether (and on which instance types) ``options`` fits ``queue``; when it does not,
    ``problem`` says why in a few words, without repeating the request.

    ``nodes``: the step is a parallel step of that many nodes (``None``: it is not). Its
    queue must take multi-node jobs, and since every node has an instance of its own, an
    instance type fits only when ``nodes`` of it stay within its compute environment's
    max vCPUs. EFA interfaces are offered only by compute environments whose instances
    have them attached (the descriptor's ``efa``), whatever the instance type could hold.
    """
    if nodes is not None and not queue.multi_node:
        return Fit(queue, (), _not_multi_node(queue), True)
    if queue.is_fargate:
        size = fargate_size(options.cpu, options.memory)
        if size is None:
            cpu, mib = FARGATE_SIZES[-1]
            return Fit(queue, (), f"Fargate's largest size is {cpu:g} vCPU / {mib} MiB")
        if options.gpu or options.inferentia or options.efa:
            return Fit(queue, (), "Fargate has no GPUs, Neuron devices or EFA", True)
        return Fit(queue, (f"fargate:{size[0]:g}vcpu-{size[1]}mib",))
    if options.efa and queue.is_spot:
        return Fit(
            queue,
            (),
            f"queue '{queue.key}' is a Spot queue, and EFA jobs run on on-demand EC2 only",
            True,
        )
    candidates: list[InstanceCapacity] = []
    unknown: list[str] = []
    crowded: list[tuple[InstanceCapacity, int]] = []
    without_efa = 0
    for ce in queue.compute_environments:
        if options.efa and not ce.efa:
            without_efa += 1
            continue
        if options.cpu > ce.max_vcpus:
            continue
        for name in ce.instance_types:
            capacity = env.capacity(name)
            if capacity is None:
                unknown.append(name)
            elif not _offers(capacity, options) or capacity in candidates:
                continue
            elif nodes is not None and nodes * capacity.vcpus > ce.max_vcpus:
                crowded.append((capacity, ce.max_vcpus))
            else:
                candidates.append(capacity)
    if candidates:
        candidates.sort(key=lambda c: (c.vcpus, c.memory_mib, c.gpus, c.name))
        return Fit(queue, tuple(c.name for c in candidates))
    if without_efa == len(queue.compute_environments):
        return Fit(
            queue,
            (),
            f"queue '{queue.key}' has no EFA interfaces on its instances (its launch "
            "templates attach none)",
            True,
        )
    if crowded and nodes is not None:
        capacity, most = min(crowded, key=lambda c: c[0].vcpus)
        return Fit(
            queue,
            (),
            f"{nodes} nodes of {capacity.name} need {nodes * capacity.vcpus} vCPUs, and its "
            f"max vCPUs of {most} hold {most // capacity.vcpus} node(s) (one instance per node)",
            too_many_nodes=True,
        )
    largest = largest_request(queue, env, options)
    problem = f"the most it offers is {largest}" if largest else "no capacity of it is known"
    if unknown:
        problem += f"; capacities unknown for {', '.join(sorted(set(unknown)))}"
    return Fit(queue, (), problem)


def most_nodes(queue: QueueDescription, env: EnvironmentDescriptor, instance_type: str) -> int:
    """How many nodes of a parallel step on ``instance_type`` the queue can ever run at
    once: one instance per node, within the max vCPUs of a compute environment that has
    the type (0 when none has it, or its capacity is unknown)."""
    capacity = env.capacity(instance_type)
    if capacity is None:
        return 0
    return max(
        (
            ce.max_vcpus // capacity.vcpus
            for ce in queue.compute_environments
            if instance_type in ce.instance_types
        ),
        default=0,
    )


def _rank(f: Fit, env: EnvironmentDescriptor, prefer_spot: bool) -> tuple[int, int, int, int]:
    queue = f.queue
    smallest = env.capacity(f.instance_types[0]) if not queue.is_fargate else None
    size = (smallest.vcpus * 10**7 + smallest.memory_mib) if smallest else 0
    return (
        1 if queue.is_fargate else 0,  # EC2 before Fargate unless the options say otherwise
        0 if queue.is_spot == prefer_spot else 1,
        size,
        env.queues.index(queue),
    )


def eligible_queues(options: BatchOptions, env: EnvironmentDescriptor) -> list[QueueDescription]:
    """The queues routing considers for a step: of its accelerator kind, on the platform
    its options need (any platform when they need none)."""
    platform = implied_platform(options)
    accelerator = accelerator_of(options)
    return [
        q
        for q in env.queues
        if q.accelerator == accelerator
        and (platform is None or (platform == "FARGATE") == q.is_fargate)
    ]


def route(
    options: BatchOptions,
    env: EnvironmentDescriptor,
    *,
    has_retry: bool = False,
    nodes: int | None = None,
) -> Route:
    """Chooses the queue of ``env`` for a step, or refuses it with a reason. ``nodes``:
    the step is a parallel step of that many nodes (see :func:`fit`)."""
    step = options.step
    if options.queue is not None:
        return _explicit(options, env, nodes)
    platform = implied_platform(options)
    accelerator = accelerator_of(options)
    eligible = eligible_queues(options, env)
    fits = [fit(options, q, env, nodes=nodes) for q in eligible]
    fitting = [f for f in fits if f.fits]
    if not fitting and nodes is not None and eligible and not any(q.multi_node for q in eligible):
        return _refuse_multi_node(options, env, eligible, nodes)
    crowded = [f for f in fits if f.too_many_nodes]
    if not fitting and crowded:
        problems = "; ".join(f"queue '{f.queue.key}': {f.problem}" for f in crowded)
        message = (
            f"{_where(options)}: a parallel step of {nodes} nodes ({describe_request(options)} "
            f"each) fits no queue: {problems}. Ask for fewer nodes with num_parallel, or raise "
            "the queue's max vCPUs."
        )
        return Route(step, None, None, None, (), "", message)
    if not fitting:
        return _refuse(options, env, eligible, fits, platform, accelerator)
    best = min(fitting, key=lambda f: _rank(f, env, has_retry))
    reasons = []
    if platform:
        reasons.append(
            f"its options need {platform} ({', '.join(platform_keys(options)[platform])})"
        )
    if accelerator != "none":
        reasons.append(f"it asks for {accelerator}")
    if best.queue.is_spot and has_retry:
        reasons.append("it has @retry, so Spot is preferred")
    elif not best.queue.is_spot and len(fitting) > 1:
        reasons.append("on-demand preferred without @retry")
    if nodes is not None:
        reasons.append(f"a parallel step: {nodes} node(s) x {best.instance_types[0]}")
    elif not best.queue.is_fargate:
        reasons.append(f"smallest fitting instance {best.instance_types[0]}")
    return Route(
        step=step,
        queue=best.queue,
        queue_id=best.queue.arn,
        platform=best.queue.platform,
        instance_types=best.instance_types,
        reason="; ".join(reasons) or "the only queue that fits",
        verdict="ok",
    )


#: The on-demand platform of each Spot platform.
ON_DEMAND_OF = {"SPOT": "EC2", "FARGATE_SPOT": "FARGATE"}


def on_demand_counterpart(
    options: BatchOptions, queue: QueueDescription, env: EnvironmentDescriptor
) -> Fit | None:
    """For a Spot queue, the on-demand queue of the environment with the same accelerator
    that can run the step (smallest fitting instance first); ``None`` when there is none or
    ``queue`` is not a Spot queue. Where a step goes once Spot keeps being reclaimed."""
    platform = ON_DEMAND_OF.get(queue.platform)
    if platform is None:
        return None
    fits = [
        f
        for q in env.queues
        if q.platform == platform and q.accelerator == queue.accelerator
        for f in (fit(options, q, env),)
        if f.fits
    ]
    return min(fits, key=lambda f: _rank(f, env, prefer_spot=False), default=None)


def _where(options: BatchOptions) -> str:
    # Routing refusals name the step; the flow is the one being planned or run.
    return f"step '{options.step}', @batch"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _or(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def mistyped_queue(options: BatchOptions, env: EnvironmentDescriptor) -> str:
    """The refusal of a ``queue=`` plainly meant as one of the environment's keys but
    naming none, or ``""``.

    Meant as a key: no ``:`` (so not an ARN), not a key, name or ARN of the environment,
    and either close to a key (:func:`difflib.get_close_matches`, ignoring case) or made
    of ``-``/``_`` separated words one of which is a key (``gpu-large``). Other plain
    names are taken as queues outside the environment, which the live check confirms.
    """
    value = options.queue
    if value is None or ":" in value or env.queue(value) is not None:
        return ""
    keys = {q.key.lower(): q.key for q in env.queues}
    close = difflib.get_close_matches(value.lower(), list(keys), n=3, cutoff=0.6)
    words = [w for w in re.split(r"[-_]+", value.lower()) if w]
    shared = [k for k in keys if k in words and k not in close]
    suggestions = [keys[k] for k in close + shared]
    if not suggestions:
        return ""
    return str(
        InvalidValue(
            where=_where(options),
            key="queue",
            value=value,
            problem=f"names no queue of environment '{env.name}' (its queues: "
            f"{', '.join(q.key for q in env.queues)})",
            fix=f"Did you mean {_or([repr(s) for s in suggestions])}? Give one of the "
            "environment's queue keys, drop queue= to let batchwright route the step, or "
            "give the full ARN of a queue outside the environment.",
        )
    )


def _refuse_multi_node(
    options: BatchOptions,
    env: EnvironmentDescriptor,
    eligible: Sequence[QueueDescription],
    nodes: int,
) -> Route:
    """A parallel step whose kind of queue exists, none of them taking multi-node jobs."""
    keys = ", ".join(q.key for q in eligible)
    message = (
        f"{_where(options)}: a parallel step (num_parallel, {nodes} node(s)) runs as one "
        f"multi-node job, and none of the queues that fit its request ({keys}) can run one: "
        "AWS Batch runs multi-node parallel jobs on on-demand EC2 compute environments in "
        "private subnets only, never on Spot or Fargate. Add such a queue (e.g. "
        "QueueSpec.efa, QueueSpec.gpu_efa or QueueSpec.on_demand in private subnets) and "
        "route the step there."
    )
    return Route(options.step, None, None, None, (), "", message)


def _explicit(options: BatchOptions, env: EnvironmentDescriptor, nodes: int | None) -> Route:
    assert options.queue is not None
    queue = env.queue(options.queue)
    if queue is None:
        mistyped = mistyped_queue(options, env)
        # A queue outside the environment: the user knows it; the live check confirms it.
        return Route(
            step=options.step,
            queue=None,
            queue_id=None if mistyped else options.queue,
            platform=None,
            instance_types=(),
            reason="" if mistyped else "named by @batch(queue=...); not part of the environment",
            verdict=mistyped or "ok",
        )
    result = fit(options, queue, env, nodes=nodes)
    verdict = "ok"
    if not result.fits:
        others = [
            q.key
            for q in eligible_queues(options, env)
            if q is not queue and fit(options, q, env, nodes=nodes).fits
        ]
        verdict = (
            f"{_where(options)}: queue={options.queue!r} can never run it "
            f"({describe_request(options)}): {result.problem}. "
            + (
                f"Queues that could take it: {', '.join(others)}; drop queue= to let "
                "batchwright route it."
                if others
                else f"No queue of environment '{env.name}' can take it: "
                + (
                    f"add one that can, or drop {_and(_accelerator_keys(options))}."
                    if result.lacks_capability
                    else f"lower {_or(_exceeded(options, [largest_offer(queue, env)]))}."
                )
            )
        )
    reason = "named by @batch(queue=...)"
    if nodes is not None and result.fits:
        reason += f"; a parallel step: {nodes} node(s) x {result.instance_types[0]}"
    return Route(
        step=options.step,
        queue=queue,
        queue_id=queue.arn,
        platform=queue.platform,
        instance_types=result.instance_types,
        reason=reason,
        verdict=verdict,
    )


def _accelerator_keys(options: BatchOptions) -> list[str]:
    return [options.key(key) for key in ("gpu", "inferentia", "efa") if getattr(options, key)]


def _exceeded(options: BatchOptions, offers: Iterable[Offer | None]) -> list[str]:
    """The request's keys that exceed every offer (``cpu``, ``memory``, ...); the resource
    keys asked for when only their combination does."""
    known = [o for o in offers if o is not None]
    out = [
        options.key(key)
        for key, attribute in _DIMENSIONS
        if known and getattr(options, key) > max(getattr(o, attribute) for o in known)
    ]
    if out:
        return out
    asked = ["cpu", "memory"] + [options.key(k) for k, _ in _DIMENSIONS[2:] if getattr(options, k)]
    return asked


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns, two spaces apart, indented by two."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def offer_table(fits: Sequence[Fit], env: EnvironmentDescriptor, options: BatchOptions) -> str:
    """One row per queue: its key, platform and the largest request it takes (or why it
    takes none of this kind), and on which instance type."""
    rows = [("queue", "platform", "largest request", "instance type")]
    for f in fits:
        offer = largest_offer(f.queue, env)
        if offer is None or f.lacks_capability:
            rows.append((f.queue.key, f.queue.platform, f.problem, "-"))
        else:
            rows.append(
                (
                    f.queue.key,
                    f.queue.platform,
                    offer.size(options),
                    offer.instance_type or "(Fargate)",
                )
            )
    return _table(rows)


def _platform_fix(options: BatchOptions, platform: str) -> str:
    """What to change so a step no longer needs ``platform``."""
    texts = platform_keys(options)[platform]
    changes = [
        f"use cpu={math.ceil(options.cpu)}"
        if text.startswith("cpu=")
        else f"drop {text.split('=')[0]}"
        for text in texts
    ]
    return _and(changes)


def _refuse(
    options: BatchOptions,
    env: EnvironmentDescriptor,
    eligible: Sequence[QueueDescription],
    fits: Sequence[Fit],
    platform: str | None,
    accelerator: str,
) -> Route:
    where = _where(options)
    if not eligible:
        available = ", ".join(
            f"{q.key} ({q.platform}{'' if q.accelerator == 'none' else ', ' + q.accelerator})"
            for q in env.queues
        )
        if accelerator != "none":
            key = options.key({"neuron": "inferentia", "efa": "efa", "gpu": "gpu"}[accelerator])
            article = "an" if accelerator == "efa" else "a"
            wanted = f"{article} {accelerator} queue (for {key}={getattr(options, key)!r})"
            fix = f"Add {article} {accelerator} queue to the environment, or drop {key}."
        elif platform is not None:
            wanted = f"{'a Fargate' if platform == 'FARGATE' else 'an EC2'} queue (for "
            wanted += f"{', '.join(platform_keys(options)[platform])})"
            other = "EC2" if platform == "FARGATE" else "Fargate"
            fix = (
                f"Add such a queue to the environment, or {_platform_fix(options, platform)} "
                f"to run on {other}."
            )
        else:
            wanted = "a queue without GPUs, Neuron devices or EFA"
            fix = "Add such a queue to the environment."
        message = (
            f"{where}: needs {wanted}, and environment '{env.name}' has none (its queues: "
            f"{available or 'none'}). {fix}"
        )
    else:
        lower = _or(_exceeded(options, [largest_offer(q, env) for q in eligible]))
        if any(not q.is_fargate for q in eligible):
            fix = f"Lower {lower}, or add a larger instance type to one of these queues."
        else:
            fix = f"Lower {lower}, or {_platform_fix(options, 'FARGATE')} to run on EC2."
        message = (
            f"{where}: {describe_request(options)} fits no queue that could run it. "
            f"The largest request each takes:\n{offer_table(fits, env, options)}\n{fix}"
        )
    return Route(
        step=options.step,
        queue=None,
        queue_id=None,
        platform=platform,
        instance_types=(),
        reason="",
        verdict=message,
    )


def check_anywhere(options: BatchOptions, env: EnvironmentDescriptor | None = None) -> str:
    """``""`` when some instance type AWS Batch can run (the shipped catalog, plus the
    environment's own types) or a Fargate size can hold the request on the platform its
    options need, else the refusal. Needs no queue: the check made without an environment,
    or for a queue outside it.
    """
    capacities = list(catalog().values()) + list(env.instance_types.values() if env else [])
    platform = implied_platform(options)
    accelerated = accelerator_of(options) != "none"
    if platform != "EC2" and not accelerated and fargate_size(options.cpu, options.memory):
        return ""
    if platform != "FARGATE" and any(_offers(c, options) for c in capacities):
        return ""
    where = _where(options)
    if platform == "FARGATE":
        cpu, mib = FARGATE_SIZES[-1]
        key = "cpu" if options.cpu > cpu else "memory"
        whole = dataclasses.replace(options, cpu=math.ceil(options.cpu))
        on_ec2 = any(_offers(c, whole) for c in capacities)
        return str(
            InvalidValue(
                where=where,
                key=key,
                value=getattr(options, key),
                problem=f"exceeds Fargate's largest size ({vcpu_text(cpu)} vCPU / {mib} MiB), "
                f"and {_and(platform_keys(options)['FARGATE'])} "
                f"{'runs' if len(platform_keys(options)['FARGATE']) == 1 else 'run'} on "
                "Fargate only",
                fix=f"Lower {key} to at most {vcpu_text(cpu) if key == 'cpu' else mib}"
                + (f", or {_platform_fix(options, 'FARGATE')} to run on EC2." if on_ec2 else "."),
            )
        )
    for key, attribute in _DIMENSIONS:
        # What a job can have of an instance type: its memory after the overhead.
        attribute = "job_memory_mib" if attribute == "memory_mib" else attribute
        best = max(capacities, key=lambda c: getattr(c, attribute))
        most = getattr(best, attribute)
        if getattr(options, key) > most:
            return str(
                InvalidValue(
                    where=where,
                    key=key,
                    value=getattr(options, key),
                    problem=f"is more than any EC2 instance type AWS Batch runs offers a job "
                    f"(at most {most}{' MiB' if key == 'memory' else ''}, on {best.name})",
                    fix=f"Lower {key} to at most {most}.",
                )
            )
    return (
        f"{where}: no EC2 instance type AWS Batch runs offers {describe_request(options)} "
        f"at once. Lower {_or(_exceeded(options, []))}."
    )
