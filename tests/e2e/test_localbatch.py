"""The same @batch flows on a second, independent Batch emulator: localbatch (PyPI).

Batch is served by localbatch, S3 and CloudWatch Logs by moto. localbatch runs real
containers but has no array jobs, delivers no logs to CloudWatch and leaves out much of
a job record, as a partial or different Batch API could: the runtime must still finish
every flow, show a failed step's traceback, and never hang.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.e2e.conftest import FLOWS, Deployed

from batchwright.client import Flow
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY
from batchwright_localaws import localbatch as localbatch_service

pytestmark = pytest.mark.localaws

STACK = "LocalbatchEnvironment"


class OnLocalbatch:
    """Flows run against the sample's datastore, roles and image, with its queues
    replaced by localbatch's."""

    def __init__(self, deployed: Deployed, server: localbatch_service.LocalBatch, work: Path):
        self.deployed = deployed
        self.server = server
        descriptor = json.loads(deployed.descriptor().to_json())
        compute = {
            "arn": "arn:aws:batch:us-east-1:123456789012:compute-environment/localbatch-default",
            "platform": "EC2",
            "order": 1,
            "max_vcpus": 256,
            "instance_types": ["c5.xlarge", "c5.2xlarge"],
        }
        descriptor["name"] = STACK
        descriptor["queues"] = [
            {
                "key": "cpu",
                "name": localbatch_service.DEFAULT_QUEUE,
                "arn": server.queue_arn(),
                "platform": "EC2",
                "compute_environments": [compute],
            }
        ]
        self.outputs = work / "localbatch-outputs.json"
        self.outputs.write_text(
            json.dumps({STACK: {DESCRIPTOR_OUTPUT_KEY: json.dumps(descriptor)}})
        )
        self.env = {**deployed.env, "AWS_ENDPOINT_URL_BATCH": server.endpoint}
        self.root = deployed.descriptor().datastore_root

    def run(self, flow: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(FLOWS / flow),
                *args,
                "--environment",
                STACK,
                "--outputs-file",
                str(self.outputs),
            ],
            cwd=self.deployed.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def jobs(self) -> list[dict[str, Any]]:
        """localbatch's own records of every job it ran."""
        batch = boto3.client(
            "batch",
            endpoint_url=self.server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ids = [
            j["jobId"]
            for j in batch.list_jobs(jobQueue=localbatch_service.DEFAULT_QUEUE)["jobSummaryList"]
        ]
        return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


@pytest.fixture(scope="module")
def on_localbatch(
    deployed: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OnLocalbatch]:
    work = tmp_path_factory.mktemp("localbatch")
    server = localbatch_service.start(work)
    try:
        yield OnLocalbatch(deployed, server, work)
    finally:
        server.stop()


def _run_id(output: str) -> str:
    match = re.search(r"Run \w+/(\d+) started", output)
    assert match, output
    return match.group(1)


def _jobs_of(on: OnLocalbatch, run_id: str) -> list[dict[str, Any]]:
    return [j for j in on.jobs() if (j.get("tags") or {}).get("batchwright:run") == run_id]


def test_a_linear_flow_moves_artifacts_both_ways(on_localbatch: OnLocalbatch) -> None:
    done = on_localbatch.run("crossing_flow.py", "run", "--word", "hi")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = _run_id(done.stdout)
    run = Flow("CrossingFlow", datastore_root=on_localbatch.root)[run_id]
    assert run.successful and run["end"].task.data.echoed == "HI FROM LOCAL and back"
    [job] = _jobs_of(on_localbatch, run_id)
    assert job["status"] == "SUCCEEDED" and run["shout"].task.data.job_id == job["jobId"]


def test_a_failing_steps_traceback_reaches_the_console_without_cloudwatch(
    on_localbatch: OnLocalbatch,
) -> None:
    done = on_localbatch.run("failing_flow.py", "run")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # localbatch sends nothing to CloudWatch Logs: the traceback comes from the datastore.
    assert "stderr of the failed attempt, from the datastore" in output
    assert "ValueError: the batch step exploded on purpose" in output
    assert "Traceback (most recent call last)" in output
    [job] = _jobs_of(on_localbatch, _run_id(done.stdout))
    assert job["status"] == "FAILED"


def test_a_retry_recovers(on_localbatch: OnLocalbatch) -> None:
    done = on_localbatch.run("retry_flow.py", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = _run_id(done.stdout)
    run = Flow("RetryFlow", datastore_root=on_localbatch.root)[run_id]
    assert run["flaky"].task.data.attempt == 1
    jobs = _jobs_of(on_localbatch, run_id)
    assert [j["status"] for j in sorted(jobs, key=lambda j: j["createdAt"])] == [
        "FAILED",
        "SUCCEEDED",
    ]


def test_a_foreach_falls_back_to_single_jobs_on_an_api_without_array_jobs(
    on_localbatch: OnLocalbatch,
) -> None:
    done = on_localbatch.run("exchange_flow.py", "run", "--label", "localbatch")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "foreach members are submitted as one job each" in output
    run_id = _run_id(done.stdout)
    run = Flow("ExchangeFlow", datastore_root=on_localbatch.root)[run_id]
    assert run["join"].task.data.results == [n * n for n in range(16)]
    assert run["end"].task.data.checked is True
    # One array job (which localbatch ran as one plain job and batchwright stopped), then
    # one job per member, each of them a job of its own.
    squares = [
        j for j in _jobs_of(on_localbatch, run_id) if j["tags"]["batchwright:step"] == "square"
    ]
    single = [j for j in squares if j["status"] == "SUCCEEDED"]
    assert len(squares) == 17 and len(single) == 16
    assert sorted(run["join"].task.data.job_ids) == sorted(j["jobId"] for j in single)
