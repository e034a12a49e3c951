"""The execution backend interface: three verbs, ``submit``, ``poll`` and ``terminate``.

The scheduler owns everything else (concurrency, polling cadence, retries, interrupts,
resume). A backend only starts task attempts, reports their status, and stops them.

- ``submit(tasks) -> handles``: start attempts. ``tasks`` is one task, or several ready
  tasks of the same foreach fan-out (same step, same :attr:`TaskSpec.group`), so a
  backend may submit them as one array job; for a parallel step (``FanOut.parallel``)
  it is every node, in node order, to be started together. Returns one handle per
  task, in order.
- ``poll(handles) -> statuses``: one status per handle, in order, for a whole batch of
  handles at once (an AWS backend asks DescribeJobs about 100 ids per call).
- ``terminate(handles)``: stop attempts (interrupts, scheduler-side timeouts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from batchwright.aws import Patience
from batchwright.datastore.journal import Journal, Submission
from batchwright.entrypoint import TaskArguments
from batchwright.events import EventSink, ignore_events
from batchwright.identity import current_user
from batchwright.policy import StepPolicy

#: Running children of each array job whose logs a remote backend streams by default.
DEFAULT_FOLLOW_LOGS = 3


@dataclass(frozen=True)
class FanOut:
    """Identifies the foreach fan-out a task belongs to (for array-job submission)."""

    #: ``step/task_id`` of the foreach task that fanned out.
    parent: str
    #: The step every member runs.
    step: str
    size: int
    #: The members are the nodes of one parallel step (``num_parallel``): they run
    #: together (one multi-node job on AWS Batch), member ``i`` as node ``i``, and succeed,
    #: fail and retry as one.
    parallel: bool = False


@dataclass(frozen=True)
class WaitPolicy:
    """How long attempts may wait to start, whatever the backend."""

    #: An attempt whose compute environment says ``MISCONFIGURATION:...`` is stopped after
    #: this long: such reasons have been seen briefly while a compute environment scales up
    #: from zero, so one sighting is not proof.
    misconfiguration_grace_seconds: float = 300.0
    #: An attempt waiting longer than this to start is stopped (``None``: no limit; the
    #: queue's own job-state time limit decides).
    max_wait_seconds: float | None = None
    #: A submitted job the API has not shown for this long is given up.
    invisible_grace_seconds: float = 300.0


@dataclass(frozen=True)
class TaskSpec:
    """One attempt of one task: the entrypoint's arguments, the step's policy and, for a
    foreach member, its fan-out."""

    arguments: TaskArguments
    policy: StepPolicy = field(compare=False)
    group: FanOut | None = None
    #: How many times this attempt was submitted again after its capacity failed.
    resubmission: int = 0
    #: Spot reclaims this attempt suffered so far (decides when it moves to on-demand).
    reclaims: int = 0

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
class AttemptFacts:
    """What the compute service reported about where and when an attempt ran, for its
    timing record (``None``: not reported; the task's own record may tell)."""

    #: Seconds since the epoch.
    started_at: float | None = None
    stopped_at: float | None = None
    compute_environment: str | None = None
    instance_type: str | None = None
    #: The failure class (a :class:`batchwright.batch.failures.FailureKind` value, or
    #: ``timeout`` / ``terminated``).
    failure: str | None = None
    #: The end of what a failed attempt printed (``stdout``/``stderr`` -> bytes), from a
    #: backend that saw it (the local one): stored when the attempt died before storing
    #: its own logs.
    output: Mapping[str, bytes] | None = None


@dataclass(frozen=True)
class TaskStatus:
    """The state of one attempt: waiting to start, running, succeeded, or failed with a
    reason."""

    #: ``"waiting"``, ``"running"``, ``"succeeded"`` or ``"failed"``.
    state: str
    reason: str = ""
    exit_code: int | None = None
    #: False when the backend knows a retry cannot help (e.g. image pull refused).
    retryable: bool = True
    #: When the attempt started running (seconds since the epoch), once the backend knows.
    started_at: float | None = None
    #: The capacity failed, not the step (a Spot reclaim): the scheduler submits the same
    #: attempt again without using a ``@retry``.
    infrastructure: bool = False
    #: Spot reclaims the attempt's job suffered (the compute service's own retries included).
    reclaims: int = 0
    #: Once finished: what the backend knows of where and when it ran (not part of the
    #: status's identity: two statuses of the same outcome are equal).
    facts: AttemptFacts | None = field(default=None, compare=False)

    @classmethod
    def waiting(cls, reason: str = "") -> TaskStatus:
        """Submitted, not started yet (queued, waiting for capacity, starting)."""
        return cls("waiting", reason)

    @classmethod
    def running(cls, started_at: float | None = None) -> TaskStatus:
        """Running since ``started_at`` (``None``: the backend does not say)."""
        return cls("running", started_at=started_at)

    @classmethod
    def succeeded(cls) -> TaskStatus:
        """Finished with the done marker written."""
        return cls("succeeded", exit_code=0)

    @classmethod
    def failed(
        cls,
        reason: str,
        exit_code: int | None = None,
        *,
        retryable: bool = True,
        infrastructure: bool = False,
        reclaims: int = 0,
        facts: AttemptFacts | None = None,
    ) -> TaskStatus:
        """Finished without success."""
        return cls(
            "failed",
            reason,
            exit_code,
            retryable,
            infrastructure=infrastructure,
            reclaims=reclaims,
            facts=facts,
        )

    @property
    def is_finished(self) -> bool:
        """True once the attempt ended, either way."""
        return self.state in ("succeeded", "failed")


@dataclass(frozen=True)
class BackendOptions:
    """What a backend factory receives (one object, so new settings do not break callers).

    Per-step settings are not here: each task carries its step's policy.
    """

    flow_name: str
    run_id: str
    datastore_root: str
    on_event: EventSink = ignore_events
    #: How long the run waits out throttling and outages (the orchestrator's one instance).
    patience: Patience = field(default_factory=Patience)
    #: How long attempts may wait to start.
    waits: WaitPolicy = field(default_factory=WaitPolicy)
    #: Where submissions are recorded before and after they are made (remote backends).
    journal: Journal | None = None
    #: Children of each array job followed one by one (their waits and logs), besides
    #: the failed ones; the others are known from their array's counts.
    follow_logs: int = DEFAULT_FOLLOW_LOGS
    #: Who started the run; remote tasks get it as ``$BATCHWRIGHT_USER``.
    user: str = field(default_factory=current_user)


class Backend(ABC):
    """Where task attempts run."""

    #: The name the chooser and ``TaskHandle.backend`` use.
    name: str = ""
    #: Seconds the scheduler waits between polls when nothing changed.
    poll_interval: float = 1.0
    #: Whether attempts run on this machine, so ``--max-workers`` bounds how many run at
    #: once; a remote backend gets a whole fan-out at once (its compute bounds it).
    runs_here: bool = True
    #: The most tasks of one fan-out handed to one ``submit`` (one array job).
    max_group: int = 10_000

    @abstractmethod
    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        """Start one attempt per task; one handle per task, in order."""

    @abstractmethod
    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        """The status of each handle, in order."""

    @abstractmethod
    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        """Stop these attempts; return once they are stopped or asked to stop."""

    def reattach(self, task: TaskSpec, submission: Submission, index: int) -> TaskHandle | None:
        """Follow again an attempt a previous orchestrator of the run started (member
        ``index`` of ``submission``), or ``None`` when it cannot be found, so it is
        submitted again. Backends whose attempts die with the orchestrator keep this
        default."""
        return None

    def close(self) -> None:
        """The run is over: release what the backend holds for it (helper processes,
        connections). Attempts still in flight are left as they are (``terminate`` stops
        them). Backends that hold nothing keep this default."""
        return None
