"""Runs that survive what real AWS does and an instant emulator does not (issue: queue
waits, capacity shortages, Spot reclaims, throttling, an orchestrator that dies).

Every test runs a flow whose ``@batch`` steps execute in real containers on the local AWS.
The orchestrator talks to the emulator through a fault-injecting proxy
(:class:`batchwright_localaws.faults.FaultProxy`); the job containers talk to the emulator
directly, as jobs on AWS keep their network when a laptop loses its own. Queue waits come
from moto's own state manager. Each test checks the run's artifacts and the emulator's
job records, not only the exit code.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from tests.e2e.conftest import FLOWS, Deployed

from batchwright.batch.jobenv import JOB_ENDPOINT_VARIABLE
from batchwright.batch.options import BatchOptions
from batchwright.client import Flow
from batchwright.environment.routing import on_demand_counterpart, route
from batchwright_localaws.faults import FaultProxy
from batchwright_localaws.services import moto_api

pytestmark = pytest.mark.localaws

CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [c5.xlarge]"
)
MISCONFIGURED = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/"
    "GPU) is higher than that can be met by the CE(s) attached to the job queue."
)


@pytest.fixture
def proxy(deployed: Deployed) -> Iterator[FaultProxy]:
    """A fault proxy in front of the emulator, cleared after the test."""
    with FaultProxy(deployed.local.endpoint, seed=7) as running:
        yield running


def _env(deployed: Deployed, proxy: FaultProxy) -> dict[str, str]:
    """The orchestrator reaches AWS through the proxy; its jobs reach it directly."""
    return {
        **deployed.env,
        "AWS_ENDPOINT_URL": proxy.endpoint,
        JOB_ENDPOINT_VARIABLE: deployed.local.endpoint,
    }


def _flow(
    deployed: Deployed, proxy: FaultProxy, flow: str, *args: str, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FLOWS / flow), *args],
        cwd=deployed.workdir,
        env=_env(deployed, proxy),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _popen(deployed: Deployed, proxy: FaultProxy, flow: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FLOWS / flow), *args],
        cwd=deployed.workdir,
        env=_env(deployed, proxy),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextmanager
def jobs_held(deployed: Deployed, seconds: float) -> Iterator[None]:
    """Every job waits ``seconds`` in each state before RUNNING (a queue wait, a scale-up
    from zero), through moto's state manager."""
    moto_api(
        deployed.local,
        "state-manager/set-transition",
        {"model_name": "batch::job", "transition": {"progression": "time", "seconds": seconds}},
    )
    try:
        yield
    finally:
        moto_api(deployed.local, "state-manager/unset-transition", {"model_name": "batch::job"})


def _run_id(output: str) -> str:
    match = re.search(r"Run \w+/(\d+) started", output)
    assert match, output
    return match.group(1)


def _records(deployed: Deployed, run_ids: set[str]) -> list[dict[str, Any]]:
    """The emulator's own job records (not the proxy's view) of these runs, array children
    included (they take their parent's run), oldest first."""
    jobs = deployed.local.job_records(
        keep=lambda job: (job.get("tags") or {}).get("batchwright:run") in run_ids
    )
    return sorted(jobs, key=lambda j: (j["createdAt"], j["jobId"]))


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _datastore_root(deployed: Deployed) -> str:
    return deployed.descriptor().datastore_root


class Gate:
    """An S3 object that ``fanout_flow.py --gate`` jobs wait for before they finish, so a
    test, not the machine's load, decides when they do."""

    def __init__(self, deployed: Deployed, name: str) -> None:
        self._s3 = deployed.local.client("s3")
        self.url = f"{_datastore_root(deployed)}/_test_gates/{name}-{time.time_ns()}"
        self._bucket, _, self._key = self.url.removeprefix("s3://").partition("/")

    def open(self) -> None:
        """Lets the waiting jobs finish."""
        self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=b"open")


