"""The submission of one task: what changes per task, as a ``SubmitJob`` request.

Command, environment, vCPU, memory and GPU go in container overrides, next to the array
size and tags naming flow, run, step, task and attempt; per-task values never change the
definition's hash. A multi-node job carries the same container overrides inside its node
overrides (for the one node range, every node), next to its node count. Overrides that
would exceed Batch's size limits are moved out of the request into an :class:`Offload`,
stored content-addressed under the datastore's ``code/payloads/`` (which jobs may read but
not write): the caller uploads its bytes, and the job's command becomes a short bootstrap
that downloads it, checks its SHA-256 and runs the real command.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchwright.batch.definition import ALL_NODES, JOB_SPEC_VERSION, JobDefinitionRequest
from batchwright.batch.jobenv import job_environment
from batchwright.batch.options import MAX_TAG_VALUE_LENGTH, TAG_PREFIX, BatchOptions
from batchwright.batch.platforms import QueueTarget, SpecNotice, resolve_resources
from batchwright.codepackage import CODE_FOLDER
from batchwright.entrypoint.bootstrap import offload_command
from batchwright.errors import PlanError
from batchwright.multinode import MAX_NODES

#: Container overrides are effectively limited to this many bytes.
MAX_OVERRIDES_BYTES = 8 * 1024
#: SubmitJob request limit.
MAX_SUBMIT_BYTES = 30 * 1024
#: Array job sizes Batch accepts.
ARRAY_SIZE_RANGE = (2, 10_000)


@dataclass(frozen=True)
class TaskInvocation:
    """One task to submit: who it is and what it runs.

    Raises ``ValueError`` on construction for values only a caller bug can produce (an
    empty command, an array size or node count Batch cannot take, both at once).
    """

    flow: str
    run_id: str
    step: str
    task_id: str
    #: The container command (usually :func:`command_for_task`).
    command: tuple[str, ...]
    #: The job's environment (filtered through :func:`job_environment`).
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: How many times the user's ``@retry`` resubmitted this task (``current.retry_count``).
    retry_count: int = 0
    #: How many times this attempt was submitted again after its capacity failed.
    resubmission: int = 0
    #: Children of an array job (2..10,000), or ``None`` for a single job.
    array_size: int | None = None
    #: Nodes of a multi-node parallel job (1..:data:`MAX_NODES`), or ``None`` for a
    #: single-node job; never together with ``array_size``.
    num_nodes: int | None = None
    #: A multi-node job: the instance type every node runs on (the plan's, so that the
    #: node count and the EFA devices it checked hold); ``None`` lets Batch choose.
    node_instance_type: str | None = None
    #: ``@timeout`` of the step in seconds, or ``None``.
    timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        if not self.command:
            raise ValueError("a task's command must not be empty")
        low, high = ARRAY_SIZE_RANGE
        if self.array_size is not None and not low <= self.array_size <= high:
            raise ValueError(f"array_size must be {low}..{high}, got {self.array_size}")
        if self.num_nodes is not None:
            if self.array_size is not None:
                raise ValueError(
                    "a task is an array job (array_size) or a multi-node job (num_nodes), "
                    f"not both; got array_size={self.array_size}, num_nodes={self.num_nodes}"
                )
            if not 1 <= self.num_nodes <= MAX_NODES:
                raise ValueError(f"num_nodes must be 1..{MAX_NODES}, got {self.num_nodes}")
        if self.retry_count < 0 or self.resubmission < 0:
            raise ValueError(
                f"retry_count and resubmission must be >= 0, got {self.retry_count}, "
                f"{self.resubmission}"
            )

    @property
    def job_name(self) -> str:
        """The job's name: flow, step, task, run and attempt, so it is the same on every
        try of one submission and differs between submissions (ListJobs finds a job by
        it, e.g. when a run resumes after a submit whose answer was lost)."""
        parts = [self.flow, self.step, self.task_id, self.run_id, f"a{self.retry_count}"]
        if self.resubmission:
            parts.append(f"r{self.resubmission}")
        return sanitize_job_name(*parts)


#: Where offloaded command payloads are stored, relative to the datastore root.
PAYLOAD_FOLDER = f"{CODE_FOLDER}/payloads"


@dataclass(frozen=True)
class Offload:
    """Bytes the caller must upload to ``key`` (relative to the datastore root; ``url`` is
    its ``s3://`` form) before submitting the job."""

    url: str
    key: str
    payload: bytes


@dataclass(frozen=True)
class SubmitJobRequest:
    """The ``SubmitJob`` keyword arguments, plus an offload when the overrides were too big."""

    body: Mapping[str, Any] = field(hash=False)
    offload: Offload | None = None

    def kwargs(self) -> dict[str, Any]:
        """A fresh deep copy of the request, ready for ``client.submit_job``."""
        copied: dict[str, Any] = json.loads(json.dumps(self.body))
        return copied


_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_JOB_NAME_DASHES = re.compile(r"-{2,}")
JOB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_JOB_NAME_MAX = 128


def sanitize_job_name(*parts: str) -> str:
    """A Batch job name from ``parts`` (joined by ``-``): deterministic, never empty,
    matching ``^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$``.

    Runs of other characters (and of dashes) become one ``-``; a name cut to 128
    characters ends with 8 hex digits of the original's hash so long names stay distinct.
    """
    raw = "-".join(parts)
    name = _JOB_NAME_DASHES.sub("-", _JOB_NAME_BAD.sub("-", raw)).lstrip("-_").rstrip("-")
    name = name or "batchwright"
    if len(name) > _JOB_NAME_MAX:
        suffix = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = name[: _JOB_NAME_MAX - len(suffix) - 1] + "-" + suffix
    return name


_TAG_VALUE_BAD = re.compile(r"[^\w\s.:/=+\-@]")


def _tag_value(text: str) -> str:
    # Our own values come from names and ids; keep them within AWS's tag rules.
    return _TAG_VALUE_BAD.sub("_", text)[:MAX_TAG_VALUE_LENGTH] or "_"


def job_tags(options: BatchOptions, invocation: TaskInvocation) -> dict[str, str]:
    """Tags of a job: the user's ``aws_batch_tags`` plus flow, run, step, task, attempt.

    :meth:`BatchOptions.from_attributes` already keeps the total within 50.
    """
    ours = {
        TAG_PREFIX + "flow": invocation.flow,
        TAG_PREFIX + "run": invocation.run_id,
        TAG_PREFIX + "step": invocation.step,
        TAG_PREFIX + "task": invocation.task_id,
        TAG_PREFIX + "attempt": str(invocation.retry_count),
    }
    return {**options.tags, **{k: _tag_value(v) for k, v in ours.items()}}


def _env_list(environment: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": environment[k]} for k in sorted(environment)]


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _placement(invocation: TaskInvocation, overrides: dict[str, Any]) -> dict[str, Any]:
    """Where the container overrides go in the request: ``containerOverrides`` (with
    ``arrayProperties`` for an array job), or, for a multi-node job, the node overrides of
    the definition's one node range with the node count."""
    if invocation.num_nodes is not None:
        if invocation.node_instance_type:
            overrides = {**overrides, "instanceType": invocation.node_instance_type}
        return {
            "nodeOverrides": {
                "numNodes": invocation.num_nodes,
                "nodePropertyOverrides": [
                    {"targetNodes": ALL_NODES, "containerOverrides": overrides}
                ],
            }
        }
    placed: dict[str, Any] = {"containerOverrides": overrides}
    if invocation.array_size is not None:
        placed["arrayProperties"] = {"size": invocation.array_size}
    return placed


def build_submit_job(
    options: BatchOptions,
    target: QueueTarget,
    invocation: TaskInvocation,
    definition: JobDefinitionRequest,
    *,
    offload_root: str | None = None,
) -> tuple[SubmitJobRequest, tuple[SpecNotice, ...]]:
    """The ``SubmitJob`` request of one task, and the notices raised building it.

    A single or array job carries its command, environment and resources in
    ``containerOverrides``; a multi-node job (``invocation.num_nodes``) carries the same
    values in ``nodeOverrides``: its node count and, for the definition's one node range
    (every node), the container overrides.

    When the command and environment would exceed the overrides limit (8 KiB) or the
    request Batch's 30 KiB, they move into an :class:`Offload` under ``offload_root`` (the
    datastore root, ``s3://bucket/prefix``), at ``code/payloads/<sha256>.json``, and the
    command becomes a bootstrap that fetches them and checks their SHA-256; only the AWS
    variables the bootstrap itself needs stay in the request. The limits apply the same
    way to a multi-node job's node container overrides.

    The options are not checked against the platform again: the definition it names was
    built by :func:`~batchwright.batch.definition.build_job_definition`, which did that.

    Raises:
        ValueError: a multi-node invocation with a single-node definition or the reverse
            (a caller bug).
        InvalidValue: the resources exceed Fargate's largest size.
        PlanError: the request is too big and no ``offload_root`` was given, or still too
            big after offloading.
    """
    if definition.multi_node != (invocation.num_nodes is not None):
        raise ValueError(
            f"definition {definition.name} is "
            f"{'multi-node' if definition.multi_node else 'single-node'} but the invocation "
            f"has num_nodes={invocation.num_nodes}"
        )
    resources = resolve_resources(options, target)
    environment = job_environment(invocation.environment)
    command = list(invocation.command)
    tags = job_tags(options, invocation)

    def request_for(cmd: list[str], env: Mapping[str, str]) -> tuple[dict[str, Any], bool]:
        """The body carrying ``cmd`` and ``env``, and whether it fits Batch's limits."""
        overrides: dict[str, Any] = {
            "command": cmd,
            "environment": _env_list(env),
            "resourceRequirements": resources.requirements(),
        }
        body: dict[str, Any] = {
            "jobName": invocation.job_name,
            "jobQueue": target.queue,
            "jobDefinition": definition.name,
            **_placement(invocation, overrides),
            "tags": tags,
            "propagateTags": True,
        }
        fits = (
            _size({"command": overrides["command"], "environment": overrides["environment"]})
            <= MAX_OVERRIDES_BYTES
            and _size(body) <= MAX_SUBMIT_BYTES
        )
        return body, fits

    body, fits = request_for(command, environment)
    if fits:
        return SubmitJobRequest(body=body), resources.notices
    where = f"{options.location}, task '{invocation.task_id}'"
    if offload_root is None or not offload_root.startswith("s3://"):
        raise PlanError(
            f"{where}: the job's command and environment exceed AWS Batch's override limits "
            f"({MAX_OVERRIDES_BYTES} bytes) and no s3:// offload location was given."
        )
    payload = json.dumps(
        {"version": JOB_SPEC_VERSION, "command": command, "environment": environment},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    # The bootstrap needs the endpoint, region and (emulator only) credentials to fetch.
    transport = {k: v for k, v in environment.items() if k.startswith("AWS_")}
    digest = hashlib.sha256(payload).hexdigest()
    key = f"{PAYLOAD_FOLDER}/{digest}.json"
    url = f"{offload_root.rstrip('/')}/{key}"
    body, fits = request_for(offload_command(url, digest), transport)
    if not fits:
        raise PlanError(
            f"{where}: the job request exceeds AWS Batch's limits even after offloading."
        )
    return SubmitJobRequest(body=body, offload=Offload(url, key, payload)), resources.notices
