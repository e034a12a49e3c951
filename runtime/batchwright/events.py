"""Events the scheduler and backends emit while a run progresses.

Library code never prints: it hands these small values to a callback (an
:data:`EventSink`), and the CLI renders them with :class:`batchwright.console.Console`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RunStarted:
    """A run began (or a resume of ``origin_run_id``)."""

    flow_name: str
    run_id: str
    datastore_root: str
    origin_run_id: str | None = None


@dataclass(frozen=True)
class TaskSubmitted:
    """An attempt of a task was handed to a backend; ``width`` is the size of the fan-out
    it belongs to (1 outside a foreach)."""

    pathspec: str
    attempt: int
    backend: str
    width: int = 1


@dataclass(frozen=True)
class TaskOutput:
    """Lines a running task printed on ``stream`` (stdout or stderr)."""

    pathspec: str
    stream: str
    text: str
    #: The node that printed them, for a node of a parallel step.
    node: int | None = None


@dataclass(frozen=True)
class TaskStatusChanged:
    """A remote attempt moved to a new state (e.g. Batch's RUNNABLE -> RUNNING)."""

    pathspec: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class TaskWaiting:
    """Attempts wait to start: their state, the reason AWS gives and for how long.

    Reported when the state or reason changes and then every few minutes while it
    lasts; ``tasks`` > 1 when the attempts are the children of one array job.
    """

    pathspec: str
    status: str
    queue: str
    reason: str
    waited_seconds: float
    tasks: int = 1


@dataclass(frozen=True)
class ArrayProgress:
    """An array job's children, counted by state, as its parent record has them."""

    #: ``Flow/run/step`` of the fan-out.
    pathspec: str
    job_id: str
    size: int
    #: Children per state (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED).
    counts: Mapping[str, int]


@dataclass(frozen=True)
class Reconnecting:
    """AWS did not answer (or throttled past botocore's retries); the run waits and retries."""

    problem: str
    #: How long AWS has been unreachable so far.
    unreachable_seconds: float


@dataclass(frozen=True)
class Reconnected:
    """AWS answers again after an outage."""

    unreachable_seconds: float


@dataclass(frozen=True)
class TaskSucceeded:
    """An attempt finished successfully."""

    pathspec: str
    attempt: int


@dataclass(frozen=True)
class AttemptFailed:
    """An attempt of a task failed; ``retry_in`` is set when another attempt will follow.

    ``infrastructure`` marks a failure of the capacity, not of the step (a Spot reclaim):
    the attempt is submitted again without using a ``@retry``.
    """

    pathspec: str
    attempt: int
    reason: str
    exit_code: int | None
    retry_in: float | None = None
    infrastructure: bool = False


@dataclass(frozen=True)
class TaskCloned:
    """A resumed run reused a task that finished in the origin run."""

    pathspec: str
    origin_pathspec: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know (not an error)."""

    text: str


@dataclass(frozen=True)
class RunFinished:
    """The run ended; ``failed_task`` names the task that made it fail."""

    run_id: str
    successful: bool
    failed_task: str | None = None
    reason: str | None = None


Event = (
    RunStarted
    | TaskSubmitted
    | TaskStatusChanged
    | TaskWaiting
    | ArrayProgress
    | Reconnecting
    | Reconnected
    | TaskOutput
    | TaskSucceeded
    | AttemptFailed
    | TaskCloned
    | Notice
    | RunFinished
)
EventSink = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """An event sink that drops everything (the default for library use)."""
