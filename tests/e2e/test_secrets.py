"""``@batch(secrets=...)`` on the local AWS, in a real container: the runtime registers a
job definition whose ``secrets`` name the reference and whose execution role (which ECS
fetches secrets with, on EC2 too) is the environment's. The emulator does not resolve the
reference into the container (AWS does), so the step sees no value there."""

from __future__ import annotations

import re

import pytest
from tests.e2e.conftest import Deployed

from batchwright.client import Flow

pytestmark = pytest.mark.localaws

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def test_a_step_with_secrets_runs_on_a_definition_that_names_them(
    deployed: Deployed, run_tag: str
) -> None:
    done = deployed.run("secret_flow.py", "run", "--label", run_tag)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    run_id = re.search(r"Run \w+/(\d+) started", done.stdout)
    assert run_id, output
    descriptor = deployed.descriptor()
    run = Flow("SecretFlow", datastore_root=descriptor.datastore_root)[run_id.group(1)]
    assert run.successful
    batch = deployed.local.client("batch")
    jobs = [
        job
        for summary in deployed.jobs()
        for job in batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
        if (job.get("tags") or {}).get("batchwright:run") == run_id.group(1)
    ]
    assert len(jobs) == 1
    definition = batch.describe_job_definitions(jobDefinitions=[jobs[0]["jobDefinition"]])[
        "jobDefinitions"
    ][0]
    container = definition["containerProperties"]
    assert container["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": SECRET}]
    assert container["executionRoleArn"] == descriptor.execution_role_arn
    assert definition["platformCapabilities"] == ["EC2"]
    # The emulator passes no secret into the container; on AWS, ECS would.
    assert run["connect"].task.data.password_given is False
