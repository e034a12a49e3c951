"""The AWS Batch backend against stubbed botocore clients (no network, no AWS).

Batch and CloudWatch Logs are real botocore clients wrapped in a ``Stubber``, which checks
every request and every canned answer against botocore's service model. Retries are shown
on a client made by :func:`batchwright.aws.client` (the project's own retry settings),
answered through botocore's ``before-send`` event instead of the network.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import ANY, Stubber

import batchwright.datastore
from batchwright import aws
from batchwright.aws import AwsUnreachable, Patience
from batchwright.backends.aws_batch import (
    DESCRIBE_BATCH,
    LOG_INTERVAL,
    MAX_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    POLL_BACKOFF,
    POLL_JITTER,
    WAIT_REPORT_SECONDS,
    AwsBatchBackend,
)
from batchwright.backends.base import (
    BackendOptions,
    FanOut,
    TaskHandle,
    TaskSpec,
    TaskStatus,
    WaitPolicy,
)
from batchwright.batch.definition import LAST_USED_TAG, build_job_definition
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.datastore import FlowDatastore, LocalStorage, Storage
from batchwright.datastore.journal import Submission, SubmittedTask
from batchwright.entrypoint import (
    ARRAY_INDEX_VARIABLE,
    EXIT_DO_NOT_RETRY,
    NODE_INDEX_VARIABLE,
    TaskArguments,
)
from batchwright.events import ArrayProgress, Notice, TaskOutput, TaskStatusChanged, TaskWaiting
from batchwright.multinode import TASKS_VARIABLE
from batchwright.policy import BatchJobPolicy, StepPolicy

REGION = "us-east-1"
FLOW = "F"
RUN_ID = "1"
ROOT = "s3://bucket/prefix"
QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/q"
SPOT_QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/spot"
JOB_ROLE = "arn:aws:iam::123456789012:role/job"
PACKAGE_URL = f"{ROOT}/code/x.tar.gz"
PACKAGE_SHA256 = "0" * 64
DEFINITION_ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/batchwright-x:1"
STARTED_AT = 1_700_000_000_000
#: The date the fake clock reads (STARTED_AT), as the last-used tag writes it.
TODAY = "2023-11-14"
TARGET = QueueTarget(queue=QUEUE, platform="EC2", job_role_arn=JOB_ROLE)


def make_task(
    task_id: str = "2",
    *,
    step: str = "s",
    split_index: int | None = None,
    retry_count: int = 0,
    group: FanOut | None = None,
) -> TaskSpec:
    """One attempt of a task of a ``@batch`` step on the EC2 queue."""
    arguments = TaskArguments(
        flow_file="/x/flow.py",
        flow=FLOW,
        step=step,
        run_id=RUN_ID,
        task_id=task_id,
        datastore_root=ROOT,
        split_index=split_index,
        retry_count=retry_count,
    )
    policy = StepPolicy(
        step,
        backend="batch",
        batch=BatchJobPolicy(BatchOptions.from_attributes(step, {}), TARGET),
    )
    return TaskSpec(arguments, policy, group=group)


def job_record(job_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A DescribeJobs job record with the members botocore's model requires."""
    return {
        "jobId": job_id,
        "jobName": f"{FLOW}-s",
        "jobQueue": QUEUE,
        "status": status,
        "startedAt": STARTED_AT,
        "jobDefinition": DEFINITION_ARN,
        **extra,
    }


def make_client(service: str) -> Any:
    """A real botocore client with dummy credentials (only ever used stubbed)."""
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


def clear_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No endpoint, region, profile or credential of the machine reaches the test."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@dataclass
class Harness:
    """A backend on stubbed Batch and Logs clients, and the events it emitted."""

    backend: AwsBatchBackend
    batch: Stubber
    logs: Stubber
    events: list[object] = field(default_factory=list)
    #: The backend's clock (seconds since the epoch); tests move it forward.
    now: float = STARTED_AT / 1000
    #: SubmitJob requests as the client received them.
    submitted: list[dict[str, Any]] = field(default_factory=list)
    #: The run's datastore, as the backend sees it (a local folder here).
    store: FlowDatastore | None = None

    def finish(self, handles: Sequence[TaskHandle]) -> None:
        """Leave the done markers of ``handles``' tasks, as their entrypoints would."""
        assert self.store is not None
        for handle in handles:
            arguments = handle.task.arguments
            self.store.write_metadata(
                RUN_ID, arguments.step, arguments.task_id, 0, {"status": "succeeded"}
            )
            self.store.mark_done(RUN_ID, arguments.step, arguments.task_id, 0)

    def describe(self, ids: Sequence[str], jobs: Sequence[Mapping[str, Any]]) -> None:
        """Queue one DescribeJobs answer, expecting exactly ``ids``."""
        self.batch.add_response("describe_jobs", {"jobs": list(jobs)}, {"jobs": list(ids)})

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Harness]:
    clear_aws_environment(monkeypatch, tmp_path)
    # The code package is tested elsewhere; never build or upload it here.
    monkeypatch.setattr(
        AwsBatchBackend, "_code_package", lambda self, flow_file: (PACKAGE_URL, PACKAGE_SHA256)
    )
    batch_client, logs_client = make_client("batch"), make_client("logs")
    events: list[object] = []
    backend = AwsBatchBackend(
        BackendOptions(FLOW, RUN_ID, ROOT, events.append, user="ada"),
        batch_client=batch_client,
        logs_client=logs_client,
        random=lambda: 0.5,  # no jitter unless a test asks for it
    )
    harness = Harness(backend, Stubber(batch_client), Stubber(logs_client), events)
    # The run's datastore (s3://... for the backend) is a local folder.
    monkeypatch.setattr(
        batchwright.datastore,
        "open_storage",
        lambda root, patience=None: LocalStorage(tmp_path / "datastore"),
    )
    harness.store = FlowDatastore(LocalStorage(tmp_path / "datastore"), FLOW)
    backend.clock = lambda: harness.now

    def capture(params: dict[str, Any], **kwargs: Any) -> None:
        harness.submitted.append(copy.deepcopy(params))

    batch_client.meta.events.register("before-parameter-build.batch.SubmitJob", capture)
    with harness.batch, harness.logs:
        yield harness
        harness.batch.assert_no_pending_responses()
        harness.logs.assert_no_pending_responses()


def expect_definition_lookup(
    harness: Harness, task: TaskSpec, found: list[dict[str, Any]], *, stamped: bool = True
) -> str:
    """Queue DescribeJobDefinitions for ``task``'s definition; returns its name. The
    definitions found carry today's last-used stamp unless ``stamped`` is False."""
    assert task.policy.batch is not None
    definition = build_job_definition(task.policy.batch.options, task.policy.batch.target)
    if stamped:
        found = [{"tags": {LAST_USED_TAG: TODAY}, **d} for d in found]
    harness.batch.add_response(
        "describe_job_definitions",
        {"jobDefinitions": found},
        {"jobDefinitionName": definition.name, "status": "ACTIVE"},
    )
    return definition.name


