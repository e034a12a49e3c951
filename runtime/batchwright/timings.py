"""Where the time of a run went: one record per task attempt, kept as the run goes.

Two writers, one reader:

- the scheduler sees every attempt end (succeeded, failed, reclaimed, stopped) and keeps
  an :class:`AttemptTiming` for it: when it was submitted, started and stopped, the queue
  and platform, what it asked for, its exit code and failure class. A
  :class:`TimingRecorder` writes them in chunks of JSON lines under the run's
  ``_timings/`` folder (one new object per flush, never rewritten: S3 has no append);
- the task writes, in its attempt metadata, when it ran and where (``placement``: the
  compute environment, queue and instance type the job learned about itself). Children of
  a wide array job are not described one by one while they run, so this is how their
  times are known.

:func:`read_timeline` merges the two: what the compute service reported first, then what
the task recorded, then the plan's smallest fitting instance type, labelled as such.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from batchwright.batch.failures import OOM_EXIT_CODE, FailureKind
from batchwright.costs import Footprint

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore

#: Where the instance type of an attempt came from.
REPORTED = "reported"
PLANNED = "plan"
#: Flush the recorder after this many records, or this long after the last flush.
FLUSH_RECORDS = 500
FLUSH_SECONDS = 15.0
#: Threads reading task metadata for attempts the compute service did not describe.
METADATA_READERS = 16


@dataclass(frozen=True)
class AttemptTiming:
    """One attempt of one task: when, where, and how it ended (times in epoch seconds)."""

    step: str
    task_id: str
    #: The attempt (0, 1, ... as ``@retry`` goes) and, within it, the submission after
    #: lost capacity (a Spot reclaim submits the same attempt again).
    attempt: int
    submitted_at: float
    stopped_at: float
    #: ``"succeeded"`` or ``"failed"``.
    state: str
    backend: str = "local"
    #: The backend's id of the attempt (a Batch job id, ``parent:index`` for an array
    #: child); ``None`` on this machine.
    job_id: str | None = None
    resubmission: int = 0
    #: When it started running; ``None`` when it never did (or nobody reported it).
    started_at: float | None = None
    queue: str | None = None
    compute_environment: str | None = None
    #: ``EC2``, ``SPOT``, ``FARGATE`` or ``FARGATE_SPOT``; ``None`` on this machine.
    platform: str | None = None
    region: str | None = None
    instance_type: str | None = None
    #: :data:`REPORTED` (AWS said so) or :data:`PLANNED` (the plan's smallest fitting type).
    instance_type_source: str | None = None
    #: The request: vCPUs, memory (MiB) and GPUs per task.
    vcpus: float | None = None
    memory_mib: int | None = None
    gpus: int = 0
    exit_code: int | None = None
    #: The failure class (:class:`batchwright.batch.failures.FailureKind` values, plus
    #: ``timeout`` and ``terminated`` from the scheduler); ``None`` when it succeeded.
    failure: str | None = None
    reason: str = ""

    @property
    def pathspec(self) -> str:
        """``step/task_id``."""
        return f"{self.step}/{self.task_id}"

    @property
    def waiting_seconds(self) -> float:
        """Time between submission and start (all of it, for an attempt that never ran)."""
        end = self.started_at if self.started_at is not None else self.stopped_at
        return max(0.0, end - self.submitted_at)

    @property
    def running_seconds(self) -> float:
        """Time between start and stop (0 for an attempt that never ran)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, self.stopped_at - self.started_at)

    @property
    def footprint(self) -> Footprint | None:
        """What the attempt held while it ran, for a cost estimate (``None`` on this
        machine, or when its request is unknown)."""
        if self.platform is None or self.vcpus is None or self.memory_mib is None:
            return None
        return Footprint(
            self.vcpus,
            self.memory_mib,
            self.gpus,
            self.platform,
            self.region,
            self.instance_type,
            self.instance_type_source == PLANNED,
        )

    def to_json(self) -> str:
        """One line of a timings chunk."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> AttemptTiming:
        """The record of :meth:`to_json`; keys a later version added are ignored."""
        raw = json.loads(line)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class TimingRecorder:
    """Collects the run's attempt timings and writes them in chunks (see the module)."""

    store: FlowDatastore
    run_id: str
    clock: Any = time.time
    _pending: list[AttemptTiming] = field(default_factory=list)
    _chunks: int = 0
    _flushed_at: float = 0.0

    def __post_init__(self) -> None:
        self._flushed_at = self.clock()
        # A resumed or restarted orchestrator never overwrites an earlier one's chunks.
        self._prefix = f"{int(self._flushed_at * 1000):013d}"

    def record(self, timing: AttemptTiming) -> None:
        """Keep one attempt until the next :meth:`flush`."""
        self._pending.append(timing)

    def due(self) -> bool:
        """Whether records wait, and :data:`FLUSH_RECORDS` of them or
        :data:`FLUSH_SECONDS` since the last flush make it time to write them."""
        return bool(self._pending) and (
            len(self._pending) >= FLUSH_RECORDS or self.clock() - self._flushed_at >= FLUSH_SECONDS
        )

    def flush(self) -> None:
        """Write what is pending as one chunk (kept pending if the write fails)."""
        self._flushed_at = self.clock()
        if not self._pending:
            return
        body = "".join(t.to_json() + "\n" for t in self._pending).encode()
        self.store.write_timings(self.run_id, f"{self._prefix}-{self._chunks:06d}", body)
        self._chunks += 1
        self._pending.clear()


