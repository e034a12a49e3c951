"""Wide fan-outs in the scheduler: a remote backend gets a whole foreach at once (in groups
of its largest array), local attempts stay bounded by --max-workers, and a foreach that
splits more than --max-num-splits is refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from batchwright import FlowSpec, Parameter, batch, step
from batchwright.backends import Backend, TaskHandle, TaskSpec, TaskStatus, register_backend
from batchwright.datastore import open_datastore
from batchwright.definition import load_definition
from batchwright.events import AttemptFailed, Event, TaskSubmitted
from batchwright.plan import make_plan
from batchwright.scheduler import RunOptions, RunResult, Scheduler


class WideFlow(FlowSpec):
    width = Parameter("width", default=50)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @batch
    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class Remote(Backend):
    """Finishes every attempt at its first poll; remembers each submit's size."""

    name = "batch"
    poll_interval = 0.0
    runs_here = False

    def __init__(self, max_group: int) -> None:
        self.max_group = max_group
        self.submits: list[int] = []

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        self.submits.append(len(tasks))
        return [TaskHandle(self.name, f"{t.task_id}", t) for t in tasks]

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        return [TaskStatus.succeeded() for _ in handles]

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        pass


def _run(
    tmp_path: Path, remote: Remote, *, width: int, workers: int, max_splits: int = 100_000
) -> tuple[RunResult, list[Event]]:
    definition = load_definition(WideFlow)
    plan = make_plan("WideFlow", definition.decorators, None, run_batch_locally=False)
    # start runs for real (the scheduler reads its number of splits from the datastore);
    # the fake remote backend takes every later step.
    policies = {
        name: policy if name == "start" else type(policy)(name, backend="batch")
        for name, policy in plan.policies.items()
    }
    events: list[Event] = []
    register_backend("batch", lambda options: remote)
    scheduler = Scheduler(
        definition,
        policies,
        open_datastore("WideFlow", str(tmp_path)),
        RunOptions(
            flow_file=__file__,
            datastore_root=str(tmp_path),
            max_workers=workers,
            max_num_splits=max_splits,
        ),
        events.append,
    )
    return scheduler.run({"width": width}), events


@pytest.fixture(autouse=True)
def _restore_batch_backend() -> object:
    from batchwright.backends import _FACTORIES

    saved = dict(_FACTORIES)
    yield None
    _FACTORIES.clear()
    _FACTORIES.update(saved)


def test_a_remote_fan_out_is_submitted_whole_whatever_max_workers(tmp_path: Path) -> None:
    remote = Remote(max_group=10_000)
    result, events = _run(tmp_path, remote, width=50, workers=2)
    assert result.successful
    assert remote.submits == [50, 1, 1]  # one array job (not 25 pairs), join, end
    widths = {e.width for e in events if isinstance(e, TaskSubmitted) and "/work/" in e.pathspec}
    assert widths == {50}


def test_a_fan_out_wider_than_the_largest_array_goes_in_several(tmp_path: Path) -> None:
    remote = Remote(max_group=20)
    result, _ = _run(tmp_path, remote, width=50, workers=1)
    assert result.successful and remote.submits == [20, 20, 10, 1, 1]


def test_more_splits_than_allowed_are_refused_before_anything_starts(tmp_path: Path) -> None:
    remote = Remote(max_group=10_000)
    result, events = _run(tmp_path, remote, width=50, workers=2, max_splits=10)
    assert not result.successful and remote.submits == []
    [refusal] = [e for e in events if isinstance(e, AttemptFailed)]
    assert "made 50 splits, more than --max-num-splits 10" in refusal.reason
    assert "--max-num-splits 50" in refusal.reason