# -- submit ------------------------------------------------------------------------------


def test_submit_one_task_registers_the_definition_and_submits_one_job(harness: Harness) -> None:
    task = make_task("2")
    assert task.policy.batch is not None
    definition = build_job_definition(task.policy.batch.options, task.policy.batch.target)
    expect_definition_lookup(harness, task, [])
    # Registered with the day's date: `jobdefs prune` reads when a run last used it.
    body = definition.kwargs()
    body["tags"] = {**body["tags"], LAST_USED_TAG: TODAY}
    harness.batch.add_response(
        "register_job_definition",
        {"jobDefinitionName": definition.name, "jobDefinitionArn": DEFINITION_ARN, "revision": 1},
        body,
    )
    harness.batch.add_response("submit_job", {"jobName": "F-s-2", "jobId": "job-1"})

    handles = harness.backend.submit([task])

    assert handles == [TaskHandle("batch", "job-1", task)]
    [request] = harness.submitted
    assert request["jobQueue"] == QUEUE
    assert request["jobDefinition"] == DEFINITION_ARN
    assert "arrayProperties" not in request
    overrides = request["containerOverrides"]
    command = overrides["command"]
    # The bootstrap fetches the package, checks its SHA-256, then runs the entrypoint with
    # the task's arguments; in the container the flow file sits at the root of the package.
    in_container = task.arguments._replace(flow_file="flow.py").to_argv()
    assert command[-len(in_container) - 2 :] == [PACKAGE_URL, PACKAGE_SHA256, *in_container]
    assert {"name": "PYTHONUNBUFFERED", "value": "1"} in overrides["environment"]
    # Who started the run: the client inside the step reads their namespace.
    assert {"name": "BATCHWRIGHT_USER", "value": "ada"} in overrides["environment"]
    assert not any(e["name"].startswith("AWS_") for e in overrides["environment"])
    assert {r["type"]: r["value"] for r in overrides["resourceRequirements"]} == {
        "VCPU": str(task.policy.batch.options.cpu),
        "MEMORY": str(task.policy.batch.options.memory),
    }
    assert harness.backend.calls == {
        "describe_job_definitions": 1,
        "register_job_definition": 1,
        "submit_job": 1,
    }
    assert Notice(f"[{task.pathspec}] submitted to queue q as job job-1") in harness.events


def test_submit_reuses_an_active_definition_without_registering(harness: Harness) -> None:
    first, second = make_task("2"), make_task("3")
    name = expect_definition_lookup(
        harness,
        first,
        [
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": f"{DEFINITION_ARN}-r1",
                "revision": 1,
                "type": "container",
                "status": "ACTIVE",
            },
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": f"{DEFINITION_ARN}-r3",
                "revision": 3,
                "type": "container",
                "status": "ACTIVE",
            },
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": f"{DEFINITION_ARN}-r2",
                "revision": 2,
                "type": "container",
                "status": "ACTIVE",
            },
        ],
        stamped=False,
    )
    assert name.startswith("batchwright-")
    # No RegisterJobDefinition is queued: the Stubber fails the test if one is made. The
    # newest revision is stamped as used today, once.
    harness.batch.add_response(
        "tag_resource",
        {},
        {"resourceArn": f"{DEFINITION_ARN}-r3", "tags": {LAST_USED_TAG: TODAY}},
    )
    harness.batch.add_response("submit_job", {"jobName": "F-s-2", "jobId": "job-2"})
    harness.batch.add_response("submit_job", {"jobName": "F-s-3", "jobId": "job-3"})

    harness.backend.submit([first])
    harness.backend.submit([second])  # same definition: cached, no second lookup

    assert [r["jobDefinition"] for r in harness.submitted] == [f"{DEFINITION_ARN}-r3"] * 2
    assert harness.backend.calls == {
        "describe_job_definitions": 1,
        "tag_resource": 1,
        "submit_job": 2,
    }


def test_a_definition_already_stamped_today_is_not_tagged_again(harness: Harness) -> None:
    task = make_task("2")
    expect_definition_lookup(
        harness,
        task,
        [
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": DEFINITION_ARN,
                "revision": 1,
                "type": "container",
                "status": "ACTIVE",
                "tags": {LAST_USED_TAG: TODAY},
            }
        ],
    )
    harness.batch.add_response("submit_job", {"jobName": "F-s-2", "jobId": "job-2"})
    harness.backend.submit([task])
    assert "tag_resource" not in harness.backend.calls


def test_submit_fan_out_members_as_one_array_job(harness: Harness) -> None:
    group = FanOut(parent="start/1", step="s", size=3)
    tasks = [make_task(str(10 + i), split_index=i, group=group) for i in range(3)]
    expect_definition_lookup(
        harness,
        tasks[0],
        [
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": DEFINITION_ARN,
                "revision": 1,
                "type": "container",
            }
        ],
    )
    harness.batch.add_response("submit_job", {"jobName": "F-s-10-x3", "jobId": "parent"})

    handles = harness.backend.submit(tasks)

    [request] = harness.submitted
    assert request["arrayProperties"] == {"size": len(tasks)}
    assert [h.id for h in handles] == ["parent:0", "parent:1", "parent:2"]
    assert [h.task for h in handles] == tasks
    command = request["containerOverrides"]["command"]
    assert command[command.index("--task-id") + 1] == "10-12"  # a run, written compactly
    assert command[command.index("--split-index") + 1] == "0-2"
    assert command[command.index("--array-index-variable") + 1] == ARRAY_INDEX_VARIABLE
    assert harness.backend.calls["submit_job"] == 1


# -- terminate ---------------------------------------------------------------------------


def test_terminate_array_children_stops_the_parent_and_each_child_once(
    harness: Harness,
) -> None:
    children = [TaskHandle("batch", f"parent:{i}", make_task(str(i))) for i in range(3)]
    single = TaskHandle("batch", "job-9", make_task("9"))
    for job_id in ["parent", "parent:0", "parent:1", "parent:2", "job-9"]:
        harness.batch.add_response("terminate_job", {}, {"jobId": job_id, "reason": ANY})

    harness.backend.terminate([*children, single])

    assert harness.backend.calls == {"terminate_job": 5}


# -- poll: DescribeJobs ------------------------------------------------------------------


