"""The pure parts of surviving real AWS: patience through throttling and outages, the
adaptive SubmitJob rate, the run lease, the submission journal, and the scheduler's
handling of waits, running-time timeouts and lost capacity (with a fake backend)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from batchwright import FlowSpec, retry, step, timeout
from batchwright import scheduler as scheduler_module
from batchwright.aws import AwsUnreachable, Patience, is_throttling, is_transient
from batchwright.backends import Backend, TaskHandle, TaskSpec, TaskStatus, register_backend
from batchwright.backends.aws_batch import MIN_RATE, RateLimiter
from batchwright.backends.local import LocalBackend
from batchwright.datastore import FlowDatastore, LocalStorage, open_datastore
from batchwright.datastore.journal import Journal, Submission, SubmittedTask, latest_by_task
from batchwright.datastore.s3 import S3Storage
from batchwright.definition import load_definition
from batchwright.events import AttemptFailed, Event
from batchwright.lease import LEASE_SECONDS, LeaseLost, RunInUse, RunLease
from batchwright.plan import make_plan
from batchwright.scheduler import RunOptions, RunResult, Scheduler


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


# --- patience ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("ThrottlingException", 400), True),
        (client_error("TooManyRequestsException", 429), True),
        (client_error("SlowDown", 503), True),
        (client_error("ServerException", 500), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (client_error("AccessDeniedException", 403), False),
        (client_error("ClientException", 400), False),
        (ValueError("a bug"), False),
    ],
)
def test_transient_errors_are_told_apart(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_throttling_is_recognised_by_code_and_status() -> None:
    assert is_throttling(client_error("Throttling", 400))
    assert is_throttling(client_error("Anything", 429))
    assert not is_throttling(client_error("ServerException", 500))


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception) -> Callable[[], str]:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return "answer"

    return call


def test_patience_waits_out_an_outage_with_full_jitter_and_says_so() -> None:
    clock = FakeTime()
    waits: list[tuple[str, float]] = []
    recovered: list[float] = []
    patience = Patience(
        limit_seconds=600,
        on_wait=lambda problem, seconds: waits.append((problem, seconds)),
        on_recovered=recovered.append,
        sleep=clock.sleep,
        clock=lambda: clock.now,
        random=lambda: 0.5,
    )
    outage = EndpointConnectionError(endpoint_url="http://batch")
    assert patience.call(failing(6, outage)) == "answer"
    # Full jitter: random() x min(30, 2**n); here random() = 0.5.
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0]
    assert len(waits) == 6 and "EndpointConnectionError" in waits[0][0]
    assert [seconds for _, seconds in waits] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5]
    assert recovered == [sum(clock.slept)]
    # The next outage is measured from its own start.
    assert patience.call(failing(1, outage)) == "answer"
    assert waits[-1][1] == 0.0


def test_patience_gives_up_after_the_limit_and_lets_other_errors_through() -> None:
    clock = FakeTime()
    patience = Patience(
        limit_seconds=60, sleep=clock.sleep, clock=lambda: clock.now, random=lambda: 1.0
    )
    with pytest.raises(AwsUnreachable, match="longer than the outage limit of 60 s") as caught:
        patience.call(failing(1000, client_error("ServiceUnavailableException", 503)))
    assert isinstance(caught.value.__cause__, ClientError)
    assert sum(clock.slept) == pytest.approx(60)
    denied = client_error("AccessDeniedException", 403)
    with pytest.raises(ClientError):
        Patience(sleep=clock.sleep, clock=lambda: clock.now).call(failing(1, denied))


def test_the_submit_rate_halves_on_throttling_and_creeps_back() -> None:
    limiter = RateLimiter(40.0)
    for _ in range(3):
        limiter.throttled()
    assert limiter.rate == 5.0
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == MIN_RATE
    for _ in range(100):
        limiter.recovered()
    assert limiter.rate == 40.0


# --- storage compare-and-swap, lease and journal ----------------------------------------


def test_local_storage_compare_and_swap(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first = storage.write_versioned("k", b"one", None)
    assert first is not None
    assert storage.write_versioned("k", b"two", None) is None  # it exists now
    second = storage.write_versioned("k", b"two", first)
    assert second is not None and second != first
    assert storage.write_versioned("k", b"three", first) is None  # stale version
    assert storage.read_versioned("k") == (b"two", second)
    assert storage.list_children("") == ["k"]  # the lock file is not an entry


def test_s3_storage_compare_and_swap_uses_conditional_writes() -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bucket")
        storage = S3Storage(
            "s3://bucket/prefix", client=boto3.client("s3", region_name="us-east-1")
        )
        first = storage.write_versioned("k", b"one", None)
        assert first is not None
        assert storage.write_versioned("k", b"x", None) is None  # If-None-Match: *
        second = storage.write_versioned("k", b"two", first)
        assert second is not None
        assert storage.write_versioned("k", b"y", first) is None  # If-Match a stale ETag
        assert storage.read_versioned("k") == (b"two", second)


def test_a_conditional_write_cut_off_by_the_network_raises_the_connection_error() -> None:
    """A dropped connection (botocore's error carries response=None) reaches the
    orchestrator's patience as that error, which it waits out, not as a crash."""
    from botocore.exceptions import ConnectionClosedError

    class Dropping:
        def put_object(self, **_: Any) -> None:
            raise ConnectionClosedError(endpoint_url="http://s3")

    storage = S3Storage("s3://bucket/prefix", client=Dropping())
    with pytest.raises(ConnectionClosedError):
        storage.write_versioned("k", b"one", None)


def _lease_record(store: FlowDatastore, run_id: str) -> dict[str, Any]:
    data = store.storage.read_bytes(f"{store.run_prefix(run_id)}/lease.json")
    assert data is not None
    record: dict[str, Any] = json.loads(data)
    return record


def test_a_live_orchestrator_keeps_its_runs(tmp_path: Path) -> None:
    store = open_datastore("F", str(tmp_path))
    first = RunLease(store, ["2", "1"])
    first.acquire()
    assert _lease_record(store, "1")["owner"] == first.owner
    second = RunLease(store, ["3", "1"])
    with pytest.raises(RunInUse, match=r"run F/1 is being driven by another orchestrator"):
        second.acquire()
    # All or nothing: the second one holds no lease on its own run either.
    assert _lease_record(store, "3")["released"] is True
    first.release()
    second.acquire()  # released: anyone may take it at once
    assert _lease_record(store, "1")["owner"] == second.owner


def test_a_dead_orchestrators_lease_is_taken_over(tmp_path: Path) -> None:
    store = open_datastore("F", str(tmp_path))
    dead = RunLease(store, ["1"], pid=2**22 + 12345)  # no such process on this machine
    dead.acquire()
    RunLease(store, ["1"]).acquire()  # same host, process gone: at once

    clock = {"now": time.time()}
    elsewhere = RunLease(store, ["2"], host="another-host", clock=lambda: clock["now"])
    elsewhere.acquire()
    newcomer = RunLease(store, ["2"], clock=lambda: clock["now"])
    with pytest.raises(RunInUse):
        newcomer.acquire()  # another machine, renewed just now
    clock["now"] += LEASE_SECONDS
    newcomer.acquire()  # not renewed for LEASE_SECONDS: dead
    clock["now"] += LEASE_SECONDS
    with pytest.raises(LeaseLost, match="taken over by another orchestrator"):
        elsewhere.renew()


def test_the_journal_records_intent_then_the_job_id(tmp_path: Path) -> None:
    store = open_datastore("F", str(tmp_path))
    journal = Journal(store, "7")
    members = tuple(SubmittedTask("work", str(10 + i), 0, ("7/start/1",), i) for i in range(3))
    intent = Submission("F-work-10-x3-7-a0", "batch", "q", members, recorded_at=1.0)
    journal.intend(intent)
    assert journal.entries() == [intent]
    done = journal.submitted(intent, "abc")
    assert Journal(store, "8").entries("7") == [done]
    assert done.job_id_of(2) == "abc:2" and intent.job_id_of(0) is None
    # The nodes of a multi-node job (a parallel step) are followed as <id>#<node>, also
    # when read back from the journal.
    nodes = journal.submitted(dataclasses.replace(intent, job_name="n", nodes=True), "mnp")
    assert nodes.job_id_of(1) == "mnp#1"
    assert [e.job_id_of(1) for e in Journal(store, "8").entries("7") if e.nodes] == ["mnp#1"]
    # A record a later version wrote, with a field this one does not know, still reads.
    later_record = json.loads(nodes.to_json()) | {"added_later": 1}
    assert Submission.from_json(json.dumps(later_record)) == nodes
    # The datastore's steps are unchanged: the journal is not a step.
    assert store.list_steps("7") == []
    later = dataclasses.replace(done, job_name="again", recorded_at=2.0, resubmission=1)
    latest = latest_by_task([done, later])
    assert latest[("work", ("start/1",), 1)] == (later, 1)


# --- the scheduler with a fake backend ----------------------------------------------------


class TimedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=1)
    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class ScriptedBackend(Backend):
    """Plays a script per attempt of ``work``: each entry is a status and how long (s) it
    lasts from the attempt's submission; other steps succeed at once."""

    name = "local"
    poll_interval = 0.02

    def __init__(self, scripts: Sequence[Sequence[tuple[float, TaskStatus]]]) -> None:
        self.scripts = list(scripts)
        self.submitted: list[TaskSpec] = []
        self.terminated: list[str] = []
        self._started: dict[str, tuple[float, Sequence[tuple[float, TaskStatus]]]] = {}

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        handles = []
        for task in tasks:
            self.submitted.append(task)
            script = self.scripts.pop(0) if task.step == "work" else [(0, TaskStatus.succeeded())]
            key = f"{task.task_id}.{len(self.submitted)}"
            self._started[key] = (time.time(), script)
            handles.append(TaskHandle(self.name, key, task))
        return handles

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        statuses = []
        for handle in handles:
            began, script = self._started[handle.id]
            elapsed = time.time() - began
            status = script[-1][1]
            for until, scripted in script:
                if elapsed < until:
                    status = scripted
                    break
            if status.state == "running" and status.started_at == -1:
                status = TaskStatus.running(began + script[0][0])
            if handle.id in self.terminated:
                status = TaskStatus.failed("terminated", 143)
            statuses.append(status)
        return statuses

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        self.terminated.extend(h.id for h in handles)


