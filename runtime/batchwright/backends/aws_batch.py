"""The AWS Batch backend: ``submit`` is SubmitJob, ``poll`` is DescribeJobs, ``terminate``
is TerminateJob.

One instance serves a whole run, in the scheduler's process. It owns no loop and no
thread; the scheduler calls it. What it keeps is small and per run:

- the code package, built and uploaded (content-addressed) at the first submission;
- the job definitions it looked up or registered, by content-hash name, so each distinct
  definition costs one DescribeJobDefinitions (and at most one RegisterJobDefinition);
- for each job in flight: its last status and its CloudWatch Logs forward token.

Polling asks DescribeJobs about up to 100 jobs per call; a job not yet visible right
after SubmitJob counts as still queued. A foreach fan-out handed over as a group becomes
one array job (up to 10,000 children), followed through its parent: the parent's record
counts the children by status, ListJobs by array and status names the failed ones, and
only those (and :attr:`BackendOptions.follow_logs` running ones, for their logs) are
described, so a poll costs the same for 10 children or 10,000. The interval adapts: 1 s
after a change that needs acting on (a job's state, an array's failures or its end),
growing by half to :data:`MAX_POLL_INTERVAL` otherwise (children merely progressing),
each interval spread by :data:`POLL_JITTER` so that many runs started together do not
poll in step. botocore's standard retry mode backs off with jitter on throttling and 5xx.
SubmitJob goes through a client-side rate limiter below Batch's 50 TPS.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchwright import aws, codepackage
from batchwright.backends.base import (
    AttemptFacts,
    Backend,
    BackendOptions,
    TaskHandle,
    TaskSpec,
    TaskStatus,
)
from batchwright.batch.definition import LAST_USED_TAG
from batchwright.batch.failures import FailureKind, classify_job, count_reclaims
from batchwright.batch.jobenv import forwarded_aws_environment
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.submission import ARRAY_SIZE_RANGE, TaskInvocation
from batchwright.datastore import FlowDatastore
from batchwright.datastore.journal import Submission, SubmittedTask
from batchwright.entrypoint import (
    ARRAY_INDEX_VARIABLE,
    EXIT_INTEGRITY,
    FINAL_EXIT_CODES,
    NODE_INDEX_VARIABLE,
    array_arguments,
)
from batchwright.entrypoint.bootstrap import container_command
from batchwright.errors import PlanError, UserInputError
from batchwright.events import ArrayProgress, Notice, TaskOutput, TaskStatusChanged, TaskWaiting
from batchwright.identity import USER_VARIABLE
from batchwright.multinode import group_environment, node_stored, try_token
from batchwright.policy import BatchJobPolicy

#: Batch's SubmitJob limit is 50 per second; stay below it.
SUBMIT_RATE_PER_SECOND = 40.0
#: The slowest SubmitJob rate throttling can push the limiter to, and its recovery step.
MIN_RATE = 1.0
RATE_STEP = 1.0
#: DescribeJobs takes at most 100 job ids.
DESCRIBE_BATCH = 100
#: ListJobs answers at most 1,000 jobs a page when it is asked by status.
LIST_PAGE = 1000
MIN_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 8.0
#: Growth of the poll interval per poll that saw no change.
POLL_BACKOFF = 1.5
#: Each interval is spread uniformly by this fraction either way.
POLL_JITTER = 0.2
#: Running jobs' logs are fetched at most this often (one GetLogEvents per job).
LOG_INTERVAL = 5.0
#: How often, at most, a failed job makes the backend re-check the run's code package.
PACKAGE_CHECK_INTERVAL = 60.0
DEFAULT_LOG_GROUP = "/aws/batch/job"
#: Failure kinds a user ``@retry`` cannot fix: the same request fails the same way.
NOT_RETRYABLE = frozenset({FailureKind.IMAGE_PULL, FailureKind.STUCK_WAITING})
#: Job states before RUNNING: the attempt waits.
WAITING_STATES = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"})
#: A wait that goes on is reported again this often.
WAIT_REPORT_SECONDS = 120.0
#: Lines of a job's output remembered, and of a failed attempt's stored stderr shown.
SHOWN_LINES = 40
#: CloudWatch Logs calls try at most this often: logs must never hold up the run.
LOGS_ATTEMPTS = 2


def attempt_facts(job: Mapping[str, Any]) -> AttemptFacts:
    """What a finished job's record says about its last attempt, for its timing record:
    start and stop, the instance type where Batch reports it, and the failure class."""

    def seconds(value: Any) -> float | None:
        return value / 1000 if isinstance(value, int | float) else None

    container = job.get("container") or {}
    diagnosis = classify_job(job) if job.get("status") == "FAILED" else None
    return AttemptFacts(
        started_at=seconds(job.get("startedAt")),
        stopped_at=seconds(job.get("stoppedAt")),
        instance_type=container.get("instanceType") or None,
        # An unknown cause is left to the exit code the task recorded (emulators and
        # some failures carry none in the record).
        failure=diagnosis.kind.value
        if diagnosis is not None and diagnosis.kind != FailureKind.UNKNOWN
        else None,
    )


#: Between a multi-node job's id and a node's index in the node's own job id (``id#2``).
NODE_SEPARATOR = "#"
#: What a node not shown yet takes from its multi-node job's record.
_JOB_STATE_KEYS = frozenset(
    {"jobId", "jobArn", "jobName", "jobQueue", "jobDefinition", "status", "statusReason"}
    | {"createdAt", "startedAt", "stoppedAt"}
)


def _log_groups(environment_group: str | None) -> tuple[str, ...]:
    """Where a job's logs may be when DescribeJobs does not say (see :class:`_Job`)."""
    return tuple(dict.fromkeys(g for g in (environment_group, DEFAULT_LOG_GROUP) if g))


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``.

    The rate adapts to AWS: each throttled call halves it (down to :data:`MIN_RATE`), each
    call that went through raises it by :data:`RATE_STEP` again, up to the ceiling it
    started with (additive increase, multiplicative decrease).
    """

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.ceiling = rate
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def throttled(self) -> None:
        """AWS said "slow down": halve the rate."""
        self.rate = max(MIN_RATE, self.rate / 2)
        self.tokens = min(self.tokens, 1.0)

    def recovered(self) -> None:
        """A call went through: creep back towards the ceiling."""
        self.rate = min(self.ceiling, self.rate + RATE_STEP)

    def acquire(self) -> None:
        """Blocks until a token is available, then takes it."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            time.sleep((1 - self.tokens) / self.rate)


