"""Contract 2, the job spec: checked ``@batch`` options + a queue -> AWS Batch requests.

Pure functions, no I/O. Given a step's :class:`~batchwright.batch.options.BatchOptions`,
the :class:`QueueTarget` it runs on and one :class:`TaskInvocation`, they return the
``RegisterJobDefinition`` and ``SubmitJob`` keyword arguments, valid against botocore's
Batch model.

The split between the two requests is the contract:

* the **job definition** holds what is fixed for a step on a platform (image, roles,
  devices, Linux parameters, logging, retry strategy, timeout). It is named
  ``batchwright-<content hash>`` after a hash of its canonical JSON, and the hash is also
  stored as a tag, so a backend registers each distinct definition once and reuses an
  active one by name;
* the **submission** holds what changes per task: command, environment, vCPU, memory and
  GPU (container overrides), the array size, and tags naming flow, run, step, task and
  attempt. Per-task values never change the definition's hash.

Overrides that would exceed Batch's size limits are moved out of the request into an
``Offload``: the caller uploads its bytes to the given S3 URL, and the job's command
becomes a short bootstrap that downloads it and runs the real command.

Everything that can be refused is refused here, before the first API call, with the
step, key, value and fix (options that do not exist on the queue's platform, Fargate
sizes beyond the largest, missing execution roles, too short timeouts).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from batchwright.batch import failures
from batchwright.batch.options import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    MAX_TAG_VALUE_LENGTH,
    TAG_PREFIX,
    BatchOptions,
)
from batchwright.environment.descriptor import (
    FARGATE_PLATFORMS,
    PLATFORMS,
    EnvironmentDescriptor,
    Platform,
    QueueDescription,
)
from batchwright.errors import InvalidValue, PlanError

#: Version of this contract; it is part of every definition's content hash.
JOB_SPEC_VERSION = 1


#: Job definition names are this prefix plus the content hash.
DEFINITION_NAME_PREFIX = "batchwright-"
#: Tag holding a definition's content hash (to find an active definition by content).
CONTENT_HASH_TAG = TAG_PREFIX + "content-hash"
#: Tag holding the contract version a definition was built with.
SPEC_VERSION_TAG = TAG_PREFIX + "job-spec-version"
#: Batch-side attempts per job: the first plus two retries for infrastructure faults only.
INFRASTRUCTURE_ATTEMPTS = 3
#: Batch refuses shorter ``attemptDurationSeconds``.
MIN_TIMEOUT_SECONDS = 60
#: Added to ``@timeout`` for Batch's own limit: the task enforces the timeout itself (and
#: records why it stopped, with the traceback); Batch's limit, counted from container
#: start, is the backstop for a hang outside the step (e.g. the code package download).
TIMEOUT_GRACE_SECONDS = 30
#: RegisterJobDefinition request limit.
MAX_DEFINITION_BYTES = 24 * 1024
#: Container overrides are effectively limited to this many bytes.
MAX_OVERRIDES_BYTES = 8 * 1024
#: SubmitJob request limit.
MAX_SUBMIT_BYTES = 30 * 1024
#: Array job sizes Batch accepts.
ARRAY_SIZE_RANGE = (2, 10_000)
#: The definition's command: every submission overrides it, so running the definition
#: bare fails loudly instead of doing something half-configured.
PLACEHOLDER_COMMAND = (
    "sh",
    "-c",
    "echo 'batchwright sets the command of each job when it submits it' >&2; exit 64",
)
#: Fargate log drivers.
FARGATE_LOG_DRIVERS = ("awslogs", "splunk")
#: The stream prefix of the awslogs driver when batchwright configures it.
LOG_STREAM_PREFIX = "batchwright"

#: Fargate's valid (vCPU, MiB) sizes, smallest first.
FARGATE_SIZES: tuple[tuple[float, int], ...] = (
    *((0.25, m) for m in (512, 1024, 2048)),
    *((0.5, m) for m in range(1024, 4096 + 1, 1024)),
    *((1, m) for m in range(2048, 8192 + 1, 1024)),
    *((2, m) for m in range(4096, 16384 + 1, 1024)),
    *((4, m) for m in range(8192, 30720 + 1, 1024)),
    *((8, m) for m in range(16384, 61440 + 1, 4096)),
    *((16, m) for m in range(32768, 122880 + 1, 8192)),
)

#: Variables that carry credentials; they never reach a job (see :func:`job_environment`).
CREDENTIAL_VARIABLES = frozenset(
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"]
)
#: Variables that point at files on the launching machine; meaningless in a container.
HOST_ONLY_VARIABLES = frozenset(["AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"])
#: Variables forwarded from the launching process besides the endpoints.
FORWARDED_VARIABLES = frozenset(["AWS_DEFAULT_REGION", "AWS_REGION"])


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueTarget:
    """The queue a step's jobs go to, and the environment's defaults for them.

    Only ``queue`` and ``platform`` are needed; the rest comes from the environment
    descriptor when there is one (:meth:`from_descriptor`).
    """

    #: Queue name or ARN, as SubmitJob takes it.
    queue: str
    platform: Platform
    #: Job role used when the step names no ``iam_role``.
    job_role_arn: str | None = None
    #: Execution role used on Fargate when the step names no ``execution_role``.
    execution_role_arn: str | None = None
    #: Image used when the step names none.
    default_image: str | None = None
    #: Log group for the awslogs driver when the step names no ``log_driver``.
    log_group: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {PLATFORMS}, got {self.platform!r}")
        if not self.queue:
            raise ValueError("queue must not be empty")

    @property
    def is_fargate(self) -> bool:
        """Whether jobs on this queue run on Fargate or Fargate Spot."""
        return self.platform in FARGATE_PLATFORMS

    @classmethod
    def from_descriptor(
        cls, descriptor: EnvironmentDescriptor, queue: QueueDescription
    ) -> QueueTarget:
        """The target for one of the descriptor's queues, with the environment's defaults."""
        return cls(
            queue=queue.arn,
            platform=queue.platform,
            job_role_arn=descriptor.job_role_arn or None,
            execution_role_arn=descriptor.execution_role_arn or None,
            default_image=descriptor.default_image or None,
            log_group=descriptor.log_group or None,
            region=descriptor.region or None,
        )


@dataclass(frozen=True)
class TaskInvocation:
    """One task to submit: who it is and what it runs.

    Raises ``ValueError`` on construction for values only a caller bug can produce (an
    empty command, an array size Batch cannot take).
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
    #: Children of an array job (2..10,000), or ``None`` for a single job.
    array_size: int | None = None
    #: ``@timeout`` of the step in seconds, or ``None``.
    timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        if not self.command:
            raise ValueError("a task's command must not be empty")
        low, high = ARRAY_SIZE_RANGE
        if self.array_size is not None and not low <= self.array_size <= high:
            raise ValueError(f"array_size must be {low}..{high}, got {self.array_size}")
        if self.retry_count < 0:
            raise ValueError(f"retry_count must be >= 0, got {self.retry_count}")


