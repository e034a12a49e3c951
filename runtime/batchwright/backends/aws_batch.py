"""The AWS Batch backend: ``submit`` is SubmitJob, ``poll`` is DescribeJobs, ``terminate``
is TerminateJob.

One instance serves a whole run, in the scheduler's process. It owns no loop and no
thread; the scheduler calls it. What it keeps is small and per run:

- the code package, built and uploaded (content-addressed) at the first submission;
- the job definitions it looked up or registered, by content-hash name, so each distinct
  definition costs one DescribeJobDefinitions (and at most one RegisterJobDefinition);
- for each job in flight: its last status and its CloudWatch Logs forward token.

Polling asks DescribeJobs about up to 100 jobs per call; a job not yet visible right
after SubmitJob counts as still queued. The interval adapts: 1 s after a change, growing
by half to :data:`MAX_POLL_INTERVAL` while nothing changes, each interval spread by
:data:`POLL_JITTER` so that many runs started together do not poll in step. botocore's
standard retry mode backs off with jitter on throttling and 5xx. SubmitJob goes through
a client-side rate limiter below Batch's 50 TPS. A foreach fan-out handed over as a group
becomes one array job.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchwright import aws, codepackage
from batchwright.backends.base import Backend, BackendOptions, TaskHandle, TaskSpec, TaskStatus
from batchwright.batch.failures import FailureKind, classify_job
from batchwright.batch.jobenv import forwarded_aws_environment
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.submission import TaskInvocation
from batchwright.entrypoint import ARRAY_INDEX_VARIABLE, FINAL_EXIT_CODES, array_arguments
from batchwright.entrypoint.bootstrap import container_command
from batchwright.errors import PlanError, UserInputError
from batchwright.events import Notice, TaskOutput, TaskStatusChanged
from batchwright.policy import BatchJobPolicy

#: Batch's SubmitJob limit is 50 per second; stay below it.
SUBMIT_RATE_PER_SECOND = 40.0
#: DescribeJobs takes at most 100 job ids.
DESCRIBE_BATCH = 100
MIN_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 8.0
#: Growth of the poll interval per poll that saw no change.
POLL_BACKOFF = 1.5
#: Each interval is spread uniformly by this fraction either way.
POLL_JITTER = 0.2
#: Running jobs' logs are fetched at most this often (one GetLogEvents per job).
LOG_INTERVAL = 5.0
DEFAULT_LOG_GROUP = "/aws/batch/job"
#: Failure kinds a user ``@retry`` cannot fix: the same request fails the same way.
NOT_RETRYABLE = frozenset({FailureKind.IMAGE_PULL, FailureKind.STUCK_WAITING})


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

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
    """What the backend remembers about one job in flight."""

    pathspec: str
    status: str = "SUBMITTED"
    log_stream: str | None = None
    log_group: str = DEFAULT_LOG_GROUP
    log_token: str | None = None
    logs_fetched_at: float = 0.0


@dataclass
class AwsBatchBackend(Backend):
    """Runs task attempts as AWS Batch jobs (see the module docstring)."""

    run: BackendOptions
    name: str = "batch"
    poll_interval: float = MIN_POLL_INTERVAL
    #: The Batch and CloudWatch Logs clients; made with :func:`batchwright.aws.client`
    #: unless given (tests give stubbed ones).
    batch_client: Any = None
    logs_client: Any = None
    #: A number in [0, 1) for each poll's jitter.
    random: Callable[[], float] = random.random
    _base_interval: float = MIN_POLL_INTERVAL
    _package_url: str | None = None
    _definitions: dict[str, str] = field(default_factory=dict)
    _jobs: dict[str, _Job] = field(default_factory=dict)
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
            self.batch_client = aws.client("batch")
        if self.logs_client is None:
            self.logs_client = aws.client("logs")

    # -- helpers -------------------------------------------------------------------------

    def _call(self, client: Any, operation: str, **kwargs: Any) -> Any:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        return getattr(client, operation)(**kwargs)

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

    def _code_package_url(self, flow_file: str) -> str:
        """Builds and uploads the code package once per run (once per content, ever)."""
        if self._package_url is None:
            from batchwright.datastore import open_storage

            package = codepackage.build(Path(flow_file).parent)
            storage = open_storage(self.run.datastore_root)
            if not storage.exists(package.key):
                storage.write_bytes(package.key, package.data)
            self._package_url = f"{self.run.datastore_root.rstrip('/')}/{package.key}"
        return self._package_url

    def _definition(self, name: str, request: Mapping[str, Any]) -> str:
        """The job definition named ``name``: an active one if it exists, else registered."""
        if name not in self._definitions:
            found = self._call(
                self.batch_client,
                "describe_job_definitions",
                jobDefinitionName=name,
                status="ACTIVE",
            )["jobDefinitions"]
            if found:
                arn = max(found, key=lambda d: d["revision"])["jobDefinitionArn"]
            else:
                arn = self._call(self.batch_client, "register_job_definition", **request)[
                    "jobDefinitionArn"
                ]
            self._definitions[name] = arn
        return self._definitions[name]

    # -- the three verbs -----------------------------------------------------------------

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        """One job per task, or one array job for several members of one fan-out."""
        first = tasks[0].arguments
        job = self._job_policy(tasks[0])
        package = self._code_package_url(first.flow_file)
        # In the container the flow file sits at the root of the unpacked code package.
        members = [t.arguments._replace(flow_file=os.path.basename(first.flow_file)) for t in tasks]
        if len(tasks) > 1:
            arguments = array_arguments(members, ARRAY_INDEX_VARIABLE)
            task_label = f"{first.task_id}-x{len(tasks)}"
        else:
            arguments = members[0].to_argv()
            task_label = first.task_id
        environment = {
            **forwarded_aws_environment(os.environ),
            # Output reaches CloudWatch as it is printed, not when the buffer fills.
            "PYTHONUNBUFFERED": "1",
        }
        invocation = TaskInvocation(
            flow=first.flow,
            run_id=first.run_id,
            step=first.step,
            task_id=task_label,
            command=container_command(package, arguments),
            environment=environment,
            retry_count=first.retry_count,
            array_size=len(tasks) if len(tasks) > 1 else None,
            timeout_seconds=tasks[0].policy.batch_timeout_seconds,
        )
        offload_url = (
            f"{self.run.datastore_root.rstrip('/')}/{first.flow}/runs/{first.run_id}/"
            f"offload/{first.step}-{task_label}-{first.retry_count}.json"
        )
        spec = build_job_spec(job.options, job.target, invocation, offload_url=offload_url)
        for notice in spec.notices:
            self._emit(Notice(str(notice)))
        if spec.submit.offload is not None:
            from batchwright.datastore import open_storage

            prefix = self.run.datastore_root.rstrip("/") + "/"
            open_storage(self.run.datastore_root).write_bytes(
                spec.submit.offload.url[len(prefix) :], spec.submit.offload.payload
            )
        request = spec.submit.kwargs()
        request["jobDefinition"] = self._definition(spec.definition.name, spec.definition.kwargs())
        self._limiter.acquire()
        job_id = self._call(self.batch_client, "submit_job", **request)["jobId"]
        queue = request["jobQueue"].rsplit("/", 1)[-1]
        if len(tasks) == 1:
            self._jobs[job_id] = _Job(first.pathspec)
            self._emit(Notice(f"[{first.pathspec}] submitted to queue {queue} as job {job_id}"))
            return [TaskHandle(self.name, job_id, tasks[0])]
        self._emit(
            Notice(
                f"[{first.flow}/{first.run_id}/{first.step}] {len(tasks)} tasks submitted "
                f"to queue {queue} as array job {job_id}"
            )
        )
        handles = []
        for index, task in enumerate(tasks):
            child = f"{job_id}:{index}"
            self._jobs[child] = _Job(task.pathspec)
            handles.append(TaskHandle(self.name, child, task))
        return handles

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        """The status of every handle, asking DescribeJobs about 100 jobs per call."""
        ids = list(dict.fromkeys(h.id for h in handles))
        records: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), DESCRIBE_BATCH):
            chunk = ids[start : start + DESCRIBE_BATCH]
            for job in self._call(self.batch_client, "describe_jobs", jobs=chunk)["jobs"]:
                records[job["jobId"]] = job
        changed = False
        statuses = []
        now = time.monotonic()
        for handle in handles:
            state = self._jobs.setdefault(handle.id, _Job(handle.task.pathspec))
            job = records.get(handle.id)
            if job is None:  # not visible yet right after SubmitJob
                statuses.append(TaskStatus.running())
                continue
            status = job["status"]
            if status != state.status:
                changed = True
                state.status = status
                self._emit(TaskStatusChanged(state.pathspec, status, job.get("statusReason", "")))
            container = job.get("container") or {}
            state.log_stream = container.get("logStreamName") or state.log_stream
            options = (container.get("logConfiguration") or {}).get("options") or {}
            state.log_group = options.get("awslogs-group", state.log_group)
            finished = status in ("SUCCEEDED", "FAILED")
            if state.log_stream and (finished or now - state.logs_fetched_at >= LOG_INTERVAL):
                self._stream_logs(state)
                state.logs_fetched_at = now
            statuses.append(self._status(handle, job))
        self._base_interval = (
            MIN_POLL_INTERVAL
            if changed
            else min(self._base_interval * POLL_BACKOFF, MAX_POLL_INTERVAL)
        )
        spread = 1 + POLL_JITTER * (2 * self.random() - 1)
        self.poll_interval = self._base_interval * spread
        return statuses

    def _status(self, handle: TaskHandle, job: Mapping[str, Any]) -> TaskStatus:
        status = job["status"]
        if status == "SUCCEEDED":
            return TaskStatus.succeeded()
        diagnosis = classify_job(job)
        if status == "RUNNABLE" and diagnosis is not None:
            if diagnosis.kind == FailureKind.STUCK_WAITING:
                # It would wait forever: stop it and say why.
                self._call(
                    self.batch_client,
                    "terminate_job",
                    jobId=handle.id,
                    reason="batchwright: stuck waiting for capacity that never comes",
                )
                return TaskStatus.failed(str(diagnosis), diagnosis.exit_code, retryable=False)
            return TaskStatus.running()
        if status != "FAILED":
            return TaskStatus.running()
        exit_code = diagnosis.exit_code if diagnosis is not None else None
        if exit_code is None:
            exit_code = self._recorded_exit_code(handle.task)
        if (diagnosis is None or diagnosis.kind == FailureKind.UNKNOWN) and exit_code:
            # Batch said nothing, but the task entrypoint recorded how the step ended.
            reason = f"the step failed with exit code {exit_code}; its output is above"
        elif diagnosis is not None:
            reason = str(diagnosis)
        else:
            reason = job.get("statusReason", "failed")
        retryable = (diagnosis is None or diagnosis.kind not in NOT_RETRYABLE) and (
            exit_code not in FINAL_EXIT_CODES
        )
        return TaskStatus.failed(f"job {handle.id}: {reason}", exit_code, retryable=retryable)

    def _recorded_exit_code(self, task: TaskSpec) -> int | None:
        """The exit code the task entrypoint recorded, for when Batch reports none."""
        from batchwright.datastore import FlowDatastore, open_storage

        arguments = task.arguments
        store = FlowDatastore(open_storage(self.run.datastore_root), arguments.flow)
        metadata = store.read_metadata(
            arguments.run_id, arguments.step, arguments.task_id, arguments.retry_count
        )
        code = (metadata or {}).get("exit_code")
        return code if isinstance(code, int) else None

    def _stream_logs(self, state: _Job) -> None:
        """Emits the lines the job printed since the last call (forward token)."""
        assert state.log_stream is not None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": state.log_group,
                "logStreamName": state.log_stream,
                "startFromHead": True,
            }
            if state.log_token:
                kwargs["nextToken"] = state.log_token
            try:
                page = self._call(self.logs_client, "get_log_events", **kwargs)
            except Exception as error:  # the stream may not exist yet; logs are best effort
                if "ResourceNotFound" in type(error).__name__ or "ResourceNotFound" in str(error):
                    return
                raise
            events = page.get("events", [])
            token = page.get("nextForwardToken")
            if events:
                text = "\n".join(e["message"] for e in events)
                self._emit(TaskOutput(state.pathspec, "stdout", text))
            if not events or token == state.log_token:
                state.log_token = token
                return
            state.log_token = token

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        """TerminateJob for every job (and array parent) of ``handles``."""
        ids: list[str] = []
        for handle in handles:
            parent, sep, _ = handle.id.rpartition(":")
            ids.extend([parent, handle.id] if sep else [handle.id])
        for job_id in dict.fromkeys(ids):
            self._call(
                self.batch_client,
                "terminate_job",
                jobId=job_id,
                reason="batchwright: the run was interrupted or timed out",
            )