def read_timeline(
    store: FlowDatastore, run_id: str, task: tuple[str, str] | None = None
) -> list[AttemptTiming]:
    """Every recorded attempt of the run (of one ``(step, task_id)`` when ``task`` is
    given), ordered by submission; times and placement the compute service did not report
    are filled in from what each task recorded."""
    timings = [AttemptTiming.from_json(line) for line in store.read_timings(run_id)]
    if task is not None:
        timings = [t for t in timings if (t.step, t.task_id) == task]
    lacking = [i for i, t in enumerate(timings) if _lacks_facts(t)]
    if lacking:
        with ThreadPoolExecutor(METADATA_READERS) as pool:
            found = pool.map(
                lambda t: store.read_metadata(run_id, t.step, t.task_id, t.attempt),
                [timings[i] for i in lacking],
            )
            for index, metadata in zip(lacking, found, strict=True):
                timings[index] = completed(timings[index], metadata or {})
    return sorted(timings, key=lambda t: (t.submitted_at, t.step, t.task_id, t.attempt))


def _lacks_facts(timing: AttemptTiming) -> bool:
    """Whether the task's own record may tell more: its start, or (on EC2, where
    DescribeJobs rarely names it) the instance type it ran on."""
    on_ec2 = timing.platform in ("EC2", "SPOT")
    return timing.started_at is None or (on_ec2 and timing.instance_type_source != REPORTED)


def completed(timing: AttemptTiming, metadata: Mapping[str, Any]) -> AttemptTiming:
    """``timing`` with what the task recorded about itself where the record lacks it: its
    start and stop, and the placement the job reported (compute environment, queue,
    instance type)."""
    if int(metadata.get("attempt", -1)) != timing.attempt:
        return timing
    placement = metadata.get("placement") or {}
    # A Spot reclaim submits the same attempt again, and the task's record is the last
    # submission's: it describes this one only if the job ids agree, or (an older
    # record without one) if its start falls within this submission's life.
    job_id = placement.get("job_id")
    started, finished = metadata.get("started_at"), metadata.get("finished_at")
    if timing.job_id and job_id:
        if job_id != timing.job_id:
            return timing
    elif not (
        isinstance(started, int | float) and timing.submitted_at <= started <= timing.stopped_at
    ):
        return timing
    changes: dict[str, Any] = {}
    if timing.started_at is None and isinstance(started, int | float):
        changes["started_at"] = float(started)
        if isinstance(finished, int | float) and finished >= started:
            changes["stopped_at"] = min(timing.stopped_at, float(finished))
    if not timing.compute_environment and placement.get("compute_environment"):
        changes["compute_environment"] = placement["compute_environment"]
    if placement.get("instance_type") and timing.instance_type_source != REPORTED:
        changes["instance_type"] = placement["instance_type"]
        changes["instance_type_source"] = REPORTED
    return replace(timing, **changes) if changes else timing


def failure_class(
    exit_code: int | None, *, reported: str | None = None, infrastructure: bool = False
) -> str:
    """The failure class of a failed attempt: what the backend reported, else read from
    how it ended (a signal, the OOM killer's SIGKILL, a step that raised)."""
    if reported:
        return reported
    if infrastructure:
        return FailureKind.SPOT_RECLAIMED.value
    if exit_code is None:
        return FailureKind.UNKNOWN.value
    if exit_code == OOM_EXIT_CODE:
        return FailureKind.OUT_OF_MEMORY.value
    if exit_code < 0:
        return FailureKind.TERMINATED.value
    return FailureKind.USER_ERROR.value


def steps_in_order(timings: Iterable[AttemptTiming]) -> list[str]:
    """The steps of ``timings``, in the order their first attempt was submitted."""
    return list(dict.fromkeys(t.step for t in timings))
