"""The scheduler's handling of parallel steps with a fake in-memory backend: the nodes
go out together in node order, the first failed node stops the others and decides the
step's fate, and a main node that failed only because another node did waits for that
node's own error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tests.runtime._support import run_on_backend

from batchwright import FlowSpec, parallel, retry, step
from batchwright.backends import Backend, TaskHandle, TaskSpec, TaskStatus
from batchwright.datastore import open_datastore
from batchwright.entrypoint import EXIT_NODE_FAILED
from batchwright.events import AttemptFailed, Event
from batchwright.scheduler import RunResult


class GangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=3)

    @retry(times=1, minutes_between_retries=0)
    @parallel
    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


#: (task, how many times it was polled) -> its status.
Decide = Callable[[TaskSpec, int], TaskStatus]


class GangBackend(Backend):
    name = "local"
    poll_interval = 0.0

    def __init__(self, root: Path, decide: Decide) -> None:
        self.root, self.decide = root, decide
        self.submits: list[list[TaskSpec]] = []
        self.polls: dict[str, int] = {}
        self.terminated: list[str] = []

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        self.submits.append(list(tasks))
        return [TaskHandle(self.name, f"{t.task_id}.{t.attempt}", t) for t in tasks]

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        statuses = []
        for handle in handles:
            count = self.polls[handle.id] = self.polls.get(handle.id, 0) + 1
            status = self.decide(handle.task, count)
            if status.state == "succeeded" and handle.task.step == "start":
                # What the task would store: the number of nodes num_parallel asked for.
                args = handle.task.arguments
                store = open_datastore("GangFlow", str(self.root))
                store.write_metadata(
                    args.run_id, "start", args.task_id, 0, {"foreach_num_splits": 3}
                )
                store.mark_done(args.run_id, "start", args.task_id, 0)
            statuses.append(status)
        return statuses

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        self.terminated.extend(h.id for h in handles)


def _run(backend: GangBackend, tmp_path: Path, workers: int = 16) -> tuple[RunResult, list[Event]]:
    return run_on_backend(GangFlow, backend, tmp_path, workers=workers)


def _train_submits(backend: GangBackend) -> list[list[tuple[int | None, int]]]:
    return [
        [(t.arguments.split_index, t.attempt) for t in tasks]
        for tasks in backend.submits
        if tasks[0].step == "train"
    ]


def test_the_nodes_go_out_together_in_node_order_beyond_max_workers(tmp_path: Path) -> None:
    backend = GangBackend(tmp_path, lambda task, polls: TaskStatus.succeeded())
    result, _ = _run(backend, tmp_path, workers=2)
    assert result.successful
    assert _train_submits(backend) == [[(0, 0), (1, 0), (2, 0)]]
    join = next(t for tasks in backend.submits for t in tasks if t.step == "join")
    assert len(join.arguments.input_paths) == 3
    assert all(t.group is not None and t.group.parallel for t in backend.submits[1])


def test_a_failed_node_stops_the_others_and_the_whole_step_is_retried(tmp_path: Path) -> None:
    def decide(task: TaskSpec, polls: int) -> TaskStatus:
        if task.step != "train":
            return TaskStatus.succeeded()
        if task.arguments.split_index == 1 and task.attempt == 0:
            return TaskStatus.failed("node broke", 1)
        return TaskStatus.running() if polls == 1 else TaskStatus.succeeded()

    backend = GangBackend(tmp_path, decide)
    result, events = _run(backend, tmp_path)
    assert result.successful
    # Nodes 0 and 2 were stopped with node 1's failure; all three ran again, together.
    assert sorted(h.split(".")[1] for h in backend.terminated) == ["0", "0"]
    assert _train_submits(backend) == [[(0, 0), (1, 0), (2, 0)], [(0, 1), (1, 1), (2, 1)]]
    failed = [e for e in events if isinstance(e, AttemptFailed)]
    assert [e.reason for e in failed] == ["node 1: node broke"]


def test_a_main_node_failing_for_another_node_reports_that_nodes_error(tmp_path: Path) -> None:
    def decide(task: TaskSpec, polls: int) -> TaskStatus:
        if task.step != "train":
            return TaskStatus.succeeded()
        index = task.arguments.split_index
        if index == 0:  # the main node sees node 2's failure first, and exits with it
            return TaskStatus.failed("main gave up", EXIT_NODE_FAILED)
        if index == 2:
            return TaskStatus.running() if polls == 1 else TaskStatus.failed("oom", 137)
        return TaskStatus.running()

    backend = GangBackend(tmp_path, decide)
    result, events = _run(backend, tmp_path)
    assert not result.successful
    assert result.reason == "node 2: oom"
    failed = [e for e in events if isinstance(e, AttemptFailed)]
    assert [e.reason for e in failed] == ["node 2: oom", "node 2: oom"]
    # Node 1, still running each time, was stopped with the step.
    assert [h for h in backend.terminated if h.startswith(backend.submits[1][1].task_id)] == [
        f"{backend.submits[1][1].task_id}.0",
        f"{backend.submits[1][1].task_id}.1",
    ]