def test_poll_chunks_describe_jobs_at_100_ids(harness: Harness) -> None:
    count = 250
    ids = [f"job-{i:03d}" for i in range(count)]
    handles = [TaskHandle("batch", job_id, make_task(str(i))) for i, job_id in enumerate(ids)]
    wanted = ["SUCCEEDED" if i % 3 == 0 else "RUNNING" for i in range(count)]
    chunks = [ids[start : start + DESCRIBE_BATCH] for start in range(0, count, DESCRIBE_BATCH)]
    assert [len(c) for c in chunks] == [100, 100, 50]
    for chunk in chunks:
        # Answered in reverse: the backend must match records by id, not by position.
        records = [job_record(j, wanted[ids.index(j)]) for j in reversed(chunk)]
        harness.describe(chunk, records)

    statuses = harness.backend.poll(handles)

    assert harness.backend.calls == {"describe_jobs": 3}
    assert statuses == [
        TaskStatus.succeeded() if w == "SUCCEEDED" else TaskStatus.running(STARTED_AT / 1000)
        for w in wanted
    ]
    assert harness.of_type(TaskStatusChanged) == [
        TaskStatusChanged(h.task.pathspec, w) for h, w in zip(handles, wanted, strict=True)
    ]


def test_a_job_not_yet_visible_after_submit_counts_as_running(harness: Harness) -> None:
    task = make_task("2")
    expect_definition_lookup(
        harness,
        task,
        [
            {
                "jobDefinitionName": "n",
                "jobDefinitionArn": DEFINITION_ARN,
                "revision": 1,
                "type": "container",
            }
        ],
    )
    harness.batch.add_response("submit_job", {"jobName": "F-s-2", "jobId": "job-1"})
    [handle] = harness.backend.submit([task])
    harness.describe(["job-1"], [])  # DescribeJobs is eventually consistent
    harness.describe(["job-1"], [job_record("job-1", "SUCCEEDED")])

    assert harness.backend.poll([handle]) == [TaskStatus.waiting("not visible in DescribeJobs yet")]
    assert harness.of_type(TaskStatusChanged) == []
    assert harness.backend.poll([handle]) == [TaskStatus.succeeded()]
    assert harness.of_type(TaskStatusChanged) == [TaskStatusChanged(task.pathspec, "SUCCEEDED")]


MISCONFIGURED = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - no compute environment fits"
NO_CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity"


def test_a_misconfiguration_is_shown_at_once_and_ends_the_job_after_the_grace(
    harness: Harness,
) -> None:
    grace = harness.backend.run.waits.misconfiguration_grace_seconds
    handle = TaskHandle("batch", "job-1", make_task("2"))
    runnable = job_record("job-1", "RUNNABLE", statusReason=MISCONFIGURED)
    harness.describe(["job-1"], [runnable])

    assert harness.backend.poll([handle]) == [TaskStatus.waiting(MISCONFIGURED)]
    [notice] = [n for n in harness.of_type(Notice) if "stuck-waiting" in n.text]
    assert "queue q" in notice.text and "Lower cpu/memory/gpu" in notice.text

    # Still within the grace (seen during scale-ups from zero): it keeps waiting.
    harness.now += grace - 1
    harness.describe(["job-1"], [runnable])
    assert harness.backend.poll([handle])[0].state == "waiting"

    harness.now += 1
    harness.describe(["job-1"], [runnable])
    harness.batch.add_response("terminate_job", {}, {"jobId": "job-1", "reason": ANY})
    [status] = harness.backend.poll([handle])
    assert status.state == "failed" and status.retryable is False
    assert f"could not start for {grace:.0f} s" in status.reason
    assert "queue q" in status.reason and "instances large enough" in status.reason


def test_a_misconfiguration_that_clears_restarts_the_grace(harness: Harness) -> None:
    grace = harness.backend.run.waits.misconfiguration_grace_seconds
    handle = TaskHandle("batch", "job-1", make_task("2"))
    for reason in (MISCONFIGURED, "", MISCONFIGURED):
        harness.describe(["job-1"], [job_record("job-1", "RUNNABLE", statusReason=reason)])
        assert harness.backend.poll([handle])[0].state == "waiting"
        harness.now += grace * 0.75
    assert "terminate_job" not in harness.backend.calls


def test_waiting_for_capacity_is_reported_and_never_ends_the_job(harness: Harness) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    for _ in range(3):
        harness.describe(["job-1"], [job_record("job-1", "RUNNABLE", statusReason=NO_CAPACITY)])
        assert harness.backend.poll([handle]) == [TaskStatus.waiting(NO_CAPACITY)]
        harness.now += WAIT_REPORT_SECONDS / 2
    # Reported when it began, then again once WAIT_REPORT_SECONDS had passed.
    waits = harness.of_type(TaskWaiting)
    assert [w.reason for w in waits] == [NO_CAPACITY, NO_CAPACITY]
    assert waits[0].queue == "q" and waits[1].waited_seconds >= WAIT_REPORT_SECONDS
    assert "terminate_job" not in harness.backend.calls


def test_waiting_children_of_one_array_job_are_reported_together(harness: Harness) -> None:
    group = FanOut("start/1", "s", 3)
    handles = [
        TaskHandle("batch", f"arr:{i}", make_task(str(10 + i), split_index=i, group=group))
        for i in range(3)
    ]
    records = [job_record(h.id, "RUNNABLE", statusReason=NO_CAPACITY) for h in handles]
    parent = job_record("arr", "PENDING", arrayProperties={"size": 3, "statusSummary": {}})
    # The parent is asked about too (its record says whether the API runs array jobs).
    harness.describe(["arr", *(h.id for h in handles)], [parent, *records])
    harness.backend.poll(handles)
    [wait] = harness.of_type(TaskWaiting)
    assert wait.tasks == 3 and wait.pathspec == f"{FLOW}/{RUN_ID}/s"


def test_max_wait_ends_a_job_that_never_starts(harness: Harness) -> None:
    backend = harness.backend
    backend.run = dataclasses.replace(backend.run, waits=WaitPolicy(max_wait_seconds=600))
    handle = TaskHandle("batch", "job-1", make_task("2"))
    created = int(harness.now * 1000)
    for advance, expected in ((599, "waiting"), (1, "failed")):
        harness.now += advance
        harness.describe(["job-1"], [job_record("job-1", "RUNNABLE", createdAt=created)])
        if expected == "failed":
            harness.batch.add_response("terminate_job", {}, {"jobId": "job-1", "reason": ANY})
        [status] = backend.poll([handle])
        assert status.state == expected
    assert "longer than --max-wait 600" in status.reason and not status.retryable


def test_a_job_never_shown_is_given_up_after_the_grace(harness: Harness) -> None:
    grace = harness.backend.run.waits.invisible_grace_seconds
    handle = TaskHandle("batch", "job-1", make_task("2"))
    harness.describe(["job-1"], [])
    assert harness.backend.poll([handle])[0].state == "waiting"
    harness.now += grace
    harness.describe(["job-1"], [])
    [status] = harness.backend.poll([handle])
    assert status.state == "failed" and not status.retryable
    assert "DescribeJobs has never shown it" in status.reason and "job-1" in status.reason


# -- Spot reclaims ------------------------------------------------------------------------

RECLAIMED = "Host EC2 (instance i-0123456789abcdef0) terminated."


