"""Progress of wide fan-outs, for people: one summary per step instead of a line per task.

A foreach wider than :data:`PER_TASK_LINES` gets no line per task started or finished
(failures still get theirs). :class:`Progress` counts its tasks from the scheduler's and
the backend's events, and :meth:`Progress.lines` says, per step, how many are queued,
waiting, running, done and failed, the retries, the elapsed time, the rate and an
estimate of the time left. The CLI shows them refreshed in place on a terminal, and as a
line every :data:`LOG_EVERY_SECONDS` otherwise (logs, CI).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batchwright.events import (
    ArrayProgress,
    AttemptFailed,
    Event,
    TaskOutput,
    TaskSubmitted,
    TaskSucceeded,
    TaskWaiting,
)

#: A fan-out this wide or narrower gets a line per task; a wider one a summary.
PER_TASK_LINES = 32
#: Outside a terminal, a step's summary is printed at most this often (and when it ends).
LOG_EVERY_SECONDS = 30.0
#: Array states counted as waiting to start.
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")


def step_of(pathspec: str) -> str:
    """``Flow/run/step`` of a task's pathspec (``Flow/run/step/task``)."""
    return pathspec.rsplit("/", 1)[0]


@dataclass
class StepCount:
    """What is known of one wide step's tasks."""

    width: int
    started_at: float
    submitted: int = 0
    #: Whether its tasks run on this machine (started means running) or remotely.
    local: bool = True
    done: int = 0
    failed: int = 0
    retries: int = 0
    #: The remote backend's view of its array jobs: children by state, per array job.
    arrays: dict[str, dict[str, int]] = field(default_factory=dict)
    printed_at: float = 0.0
    #: When the last task ended (the elapsed time and rate stop there).
    ended_at: float | None = None
    #: Whether the final summary was printed.
    reported: bool = False

    def state(self, *names: str) -> int:
        """Children of the step's array jobs in any of these states."""
        return sum(counts.get(n, 0) for counts in self.arrays.values() for n in names)


@dataclass
class Progress:
    """Counts per wide step, from events (see the module docstring)."""

    clock: Callable[[], float] = time.monotonic
    steps: dict[str, StepCount] = field(default_factory=dict)

    def is_wide(self, pathspec: str) -> bool:
        """Whether the task's step is summarized rather than shown task by task."""
        return step_of(pathspec) in self.steps

    def observe(self, event: Event) -> bool:
        """Counts ``event``; True when it concerns a wide step (so it is not printed)."""
        if isinstance(event, TaskSubmitted) and event.width > PER_TASK_LINES:
            step = self.steps.setdefault(
                step_of(event.pathspec), StepCount(event.width, self.clock())
            )
            step.submitted += 1
            step.local = event.backend == "local"
            step.retries += event.attempt > 0
            return True
        if isinstance(event, ArrayProgress) and event.pathspec in self.steps:
            self.steps[event.pathspec].arrays[event.job_id] = dict(event.counts)
            return True
        found = self.steps.get(step_of(getattr(event, "pathspec", "")))
        if found is None:
            return False
        step = found
        if isinstance(event, TaskSucceeded):
            step.done += 1
        elif isinstance(event, AttemptFailed) and event.retry_in is None:
            step.failed += 1
        if step.ended_at is None and step.done + step.failed >= step.width:
            step.ended_at = self.clock()
        if isinstance(event, TaskSucceeded):
            return True
        # Failures, what tasks print and why a task waits are shown; the rest only counts.
        if isinstance(event, TaskWaiting):
            return not event.reason
        return not isinstance(event, AttemptFailed | TaskOutput)

    def finished(self, name: str) -> bool:
        """Whether every task of a wide step ended."""
        return self.steps[name].ended_at is not None

    def line(self, name: str) -> str:
        """``[Flow/1/work] 10000 tasks: 2500 done, 7000 running, 500 waiting; 1 min
        elapsed, 40.0/s, ETA 3 min``: the counts that are not zero (done always)."""
        step = self.steps[name]
        end = self.clock() if step.ended_at is None else step.ended_at
        elapsed = max(end - step.started_at, 1e-9)
        done = _done(step)
        if step.arrays:  # the remote backend's counts (its children end before the array)
            running = step.state("RUNNING")
            waiting = step.state(*WAITING)
        else:  # tasks started here run at once; remote ones wait until Batch says more
            in_flight = max(step.submitted - step.retries - step.done - step.failed, 0)
            running, waiting = (in_flight, 0) if step.local else (0, in_flight)
        left = max(step.width - done - step.failed, 0)
        queued = max(left - running - waiting, 0)
        rate = done / elapsed
        counts = {"running": running, "waiting": waiting, "queued": queued}
        counts.update(failed=step.failed, retries=step.retries)
        parts = [f"{done} done"] + [f"{n} {what}" for what, n in counts.items() if n]
        eta = f", ETA {duration_text(left / rate)}" if rate > 0 and left > 0 else ""
        return (
            f"[{name}] {step.width} tasks: {', '.join(parts)}; {duration_text(elapsed)} elapsed, "
            f"{rate:.1f}/s{eta}"
        )

    def lines(self) -> list[str]:
        """One line per wide step that has not ended."""
        return [self.line(name) for name in self.steps if not self.finished(name)]

    def due(self, name: str, *, live: bool = False) -> bool:
        """Whether a step's summary is due as a line of its own: once when the step ends,
        and while it runs every LOG_EVERY_SECONDS unless it is ``live`` (shown in place)."""
        step = self.steps[name]
        if step.reported:
            return False
        if step.ended_at is not None:
            step.reported = True
            return True
        if _done(step) + step.failed >= step.width:
            return False  # every child ended on Batch: the final line follows their events
        now = self.clock()
        if not live and now - step.printed_at >= LOG_EVERY_SECONDS:
            step.printed_at = now
            return True
        return False


def _done(step: StepCount) -> int:
    """Tasks done: the events seen, or the remote backend's count if it is ahead."""
    return max(step.done, step.state("SUCCEEDED")) if step.arrays else step.done


def duration_text(seconds: float) -> str:
    """``42 s``, ``4 min``, ``1 h 5 min``: a duration as people say it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