# --- outputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """Something the user should know about a request that was still built (e.g. a
    Fargate size rounded up). The CLI shows these; library code never prints them."""

    step: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"step '{self.step}', @batch: {self.message}"


@dataclass(frozen=True)
class JobDefinitionRequest:
    """The ``RegisterJobDefinition`` keyword arguments, named by their content hash."""

    name: str
    content_hash: str
    body: Mapping[str, Any] = field(hash=False)

    def kwargs(self) -> dict[str, Any]:
        """A fresh deep copy of the request, ready for ``client.register_job_definition``."""
        copied: dict[str, Any] = json.loads(json.dumps(self.body))
        return copied


@dataclass(frozen=True)
class Offload:
    """Bytes the caller must upload to ``url`` before submitting the job."""

    url: str
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


@dataclass(frozen=True)
class JobSpec:
    """Both requests for one task, and the notices raised while building them."""

    definition: JobDefinitionRequest
    submit: SubmitJobRequest
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class ResourceRequest:
    """The vCPU / memory / GPU values of a submission, as Batch spells them."""

    vcpus: str
    memory: int
    gpu: int
    notices: tuple[Notice, ...] = ()

    def requirements(self) -> list[dict[str, str]]:
        """The ``resourceRequirements`` list (GPU only when asked for)."""
        out = [{"type": "VCPU", "value": self.vcpus}, {"type": "MEMORY", "value": str(self.memory)}]
        if self.gpu:
            out.append({"type": "GPU", "value": str(self.gpu)})
        return out


# --- platform checks and sizes ---------------------------------------------------------


def _where(options: BatchOptions) -> str:
    return f"{options.location}, @batch"


def check_platform(options: BatchOptions, target: QueueTarget) -> None:
    """Refuses options that do not exist on the target's platform.

    Raises:
        InvalidValue: e.g. ``gpu`` on Fargate or ``ephemeral_storage`` on EC2.
    """
    where = _where(options)
    if target.is_fargate:
        not_on_fargate: list[tuple[str, Any, bool]] = [
            ("gpu", options.gpu, options.gpu > 0),
            ("inferentia", options.inferentia, options.inferentia > 0),
            ("efa", options.efa, options.efa > 0),
            ("shared_memory", options.shared_memory, options.shared_memory is not None),
            ("max_swap", options.max_swap, options.max_swap is not None),
            ("swappiness", options.swappiness, options.swappiness is not None),
            ("use_tmpfs", options.use_tmpfs, options.use_tmpfs),
            ("privileged", options.privileged, options.privileged),
        ]
        for key, value, used in not_on_fargate:
            if used:
                raise InvalidValue(
                    where=where,
                    key=key,
                    value=value,
                    problem=f"is not available on Fargate (queue '{target.queue}')",
                    fix=f"Remove {key}, or send the step to an EC2 or Spot queue "
                    "with @batch(queue=...).",
                )
        if options.log_driver is not None and options.log_driver not in FARGATE_LOG_DRIVERS:
            raise InvalidValue(
                where=where,
                key="log_driver",
                value=options.log_driver,
                problem=f"is not available on Fargate (queue '{target.queue}')",
                fix=f"Use one of {', '.join(FARGATE_LOG_DRIVERS)}, or an EC2 queue.",
            )
        if options.execution_role is None and target.execution_role_arn is None:
            raise InvalidValue(
                where=where,
                key="execution_role",
                value=None,
                problem=f"is required on Fargate (queue '{target.queue}'); the environment "
                "has none",
                fix="Give @batch(execution_role='arn:aws:iam::<account>:role/<name>').",
            )
    else:
        if options.ephemeral_storage is not None:
            raise InvalidValue(
                where=where,
                key="ephemeral_storage",
                value=options.ephemeral_storage,
                problem=f"is Fargate only (queue '{target.queue}' is {target.platform})",
                fix="Remove ephemeral_storage (EC2 jobs use the instance's disk), "
                "or use a Fargate queue.",
            )
        if not float(options.cpu).is_integer():
            raise InvalidValue(
                where=where,
                key="cpu",
                value=options.cpu,
                problem=f"is a fraction; EC2 jobs (queue '{target.queue}') take whole vCPUs",
                fix=f"Use cpu={math.ceil(options.cpu)}, or a Fargate queue for fractional vCPUs.",
            )


def _vcpu_text(vcpus: float) -> str:
    return str(int(vcpus)) if float(vcpus).is_integer() else str(vcpus)


def fargate_size(cpu: float, memory: int) -> tuple[float, int] | None:
    """The smallest valid Fargate size with at least ``cpu`` vCPUs and ``memory`` MiB, or
    ``None`` when the request exceeds the largest size."""
    for vcpus, mib in FARGATE_SIZES:
        if vcpus >= cpu and mib >= memory:
            return vcpus, mib
    return None


def resolve_resources(options: BatchOptions, target: QueueTarget) -> ResourceRequest:
    """The per-task resource values for the target's platform.

    On Fargate a size between valid pairs is rounded up to the next valid pair, with a
    :class:`Notice`; a size beyond the largest pair is refused naming the nearest one.
    """
    if not target.is_fargate:
        return ResourceRequest(_vcpu_text(options.cpu), options.memory, options.gpu)
    size = fargate_size(options.cpu, options.memory)
    if size is None:
        largest_cpu, largest_memory = FARGATE_SIZES[-1]
        nearest = fargate_size(min(options.cpu, largest_cpu), min(options.memory, largest_memory))
        assert nearest is not None  # clamped into range, so a size exists
        key = "cpu" if options.cpu > largest_cpu else "memory"
        value = options.cpu if key == "cpu" else options.memory
        raise InvalidValue(
            where=_where(options),
            key=key,
            value=value,
            problem=(
                f"exceeds Fargate's largest size ({_vcpu_text(largest_cpu)} vCPU / "
                f"{largest_memory} MiB) on queue '{target.queue}'"
            ),
            fix=(
                f"The nearest valid size is cpu={_vcpu_text(nearest[0])}, memory={nearest[1]}; "
                "or use an EC2 queue for larger jobs."
            ),
        )
    vcpus, mib = size
    notices: tuple[Notice, ...] = ()
    if vcpus != options.cpu or mib != options.memory:
        notices = (
            Notice(
                options.step,
                "cpu" if vcpus != options.cpu else "memory",
                f"Fargate has no {_vcpu_text(options.cpu)} vCPU / {options.memory} MiB size; "
                f"rounded up to {_vcpu_text(vcpus)} vCPU / {mib} MiB.",
            ),
        )
    return ResourceRequest(_vcpu_text(vcpus), mib, 0, notices)


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


def build_job_definition(
    options: BatchOptions, target: QueueTarget, *, timeout_seconds: int | None = None
) -> JobDefinitionRequest:
    """The ``RegisterJobDefinition`` request of a step on a queue's platform.

    Per-task values (command, environment, vCPU, memory, GPU) are not in it: the
    definition's resource requirements are the fixed defaults, overridden per job, so
    steps that differ only in those share one definition.

    Raises:
        InvalidValue: an option the platform lacks, a missing Fargate execution role, a
            timeout under 60 seconds.
        PlanError: the definition would exceed Batch's 24 KiB limit.
    """
    check_platform(options, target)
    timeout = check_timeout(options.step, timeout_seconds, flow=options.flow)
    fargate = target.is_fargate
    container: dict[str, Any] = {
        "image": options.image or target.default_image or default_image(),
        "command": list(PLACEHOLDER_COMMAND),
        # Fixed defaults (a valid Fargate size too); every submission overrides them.
        "resourceRequirements": [
            {"type": "VCPU", "value": _vcpu_text(DEFAULT_CPU)},
            {"type": "MEMORY", "value": str(DEFAULT_MEMORY)},
        ],
    }
    job_role = options.iam_role or target.job_role_arn
    if job_role:
        container["jobRoleArn"] = job_role
    execution_role = options.execution_role or (target.execution_role_arn if fargate else None)
    if execution_role:
        container["executionRoleArn"] = execution_role
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
        # Fargate tasks in subnets without a NAT need a public IP to pull images and
        # reach S3; the descriptor does not say which subnets have one.
        container["networkConfiguration"] = {"assignPublicIp": "ENABLED"}
    body: dict[str, Any] = {
        "jobDefinitionName": "",
        "type": "container",
        "platformCapabilities": ["FARGATE" if fargate else "EC2"],
        "containerProperties": container,
        "retryStrategy": retry_strategy(),
        "propagateTags": True,
    }
    if timeout is not None:
        body["timeout"] = {"attemptDurationSeconds": timeout + TIMEOUT_GRACE_SECONDS}
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


# --- the submission --------------------------------------------------------------------

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


def is_loopback_endpoint(url: str | None) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    if not url:
        return False
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials_allowed(environment: Mapping[str, str]) -> bool:
    """Whether credentials may travel in a job's environment.

    Only for the local emulator: ``AWS_ENDPOINT_URL`` is set and it, and every other
    ``AWS_ENDPOINT_URL_*`` set, is a loopback address. Real AWS jobs get credentials
    from their job role, never from variables.
    """
    endpoints = {k: v for k, v in environment.items() if k.startswith("AWS_ENDPOINT_URL")}
    return "AWS_ENDPOINT_URL" in endpoints and all(
        is_loopback_endpoint(v) for v in endpoints.values()
    )


def job_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` made safe for a job: credentials removed unless
    :func:`credentials_allowed`; variables naming host files (``AWS_PROFILE``…) removed."""
    keep_credentials = credentials_allowed(environment)
    return {
        k: v
        for k, v in environment.items()
        if k not in HOST_ONLY_VARIABLES and (keep_credentials or k not in CREDENTIAL_VARIABLES)
    }


