"""The scheduler's handling of parallel steps with a fake in-memory backend: the nodes
go out together in node order, the first failed node stops the others and decides the
step's fate, and a main node that failed only because another node did waits for that
node's own error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.runtime._support import run_on_backend

from batchwright import FlowSpec, parallel, retry, step
from batchwright.aws import AwsUnreachable
from batchwright.backends import (
    Backend,
    BackendOptions,
    TaskHandle,
    TaskSpec,
    TaskStatus,
    register_backend,
)
from batchwright.backends.local import LocalBackend
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.datastore import open_datastore
from batchwright.datastore.journal import Submission, SubmittedTask
from batchwright.definition import load_definition
from batchwright.entrypoint import EXIT_NODE_FAILED
from batchwright.events import AttemptFailed, Event
from batchwright.multinode import try_token
from batchwright.plan import make_plan
from batchwright.policy import BatchJobPolicy
from batchwright.scheduler import RunOptions, RunResult, Scheduler


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
            if status.state == "succeeded":
                # What the task would store (for start: the nodes num_parallel asked for).
                args = handle.task.arguments
                store = open_datastore(args.flow, str(self.root))
                metadata = {
                    "foreach_num_splits": 3,
                    "attempt": args.retry_count,
                    "input_paths": list(args.input_paths),
                    "split_index": args.split_index,
                }
                store.write_metadata(
                    args.run_id, args.step, args.task_id, args.retry_count, metadata
                )
                store.mark_done(args.run_id, args.step, args.task_id, args.retry_count)
            statuses.append(status)
        return statuses

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        self.terminated.extend(h.id for h in handles)


def _run(
    backend: GangBackend, tmp_path: Path, workers: int = 16, origin: str | None = None
) -> tuple[RunResult, list[Event]]:
    return run_on_backend(GangFlow, backend, tmp_path, workers=workers, origin_run_id=origin)


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
    # Node 2 fails; the main node sees it and exits 5, naming node 2 in its record; Batch
    # then stops node 1 (SIGKILL, 137). All three end by the same poll, node 1 before
    # node 2 in it: the step's error is node 2's all the same.
    def decide(task: TaskSpec, polls: int) -> TaskStatus:
        if task.step != "train":
            return TaskStatus.succeeded()
        if polls == 1:
            return TaskStatus.running()
        args, index = task.arguments, task.arguments.split_index
        if index == 0:
            node_two = f"{int(args.task_id) + 2}"
            store = open_datastore("GangFlow", str(tmp_path))
            metadata = {
                "failed_node": {"node": 2, "task_id": node_two, "exit_code": 1},
                "parallel_try": try_token(args.retry_count, task.resubmission),
            }
            store.write_metadata(args.run_id, "train", args.task_id, args.retry_count, metadata)
            return TaskStatus.failed("main gave up", EXIT_NODE_FAILED)
        if index == 1:
            return TaskStatus.failed("killed", 137)
        return TaskStatus.failed("raised", 1)

    backend = GangBackend(tmp_path, decide)
    result, events = _run(backend, tmp_path)
    assert not result.successful
    node_two = backend.submits[1][2].task_id
    expected = (
        f"node 2: the step failed with exit code 1 (task {node_two}); its output is above "
        "and in its log"
    )
    assert result.reason == expected
    assert result.failed_task is not None and result.failed_task.endswith(f"/train/{node_two}")
    failed = [e for e in events if isinstance(e, AttemptFailed)]
    assert [e.reason for e in failed] == [expected, expected]


def test_a_main_node_that_names_no_node_waits_for_the_failed_one(tmp_path: Path) -> None:
    # A main node whose record is not (yet) readable: its exit 5 waits for the other
    # nodes' own statuses, and the one that failed is blamed.
    def decide(task: TaskSpec, polls: int) -> TaskStatus:
        if task.step != "train":
            return TaskStatus.succeeded()
        index = task.arguments.split_index
        if index == 0:
            return TaskStatus.failed("main gave up", EXIT_NODE_FAILED)
        if index == 2:
            return TaskStatus.running() if polls == 1 else TaskStatus.failed("oom", 137)
        return TaskStatus.running()

    backend = GangBackend(tmp_path, decide)
    result, _ = _run(backend, tmp_path)
    assert not result.successful
    assert result.reason == "node 2: oom"
    # Node 1, still running each time, was stopped with the step.
    node_one = backend.submits[1][1].task_id
    assert [h for h in backend.terminated if h.startswith(node_one)] == [
        f"{node_one}.0",
        f"{node_one}.1",
    ]


class DyingBackend(GangBackend):
    """Journals its submissions like a remote backend; AWS becomes unreachable while the
    parallel step runs (the orchestrator gives up and leaves the job running), and a
    resume finds the job's nodes as ``alive`` says."""

    def __init__(self, root: Path, alive: Sequence[bool]) -> None:
        super().__init__(root, lambda task, polls: TaskStatus.succeeded())
        self.alive, self.reattached = alive, 0
        self.journal: Any = None

    def bind(self, options: BackendOptions) -> DyingBackend:
        self.journal = options.journal
        return self

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        handles = super().submit(tasks)
        group = tasks[0].group
        if group is not None and group.parallel:
            members = tuple(
                SubmittedTask(t.step, t.task_id, t.attempt, t.arguments.input_paths, i)
                for i, t in enumerate(tasks)
            )
            submission = Submission("gang", "local", "q", members, 0.0, nodes=True)
            self.journal.intend(submission)
            self.journal.submitted(submission, f"job{len(self.submits)}")
        return handles

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        if self.dying and any(h.task.step == "train" for h in handles):
            raise AwsUnreachable("AWS is gone")
        return super().poll(handles)

    dying = True

    def reattach(self, task: TaskSpec, submission: Submission, index: int) -> TaskHandle | None:
        if not self.alive[index]:
            return None
        self.reattached += 1
        return TaskHandle(self.name, submission.job_id_of(index) or "", task)