def test_a_finished_job_reports_its_times_instance_and_failure_class(harness: Harness) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    record = job_record(
        "job-1",
        "FAILED",
        statusReason="Essential container in task exited",
        startedAt=STARTED_AT + 30_000,
        stoppedAt=STARTED_AT + 90_000,
        container={"exitCode": 137, "instanceType": "c5.xlarge", "reason": "OutOfMemoryError"},
    )
    harness.describe(["job-1"], [record])
    [status] = harness.backend.poll([handle])
    assert status.state == "failed" and status.facts is not None
    assert status.facts.started_at == (STARTED_AT + 30_000) / 1000
    assert status.facts.stopped_at == (STARTED_AT + 90_000) / 1000
    assert status.facts.instance_type == "c5.xlarge"
    assert status.facts.failure == "out-of-memory"


def test_a_reclaimed_job_is_an_infrastructure_failure(harness: Harness) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    record = job_record(
        "job-1", "FAILED", statusReason=RECLAIMED, attempts=[{"statusReason": RECLAIMED}]
    )
    harness.describe(["job-1"], [record])
    [status] = harness.backend.poll([handle])
    assert status.state == "failed" and status.infrastructure and status.reclaims == 1
    assert "spot-reclaimed" in status.reason


def test_an_attempt_moves_to_on_demand_after_the_reclaims_it_may_take(harness: Harness) -> None:
    spot = dataclasses.replace(TARGET, queue=SPOT_QUEUE, platform="SPOT")
    task = make_task("2")
    assert task.policy.batch is not None
    job = dataclasses.replace(task.policy.batch, target=spot, on_demand=TARGET)
    task = dataclasses.replace(task, policy=dataclasses.replace(task.policy, batch=job))
    definition = expect_definition_lookup(harness, task, [])
    harness.batch.add_response(
        "register_job_definition",
        {"jobDefinitionName": definition, "jobDefinitionArn": DEFINITION_ARN, "revision": 1},
    )
    harness.batch.add_response("submit_job", {"jobName": "a", "jobId": "job-1"})
    [handle] = harness.backend.submit([task])
    assert harness.submitted[-1]["jobQueue"] == SPOT_QUEUE

    # Batch retried the reclaimed attempt itself and would run it on Spot a third time:
    # after two reclaims the backend stops it so the scheduler can move it.
    attempts = [{"statusReason": RECLAIMED}, {"statusReason": RECLAIMED}]
    harness.describe(["job-1"], [job_record("job-1", "RUNNABLE", attempts=attempts)])
    harness.batch.add_response("terminate_job", {}, {"jobId": "job-1", "reason": ANY})
    [status] = harness.backend.poll([handle])
    assert status.infrastructure and status.reclaims == 2

    harness.batch.add_response("submit_job", {"jobName": "b", "jobId": "job-2"})
    moved = dataclasses.replace(task, resubmission=1, reclaims=2)
    harness.backend.submit([moved])
    request = harness.submitted[-1]
    assert request["jobQueue"] == QUEUE  # on-demand now
    assert request["jobName"].endswith("-a0-r1")  # the same attempt, submitted again
    assert any("moves to the on-demand queue" in n.text for n in harness.of_type(Notice))


# -- poll: the adaptive interval ---------------------------------------------------------


def test_poll_interval_adapts_with_backoff_and_jitter(harness: Harness) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    unchanged_polls = 8
    # random() == 0.5 is the middle of the spread (no jitter); 0.0 and almost 1.0 are its ends.
    draws = iter([0.5] * (1 + unchanged_polls + 1) + [0.0, 1.0 - 1e-12])
    harness.backend.random = draws.__next__

    def poll(status: str) -> float:
        harness.describe(["job-1"], [job_record("job-1", status)])
        harness.backend.poll([handle])
        return harness.backend.poll_interval

    # A change (SUBMITTED -> RUNNABLE): the minimum, 1 s.
    assert poll("RUNNABLE") == pytest.approx(1.0) == MIN_POLL_INTERVAL
    # No change: each poll waits POLL_BACKOFF times longer, up to MAX_POLL_INTERVAL.
    intervals = [poll("RUNNABLE") for _ in range(unchanged_polls)]
    expected, base = [], MIN_POLL_INTERVAL
    for _ in range(unchanged_polls):
        base = min(base * POLL_BACKOFF, MAX_POLL_INTERVAL)
        expected.append(base)
    assert intervals == pytest.approx(expected)
    assert intervals[0] == pytest.approx(MIN_POLL_INTERVAL * POLL_BACKOFF)
    assert intervals[-2:] == pytest.approx([MAX_POLL_INTERVAL, MAX_POLL_INTERVAL])
    assert all(a < b for a, b in itertools.pairwise(intervals) if b < MAX_POLL_INTERVAL)
    # A change again: back to the minimum.
    assert poll("RUNNING") == pytest.approx(MIN_POLL_INTERVAL)
    # The jitter: random() == 0 gives the lower bound of the spread...
    assert poll("STARTING") == pytest.approx(MIN_POLL_INTERVAL * (1 - POLL_JITTER))
    # ...and random() -> 1 the upper bound (here after one unchanged poll).
    upper = poll("STARTING")
    assert upper == pytest.approx(MIN_POLL_INTERVAL * POLL_BACKOFF * (1 + POLL_JITTER))
    assert upper < MIN_POLL_INTERVAL * POLL_BACKOFF * (1 + POLL_JITTER)
    assert next(draws, None) is None  # one draw per poll


# -- poll: throttling and 5xx, through the project's own client --------------------------


