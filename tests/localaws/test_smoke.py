"""The local AWS runs Batch jobs for real: containers, S3 and CloudWatch Logs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from batchwright_localaws import LocalAws

pytestmark = pytest.mark.localaws

# The job writes an object to the emulated S3 (job containers share the host's network,
# so the endpoint is the same loopback address; the image's boto3 predates
# AWS_ENDPOINT_URL, so it is passed explicitly), then prints a line that must reach
# CloudWatch Logs.
WRITER = """
import os, boto3
s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.put_object(Bucket=os.environ["BUCKET"], Key="smoke/hello.txt",
              Body=("written by " + os.environ["AWS_BATCH_JOB_ID"]).encode())
print("smoke line from", os.environ["AWS_BATCH_JOB_ID"])
"""


def _queue(local: LocalAws, name: str) -> str:
    """A job queue over one managed EC2 compute environment in the emulator."""
    ec2, iam, batch = local.client("ec2"), local.client("iam"), local.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=name, Description="smoke", VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    env = batch.create_compute_environment(
        computeEnvironmentName=name,
        type="MANAGED",
        state="ENABLED",
        # AWS falls back to the service-linked role; the emulator insists on a role.
        serviceRole=role,
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 4,
            "instanceTypes": ["c5.xlarge"],
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": profile,
        },
    )["computeEnvironmentArn"]
    return str(
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
        )["jobQueueArn"]
    )


def _wait(batch: Any, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def test_job_runs_in_a_container_writes_s3_and_logs(local_aws: LocalAws) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    s3, batch, logs = local_aws.client("s3"), local_aws.client("batch"), local_aws.client("logs")
    s3.create_bucket(Bucket=name)
    queue = _queue(local_aws, name)
    definition = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": local_aws.image,
            "command": ["python3", "-c", WRITER],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
            "environment": [
                {"name": "BUCKET", "value": name},
                *({"name": k, "value": v} for k, v in local_aws.environment().items()),
            ],
        },
    )["jobDefinitionArn"]

    ok = batch.submit_job(jobName=f"{name}-ok", jobQueue=queue, jobDefinition=definition)
    failing = batch.submit_job(
        jobName=f"{name}-exit3",
        jobQueue=queue,
        jobDefinition=definition,
        containerOverrides={"command": ["python3", "-c", "import sys; sys.exit(3)"]},
    )

    job = _wait(batch, ok["jobId"])
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    body = s3.get_object(Bucket=name, Key="smoke/hello.txt")["Body"].read().decode()
    assert body == f"written by {ok['jobId']}"
    stream = job["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    assert f"smoke line from {ok['jobId']}" in [e["message"] for e in events]

    failed = _wait(batch, failing["jobId"])
    assert failed["status"] == "FAILED"
    # DescribeJobs in the emulator drops the exit code; ListJobs carries it, as on AWS.
    summaries = batch.list_jobs(jobQueue=queue, jobStatus="FAILED")["jobSummaryList"]
    exit_codes = {s["jobId"]: s.get("container", {}).get("exitCode") for s in summaries}
    assert exit_codes[failing["jobId"]] == 3
