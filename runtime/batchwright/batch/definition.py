"""The job definition of a step: what is fixed for a step on a platform, named by its content.

:func:`build_job_definition` returns the ``RegisterJobDefinition`` request of a step on a
queue's platform: image, roles, secrets, devices, Linux parameters, logging, networking,
the retry strategy for infrastructure faults and the attempt timeout. Per-task values
(command, environment, vCPU, memory, GPU) are not in it; they travel in each submission's
overrides. The definition is named ``batchwright-<content hash>`` after a hash of its
canonical JSON, and the hash is also stored as a tag, so a backend registers each distinct
definition once and reuses an active one by name.

A step that runs as one multi-node parallel job (N nodes, e.g. distributed training) gets
a ``multinode`` definition instead: one node range over all nodes (``0:``) whose container
is exactly what a single-node EC2 job of the step gets (:func:`container_properties`
builds both), and a placeholder node count each submission overrides.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchwright.batch import failures
from batchwright.batch.options import DEFAULT_CPU, DEFAULT_MEMORY, TAG_PREFIX, BatchOptions
from batchwright.batch.platforms import QueueTarget, check_platform, vcpu_text
from batchwright.errors import InvalidValue, PlanError

#: Version of contract 2 (the job spec); it is part of every definition's content hash.
JOB_SPEC_VERSION = 2

#: Job definition names are this prefix plus the content hash.
DEFINITION_NAME_PREFIX = "batchwright-"
#: Tag holding a definition's content hash (to find an active definition by content).
CONTENT_HASH_TAG = TAG_PREFIX + "content-hash"
#: Tag holding the contract version a definition was built with.
SPEC_VERSION_TAG = TAG_PREFIX + "job-spec-version"
#: Tag holding the UTC date (``YYYY-MM-DD``) a run last submitted with the definition
#: (stamped by the runtime at most once a day; ``batchwright jobdefs prune`` reads it).
LAST_USED_TAG = TAG_PREFIX + "last-used"
#: Batch-side attempts per job: the first plus two retries for infrastructure faults only.
INFRASTRUCTURE_ATTEMPTS = 3
#: Batch refuses shorter ``attemptDurationSeconds``.
MIN_TIMEOUT_SECONDS = 60
#: Added to ``@timeout`` for Batch's own attempt limit: the task enforces the timeout
#: itself (and records why it stopped, with the traceback); Batch's limit, counted from
#: container start, is the backstop for a hang outside the step (e.g. the code package
#: download).
BATCH_TIMEOUT_BACKSTOP_SECONDS = 30
#: RegisterJobDefinition request limit.
MAX_DEFINITION_BYTES = 24 * 1024
#: The definition's command: every submission overrides it, so running the definition
#: bare fails loudly instead of doing something half-configured.
PLACEHOLDER_COMMAND = (
    "sh",
    "-c",
    "echo 'batchwright sets the command of each job when it submits it' >&2; exit 64",
)
#: The stream prefix of the awslogs driver when batchwright configures it.
LOG_STREAM_PREFIX = "batchwright"
#: ``nodeProperties.numNodes`` of a multi-node definition: a placeholder, since every
#: submission sets the job's node count (``nodeOverrides.numNodes``), so one definition
#: serves every size. Batch requires the main node's index (0) to be below it, so 1 is the
#: smallest valid value (AWS ParallelCluster registers its multi-node definition the same
#: way); it overrides upwards as long as a node range is open-ended (:data:`ALL_NODES`).
PLACEHOLDER_NUM_NODES = 1
#: The main node of a multi-node job: Batch starts it first, and its exit ends the job.
MAIN_NODE_INDEX = 0
#: The one node range of a multi-node definition, and the range each submission's node
#: overrides target (Batch requires the two to match): every node, open-ended so the
#: node count can be overridden.
ALL_NODES = "0:"


@dataclass(frozen=True)
class JobDefinitionRequest:
    """The ``RegisterJobDefinition`` keyword arguments, named by their content hash."""

    name: str
    content_hash: str
    body: Mapping[str, Any] = field(hash=False)

    @property
    def multi_node(self) -> bool:
        """Whether this is a multi-node parallel job definition (``type: multinode``)."""
        return self.body.get("type") == "multinode"

    def kwargs(self) -> dict[str, Any]:
        """A fresh deep copy of the request, ready for ``client.register_job_definition``."""
        copied: dict[str, Any] = json.loads(json.dumps(self.body))
        return copied


def check_timeout(step: str, seconds: int | None, *, flow: str | None = None) -> int | None:
    """Refuses a ``@timeout`` Batch cannot enforce (under 60 seconds) on a ``@batch`` step."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < MIN_TIMEOUT_SECONDS:
        raise InvalidValue(
            where=(f"flow '{flow}', " if flow else "") + f"step '{step}', @timeout",
            key="seconds",
            value=seconds,
            problem=f"is shorter than the {MIN_TIMEOUT_SECONDS} seconds AWS Batch allows "
            "per attempt",
            fix=f"Use @timeout(seconds={MIN_TIMEOUT_SECONDS}) or more on a @batch step.",
        )
    return seconds


