"""The fault proxy injects AWS's faults into real calls to the local AWS.

Every test talks to the real moto server through :class:`FaultProxy` with boto3 clients
whose retries are off, so each injected fault reaches the test as the client sees it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from batchwright.batch.failures import FailureKind, classify_job
from batchwright_localaws import LocalAws
from batchwright_localaws.faults import FaultProxy
from batchwright_localaws.services import moto_api

pytestmark = pytest.mark.localaws

NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [g5.xlarge]"
)
MISCONFIGURATION = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement "
    "(vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue."
)
RECLAIMED = re.compile(r"^Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.$")


def _client(endpoint: str, service: str) -> Any:
    maker: Any = boto3
    return maker.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
    )


def _poll(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """``probe()``'s first truthy value, asked every ``interval`` s until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout} s")


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def proxy(local_aws: LocalAws) -> Iterator[FaultProxy]:
    with FaultProxy(local_aws.endpoint, seed=7) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


@pytest.fixture
def clients(proxy: FaultProxy) -> Callable[[str], Any]:
    """Makes boto3 clients bound to the proxy, retries off."""
    return lambda service: _client(proxy.endpoint, service)


@dataclass(frozen=True)
class BatchEnvironment:
    queue_name: str
    queue_arn: str
    definition: str


@pytest.fixture(scope="module")
def batch_env(local_aws: LocalAws, proxy: FaultProxy) -> Iterator[BatchEnvironment]:
    """An unmanaged compute environment, a queue and a job definition created through the
    proxy (the emulator insists on a service role; AWS would use the service-linked one)."""
    name = f"faults-{_suffix()}"
    iam, batch = _client(proxy.endpoint, "iam"), _client(proxy.endpoint, "batch")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "batch.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    environment = batch.create_compute_environment(
        computeEnvironmentName=name,
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": local_aws.image,
            "command": ["python3", "-c", "import time; time.sleep(30)"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )["jobDefinitionArn"]
    try:
        yield BatchEnvironment(name, queue, definition)
    finally:
        direct = local_aws.client("batch")
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
            for job in direct.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]:
                direct.terminate_job(jobId=job["jobId"], reason="test cleanup")
        direct.deregister_job_definition(jobDefinition=definition)
        direct.update_job_queue(jobQueue=queue, state="DISABLED")
        direct.delete_job_queue(jobQueue=queue)
        direct.update_compute_environment(computeEnvironment=environment, state="DISABLED")
        direct.delete_compute_environment(computeEnvironment=environment)
        local_aws.client("iam").delete_role(RoleName=name)


def _describe(batch: Any, job_id: str) -> dict[str, Any] | None:
    jobs: list[dict[str, Any]] = batch.describe_jobs(jobs=[job_id])["jobs"]
    return jobs[0] if jobs else None


# --- errors -----------------------------------------------------------------------------

#: One cheap call per service, and what each kind of error looks like to the client there.
CALLS: dict[str, Callable[[Any], Any]] = {
    "batch": lambda c: c.describe_job_queues(),
    "logs": lambda c: c.describe_log_groups(limit=1),
    "s3": lambda c: c.list_buckets(),
}
EXPECTED = {
    ("batch", "throttle"): (429, "TooManyRequestsException"),
    ("batch", "500"): (500, "ServerException"),
    ("batch", "503"): (503, "ServiceUnavailableException"),
    ("logs", "throttle"): (400, "ThrottlingException"),
    ("logs", "500"): (500, "InternalFailure"),
    ("logs", "503"): (503, "ServiceUnavailableException"),
    ("s3", "throttle"): (503, "SlowDown"),
    ("s3", "500"): (500, "InternalError"),
    ("s3", "503"): (503, "ServiceUnavailable"),
}


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("kind", ["throttle", "500", "503"])
def test_each_error_kind_reaches_the_client_in_the_services_format(
    proxy: FaultProxy, clients: Callable[[str], Any], service: str, kind: str
) -> None:
    client = clients(service)
    proxy.set_error_rate(1.0, kinds=[kind], services=[service])
    before = proxy.stats.injected.get(kind, 0)

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        CALLS[service](client)

    status, code = EXPECTED[(service, kind)]
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert proxy.stats.injected[kind] == before + 1