@pytest.fixture
def gate(deployed: Deployed, request: pytest.FixtureRequest) -> Iterator[Gate]:
    """A gate, opened at the end of the test so no job is left waiting on it."""
    made = Gate(deployed, request.node.name)
    try:
        yield made
    finally:
        made.open()


# --- timeouts count running time ---------------------------------------------------------


def test_a_timeout_counts_running_time_not_the_wait_before_it(
    deployed: Deployed, proxy: FaultProxy
) -> None:
    # 4 states x 23 s: the job starts about 90 s after its submission, later than its
    # @timeout(seconds=60) plus every grace a count from the submission would allow.
    with jobs_held(deployed, 23):
        done = _flow(deployed, proxy, "patient_flow.py", "run", "--seconds", "5")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    run_id = _run_id(done.stdout)
    run = Flow("PatientFlow", datastore_root=_datastore_root(deployed))[run_id]
    assert run.successful and run["work"].task.data.worked == 5
    [job] = _records(deployed, {run_id})
    assert job["status"] == "SUCCEEDED"
    waited = (job["attempts"][-1]["startedAt"] - job["createdAt"]) / 1000
    assert waited >= 45, job  # the emulator's startedAt is set halfway through the wait
    assert job["stoppedAt"] - job["createdAt"] > 90_000  # the run outlasted the timeout


# --- waiting is shown, not punished -------------------------------------------------------


def test_a_capacity_shortage_is_shown_and_the_job_still_runs(
    deployed: Deployed, proxy: FaultProxy
) -> None:
    proxy.waiting_reason(CAPACITY)
    with jobs_held(deployed, 10):
        done = _flow(deployed, proxy, "patient_flow.py", "run", "--seconds", "1")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"waiting for capacity on queue \S+: CAPACITY:INSUFFICIENT", output), output
    run_id = _run_id(done.stdout)
    run = Flow("PatientFlow", datastore_root=_datastore_root(deployed))[run_id]
    assert run.successful
    [job] = _records(deployed, {run_id})
    assert job["status"] == "SUCCEEDED" and "terminate" not in job.get("statusReason", "")