def forwarded_aws_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The AWS variables of the launching process a job should see: the endpoints
    (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``…), the region, and the credentials
    only when :func:`credentials_allowed` (the local emulator's test credentials)."""
    picked = {
        k: v
        for k, v in environ.items()
        if k.startswith("AWS_ENDPOINT_URL") or k in FORWARDED_VARIABLES or k in CREDENTIAL_VARIABLES
    }
    return job_environment(picked)


def _env_list(environment: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": environment[k]} for k in sorted(environment)]


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def build_submit_job(
    options: BatchOptions,
    target: QueueTarget,
    invocation: TaskInvocation,
    definition: JobDefinitionRequest,
    *,
    offload_url: str | None = None,
) -> tuple[SubmitJobRequest, tuple[Notice, ...]]:
    """The ``SubmitJob`` request of one task, and the notices raised building it.

    When the command and environment would exceed the overrides limit (8 KiB) or the
    request Batch's 30 KiB, they move into an :class:`Offload` for ``offload_url`` (an
    ``s3://`` URL the caller uploads to) and the command becomes a bootstrap that fetches
    them; only the AWS variables the bootstrap itself needs stay in the request.

    Raises:
        InvalidValue: the resources do not fit the platform.
        PlanError: the request is too big and no ``offload_url`` was given, or still too
            big after offloading.
    """
    check_platform(options, target)
    resources = resolve_resources(options, target)
    environment = job_environment(invocation.environment)
    command = list(invocation.command)
    tags = job_tags(options, invocation)

    def body_for(cmd: list[str], env: Mapping[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "jobName": sanitize_job_name(invocation.flow, invocation.step, invocation.task_id),
            "jobQueue": target.queue,
            "jobDefinition": definition.name,
            "containerOverrides": {
                "command": cmd,
                "environment": _env_list(env),
                "resourceRequirements": resources.requirements(),
            },
            "tags": tags,
            "propagateTags": True,
        }
        if invocation.array_size is not None:
            body["arrayProperties"] = {"size": invocation.array_size}
        return body

    def fits(body: dict[str, Any]) -> bool:
        overrides = body["containerOverrides"]
        return (
            _size({"command": overrides["command"], "environment": overrides["environment"]})
            <= MAX_OVERRIDES_BYTES
            and _size(body) <= MAX_SUBMIT_BYTES
        )

    body = body_for(command, environment)
    if fits(body):
        return SubmitJobRequest(body=body), resources.notices
    where = f"{options.location}, task '{invocation.task_id}'"
    if offload_url is None or not offload_url.startswith("s3://"):
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
    body = body_for(["python3", "-c", OFFLOAD_BOOTSTRAP, offload_url], transport)
    if not fits(body):
        raise PlanError(
            f"{where}: the job request exceeds AWS Batch's limits even after offloading."
        )
    return SubmitJobRequest(body=body, offload=Offload(offload_url, payload)), resources.notices


def build_job_spec(
    options: BatchOptions,
    target: QueueTarget,
    invocation: TaskInvocation,
    *,
    offload_url: str | None = None,
) -> JobSpec:
    """Both requests of one task; see :func:`build_job_definition` and
    :func:`build_submit_job` for what each holds and refuses."""
    definition = build_job_definition(options, target, timeout_seconds=invocation.timeout_seconds)
    submit, notices = build_submit_job(
        options, target, invocation, definition, offload_url=offload_url
    )
    return JobSpec(definition=definition, submit=submit, notices=notices)


# --- container commands ----------------------------------------------------------------

# Shared head of the bootstraps: needs only python3; installs boto3 into a private
# directory when the image lacks it (``--target`` also sidesteps PEP 668 images).
_BOOTSTRAP_HEAD = """\
import importlib.util, json, os, subprocess, sys, tarfile
work = os.environ.get("BATCHWRIGHT_WORKDIR") or "/tmp/batchwright"
deps = os.path.join(work, "deps")
os.makedirs(work, exist_ok=True)
if importlib.util.find_spec("boto3") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "--target", deps, "boto3"])
    sys.path.insert(0, deps)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [deps, os.environ.get("PYTHONPATH")]))
import boto3
def s3_object(url):
    bucket, _, key = url[len("s3://"):].partition("/")
    # Old boto3 (e.g. Debian's 1.26) ignores AWS_ENDPOINT_URL: pass it explicitly.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    s3 = boto3.client("s3", endpoint_url=endpoint or None)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
"""

#: Runs ``python -m batchwright.task ARGS`` from a code package: argv is the package's
#: ``s3://`` URL then the entrypoint's arguments. The package is a tar archive (any
#: compression) whose root goes on ``PYTHONPATH`` and becomes the working directory.
CODE_PACKAGE_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
code = os.path.join(work, "code")
os.makedirs(code, exist_ok=True)
archive = os.path.join(work, "code.tar")
with open(archive, "wb") as f:
    f.write(s3_object(sys.argv[1]))
with tarfile.open(archive) as t:
    t.extractall(code, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
os.chdir(code)
os.execv(sys.executable, [sys.executable, "-m", "batchwright.task", *sys.argv[2:]])
"""
)

#: Runs an offloaded command: argv is the payload's ``s3://`` URL; the payload is JSON
#: ``{"command": [...], "environment": {...}}``.
OFFLOAD_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
payload = json.loads(s3_object(sys.argv[1]))
os.environ.update(payload["environment"])
os.execvp(payload["command"][0], payload["command"])
"""
)


def command_for_task(code_package_url: str, entrypoint_args: Sequence[str]) -> tuple[str, ...]:
    """The container command of a task: fetch the code package from ``code_package_url``
    (``s3://bucket/key``), unpack it, make sure boto3 is importable, and run
    ``python -m batchwright.task`` with ``entrypoint_args``.

    The image needs only ``python3`` (and boto3 or pip).
    """
    if not code_package_url.startswith("s3://") or "/" not in code_package_url[len("s3://") :]:
        raise ValueError(f"code_package_url must be s3://bucket/key, got {code_package_url!r}")
    return ("python3", "-c", CODE_PACKAGE_BOOTSTRAP, code_package_url, *entrypoint_args)
