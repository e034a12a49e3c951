"""Platform rules: what each AWS Batch platform can run, and the queue a step targets.

Pure and standard-library only, so the environment descriptor, the router, the job spec
and the construct library all share one vocabulary:

- the four platforms a compute environment runs on (:data:`PLATFORMS`), and which of them
  are Fargate or Spot;
- which ``@batch`` options exist on one platform only (read from the option table,
  :data:`batchwright.batch.options.OPTIONS`): :func:`implied_platform` routes by them and
  :func:`check_platform` refuses them elsewhere;
- Fargate's valid vCPU/memory sizes and the rounding of a request onto them
  (:func:`resolve_resources`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from batchwright.batch.options import FARGATE_LOG_DRIVERS, BatchOptions, PlatformKind
from batchwright.errors import InvalidValue

Platform = Literal["EC2", "SPOT", "FARGATE", "FARGATE_SPOT"]
PLATFORMS: tuple[Platform, ...] = ("EC2", "SPOT", "FARGATE", "FARGATE_SPOT")
#: Platforms whose jobs run on Fargate (the job definition's platform is FARGATE).
FARGATE_PLATFORMS: frozenset[str] = frozenset({"FARGATE", "FARGATE_SPOT"})
#: Platforms whose capacity is Spot (interruptible).
SPOT_PLATFORMS: frozenset[str] = frozenset({"SPOT", "FARGATE_SPOT"})

#: Fargate's valid (vCPU, MiB) sizes, smallest first.
FARGATE_SIZES: tuple[tuple[float, int], ...] = (
    *((0.25, m) for m in (512, 1024, 2048)),
    *((0.5, m) for m in range(1024, 4096 + 1, 1024)),
    *((1, m) for m in range(2048, 8192 + 1, 1024)),
    *((2, m) for m in range(4096, 16384 + 1, 1024)),
    *((4, m) for m in range(8192, 30720 + 1, 1024)),
    *((8, m) for m in range(16384, 61440 + 1, 4096)),
    *((16, m) for m in range(32768, 122880 + 1, 8192)),
)


def kind_of(platform: str) -> PlatformKind:
    """The job-definition platform (``FARGATE`` or ``EC2``) of a compute platform."""
    return "FARGATE" if platform in FARGATE_PLATFORMS else "EC2"


@dataclass(frozen=True)
class QueueTarget:
    """The queue a step's jobs go to, and the environment's defaults for them.

    Only ``queue`` and ``platform`` are needed; the rest comes from the environment
    descriptor when there is one (:func:`batchwright.plan.queue_target`).
    """

    #: Queue name or ARN, as SubmitJob takes it.
    queue: str
    platform: Platform
    #: Job role used when the step names no ``iam_role``.
    job_role_arn: str | None = None
    #: Execution role used when the step names no ``execution_role`` and its jobs need
    #: one: on Fargate, and wherever the step has ``secrets`` (ECS fetches them with it).
    execution_role_arn: str | None = None
    #: Image used when the step names none.
    default_image: str | None = None
    #: Log group for the awslogs driver when the step names no ``log_driver``.
    log_group: str | None = None
    region: str | None = None
    #: The queue's key in the environment, when it is one of the environment's queues.
    key: str | None = None
    #: Fargate only: whether jobs get a public IP (``assignPublicIp``), as the
    #: environment's descriptor says of the queue's Fargate compute environments
    #: (:attr:`~batchwright.environment.descriptor.QueueDescription.assign_public_ip`).
    #: True where nothing says otherwise (a queue outside the environment): a job in a
    #: public subnet without one cannot pull its image, while one it does not need costs
    #: nothing.
    assign_public_ip: bool = True

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {PLATFORMS}, got {self.platform!r}")
        if not self.queue:
            raise ValueError("queue must not be empty")

    @property
    def is_fargate(self) -> bool:
        """Whether jobs on this queue run on Fargate or Fargate Spot."""
        return self.platform in FARGATE_PLATFORMS

    @property
    def label(self) -> str:
        """How messages name the queue: its key in the environment, else the name or ARN
        the step gave (never a deploy-time placeholder read from ``cdk.out``)."""
        return self.key or self.queue


@dataclass(frozen=True)
class SpecNotice:
    """Something the user should know about a request that was still built (e.g. a
    Fargate size rounded up). The CLI shows these; library code never prints them."""

    step: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"step '{self.step}', @batch: {self.message}"


@dataclass(frozen=True)
class ResourceRequest:
    """The vCPU / memory / GPU values of a submission, as Batch spells them."""

    vcpus: str
    memory: int
    gpu: int
    notices: tuple[SpecNotice, ...] = ()

    def requirements(self) -> list[dict[str, str]]:
        """The ``resourceRequirements`` list (GPU only when asked for)."""
        out = [{"type": "VCPU", "value": self.vcpus}, {"type": "MEMORY", "value": str(self.memory)}]
        if self.gpu:
            out.append({"type": "GPU", "value": str(self.gpu)})
        return out


def platform_keys(options: BatchOptions) -> dict[str, list[str]]:
    """The options that tie a step to one platform, as ``key=value`` texts by platform
    (``{"FARGATE": ["cpu=0.5"], "EC2": []}``): the option table's platform-limited options,
    fractional vCPUs (Fargate only) and log drivers Fargate lacks (EC2 only).
    :meth:`BatchOptions.from_attributes` has already refused a step with both."""
    keys: dict[str, list[str]] = {"FARGATE": [], "EC2": []}
    if not float(options.cpu).is_integer():
        keys["FARGATE"].append(f"cpu={options.cpu!r}")
    for row, value in options.used_options():
        assert row.only_on is not None
        keys[row.only_on].append(f"{options.key(row.name)}={value!r}")
    if options.log_driver is not None and options.log_driver not in FARGATE_LOG_DRIVERS:
        keys["EC2"].append(f"log_driver={options.log_driver!r}")
    return keys


def implied_platform(options: BatchOptions) -> PlatformKind | None:
    """``"FARGATE"``, ``"EC2"`` or ``None``: the platform the step's options need
    (see :func:`platform_keys`; a fractional ``cpu`` needs Fargate)."""
    keys = platform_keys(options)
    if keys["FARGATE"]:
        return "FARGATE"
    return "EC2" if keys["EC2"] else None


def check_platform(options: BatchOptions, target: QueueTarget) -> None:
    """Refuses options that do not exist on the target's platform, and a job that needs an
    execution role (Fargate, ``secrets``) when neither the step nor the environment has one.

    Raises:
        InvalidValue: e.g. ``gpu`` on Fargate or ``ephemeral_storage`` on EC2.
    """
    where = f"{options.location}, @batch"
    kind = kind_of(target.platform)
    for row, value in options.used_options():
        if row.only_on != kind:
            problem = (
                f"is not available on Fargate (queue '{target.label}')"
                if kind == "FARGATE"
                else f"is Fargate only (queue '{target.label}' is {target.platform})"
            )
            raise InvalidValue(
                where=where,
                key=row.name,
                value=value,
                problem=problem,
                fix=row.off_platform_fix.format(key=row.name),
            )
    if kind == "FARGATE":
        if options.log_driver is not None and options.log_driver not in FARGATE_LOG_DRIVERS:
            raise InvalidValue(
                where=where,
                key="log_driver",
                value=options.log_driver,
                problem=f"is not available on Fargate (queue '{target.label}')",
                fix=f"Use one of {', '.join(FARGATE_LOG_DRIVERS)}, or an EC2 queue.",
            )
        if options.execution_role is None and target.execution_role_arn is None:
            raise InvalidValue(
                where=where,
                key="execution_role",
                value=None,
                problem=f"(not given): queue '{target.label}' is on Fargate, which needs an "
                "execution role, and the environment has none",
                fix="Give @batch(execution_role='arn:aws:iam::<account>:role/<name>').",
            )
    elif not float(options.cpu).is_integer():
        raise InvalidValue(
            where=where,
            key="cpu",
            value=options.cpu,
            problem=f"is a fraction; EC2 jobs (queue '{target.label}') take whole vCPUs",
            fix=f"Use cpu={math.ceil(options.cpu)}, or a Fargate queue for fractional vCPUs.",
        )
    # On Fargate the role is required anyway (checked above); on EC2 only secrets need it.
    if options.secrets and options.execution_role is None and target.execution_role_arn is None:
        raise InvalidValue(
            where=where,
            key="execution_role",
            value=None,
            problem=f"(not given): the step has secrets ({', '.join(options.secret_names)}), "
            "which ECS fetches with the job's execution role, and the environment of queue "
            f"'{target.label}' has none",
            fix="Give @batch(execution_role='arn:aws:iam::<account>:role/<name>') with a role "
            "allowed to read the secrets, or drop secrets.",
        )


def vcpu_text(vcpus: float) -> str:
    """vCPUs as Batch's API spells them: ``"2"``, ``"0.25"``."""
    return str(int(vcpus)) if float(vcpus).is_integer() else str(vcpus)