def test_a_misconfiguration_that_lasts_past_the_grace_ends_the_task(
    deployed: Deployed, proxy: FaultProxy
) -> None:
    proxy.waiting_reason(MISCONFIGURED)
    with jobs_held(deployed, 30):
        done = _flow(
            deployed,
            proxy,
            "patient_flow.py",
            "run",
            "--seconds",
            "1",
            "--misconfiguration-grace",
            "8",
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # Shown at once, with the fix, then the task ends once the grace is over.
    assert "no compute environment of the queue has instances large enough" in output
    assert "Lower cpu/memory/gpu" in output
    assert re.search(r"could not start for \d+ s \(grace 8 s\)", output), output
    run_id = _run_id(done.stdout)
    [job] = _records(deployed, {run_id})
    assert job["statusReason"] == "batchwright: the queue cannot run this job"
    run = Flow("PatientFlow", datastore_root=_datastore_root(deployed))[run_id]
    assert not run.successful  # and the step never ran: no record of it in the datastore
    assert "work" not in [s.id for s in run]


# --- Spot escalation --------------------------------------------------------------------


def test_two_spot_reclaims_move_the_third_attempt_to_on_demand(
    deployed: Deployed, proxy: FaultProxy
) -> None:
    env = deployed.descriptor()
    # The queue the plan sends the step to (@retry prefers Spot), and where it escalates.
    options = BatchOptions.from_attributes("train", {"cpu": 1, "memory": 1024})
    routed = route(options, env, has_retry=True)
    assert routed.queue is not None and routed.queue.platform == "SPOT"
    counterpart = on_demand_counterpart(options, routed.queue, env)
    assert counterpart is not None and counterpart.queue.platform == "EC2"
    proxy.reclaim(routed.queue.name, count=2)
    done = _flow(deployed, proxy, "reclaimed_flow.py", "run", "--seconds", "15")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("lost its capacity") == 2, output
    assert "moves to the on-demand queue" in output
    run_id = _run_id(done.stdout)
    run = Flow("ReclaimedFlow", datastore_root=_datastore_root(deployed))[run_id]
    assert run.successful
    assert run["train"].task.data.retry_count == 0  # the user's @retry was not used
    jobs = _records(deployed, {run_id})
    assert len(jobs) == 3, jobs
    queues = [j["jobQueue"] for j in jobs]
    assert queues == [routed.queue.arn, routed.queue.arn, counterpart.queue.arn], queues
    assert set(proxy.stats.reclaimed) == {j["jobId"] for j in jobs[:2]}
    assert jobs[2]["status"] == "SUCCEEDED"
    assert run["train"].task.data.job_id == jobs[2]["jobId"]


# --- throttling and outages -------------------------------------------------------------


def test_throttling_and_an_outage_still_give_a_complete_run(
    deployed: Deployed, proxy: FaultProxy
) -> None:
    proxy.set_error_rate(0.2)
    run = _popen(deployed, proxy, "fanout_flow.py", "run", "--seconds", "40", "--width", "3")
    try:
        _wait_for(lambda: proxy.stats.requests_to("batch", "SubmitJob") >= 1, 120, "the submission")
        proxy.outage(60)
        output, _ = run.communicate(timeout=420)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    assert "reconnecting" in output and "AWS answers again" in output
    assert proxy.stats.injected.get("outage", 0) > 0 and proxy.stats.faults > 5
    run_id = _run_id(output)
    result = Flow("FanoutFlow", datastore_root=_datastore_root(deployed))[run_id]
    assert result.successful and result["join"].task.data.squares == [0, 1, 4]
    # Nothing was submitted twice: one array job for the fan-out, its three children.
    jobs = _records(deployed, {run_id})
    parents = [j for j in jobs if ":" not in j["jobId"]]
    assert len(parents) == 1 and parents[0]["arrayProperties"]["size"] == 3
    assert sorted(j["jobId"] for j in jobs if ":" in j["jobId"]) == [
        f"{parents[0]['jobId']}:{i}" for i in range(3)
    ]


# --- the orchestrator dies ----------------------------------------------------------------


class Printed:
    """What a background process prints, collected by a thread as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    @property
    def text(self) -> str:
        """Everything printed so far."""
        return "".join(self.lines)

    def finish(self) -> str:
        """Everything printed, once the process has closed its output."""
        self._thread.join(timeout=60)
        return self.text


def _kill_when_running(
    deployed: Deployed, run: subprocess.Popen[str], children: int
) -> tuple[str, str]:
    """SIGKILLs the orchestrator once ``children`` jobs of its run are RUNNING; returns
    the run id and what it printed."""
    printed = Printed(run)

    def running() -> bool:
        match = re.search(r"Run \w+/(\d+) started", printed.text)
        if not match:
            return False
        jobs = _records(deployed, {match.group(1)})
        return sum(1 for j in jobs if j["status"] == "RUNNING") >= children

    _wait_for(running, 240, f"{children} running jobs")
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    text = printed.finish()
    return _run_id(text), text


def _resume_past_the_gate(
    deployed: Deployed, proxy: FaultProxy, gate: Gate, flow: str, run_id: str, jobs: int
) -> tuple[subprocess.Popen[str], str]:
    """Resumes ``run_id``, opens the gate once the resume has reattached to ``jobs`` jobs
    (so they finish only then), and returns the finished resume and what it printed."""
    resume = _popen(deployed, proxy, flow, "resume", run_id)
    printed = Printed(resume)
    try:
        _wait_for(
            lambda: printed.text.count("reattached to job") >= jobs or resume.poll() is not None,
            240,
            f"the resume to reattach to {jobs} jobs",
        )
        gate.open()
        resume.wait(timeout=420)
    finally:
        if resume.poll() is None:
            resume.kill()
    return resume, printed.finish()


def test_resume_after_the_orchestrator_is_killed_reattaches_to_its_jobs(
    deployed: Deployed, proxy: FaultProxy, gate: Gate
) -> None:
    # The jobs finish only once the resume has reattached to them (the gate): on a loaded
    # machine, a fixed sleep once ran out first and the resume reused their results.
    run = _popen(
        deployed, proxy, "fanout_flow.py", "run", "--seconds", "1", "--width", "4",
        "--gate", gate.url,
    )  # fmt: skip
    run_id, _ = _kill_when_running(deployed, run, children=4)
    before = _records(deployed, {run_id})
    submitted_before = proxy.stats.requests_to("batch", "SubmitJob")

    resume, output = _resume_past_the_gate(deployed, proxy, gate, "fanout_flow.py", run_id, 4)
    assert resume.returncode == 0, output
    assert output.count("reattached to job") == 4, output
    resumed_id = _run_id(output)
    result = Flow("FanoutFlow", datastore_root=_datastore_root(deployed))[resumed_id]
    assert result.successful and result["join"].task.data.squares == [0, 1, 4, 9]
    # No new job for the four that were running: the resumed run submitted only the
    # steps after them (join and end run locally, so nothing at all).
    assert proxy.stats.requests_to("batch", "SubmitJob") == submitted_before
    after = _records(deployed, {run_id, resumed_id})
    assert [j["jobId"] for j in after] == [j["jobId"] for j in before]
    children = [j for j in after if ":" in j["jobId"]]
    assert len(children) == 4 and {j["status"] for j in children} == {"SUCCEEDED"}


def test_resume_follows_a_multi_node_job_whose_orchestrator_was_killed(
    deployed: Deployed, proxy: FaultProxy, gate: Gate
) -> None:
    # A parallel step's nodes are followed again as one: the resumed run submits nothing
    # for them, and takes over their records once the job ends.
    run = _popen(deployed, proxy, "gated_parallel_flow.py", "run", "--gate", gate.url)
    run_id, _ = _kill_when_running(deployed, run, children=1)
    submitted_before = proxy.stats.requests_to("batch", "SubmitJob")
    resume, output = _resume_past_the_gate(
        deployed, proxy, gate, "gated_parallel_flow.py", run_id, 2
    )
    assert resume.returncode == 0, output
    parent = _records(deployed, {run_id})[0]["jobId"]
    assert f"reattached to job {parent}#0" in output and f"reattached to job {parent}#1" in output
    assert proxy.stats.requests_to("batch", "SubmitJob") == submitted_before
    result = Flow("GatedParallelFlow", datastore_root=_datastore_root(deployed))[_run_id(output)]
    join = result["join"].task.data
    assert join.ranks == [0, 1] and join.job_ids == [f"{parent}#0", f"{parent}#1"]


def test_a_second_resume_while_the_first_is_live_is_refused(
    deployed: Deployed, proxy: FaultProxy, gate: Gate
) -> None:
    run = _popen(
        deployed, proxy, "fanout_flow.py", "run", "--seconds", "1", "--width", "2",
        "--gate", gate.url,
    )  # fmt: skip
    run_id, _ = _kill_when_running(deployed, run, children=2)
    first = _popen(deployed, proxy, "fanout_flow.py", "resume", run_id)
    printed = Printed(first)
    try:
        _wait_for(lambda: "reattached to job" in printed.text, 120, "the first resume")
        second = _flow(deployed, proxy, "fanout_flow.py", "resume", run_id, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is being driven by another orchestrator" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)  # the first resume terminates its jobs and stops
        first.wait(timeout=120)
    output = printed.finish()
    assert first.returncode == 130, output

    # The interrupt terminated the jobs it had reattached to (the array's children; the
    # emulator updates an array parent's own status only lazily).
    def terminated() -> bool:
        children = [j for j in _records(deployed, {run_id}) if ":" in j["jobId"]]
        return len(children) == 2 and all(j["status"] == "FAILED" for j in children)

    _wait_for(terminated, 60, "the reattached jobs to be terminated")
