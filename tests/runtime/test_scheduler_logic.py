"""Scheduler decisions with a fake in-memory backend (no subprocesses, no task code)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from tests.runtime._support import run_on_backend

from batchwright import FlowSpec, retry, step
from batchwright.backends import Backend, TaskHandle, TaskSpec, TaskStatus
from batchwright.datastore import open_datastore
from batchwright.decorators import RuntimeContext, StepDecorator, register_step_decorator
from batchwright.events import AttemptFailed, Event, Notice
from batchwright.scheduler import RunResult
from batchwright.timings import read_timeline


class ThreeBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b, self.c)

    @retry(times=2, minutes_between_retries=0)
    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def c(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


Decide = Callable[[TaskSpec], TaskStatus]


class FakeBackend(Backend):
    """Finishes every attempt on its first poll, with the status ``decide`` picks."""

    name = "local"
    poll_interval = 0.0

    def __init__(self, decide: Decide) -> None:
        self.decide = decide
        self.submitted: list[TaskSpec] = []
        self.terminated: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        self.submitted.extend(tasks)
        self.in_flight += len(tasks)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return [TaskHandle(self.name, f"{t.task_id}.{t.attempt}", t) for t in tasks]

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        self.in_flight -= len(handles)
        return [self.decide(h.task) for h in handles]

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        self.terminated.extend(h.id for h in handles)


def _run(
    backend: FakeBackend, tmp_path: Path, workers: int = 16, with_options: tuple[str, ...] = ()
) -> tuple[RunResult, list[Event]]:
    return run_on_backend(
        ThreeBranchFlow, backend, tmp_path, workers=workers, with_options=with_options
    )


def _steps(backend: FakeBackend) -> list[tuple[str, int]]:
    return [(t.step, t.attempt) for t in backend.submitted]


def test_all_succeed(tmp_path: Path) -> None:
    backend = FakeBackend(lambda task: TaskStatus.succeeded())
    result, _ = _run(backend, tmp_path)
    assert result.successful
    assert [s for s, _ in _steps(backend)] == ["start", "a", "b", "c", "join", "end"]
    join = next(t for t in backend.submitted if t.step == "join")
    assert [p.split("/")[1] for p in join.arguments.input_paths] == ["a", "b", "c"]


def test_retry_until_success(tmp_path: Path) -> None:
    def decide(task: TaskSpec) -> TaskStatus:
        if task.step == "a" and task.attempt < 2:
            return TaskStatus.failed("flaky", 1)
        return TaskStatus.succeeded()

    backend = FakeBackend(decide)
    result, events = _run(backend, tmp_path)
    assert result.successful
    assert [a for s, a in _steps(backend) if s == "a"] == [0, 1, 2]
    a_tasks = {t.task_id for t in backend.submitted if t.step == "a"}
    assert len(a_tasks) == 1  # retries are new attempts of the same task
    assert all(t.arguments.max_retries == 2 for t in backend.submitted if t.step == "a")
    retries = [e for e in events if isinstance(e, AttemptFailed)]
    assert [e.retry_in for e in retries] == [0.0, 0.0]


def test_retries_exhausted_fail_the_run(tmp_path: Path) -> None:
    backend = FakeBackend(
        lambda t: TaskStatus.failed("broken", 1) if t.step == "a" else TaskStatus.succeeded()
    )
    result, _ = _run(backend, tmp_path)
    assert not result.successful
    assert result.failed_task is not None and "/a/" in result.failed_task
    assert [a for s, a in _steps(backend) if s == "a"] == [0, 1, 2]
    assert "join" not in {s for s, _ in _steps(backend)}


def test_not_retryable_failure_is_not_retried(tmp_path: Path) -> None:
    backend = FakeBackend(
        lambda t: (
            TaskStatus.failed("image pull refused", 3, retryable=False)
            if t.step == "a"
            else TaskStatus.succeeded()
        )
    )
    result, _ = _run(backend, tmp_path)
    assert not result.successful and result.reason == "image pull refused"
    assert [a for s, a in _steps(backend) if s == "a"] == [0]


def test_max_workers_bounds_attempts_in_flight(tmp_path: Path) -> None:
    backend = FakeBackend(lambda task: TaskStatus.succeeded())
    result, _ = _run(backend, tmp_path, workers=1)
    assert result.successful and backend.most_in_flight == 1
    wide = FakeBackend(lambda task: TaskStatus.succeeded())
    _run(wide, tmp_path, workers=16)
    assert wide.most_in_flight == 3  # the three branches at once


class _Calls:
    seen: ClassVar[list[tuple[str, str, object]]] = []


@register_step_decorator
class RecordingDecorator(StepDecorator):
    """Records the scheduler-side hooks it receives."""

    name = "recording_test"
    defaults: ClassVar[dict[str, object]] = {"label": "x"}

    def runtime_init(self, context: RuntimeContext) -> None:
        _Calls.seen.append(("init", context.step_name, self.attributes["label"]))

    def runtime_finished(self, context: RuntimeContext, successful: bool) -> None:
        _Calls.seen.append(("finished", context.step_name, successful))


def test_runtime_hooks_run_in_the_scheduler(tmp_path: Path) -> None:
    _Calls.seen.clear()
    backend = FakeBackend(
        lambda t: TaskStatus.failed("no", 1) if t.step == "b" else TaskStatus.succeeded()
    )
    result, _ = _run(backend, tmp_path, with_options=("recording_test:label=y",))
    assert not result.successful
    steps = ["start", "a", "b", "c", "join", "end"]
    assert sorted(s for kind, s, _ in _Calls.seen if kind == "init") == sorted(steps)
    assert {v for kind, _, v in _Calls.seen if kind == "init"} == {"y"}
    assert {v for kind, _, v in _Calls.seen if kind == "finished"} == {False}
    # Every init came first, every finished after.
    assert [kind for kind, _, _ in _Calls.seen] == ["init"] * 6 + ["finished"] * 6


def test_timing_records_that_cannot_be_written_never_change_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchwright.datastore.store import FlowDatastore

    def refuse(self: FlowDatastore, run_id: str, chunk: str, body: bytes) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(FlowDatastore, "write_timings", refuse)
    backend = FakeBackend(lambda task: TaskStatus.succeeded())
    result, events = _run(backend, tmp_path)
    assert result.successful
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any("could not write the run's timing records (disk full)" in n for n in notices)


def test_an_interrupted_run_records_the_attempts_it_stopped(tmp_path: Path) -> None:
    def decide(task: TaskSpec) -> TaskStatus:
        if task.step == "a":
            raise KeyboardInterrupt
        return TaskStatus.succeeded() if task.step == "start" else TaskStatus.running()

    backend = FakeBackend(decide)
    with pytest.raises(KeyboardInterrupt):
        _run(backend, tmp_path)
    [run_id] = open_datastore("ThreeBranchFlow", str(tmp_path)).list_runs()
    timeline = read_timeline(open_datastore("ThreeBranchFlow", str(tmp_path)), run_id)
    assert (timeline[0].step, timeline[0].state) == ("start", "succeeded")
    stopped = [t for t in timeline if t.failure == "terminated"]
    assert {t.step for t in stopped} == {"a", "b", "c"}