def fargate_size(cpu: float, memory: int) -> tuple[float, int] | None:
    """The smallest valid Fargate size with at least ``cpu`` vCPUs and ``memory`` MiB, or
    ``None`` when the request exceeds the largest size."""
    for vcpus, mib in FARGATE_SIZES:
        if vcpus >= cpu and mib >= memory:
            return vcpus, mib
    return None


def resolve_resources(options: BatchOptions, target: QueueTarget) -> ResourceRequest:
    """The per-task resource values for the target's platform.

    On Fargate a size between valid pairs is rounded up to the next valid pair, with a
    :class:`SpecNotice`; a size beyond the largest pair is refused naming the nearest one.
    """
    if not target.is_fargate:
        return ResourceRequest(vcpu_text(options.cpu), options.memory, options.gpu)
    size = fargate_size(options.cpu, options.memory)
    if size is None:
        largest_cpu, largest_memory = FARGATE_SIZES[-1]
        nearest = fargate_size(min(options.cpu, largest_cpu), min(options.memory, largest_memory))
        assert nearest is not None  # clamped into range, so a size exists
        key = "cpu" if options.cpu > largest_cpu else "memory"
        value = options.cpu if key == "cpu" else options.memory
        raise InvalidValue(
            where=f"{options.location}, @batch",
            key=key,
            value=value,
            problem=(
                f"exceeds Fargate's largest size ({vcpu_text(largest_cpu)} vCPU / "
                f"{largest_memory} MiB) on queue '{target.label}'"
            ),
            fix=(
                f"The nearest valid size is cpu={vcpu_text(nearest[0])}, memory={nearest[1]}; "
                "or use an EC2 queue for larger jobs."
            ),
        )
    vcpus, mib = size
    notices: tuple[SpecNotice, ...] = ()
    if vcpus != options.cpu or mib != options.memory:
        notices = (
            SpecNotice(
                options.step,
                "cpu" if vcpus != options.cpu else "memory",
                f"Fargate has no {vcpu_text(options.cpu)} vCPU / {options.memory} MiB size; "
                f"rounded up to {vcpu_text(vcpus)} vCPU / {mib} MiB.",
            ),
        )
    return ResourceRequest(vcpu_text(vcpus), mib, 0, notices)