@pytest.mark.parametrize("service", sorted(CALLS))
def test_reset_closes_the_connection_without_an_answer(
    proxy: FaultProxy, clients: Callable[[str], Any], service: str
) -> None:
    client = clients(service)
    proxy.set_error_rate(1.0, kinds=["reset"], services=[service])

    with pytest.raises(botocore.exceptions.ConnectionClosedError) as raised:
        CALLS[service](client)

    # urllib3's ProtocolError carries the socket error: a reset (RST), not a clean close.
    cause = raised.value.kwargs["error"]
    assert any(isinstance(arg, ConnectionResetError) for arg in cause.args), cause


def test_other_services_pass_untouched_and_are_not_counted_as_s3(
    proxy: FaultProxy, clients: Callable[[str], Any]
) -> None:
    proxy.set_error_rate(1.0)
    before = proxy.stats

    identity = clients("sts").get_caller_identity()
    clients("ssm").describe_parameters(MaxResults=1)

    assert identity["Account"] == "123456789012"
    after = proxy.stats
    assert after.faults == before.faults
    assert after.requests_to("s3") == before.requests_to("s3")
    assert after.requests_to("sts", "GetCallerIdentity") == (
        before.requests_to("sts", "GetCallerIdentity") + 1
    )
    assert after.requests_to("ssm", "DescribeParameters") == (
        before.requests_to("ssm", "DescribeParameters") + 1
    )


def test_without_faults_moto_answers_pass_through_byte_for_byte(
    local_aws: LocalAws, proxy: FaultProxy, clients: Callable[[str], Any]
) -> None:
    proxy.set_error_rate(0.0)
    s3 = clients("s3")
    bucket = f"faults-{_suffix()}"
    small, large = os.urandom(1000), os.urandom(5 * 1024 * 1024 + 17)
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="small.bin", Body=small)
        s3.put_object(Bucket=bucket, Key="dir/large file.bin", Body=large)

        assert s3.get_object(Bucket=bucket, Key="small.bin")["Body"].read() == small
        assert s3.get_object(Bucket=bucket, Key="dir/large file.bin")["Body"].read() == large
        assert s3.head_object(Bucket=bucket, Key="dir/large file.bin")["ContentLength"] == len(
            large
        )
        listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert sorted(o["Key"] for o in listed) == ["dir/large file.bin", "small.bin"]
        # The object moto stored is the one sent through the proxy.
        direct = local_aws.client("s3").get_object(Bucket=bucket, Key="dir/large file.bin")
        assert direct["Body"].read() == large
    finally:
        # The bucket stays (its name is unique): moto keeps every object it ever made,
        # and a key whose bucket is gone breaks its /moto-api/data.json for good.
        for key in ("small.bin", "dir/large file.bin"):
            s3.delete_object(Bucket=bucket, Key=key)
    stats = proxy.stats
    assert stats.requests_to("s3", "PutObject") >= 2
    assert stats.requests_to("s3", "GetObject") >= 2


def _outcomes(endpoint: str, calls: int) -> list[str]:
    logs = _client(endpoint, "logs")
    outcomes = []
    for _ in range(calls):
        try:
            logs.describe_log_groups(logGroupNamePrefix="/faults/none", limit=1)
            outcomes.append("ok")
        except botocore.exceptions.ClientError as error:
            outcomes.append(str(error.response["Error"]["Code"]))
        except botocore.exceptions.ConnectionClosedError:
            outcomes.append("reset")
    return outcomes