class _Body:
    """The ``raw`` of an ``AWSResponse``: something with ``stream()``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.data


Answer = tuple[int, dict[str, str], dict[str, Any]]


def _answering_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answers: Callable[[int], Answer]
) -> tuple[Any, list[dict[str, Any]], list[int]]:
    """A Batch client from :func:`batchwright.aws.client` whose DescribeJobs requests are
    answered by ``answers(attempt)``; returns it, the bodies sent, and the retry delays
    botocore asked for (made zero so that the test does not sleep)."""
    clear_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session that sees this environment
    delays: list[int] = []

    def no_delay(self: ExponentialBackoff, context: Any) -> float:
        delays.append(context.attempt_number)
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", no_delay)
    client = aws.client("batch", region=REGION)
    sent: list[dict[str, Any]] = []

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(json.loads(request.body))
        status, headers, body = answers(len(sent))
        headers = {"Content-Type": "application/json", **headers}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))

    client.meta.events.register("before-send.batch.DescribeJobs", answer)
    return client, sent, delays


THROTTLED: Answer = (
    429,
    {"x-amzn-ErrorType": "TooManyRequestsException"},
    {"__type": "TooManyRequestsException", "message": "Too Many Requests"},
)
UNAVAILABLE: Answer = (
    503,
    {"x-amzn-ErrorType": "ServerException"},
    {"__type": "ServerException", "message": "Service Unavailable"},
)


def test_throttling_and_5xx_answers_are_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers = [THROTTLED, UNAVAILABLE, (200, {}, {"jobs": [job_record("job-1", "SUCCEEDED")]})]
    client, sent, delays = _answering_client(monkeypatch, tmp_path, lambda n: answers[n - 1])
    backend = AwsBatchBackend(
        BackendOptions(FLOW, RUN_ID, ROOT),
        batch_client=client,
        logs_client=make_client("logs"),
        random=lambda: 0.5,
    )

    statuses = backend.poll([TaskHandle("batch", "job-1", make_task("2"))])

    assert statuses == [TaskStatus.succeeded()]
    assert sent == [{"jobs": ["job-1"]}] * 3  # the same request, three times
    assert delays == [1, 2]  # botocore backed off before each retry
    assert backend.calls == {"describe_jobs": 1}  # one API call for the backend


def _poll_until_given_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Any, int]:
    """Polls through a client whose every DescribeJobs answer is a 503; returns the client
    and how many requests it sent before the backend saw the error."""
    client, sent, _ = _answering_client(monkeypatch, tmp_path, lambda n: UNAVAILABLE)
    # No patience beyond botocore's own retries: the first transient failure ends it.
    impatient = Patience(limit_seconds=0)
    backend = AwsBatchBackend(
        BackendOptions(FLOW, RUN_ID, ROOT, patience=impatient),
        batch_client=client,
        logs_client=make_client("logs"),
    )
    with pytest.raises(AwsUnreachable) as caught:
        backend.poll([TaskHandle("batch", "job-1", make_task("2"))])
    assert isinstance(caught.value.__cause__, ClientError)
    assert "ServerException" in str(caught.value)
    return client, len(sent)


def test_retries_are_standard_mode_and_bounded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client, attempts = _poll_until_given_up(monkeypatch, tmp_path)
    assert client.meta.config.retries["mode"] == "standard"
    assert attempts == client.meta.config.retries["total_max_attempts"]
    assert attempts > 3


def test_retries_give_up_after_eight_attempts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, attempts = _poll_until_given_up(monkeypatch, tmp_path)
    assert attempts == 8


# -- poll: CloudWatch Logs ---------------------------------------------------------------


def log_page(messages: Sequence[str], token: str) -> dict[str, Any]:
    return {
        "events": [
            {"timestamp": STARTED_AT + i, "message": m, "ingestionTime": STARTED_AT + i}
            for i, m in enumerate(messages)
        ],
        "nextForwardToken": token,
        "nextBackwardToken": "b/0",
    }


LOG_GROUP = "/batchwright/F"
LOG_STREAM = "F/default/0123456789abcdef"


def logs_request(token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "logGroupName": LOG_GROUP,
        "logStreamName": LOG_STREAM,
        "startFromHead": True,
    }
    if token is not None:
        request["nextToken"] = token
    return request


def running_with_logs(job_id: str) -> dict[str, Any]:
    return job_record(
        job_id,
        "RUNNING",
        container={
            "logStreamName": LOG_STREAM,
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": LOG_GROUP}},
        },
    )


def test_logs_follow_the_forward_token_and_resume_from_it(harness: Harness) -> None:
    task = make_task("2")
    handle = TaskHandle("batch", "job-1", task)
    harness.describe(["job-1"], [running_with_logs("job-1")])
    harness.logs.add_response("get_log_events", log_page(["one", "two"], "f/A"), logs_request())
    harness.logs.add_response("get_log_events", log_page(["three"], "f/B"), logs_request("f/A"))
    harness.logs.add_response("get_log_events", log_page([], "f/B"), logs_request("f/B"))

    assert harness.backend.poll([handle]) == [TaskStatus.running(STARTED_AT / 1000)]
    assert harness.of_type(TaskOutput) == [
        TaskOutput(task.pathspec, "stdout", "one\ntwo"),
        TaskOutput(task.pathspec, "stdout", "three"),
    ]
    assert harness.backend.calls["get_log_events"] == 3

    # Before LOG_INTERVAL has passed: no GetLogEvents (none is queued).
    harness.now += LOG_INTERVAL / 2
    harness.describe(["job-1"], [running_with_logs("job-1")])
    harness.backend.poll([handle])
    assert harness.backend.calls["get_log_events"] == 3

    # After it: resume from token B, not from the head.
    harness.now += LOG_INTERVAL / 2
    harness.describe(["job-1"], [running_with_logs("job-1")])
    harness.logs.add_response("get_log_events", log_page(["four"], "f/C"), logs_request("f/B"))
    harness.logs.add_response("get_log_events", log_page([], "f/C"), logs_request("f/C"))
    harness.backend.poll([handle])
    assert harness.of_type(TaskOutput)[2:] == [TaskOutput(task.pathspec, "stdout", "four")]
    assert harness.backend.calls["get_log_events"] == 5


def test_a_log_stream_not_found_is_ignored(harness: Harness) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    harness.describe(["job-1"], [running_with_logs("job-1")])
    harness.logs.add_client_error(
        "get_log_events",
        service_error_code="ResourceNotFoundException",
        service_message="The specified log stream does not exist.",
        http_status_code=400,
        expected_params=logs_request(),
    )

    assert harness.backend.poll([handle]) == [TaskStatus.running(STARTED_AT / 1000)]
    assert harness.backend.calls["get_log_events"] == 1
    assert harness.of_type(TaskOutput) == []


# -- poll: exit codes of failed jobs -----------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The datastore (root ``s3://...`` for the backend) is a local folder; returns the
    roots the backend opened."""
    opened: list[str] = []

    def open_storage(root: str, patience: object = None) -> Storage:
        opened.append(root)
        return LocalStorage(tmp_path / "datastore")

    monkeypatch.setattr(batchwright.datastore, "open_storage", open_storage)
    return opened


def write_exit_code(tmp_path: Path, task: TaskSpec, attempt: int, code: int) -> None:
    """What the task entrypoint records when it ends (``metadata.json`` of the attempt)."""
    store = FlowDatastore(LocalStorage(tmp_path / "datastore"), FLOW)
    store.write_metadata(RUN_ID, task.step, task.task_id, attempt, {"exit_code": code})


UNEXPLAINED_FAILURE = {"statusReason": "Essential container in task exited", "container": {}}


def test_a_failed_job_without_exit_code_uses_the_one_the_entrypoint_recorded(
    harness: Harness, recorded: list[str], tmp_path: Path
) -> None:
    task = make_task("2", retry_count=1)
    write_exit_code(tmp_path, task, attempt=0, code=42)  # an earlier attempt: not this one
    write_exit_code(tmp_path, task, attempt=1, code=1)
    harness.describe(["job-1"], [job_record("job-1", "FAILED", **UNEXPLAINED_FAILURE)])

    [status] = harness.backend.poll([TaskHandle("batch", "job-1", task)])

    assert status.state == "failed"
    assert status.exit_code == 1
    assert "exit code 1" in status.reason
    assert status.reason.startswith("job job-1: ")
    assert recorded == [ROOT]