# --- the job definition ----------------------------------------------------------------


def default_image() -> str:
    """``python:<major>.<minor>`` of the interpreter launching the flow."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}"


def retry_strategy() -> dict[str, Any]:
    """Batch retries infrastructure faults itself; everything else ends the job so the
    user's ``@retry`` decides. The EXIT rule comes last because Batch retries a job that
    matches no rule."""
    rules: list[dict[str, str]] = [dict(rule) for rule in failures.BATCH_RETRY_RULES]
    rules.append({"action": "EXIT", "onReason": "*"})
    return {"attempts": INFRASTRUCTURE_ATTEMPTS, "evaluateOnExit": rules}


def _linux_parameters(options: BatchOptions) -> dict[str, Any]:
    params: dict[str, Any] = {}
    devices = [
        {
            "hostPath": f"/dev/neuron{i}",
            "containerPath": f"/dev/neuron{i}",
            "permissions": ["READ", "WRITE"],
        }
        for i in range(options.inferentia)
    ]
    devices += [
        {
            "hostPath": f"/dev/infiniband/uverbs{i}",
            "containerPath": f"/dev/infiniband/uverbs{i}",
            "permissions": ["READ", "WRITE", "MKNOD"],
        }
        for i in range(options.efa)
    ]
    if devices:
        params["devices"] = devices
    if options.shared_memory is not None:
        params["sharedMemorySize"] = options.shared_memory
    if options.max_swap is not None:
        params["maxSwap"] = options.max_swap
    if options.swappiness is not None:
        params["swappiness"] = options.swappiness
    if options.use_tmpfs and options.tmpfs_size is not None:
        params["tmpfs"] = [{"containerPath": options.tmpfs_path, "size": options.tmpfs_size}]
    return params


def _log_configuration(options: BatchOptions, target: QueueTarget) -> dict[str, Any] | None:
    if options.log_driver is not None:
        config: dict[str, Any] = {"logDriver": options.log_driver}
        if options.log_options:
            config["options"] = options.log_options_dict
        elif options.log_driver == "awslogs" and target.log_group:
            config["options"] = _awslogs_options(target)
        return config
    if target.log_group:
        return {"logDriver": "awslogs", "options": _awslogs_options(target)}
    return None  # Batch's default: awslogs into /aws/batch/job


def _awslogs_options(target: QueueTarget) -> dict[str, str]:
    assert target.log_group is not None
    out = {"awslogs-group": target.log_group, "awslogs-stream-prefix": LOG_STREAM_PREFIX}
    if target.region:
        out["awslogs-region"] = target.region
    return out


def content_hash(body: Mapping[str, Any]) -> str:
    """The hash naming a definition: SHA-256 of the canonical JSON of its body (name and
    tags left out) and the contract version, 32 hex digits."""
    material = {k: v for k, v in body.items() if k not in ("jobDefinitionName", "tags")}
    canonical = json.dumps(
        {"jobSpecVersion": JOB_SPEC_VERSION, "body": material},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def container_properties(options: BatchOptions, target: QueueTarget) -> dict[str, Any]:
    """The container of a step's jobs on the target's platform: ``containerProperties`` of
    a single-node definition, and the container of a multi-node definition's node range.

    Per-task values are placeholders every submission overrides: the command, and fixed
    default resource requirements (a valid Fargate size too). The step's ``secrets`` are
    the container's ``secrets`` (ECS fetches them into the job's environment with the
    execution role, which is then set on EC2 too); Fargate jobs get a public IP only when
    the target says its subnets need one. The options are not checked against the platform here
    (:func:`build_job_definition` does that).
    """
    fargate = target.is_fargate
    container: dict[str, Any] = {
        "image": options.image or target.default_image or default_image(),
        "command": list(PLACEHOLDER_COMMAND),
        "resourceRequirements": [
            {"type": "VCPU", "value": vcpu_text(DEFAULT_CPU)},
            {"type": "MEMORY", "value": str(DEFAULT_MEMORY)},
        ],
    }
    job_role = options.iam_role or target.job_role_arn
    if job_role:
        container["jobRoleArn"] = job_role
    # ECS fetches the image on Fargate, and secrets everywhere, with the execution role.
    needs_execution_role = fargate or bool(options.secrets)
    execution_role = options.execution_role or (
        target.execution_role_arn if needs_execution_role else None
    )
    if execution_role:
        container["executionRoleArn"] = execution_role
    if options.secrets:
        # Sorted by name (BatchOptions keeps them so): one content, one hash.
        container["secrets"] = [
            {"name": name, "valueFrom": reference} for name, reference in options.secrets
        ]
    linux = _linux_parameters(options)
    if linux:
        container["linuxParameters"] = linux
    if options.privileged:
        container["privileged"] = True
    logs = _log_configuration(options, target)
    if logs is not None:
        container["logConfiguration"] = logs
    if fargate:
        if options.ephemeral_storage is not None:
            container["ephemeralStorage"] = {"sizeInGiB": options.ephemeral_storage}
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        # Fargate tasks in public subnets without a NAT need a public IP to pull images
        # and reach S3; in private subnets they reach AWS through the NAT or endpoints. The
        # descriptor says which (contract 1, ``assign_public_ip``).
        container["networkConfiguration"] = {
            "assignPublicIp": "ENABLED" if target.assign_public_ip else "DISABLED"
        }
    return container


def check_multi_node(options: BatchOptions, target: QueueTarget) -> None:
    """Refuses a multi-node job on a queue that cannot run one: Batch runs multi-node
    parallel jobs on EC2 on-demand compute environments only (not Fargate, not Spot).

    Raises:
        InvalidValue: the target is a Fargate, Fargate Spot or Spot queue.
    """
    if target.platform == "EC2":
        return
    raise InvalidValue(
        where=f"{options.location}, @batch",
        key="queue",
        value=target.label,
        problem=f"is a {target.platform} queue; multi-node jobs run on EC2 on-demand "
        "queues only (AWS Batch runs them on neither Fargate nor Spot)",
        fix="Send the step to an EC2 on-demand queue whose environment runs multi-node "
        "jobs, or run it as a single-node job.",
    )


def build_job_definition(
    options: BatchOptions,
    target: QueueTarget,
    *,
    timeout_seconds: int | None = None,
    multi_node: bool = False,
) -> JobDefinitionRequest:
    """The ``RegisterJobDefinition`` request of a step on a queue's platform.

    Per-task values (command, environment, vCPU, memory, GPU) are not in it: the
    definition's resource requirements are the fixed defaults, overridden per job, so
    steps that differ only in those share one definition. The container is
    :func:`container_properties`.

    With ``multi_node`` the definition is a multi-node parallel one (``type:
    multinode``, EC2 only): ``nodeProperties`` with one node range over every node
    (:data:`ALL_NODES`) holding the same container a single-node EC2 job gets, main node
    :data:`MAIN_NODE_INDEX` and the placeholder node count
    :data:`PLACEHOLDER_NUM_NODES`, which each submission overrides. Its timeout limits
    the whole job (every node), not each node.

    Raises:
        InvalidValue: an option the platform lacks, a missing execution role (Fargate,
            secrets), a timeout under 60 seconds, a multi-node job on a queue other than
            EC2 on-demand.
        PlanError: the definition would exceed Batch's 24 KiB limit.
    """
    if multi_node:
        check_multi_node(options, target)
    check_platform(options, target)
    timeout = check_timeout(options.step, timeout_seconds, flow=options.flow)
    container = container_properties(options, target)
    body: dict[str, Any] = {"jobDefinitionName": ""}
    if multi_node:
        body["type"] = "multinode"
        body["platformCapabilities"] = ["EC2"]
        body["nodeProperties"] = {
            "numNodes": PLACEHOLDER_NUM_NODES,
            "mainNode": MAIN_NODE_INDEX,
            "nodeRangeProperties": [{"targetNodes": ALL_NODES, "container": container}],
        }
    else:
        body["type"] = "container"
        body["platformCapabilities"] = ["FARGATE" if target.is_fargate else "EC2"]
        body["containerProperties"] = container
    body["retryStrategy"] = retry_strategy()
    body["propagateTags"] = True
    if timeout is not None:
        body["timeout"] = {"attemptDurationSeconds": timeout + BATCH_TIMEOUT_BACKSTOP_SECONDS}
    digest = content_hash(body)
    name = DEFINITION_NAME_PREFIX + digest
    body["jobDefinitionName"] = name
    body["tags"] = {CONTENT_HASH_TAG: digest, SPEC_VERSION_TAG: str(JOB_SPEC_VERSION)}
    size = len(json.dumps(body).encode())
    if size >= MAX_DEFINITION_BYTES:
        raise PlanError(
            f"{options.location}, @batch: the job definition would be {size} bytes; "
            f"AWS Batch takes less than {MAX_DEFINITION_BYTES}. Shorten log_options or image."
        )
    return JobDefinitionRequest(name=name, content_hash=digest, body=body)
