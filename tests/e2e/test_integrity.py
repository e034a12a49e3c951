"""Nothing a job runs can be swapped: a code package overwritten in S3 between the job's
submission and its start makes the job refuse it (exit code 4, no retry), the swapped
code never runs, the run says which object changed, and a resume uploads the package
again and finishes. Runs real containers on the local AWS."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import threading
import time
from typing import Any

import pytest
from tests.e2e.conftest import FLOWS, Deployed
from tests.e2e.test_real_aws import jobs_held

from batchwright import codepackage
from batchwright.entrypoint import EXIT_INTEGRITY

pytestmark = pytest.mark.localaws

MARKER_KEY = "swapped-code-ran"


def _swapped_package(bucket: str) -> bytes:
    """A package that would write a marker object to S3 the moment its code is imported."""
    code = (
        "import os, boto3\n"
        "endpoint = os.environ.get('AWS_ENDPOINT_URL_S3') or os.environ.get('AWS_ENDPOINT_URL')\n"
        "boto3.client('s3', endpoint_url=endpoint or None).put_object(\n"
        f"    Bucket={bucket!r}, Key={MARKER_KEY!r}, Body=b'the swapped code ran')\n"
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("batchwright/__init__.py", code), ("batchwright/task.py", "")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _marker(s3: Any, bucket: str) -> bool:
    return "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix=MARKER_KEY)


def _check_the_marker_works(deployed: Deployed, s3: Any, bucket: str, swapped: bytes) -> None:
    """The swapped package's code does write the marker when it runs (so its absence
    later means it did not run): import it here, against the same emulator."""
    folder = deployed.workdir / "swapped-check"
    folder.mkdir(exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(swapped)) as archive:
        archive.extractall(folder, filter="data")
    done = subprocess.run(
        [sys.executable, "-c", "import batchwright"],
        cwd=folder,
        env={**deployed.env, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert _marker(s3, bucket)
    s3.delete_object(Bucket=bucket, Key=MARKER_KEY)


def test_a_code_package_swapped_before_the_job_starts_never_runs(deployed: Deployed) -> None:
    root = deployed.descriptor().datastore_root
    bucket, _, prefix = root[len("s3://") :].partition("/")
    s3 = deployed.local.client("s3")
    package = codepackage.build(FLOWS)  # what the run uploads: the same bytes
    key = f"{prefix}/{package.key}" if prefix else package.key
    url = f"{root.rstrip('/')}/{package.key}"
    swapped = _swapped_package(bucket)
    _check_the_marker_works(deployed, s3, bucket, swapped)

    started = time.time()
    output: list[str] = []
    with jobs_held(deployed, 8):
        run = deployed.popen("sleepy_flow.py", "run", "--seconds", "1")
        assert run.stdout is not None
        reader = threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True)
        reader.start()
        # Wait for the job: submitted, and held in SUBMITTED/PENDING/RUNNABLE for a while.
        deadline = time.monotonic() + 120
        while not [
            j
            for j in deployed.local.job_records()
            if j["createdAt"] / 1000 >= started - 1 and "hang" in j["jobName"]
        ]:
            assert time.monotonic() < deadline, "".join(output)
            assert run.poll() is None, "".join(output)
            time.sleep(0.5)
        s3.put_object(Bucket=bucket, Key=key, Body=swapped)
        code = run.wait(timeout=300)
        reader.join(timeout=10)
    text = "".join(output)
    assert code == 1, text
    assert (
        f"the code package {url} no longer has the SHA-256 {package.sha256} it was uploaded with"
        in text
    ), text
    # The job's own output (followed from CloudWatch Logs) says what it refused.
    swapped_sha256 = hashlib.sha256(swapped).hexdigest()
    assert f"batchwright: code package {url} has SHA-256 {swapped_sha256}" in text, text
    assert "attempt 1" not in text  # not retried
    assert not _marker(s3, bucket), "the swapped code ran"
    (job,) = [
        j
        for j in deployed.local.job_records()
        if j["createdAt"] / 1000 >= started - 1 and "hang" in j["jobName"]
    ]
    assert job["status"] == "FAILED" and len(job["attempts"]) == 1
    # moto's DescribeJobs leaves the exit code out; its ListJobs summary has it.
    batch = deployed.local.client("batch")
    (summary,) = [
        s
        for s in batch.list_jobs(jobQueue=job["jobQueue"], jobStatus="FAILED")["jobSummaryList"]
        if s["jobId"] == job["jobId"]
    ]
    assert summary["container"]["exitCode"] == EXIT_INTEGRITY

    # A resume uploads the package again (the datastore no longer holds its bytes) and
    # finishes the run, reusing the finished start step.
    resumed = deployed.run("sleepy_flow.py", "resume", timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == package.sha256
    assert not _marker(s3, bucket)