def test_a_failed_job_with_nothing_recorded_keeps_batchs_reason(
    harness: Harness, recorded: list[str]
) -> None:
    harness.describe(["job-1"], [job_record("job-1", "FAILED", **UNEXPLAINED_FAILURE)])

    [status] = harness.backend.poll([TaskHandle("batch", "job-1", make_task("2"))])

    assert status.state == "failed"
    assert status.exit_code is None
    assert "Essential container in task exited" in status.reason
    assert recorded == [ROOT]


def test_the_exit_code_batch_reports_wins_over_the_recorded_one(
    harness: Harness, recorded: list[str], tmp_path: Path
) -> None:
    task = make_task("2")
    write_exit_code(tmp_path, task, attempt=0, code=42)
    harness.describe(
        ["job-1"],
        [
            job_record(
                "job-1",
                "FAILED",
                statusReason="Essential container in task exited",
                container={"exitCode": 1},
            )
        ],
    )

    [status] = harness.backend.poll([TaskHandle("batch", "job-1", task)])

    assert status.exit_code == 1
    assert "user-error" in status.reason
    assert "42" not in status.reason
    assert recorded == [ROOT]  # read for the attempt's stored stderr only


@pytest.mark.parametrize("where", ["reported by Batch", "recorded by the entrypoint"])
def test_exit_code_do_not_retry_is_not_retryable(
    harness: Harness, recorded: list[str], tmp_path: Path, where: str
) -> None:
    task = make_task("2")
    if where == "reported by Batch":
        record = job_record(
            "job-1",
            "FAILED",
            statusReason="Essential container in task exited",
            container={"exitCode": EXIT_DO_NOT_RETRY},
        )
    else:
        write_exit_code(tmp_path, task, attempt=0, code=EXIT_DO_NOT_RETRY)
        record = job_record("job-1", "FAILED", **UNEXPLAINED_FAILURE)
    harness.describe(["job-1"], [record])

    [status] = harness.backend.poll([TaskHandle("batch", "job-1", task)])

    assert status.state == "failed"
    assert status.exit_code == EXIT_DO_NOT_RETRY
    assert status.retryable is False


# -- a partial or different Batch API (a second emulator showed these) -------------------


def test_an_api_that_ignores_array_jobs_gets_one_job_per_member(harness: Harness) -> None:
    group = FanOut("start/1", "s", 3)
    tasks = [make_task(str(10 + i), split_index=i, group=group) for i in range(3)]
    definition = expect_definition_lookup(harness, tasks[0], [])
    harness.batch.add_response(
        "register_job_definition",
        {"jobDefinitionName": definition, "jobDefinitionArn": DEFINITION_ARN, "revision": 1},
    )
    harness.batch.add_response("submit_job", {"jobName": "a", "jobId": "arr"})
    handles = harness.backend.submit(tasks)
    # The API ran the parent as a plain job: no arrayProperties in its record, and no
    # children at all. The backend stops it and hands the members back to be resubmitted.
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [job_record("arr", "RUNNING")])
    harness.batch.add_response("terminate_job", {}, {"jobId": "arr", "reason": ANY})
    statuses = harness.backend.poll(handles)
    assert all(s.state == "failed" and s.infrastructure for s in statuses)
    assert any("submitted as one job each" in n.text for n in harness.of_type(Notice))
    for i in range(3):
        harness.batch.add_response("submit_job", {"jobName": "b", "jobId": f"single-{i}"})
    again = harness.backend.submit([dataclasses.replace(t, resubmission=1) for t in tasks])
    assert [h.id for h in again] == ["single-0", "single-1", "single-2"]
    assert all("arrayProperties" not in request for request in harness.submitted[1:])


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("AccessDeniedException", 400), ("ServiceUnavailable", 503)],
)
def test_a_logs_failure_is_reported_once_and_never_stops_the_run(
    harness: Harness, code: str, status: int
) -> None:
    handle = TaskHandle("batch", "job-1", make_task("2"))
    harness.describe(["job-1"], [running_with_logs("job-1")])
    harness.logs.add_client_error(
        "get_log_events", service_error_code=code, http_status_code=status
    )
    assert harness.backend.poll([handle]) == [TaskStatus.running(STARTED_AT / 1000)]
    [notice] = [n for n in harness.of_type(Notice) if "CloudWatch Logs" in n.text]
    assert code in notice.text and "python FLOW.py logs" in notice.text
    # Logs are left alone from then on; the job is still followed to its end.
    harness.now += LOG_INTERVAL
    container = running_with_logs("job-1")["container"]
    harness.describe(["job-1"], [job_record("job-1", "SUCCEEDED", container=container)])
    assert harness.backend.poll([handle]) == [TaskStatus.succeeded()]
    assert harness.backend.calls["get_log_events"] == 1


