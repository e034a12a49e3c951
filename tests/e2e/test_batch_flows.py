"""@batch steps run in real containers on the local AWS, against the deployed sample
environment found through its outputs file (issue: @batch machinery)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from typing import Any

import pytest
from tests.e2e.conftest import FLOWS, Deployed

from batchwright.client import Flow
from batchwright.environment.descriptor import EnvironmentDescriptor

pytestmark = pytest.mark.localaws


def _descriptor(deployed: Deployed) -> EnvironmentDescriptor:
    return deployed.descriptor()


def _run_id(output: str) -> str:
    match = re.search(r"Run \w+/(\d+) started", output)
    assert match, output
    return match.group(1)


def _jobs_of(deployed: Deployed, run_id: str) -> list[dict[str, Any]]:
    batch = deployed.local.client("batch")
    jobs = [j for j in deployed.jobs()]
    found = []
    for start in range(0, len(jobs), 100):
        ids = [j["jobId"] for j in jobs[start : start + 100]]
        for job in batch.describe_jobs(jobs=ids)["jobs"]:
            if (job.get("tags") or {}).get("batchwright:run") == run_id:
                found.append(job)
    return found


def test_artifacts_cross_and_a_foreach_runs_as_an_array_job(
    deployed: Deployed, run_tag: str
) -> None:
    # Only --follow-logs running children of an array stream their logs (3 by default, so
    # that a poll costs the same for any width); following all 16 brings every output back.
    done = deployed.run(
        "exchange_flow.py", "run", "--label", run_tag, "--tag", run_tag, "--follow-logs", "16"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = _run_id(done.stdout)
    root = _descriptor(deployed).datastore_root
    run = Flow("ExchangeFlow", datastore_root=root)[run_id]
    assert run.successful and run_tag in run.user_tags
    assert run["join"].task.data.results == [n * n for n in range(16)]
    assert run["end"].task.data.checked is True
    # Each foreach member ran in its own container: one array job, 16 children.
    job_ids = run["join"].task.data.job_ids
    parents = {j.rsplit(":", 1)[0] for j in job_ids}
    assert len(job_ids) == 16 and len(parents) == 1
    assert sorted(int(j.rsplit(":", 1)[1]) for j in job_ids) == list(range(16))
    # Their output came back from CloudWatch Logs to the console.
    for n in range(16):
        assert f"square of {n} is {n * n} in job" in done.stdout, n
    assert "total 1240" in done.stdout
    # The jobs carry the run's tags and went to an on-demand CPU queue of the sample.
    jobs = _jobs_of(deployed, run_id)
    assert {j["tags"]["batchwright:step"] for j in jobs} == {"square", "summarize"}
    queues = {j["jobQueue"].rsplit("/", 1)[-1] for j in jobs}
    env = _descriptor(deployed)
    on_demand = {q.name for q in env.queues if q.platform == "EC2" and q.accelerator == "none"}
    assert queues <= on_demand, queues


def test_a_wide_foreach_is_one_array_job_and_failed_children_retry_alone(
    deployed: Deployed,
) -> None:
    # --max-workers bounds local tasks only: the 300 children go to Batch at once.
    done = deployed.run("wide_flow.py", "run", "--max-workers", "4", timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    run_id = _run_id(done.stdout)
    run = Flow("WideFlow", datastore_root=_descriptor(deployed).datastore_root)[run_id]
    join = run["join"].task.data
    assert join.values == list(range(300))  # every input, in foreach order
    # Every attempt has its timing: the children nobody described one by one got their
    # start and stop from what each task recorded; the two failures are records too.
    work = [t for t in run.timeline() if t.step == "work"]
    assert len(work) == 302
    assert sum(t.state == "failed" for t in work) == 2
    assert all(t.started_at is not None and t.running_seconds > 0 for t in work)
    # One array job ran every first attempt; the two failures were retried by
    # themselves (one job each, or together as a small array), never the whole array.
    [parent] = join.first_tries
    assert sorted(join.retried) == [7, 150]
    retry_jobs = {job.rsplit(":", 1)[0] for job in join.retried.values()}
    assert parent not in retry_jobs
    submitted = _jobs_of(deployed, run_id)  # parents and single jobs, not children
    assert {j["jobId"] for j in submitted} == {parent, *retry_jobs}
    sizes = {j["jobId"]: (j.get("arrayProperties") or {}).get("size") or 1 for j in submitted}
    assert sizes[parent] == 300
    assert sum(sizes[job] for job in retry_jobs) == 2
    # The console summarized the step instead of printing a line per task state...
    summaries = re.findall(r"\[WideFlow/\d+/work\] 300 tasks: (\d+) done", output)
    assert summaries[-1] == "300" and len(summaries) < 30, output
    assert not re.search(r"/work/\d+\] (started|finished|waiting to start|RUNNING)", output)
    # ...but showed each failure.
    failures = re.findall(r"work/(\d+)\] attempt 0 failed", output)
    assert len(failures) == 2, output
    # Every child's logs stay retrievable from the datastore.
    [seven] = [t for t in run["work"] if t.index == 7]
    logs = subprocess.run(
        [sys.executable, str(FLOWS / "wide_flow.py"), "logs", f"{run_id}/work/{seven.id}"],
        cwd=deployed.workdir,
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert logs.returncode == 0, logs.stderr
    assert "child 7 attempt 1" in logs.stdout


def test_a_failing_step_fails_the_run_with_exit_code_and_traceback(deployed: Deployed) -> None:
    done = deployed.run("failing_flow.py", "run")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "ValueError: the batch step exploded on purpose" in output
    assert "Traceback" in output
    assert re.search(r"explode/\d+.*exit code 1", output), output


def test_retry_recovers_with_a_new_job_on_a_spot_queue(deployed: Deployed) -> None:
    done = deployed.run("retry_flow.py", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = _run_id(done.stdout)
    task = Flow("RetryFlow", datastore_root=_descriptor(deployed).datastore_root)[run_id][
        "flaky"
    ].task
    assert task.data.attempt == 1
    jobs = _jobs_of(deployed, run_id)
    assert sorted(j["tags"]["batchwright:attempt"] for j in jobs) == ["0", "1"]
    assert {j["status"] for j in jobs} == {"FAILED", "SUCCEEDED"}
    spot = {q.name for q in _descriptor(deployed).queues if q.is_spot and not q.is_fargate}
    assert {j["jobQueue"].rsplit("/", 1)[-1] for j in jobs} <= spot


def test_timeout_stops_a_hung_container(deployed: Deployed) -> None:
    started = time.monotonic()
    done = deployed.run("sleepy_flow.py", "run", timeout=240)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # The task stopped the step itself, with the traceback, before Batch's backstop.
    assert "step 'hang' exceeded its @timeout of 60 seconds" in output, output
    assert re.search(r"hang/\d+.*failed.*exit code 1", output), output
    assert elapsed < 200, f"the hung step was not stopped in time ({elapsed:.0f} s)"


def test_interrupt_terminates_every_submitted_job(deployed: Deployed) -> None:
    process = deployed.popen("sleepy_flow.py", "run")
    lines: list[str] = []
    run_id = None
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if run_id is None and (m := re.search(r"Run \w+/(\d+) started", line)):
            run_id = m.group(1)
        if "RUNNING" in line:
            break
    assert run_id is not None and "RUNNING" in lines[-1], "".join(lines)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines) + rest
    # Nothing of this run is left waiting or running in the emulator.
    deadline = time.monotonic() + 30
    while True:
        jobs = _jobs_of(deployed, run_id)
        active = [
            j
            for j in jobs
            if j["status"] in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        ]
        if not active or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert jobs, "the run submitted no job"
    assert not active, active


def test_jobs_list_and_kill_find_a_run_by_its_tags(deployed: Deployed) -> None:
    process = deployed.popen("sleepy_flow.py", "run")
    assert process.stdout is not None
    run_id = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if run_id is None and (m := re.search(r"Run \w+/(\d+) started", line)):
            run_id = m.group(1)
        if "RUNNING" in line:
            break
    assert run_id is not None
    command = [sys.executable, "-m", "batchwright", "jobs"]
    listed = subprocess.run(
        [*command, "list", "--run", run_id], env=deployed.env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert f"SleepyFlow/{run_id}/hang/" in listed.stdout and "RUNNING" in listed.stdout
    killed = subprocess.run(
        [*command, "kill", "--run", run_id], env=deployed.env, capture_output=True, text=True
    )
    assert killed.returncode == 0, killed.stderr
    assert "1 job(s) terminated" in killed.stdout
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 1, rest
    again = subprocess.run(
        [*command, "list", "--run", run_id], env=deployed.env, capture_output=True, text=True
    )
    assert "no active batchwright jobs" in again.stdout


def test_a_failed_run_resumes_on_batch_reusing_finished_steps(deployed: Deployed) -> None:
    failed = deployed.run("fixable_flow.py", "run")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    origin = _run_id(failed.stdout)
    resumed = deployed.run(
        "fixable_flow.py", "resume", origin, "--with", 'environment:vars={"FRAGILE_FIXED": "1"}'
    )
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    run_id = _run_id(resumed.stdout)
    root = deployed.descriptor().datastore_root
    before = Flow("FixableFlow", datastore_root=root)[origin]
    after = Flow("FixableFlow", datastore_root=root)[run_id]
    assert after.successful
    # The Batch step that finished was reused, not run again: same job, no new job.
    assert after["prepare"].task.data.prepared_job == before["prepare"].task.data.prepared_job
    assert re.search(r"prepare/\d+\] reused from", output), output
    steps = sorted(j["tags"]["batchwright:step"] for j in _jobs_of(deployed, run_id))
    assert steps == ["fragile"]


def test_step_code_calling_boto3_plainly_reaches_the_local_aws(
    deployed: Deployed, run_tag: str
) -> None:
    # The job image's boto3 honours AWS_ENDPOINT_URL, as a current boto3 on AWS would
    # honour its own configuration: the step needs no endpoint argument.
    bucket = deployed.descriptor().datastore_root[len("s3://") :].split("/")[0]
    key = f"plain-boto3/{run_tag}"
    done = deployed.run("plain_boto3_flow.py", "run", "--bucket", bucket, "--key", key)
    assert done.returncode == 0, done.stdout + done.stderr
    body = deployed.local.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body.decode() == f"boto3 {version('boto3')}"  # the image's, not Debian's 1.26