@dataclass
class _Job:
    """What the backend remembers about one job (or array child) in flight."""

    pathspec: str
    #: The queue's name, for messages.
    queue: str
    #: When SubmitJob returned (seconds since the epoch).
    submitted_at: float
    #: The job lands on Spot capacity with an on-demand queue to move to.
    escalates: bool = False
    #: The array job it is a child of, if any.
    parent: str | None = None
    #: Its node index, for a node of a multi-node job (followed as ``<job id>#<node>``).
    node: int | None = None
    status: str = "SUBMITTED"
    reason: str = ""
    #: Whether DescribeJobs has shown it at least once.
    seen: bool = False
    #: When a ``MISCONFIGURATION:...`` reason was first seen (reset when it goes away).
    misconfigured_since: float | None = None
    #: When its wait was last reported.
    wait_reported_at: float = 0.0
    log_stream: str | None = None
    #: Where its logs may be: the group DescribeJobs echoes from the job definition; when
    #: it echoes none, the environment's group (which the definition names), then Batch's
    #: default (an API that ignores the definition's log configuration writes there).
    log_groups: tuple[str, ...] = (DEFAULT_LOG_GROUP,)
    log_token: str | None = None
    logs_fetched_at: float = 0.0
    #: The last lines of its output shown on the console (to tell whether a failure's
    #: traceback was among them).
    shown: deque[str] = field(default_factory=lambda: deque(maxlen=SHOWN_LINES))


@dataclass
class _Array:
    """What the backend remembers about one array job: its children's counts by status,
    and the children known to have failed."""

    parent: str
    size: int
    summary: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    #: Once it ended: the task ids of its step the datastore lists as finished.
    finished: set[str] | None = None