def _run(
    backend: ScriptedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunResult, list[Event]]:
    monkeypatch.setattr(scheduler_module, "SCHEDULER_TIMEOUT_GRACE_SECONDS", 0.3)
    definition = load_definition(TimedFlow)
    plan = make_plan("TimedFlow", definition.decorators, None)
    events: list[Event] = []
    register_backend("local", lambda options: backend)
    try:
        scheduler = Scheduler(
            definition,
            plan.policies,
            open_datastore("TimedFlow", str(tmp_path)),
            RunOptions(flow_file=__file__, datastore_root=str(tmp_path)),
            events.append,
        )
        return scheduler.run({}), events
    finally:
        register_backend("local", LocalBackend)


RUNNING_SINCE_THE_WAIT_ENDED = TaskStatus.running(started_at=-1)


def test_the_timeout_backstop_counts_from_the_start_not_the_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waits 2 s (longer than the 1-s timeout and its 0.3-s grace), then runs 0.5 s.
    script = [
        (2.0, TaskStatus.waiting("RUNNABLE")),
        (2.5, RUNNING_SINCE_THE_WAIT_ENDED),
        (9.9, TaskStatus.succeeded()),
    ]
    backend = ScriptedBackend([script])
    result, _ = _run(backend, tmp_path, monkeypatch)
    assert result.successful and backend.terminated == []