def test_an_error_rate_fails_about_that_share_and_a_seed_repeats_it(
    local_aws: LocalAws,
) -> None:
    runs = []
    for _ in range(2):
        with FaultProxy(local_aws.endpoint, seed=1234) as seeded:
            seeded.set_error_rate(0.2)
            outcomes = _outcomes(seeded.endpoint, 200)
            failures = sum(outcome != "ok" for outcome in outcomes)
            assert seeded.stats.faults == failures
            assert 20 <= failures <= 60, failures
            assert set(outcomes) == {
                "ok",
                "ThrottlingException",
                "InternalFailure",
                "ServiceUnavailableException",
                "reset",
            }
            runs.append(outcomes)
    assert runs[0] == runs[1]


def test_an_outage_resets_every_call_for_its_duration(
    proxy: FaultProxy, clients: Callable[[str], Any]
) -> None:
    batch, sts = clients("batch"), clients("sts")
    started = time.monotonic()
    proxy.outage(1.5)

    for call in (batch.describe_job_queues, sts.get_caller_identity):
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            call()

    def succeeds() -> float | None:
        try:
            batch.describe_job_queues()
        except botocore.exceptions.ConnectionClosedError:
            return None
        return time.monotonic() - started

    back_after = _poll("Batch answers again", succeeds, timeout=5, interval=0.1)
    assert 1.4 <= back_after < 3.0
    assert proxy.stats.injected["outage"] >= 3


# --- Batch answers ----------------------------------------------------------------------


def test_new_jobs_are_hidden_right_after_submit(
    local_aws: LocalAws,
    proxy: FaultProxy,
    clients: Callable[[str], Any],
    batch_env: BatchEnvironment,
) -> None:
    batch = clients("batch")
    moto_api(local_aws, "config", {"batch": {"use_docker": False}})
    try:
        # Long enough that the calls below fit in it on a loaded 2-core machine.
        proxy.hide_new_jobs(8.0)
        single = batch.submit_job(
            jobName=f"hidden-{_suffix()}",
            jobQueue=batch_env.queue_name,
            jobDefinition=batch_env.definition,
        )["jobId"]
        array = batch.submit_job(
            jobName=f"hidden-array-{_suffix()}",
            jobQueue=batch_env.queue_arn,
            jobDefinition=batch_env.definition,
            arrayProperties={"size": 2},
        )["jobId"]
        submitted = time.monotonic()
        ids = [single, array, f"{array}:0", f"{array}:1"]

        assert batch.describe_jobs(jobs=ids)["jobs"] == []
        listed = batch.list_jobs(jobQueue=batch_env.queue_name, jobStatus="SUCCEEDED")
        assert not {single, array} & {j["jobId"] for j in listed["jobSummaryList"]}
        children = batch.list_jobs(arrayJobId=array)["jobSummaryList"]
        assert children == []
        # moto has them all the time: the proxy hides them.
        assert len(local_aws.client("batch").describe_jobs(jobs=ids)["jobs"]) == 4

        def all_shown() -> list[dict[str, Any]] | None:
            # The single job was submitted first, so it shows up first: wait for all four.
            shown: list[dict[str, Any]] = batch.describe_jobs(jobs=ids)["jobs"]
            return shown if len(shown) == len(ids) else None

        jobs = _poll(
            "the jobs show up",
            all_shown,
            timeout=20,
            interval=0.1,
        )
        assert time.monotonic() - submitted >= 7.9
        assert sorted(j["jobId"] for j in jobs) == sorted(ids)
        assert proxy.stats.hidden >= 4
    finally:
        moto_api(local_aws, "config", {"batch": {"use_docker": True}})


