"""What the plan decided for each step, as the scheduler and the backends receive it.

A :class:`StepPolicy` is decided once per step by :func:`batchwright.plan.make_plan`
from the step's decorators, the command line and the environment. The scheduler reads
its retries and timeout, and the backend named by :attr:`StepPolicy.backend` reads its
job settings. Nobody downstream of the plan looks at decorators or command-line
arguments again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.costs import Footprint

#: Spot reclaims of one attempt before it moves to on-demand capacity, by default.
DEFAULT_RECLAIMS_BEFORE_ON_DEMAND = 2


@dataclass(frozen=True)
class BatchJobPolicy:
    """How the AWS Batch backend submits a step: its checked options and its queue, and
    where an attempt goes once Spot capacity keeps being reclaimed under it."""

    options: BatchOptions
    target: QueueTarget
    #: The on-demand queue of the same capabilities (EC2 for a SPOT queue, FARGATE for a
    #: FARGATE_SPOT one), when the target is a Spot queue and the environment has one.
    on_demand: QueueTarget | None = None
    #: After this many reclaims an attempt goes to :attr:`on_demand`.
    reclaims_before_on_demand: int = DEFAULT_RECLAIMS_BEFORE_ON_DEMAND
    #: What one task holds while it runs on :attr:`target` (the plan's smallest fitting
    #: instance type standing in for the one AWS picks), for cost estimates.
    footprint: Footprint | None = None
    #: A parallel step: the instance type every node runs on, pinned in the submission so
    #: that what the plan checked (EFA interfaces, nodes per max vCPUs) holds.
    node_instance_type: str | None = None
    #: A parallel step: the most nodes the queue can run at once on that type (``None``:
    #: unknown, e.g. a queue outside the environment).
    max_nodes: int | None = None

    def footprint_after(self, reclaims: int) -> Footprint | None:
        """:attr:`footprint` on the queue of :meth:`target_after` (its platform, region)."""
        target = self.target_after(reclaims)
        if self.footprint is None or target is self.target:
            return self.footprint
        return replace(self.footprint, platform=target.platform, region=target.region)

    def target_after(self, reclaims: int) -> QueueTarget:
        """The queue of an attempt that lost its Spot capacity ``reclaims`` times."""
        if self.on_demand is not None and reclaims >= self.reclaims_before_on_demand:
            return self.on_demand
        return self.target


@dataclass(frozen=True)
class StepPolicy:
    """Everything the scheduler and a backend need to run one step's tasks."""

    step: str
    #: The backend its tasks run on: ``"local"`` or ``"batch"`` (or a registered one).
    backend: str = "local"
    #: ``@retry(times=...)``: attempts after the first one.
    retries: int = 0
    #: ``@retry(minutes_between_retries=...)``, in seconds.
    retry_delay_seconds: float = 0.0
    #: ``@timeout``, in seconds, or ``None``.
    timeout_seconds: float | None = None
    #: The step has ``@catch``: when its last attempt dies without raising (a signal, an
    #: out-of-memory kill, a lost host), one more attempt runs that only records
    #: ``FailureHandledByCatch`` in ``var`` and goes on, as in Metaflow.
    catch: bool = False
    #: The job settings, for steps the AWS Batch backend runs.
    batch: BatchJobPolicy | None = None

    @property
    def batch_timeout_seconds(self) -> int | None:
        """The timeout in the whole seconds AWS Batch takes."""
        return None if self.timeout_seconds is None else int(self.timeout_seconds)