def test_logs_that_cannot_be_reached_do_not_hold_the_run_up(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Logs endpoint nobody listens on: refused at once, tried twice, then given up.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LOGS", "http://127.0.0.1:9")
    backend = AwsBatchBackend(
        dataclasses.replace(harness.backend.run), batch_client=harness.backend.batch_client
    )
    backend.clock = lambda: harness.now
    handle = TaskHandle("batch", "job-1", make_task("2"))
    harness.describe(["job-1"], [running_with_logs("job-1")])
    started = time.monotonic()
    assert backend.poll([handle]) == [TaskStatus.running(STARTED_AT / 1000)]
    assert time.monotonic() - started < 30
    assert any("could not be read" in n.text for n in harness.of_type(Notice))


def test_a_failed_attempts_stderr_comes_from_the_datastore_when_logs_did_not_show_it(
    harness: Harness, recorded: list[str], tmp_path: Path
) -> None:
    task = make_task("2")
    store = FlowDatastore(LocalStorage(tmp_path / "datastore"), FLOW)
    traceback_text = "Traceback (most recent call last):\n  ...\nValueError: boom\n"
    store.write_log(
        RUN_ID, task.step, task.task_id, 0, "stderr", io.BytesIO(traceback_text.encode())
    )
    harness.describe(["job-1"], [job_record("job-1", "FAILED", **UNEXPLAINED_FAILURE)])
    harness.backend.poll([TaskHandle("batch", "job-1", task)])
    [shown] = [o for o in harness.of_type(TaskOutput) if o.stream == "stderr"]
    assert "from the datastore" in shown.text and shown.text.endswith("ValueError: boom")

    # When CloudWatch Logs already showed that traceback, it is not shown twice.
    again = make_task("3")
    store.write_log(
        RUN_ID, again.step, again.task_id, 0, "stderr", io.BytesIO(traceback_text.encode())
    )
    failed = job_record(
        "job-2",
        "FAILED",
        statusReason="Essential container in task exited",
        container=running_with_logs("job-2")["container"],
    )
    harness.describe(["job-2"], [failed])
    harness.logs.add_response(
        "get_log_events", log_page(["ValueError: boom"], "f/A"), logs_request()
    )
    harness.logs.add_response("get_log_events", log_page([], "f/A"), logs_request("f/A"))
    harness.backend.poll([TaskHandle("batch", "job-2", again)])
    assert len([o for o in harness.of_type(TaskOutput) if o.stream == "stderr"]) == 1


def test_logs_fall_back_to_the_environments_log_group(harness: Harness) -> None:
    target = dataclasses.replace(TARGET, log_group="/batchwright/env-logs")
    task = make_task("2")
    assert task.policy.batch is not None
    job = dataclasses.replace(task.policy.batch, target=target)
    task = dataclasses.replace(task, policy=dataclasses.replace(task.policy, batch=job))
    definition = expect_definition_lookup(harness, task, [])
    harness.batch.add_response(
        "register_job_definition",
        {"jobDefinitionName": definition, "jobDefinitionArn": DEFINITION_ARN, "revision": 1},
    )
    harness.batch.add_response("submit_job", {"jobName": "a", "jobId": "job-1"})
    [handle] = harness.backend.submit([task])
    # An API that echoes no log configuration: the environment's group, not /aws/batch/job.
    bare = job_record("job-1", "RUNNING", container={"logStreamName": LOG_STREAM})
    harness.describe(["job-1"], [bare])
    expected = {**logs_request(), "logGroupName": "/batchwright/env-logs"}
    harness.logs.add_response("get_log_events", log_page([], "f/A"), expected)
    harness.backend.poll([handle])
    assert harness.backend.calls["get_log_events"] == 1


def test_logs_an_api_wrote_to_batchs_default_group_are_found_there(harness: Harness) -> None:
    target = dataclasses.replace(TARGET, log_group="/batchwright/env-logs")
    task = make_task("2")
    assert task.policy.batch is not None
    job = dataclasses.replace(task.policy.batch, target=target)
    task = dataclasses.replace(task, policy=dataclasses.replace(task.policy, batch=job))
    handle = TaskHandle("batch", "job-1", task)
    bare = job_record("job-1", "SUCCEEDED", container={"logStreamName": LOG_STREAM})
    harness.describe(["job-1"], [bare])
    # The environment's group has no such stream (the API ignored the definition's log
    # configuration): Batch's default group does.
    harness.logs.add_client_error(
        "get_log_events",
        service_error_code="ResourceNotFoundException",
        http_status_code=400,
        expected_params={**logs_request(), "logGroupName": "/batchwright/env-logs"},
    )
    default = {**logs_request(), "logGroupName": "/aws/batch/job"}
    harness.logs.add_response("get_log_events", log_page(["from the default"], "f/A"), default)
    harness.logs.add_response(
        "get_log_events", log_page([], "f/A"), {**default, "nextToken": "f/A"}
    )
    assert harness.backend.poll([handle]) == [TaskStatus.succeeded()]
    assert harness.of_type(TaskOutput)[-1].text == "from the default"


# -- wide fan-outs: an array is followed through its parent ------------------------------


def _array_handles(size: int, parent: str = "arr") -> list[TaskHandle]:
    group = FanOut("start/1", "s", size)
    return [
        TaskHandle("batch", f"{parent}:{i}", make_task(str(10 + i), split_index=i, group=group))
        for i in range(size)
    ]


def _parent(size: int, **counts: int) -> dict[str, Any]:
    summary = {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0, "RUNNING": 0}
    summary.update({"SUCCEEDED": 0, "FAILED": 0, **counts})
    return job_record("arr", "PENDING", arrayProperties={"size": size, "statusSummary": summary})


@pytest.mark.parametrize("size", [1_000, 10_000])
def test_polling_an_array_costs_the_same_whatever_its_width(harness: Harness, size: int) -> None:
    handles = _array_handles(size)
    followed = [job_record(h.id, "RUNNABLE") for h in handles[:3]]
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [_parent(size, RUNNING=5), *followed])
    statuses = harness.backend.poll(handles)
    assert harness.backend.calls == {"describe_jobs": 1}
    assert {s.state for s in statuses} == {"waiting"}
    [progress] = harness.of_type(ArrayProgress)
    assert progress.size == size and progress.counts["RUNNING"] == 5


def test_waiting_children_are_reported_once_per_array_with_its_counts(harness: Harness) -> None:
    handles = _array_handles(1_000)
    reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no c5.large in us-east-1a"
    followed = [job_record(h.id, "RUNNABLE", statusReason=reason) for h in handles[:3]]
    parent = _parent(1_000, RUNNABLE=990, RUNNING=10)
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [parent, *followed])
    harness.backend.poll(handles)
    [waiting] = harness.of_type(TaskWaiting)
    assert waiting.pathspec == f"{FLOW}/{RUN_ID}/s"  # the step, not a child
    assert waiting.tasks == 990 and waiting.reason == reason


def test_failed_children_are_listed_and_described_as_the_counts_show_them(
    harness: Harness, recorded: list[str]
) -> None:
    handles = _array_handles(250)
    followed = [job_record(h.id, "RUNNING") for h in handles[:3]]
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [_parent(250, RUNNING=248, FAILED=2)])
    harness.batch.add_response(
        "list_jobs",
        {
            "jobSummaryList": [
                {"jobId": "arr:7", "jobName": "a"},
                {"jobId": "arr:9", "jobName": "a"},
            ]
        },
        {"arrayJobId": "arr", "jobStatus": "FAILED", "maxResults": 1000},
    )
    failure = {"statusReason": "Essential container in task exited", "container": {"exitCode": 1}}
    harness.describe(
        ["arr:7", "arr:9"],
        [job_record("arr:7", "FAILED", **failure), job_record("arr:9", "FAILED", **failure)],
    )
    statuses = dict(zip((h.id for h in handles), harness.backend.poll(handles), strict=True))
    assert statuses["arr:7"].state == statuses["arr:9"].state == "failed"
    assert statuses["arr:7"].exit_code == 1
    assert statuses["arr:100"].state == "waiting"
    del followed  # only the parent answered for them this time: they stay waiting

    # Everything ended and both failures are known: the rest succeeded, no more listing.
    rest = [h for h in handles if h.id not in ("arr:7", "arr:9")]
    harness.finish(rest)
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [_parent(250, SUCCEEDED=248, FAILED=2)])
    assert {s.state for s in harness.backend.poll(rest)} == {"succeeded"}
    assert harness.backend.calls["list_jobs"] == 1


def test_children_batch_calls_succeeded_are_confirmed_by_one_datastore_listing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    handles = _array_handles(500)
    harness.finish([h for h in handles if h.id != "arr:123"])
    storage = harness.backend._store(FLOW).storage
    requests: list[str] = []
    for name in ("list_keys", "read_bytes", "exists"):
        original = getattr(storage, name)

        def counted(key: str, _original: Any = original, _name: str = name) -> Any:
            requests.append(_name)
            return _original(key)

        monkeypatch.setattr(storage, name, counted)
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [_parent(500, SUCCEEDED=500)])
    statuses = dict(zip((h.id for h in handles), harness.backend.poll(handles), strict=True))
    assert requests == ["list_keys"]  # not a GET or HEAD per child
    # Batch says SUCCEEDED but the task never wrote its marker: not taken on trust.
    lost = statuses.pop("arr:123")
    assert lost.state == "failed" and lost.retryable and "no done marker" in str(lost.reason)
    assert {s.state for s in statuses.values()} == {"succeeded"}


