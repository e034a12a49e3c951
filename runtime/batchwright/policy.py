"""What the plan decided for each step, as the scheduler and the backends receive it.

A :class:`StepPolicy` is decided once per step by :func:`batchwright.plan.make_plan`
from the step's decorators, the command line and the environment. The scheduler reads
its retries and timeout, and the backend named by :attr:`StepPolicy.backend` reads its
job settings. Nobody downstream of the plan looks at decorators or command-line
arguments again.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget


@dataclass(frozen=True)
class BatchJobPolicy:
    """How the AWS Batch backend submits a step: its checked options and its queue."""

    options: BatchOptions
    target: QueueTarget


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
    #: The job settings, for steps the AWS Batch backend runs.
    batch: BatchJobPolicy | None = None

    @property
    def batch_timeout_seconds(self) -> int | None:
        """The timeout in the whole seconds AWS Batch takes."""
        return None if self.timeout_seconds is None else int(self.timeout_seconds)
