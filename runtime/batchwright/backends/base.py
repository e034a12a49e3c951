"""The execution backend interface: three verbs, ``submit``, ``poll`` and ``terminate``.

The scheduler owns everything else (concurrency, polling cadence, retries, interrupts,
resume). A backend only starts task attempts, reports their status, and stops them.

- ``submit(tasks) -> handles``: start attempts. ``tasks`` is one task, or several ready
  tasks of the same foreach fan-out (same step, same :attr:`TaskSpec.group`), so a
  backend may submit them as one array job. Returns one handle per task, in order.
- ``poll(handles) -> statuses``: one status per handle, in order, for a whole batch of
  handles at once (an AWS backend asks DescribeJobs about 100 ids per call).
- ``terminate(handles)``: stop attempts (interrupts, scheduler-side timeouts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from batchwright.entrypoint import TaskArguments
from batchwright.events import EventSink, ignore_events
from batchwright.policy import StepPolicy


@dataclass(frozen=True)
class FanOut:
    """Identifies the foreach fan-out a task belongs to (for array-job submission)."""

    #: ``step/task_id`` of the foreach task that fanned out.
    parent: str
    #: The step every member runs.
    step: str
    size: int


@dataclass(frozen=True)
class TaskSpec:
    """One attempt of one task: the entrypoint's arguments, the step's policy and, for a
    foreach member, its fan-out."""

    arguments: TaskArguments
    policy: StepPolicy = field(compare=False)
    group: FanOut | None = None

    @property
    def step(self) -> str:
        """The step's name."""
        return self.arguments.step

    @property
    def task_id(self) -> str:
        """The task's id within the run."""
        return self.arguments.task_id

    @property
    def attempt(self) -> int:
        """0 for the first attempt, then 1, 2... (``@retry``)."""
        return self.arguments.retry_count

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        return self.arguments.pathspec


@dataclass(frozen=True)
class TaskHandle:
    """What ``submit`` returns: the backend's id for one attempt, and the attempt."""

    backend: str
    id: str
    task: TaskSpec


@dataclass(frozen=True)
class TaskStatus:
    """The state of one attempt: running, succeeded, or failed with a reason."""

    state: str
    reason: str = ""
    exit_code: int | None = None
    #: False when the backend knows a retry cannot help (e.g. image pull refused).
    retryable: bool = True

    @classmethod
    def running(cls) -> TaskStatus:
        """Still queued or running."""
        return cls("running")

    @classmethod
    def succeeded(cls) -> TaskStatus:
        """Finished with the done marker written."""
        return cls("succeeded", exit_code=0)

    @classmethod
    def failed(
        cls, reason: str, exit_code: int | None = None, *, retryable: bool = True
    ) -> TaskStatus:
        """Finished without success."""
        return cls("failed", reason, exit_code, retryable)

    @property
    def is_finished(self) -> bool:
        """True once the attempt ended, either way."""
        return self.state != "running"


@dataclass(frozen=True)
class BackendOptions:
    """What a backend factory receives (one object, so new settings do not break callers).

    Per-step settings are not here: each task carries its step's policy.
    """

    flow_name: str
    run_id: str
    datastore_root: str
    on_event: EventSink = ignore_events


class Backend(ABC):
    """Where task attempts run."""

    #: The name the chooser and ``TaskHandle.backend`` use.
    name: str = ""
    #: Seconds the scheduler waits between polls when nothing changed.
    poll_interval: float = 1.0

    @abstractmethod
    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        """Start one attempt per task; one handle per task, in order."""

    @abstractmethod
    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        """The status of each handle, in order."""

    @abstractmethod
    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        """Stop these attempts; return once they are stopped or asked to stop."""