def test_an_array_is_not_declared_done_before_its_failures_are_known(harness: Harness) -> None:
    handles = _array_handles(4)
    harness.describe(["arr", "arr:0", "arr:1", "arr:2"], [_parent(4, SUCCEEDED=3, FAILED=1)])
    # ListJobs is eventually consistent: the failure is not listed yet.
    harness.batch.add_response("list_jobs", {"jobSummaryList": []})
    assert {s.state for s in harness.backend.poll(handles)} == {"waiting"}


# -- multi-node jobs (parallel steps) ---------------------------------------------------
# One SubmitJob for every node, nodes followed as <id>#<i> with the job's own record
# standing in until AWS shows them, a node Batch stopped after the main node exited
# counted by its stored work, and one TerminateJob for the job.

GANG = FanOut("s/1", "train", 3, parallel=True)


def _gang() -> list[TaskSpec]:
    return [make_task(str(2 + i), step="train", split_index=i, group=GANG) for i in range(3)]


def _submit(harness: Harness) -> list[TaskHandle]:
    tasks = _gang()
    batch = tasks[0].policy.batch
    assert batch is not None
    definition = build_job_definition(batch.options, batch.target, multi_node=True)
    harness.batch.add_response(
        "describe_job_definitions",
        {"jobDefinitions": []},
        {"jobDefinitionName": definition.name, "status": "ACTIVE"},
    )
    body = definition.kwargs()
    body["tags"] = {**body["tags"], LAST_USED_TAG: TODAY}
    harness.batch.add_response(
        "register_job_definition",
        {"jobDefinitionName": definition.name, "jobDefinitionArn": DEFINITION_ARN, "revision": 1},
        body,
    )
    harness.batch.add_response("submit_job", {"jobName": "F-train", "jobId": "job-1"})
    return harness.backend.submit(tasks)


def test_the_nodes_go_out_as_one_multi_node_job(harness: Harness) -> None:
    handles = _submit(harness)
    assert [h.id for h in handles] == ["job-1#0", "job-1#1", "job-1#2"]
    [request] = harness.submitted
    assert "containerOverrides" not in request and "arrayProperties" not in request
    nodes = request["nodeOverrides"]
    assert nodes["numNodes"] == 3
    [node_range] = nodes["nodePropertyOverrides"]
    assert node_range["targetNodes"] == "0:"
    overrides = node_range["containerOverrides"]
    command = overrides["command"]
    # One command for every node: Batch's node index picks the member.
    assert command[command.index("--array-index-variable") + 1] == NODE_INDEX_VARIABLE
    assert command[command.index("--task-id") + 1] == "2-4"
    assert {"name": TASKS_VARIABLE, "value": "2-4"} in overrides["environment"]
    assert (
        Notice("[F/1/train] 3 nodes submitted to queue q as multi-node job job-1") in harness.events
    )


def test_nodes_aws_does_not_show_yet_wait_with_the_job(harness: Harness) -> None:
    handles = _submit(harness)
    ids = [*(h.id for h in handles), "job-1"]
    # AWS starts the child nodes once the main node runs: until then only the job shows.
    runnable = job_record("job-1", "RUNNABLE", statusReason="waiting for capacity")
    harness.describe(ids, [runnable])
    statuses = harness.backend.poll(handles)
    assert [s.state for s in statuses] == ["waiting"] * 3
    # The job ended before its nodes ever showed (stopped while queued): each node ends
    # with the job's reason.
    harness.describe(ids, [job_record("job-1", "FAILED", statusReason="stopped by the user")])
    ended = harness.backend.poll(handles)
    assert [s.state for s in ended] == ["failed"] * 3
    assert all("stopped by the user" in s.reason for s in ended)


def _node(index: int, status: str, **extra: Any) -> dict[str, Any]:
    return job_record(
        f"job-1#{index}",
        status,
        nodeDetails={"nodeIndex": index, "isMainNode": index == 0},
        **extra,
    )


def test_a_node_stopped_after_the_main_node_exited_counts_by_its_stored_work(
    harness: Harness,
) -> None:
    handles = _submit(harness)
    ids = [*(h.id for h in handles), "job-1"]
    # Node 1 stored its work and was then stopped when the main node exited; node 2 was
    # stopped before it stored anything of this try (the record there is of another try
    # of the same attempt, e.g. one whose capacity failed).
    assert harness.store is not None
    for handle, succeeded_in in ((handles[1], "0.0"), (handles[2], "0.1")):
        arguments = handle.task.arguments
        harness.store.write_metadata(
            RUN_ID,
            "train",
            arguments.task_id,
            0,
            {"status": "succeeded", "exit_code": 0, "parallel_try": succeeded_in},
        )
    stopped = {"statusReason": "Stopped: the main node exited", "container": {"exitCode": 137}}
    harness.describe(
        ids,
        [
            _node(0, "SUCCEEDED", container={"exitCode": 0}),
            _node(1, "FAILED", **stopped),
            _node(2, "FAILED", **stopped),
            job_record("job-1", "SUCCEEDED"),
        ],
    )
    first, second, third = harness.backend.poll(handles)
    assert first == TaskStatus.succeeded() and second == TaskStatus.succeeded()
    assert third.state == "failed" and third.reason.startswith("job job-1#2: ")


def test_stopping_the_nodes_stops_the_job_once(harness: Harness) -> None:
    handles = _submit(harness)
    harness.batch.add_response(
        "terminate_job",
        {},
        {"jobId": "job-1", "reason": "batchwright: the run was interrupted or timed out"},
    )
    harness.backend.terminate(handles)


def test_a_resume_follows_the_nodes_of_a_job_still_queued(harness: Harness) -> None:
    tasks = _gang()
    members = tuple(
        SubmittedTask("train", t.task_id, 0, (), t.arguments.split_index) for t in tasks
    )
    submission = Submission("F-train", "batch", QUEUE, members, 0.0, job_id="job-1", nodes=True)
    # AWS shows no node of a job still RUNNABLE: the job itself stands for them.
    harness.describe(["job-1#1"], [])
    harness.describe(["job-1"], [job_record("job-1", "RUNNABLE")])
    handle = harness.backend.reattach(tasks[1], submission, 1)
    assert handle is not None and handle.id == "job-1#1"
    # A job that failed is not followed: the step runs again.
    harness.describe(["job-1#2"], [])
    harness.describe(["job-1"], [job_record("job-1", "FAILED")])
    assert harness.backend.reattach(tasks[2], submission, 2) is None