def _killed_run(backend: DyingBackend, tmp_path: Path) -> str:
    with pytest.raises(AwsUnreachable):
        _run(backend, tmp_path)
    store = open_datastore("GangFlow", str(tmp_path))
    (run_id,) = list(store.list_runs())
    backend.dying = False
    return run_id


def test_a_resume_follows_the_multi_node_job_the_dead_orchestrator_left(
    tmp_path: Path,
) -> None:
    backend = DyingBackend(tmp_path, alive=[True, True, True])
    origin = _killed_run(backend, tmp_path)
    submitted = len(backend.submits)
    result, _ = _run(backend, tmp_path, origin=origin)
    # Followed again, all three nodes, and nothing submitted for them.
    assert backend.reattached == 3
    assert [tasks[0].step for tasks in backend.submits[submitted:]] == ["join", "end"]
    assert backend.terminated == []
    assert result.successful
    # The join reads the three nodes' records, taken over from the run that started them.
    join = next(t for t in backend.submits[submitted] if t.step == "join")
    assert [p.split("/")[1:] for p in join.arguments.input_paths] == [
        ["train", t.task_id] for t in backend.submits[1]
    ]


def test_a_resume_stops_a_multi_node_job_with_a_failed_node_and_runs_every_node_again(
    tmp_path: Path,
) -> None:
    backend = DyingBackend(tmp_path, alive=[True, False, True])
    origin = _killed_run(backend, tmp_path)
    submitted = len(backend.submits)
    result, _ = _run(backend, tmp_path, origin=origin)
    assert result.successful
    # Node 0 was found running, node 1 had failed: the job was stopped (through the node
    # that was followed) and all three nodes ran again, together.
    assert backend.reattached == 1 and backend.terminated == ["job2#0"]
    assert [len(tasks) for tasks in backend.submits[submitted:] if tasks[0].step == "train"] == [3]


class DynamicFlow(FlowSpec):
    @step
    def start(self):
        self.nodes = 3
        self.next(self.train, num_parallel=self.nodes)

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


def test_a_node_count_set_at_run_time_beyond_the_queue_is_refused_before_submitting(
    tmp_path: Path,
) -> None:
    definition = load_definition(DynamicFlow)
    assert definition.parallel_steps == {"train": None}  # not known before the run
    plan = make_plan(
        "DynamicFlow", definition.decorators, None, parallel_steps=definition.parallel_steps
    )
    target = QueueTarget(queue="arn:aws:batch:us-east-1:1:job-queue/efa", platform="EC2", key="efa")
    job = BatchJobPolicy(
        BatchOptions.from_attributes("train", {}),
        target,
        node_instance_type="c5n.18xlarge",
        max_nodes=2,
    )
    policies = {**plan.policies, "train": dataclasses.replace(plan.policies["train"], batch=job)}
    backend = GangBackend(tmp_path, lambda task, polls: TaskStatus.succeeded())
    register_backend("local", lambda options: backend)
    try:
        scheduler = Scheduler(
            definition,
            policies,
            open_datastore("DynamicFlow", str(tmp_path)),
            RunOptions(flow_file=__file__, datastore_root=str(tmp_path)),
            lambda event: None,
        )
        result = scheduler.run({})
    finally:
        register_backend("local", LocalBackend)
    assert not result.successful
    assert result.reason == (
        "step 'start' asked for num_parallel=3 nodes of parallel step 'train', and queue "
        "'efa' holds at most 2 c5n.18xlarge node(s) at once (one instance per node, within "
        "its max vCPUs); nothing of it was started. Ask for fewer nodes, or raise the "
        "queue's max vCPUs."
    )
    assert [tasks[0].step for tasks in backend.submits] == ["start"]


def test_a_record_of_an_earlier_try_of_the_same_attempt_blames_no_one(tmp_path: Path) -> None:
    # In try "0.0" node 1's host is reclaimed; the group goes again with the same attempt.
    # The stopped main node of that try still stores that node 2 failed. In the next try
    # node 1 fails: the earlier try's record must not blame node 2.
    def decide(task: TaskSpec, polls: int) -> TaskStatus:
        if task.step != "train":
            return TaskStatus.succeeded()
        args, index = task.arguments, task.arguments.split_index
        if task.resubmission == 0:
            if index == 1:
                return TaskStatus.failed("host reclaimed", infrastructure=True)
            return TaskStatus.running()
        if index == 0:  # the late write of the stopped main node of try "0.0"
            store = open_datastore("GangFlow", str(tmp_path))
            stale = {
                "failed_node": {"node": 2, "task_id": "x", "exit_code": 1},
                "parallel_try": try_token(args.retry_count, 0),
            }
            store.write_metadata(args.run_id, "train", args.task_id, args.retry_count, stale)
        if index == 1:
            return TaskStatus.failed("bad input", 3, retryable=False)
        return TaskStatus.running()

    backend = GangBackend(tmp_path, decide)
    result, _ = _run(backend, tmp_path)
    assert not result.successful
    assert result.reason == "node 1: bad input"
    assert [[t.resubmission for t in tasks] for tasks in backend.submits[1:]] == [[0] * 3, [1] * 3]
