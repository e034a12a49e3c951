"""The Metaflow profile of an environment (``metaflow configure import FILE``).

One builder for both halves: the constructs publish it as a stack output, and
``batchwright env export-metaflow`` builds it from a descriptor when that output is absent.
The keys are those Metaflow's AWS Batch support reads.
"""

from __future__ import annotations

from batchwright.environment.descriptor import EnvironmentDescriptor, QueueDescription


def registry_of(image: str) -> str | None:
    """The registry host of an image name (``public.ecr.aws`` of
    ``public.ecr.aws/docker/library/python:3.11``), or None for Docker Hub names and for
    images not known yet (a deploy-time parameter)."""
    head, slash, _ = image.partition("/")
    return head if slash and ("." in head or ":" in head) else None


def default_queue(env: EnvironmentDescriptor) -> QueueDescription | None:
    """The queue a Metaflow user gets by default: the first on-demand EC2 queue without
    accelerators, else the first queue."""
    plain = [q for q in env.queues if q.platform == "EC2" and q.accelerator == "none"]
    candidates = plain or list(env.queues)
    return candidates[0] if candidates else None


def metaflow_profile(env: EnvironmentDescriptor, queue_arn: str) -> dict[str, str]:
    """The profile pointing Metaflow at ``env``: its datastore (Metaflow under
    ``<root>/metaflow``, its data tools under ``<root>/data``), ``queue_arn``, the roles and
    the default image."""
    root = env.datastore_root
    profile = {
        "METAFLOW_DEFAULT_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": f"{root}/metaflow",
        "METAFLOW_DATATOOLS_S3ROOT": f"{root}/data",
        "METAFLOW_BATCH_JOB_QUEUE": queue_arn,
        "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": env.job_role_arn,
        "METAFLOW_ECS_FARGATE_EXECUTION_ROLE": env.execution_role_arn,
        "METAFLOW_BATCH_CONTAINER_IMAGE": env.default_image,
        "METAFLOW_BATCH_EMIT_TAGS": "true",
    }
    registry = registry_of(env.default_image)
    if registry:
        profile["METAFLOW_BATCH_CONTAINER_REGISTRY"] = registry
    return profile
