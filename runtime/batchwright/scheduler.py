"""The orchestrator: runs a flow's graph through execution backends, in one process.

One event loop; no thread or process per remote task. It keeps at most ``max_workers``
attempts in flight, polls each backend for all of its handles at once, retries failed
attempts per ``@retry``, fans out foreach steps as groups (so a backend may submit them
as one array job), follows only the case a switch step chose (a loop's every lap is a new
task of the same step, reading the lap before it), terminates everything in flight on
Ctrl-C/SIGTERM, and on resume clones the tasks that finished in the origin run instead of
re-executing them (a loop's finished laps too, one by one).

Memory per task is its small scheduling record while it is pending or running; finished
tasks leave only their id in the join they feed.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import signal
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from batchwright.aws import AwsUnreachable, Patience
from batchwright.backends import (
    DEFAULT_FOLLOW_LOGS,
    AttemptFacts,
    Backend,
    BackendOptions,
    FanOut,
    TaskHandle,
    TaskSpec,
    TaskStatus,
    WaitPolicy,
    create_backend,
)
from batchwright.batch.failures import FailureKind
from batchwright.datastore import PARAMETERS_STEP, PARAMETERS_TASK, FlowDatastore
from batchwright.datastore.journal import Journal, Submission, latest_by_task
from batchwright.decorators import RuntimeContext, StepDecorator
from batchwright.definition import FlowDefinition
from batchwright.entrypoint import EXIT_NODE_FAILED, FINAL_EXIT_CODES, TaskArguments
from batchwright.errors import UserInputError
from batchwright.events import (
    AttemptFailed,
    EventSink,
    Notice,
    RunFinished,
    RunStarted,
    TaskCloned,
    TaskSubmitted,
    TaskSucceeded,
)
from batchwright.identity import current_user
from batchwright.lease import LeaseLost, RunLease
from batchwright.multinode import try_token
from batchwright.parameters import flow_constants
from batchwright.policy import StepPolicy
from batchwright.timings import PLANNED, REPORTED, AttemptTiming, TimingRecorder, failure_class

#: Attempts running on this machine at once when ``--max-workers`` is not given.
DEFAULT_MAX_WORKERS = 16
#: The most splits one foreach may make unless ``--max-num-splits`` says otherwise.
DEFAULT_MAX_NUM_SPLITS = 100_000
#: Resume: threads reading the origin run's task metadata.
ORIGIN_READERS = 16
#: Extra seconds past a step's @timeout before the scheduler kills an attempt itself
#: (the task's own alarm should have stopped it long before). Counted, like the timeout,
#: from when the attempt started running: time spent waiting for capacity does not count.
SCHEDULER_TIMEOUT_GRACE_SECONDS = 30.0
#: An attempt whose capacity failed (a Spot reclaim) is submitted again at most this
#: many times without using a @retry; after that the failure counts as the step's.
MAX_RESUBMISSIONS = 5


@dataclass(frozen=True)
class RunOptions:
    """Settings of one run, resolved once by the CLI."""

    flow_file: str
    datastore_root: str
    max_workers: int = DEFAULT_MAX_WORKERS
    run_id: str | None = None
    #: Resume: the run to reuse finished tasks from.
    origin_run_id: str | None = None
    #: Resume: rerun this step and everything after it even if it finished.
    resume_step: str | None = None
    #: A foreach that makes more splits than this fails the run instead (a guard against
    #: an accidental million-way split).
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS
    #: How long attempts may wait to start (the backends enforce it).
    waits: WaitPolicy = field(default_factory=WaitPolicy)
    #: Running children of each array job whose logs are streamed (failed ones always are).
    follow_logs: int = DEFAULT_FOLLOW_LOGS
    #: How the run waits out throttling and outages of AWS (one for the orchestrator).
    patience: Patience = field(default_factory=Patience, compare=False)
    #: The user tags of the run (``run --tag``), already checked by the CLI.
    tags: tuple[str, ...] = ()
    #: Who starts the run (kept in its record as ``user``).
    user: str = field(default_factory=current_user)


@dataclass
class RunResult:
    """How a run ended."""

    run_id: str
    successful: bool
    failed_task: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class _Task:
    step: str
    task_id: str
    input_paths: tuple[str, ...]
    #: Open splits: (split key, position of this branch/item in it), outermost first.
    frames: tuple[tuple[str, int], ...]
    split_index: int | None = None
    group: FanOut | None = None
    attempt: int = 0
    #: When the current attempt was submitted, and when it started running (epoch s).
    submitted_at: float = 0.0
    started_at: float | None = None
    #: The scheduler's backstop for ``@timeout``: running time counts, waiting does not.
    deadline: float | None = None
    #: Submissions of the current attempt after its capacity failed, and Spot reclaims.
    resubmission: int = 0
    reclaims: int = 0
    #: Resume: the run whose still-running job this task follows (its records live there).
    adopted_from: str | None = None


def new_run_id() -> str:
    """A run id that sorts by start time (microseconds since the epoch)."""
    return str(time.time_ns() // 1000)


class Scheduler:
    """Runs one flow run to completion (or failure, or interrupt)."""

    def __init__(
        self,
        definition: FlowDefinition,
        policies: Mapping[str, StepPolicy],
        datastore: FlowDatastore,
        options: RunOptions,
        on_event: EventSink,
    ) -> None:
        self.flow_name = definition.name
        self.definition = definition
        self.graph = definition.graph
        self.policies = policies
        self.store = datastore
        self.options = options
        self.on_event = on_event
        self.run_id = options.run_id or new_run_id()
        self._next_id = 1
        self._ready: deque[_Task] = deque()
        #: Tasks made ready so far; what _submit_ready last left waiting, at which count.
        self._readied = 0
        self._left_at = -1
        self._delayed: list[tuple[float, int, _Task]] = []
        self._in_flight: dict[TaskHandle, _Task] = {}
        #: Attempts in flight on this machine (what --max-workers bounds).
        self._here = 0
        self._backends: dict[str, Backend] = {}
        #: When each backend is next due for a poll (monotonic seconds).
        self._next_poll: dict[str, float] = {}
        self._frame_sizes: dict[str, int] = {}
        #: Parallel steps in flight: every node's task, and the nodes that succeeded in
        #: the current attempt (a parallel step succeeds, fails and retries as one).
        self._gangs: dict[FanOut, list[_Task]] = {}
        self._gang_succeeded: dict[FanOut, set[str]] = {}
        #: A main node that failed only because another node did, while that node's own
        #: status is still to come (its failure is the step's error).
        self._gang_deferred: dict[FanOut, tuple[TaskHandle, _Task, TaskStatus]] = {}
        self._waiting_joins: dict[tuple[str, str], dict[int, str]] = {}
        self._failure: tuple[str, str] | None = None
        self._origin_index: dict[tuple[str, tuple[str, ...], int | None], str] = {}
        #: Resume: the metadata of those tasks, by (step, task id), read once.
        self._origin_metadata: dict[tuple[str, str], dict[str, Any]] = {}
        #: Resume: the origin run's jobs by task, which may still be running.
        self._origin_jobs: dict[
            tuple[str, tuple[str, ...], int | None], tuple[Submission, int]
        ] = {}
        self._clone_steps: set[str] = set()
        #: Resume: tasks to clone, and whether a clone is being made (see _clone).
        self._clones: deque[tuple[str, str, tuple[tuple[str, int], ...]]] = deque()
        self._cloning = False
        self.journal = Journal(datastore, self.run_id)
        #: Every attempt's timing record, written in chunks as the run goes.
        self.timings = TimingRecorder(datastore, self.run_id)
        # The run resumed first: when another orchestrator holds it, the refusal leaves
        # no trace of the new run (a folder holding only a lease would pass for a run).
        self.lease = RunLease(
            datastore, [r for r in (options.origin_run_id, self.run_id) if r is not None]
        )

    # -- public --------------------------------------------------------------------------

    def run(self, parameters: Mapping[str, Any] | None = None) -> RunResult:
        """Run the flow. ``parameters``: attribute -> value (ignored on resume).

        Raises:
            RunInUse: another live orchestrator drives this run or the one it resumes.
        """
        origin = self.options.origin_run_id
        if origin and self.store.read_done(origin, PARAMETERS_STEP, PARAMETERS_TASK) is None:
            raise UserInputError(
                f"run {self.flow_name}/{origin} has no stored parameters, so it cannot be "
                "resumed (it was not started by batchwright, or is incomplete). Start a new "
                "run instead."
            )
        self.lease.acquire()
        try:
            return self._run(parameters)
        finally:
            self._save_timings(force=True)
            for backend in self._backends.values():
                backend.close()
            self.lease.release()

    def _run(self, parameters: Mapping[str, Any] | None) -> RunResult:
        self.on_event(
            RunStarted(
                self.flow_name, self.run_id, self.store.storage.root, self.options.origin_run_id
            )
        )
        started = time.time()
        record: dict[str, Any] = {
            "status": "running",
            "started_at": started,
            "flow_file": self.options.flow_file,
            "origin_run_id": self.options.origin_run_id,
            # What the client's namespaces read: the user tags and who ran it.
            "tags": sorted(set(self.options.tags)),
            "user": self.options.user,
        }
        self.store.write_run(self.run_id, record)
        for context, decorator in self._runtime_hooks():
            decorator.runtime_init(context)
        if self.options.origin_run_id:
            self._prepare_resume()
        else:
            # The configs too: tasks anywhere, and a resume, read them from the run.
            # The flow's class-level constants too, stored once as Metaflow does.
            self.store.write_parameters(
                self.run_id,
                {
                    **flow_constants(self.definition.flow_class),
                    **(parameters or {}),
                    **self.definition.configs.artifacts(),
                },
            )
        parameters_path = f"{self.run_id}/{PARAMETERS_STEP}/{PARAMETERS_TASK}"
        self._create("start", (parameters_path,), (), None, None)
        try:
            with _sigterm_as_interrupt():
                self._loop()
        except BaseException as error:
            # Interrupts and unexpected errors alike: nothing is left running silently;
            # except when AWS cannot be reached, or another orchestrator took the run over:
            # then the jobs keep running, for a resume (or that orchestrator) to follow.
            if not isinstance(error, AwsUnreachable | LeaseLost):
                self._terminate_all()
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            self.store.write_run(
                self.run_id, {**record, "status": status, "finished_at": time.time()}
            )
            self.on_event(RunFinished(self.run_id, False, None, status))
            self._runtime_finished(False)
            raise
        successful = self._failure is None
        failed_task, reason = self._failure or (None, None)
        self.store.write_run(
            self.run_id,
            {
                **record,
                "status": "succeeded" if successful else "failed",
                "finished_at": time.time(),
                "failed_task": failed_task,
                "reason": reason,
            },
        )
        self.on_event(RunFinished(self.run_id, successful, failed_task, reason))
        self._runtime_finished(successful)
        return RunResult(self.run_id, successful, failed_task, reason)

    # -- setup ---------------------------------------------------------------------------

    def _runtime_hooks(self) -> list[tuple[RuntimeContext, StepDecorator]]:
        hooks: list[tuple[RuntimeContext, StepDecorator]] = []
        for step_name, decorators in self.definition.decorators.items():
            context = RuntimeContext(
                self.flow_name,
                step_name,
                self.run_id,
                self.options.datastore_root,
                self.policies[step_name],
            )
            hooks.extend((context, decorator) for decorator in decorators)
        return hooks

    def _runtime_finished(self, successful: bool) -> None:
        for context, decorator in self._runtime_hooks():
            decorator.runtime_finished(context, successful)

    def _prepare_resume(self) -> None:
        origin = self.options.origin_run_id
        assert origin is not None
        self.store.clone_task(origin, self.run_id, PARAMETERS_STEP, PARAMETERS_TASK, {})
        # Not through a loop's way back: the laps before the step are cloned, not re-run.
        step = self.options.resume_step
        rerun = self.graph.downstream(step, through_loops=False) if step else set()
        self._clone_steps = {n for n in self.graph.nodes if n not in rerun}
        highest = 0
        for step in self.store.list_steps(origin):
            ids = self.store.list_tasks(origin, step)
            highest = max([highest, *(int(task_id) for task_id in ids if task_id.isdigit())])
            if step not in self._clone_steps:
                continue
            for task_id, metadata in self._finished_in_origin(origin, step):
                key = (
                    step,
                    _strip_runs(metadata.get("input_paths", [])),
                    metadata.get("split_index"),
                )
                self._origin_index[key] = task_id
                self._origin_metadata[(step, task_id)] = metadata
        # Jobs the origin run submitted: some may still run (its orchestrator died).
        submissions = Journal(self.store, origin).entries()
        self._origin_jobs = dict(
            latest_by_task(
                [s for s in submissions if all(t.step in self._clone_steps for t in s.tasks)]
            )
        )
        for submission in submissions:
            for task in submission.tasks:
                if task.task_id.isdigit():
                    highest = max(highest, int(task.task_id))
        self._next_id = highest + 1

    # -- task creation ---------------------------------------------------------------------

    def _create(
        self,
        step: str,
        input_paths: tuple[str, ...],
        frames: tuple[tuple[str, int], ...],
        split_index: int | None,
        group: FanOut | None,
    ) -> None:
        key = (step, _strip_runs(input_paths), split_index)
        origin_task = self._origin_index.get(key)
        if origin_task is not None:
            self._clone(step, origin_task, frames)
            return
        if key in self._origin_jobs:
            # Follows the origin run's job of this task instead of submitting it again
            # (unless it cannot be found: it is then submitted as usual).
            adopted = self._adopted(step, input_paths, frames, split_index, *self._origin_jobs[key])
            if adopted is not None:
                self._track(*adopted)
                return
        task_id = str(self._next_id)
        self._next_id += 1
        task = _Task(step, task_id, input_paths, frames, split_index, group)
        if group is not None and group.parallel:
            self._gangs.setdefault(group, []).append(task)
        self._make_ready(task)

    def _adopted(
        self,
        step: str,
        input_paths: tuple[str, ...],
        frames: tuple[tuple[str, int], ...],
        split_index: int | None,
        submission: Submission,
        index: int,
        group: FanOut | None = None,
    ) -> tuple[TaskHandle, _Task] | None:
        """The handle on the origin run's job of this task, and the task that follows it;
        None when the backend cannot find it (or it failed)."""
        spec = self._origin_spec(step, submission, index, group)
        if spec is None:
            return None
        handle = self._backend(spec.policy.backend).reattach(spec, submission, index)
        if handle is None:
            return None
        task = _Task(step, spec.task_id, input_paths, frames, split_index, group)
        task.attempt, task.resubmission = spec.attempt, submission.resubmission
        task.submitted_at, task.adopted_from = submission.recorded_at, spec.arguments.run_id
        return handle, task

    def _origin_spec(
        self, step: str, submission: Submission, index: int, group: FanOut | None
    ) -> TaskSpec | None:
        """Member ``index`` of a submission of the origin run, as the attempt it was (None
        when the step runs on another backend now)."""
        origin = self.options.origin_run_id
        policy = self.policies[step]
        if origin is None or submission.backend != policy.backend:
            return None
        recorded = submission.tasks[index]
        arguments = TaskArguments(
            flow_file=self.options.flow_file,
            flow=self.flow_name,
            step=step,
            run_id=origin,
            task_id=recorded.task_id,
            datastore_root=self.options.datastore_root,
            input_paths=recorded.input_paths,
            split_index=recorded.split_index,
            retry_count=recorded.attempt,
            max_retries=policy.retries,
            with_options=self.definition.with_options,
        )
        return TaskSpec(arguments, policy, group, resubmission=submission.resubmission)

    def _finished_in_origin(self, origin: str, step: str) -> list[tuple[str, dict[str, Any]]]:
        """The origin run's finished tasks of ``step`` and their metadata: which finished
        from one listing, then their metadata read in parallel (a GET each)."""
        from concurrent.futures import ThreadPoolExecutor

        finished = self.store.finished_attempts(origin, step)

        def read(task_id: str) -> dict[str, Any] | None:
            return self.store.finished_metadata(origin, step, task_id, finished[task_id])

        with ThreadPoolExecutor(max_workers=ORIGIN_READERS) as pool:
            found = zip(finished, pool.map(read, finished), strict=True)
            return [(task_id, metadata) for task_id, metadata in found if metadata is not None]

    def _clone(self, step: str, task_id: str, frames: tuple[tuple[str, int], ...]) -> None:
        """Reuse the origin run's finished task. A clone's successors are often clones too
        (each lap of a loop is one): they are cloned here one after the other, not in
        nested calls, so a loop of many laps does not exhaust Python's recursion limit."""
        self._clones.append((step, task_id, frames))
        if self._cloning:
            return
        self._cloning = True
        try:
            while self._clones:
                self._clone_one(*self._clones.popleft())
        finally:
            self._cloning = False

    def _clone_one(self, step: str, task_id: str, frames: tuple[tuple[str, int], ...]) -> None:
        origin = self.options.origin_run_id
        assert origin is not None
        metadata = self.store.clone_task(
            origin,
            self.run_id,
            step,
            task_id,
            {"origin_run_id": origin, "origin_task_id": task_id, "cloned": True},
            self._origin_metadata.pop((step, task_id), None),
        )
        self.on_event(
            TaskCloned(
                f"{self.flow_name}/{self.run_id}/{step}/{task_id}",
                f"{self.flow_name}/{origin}/{step}/{task_id}",
            )
        )
        task = _Task(
            step,
            task_id,
            tuple(metadata.get("input_paths", ())),
            frames,
            metadata.get("split_index"),
        )
        self._advance(task, metadata.get("foreach_num_splits"), _chosen(metadata))

    def _advance(self, task: _Task, num_splits: int | None, chosen: str | None = None) -> None:
        """Create the tasks that follow a finished ``task`` (for a switch, the one step
        its ``chosen`` case names)."""
        node = self.graph[task.step]
        me = f"{self.run_id}/{task.step}/{task.task_id}"
        if node.type == "end":
            return
        if node.is_switch:
            if chosen not in node.out_funcs:
                self._refuse_case(task, chosen)
                return
            # One case runs, in the splits the switch is in: a lap of a loop is a new task
            # of the same step, whose input is the lap before it (lint keeps joins and
            # splits out of loops, so the frames stay as they are).
            self._create(chosen, (me,), task.frames, task.split_index, None)
            return
        if node.is_foreach:
            assert num_splits is not None
            if num_splits > self.options.max_num_splits:
                self._refuse_splits(task, num_splits)
                return
            key = f"{task.step}/{task.task_id}"
            self._frame_sizes[key] = num_splits
            child = node.out_funcs[0]
            group = FanOut(key, child, num_splits, parallel=node.parallel_foreach)
            if group.parallel and self._too_many_nodes(task, child, num_splits):
                return
            if group.parallel and self._resume_parallel(child, (me,), task.frames, group):
                return
            for index in range(num_splits):
                self._create(child, (me,), (*task.frames, (key, index)), index, group)
            return
        if node.is_split:
            key = f"{task.step}/{task.task_id}"
            self._frame_sizes[key] = len(node.out_funcs)
            for index, child in enumerate(node.out_funcs):
                self._create(child, (me,), (*task.frames, (key, index)), None, None)
            return
        child = node.out_funcs[0]
        if self.graph[child].type != "join":
            self._create(child, (me,), task.frames, task.split_index, None)
            return
        split_key, position = task.frames[-1]
        waiting = self._waiting_joins.setdefault((child, split_key), {})
        waiting[position] = me
        if len(waiting) == self._frame_sizes[split_key]:
            del self._waiting_joins[(child, split_key)]
            del self._frame_sizes[split_key]
            inputs = tuple(waiting[i] for i in sorted(waiting))
            outer = task.frames[:-1]
            # A step inside an outer foreach keeps that foreach's index.
            self._create(child, inputs, outer, None, None)

    def _resume_parallel(
        self,
        step: str,
        input_paths: tuple[str, ...],
        frames: tuple[tuple[str, int], ...],
        group: FanOut,
    ) -> bool:
        """Resume of a parallel step, whole or not at all: its nodes are reused when every
        one finished in the origin run, and its multi-node job is followed when it still
        runs with every node (True: the nodes are in flight). Otherwise every node runs
        again, and a job of the origin run that still runs is stopped first."""
        keys = [(step, _strip_runs(input_paths), index) for index in range(group.size)]
        if all(key in self._origin_index for key in keys):
            return False  # each is cloned as it is created
        for key in keys:
            self._origin_index.pop(key, None)
        jobs = [self._origin_jobs.pop(key, None) for key in keys]
        found = [job for job in jobs if job is not None]
        if not found:
            return False
        adopted: list[tuple[TaskHandle, _Task]] = []
        if len(found) == len(keys) and len({s.job_name for s, _ in found}) == 1:
            for index, (submission, member) in enumerate(found):
                member_frames = (*frames, (group.parent, index))
                one = self._adopted(
                    step, input_paths, member_frames, index, submission, member, group
                )
                if one is None:
                    break
                adopted.append(one)
        if len(adopted) < len(keys):
            # Some nodes still run and others failed, or the nodes' jobs differ: whatever
            # of them still runs is stopped (one node's handle stops its whole job), and
            # every node runs again.
            self._stop_origin_jobs(step, found, group)
            return False
        for handle, task in adopted:
            self._gangs.setdefault(group, []).append(task)
            self._track(handle, task)
        return True

    def _stop_origin_jobs(
        self, step: str, found: list[tuple[Submission, int]], group: FanOut
    ) -> None:
        """Stops the origin run's jobs of a parallel step that is run again."""
        handles: dict[str, TaskHandle] = {}
        for submission, index in found:
            job_id = submission.job_id_of(index)
            spec = self._origin_spec(step, submission, index, group)
            if job_id is not None and spec is not None and submission.job_name not in handles:
                handles[submission.job_name] = TaskHandle(spec.policy.backend, job_id, spec)
        for handle in handles.values():
            self._backend(handle.backend).terminate([handle])

    def _too_many_nodes(self, task: _Task, step: str, nodes: int) -> bool:
        """A ``num_parallel`` computed at run time that the parallel step's queue can never
        run (one instance per node within its max vCPUs): the run fails before anything of
        the step is submitted. True when refused."""
        job = self.policies[step].batch
        if job is None or job.max_nodes is None or nodes <= job.max_nodes:
            return False
        me = (f"{task.step}/{task.task_id}",)
        if all((step, me, index) in self._origin_index for index in range(nodes)):
            return False  # finished in the run this one resumes: reused, not run
        pathspec = f"{self.flow_name}/{self.run_id}/{task.step}/{task.task_id}"
        reason = (
            f"step '{task.step}' asked for num_parallel={nodes} nodes of parallel step '{step}', "
            f"and queue '{job.target.label}' holds at most {job.max_nodes} "
            f"{job.node_instance_type or 'instance'} node(s) at once (one instance per node, "
            "within its max vCPUs); nothing of it was started. Ask for fewer nodes, or raise "
            "the queue's max vCPUs."
        )
        self.on_event(AttemptFailed(pathspec, task.attempt, reason, None))
        if self._failure is None:
            self._failure = (pathspec, reason)
        return True

    def _refuse_case(self, task: _Task, chosen: str | None) -> None:
        """A switch's task finished without a case the graph knows (its record names
        none, or another step): the run fails rather than guessing."""
        node = self.graph[task.step]
        pathspec = f"{self.flow_name}/{self.run_id}/{task.step}/{task.task_id}"
        reason = (
            f"switch step '{task.step}' finished but its record names "
            f"{repr(chosen) if chosen else 'no case'} as the step to run next, not one of "
            f"its cases ({', '.join(node.out_funcs)}); the flow file may have changed since "
            "the task ran. Run the flow again."
        )
        self.on_event(AttemptFailed(pathspec, task.attempt, reason, None))
        if self._failure is None:
            self._failure = (pathspec, reason)

    def _refuse_splits(self, task: _Task, num_splits: int) -> None:
        pathspec = f"{self.flow_name}/{self.run_id}/{task.step}/{task.task_id}"
        cap = self.options.max_num_splits
        node = self.graph[task.step]
        what = "num_parallel" if node.parallel_foreach else f"foreach over '{node.foreach_param}'"
        reason = (
            f"{what} in step '{task.step}' made "
            f"{num_splits:,} splits, more than --max-num-splits {cap:,}; nothing of it was "
            f"started. If that is intended, resume with --max-num-splits {num_splits}."
        )
        self.on_event(AttemptFailed(pathspec, task.attempt, reason, None))
        if self._failure is None:
            self._failure = (pathspec, reason)

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self.lease.renew()
            self._save_timings()
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                self._make_ready(heapq.heappop(self._delayed)[2])
            if self._failure is None:
                self._submit_ready()
            if not self._in_flight and (
                self._failure is not None or not (self._ready or self._delayed)
            ):
                return
            changed = self._poll()
            if not changed:
                time.sleep(self._idle_interval())

    def _idle_interval(self) -> float:
        # Sleep until the next backend with attempts in flight is due for a poll: a
        # remote backend's slow cadence is not overridden by an idle local one.
        busy = {handle.backend for handle in self._in_flight}
        now = time.monotonic()
        dues = [self._next_poll.get(name, now) - now for name in busy]
        wait = max(0.0, min(dues)) if dues else 0.05
        if self._delayed and not self._in_flight:
            wait = max(0.0, min(1.0, self._delayed[0][0] - time.monotonic()))
        return wait

    def _submit_ready(self) -> None:
        """Submits what is ready: attempts that run on this machine up to --max-workers;
        a remote backend's whole fan-out at once (its compute environments bound how many
        run), in groups of at most its ``max_group`` (one array job each)."""
        if self._left_at == self._readied and self._here >= self.options.max_workers:
            return  # all that waits is local, and nothing freed a worker or became ready
        blocked: deque[_Task] = deque()
        #: A parallel step waits here for workers: what comes after it does not take them.
        reserved = False
        while self._ready:
            first = self._ready.popleft()
            policy = self.policies[first.step]
            backend = self._backend(policy.backend)
            room = self.options.max_workers - self._here if backend.runs_here else backend.max_group
            if reserved and backend.runs_here:
                blocked.append(first)
                continue
            if first.group is not None and first.group.parallel:
                # A parallel step's nodes start together or not at all: on this machine
                # once enough workers are free (or none is busy, for more nodes than
                # --max-workers), so that they can meet.
                gang = [first]
                while self._ready and _batch_key(self._ready[0]) == _batch_key(first):
                    gang.append(self._ready.popleft())
                if room < len(gang) and self._here > 0:
                    blocked.extend(gang)
                    reserved = reserved or backend.runs_here
                    continue
                room = len(gang)
                self._ready.extendleft(reversed(gang[1:]))
            if room <= 0:
                blocked.append(first)
                continue
            batch = [first]
            # Members of one fan-out at the same point of their lives go as one array job.
            while (
                len(batch) < room
                and first.group is not None
                and self._ready
                and _batch_key(self._ready[0]) == _batch_key(first)
            ):
                batch.append(self._ready.popleft())
            if first.group is not None and first.group.parallel:
                batch.sort(key=lambda t: t.split_index or 0)  # member i is node i
            specs = [self._spec(t, policy) for t in batch]
            now = time.time()  # handed over now: a local attempt may start at once
            handles = backend.submit(specs)
            width = first.group.size if first.group is not None else 1
            for task, handle in zip(batch, handles, strict=True):
                task.submitted_at, task.started_at, task.deadline = now, None, None
                self._track(handle, task)
                self.on_event(
                    TaskSubmitted(handle.task.pathspec, task.attempt, backend.name, width)
                )
        self._ready = blocked
        self._left_at = self._readied

    def _make_ready(self, task: _Task, *, first: bool = False) -> None:
        if first:
            self._ready.appendleft(task)
        else:
            self._ready.append(task)
        self._readied += 1

    def _track(self, handle: TaskHandle, task: _Task) -> None:
        self._in_flight[handle] = task
        self._here += self._backends[handle.backend].runs_here

    def _untrack(self, handle: TaskHandle) -> _Task:
        self._here -= self._backends[handle.backend].runs_here
        return self._in_flight.pop(handle)

    def _poll(self) -> bool:
        changed = False
        by_backend: dict[str, list[TaskHandle]] = {}
        for handle in self._in_flight:
            by_backend.setdefault(handle.backend, []).append(handle)
        now = time.monotonic()
        for name, handles in by_backend.items():
            if self._next_poll.get(name, now) > now:
                continue
            backend = self._backends[name]
            clock = time.time()
            overdue = [h for h in handles if (d := self._in_flight[h].deadline) and d < clock]
            if overdue:
                backend.terminate(overdue)
            statuses = backend.poll(handles)
            self._next_poll[name] = time.monotonic() + backend.poll_interval
            for handle, status in zip(handles, statuses, strict=True):
                task = self._in_flight.get(handle)
                if task is None:
                    continue  # stopped with its parallel step's failed node, this poll

                if status.state == "running" and task.started_at is None:
                    self._started(task, status.started_at or time.time())
                if handle in overdue and status.is_finished:
                    status = TaskStatus.failed(
                        self._timeout_reason(task),
                        status.exit_code,
                        facts=dataclasses.replace(
                            status.facts or AttemptFacts(), failure=FailureKind.TIMEOUT.value
                        ),
                    )
                if status.is_finished:
                    changed = True
                    self._finished(handle, status)
        return changed

    def _started(self, task: _Task, started_at: float) -> None:
        """The attempt runs: its @timeout backstop counts from now on."""
        task.started_at = started_at
        limit = self.policies[task.step].timeout_seconds
        if limit:
            task.deadline = started_at + limit + SCHEDULER_TIMEOUT_GRACE_SECONDS

    def _timeout_reason(self, task: _Task) -> str:
        limit = self.policies[task.step].timeout_seconds or 0
        started = task.started_at or task.submitted_at
        return (
            f"killed by the scheduler: it ran {time.time() - started:.0f} s, past its "
            f"@timeout of {limit:g} s (+{SCHEDULER_TIMEOUT_GRACE_SECONDS:g} s grace), after "
            f"waiting {started - task.submitted_at:.0f} s to start"
        )

    def _finished(self, handle: TaskHandle, status: TaskStatus) -> None:
        task = self._untrack(handle)
        self._record(handle, task, status)
        if status.state == "failed":
            self._record_lost_attempt(task, status)
        if task.group is not None and task.group.parallel:
            self._node_finished(handle, task, status)
            return
        pathspec = handle.task.pathspec
        if status.state == "succeeded" and task.adopted_from is not None:
            # A job of the origin run finished after its orchestrator died: its records
            # are the origin run's; take them over like any finished task.
            self.on_event(TaskSucceeded(pathspec, task.attempt))
            self._clone(task.step, task.task_id, task.frames)
            return
        task.adopted_from = None  # a retry or resubmission runs in this run
        if status.state == "succeeded":
            self.on_event(TaskSucceeded(pathspec, task.attempt))
            metadata: dict[str, Any] = {}
            node = self.graph[task.step]
            if node.is_foreach or node.is_switch:
                metadata = self.store.read_metadata(self.run_id, task.step, task.task_id) or {}
            if self._failure is None:
                self._advance(task, metadata.get("foreach_num_splits"), _chosen(metadata))
            return
        self._fail_or_again(pathspec, task, status, status.reason, [task])

    def _record_lost_attempt(self, task: _Task, status: TaskStatus) -> None:
        """An attempt that ended without writing its record (killed by a signal, out of
        memory, its host lost, or a node the scheduler stopped because another node of
        its parallel step failed) gets one written here, so the client still lists the
        attempt (``Task.metadata``) and says why it ended; its output, if any, is where
        the backend keeps it (the console here, CloudWatch on AWS Batch)."""
        if task.adopted_from is not None:
            return  # its records belong to the run it resumed
        started = task.started_at or status.started_at
        if started is None and status.facts is not None:
            started = status.facts.started_at
        if started is None:
            return  # it never ran (e.g. no compute environment could start it)
        found = self.store.read_metadata(self.run_id, task.step, task.task_id, task.attempt)
        if found is not None:
            return
        self.store.write_metadata(
            self.run_id,
            task.step,
            task.task_id,
            task.attempt,
            {
                "flow": self.flow_name,
                "run_id": self.run_id,
                "step": task.step,
                "task_id": task.task_id,
                "attempt": task.attempt,
                "input_paths": list(task.input_paths),
                "split_index": task.split_index,
                "started_at": started,
                "finished_at": time.time(),
                "status": "failed",
                "exit_code": status.exit_code,
                "failure": status.reason,
                "recorded_by": "scheduler",
                "artifacts": {},
            },
        )
        output = dict(status.facts.output or {}) if status.facts is not None else {}
        if status.exit_code is not None and status.exit_code < 0:
            # Say so in its stderr, as Metaflow does (e.g. "... (segmentation fault)").
            number = -status.exit_code
            try:
                name = f"{signal.Signals(number).name} ({(signal.strsignal(number) or '').lower()})"
            except ValueError:
                name = str(number)
            notice = f"\n[batchwright] the attempt's process was killed by signal {name}\n"
            output["stderr"] = output.get("stderr", b"") + notice.encode()
        for stream, data in output.items():
            self.store.write_log(
                self.run_id, task.step, task.task_id, task.attempt, stream, io.BytesIO(data)
            )

    def _fail_or_again(
        self, pathspec: str, task: _Task, status: TaskStatus, reason: str, members: list[_Task]
    ) -> bool:
        """After ``task``'s attempt failed: its ``members`` (the task itself, or every node
        of its parallel step) are submitted again when the capacity failed (no ``@retry``
        used), retried when ``@retry`` allows, or the run fails with ``reason``. Returns
        whether they go again."""
        policy = self.policies[task.step]
        if status.infrastructure and task.resubmission < MAX_RESUBMISSIONS and not self._failure:
            # The capacity failed, not the step: the same attempt again, no @retry used.
            self.on_event(
                AttemptFailed(pathspec, task.attempt, reason, status.exit_code, 0.0, True)
            )
            for member in reversed(members):  # to the front, in their order
                member.adopted_from = None  # it runs again in this run
                member.resubmission += 1
                member.reclaims += status.reclaims
                self._make_ready(member, first=True)
            return True
        if (
            policy.catch
            and status.retryable
            and task.attempt == policy.retries
            and self._failure is None
        ):
            # The last attempt died without raising (a signal, an out-of-memory kill, a
            # lost host), so @catch could not see it: one more attempt records
            # FailureHandledByCatch in its var instead of running the step.
            self.on_event(AttemptFailed(pathspec, task.attempt, reason, status.exit_code, 0.0))
            for member in reversed(members):  # to the front, in their order
                member.adopted_from = None
                member.attempt = task.attempt + 1
                member.resubmission = member.reclaims = 0
                self._make_ready(member, first=True)
            return True
        if status.retryable and task.attempt < policy.retries and self._failure is None:
            delay = policy.retry_delay_seconds
            self.on_event(AttemptFailed(pathspec, task.attempt, reason, status.exit_code, delay))
            release, attempt = time.monotonic() + delay, task.attempt + 1
            for member in members:
                member.adopted_from = None
                member.attempt = attempt
                member.resubmission = member.reclaims = 0
                heapq.heappush(self._delayed, (release, id(member), member))
            return True
        self.on_event(AttemptFailed(pathspec, task.attempt, reason, status.exit_code))
        if self._failure is None:
            self._failure = (pathspec, reason)
        return False

    def _node_finished(self, handle: TaskHandle, task: _Task, status: TaskStatus) -> None:
        """One node of a parallel step ended. The step goes on once every node succeeded;
        the first node to fail stops the others, and the whole step is then submitted
        again (capacity failure), retried (``@retry``) or failed, with that node's error."""
        group = task.group
        assert group is not None
        members = self._gangs[group]
        pathspec = handle.task.pathspec
        in_flight = any(t.group == group for t in self._in_flight.values())
        if status.state == "failed":
            # The main node names the node whose failure made it give up: that one is to
            # blame, not a node Batch stopped when the main node exited.
            cause = self._stored_cause(members, task.attempt)
            if cause is not None:
                task, status = cause
                run = task.adopted_from or self.run_id
                pathspec = f"{self.flow_name}/{run}/{task.step}/{task.task_id}"
            elif status.exit_code == EXIT_NODE_FAILED and in_flight:
                self._gang_deferred[group] = (handle, task, status)
                return
        if status.state == "succeeded":
            self.on_event(TaskSucceeded(pathspec, task.attempt))
            done = self._gang_succeeded.setdefault(group, set())
            done.add(task.task_id)
            deferred = self._gang_deferred.pop(group, None)
            if deferred is not None and not in_flight:
                self._node_finished(*deferred[:2], dataclasses.replace(deferred[2], exit_code=1))
            elif deferred is not None:
                self._gang_deferred[group] = deferred
            elif len(done) == len(members):
                del self._gangs[group], self._gang_succeeded[group]
                if self._failure is None:
                    for member in members:
                        if member.adopted_from is not None:
                            # Followed from the run it resumes: its records are there.
                            self._clone(member.step, member.task_id, member.frames)
                        else:
                            self._advance(member, None)
            return
        self._gang_succeeded.pop(group, None)
        self._gang_deferred.pop(group, None)
        others = [h for h, t in self._in_flight.items() if t.group == group]
        if others:
            self._backend(handle.backend).terminate(others)
            stopped = TaskStatus.failed(
                f"stopped: node {task.split_index} of the parallel step failed",
                facts=AttemptFacts(failure=FailureKind.TERMINATED.value),
            )
            for other in others:
                stopped_task = self._untrack(other)
                self._record(other, stopped_task, stopped)
                self._record_lost_attempt(stopped_task, stopped)
        reason = f"node {task.split_index}: {status.reason}"
        if not self._fail_or_again(pathspec, task, status, reason, members):
            del self._gangs[group]

    def _stored_cause(self, members: list[_Task], attempt: int) -> tuple[_Task, TaskStatus] | None:
        """The node the main node of a parallel step saw fail in ``attempt`` (its stored
        ``failed_node``), and that failure; None when the main node recorded none."""
        main = next((m for m in members if not m.split_index), None)
        if main is None:
            return None
        run = main.adopted_from or self.run_id
        metadata = self.store.read_metadata(run, main.step, main.task_id, attempt) or {}
        failed = metadata.get("failed_node")
        # Only this try's record: a group submitted again keeps its attempt number.
        if not failed or metadata.get("parallel_try") != try_token(attempt, main.resubmission):
            return None
        culprit = next((m for m in members if m.split_index == failed["node"]), None)
        if culprit is None:
            return None
        code = failed.get("exit_code")
        status = TaskStatus.failed(
            f"the step failed with exit code {code} (task {culprit.task_id}); its output is "
            "above and in its log",
            code,
            retryable=code not in FINAL_EXIT_CODES,
        )
        return culprit, status

    def _terminate_all(self) -> None:
        by_backend: dict[str, list[TaskHandle]] = {}
        for handle in self._in_flight:
            by_backend.setdefault(handle.backend, []).append(handle)
        for name, handles in by_backend.items():
            self._backends[name].terminate(handles)
        stopped = TaskStatus.failed(
            "stopped: the run ended while it was in flight",
            facts=AttemptFacts(failure=FailureKind.TERMINATED.value),
        )
        for handle, task in self._in_flight.items():
            self._record(handle, task, stopped)
        self._in_flight.clear()
        self._here = 0

    def _save_timings(self, *, force: bool = False) -> None:
        """Writes the pending timing records when due (or now): a failure to write them
        is said, and never ends or changes the run's outcome (they are tried again)."""
        if not (force or self.timings.due()):
            return
        try:
            self.timings.flush()
        except Exception as error:
            self.on_event(
                Notice(f"could not write the run's timing records ({error}); will try again")
            )

    def _record(self, handle: TaskHandle, task: _Task, status: TaskStatus) -> None:
        """Keep the timing record of an attempt that ended (see :mod:`batchwright.timings`)."""
        facts = status.facts or AttemptFacts()
        now = time.time()
        spec = handle.task
        job = self.policies[task.step].batch if handle.backend != "local" else None
        target = job.target_after(spec.reclaims) if job is not None else None
        footprint = job.footprint_after(spec.reclaims) if job is not None else None
        planned_type = footprint.instance_type if footprint is not None else None
        self.timings.record(
            AttemptTiming(
                step=task.step,
                task_id=task.task_id,
                attempt=spec.attempt,
                submitted_at=task.submitted_at or now,
                stopped_at=facts.stopped_at or now,
                state="succeeded" if status.state == "succeeded" else "failed",
                backend=handle.backend,
                job_id=handle.id if handle.backend != "local" else None,
                resubmission=spec.resubmission,
                started_at=facts.started_at or task.started_at,
                queue=target.label if target is not None else None,
                compute_environment=facts.compute_environment,
                platform=target.platform if target is not None else None,
                region=target.region if target is not None else None,
                instance_type=facts.instance_type or planned_type,
                instance_type_source=REPORTED
                if facts.instance_type
                else (PLANNED if planned_type else None),
                vcpus=footprint.vcpus if footprint is not None else None,
                memory_mib=footprint.memory_mib if footprint is not None else None,
                gpus=footprint.gpus if footprint is not None else 0,
                exit_code=status.exit_code,
                failure=None
                if status.state == "succeeded"
                else failure_class(
                    status.exit_code,
                    reported=facts.failure,
                    infrastructure=status.infrastructure,
                ),
                reason=status.reason,
            )
        )
        self._save_timings()

    # -- per-step settings -----------------------------------------------------------------

    def _backend(self, name: str) -> Backend:
        if name not in self._backends:
            options = BackendOptions(
                self.flow_name,
                self.run_id,
                self.options.datastore_root,
                self.on_event,
                self.options.patience,
                self.options.waits,
                self.journal,
                self.options.follow_logs,
                self.options.user,
            )
            self._backends[name] = create_backend(name, options)
        return self._backends[name]

    def _spec(self, task: _Task, policy: StepPolicy) -> TaskSpec:
        arguments = TaskArguments(
            flow_file=self.options.flow_file,
            flow=self.flow_name,
            step=task.step,
            run_id=self.run_id,
            task_id=task.task_id,
            datastore_root=self.options.datastore_root,
            input_paths=task.input_paths,
            split_index=task.split_index,
            retry_count=task.attempt,
            max_retries=policy.retries,
            origin_run_id=self.options.origin_run_id,
            with_options=self.definition.with_options,
        )
        return TaskSpec(arguments, policy, task.group, task.resubmission, task.reclaims)


def _chosen(metadata: Mapping[str, Any]) -> str | None:
    """The case a switch's task chose, from its record (``next_steps`` holds only it)."""
    steps = metadata.get("next_steps") or []
    return str(steps[0]) if len(steps) == 1 else None


def _batch_key(task: _Task) -> tuple[object, ...]:
    return (task.group, task.attempt, task.resubmission, task.reclaims)


def _strip_runs(paths: Sequence[str]) -> tuple[str, ...]:
    """Input pathspecs without their run id (``run/step/task`` -> ``step/task``)."""
    return tuple(p.split("/", 1)[1] if "/" in p else p for p in paths)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the loop runs (main thread only)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
