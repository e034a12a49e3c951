"""Routing and the pre-flight fit check: which queue of an environment runs a step.

Pure functions over an :class:`EnvironmentDescriptor` and a step's checked
:class:`BatchOptions`. A step is routed, among the queues that can run it, to:

1. the platform its options imply (an option limited to one platform in the option
   table, e.g. ``ephemeral_storage`` -> Fargate, ``gpu`` or ``privileged`` -> EC2;
   :func:`~batchwright.batch.platforms.implied_platform`), otherwise EC2 before Fargate;
2. a queue of its accelerator kind only: Neuron queues for ``inferentia``/``trainium``,
   EFA queues for ``efa``, GPU queues for ``gpu``, and plain queues otherwise;
3. Spot before on-demand when the step has ``@retry`` (on-demand before Spot otherwise);
4. the queue whose smallest fitting instance is smallest.

A request *fits* a queue when some instance type of its compute environments offers the
vCPUs, the memory left after the platform overhead and the ECS agent's reserve, the GPUs,
Neuron devices and EFA interfaces asked for, within the environment's max vCPUs — or, on
Fargate, when a valid vCPU/memory pair holds it. A step that fits nowhere is refused with
the largest request that would fit and the queues that could take it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import FARGATE_SIZES, fargate_size, implied_platform
from batchwright.environment.descriptor import EnvironmentDescriptor, QueueDescription
from batchwright.environment.instances import InstanceCapacity


@dataclass(frozen=True)
class Fit:
    """How a request fits one queue."""

    queue: QueueDescription
    #: Instance types that can hold the request, smallest first (Fargate: the size used).
    instance_types: tuple[str, ...]
    #: Why it does not fit, when ``instance_types`` is empty.
    problem: str = ""

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
    """The accelerator kind a step needs: ``neuron``, ``efa``, ``gpu`` or ``none``."""
    if options.inferentia > 0:
        return "neuron"
    if options.efa > 0:
        return "efa"
    if options.gpu > 0:
        return "gpu"
    return "none"


def _offers(capacity: InstanceCapacity, options: BatchOptions) -> bool:
    return (
        options.cpu <= capacity.vcpus
        and options.memory <= capacity.job_memory_mib
        and options.gpu <= capacity.gpus
        and options.inferentia <= capacity.neuron_devices
        and options.efa <= capacity.efa_interfaces
    )


def _describe(options: BatchOptions) -> str:
    parts = [f"{options.cpu:g} vCPU", f"{options.memory} MiB"]
    if options.gpu:
        parts.append(f"{options.gpu} GPU")
    if options.inferentia:
        parts.append(f"{options.inferentia} Neuron devices")
    if options.efa:
        parts.append(f"{options.efa} EFA interfaces")
    return " / ".join(parts)


def fit(options: BatchOptions, queue: QueueDescription, env: EnvironmentDescriptor) -> Fit:
    """Whether (and on which instance types) ``options`` fits ``queue``."""
    if queue.is_fargate:
        size = fargate_size(options.cpu, options.memory)
        if size is None:
            cpu, mib = FARGATE_SIZES[-1]
            return Fit(queue, (), f"Fargate's largest size is {cpu:g} vCPU / {mib} MiB")
        if options.gpu or options.inferentia or options.efa:
            return Fit(queue, (), "Fargate has no GPUs, Neuron devices or EFA")
        return Fit(queue, (f"fargate:{size[0]:g}vcpu-{size[1]}mib",))
    if options.efa and queue.is_spot:
        return Fit(
            queue,
            (),
            f"queue '{queue.key}' is a Spot queue, and EFA jobs run on on-demand EC2 only",
        )
    candidates: list[InstanceCapacity] = []
    unknown: list[str] = []
    for ce in queue.compute_environments:
        if options.cpu > ce.max_vcpus:
            continue
        for name in ce.instance_types:
            capacity = env.capacity(name)
            if capacity is None:
                unknown.append(name)
            elif _offers(capacity, options) and capacity not in candidates:
                candidates.append(capacity)
    if candidates:
        candidates.sort(key=lambda c: (c.vcpus, c.memory_mib, c.gpus, c.name))
        return Fit(queue, tuple(c.name for c in candidates))
    largest = largest_request(queue, env)
    problem = f"no instance type of queue '{queue.key}' offers {_describe(options)}"
    if largest:
        problem += f" (the most it offers is {largest})"
    if unknown:
        problem += f"; capacities unknown for {', '.join(sorted(set(unknown)))}"
    return Fit(queue, (), problem)


def largest_request(queue: QueueDescription, env: EnvironmentDescriptor) -> str:
    """The largest request that fits ``queue``, in words (for refusals)."""
    if queue.is_fargate:
        cpu, mib = FARGATE_SIZES[-1]
        return f"{cpu:g} vCPU / {mib} MiB on Fargate"
    best: InstanceCapacity | None = None
    for ce in queue.compute_environments:
        for name in ce.instance_types:
            capacity = env.capacity(name)
            if capacity and (
                best is None
                or (capacity.job_memory_mib, capacity.vcpus)
                > (
                    best.job_memory_mib,
                    best.vcpus,
                )
            ):
                best = capacity
    if best is None:
        return ""
    text = f"{best.vcpus} vCPU / {best.job_memory_mib} MiB"
    extras = [
        f"{n} {what}"
        for n, what in (
            (best.gpus, "GPU"),
            (best.neuron_devices, "Neuron devices"),
            (best.efa_interfaces, "EFA interfaces"),
        )
        if n
    ]
    return f"{text}{' / ' + ' / '.join(extras) if extras else ''} on {best.name}"


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


def route(
    options: BatchOptions,
    env: EnvironmentDescriptor,
    *,
    has_retry: bool = False,
) -> Route:
    """Chooses the queue of ``env`` for a step, or refuses it with a reason."""
    step = options.step
    if options.queue is not None:
        return _explicit(options, env)
    platform = implied_platform(options)
    accelerator = accelerator_of(options)
    eligible = [
        q
        for q in env.queues
        if q.accelerator == accelerator
        and (platform is None or (platform == "FARGATE") == q.is_fargate)
    ]
    fits = [fit(options, q, env) for q in eligible]
    fitting = [f for f in fits if f.fits]
    if not fitting:
        return _refuse(options, env, eligible, fits, platform, accelerator)
    best = min(fitting, key=lambda f: _rank(f, env, has_retry))
    reasons = []
    if platform:
        reasons.append(f"its options need {platform}")
    if accelerator != "none":
        reasons.append(f"it asks for {accelerator}")
    if best.queue.is_spot and has_retry:
        reasons.append("it has @retry, so Spot is preferred")
    elif not best.queue.is_spot and len(fitting) > 1:
        reasons.append("on-demand preferred without @retry")
    if not best.queue.is_fargate:
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


def _explicit(options: BatchOptions, env: EnvironmentDescriptor) -> Route:
    assert options.queue is not None
    queue = env.queue(options.queue)
    if queue is None:
        # A queue outside the environment: the user knows it; nothing to check it against.
        return Route(
            step=options.step,
            queue=None,
            queue_id=options.queue,
            platform=None,
            instance_types=(),
            reason="named by @batch(queue=...); not part of the environment, so not checked",
            verdict="ok",
        )
    result = fit(options, queue, env)
    verdict = "ok"
    if not result.fits:
        others = [q.key for q in env.queues if q is not queue and fit(options, q, env).fits]
        verdict = (
            f"step '{options.step}', @batch: queue={options.queue!r} can never run it: "
            f"{result.problem}. "
            + (
                f"Queues that could take it: {', '.join(others)}; drop queue= to let "
                "batchwright route it."
                if others
                else f"Ask for at most {largest_request(queue, env)}."
            )
        )
    return Route(
        step=options.step,
        queue=queue,
        queue_id=queue.arn,
        platform=queue.platform,
        instance_types=result.instance_types,
        reason="named by @batch(queue=...)",
        verdict=verdict,
    )


def _refuse(
    options: BatchOptions,
    env: EnvironmentDescriptor,
    eligible: Sequence[QueueDescription],
    fits: Sequence[Fit],
    platform: str | None,
    accelerator: str,
) -> Route:
    step = options.step
    wanted = []
    if accelerator != "none":
        wanted.append(f"{accelerator} queue")
    if platform:
        wanted.append(f"{platform} queue")
    if not eligible:
        kinds = " and ".join(wanted) or "queue"
        available = ", ".join(f"{q.key} ({q.platform}, {q.accelerator})" for q in env.queues)
        message = (
            f"step '{step}', @batch: needs a {kinds}, and environment '{env.name}' has none "
            f"(it has: {available or 'no queues'}). Add such a queue to the environment, or "
            "change the step's options."
        )
    else:
        problems = "; ".join(f.problem for f in fits)
        largest = [
            f"{q.key}: {largest_request(q, env)}" for q in eligible if largest_request(q, env)
        ]
        message = (
            f"step '{step}', @batch: {_describe(options)} fits no queue that could run it "
            f"({problems}). The most each can take — {'; '.join(largest)}. Lower cpu/memory "
            "or add a larger instance type to a queue."
        )
    return Route(
        step=step,
        queue=None,
        queue_id=None,
        platform=platform,
        instance_types=(),
        reason="",
        verdict=message,
    )