def test_runnable_jobs_show_the_waiting_reason(
    local_aws: LocalAws,
    proxy: FaultProxy,
    clients: Callable[[str], Any],
    batch_env: BatchEnvironment,
) -> None:
    batch = clients("batch")
    job_id = None
    # Each state lasts 4 s: RUNNABLE from about 8 s to 12 s after the submit.
    moto_api(
        local_aws,
        "state-manager/set-transition",
        {"model_name": "batch::job", "transition": {"progression": "time", "seconds": 4}},
    )
    try:
        proxy.waiting_reason(CAPACITY, queue=batch_env.queue_name)
        proxy.waiting_reason("MISCONFIGURATION:OTHER - not this queue", queue="no-such-queue")
        job_id = batch.submit_job(
            jobName=f"waiting-{_suffix()}",
            jobQueue=batch_env.queue_name,
            jobDefinition=batch_env.definition,
        )["jobId"]

        def runnable() -> dict[str, Any] | None:
            job = _describe(batch, job_id)
            return job if job and job["status"] == "RUNNABLE" else None

        job = _poll("the job is RUNNABLE", runnable, timeout=30)
        assert job["statusReason"] == CAPACITY
        diagnosis = classify_job(job)
        # The runtime reads a CAPACITY reason as waiting (its newer vocabulary has a kind
        # for it), a MISCONFIGURATION reason as stuck.
        waiting = getattr(FailureKind, "WAITING_FOR_CAPACITY", FailureKind.STUCK_WAITING)
        assert diagnosis is not None and diagnosis.kind == waiting
        summaries = batch.list_jobs(jobQueue=batch_env.queue_arn, jobStatus="RUNNABLE")
        summary = next(j for j in summaries["jobSummaryList"] if j["jobId"] == job_id)
        assert summary["statusReason"] == CAPACITY
        direct = _describe(local_aws.client("batch"), job_id)
        assert direct is not None and "statusReason" not in direct  # moto gives no reason

        proxy.waiting_reason(CAPACITY, queue=None)
        proxy.waiting_reason(None, queue=batch_env.queue_name)
        proxy.waiting_reason(MISCONFIGURATION, queue=batch_env.queue_name)
        job = _describe(batch, job_id)
        assert job is not None and job["status"] == "RUNNABLE"
        assert job["statusReason"] == MISCONFIGURATION
        diagnosis = classify_job(job)
        assert diagnosis is not None and diagnosis.kind == FailureKind.STUCK_WAITING
        proxy.waiting_reason(None, queue=batch_env.queue_name)
        job = _describe(batch, job_id)
        assert job is not None and job["statusReason"] == CAPACITY  # the every-queue reason
        proxy.waiting_reason(None)
        job = _describe(batch, job_id)
        assert job is not None and job["status"] == "RUNNABLE"
        assert "statusReason" not in job
    finally:
        moto_api(local_aws, "state-manager/unset-transition", {"model_name": "batch::job"})
        if job_id is not None:
            local_aws.client("batch").terminate_job(jobId=job_id, reason="test done")


