"""Why a Batch job failed (or will not start), in words AWS already uses.

:func:`classify_job` reads one job record of a ``DescribeJobs`` answer (single-node,
array parent or child, multi-node) and returns a :class:`Diagnosis`: a kind from a small
vocabulary shared with the construct library, a human explanation and a fix. It is a
pure function; the poller calls it, the console shows it.

The infrastructure faults Batch retries by itself (without using the user's ``@retry``)
are listed once, in :data:`BATCH_RETRY_RULES`, which the job spec turns into the
definition's ``retryStrategy.evaluateOnExit``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    """The failure vocabulary; values are stable strings (logs, metadata, constructs)."""

    #: The step's code exited with a non-zero code.
    USER_ERROR = "user-error"
    #: The container was killed for exceeding its memory (exit code 137, OutOfMemoryError).
    OUT_OF_MEMORY = "out-of-memory"
    #: EC2 Spot reclaimed the instance, or Fargate Spot interrupted the task.
    SPOT_RECLAIMED = "spot-reclaimed"
    #: The image could not be pulled.
    IMAGE_PULL = "image-pull"
    #: Fargate/ECS could not set the task up (secrets, registry auth, networking, logs).
    RESOURCE_INITIALIZATION = "resource-initialization"
    #: The attempt ran longer than the job's timeout.
    TIMEOUT = "timeout"
    #: RUNNABLE with a ``MISCONFIGURATION:*`` reason: no compute environment of the queue
    #: can run it as configured (stopped after a grace period: such reasons also show
    #: briefly while a compute environment scales up from zero).
    STUCK_WAITING = "stuck-waiting"
    #: RUNNABLE with a ``CAPACITY:*`` reason: EC2 has no capacity right now. Not a failure:
    #: the job waits, and the queue's own job-state time limit decides how long.
    WAITING_FOR_CAPACITY = "waiting-for-capacity"
    #: Someone (or batchwright on interrupt) cancelled or terminated the job.
    TERMINATED = "terminated"
    #: An array parent: some children failed; their own records say why.
    ARRAY_CHILDREN_FAILED = "array-children-failed"
    #: Nothing in the record says why.
    UNKNOWN = "unknown"


#: The retry rules for infrastructure faults, matched by Batch on each attempt's exit.
#: ``onStatusReason``/``onReason`` take letters, digits, ``.``, ``:``, spaces and a final ``*``.
BATCH_RETRY_RULES: tuple[Mapping[str, str], ...] = (
    {"action": "RETRY", "onStatusReason": "Host EC2*"},
    {"action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"},
    {"action": "RETRY", "onReason": "CannotPullContainerError:*"},
    {"action": "RETRY", "onReason": "ResourceInitializationError:*"},
)

#: Kinds Batch retries through :data:`BATCH_RETRY_RULES` before giving up.
RETRIED_BY_BATCH = frozenset(
    [FailureKind.SPOT_RECLAIMED, FailureKind.IMAGE_PULL, FailureKind.RESOURCE_INITIALIZATION]
)

_SPOT = re.compile(r"^Host EC2 \(instance [^)]*\) terminated|^Your Spot Task was interrupted")
_TIMEOUT = "Job attempt duration exceeded timeout"
_STUCK = re.compile(r"^(MISCONFIGURATION|CAPACITY):")
_CAPACITY = "CAPACITY:"
#: Exit code of a container killed by SIGKILL, which is how the kernel's OOM killer stops it.
OOM_EXIT_CODE = 137

_STUCK_HELP: dict[str, tuple[str, str]] = {
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": (
        "no compute environment of the queue has instances large enough for the job's "
        "vCPU, memory or GPU request",
        "Lower cpu/memory/gpu (remember a few hundred MiB of each instance are not "
        "usable), or add larger instance types to the queue's compute environments.",
    ),
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": (
        "the job needs more vCPUs than the compute environment's maximum",
        "Lower cpu, or raise the compute environment's max vCPUs.",
    ),
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": (
        "EC2 has no capacity for the compute environment's instance types right now",
        "It waits for capacity; the queue's job-state time limit decides how long. To start "
        "sooner, add instance types or subnets in other zones, or use an on-demand queue.",
    ),
}


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong with a job, in a user's words."""

    kind: FailureKind
    explanation: str
    fix: str
    exit_code: int | None = None
    #: The container's ``reason`` (e.g. ``CannotPullContainerError: ...``), if any.
    reason: str | None = None
    #: The job's (or last attempt's) ``statusReason``, if any.
    status_reason: str | None = None
    #: Attempts Batch made (infrastructure retries included).
    attempts: int = 0

    @property
    def retried_by_batch(self) -> bool:
        """Whether this kind is one Batch retries without using the user's ``@retry``."""
        return self.kind in RETRIED_BY_BATCH

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.explanation} {self.fix}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _exit_code(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def classify_job(job: Mapping[str, Any]) -> Diagnosis | None:
    """The diagnosis of one ``DescribeJobs`` job record, or ``None`` when nothing is wrong
    (succeeded, or still on its way).

    FAILED jobs are always diagnosed; RUNNABLE jobs only when their ``statusReason`` says
    they cannot start (``MISCONFIGURATION:*``: :attr:`FailureKind.STUCK_WAITING`) or not
    yet (``CAPACITY:*``: :attr:`FailureKind.WAITING_FOR_CAPACITY`). Reads the record
    defensively: any field may be missing.
    """
    status = _text(job.get("status"))
    status_reason = _text(job.get("statusReason"))
    if status == "RUNNABLE" and _STUCK.match(status_reason):
        explanation, fix = _STUCK_HELP.get(
            status_reason.split(" ", 1)[0].rstrip(":,."),
            (
                "AWS Batch says the job cannot be placed",
                "Check the queue's compute environments (state, instance types, max vCPUs).",
            ),
        )
        kind = (
            FailureKind.WAITING_FOR_CAPACITY
            if status_reason.startswith(_CAPACITY)
            else FailureKind.STUCK_WAITING
        )
        return Diagnosis(
            kind,
            f"The job waits in RUNNABLE ({status_reason}): {explanation}.",
            fix,
            status_reason=status_reason,
        )
    if status != "FAILED":
        return None

    attempts = [_mapping(a) for a in job.get("attempts") or [] if isinstance(a, Mapping)]
    last = attempts[-1] if attempts else {}
    container = _mapping(job.get("container")) or _mapping(last.get("container"))
    last_container = _mapping(last.get("container"))
    reason = _text(container.get("reason")) or _text(last_container.get("reason"))
    exit_code = _exit_code(container.get("exitCode"))
    if exit_code is None:
        exit_code = _exit_code(last_container.get("exitCode"))
    attempt_reason = _text(last.get("statusReason"))
    reasons = [r for r in (status_reason, attempt_reason, reason) if r]

    def diagnosis(kind: FailureKind, explanation: str, fix: str) -> Diagnosis:
        return Diagnosis(
            kind,
            explanation,
            fix,
            exit_code=exit_code,
            reason=reason or None,
            status_reason=status_reason or attempt_reason or None,
            attempts=len(attempts),
        )

    array = _mapping(job.get("arrayProperties"))
    if "index" not in array and isinstance(array.get("size"), int):
        summary = _mapping(array.get("statusSummary"))
        failed = summary.get("FAILED", "some")
        return diagnosis(
            FailureKind.ARRAY_CHILDREN_FAILED,
            f"{failed} of the array job's {array['size']} children failed.",
            "Each child's record (job id '<parent>:<index>') says why.",
        )
    if any(_TIMEOUT in r for r in reasons):
        return diagnosis(
            FailureKind.TIMEOUT,
            f"The job ran longer than its timeout and Batch stopped it{_times(job, last)}.",
            "Raise @timeout(seconds=...), or make the step faster.",
        )
    if any(_SPOT.match(r) for r in reasons):
        return diagnosis(
            FailureKind.SPOT_RECLAIMED,
            f"The Spot capacity running the job was reclaimed ({_first(reasons, _SPOT)}); "
            f"Batch retried it {max(len(attempts) - 1, 0)} time(s).",
            "Run again, use @retry, or send the step to an on-demand queue.",
        )
    if any("CannotPullContainerError" in r for r in reasons):
        return diagnosis(
            FailureKind.IMAGE_PULL,
            f"The container image could not be pulled ({reason or status_reason}).",
            "Check the image name and tag, that the registry is reachable from the compute "
            "environment's subnets, and that the execution role may pull it.",
        )
    if any("ResourceInitializationError" in r for r in reasons):
        return diagnosis(
            FailureKind.RESOURCE_INITIALIZATION,
            f"The task could not be set up ({reason or status_reason}).",
            "Check the execution role (secrets, registry, logs) and that the subnets reach "
            "ECR, S3 and CloudWatch Logs (a NAT, VPC endpoints, or a public IP).",
        )
    if reason.startswith("OutOfMemoryError") or exit_code == OOM_EXIT_CODE:
        return diagnosis(
            FailureKind.OUT_OF_MEMORY,
            f"The container was killed for using more than its memory (exit code {exit_code}).",
            "Raise @batch(memory=...) (MiB), or use less memory in the step.",
        )
    if job.get("isCancelled") is True or job.get("isTerminated") is True:
        return diagnosis(
            FailureKind.TERMINATED,
            f"The job was cancelled or terminated ({status_reason or 'no reason given'}).",
            "Run again if that was not intended.",
        )
    if exit_code is not None and exit_code != 0:
        return diagnosis(
            FailureKind.USER_ERROR,
            f"The step's code failed with exit code {exit_code}.",
            "See the step's output and traceback above; fix the code and resume or rerun.",
        )
    return diagnosis(
        FailureKind.UNKNOWN,
        f"The job failed ({status_reason or 'AWS Batch gave no reason'}).",
        "See the job in the AWS Batch console or `aws batch describe-jobs` for details.",
    )


def _times(job: Mapping[str, Any], attempt: Mapping[str, Any]) -> str:
    """`` (it ran 61 s, after waiting 95 s to start)``, from the record's timestamps, when
    it has them: a timeout counts running time only."""
    created, started = job.get("createdAt"), attempt.get("startedAt") or job.get("startedAt")
    stopped = attempt.get("stoppedAt") or job.get("stoppedAt")
    if not all(isinstance(t, int) for t in (created, started, stopped)):
        return ""
    ran, waited = (stopped - started) / 1000, (started - created) / 1000  # type: ignore[operator]
    return f" (it ran {ran:.0f} s, after waiting {waited:.0f} s to start)"


def count_reclaims(job: Mapping[str, Any]) -> int:
    """How many times Spot capacity was reclaimed under a job: its attempts that ended with
    a reclaim reason (Batch retries a reclaimed attempt itself), or 1 for a job whose own
    status says so without a matching attempt."""
    attempts = [_mapping(a) for a in job.get("attempts") or [] if isinstance(a, Mapping)]
    reclaimed = sum(1 for a in attempts if _SPOT.match(_text(a.get("statusReason"))))
    if reclaimed == 0 and _SPOT.match(_text(job.get("statusReason"))):
        return 1
    return reclaimed


def _first(reasons: list[str], pattern: re.Pattern[str]) -> str:
    return next(r for r in reasons if pattern.match(r))