@dataclass
class AwsBatchBackend(Backend):
    """Runs task attempts as AWS Batch jobs (see the module docstring)."""

    run: BackendOptions
    name: str = "batch"
    poll_interval: float = MIN_POLL_INTERVAL
    runs_here: bool = False
    max_group: int = ARRAY_SIZE_RANGE[1]
    #: The Batch and CloudWatch Logs clients; made with :func:`batchwright.aws.client`
    #: unless given (tests give stubbed ones).
    batch_client: Any = None
    logs_client: Any = None
    #: The client SubmitJob goes through: one that never retries by itself, because a
    #: SubmitJob whose answer was lost may have created the job (see :meth:`_submit_job`).
    #: The Batch client when one was given.
    submit_client: Any = None
    #: A number in [0, 1) for each poll's jitter.
    random: Callable[[], float] = random.random
    #: The time, in seconds since the epoch (tests give a fake one).
    clock: Callable[[], float] = time.time
    _base_interval: float = MIN_POLL_INTERVAL
    #: The run's code package: its ``s3://`` URL and SHA-256, once uploaded.
    _package: tuple[str, str] | None = None
    #: When the package was last checked, and the verdict (see :meth:`_package_changed`).
    _package_check: tuple[float, str] = (float("-inf"), "")
    _definitions: dict[str, str] = field(default_factory=dict)
    #: The date each definition was last stamped used (``batchwright:last-used``).
    _stamped: dict[str, str] = field(default_factory=dict)
    _jobs: dict[str, _Job] = field(default_factory=dict)
    #: Whether CloudWatch Logs failed once (warned about, then left alone).
    _logs_broken: bool = False
    #: False once the Batch API showed it does not run array jobs: members go one by one.
    _arrays_supported: bool = True
    #: The array jobs followed, by parent id.
    _arrays: dict[str, _Array] = field(default_factory=dict)
    _stopped: set[str] = field(default_factory=set)
    _changed: bool = False
    _stores: dict[str, FlowDatastore] = field(default_factory=dict)
    _limiter: RateLimiter = field(default_factory=lambda: RateLimiter(SUBMIT_RATE_PER_SECOND))
    #: Batch API calls made, by operation (shown by benchmarks and tests).
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        root = self.run.datastore_root
        if not root.startswith("s3://"):
            raise UserInputError(
                f"@batch steps of {self.run.flow_name} need an S3 datastore, and this run's "
                f"is {root!r}. Pass --environment NAME (its bucket is used) or "
                "--datastore-root s3://BUCKET/PREFIX."
            )
        if self.batch_client is None:
            from botocore.config import Config

            self.batch_client = aws.client("batch")
            self.submit_client = aws.client(
                "batch", config=Config(retries={"total_max_attempts": 1, "mode": "standard"})
            )
        if self.submit_client is None:
            self.submit_client = self.batch_client
        if self.logs_client is None:
            from botocore.config import Config

            self.logs_client = aws.client(
                "logs",
                config=Config(
                    connect_timeout=5,
                    read_timeout=10,
                    retries={"total_max_attempts": LOGS_ATTEMPTS, "mode": "standard"},
                ),
            )

    # -- helpers -------------------------------------------------------------------------

    def _call(self, client: Any, operation: str, **kwargs: Any) -> Any:
        """One AWS call, counted, through the run's patience (throttling, outages)."""
        self.calls[operation] = self.calls.get(operation, 0) + 1
        return self.run.patience.call(getattr(client, operation), **kwargs)

    def _emit(self, event: Any) -> None:
        self.run.on_event(event)

    @staticmethod
    def _job_policy(task: TaskSpec) -> BatchJobPolicy:
        if task.policy.batch is None:
            raise PlanError(
                f"step '{task.step}', @batch: no queue was planned for it. Pass "
                "--environment NAME (a stack built with batchwright_cdk) or "
                "@batch(queue=...)."
            )
        return task.policy.batch

    def _code_package(self, flow_file: str) -> tuple[str, str]:
        """The code package's URL and SHA-256: built and uploaded once per run, and only
        when the datastore does not already hold those exact bytes (a package changed
        since an earlier run uploaded it is replaced, so a resume heals it)."""
        if self._package is None:
            from batchwright.datastore import open_storage
            from batchwright.datastore.storage import holds

            package = codepackage.build(Path(flow_file).parent)
            storage = open_storage(self.run.datastore_root, self.run.patience)
            # keep(): a package reused from an earlier run is renewed, so a lifecycle
            # expiry counts from its last use.
            if not (storage.keep(package.key) and holds(storage, package.key, package.sha256)):
                storage.write_bytes(package.key, package.data)
            url = f"{self.run.datastore_root.rstrip('/')}/{package.key}"
            self._package = (url, package.sha256)
        return self._package

    def _definition(self, name: str, request: Mapping[str, Any]) -> str:
        """The job definition named ``name``: an active one if it exists, else registered."""
        if name not in self._definitions:
            found = self._call(
                self.batch_client,
                "describe_job_definitions",
                jobDefinitionName=name,
                status="ACTIVE",
            )["jobDefinitions"]
            today = self._today()
            if found:
                newest = max(found, key=lambda d: d["revision"])
                arn = newest["jobDefinitionArn"]
                if (newest.get("tags") or {}).get(LAST_USED_TAG) != today:
                    self._mark_used(arn, today)
            else:
                tags = {**request.get("tags", {}), LAST_USED_TAG: today}
                arn = self._call(
                    self.batch_client, "register_job_definition", **{**request, "tags": tags}
                )["jobDefinitionArn"]
            self._definitions[name] = arn
            self._stamped[arn] = today
        arn = self._definitions[name]
        if self._stamped.get(arn) != (today := self._today()):
            # A run that lasts for days stamps each day it submits with the definition.
            self._mark_used(arn, today)
            self._stamped[arn] = today
        return arn

    def _today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).date().isoformat()

    def _mark_used(self, arn: str, today: str) -> None:
        """Stamps today's date on a reused definition (``jobdefs prune`` keeps what runs
        use). A role without ``batch:TagResource`` only loses that record: said once."""
        from botocore.exceptions import ClientError

        try:
            self._call(
                self.batch_client, "tag_resource", resourceArn=arn, tags={LAST_USED_TAG: today}
            )
        except ClientError as error:
            self._emit(
                Notice(
                    f"could not record that this run uses job definition {arn} "
                    f"({aws.describe_error(error)}); `batchwright jobdefs prune` may then "
                    "count it unused. Grant batch:TagResource on the runtime's job definitions."
                )
            )

    # -- the three verbs -----------------------------------------------------------------

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        """One job per task, or one array job for several members of one fan-out (one job
        each when the Batch API turned out not to run array jobs); the nodes of a
        parallel step as one multi-node job, node ``i`` running member ``i`` and followed
        as job ``<id>#<i>``."""
        group = tasks[0].group
        nodes = group is not None and group.parallel
        if len(tasks) > 1 and not self._arrays_supported and not nodes:
            return [handle for task in tasks for handle in self.submit([task])]
        first = tasks[0].arguments
        job = self._job_policy(tasks[0])
        target = job.target_after(tasks[0].reclaims)
        package_url, package_sha256 = self._code_package(first.flow_file)
        # In the container the flow file sits at the root of the unpacked code package.
        members = [t.arguments._replace(flow_file=os.path.basename(first.flow_file)) for t in tasks]
        environment = {
            **forwarded_aws_environment(os.environ),
            # Output reaches CloudWatch as it is printed, not when the buffer fills.
            "PYTHONUNBUFFERED": "1",
            # The client inside the step reads the namespace of who started the run.
            USER_VARIABLE: self.run.user,
        }
        if nodes:
            # Every node runs the same command; Batch's node index picks its member.
            arguments = array_arguments(members, NODE_INDEX_VARIABLE)
            task_label = f"{first.task_id}-n{len(tasks)}"
            token = try_token(tasks[0].attempt, tasks[0].resubmission)
            environment.update(group_environment([t.task_id for t in members], token))
        elif len(tasks) > 1:
            arguments = array_arguments(members, ARRAY_INDEX_VARIABLE)
            task_label = f"{first.task_id}-x{len(tasks)}"
        else:
            arguments = members[0].to_argv()
            task_label = first.task_id
        invocation = TaskInvocation(
            flow=first.flow,
            run_id=first.run_id,
            step=first.step,
            task_id=task_label,
            command=container_command(package_url, package_sha256, arguments),
            environment=environment,
            retry_count=first.retry_count,
            resubmission=tasks[0].resubmission,
            array_size=len(tasks) if len(tasks) > 1 and not nodes else None,
            num_nodes=len(tasks) if nodes else None,
            node_instance_type=job.node_instance_type if nodes else None,
            timeout_seconds=tasks[0].policy.batch_timeout_seconds,
        )
        spec = build_job_spec(job.options, target, invocation, offload_root=self.run.datastore_root)
        for notice in spec.notices:
            self._emit(Notice(str(notice)))
        if spec.submit.offload is not None:
            from batchwright.datastore import open_storage

            # Written every time: a payload changed since it was stored is replaced.
            open_storage(self.run.datastore_root, self.run.patience).write_bytes(
                spec.submit.offload.key, spec.submit.offload.payload
            )
        request = spec.submit.kwargs()
        request["jobDefinition"] = self._definition(spec.definition.name, spec.definition.kwargs())
        submission = Submission(
            job_name=invocation.job_name,
            backend=self.name,
            queue=target.queue,
            tasks=tuple(
                SubmittedTask(t.step, t.task_id, t.retry_count, t.input_paths, t.split_index)
                for t in (task.arguments for task in tasks)
            ),
            recorded_at=self.clock(),
            resubmission=tasks[0].resubmission,
            nodes=nodes,
        )
        if self.run.journal is not None:
            # Recorded first, so a resume finds the job even if this process dies now.
            self.run.journal.intend(submission)
        job_id = self._submit_job(request, submission)
        if self.run.journal is not None:
            self.run.journal.submitted(submission, job_id)
        queue = request["jobQueue"].rsplit("/", 1)[-1]
        now = self.clock()
        escalates = target is job.target and job.on_demand is not None
        if target is not job.target:
            self._emit(
                Notice(
                    f"[{first.pathspec}] Spot capacity was reclaimed {tasks[0].reclaims} "
                    f"time(s) under this attempt: it moves to the on-demand queue {queue}"
                )
            )
        log_groups = _log_groups(target.log_group)
        if len(tasks) == 1 and not nodes:
            self._jobs[job_id] = _Job(first.pathspec, queue, now, escalates, log_groups=log_groups)
            self._emit(Notice(f"[{first.pathspec}] submitted to queue {queue} as job {job_id}"))
            return [TaskHandle(self.name, job_id, tasks[0])]
        # Array children are followed as <id>:<i>, the nodes of a multi-node job as <id>#<i>.
        what, separator, kind = (
            ("nodes", NODE_SEPARATOR, "multi-node job") if nodes else ("tasks", ":", "array job")
        )
        self._emit(
            Notice(
                f"[{first.flow}/{first.run_id}/{first.step}] {len(tasks)} {what} submitted "
                f"to queue {queue} as {kind} {job_id}"
            )
        )
        handles = []
        for index, task in enumerate(tasks):
            member = f"{job_id}{separator}{index}"
            self._jobs[member] = _Job(
                task.pathspec,
                queue,
                now,
                escalates,
                parent=None if nodes else job_id,
                node=index if nodes else None,
                log_groups=log_groups,
            )
            handles.append(TaskHandle(self.name, member, task))
        return handles

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        """The status of every handle, at a cost that does not grow with a fan-out's width.

        One DescribeJobs (per 100 ids) asks about the single jobs, the array parents (whose
        records count their children by status) and a few children of each array, which
        are followed closely (their waits, their logs). An array's other children are
        known from its counts: they all succeeded once every child ended and every
        failure is known; failures are listed (ListJobs, by array and status) and
        described as the counts show them, so a retry starts at once.
        """
        now = self.clock()
        singles: list[TaskHandle] = []
        children: dict[str, list[TaskHandle]] = {}
        for handle in handles:
            state = self._jobs.get(handle.id) or self._adopt(handle, now)
            if state.parent is None:
                singles.append(handle)
            else:
                children.setdefault(state.parent, []).append(handle)
        followed = [h for members in children.values() for h in members[: self.run.follow_logs]]
        # Multi-node jobs: the job's own record too, for nodes AWS does not show yet.
        jobs = [
            h.id.rpartition(NODE_SEPARATOR)[0] for h in singles if self._jobs[h.id].node is not None
        ]
        records = self._describe(
            [*(h.id for h in singles), *children, *(h.id for h in followed), *jobs]
        )
        self._changed = False
        waiting: dict[str, list[_Job]] = {}
        results = {
            h.id: self._job_status(
                h, records.get(h.id) or self._node_record(h, records), now, waiting
            )
            for h in singles
        }
        for parent, members in children.items():
            results.update(self._array_statuses(parent, members, records, now, waiting))
        self._report_waits(waiting, now)
        self._base_interval = (
            MIN_POLL_INTERVAL
            if self._changed
            else min(self._base_interval * POLL_BACKOFF, MAX_POLL_INTERVAL)
        )
        spread = 1 + POLL_JITTER * (2 * self.random() - 1)
        self.poll_interval = self._base_interval * spread
        return [results[h.id] for h in handles]

    def _describe(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """DescribeJobs about ``ids``, 100 per call; the records found, by job id."""
        unique = list(dict.fromkeys(ids))
        records: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), DESCRIBE_BATCH):
            chunk = unique[start : start + DESCRIBE_BATCH]
            for job in self._call(self.batch_client, "describe_jobs", jobs=chunk)["jobs"]:
                records[job["jobId"]] = job
        return records

    def _job_status(
        self,
        handle: TaskHandle,
        job: Mapping[str, Any] | None,
        now: float,
        waiting: dict[str, list[_Job]],
    ) -> TaskStatus:
        """One job's status from its own record (a single job, or a followed child)."""
        state = self._jobs[handle.id]
        if job is None:
            return self._unseen(handle, state, now)
        state.seen = True
        status, reason = job["status"], job.get("statusReason", "")
        if status != state.status:
            self._changed = True
            self._emit(TaskStatusChanged(state.pathspec, status, reason))
        if (status, reason) != (state.status, state.reason):
            state.wait_reported_at = 0.0
        state.status, state.reason = status, reason
        self._follow_logs(state, job, now)
        result = self._status(handle, job, state, now)
        if result.is_finished and result.facts is None:
            result = dataclasses.replace(result, facts=attempt_facts(job))
        if result.state == "waiting" and now - state.wait_reported_at >= WAIT_REPORT_SECONDS:
            waiting.setdefault(state.parent or handle.id, []).append(state)
        return result

    def _array_statuses(
        self,
        parent: str,
        members: Sequence[TaskHandle],
        records: Mapping[str, Mapping[str, Any]],
        now: float,
        waiting: dict[str, list[_Job]],
    ) -> dict[str, TaskStatus]:
        """The statuses of an array job's children in flight (see :meth:`poll`)."""
        record = records.get(parent)
        if record is None:
            return {h.id: self._unseen(h, self._jobs[h.id], now) for h in members}
        properties = record.get("arrayProperties") or {}
        size = properties.get("size")
        if not size:
            ignored = self._ignore_array(parent, record)
            return {h.id: ignored for h in members}
        array = self._arrays.setdefault(parent, _Array(parent, int(size)))
        summary = {k: int(v) for k, v in (properties.get("statusSummary") or {}).items()}
        if summary != array.summary:
            # Children progressing is no reason to poll faster; failures and the end are.
            ended = summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0) >= array.size
            self._changed |= ended or summary.get("FAILED", 0) > array.summary.get("FAILED", 0)
            array.summary = summary
            pathspec = self._jobs[members[0].id].pathspec.rsplit("/", 1)[0]
            self._emit(ArrayProgress(pathspec, parent, array.size, dict(summary)))
        failed = self._failed_children(array)
        ended = summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0) >= array.size
        all_known = len(array.failed) >= summary.get("FAILED", 0)
        results: dict[str, TaskStatus] = {}
        for handle in members:
            own = failed.get(handle.id) or records.get(handle.id)
            if own is not None:
                results[handle.id] = self._job_status(handle, own, now, waiting)
            elif ended and all_known:
                results[handle.id] = self._confirmed(array, handle)
            else:
                results[handle.id] = TaskStatus.waiting(f"child of array job {parent}")
        return results

    def _confirmed(self, array: _Array, handle: TaskHandle) -> TaskStatus:
        """A child Batch counts as succeeded, confirmed by its done marker: the step's
        finished tasks come from one datastore listing per array, not a GET per child."""
        arguments = handle.task.arguments
        if array.finished is None:
            store = self._store(arguments.flow)
            array.finished = set(store.finished_attempts(arguments.run_id, arguments.step))
        if arguments.task_id in array.finished:
            return TaskStatus.succeeded()
        return TaskStatus.failed(
            f"Batch reports child {handle.id} SUCCEEDED, but the task left no done marker "
            "in the datastore",
            retryable=True,
        )

    def _failed_children(self, array: _Array) -> dict[str, dict[str, Any]]:
        """The records of the array's children that failed since the last look, when its
        counts show new failures (ListJobs by array and status, then DescribeJobs)."""
        if array.summary.get("FAILED", 0) <= len(array.failed):
            return {}
        listed: set[str] = set()
        request: dict[str, Any] = {
            "arrayJobId": array.parent,
            "jobStatus": "FAILED",
            "maxResults": LIST_PAGE,
        }
        while True:
            page = self._call(self.batch_client, "list_jobs", **request)
            listed.update(summary["jobId"] for summary in page.get("jobSummaryList", []))
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        new = sorted(listed - array.failed)
        array.failed.update(new)
        return self._describe(new)

    def _submit_job(self, request: Mapping[str, Any], submission: Submission) -> str:
        """SubmitJob, at most once per job name: when an attempt fails in a way that may
        have created the job anyway (a 5xx, a lost answer), ListJobs looks for it by its
        name before the next try. Throttling is retried (it rejects before creating)."""

        def attempt() -> str:
            self._limiter.acquire()
            self.calls["submit_job"] = self.calls.get("submit_job", 0) + 1
            try:
                return str(self.submit_client.submit_job(**request)["jobId"])
            except Exception as error:
                if aws.is_throttling(error):
                    self._limiter.throttled()
                elif aws.is_transient(error):
                    found = self._find_by_name(submission)
                    if found is not None:
                        return found
                raise

        job_id = self.run.patience.call(attempt)
        self._limiter.recovered()
        return job_id

    def reattach(self, task: TaskSpec, submission: Submission, index: int) -> TaskHandle | None:
        """Follows again the job a dead orchestrator submitted for ``task``: by its
        recorded id, or by its name when the answer of SubmitJob was never recorded.
        ``None`` when there is nothing to follow: the job was never submitted, or it
        failed (a resume runs a failed task again)."""
        job_id = submission.job_id_of(index)
        if job_id is None:
            found = self._find_by_name(submission)
            if found is None:
                return None
            job_id = submission.job_id_of(index, found)
            assert job_id is not None
        jobs = self._call(self.batch_client, "describe_jobs", jobs=[job_id])["jobs"]
        parent, node, _ = job_id.rpartition(NODE_SEPARATOR)
        if not jobs and node:
            # A node of a multi-node job still queued: AWS shows only the job so far.
            jobs = self._call(self.batch_client, "describe_jobs", jobs=[parent])["jobs"]
        stopped_done = bool(node) and self._node_stored(TaskHandle(self.name, job_id, task))
        if not jobs or (jobs[0].get("status") == "FAILED" and not stopped_done):
            # (A node AWS stopped when the main node exited, its work stored, is done.)
            return None
        handle = TaskHandle(self.name, job_id, task)
        state = self._adopt(handle, submission.recorded_at)
        # It was visible to the orchestrator that submitted it: no eventual-consistency
        # grace is owed, but a job AWS has forgotten must not be waited for forever.
        state.queue = submission.queue.rsplit("/", 1)[-1]
        self._emit(Notice(f"[{task.pathspec}] reattached to job {job_id} (submitted before)"))
        return handle

    def _find_by_name(self, submission: Submission) -> str | None:
        """The id of the job named ``submission.job_name`` on its queue, if any."""
        request: dict[str, Any] = {
            "jobQueue": submission.queue,
            "filters": [{"name": "JOB_NAME", "values": [submission.job_name]}],
        }
        while True:
            page = self._call(self.batch_client, "list_jobs", **request)
            for summary in page.get("jobSummaryList", []):
                if summary.get("jobName") == submission.job_name:
                    return str(summary["jobId"])
            if not page.get("nextToken"):
                return None
            request["nextToken"] = page["nextToken"]

    def _adopt(self, handle: TaskHandle, now: float) -> _Job:
        """Starts following a job this instance did not submit."""
        job_policy = handle.task.policy.batch
        queue = job_policy.target.queue.rsplit("/", 1)[-1] if job_policy else "?"
        parent, sep, _ = handle.id.rpartition(":")
        _, node_sep, node = handle.id.rpartition(NODE_SEPARATOR)
        state = _Job(
            handle.task.pathspec,
            queue,
            now,
            parent=parent if sep else None,
            node=int(node) if node_sep and node.isdigit() else None,
            log_groups=_log_groups(job_policy.target.log_group if job_policy else None),
        )
        self._jobs[handle.id] = state
        return state

    def _ignore_array(self, parent: str, record: Mapping[str, Any]) -> TaskStatus:
        """An array job the Batch API ran as a plain job: its record has no
        ``arrayProperties`` (AWS always gives an array parent its size and its children's
        counts). It is stopped, and its members are submitted again one by one."""
        if self._arrays_supported:
            self._arrays_supported = False
            self._emit(
                Notice(
                    f"this Batch API ran array job {parent} as a single job (DescribeJobs "
                    "shows no arrayProperties): foreach members are submitted as one job "
                    "each from now on"
                )
            )
        if record.get("status") not in ("SUCCEEDED", "FAILED") and parent not in self._stopped:
            self._stopped.add(parent)
            self._stop(parent, "batchwright: array jobs are not run here; one job each")
        return TaskStatus.failed(
            f"array job {parent} ran as a single job; submitted again as its own job",
            infrastructure=True,
            facts=AttemptFacts(failure=FailureKind.TERMINATED.value),
        )

    def _unseen(self, handle: TaskHandle, state: _Job, now: float) -> TaskStatus:
        """A job DescribeJobs does not show: normal right after SubmitJob (the API is
        eventually consistent), given up after the grace period."""
        grace = self.run.waits.invisible_grace_seconds
        if state.seen or now - state.submitted_at < grace:
            return TaskStatus.waiting("not visible in DescribeJobs yet")
        return TaskStatus.failed(
            f"job {handle.id} was submitted to queue {state.queue} {now - state.submitted_at:.0f} "
            f"s ago, and DescribeJobs has never shown it (grace {grace:g} s). Look it up with "
            f"`aws batch describe-jobs --jobs {handle.id}`; resume the run when it is sorted out.",
            retryable=False,
        )

    def _status(
        self, handle: TaskHandle, job: Mapping[str, Any], state: _Job, now: float
    ) -> TaskStatus:
        status = job["status"]
        if status == "SUCCEEDED":
            return TaskStatus.succeeded()
        if status == "FAILED" and state.node and self._node_stored(handle):
            # Batch stops the other nodes when the main node exits, which it does once
            # every node has stored its work: a node stopped then has finished.
            return TaskStatus.succeeded()
        reclaims = count_reclaims(job)
        if status in WAITING_STATES:
            return self._waiting(handle, job, state, now, reclaims)
        if status == "RUNNING":
            started = job.get("startedAt")
            return TaskStatus.running(started / 1000 if isinstance(started, int) else None)
        diagnosis = classify_job(job)
        if diagnosis is not None and diagnosis.kind == FailureKind.SPOT_RECLAIMED:
            return TaskStatus.failed(
                f"job {handle.id}: {diagnosis}",
                infrastructure=True,
                reclaims=max(reclaims, 1),
            )
        exit_code = diagnosis.exit_code if diagnosis is not None else None
        if exit_code is None:
            exit_code = self._recorded_exit_code(handle.task)
        self._show_stored_output(handle, state)
        # Batch reports the container's exit code, but some emulators do not: a job that
        # ended without one and without running the entrypoint may have met a swapped
        # package, so the package is checked then too.
        integrity = self._integrity_reason(exit_code) if exit_code in (EXIT_INTEGRITY, None) else ""
        if integrity:
            reason = integrity
        elif (diagnosis is None or diagnosis.kind == FailureKind.UNKNOWN) and exit_code:
            # Batch said nothing, but the task entrypoint recorded how the step ended.
            reason = f"the step failed with exit code {exit_code}; its output is above"
        elif diagnosis is not None:
            reason = str(diagnosis)
        else:
            reason = job.get("statusReason", "failed")
        retryable = (
            not integrity
            and (diagnosis is None or diagnosis.kind not in NOT_RETRYABLE)
            and exit_code not in FINAL_EXIT_CODES
        )
        return TaskStatus.failed(f"job {handle.id}: {reason}", exit_code, retryable=retryable)

    def _node_record(
        self, handle: TaskHandle, records: Mapping[str, Mapping[str, Any]]
    ) -> Mapping[str, Any] | None:
        """For a node AWS does not describe yet (its nodes start once the main node runs),
        the multi-node job's own record stands in: its wait and its reasons, or its end
        when it ended before the node started. Without its container, whose logs are the
        main node's."""
        if self._jobs[handle.id].node is None:
            return None
        job = records.get(handle.id.rpartition(NODE_SEPARATOR)[0])
        if job is None:
            return None
        # The job's state and why; not its attempts and container, which are the main
        # node's (its exit code, its instance).
        return {key: value for key, value in job.items() if key in _JOB_STATE_KEYS}

    def _node_stored(self, handle: TaskHandle) -> bool:
        """Whether a node stored its success in this try (its attempt and its
        resubmission): AWS stops the other nodes when the main node exits, which it does
        once they all have."""
        task, arguments = handle.task, handle.task.arguments
        store = self._store(arguments.flow)
        metadata = store.read_metadata(
            arguments.run_id, arguments.step, arguments.task_id, arguments.retry_count
        )
        return bool(node_stored(metadata, try_token(task.attempt, task.resubmission)))

    def _waiting(
        self,
        handle: TaskHandle,
        job: Mapping[str, Any],
        state: _Job,
        now: float,
        reclaims: int,
    ) -> TaskStatus:
        """A job that has not started: waiting is normal; a misconfiguration that lasts,
        a wait past ``--max-wait``, or Spot capacity reclaimed too often ends it."""
        job_policy = handle.task.policy.batch
        if (
            state.escalates
            and reclaims
            and job_policy is not None
            and handle.task.reclaims + reclaims >= job_policy.reclaims_before_on_demand
        ):
            # Batch would retry it on Spot once more: move it to on-demand instead.
            self._stop(handle.id, "batchwright: Spot capacity reclaimed; moving to on-demand")
            return TaskStatus.failed(
                f"job {handle.id}: Spot capacity was reclaimed {reclaims} time(s)",
                infrastructure=True,
                reclaims=reclaims,
            )
        diagnosis = classify_job(job)
        if diagnosis is not None and diagnosis.kind == FailureKind.STUCK_WAITING:
            if state.misconfigured_since is None:
                state.misconfigured_since = now
                self._emit(Notice(f"[{state.pathspec}] queue {state.queue}: {diagnosis}"))
            grace = self.run.waits.misconfiguration_grace_seconds
            if now - state.misconfigured_since >= grace:
                self._stop(handle.id, "batchwright: the queue cannot run this job")
                return TaskStatus.failed(
                    f"job {handle.id} on queue {state.queue} could not start for "
                    f"{now - state.misconfigured_since:.0f} s (grace {grace:g} s): {diagnosis}",
                    retryable=False,
                    facts=AttemptFacts(failure=FailureKind.STUCK_WAITING.value),
                )
        else:
            state.misconfigured_since = None
        max_wait = self.run.waits.max_wait_seconds
        created = job.get("createdAt")
        waited = now - (created / 1000 if isinstance(created, int) else state.submitted_at)
        if max_wait is not None and waited >= max_wait:
            self._stop(handle.id, "batchwright: waited longer than --max-wait")
            return TaskStatus.failed(
                f"job {handle.id} waited {waited:.0f} s to start on queue {state.queue} "
                f"({job['status']}{': ' + state.reason if state.reason else ''}), longer than "
                f"--max-wait {max_wait:g}. Raise --max-wait, or give the queue more capacity.",
                retryable=False,
                facts=AttemptFacts(failure=FailureKind.STUCK_WAITING.value),
            )
        return TaskStatus.waiting(state.reason)

    def _report_waits(self, waiting: Mapping[str, list[_Job]], now: float) -> None:
        """One event per waiting job, or per array job for its waiting children (the
        followed children say in which state and why; the array's counts, how many)."""
        for jobs in waiting.values():
            first = jobs[0]
            array = self._arrays.get(first.parent) if first.parent else None
            pathspec, tasks = first.pathspec, len(jobs)
            if array is not None or tasks > 1:
                pathspec = first.pathspec.rsplit("/", 1)[0]
            if array is not None:
                counted = sum(n for state, n in array.summary.items() if state in WAITING_STATES)
                tasks = max(counted, tasks)
            waited = max(now - j.submitted_at for j in jobs)
            self._emit(
                TaskWaiting(pathspec, first.status, first.queue, first.reason, waited, tasks)
            )
            for job in jobs:
                job.wait_reported_at = now

    def _stop(self, job_id: str, reason: str) -> None:
        self._call(self.batch_client, "terminate_job", jobId=job_id, reason=reason)

    def _store(self, flow: str) -> FlowDatastore:
        """The run's datastore (its calls go through the run's patience), opened once."""
        if flow not in self._stores:
            from batchwright.datastore import open_datastore

            self._stores[flow] = open_datastore(flow, self.run.datastore_root, self.run.patience)
        return self._stores[flow]

    def _recorded_exit_code(self, task: TaskSpec) -> int | None:
        """The exit code the task entrypoint recorded, for when Batch reports none."""
        arguments = task.arguments
        metadata = self._store(arguments.flow).read_metadata(
            arguments.run_id, arguments.step, arguments.task_id, arguments.retry_count
        )
        code = (metadata or {}).get("exit_code")
        return code if isinstance(code, int) else None

    def _package_changed(self) -> str:
        """Why the run's code package can no longer be trusted (``""``: it still has the
        SHA-256 it was uploaded with). Checked once a minute at most: a run whose package
        was swapped sees many jobs fail at once."""
        if self._package is None:
            return ""
        now = self.clock()
        checked_at, verdict = self._package_check
        if now - checked_at >= PACKAGE_CHECK_INTERVAL:
            from batchwright.datastore import open_storage
            from batchwright.datastore.storage import holds

            url, sha256 = self._package
            key = url[len(self.run.datastore_root.rstrip("/")) + 1 :]
            storage = open_storage(self.run.datastore_root, self.run.patience)
            verdict = (
                ""
                if holds(storage, key, sha256)
                else f"the code package {url} no longer has the SHA-256 {sha256} it was "
                "uploaded with; it was changed or removed after upload. Only the submitter "
                "may write under code/ of the datastore: find who changed it, then resume "
                "the run (the package is uploaded again)"
            )
            self._package_check = (now, verdict)
        return verdict

    def _integrity_reason(self, exit_code: int | None) -> str:
        """Why a job failed when its bootstrap refused what it downloaded (``exit_code``
        :data:`EXIT_INTEGRITY`), or when Batch gave no exit code and the run's package
        was swapped (``""`` otherwise: the job failed for some other reason)."""
        changed = self._package_changed()
        if exit_code != EXIT_INTEGRITY:
            # Batch gave no exit code: the package may or may not be why this job failed,
            # but every job that starts from now on would refuse it.
            return (
                f"the job failed without an exit code, and {changed}; every job that starts "
                "now refuses it without running anything"
                if changed
                else ""
            )
        refused = (
            f"the job refused what it downloaded (exit code {EXIT_INTEGRITY}), so nothing of it ran"
        )
        if changed:
            return f"{refused}: {changed}"
        return (
            f"{refused}: its command payload did not match its SHA-256, the code package "
            "holds a member that is not a regular file or folder, or the package changed "
            "since it was last checked; the job's output says which"
        )

    def _show_stored_output(self, handle: TaskHandle, state: _Job) -> None:
        """Shows the end of a failed attempt's stderr, as the task stored it, unless its
        last line already reached the console through CloudWatch Logs (absent, late or
        cut short: logs are best effort, the datastore is not)."""
        arguments = handle.task.arguments
        stored = self._store(arguments.flow).read_log(
            arguments.run_id, arguments.step, arguments.task_id, arguments.retry_count, "stderr"
        )
        lines = (stored or b"").decode("utf-8", "replace").rstrip().splitlines()
        if not lines or lines[-1].strip() in {line.strip() for line in state.shown}:
            return
        tail = lines[-SHOWN_LINES:]
        cut = f" (its last {len(tail)} lines)" if len(lines) > len(tail) else ""
        self._emit(
            TaskOutput(
                state.pathspec,
                "stderr",
                f"stderr of the failed attempt, from the datastore{cut}:\n" + "\n".join(tail),
            )
        )

    def _follow_logs(self, state: _Job, job: Mapping[str, Any], now: float) -> None:
        """Streams a job's new output at most every :data:`LOG_INTERVAL`, and at its end;
        of a multi-node job, the first ``--follow-logs`` nodes' (the main node first; a
        failed node's output is shown from the datastore)."""
        if state.node is not None and state.node >= self.run.follow_logs:
            return
        container = job.get("container") or {}
        state.log_stream = container.get("logStreamName") or state.log_stream
        options = (container.get("logConfiguration") or {}).get("options") or {}
        if options.get("awslogs-group"):
            state.log_groups = (options["awslogs-group"],)
        finished = job["status"] in ("SUCCEEDED", "FAILED")
        if state.log_stream and (finished or now - state.logs_fetched_at >= LOG_INTERVAL):
            self._stream_logs(state)
            state.logs_fetched_at = now

    def _stream_logs(self, state: _Job) -> None:
        """Emits the lines the job printed since the last call (forward token).

        Logs are best effort: they never hold the run up (no patience here) and never
        fail it. A stream not created yet is normal; any other failure (throttling, a
        missing ``logs:GetLogEvents`` permission, an outage) is reported once, and the
        output stays readable from the datastore with ``python FLOW.py logs``.
        """
        assert state.log_stream is not None
        if self._logs_broken:
            return
        for group in state.log_groups:
            try:
                self._read_stream(state, group)
            except Exception as error:
                if "ResourceNotFound" in type(error).__name__ or "ResourceNotFound" in str(error):
                    continue  # not (yet) in this group: the next one, or the next poll
                self._logs_broken = True
                self._emit(
                    Notice(
                        f"CloudWatch Logs could not be read ({aws.describe_error(error)}); "
                        "jobs are still followed, and each task's output is stored in the "
                        "datastore (python FLOW.py logs RUN_ID/STEP)."
                    )
                )
                return
            state.log_groups = (group,)  # found: the others are not asked again
            return

    def _read_stream(self, state: _Job, group: str) -> None:
        """Reads ``state``'s stream in ``group`` from its forward token to the end."""
        assert state.log_stream is not None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": group,
                "logStreamName": state.log_stream,
                "startFromHead": True,
            }
            if state.log_token:
                kwargs["nextToken"] = state.log_token
            self.calls["get_log_events"] = self.calls.get("get_log_events", 0) + 1
            page = self.logs_client.get_log_events(**kwargs)
            events = page.get("events", [])
            token = page.get("nextForwardToken")
            if events:
                messages = [e["message"] for e in events]
                state.shown.extend(messages)
                self._emit(TaskOutput(state.pathspec, "stdout", "\n".join(messages), state.node))
            if not events or token == state.log_token:
                state.log_token = token
                return
            state.log_token = token

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        """TerminateJob for every job (and array parent) of ``handles``."""
        ids: list[str] = []
        for handle in handles:
            job, node, _ = handle.id.rpartition(NODE_SEPARATOR)
            if node:  # a node of a multi-node job: the job stops all of its nodes
                ids.append(job)
                continue
            parent, sep, _ = handle.id.rpartition(":")
            ids.extend([parent, handle.id] if sep else [handle.id])
        for job_id in dict.fromkeys(ids):
            self._call(
                self.batch_client,
                "terminate_job",
                jobId=job_id,
                reason="batchwright: the run was interrupted or timed out",
            )