def test_reclaim_kills_the_container_and_reports_it_as_aws_does(
    local_aws: LocalAws,
    proxy: FaultProxy,
    clients: Callable[[str], Any],
    batch_env: BatchEnvironment,
) -> None:
    import docker

    batch = clients("batch")
    job_name = f"reclaimed-{_suffix()}"
    submitted = time.monotonic()
    job_id = batch.submit_job(
        jobName=job_name,
        jobQueue=batch_env.queue_name,
        jobDefinition=batch_env.definition,
        containerOverrides={"command": ["python3", "-c", "import time; time.sleep(60)"]},
    )["jobId"]
    try:
        proxy.reclaim(batch_env.queue_name)

        def in_status(status: str) -> Callable[[], dict[str, Any] | None]:
            def probe() -> dict[str, Any] | None:
                job = _describe(batch, job_id)
                return job if job and job["status"] == status else None

            return probe

        _poll("the job is RUNNING", in_status("RUNNING"), timeout=60)
        job = _poll("the job is FAILED", in_status("FAILED"), timeout=30)

        assert RECLAIMED.match(job["statusReason"]), job["statusReason"]
        last = job["attempts"][-1]
        assert last["statusReason"] == job["statusReason"]
        assert "exitCode" not in job.get("container", {})
        assert "exitCode" not in last.get("container", {})
        diagnosis = classify_job(job)
        assert diagnosis is not None and diagnosis.kind == FailureKind.SPOT_RECLAIMED
        assert proxy.stats.reclaimed == (job_id,)

        engine = docker.from_env()
        try:

            def container_stopped() -> bool:
                try:
                    found = engine.containers.list(
                        all=True, filters={"name": f"{job_name}-{job_id}"}
                    )
                except docker.errors.NotFound:  # removed while it was being listed: gone
                    return True
                return all(c.status != "running" for c in found)

            _poll("the job's container stops", container_stopped, timeout=10)
        finally:
            engine.close()
        assert time.monotonic() - submitted < 30  # the job would have slept 60 s

        # moto saw a container killed with SIGKILL (exit code 137); the proxy shows the
        # reclaim instead, in ListJobs too.
        def moto_failed() -> dict[str, Any] | None:
            failed = local_aws.client("batch").list_jobs(
                jobQueue=batch_env.queue_name, jobStatus="FAILED"
            )
            return next((j for j in failed["jobSummaryList"] if j["jobId"] == job_id), None)

        assert _poll("moto records the failure", moto_failed, timeout=15)["container"] == {
            "exitCode": 137
        }
        summaries = batch.list_jobs(jobQueue=batch_env.queue_name, jobStatus="FAILED")
        summary = next(j for j in summaries["jobSummaryList"] if j["jobId"] == job_id)
        assert summary["statusReason"] == job["statusReason"]
        assert "container" not in summary
        running = batch.list_jobs(jobQueue=batch_env.queue_name, jobStatus="RUNNING")
        assert job_id not in {j["jobId"] for j in running["jobSummaryList"]}
        proxy.clear()
        again = _describe(batch, job_id)  # reclaimed jobs stay reclaimed
        assert again is not None and again["status"] == "FAILED"
        assert again["statusReason"] == job["statusReason"]
        assert again["stoppedAt"] == job["stoppedAt"]
    finally:
        local_aws.client("batch").terminate_job(jobId=job_id, reason="test done")


# --- relaying, against a stub upstream ---------------------------------------------------

STUB_BLOB = os.urandom(300_000)
STUB_JOB_ID = "5a0f4c3e-0000-4000-8000-000000000001"
STUB_JOB = {
    "jobId": STUB_JOB_ID,
    "jobName": "stub-job",
    "jobArn": "arn:aws:batch:us-east-1:123456789012:job/5a0f4c3e-0000-4000-8000-000000000001",
    "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/stub-queue",
    "status": "RUNNING",
    "createdAt": 1,
    "startedAt": 2,
    "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/stub:1",
    "container": {"image": "stub"},
    "attempts": [],
}


class _ChunkedStub(BaseHTTPRequestHandler):
    """Answers like a server that streams: Transfer-Encoding chunked, no Content-Length."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _chunked(self, content_type: str, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(payload), 70_000):
            part = payload[start : start + 70_000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        self._chunked("application/octet-stream", STUB_BLOB)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._chunked("application/json", json.dumps({"jobs": [STUB_JOB]}).encode())


def test_chunked_answers_are_relayed_and_fargate_reclaims_say_so() -> None:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedStub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{stub.server_address[1]}"
        with FaultProxy(upstream, seed=3) as relay:
            connection = http.client.HTTPConnection("127.0.0.1", int(relay.endpoint.split(":")[-1]))
            try:
                connection.request("GET", "/stub-bucket/blob")
                response = connection.getresponse()
                assert response.status == 200
                assert response.getheader("Transfer-Encoding") == "chunked"
                assert response.read() == STUB_BLOB
            finally:
                connection.close()

            relay.reclaim("stub-queue", fargate=True)
            batch = _client(relay.endpoint, "batch")
            seen = _describe(batch, STUB_JOB_ID)
            assert seen is not None and seen["status"] == "RUNNING"
            job = _describe(batch, STUB_JOB_ID)
            assert job is not None and job["status"] == "FAILED"
            assert job["statusReason"] == "Your Spot Task was interrupted."
            assert job["attempts"][-1]["statusReason"] == "Your Spot Task was interrupted."
            diagnosis = classify_job(job)
            assert diagnosis is not None and diagnosis.kind == FailureKind.SPOT_RECLAIMED
    finally:
        stub.shutdown()
        stub.server_close()
