"""Small environment descriptors for tests: compute environments, queues and the
environment around them, with account-shaped ARNs."""

from __future__ import annotations

from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)

ACCOUNT = "123456789012"
#: The job image a deployed environment names (its bootstrap ECR repository).
JOB_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright-job:1"


def compute_environment(
    name: str,
    platform: str,
    order: int = 1,
    *,
    types: tuple[str, ...] | None = None,
    public: bool = True,
    accelerator: str = "none",
    efa: bool = False,
) -> ComputeEnvironmentDescription:
    """A compute environment of 64 vCPUs; EC2 ones have ``types`` (default c5.large)."""
    if types is None:
        types = ("c5.large",) if platform in ("EC2", "SPOT") else ()
    return ComputeEnvironmentDescription(
        arn=f"arn:aws:batch:us-east-1:{ACCOUNT}:compute-environment/{name}",
        platform=platform,  # type: ignore[arg-type]
        order=order,
        max_vcpus=64,
        instance_types=types,
        assign_public_ip=public,
        accelerator=accelerator,  # type: ignore[arg-type]
        efa=efa,
    )


def queue(key: str, platform: str, *ces: ComputeEnvironmentDescription) -> QueueDescription:
    """A queue over ``ces`` (default: one environment of its own platform)."""
    return QueueDescription(
        key=key,
        name=f"sample-{key}",
        arn=f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/sample-{key}",
        platform=platform,  # type: ignore[arg-type]
        compute_environments=ces or (compute_environment(key, platform),),
    )


def environment(*queues: QueueDescription) -> EnvironmentDescriptor:
    """The environment ``Sample`` with ``queues`` and :data:`JOB_IMAGE` as its image."""
    return EnvironmentDescriptor(
        name="Sample",
        region="us-east-1",
        bucket="bucket",
        prefix="bw",
        job_role_arn=f"arn:aws:iam::{ACCOUNT}:role/job",
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/execution",
        log_group="/bw",
        default_image=JOB_IMAGE,
        queues=queues,
    )
