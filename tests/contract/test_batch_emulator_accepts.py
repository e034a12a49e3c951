"""The local emulator (moto, in-process, without Docker) accepts the job spec's requests:
the definition registers, a second registration of the same content is found by its
content-hash name, and the submission is described back with our overrides and tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.batch.submission import TaskInvocation
from batchwright.entrypoint.bootstrap import container_command

moto = pytest.importorskip("moto")


@pytest.fixture
def batch() -> Iterator[tuple[Any, str]]:
    with moto.mock_aws(config={"batch": {"use_docker": False}}):
        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        iam: Any = session.client("iam")
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        client: Any = session.client("batch")
        ce = client.create_compute_environment(
            computeEnvironmentName="contract-ce",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )["computeEnvironmentArn"]
        queue = client.create_job_queue(
            jobQueueName="contract-queue",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )["jobQueueArn"]
        yield client, queue


def test_moto_takes_the_requests(batch: tuple[Any, str]) -> None:
    client, queue = batch
    options = BatchOptions.from_attributes(
        "train",
        {
            "cpu": 2,
            "memory": 8192,
            "shared_memory": 1024,
            "use_tmpfs": True,
            "aws_batch_tags": {"team": "ml"},
        },
    )
    target = QueueTarget(queue=queue, platform="EC2", default_image="python:3.11", log_group="/bw")
    task = TaskInvocation(
        flow="F",
        run_id="r1",
        step="train",
        task_id="1",
        command=container_command(
            f"s3://bucket/code/{'0' * 64}.tar.gz", "0" * 64, ["--step", "train"]
        ),
        environment={"A": "1"},
        timeout_seconds=600,
    )
    spec = build_job_spec(options, target, task)
    registered = client.register_job_definition(**spec.definition.kwargs())
    assert registered["jobDefinitionName"] == spec.definition.name

    # The backend's lookup: an ACTIVE definition with this name means "already registered".
    found = client.describe_job_definitions(jobDefinitionName=spec.definition.name, status="ACTIVE")
    (definition,) = found["jobDefinitions"]
    assert definition["tags"]["batchwright:content-hash"] == spec.definition.content_hash
    last_rule = definition["retryStrategy"]["evaluateOnExit"][-1]
    # moto echoes the action lower-cased; AWS keeps it as sent.
    assert (last_rule["action"].upper(), last_rule["onReason"]) == ("EXIT", "*")

    job_id = client.submit_job(**spec.submit.kwargs())["jobId"]
    (job,) = client.describe_jobs(jobs=[job_id])["jobs"]
    assert job["jobName"] == "F-train-1-r1-a0"  # flow, step, task, run, attempt
    assert job["tags"]["batchwright:run"] == "r1" and job["tags"]["team"] == "ml"
    assert job["container"]["command"] == list(task.command)
