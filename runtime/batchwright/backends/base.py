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
from typing import Any

from batchwright.events import EventSink, ignore_events


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
    """Everything needed to start one attempt of one task (the task entrypoint's inputs)."""

    flow_name: str
    flow_file: str
    step: str
    run_id: str
    task_id: str
    datastore_root: str
    input_paths: tuple[str, ...]
    attempt: int = 0
    max_retries: int = 0
    split_index: int | None = None
    origin_run_id: str | None = None
    with_options: tuple[str, ...] = ()
    group: FanOut | None = None
    #: The step's decorators after validation (a backend reads e.g. @resources / @batch).
    decorators: tuple[Any, ...] = field(default=(), compare=False, hash=False)

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        return f"{self.flow_name}/{self.run_id}/{self.step}/{self.task_id}"

    def entrypoint_arguments(self) -> list[str]:
        """Arguments after ``python -m batchwright.task`` (contract 3)."""
        from batchwright.task import command_arguments

        return command_arguments(
            flow_file=self.flow_file,
            flow=self.flow_name,
            step=self.step,
            run_id=self.run_id,
            task_id=self.task_id,
            datastore_root=self.datastore_root,
            input_paths=self.input_paths,
            split_index=self.split_index,
            retry_count=self.attempt,
            max_retries=self.max_retries,
            origin_run_id=self.origin_run_id,
            with_options=self.with_options,
        )

    def decorator(self, name: str) -> Any | None:
        """The step's decorator called ``name``, if any."""
        return next((d for d in self.decorators if getattr(d, "name", None) == name), None)


def array_entrypoint_arguments(tasks: Sequence[TaskSpec], array_index_variable: str) -> list[str]:
    """One entrypoint command for several members of one fan-out (an array job).

    Each member finds its task id and split index through ``array_index_variable`` (for
    AWS Batch, ``AWS_BATCH_JOB_ARRAY_INDEX``). All tasks must share step, attempt and
    inputs, as the members of one :class:`FanOut` batch from the scheduler do.
    """
    from batchwright.task import array_command_arguments

    first = tasks[0]
    for task in tasks[1:]:
        if (task.step, task.attempt, task.input_paths) != (
            first.step,
            first.attempt,
            first.input_paths,
        ):
            raise ValueError("array members must share step, attempt and input paths")
    return array_command_arguments(
        [(t.task_id, t.split_index if t.split_index is not None else 0) for t in tasks],
        array_index_variable=array_index_variable,
        flow_file=first.flow_file,
        flow=first.flow_name,
        step=first.step,
        run_id=first.run_id,
        datastore_root=first.datastore_root,
        input_paths=first.input_paths,
        retry_count=first.attempt,
        max_retries=first.max_retries,
        origin_run_id=first.origin_run_id,
        with_options=first.with_options,
    )


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


@dataclass
class BackendOptions:
    """What a backend factory receives (one object, so new settings do not break callers)."""

    flow_name: str
    run_id: str
    datastore_root: str
    on_event: EventSink = ignore_events
    #: Settings of later options (e.g. ``--environment``), by name.
    extras: dict[str, Any] = field(default_factory=dict)


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
