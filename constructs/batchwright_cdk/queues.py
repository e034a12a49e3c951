"""What a user asks for: queue specs built from compute environment specs, with presets.

A :class:`QueueSpec` is plain data, checked when it is created; :class:`BatchEnvironment`
turns it into CloudFormation. Presets (``QueueSpec.on_demand``, ``.spot``, ``.gpu``,
``.trainium_efa`` ...) name the common kinds so a stack reads like the list of queues it
offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from batchwright.batch.platforms import FARGATE_PLATFORMS, SPOT_PLATFORMS, Platform
from batchwright.environment.descriptor import Accelerator
from batchwright_cdk.validation import check_compute_environment, check_queue

#: Max vCPUs of a compute environment when none is given (the aws_batch L2 default).
DEFAULT_MAX_VCPUS = 256
#: Instance types of an EC2 compute environment when none are given: Batch's current
#: x86_64 default bundle (m6i, c6i, r6i, c7i), named explicitly so that the L2's
#: ``optimal`` is never appended behind the user's back.
DEFAULT_INSTANCE_TYPES: tuple[str, ...] = ("default_x86_64",)
#: Root volume of EC2 instances (GiB): the size of the ECS-optimized AL2023 AMI's snapshot.
DEFAULT_ROOT_VOLUME_GIB = 30
#: Root volume of GPU, Neuron and EFA instances (GiB): their framework images are large.
ACCELERATED_ROOT_VOLUME_GIB = 100
#: GPU types when a GPU queue names none: NVIDIA A10G (g5), a good price/performance start.
DEFAULT_GPU_INSTANCE_TYPES: tuple[str, ...] = ("g5",)
#: Neuron types when a Neuron queue names none: Inferentia2.
DEFAULT_NEURON_INSTANCE_TYPES: tuple[str, ...] = ("inf2",)
#: EFA types when an EFA queue names none: the network-optimized c5n at its EFA size.
DEFAULT_EFA_INSTANCE_TYPES: tuple[str, ...] = ("c5n.18xlarge",)
#: Trainium types of a Trainium EFA queue when it names none (8 EFA network cards).
DEFAULT_TRAINIUM_EFA_INSTANCE_TYPES: tuple[str, ...] = ("trn1.32xlarge",)
#: GPU types of a GPU EFA queue when it names none: 8 A100s and 4 EFA network cards.
DEFAULT_GPU_EFA_INSTANCE_TYPES: tuple[str, ...] = ("p4d.24xlarge",)
#: Max vCPUs of the EFA presets: two nodes of their default types (trn1.32xlarge has 128
#: vCPUs, p4d.24xlarge 96), the smallest multi-node job.
DEFAULT_EFA_MAX_VCPUS = 256


@dataclass(frozen=True, kw_only=True)
class ComputeEnvironmentSpec:
    """One compute environment of a queue.

    Args:
        platform: ``EC2`` (on-demand), ``SPOT``, ``FARGATE`` or ``FARGATE_SPOT``.
        accelerator: ``none``, ``gpu`` (NVIDIA AMI), ``neuron`` (Neuron AMI through an
            image override) or ``efa`` (a CPU environment with EFA: the same as
            ``efa=True`` without another accelerator).
        efa: Give the instances an EFA interface on every network card (launch template),
            a cluster placement group, one private or isolated subnet and the EFA
            security group; on-demand ``EC2`` only, every instance type EFA-capable.
            Combines with ``gpu`` and ``neuron``. ``accelerator="efa"`` implies it, and
            ``efa=True`` with no accelerator is ``accelerator="efa"``.
        instance_types: EC2 only. Concrete sizes (``c5.xlarge``), classes (``c5``) or
            Batch keywords (``default_x86_64``, ``default_arm64``). Empty means
            :data:`DEFAULT_INSTANCE_TYPES`. Must stay empty for Fargate.
        max_vcpus: Upper bound of the environment; defaults to :data:`DEFAULT_MAX_VCPUS`.
        min_vcpus: Capacity kept running; 0 (the default) scales to zero when idle.
        root_volume_gib: EC2 only: size of each instance's encrypted root volume (image
            layers and container scratch space live there). Omitted: 30 GiB, or 100 GiB
            for GPU, Neuron and EFA environments, whose images are large.

    Raises:
        EnvironmentConfigError: on a contradiction (Fargate with instance types, EFA on
            Spot or Fargate, min above max ...).
    """

    platform: Platform = "EC2"
    accelerator: Accelerator = "none"
    efa: bool = False
    instance_types: tuple[str, ...] = ()
    max_vcpus: int = DEFAULT_MAX_VCPUS
    min_vcpus: int = 0
    root_volume_gib: int | None = None

    def __post_init__(self) -> None:
        # Accept any sequence (lists read naturally at call sites) but store a tuple.
        object.__setattr__(self, "instance_types", tuple(self.instance_types))
        # One spelling per meaning: an EFA-only environment is accelerator "efa" with efa
        # set, whichever of the two the caller wrote.
        if self.accelerator == "efa":
            object.__setattr__(self, "efa", True)
        elif self.efa and self.accelerator == "none":
            object.__setattr__(self, "accelerator", "efa")
        check_compute_environment(self, f"ComputeEnvironmentSpec({self.platform})")

    @property
    def is_fargate(self) -> bool:
        """Whether this is a Fargate or Fargate Spot environment."""
        return self.platform in FARGATE_PLATFORMS

    @property
    def is_spot(self) -> bool:
        """Whether the environment runs on Spot capacity."""
        return self.platform in SPOT_PLATFORMS

    @property
    def effective_root_volume_gib(self) -> int:
        """The root volume size the environment's instances get (defaults applied)."""
        if self.root_volume_gib is not None:
            return self.root_volume_gib
        return (
            DEFAULT_ROOT_VOLUME_GIB if self.accelerator == "none" else ACCELERATED_ROOT_VOLUME_GIB
        )

    @property
    def effective_instance_types(self) -> tuple[str, ...]:
        """The instance types the environment is created with (defaults applied)."""
        if self.is_fargate:
            return ()
        return self.instance_types or DEFAULT_INSTANCE_TYPES


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """One job queue: a key, and one to three compute environments tried in order.

    Args:
        key: The queue's id in the construct tree and its key in the environment
            descriptor (``@batch(queue="gpu")`` routes by it).
        compute_environments: One to three specs of one platform family (EC2/SPOT or
            FARGATE/FARGATE_SPOT), in the order Batch tries them.
        priority: Job queue priority (higher is scheduled first when queues share
            compute environments); defaults to 1.
        runnable_timeout_seconds: Cancel a job that has waited this long in RUNNABLE
            because no compute environment can ever place it (its resource request is too
            big, the environment's max vCPUs is too small, or capacity is unavailable);
            600 to 86,400. Omitted: such jobs wait until cancelled by hand.

    Raises:
        EnvironmentConfigError: for a bad key, more than three environments, EC2 and
            Fargate mixed in one queue, or a timeout out of range.
    """

    key: str
    compute_environments: tuple[ComputeEnvironmentSpec, ...]
    priority: int = 1
    runnable_timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "compute_environments", tuple(self.compute_environments))
        check_queue(self)

    @property
    def platform(self) -> Platform:
        """The platform of the first compute environment (the queue's first choice)."""
        return self.compute_environments[0].platform

    @property
    def accelerator(self) -> Accelerator:
        """The accelerator of the first non-``none`` environment, else ``none``."""
        for ce in self.compute_environments:
            if ce.accelerator != "none":
                return ce.accelerator
        return "none"

    @property
    def has_efa(self) -> bool:
        """Whether the queue's instances have EFA interfaces (all of its environments do;
        a queue cannot mix EFA and non-EFA environments)."""
        return all(ce.efa for ce in self.compute_environments)

    @property
    def multi_node(self) -> bool:
        """Whether the queue's compute environments can run multi-node parallel jobs: all
        of them EC2 on-demand (AWS Batch runs such jobs on neither Spot nor Fargate).

        That is half of it: the jobs' network interfaces get no public IP, so they also
        need private or isolated subnets, which only the environment knows. The
        descriptor's ``multi_node`` is both halves
        (:meth:`~batchwright_cdk.environment.BatchEnvironment.supports_multi_node`).
        """
        return all(ce.platform == "EC2" for ce in self.compute_environments)

    def with_runnable_timeout(self, seconds: int) -> QueueSpec:
        """This spec with ``runnable_timeout_seconds`` set (presets take no such argument)."""
        return replace(self, runnable_timeout_seconds=seconds)

    # --- presets --------------------------------------------------------------------

    @classmethod
    def on_demand(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = (),
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        min_vcpus: int = 0,
        priority: int = 1,
    ) -> QueueSpec:
        """EC2 on-demand (BEST_FIT_PROGRESSIVE); default instance types when none given."""
        ce = ComputeEnvironmentSpec(
            platform="EC2",
            instance_types=tuple(instance_types),
            max_vcpus=max_vcpus,
            min_vcpus=min_vcpus,
        )
        return cls(key=key, compute_environments=(ce,), priority=priority)

    @classmethod
    def spot(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = (),
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        priority: int = 1,
    ) -> QueueSpec:
        """EC2 Spot (SPOT_PRICE_CAPACITY_OPTIMIZED, no Spot Fleet role needed)."""
        ce = ComputeEnvironmentSpec(
            platform="SPOT", instance_types=tuple(instance_types), max_vcpus=max_vcpus
        )
        return cls(key=key, compute_environments=(ce,), priority=priority)

    @classmethod
    def spot_with_fallback(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = (),
        spot_max_vcpus: int = DEFAULT_MAX_VCPUS,
        on_demand_max_vcpus: int = DEFAULT_MAX_VCPUS,
        priority: int = 1,
    ) -> QueueSpec:
        """Spot first; Batch falls back to on-demand when the Spot environment is full."""
        types = tuple(instance_types)
        return cls(
            key=key,
            compute_environments=(
                ComputeEnvironmentSpec(
                    platform="SPOT", instance_types=types, max_vcpus=spot_max_vcpus
                ),
                ComputeEnvironmentSpec(
                    platform="EC2", instance_types=types, max_vcpus=on_demand_max_vcpus
                ),
            ),
            priority=priority,
        )

    @classmethod
    def fargate(
        cls, key: str, *, max_vcpus: int = DEFAULT_MAX_VCPUS, priority: int = 1
    ) -> QueueSpec:
        """Fargate (no instances to manage; no GPUs, no multi-node)."""
        ce = ComputeEnvironmentSpec(platform="FARGATE", max_vcpus=max_vcpus)
        return cls(key=key, compute_environments=(ce,), priority=priority)

    @classmethod
    def fargate_spot(
        cls,
        key: str,
        *,
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        fallback_to_fargate: bool = False,
        priority: int = 1,
    ) -> QueueSpec:
        """Fargate Spot, optionally falling back to regular Fargate."""
        ces = [ComputeEnvironmentSpec(platform="FARGATE_SPOT", max_vcpus=max_vcpus)]
        if fallback_to_fargate:
            ces.append(ComputeEnvironmentSpec(platform="FARGATE", max_vcpus=max_vcpus))
        return cls(key=key, compute_environments=tuple(ces), priority=priority)

    @classmethod
    def gpu(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = DEFAULT_GPU_INSTANCE_TYPES,
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        spot: bool = False,
        priority: int = 1,
    ) -> QueueSpec:
        """NVIDIA GPU instances on the ECS AL2023 NVIDIA AMI (on-demand unless ``spot``)."""
        return cls._accelerated(key, "gpu", instance_types, max_vcpus, priority, spot=spot)

    @classmethod
    def neuron(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = DEFAULT_NEURON_INSTANCE_TYPES,
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        spot: bool = False,
        priority: int = 1,
    ) -> QueueSpec:
        """Inferentia/Trainium instances on the ECS AL2023 Neuron AMI (image override)."""
        return cls._accelerated(key, "neuron", instance_types, max_vcpus, priority, spot=spot)

    @classmethod
    def efa(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = DEFAULT_EFA_INSTANCE_TYPES,
        max_vcpus: int = DEFAULT_MAX_VCPUS,
        priority: int = 1,
    ) -> QueueSpec:
        """EFA-enabled on-demand CPU instances for tightly coupled multi-node jobs."""
        return cls._accelerated(key, "efa", instance_types, max_vcpus, priority)

    @classmethod
    def trainium_efa(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = DEFAULT_TRAINIUM_EFA_INSTANCE_TYPES,
        max_vcpus: int = DEFAULT_EFA_MAX_VCPUS,
        priority: int = 1,
    ) -> QueueSpec:
        """Trainium on the ECS AL2023 Neuron AMI with an EFA interface on every network
        card (trn1.32xlarge: 8, trn1n.32xlarge: 16), on-demand, for multi-node training.
        ``max_vcpus`` defaults to two trn1.32xlarge nodes."""
        return cls._accelerated(key, "neuron", instance_types, max_vcpus, priority, efa=True)

    @classmethod
    def gpu_efa(
        cls,
        key: str,
        *,
        instance_types: Sequence[str] = DEFAULT_GPU_EFA_INSTANCE_TYPES,
        max_vcpus: int = DEFAULT_EFA_MAX_VCPUS,
        priority: int = 1,
    ) -> QueueSpec:
        """NVIDIA GPUs on the ECS AL2023 NVIDIA AMI with an EFA interface on every network
        card (p4d.24xlarge: 4, p5.48xlarge: 32), on-demand, for multi-node training.
        ``max_vcpus`` defaults to two p4d.24xlarge nodes (96 vCPUs each)."""
        return cls._accelerated(key, "gpu", instance_types, max_vcpus, priority, efa=True)

    @classmethod
    def _accelerated(
        cls,
        key: str,
        accelerator: Accelerator,
        instance_types: Sequence[str],
        max_vcpus: int,
        priority: int,
        *,
        spot: bool = False,
        efa: bool = False,
    ) -> QueueSpec:
        """The one shape of the accelerated presets: a queue over one on-demand (or, with
        ``spot``, Spot) compute environment of that accelerator (with EFA when ``efa``)."""
        platform: Platform = "SPOT" if spot else "EC2"
        ce = ComputeEnvironmentSpec(
            platform=platform,
            accelerator=accelerator,
            efa=efa,
            instance_types=tuple(instance_types),
            max_vcpus=max_vcpus,
        )
        return cls(key=key, compute_environments=(ce,), priority=priority)