def test_an_attempt_running_past_its_timeout_is_killed_with_how_long_it_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = [(1.0, TaskStatus.waiting("RUNNABLE")), (99.0, RUNNING_SINCE_THE_WAIT_ENDED)]
    backend = ScriptedBackend([hang, hang])
    result, events = _run(backend, tmp_path, monkeypatch)
    assert not result.successful and len(backend.terminated) == 2
    failures = [e for e in events if isinstance(e, AttemptFailed)]
    assert re.search(
        r"it ran 1 s, past its @timeout of 1 s .* after waiting 1 s", failures[0].reason
    )


def test_lost_capacity_is_submitted_again_without_using_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reclaimed = [(9.9, TaskStatus.failed("spot-reclaimed", infrastructure=True, reclaims=1))]
    fine = [(0.0, TaskStatus.succeeded())]
    backend = ScriptedBackend([reclaimed, reclaimed, fine])
    result, events = _run(backend, tmp_path, monkeypatch)
    assert result.successful
    work = [t for t in backend.submitted if t.step == "work"]
    assert [(t.attempt, t.resubmission, t.reclaims) for t in work] == [
        (0, 0, 0),
        (0, 1, 1),
        (0, 2, 2),
    ]
    failures = [e for e in events if isinstance(e, AttemptFailed)]
    assert [f.infrastructure for f in failures] == [True, True]


def test_lost_capacity_past_the_limit_counts_as_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reclaimed = [(9.9, TaskStatus.failed("spot-reclaimed", infrastructure=True, reclaims=1))]
    count = scheduler_module.MAX_RESUBMISSIONS + 1
    backend = ScriptedBackend([reclaimed] * count + [[(0.0, TaskStatus.succeeded())]])
    result, _ = _run(backend, tmp_path, monkeypatch)
    assert result.successful  # the @retry took over once the resubmissions ran out
    work = [t for t in backend.submitted if t.step == "work"]
    assert [t.attempt for t in work] == [0] * count + [1]
