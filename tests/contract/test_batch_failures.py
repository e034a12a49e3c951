"""Failure classification over DescribeJobs records (each record is first checked against
botocore's DescribeJobs output shape, so the fixtures look like what Batch returns)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batchwright.batch.definition import retry_strategy
from batchwright.batch.failures import (
    BATCH_RETRY_RULES,
    FailureKind,
    classify_job,
    count_reclaims,
)


def job(status: str, status_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "jobName": "F-train-1",
        "jobId": "2f1b0c2e-0000-4000-8000-000000000001",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "status": status,
        "startedAt": 1732540000000,
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/batchwright-x:1",
    }
    if status_reason is not None:
        record["statusReason"] = status_reason
    record.update(extra)
    return record


def attempt(
    exit_code: int | None = None, reason: str | None = None, status_reason: str | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"logStreamName": "batchwright/default/abc"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason is not None:
        container["reason"] = reason
    out: dict[str, Any] = {"container": container, "startedAt": 1, "stoppedAt": 2}
    if status_reason is not None:
        out["statusReason"] = status_reason
    return out


SPOT_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
PULL_REASON = "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found"
INIT_REASON = "ResourceInitializationError: unable to pull secrets or registry auth"

# (id, record, expected kind, words of the explanation)
CASES: list[tuple[str, dict[str, Any], FailureKind, str]] = [
    (
        "user error",
        job(
            "FAILED",
            "Essential container in task exited",
            container={"exitCode": 1},
            attempts=[attempt(1)],
        ),
        FailureKind.USER_ERROR,
        "exit code 1",
    ),
    (
        "oom by reason",
        job(
            "FAILED",
            "Essential container in task exited",
            container={"exitCode": 137, "reason": OOM_REASON},
        ),
        FailureKind.OUT_OF_MEMORY,
        "more than its memory",
    ),
    (
        "oom by exit code",
        job("FAILED", "Essential container in task exited", attempts=[attempt(137)]),
        FailureKind.OUT_OF_MEMORY,
        "exit code 137",
    ),
    (
        "spot reclaim",
        job("FAILED", SPOT_REASON, attempts=[attempt(status_reason=SPOT_REASON)] * 3),
        FailureKind.SPOT_RECLAIMED,
        "retried it 2 time(s)",
    ),
    (
        "fargate spot interruption",
        job(
            "FAILED",
            "Your Spot Task was interrupted.",
            attempts=[attempt(status_reason="Your Spot Task was interrupted.")],
        ),
        FailureKind.SPOT_RECLAIMED,
        "reclaimed (Your Spot Task was interrupted.)",
    ),
    (
        "image pull",
        job("FAILED", "Task failed to start", container={"reason": PULL_REASON}),
        FailureKind.IMAGE_PULL,
        "could not be pulled",
    ),
    (
        "resource initialization",
        job("FAILED", "Task failed to start", attempts=[attempt(reason=INIT_REASON)]),
        FailureKind.RESOURCE_INITIALIZATION,
        "unable to pull secrets",
    ),
    (
        "timeout",
        job("FAILED", "Job attempt duration exceeded timeout", attempts=[attempt(137)]),
        FailureKind.TIMEOUT,
        "longer than its timeout",
    ),
    (
        "stuck on resources",
        job(
            "RUNNABLE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement is not met",
        ),
        FailureKind.STUCK_WAITING,
        "instances large enough",
    ),
    (
        "stuck on max vcpus",
        job("RUNNABLE", "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE max vCPUs too low"),
        FailureKind.STUCK_WAITING,
        "maximum",
    ),
    (
        "stuck on capacity",
        job("RUNNABLE", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no capacity"),
        FailureKind.WAITING_FOR_CAPACITY,
        "no capacity",
    ),
    (
        "stuck, other reason",
        job("RUNNABLE", "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS - role"),
        FailureKind.STUCK_WAITING,
        "cannot be placed",
    ),
    (
        "terminated",
        job("FAILED", "Terminated by batchwright: run interrupted", isTerminated=True),
        FailureKind.TERMINATED,
        "run interrupted",
    ),
    (
        "array parent",
        job(
            "FAILED",
            "Array Child Job failed",
            arrayProperties={"size": 16, "statusSummary": {"FAILED": 3, "SUCCEEDED": 13}},
        ),
        FailureKind.ARRAY_CHILDREN_FAILED,
        "3 of the array job's 16 children",
    ),
    (
        "array child",
        job(
            "FAILED",
            "Essential container in task exited",
            container={"exitCode": 2},
            arrayProperties={"index": 4},
        ),
        FailureKind.USER_ERROR,
        "exit code 2",
    ),
    (
        "multi-node parent",
        job(
            "FAILED",
            "Essential container in task exited",
            nodeProperties={"numNodes": 2, "mainNode": 0, "nodeRangeProperties": []},
            attempts=[attempt(3)],
        ),
        FailureKind.USER_ERROR,
        "exit code 3",
    ),
    ("no evidence", job("FAILED"), FailureKind.UNKNOWN, "gave no reason"),
]


@pytest.fixture(scope="module")
def describe() -> Any:
    client = boto3.client(
        "batch",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def check(record: dict[str, Any]) -> None:
        with Stubber(client) as stub:
            stub.add_response("describe_jobs", {"jobs": [record]}, {"jobs": [record["jobId"]]})
            client.describe_jobs(jobs=[record["jobId"]])

    return check


@pytest.mark.parametrize(
    ("record", "kind", "words"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_classification(
    describe: Any, record: dict[str, Any], kind: FailureKind, words: str
) -> None:
    describe(record)
    diagnosis = classify_job(record)
    assert diagnosis is not None
    assert diagnosis.kind is kind
    assert words in diagnosis.explanation, diagnosis.explanation
    assert diagnosis.fix and str(diagnosis).startswith(f"{kind.value}: ")


@pytest.mark.parametrize(
    "status", ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
)
def test_healthy_jobs_have_no_diagnosis(describe: Any, status: str) -> None:
    record = job(status, "Essential container in task exited" if status == "SUCCEEDED" else None)
    describe(record)
    assert classify_job(record) is None


def test_details_are_kept() -> None:
    record = job(
        "FAILED",
        SPOT_REASON,
        container={"exitCode": 1, "reason": "x"},
        attempts=[attempt(), attempt()],
    )
    diagnosis = classify_job(record)
    assert diagnosis is not None
    assert (diagnosis.exit_code, diagnosis.reason, diagnosis.status_reason, diagnosis.attempts) == (
        1,
        "x",
        SPOT_REASON,
        2,
    )
    assert diagnosis.retried_by_batch


def test_user_errors_are_left_to_the_users_retries() -> None:
    diagnosis = classify_job(job("FAILED", container={"exitCode": 1}))
    assert diagnosis is not None and not diagnosis.retried_by_batch


def test_malformed_records_do_not_crash() -> None:
    for record in (
        {},
        {"status": "FAILED", "attempts": None, "container": "oops"},
        {"status": "FAILED", "attempts": ["x", {"container": None}]},
        {"status": "FAILED", "container": {"exitCode": True}},
        {"status": "RUNNABLE", "statusReason": 5},
    ):
        diagnosis = classify_job(record)
        assert diagnosis is None or diagnosis.kind is FailureKind.UNKNOWN


def test_the_retry_rules_match_the_reasons_they_retry() -> None:
    """Each RETRY rule of the definition matches the reason the classifier names for it,
    using Batch's glob semantics (a trailing '*' matches any suffix)."""
    samples = {
        FailureKind.SPOT_RECLAIMED: [
            ("onStatusReason", SPOT_REASON),
            ("onStatusReason", "Your Spot Task was interrupted."),
        ],
        FailureKind.IMAGE_PULL: [("onReason", PULL_REASON)],
        FailureKind.RESOURCE_INITIALIZATION: [("onReason", INIT_REASON)],
    }

    def matches(rule: dict[str, str], field: str, text: str) -> bool:
        pattern = rule.get(field)
        if pattern is None:
            return False
        return text.startswith(pattern[:-1]) if pattern.endswith("*") else text == pattern

    rules = retry_strategy()["evaluateOnExit"]
    assert rules[:-1] == [dict(r) for r in BATCH_RETRY_RULES]
    for kind, cases in samples.items():
        for field, text in cases:
            first = next(r for r in rules if matches(r, field, text) or matches(r, "onReason", "*"))
            assert first["action"] == "RETRY", (kind, text)
    # A user's failure has a container reason only sometimes; either way it hits EXIT.
    assert next(r for r in rules if matches(r, "onReason", "Essential container")) == {
        "action": "EXIT",
        "onReason": "*",
    }


def test_a_timeout_says_how_long_the_attempt_ran_and_waited() -> None:
    record = job(
        "FAILED",
        "Job attempt duration exceeded timeout",
        createdAt=1_000_000,
        attempts=[{**attempt(137), "startedAt": 1_095_000, "stoppedAt": 1_156_000}],
    )
    diagnosis = classify_job(record)
    assert diagnosis is not None and diagnosis.kind == FailureKind.TIMEOUT
    assert "(it ran 61 s, after waiting 95 s to start)" in diagnosis.explanation


@pytest.mark.parametrize(
    ("record", "reclaims"),
    [
        (job("FAILED", SPOT_REASON, attempts=[attempt(status_reason=SPOT_REASON)] * 3), 3),
        (job("RUNNABLE", attempts=[attempt(status_reason=SPOT_REASON), attempt(1)]), 1),
        (job("FAILED", SPOT_REASON), 1),
        (job("FAILED", "Essential container in task exited", attempts=[attempt(1)]), 0),
        (job("RUNNING"), 0),
    ],
)
def test_reclaims_are_counted_from_the_attempts(record: dict[str, Any], reclaims: int) -> None:
    assert count_reclaims(record) == reclaims
