"""The ``@batch`` options: one table, one frozen value, validated in one place.

Every option is declared once, as a field of :class:`BatchOptions` whose metadata is its
row of the table (:class:`Option`): its default, its check and the platform it is limited
to. Everything else is derived from those rows: the accepted keys (:data:`OPTION_KEYS`),
the checks, which options imply EC2 or Fargate, the platform refusals of the job spec and
the defaults and checks of ``@resources``. ``--with batch:key=value`` text is parsed by
the one ``--with`` parser (:func:`batchwright.decorators.parse_value`) before it gets here,
and is then checked like code.

:meth:`BatchOptions.from_attributes` is the only door in. It takes what the step's code
declared (``@batch(...)``), the step's ``@resources`` values and the ``--with batch:k=v``
overrides of the command line, and either returns a complete, checked
:class:`BatchOptions` or raises :class:`~batchwright.errors.InvalidValue` naming the
step, the key, the value and the fix. Options no single queue could honour together (one
that exists on Fargate only with one that exists on EC2 only, such as ``ephemeral_storage``
with ``gpu``) are refused here too: that needs no environment. Checks that need the
queue's platform (Fargate or EC2) live in :mod:`batchwright.batch.platforms`, which reads
the same rows.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from batchwright.batch.jobenv import (
    RESERVED_VARIABLE_PREFIXES,
    RESERVED_VARIABLES,
    is_reserved_variable,
)
from batchwright.errors import InvalidValue

#: vCPUs of a step that names neither ``@batch(cpu=...)`` nor ``@resources(cpu=...)``.
DEFAULT_CPU: float = 1
#: Memory (MiB) of a step that names neither ``@batch(memory=...)`` nor ``@resources``.
DEFAULT_MEMORY: int = 4096
#: GPUs of a step that asks for none.
DEFAULT_GPU: int = 0
#: Where the tmpfs mount goes unless ``tmpfs_path`` says otherwise.
DEFAULT_TMPFS_PATH = "/batchwright_temp"
#: Fargate's ephemeral storage range in GiB (below 21 Fargate gives its default 20 GiB).
EPHEMERAL_STORAGE_RANGE = (21, 200)
#: The log drivers Fargate jobs take.
FARGATE_LOG_DRIVERS = ("awslogs", "splunk")
#: The log drivers the Batch API accepts (botocore's ``LogDriver`` enum).
LOG_DRIVERS = (
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "awsfirelens",
)

#: Prefix of the tags batchwright puts on every job; users may not use it.
TAG_PREFIX = "batchwright:"
#: The tags every job carries (see :func:`batchwright.batch.submission.job_tags`).
JOB_TAG_KEYS = tuple(TAG_PREFIX + k for k in ("flow", "run", "step", "task", "attempt"))
#: Batch's limit on tags per resource, ours included.
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
# AWS tag character set: letters, digits, white space and _ . : / = + - @ (Unicode letters too).
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")

#: The job-definition platform an option is limited to.
PlatformKind = Literal["EC2", "FARGATE"]
#: Checks one value: ``(key, value, where) -> normalised value``, or raises InvalidValue.
Check = Callable[[str, Any, str], Any]


# --- the per-key checks ---------------------------------------------------------------


def _fail(where: str, key: str, value: Any, problem: str, fix: str) -> InvalidValue:
    return InvalidValue(where=where, key=key, value=value, problem=problem, fix=fix)


def _int(
    key: str, value: Any, where: str, low: int, high: int | None = None, unit: str = ""
) -> int:
    """A whole number from ``low`` to ``high``; ``unit`` (``MiB``) names what it counts."""
    allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
    counted = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(
            where,
            key,
            value,
            "is not an integer",
            f"Give a whole number{f' of {unit}' if unit else ''}, {allowed}{counted}.",
        )
    if value < low or (high is not None and value > high):
        give = f"Give {allowed}{counted}." if unit else f"Give a value {allowed}."
        raise _fail(where, key, value, "is out of range", give)
    return value


def _cpu(key: str, value: Any, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise _fail(
            where, key, value, "is not a number", "Give the vCPUs as a number, e.g. 2 or 0.5."
        )
    if value <= 0:
        raise _fail(where, key, value, "is out of range", "Give more than 0 vCPUs.")
    # Whole numbers stay ints so requests read "2", not "2.0".
    return int(value) if float(value).is_integer() else float(value)


def _bool(key: str, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(
            where,
            key,
            value,
            "is not a boolean",
            "Give True or False (on the command line: true/false, yes/no or on/off).",
        )
    return value


#: The image reference messages give as an example.
IMAGE_EXAMPLE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.4"
#: Docker's limit on the length of an image name (registry and path, without tag).
MAX_IMAGE_NAME_LENGTH = 255
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$", re.ASCII
)
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_PATH_PART}(?:/{_PATH_PART})*$", re.ASCII)
_IMAGE_TAG = re.compile(r"^\w[\w.-]{0,127}$", re.ASCII)
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_IMAGE_FIX = (
    f"Give an image reference such as '{IMAGE_EXAMPLE}' or 'python:3.12-slim': "
    "[registry[:port]/]path[:tag][@sha256:<hex>], the path in lowercase letters and digits "
    "separated by '/', '.', '_', '__' or '-'."
)
#: A job queue name: what CreateJobQueue accepts (and every queue key of an environment).
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_QUEUE_ARN = re.compile(r"^arn:aws[a-z-]*:batch:[a-z0-9-]*:[0-9]*:job-queue/[A-Za-z0-9_-]{1,128}$")


def split_image(reference: str) -> tuple[str | None, str, str | None, str | None]:
    """``(registry, repository, tag, digest)`` of an image reference, split as Docker does:
    the first path part is a registry only when it holds a ``.`` or ``:`` or is
    ``localhost`` (``python:3.12`` is the repository ``python``, tag ``3.12``)."""
    rest, at, digest = reference.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    name, tag = (rest[:colon], rest[colon + 1 :]) if colon > slash else (rest, None)
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, remainder, tag, digest if at else None
    return None, name, tag, digest if at else None


def _image(key: str, value: Any, where: str) -> str:
    """An image reference by Docker's grammar (``distribution/reference``):
    ``[registry[:port]/]path[:tag][@algorithm:hex]``; the path is lowercase. Anything else
    would only fail when the job starts, as ``CannotPullContainerError``."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise _fail(where, key, value, "is not a Docker image reference", _IMAGE_FIX)
    registry, repository, tag, digest = split_image(value)
    problem = ""
    fix = _IMAGE_FIX
    if digest is not None and not _DIGEST.match(digest):
        problem = f"has the digest {digest!r}, which is not <algorithm>:<hex, 32 digits or more>"
    elif tag is not None and not _IMAGE_TAG.match(tag):
        problem = (
            f"has the tag {tag!r}; a tag is 1 to 128 letters, digits, '_', '.' or '-' and "
            "does not start with '.' or '-'"
        )
    elif registry is not None and not _REGISTRY.match(registry):
        problem = f"has the registry {registry!r}, which is not a host name with an optional port"
    elif repository != repository.lower() and _REPOSITORY.match(repository.lower()):
        problem = (
            f"has capital letters in its repository {repository!r}; Docker takes lowercase only"
        )
        lowered = value.replace(repository, repository.lower(), 1)
        fix = f"Write the repository in lowercase: {lowered!r}."
    elif not _REPOSITORY.match(repository):
        problem = (
            "is not a Docker image reference"
            if repository == value
            else f"has the repository path {repository!r}, which Docker does not allow"
        )
    elif len(f"{registry}/{repository}" if registry else repository) > MAX_IMAGE_NAME_LENGTH:
        problem = f"has a name longer than the {MAX_IMAGE_NAME_LENGTH} characters Docker allows"
    if problem:
        raise _fail(where, key, value, problem, fix)
    return value


def _queue(key: str, value: Any, where: str) -> str:
    """A queue key or name (what CreateJobQueue accepts) or a job queue ARN. Whether the
    environment has it is decided by routing, which knows the environment."""
    if not isinstance(value, str) or not (_QUEUE_NAME.match(value) or _QUEUE_ARN.match(value)):
        raise _fail(
            where,
            key,
            value,
            "is neither a queue key, a job queue name nor a job queue ARN",
            "Give the key of one of the environment's queues (e.g. 'cpu'), a queue name "
            "(1 to 128 letters, digits, '-' or '_') or the queue's ARN "
            "('arn:aws:batch:us-east-1:123456789012:job-queue/my-queue').",
        )
    return value


def _role(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("arn:") or ":role/" not in value:
        raise _fail(
            where,
            key,
            value,
            "is not an IAM role ARN",
            "Give the role's full ARN, e.g. 'arn:aws:iam::123456789012:role/my-job-role'.",
        )
    return value


def _path(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise _fail(where, key, value, "is not an absolute path", "Give a path such as '/scratch'.")
    return value


def _string_pairs(key: str, value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _fail(
            where,
            key,
            value,
            "is not a mapping",
            "Give a dict of strings, e.g. {'team': 'ml'} (on the command line, as JSON: "
            f'batch:{key}=\'{{"team":"ml"}}\').',
        )
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _fail(
                where,
                key,
                dict(value),
                f"has the entry {k!r}: {v!r}, which is not string to string",
                f"Give every key and value as a string, e.g. {{{str(k)!r}: {str(v)!r}}}.",
            )
    return tuple(sorted(value.items()))


def _tags(key: str, value: Any, where: str) -> tuple[tuple[str, str], ...]:
    pairs = _string_pairs(key, value, where)
    room = MAX_TAGS - len(JOB_TAG_KEYS)
    if len(pairs) > room:
        raise _fail(
            where,
            key,
            dict(value),
            f"has {len(pairs)} tags; a job carries at most {MAX_TAGS}, "
            f"{len(JOB_TAG_KEYS)} of them batchwright's",
            f"Keep at most {room} tags.",
        )
    for k, v in pairs:
        problem = fix = ""
        if not k or len(k) > MAX_TAG_KEY_LENGTH:
            problem = f"has the tag key {k!r} of {len(k)} characters"
            fix = f"Use keys of 1 to {MAX_TAG_KEY_LENGTH} characters."
        elif len(v) > MAX_TAG_VALUE_LENGTH:
            problem = f"has a value of {len(v)} characters under {k!r}"
            fix = f"Use values of at most {MAX_TAG_VALUE_LENGTH} characters."
        elif k.lower().startswith("aws:"):
            problem = f"has the tag key {k!r}; the 'aws:' prefix is reserved by AWS"
            fix = "Rename the key without the 'aws:' prefix."
        elif k.startswith(TAG_PREFIX):
            problem = f"has the tag key {k!r}; the '{TAG_PREFIX}' prefix is batchwright's"
            fix = f"Rename the key without the '{TAG_PREFIX}' prefix."
        elif not _TAG_TEXT.match(k) or not _TAG_TEXT.match(v):
            problem = f"has the tag {k!r}: {v!r} with characters AWS does not allow"
            fix = "Use letters, digits, spaces and _ . : / = + - @ only."
        if problem:
            raise _fail(where, key, dict(value), problem, fix)
    return pairs


#: An environment variable name a secret may take (what shells and ECS accept).
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$", re.ASCII)
#: A Secrets Manager secret's ARN, optionally with the ``:json-key:version-stage:version-id``
#: suffix ECS takes (each part may be empty: ``...:secret:db-AbCdEf:password::``).
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+"
    r"(?::[^:\s]*:[^:\s]*:[^:\s]*)?$",
    re.ASCII,
)
#: An SSM Parameter Store parameter's ARN (``parameter/team/token`` for ``/team/token``).
_PARAMETER_ARN = re.compile(
    r"^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_.\-/]+$", re.ASCII
)
#: An SSM parameter of the job's region, by its path name.
_PARAMETER_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]+$", re.ASCII)
#: The example the ``secrets`` messages give.
SECRETS_EXAMPLE = {
    "DB_PASSWORD": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
    "API_TOKEN": "/team/token",
}


def secret_kind(reference: str) -> str | None:
    """``"secretsmanager"`` or ``"ssm"`` for a reference ECS can fetch into a variable,
    else ``None``."""
    if _SECRET_ARN.match(reference):
        return "secretsmanager"
    if _PARAMETER_ARN.match(reference) or _PARAMETER_NAME.match(reference):
        return "ssm"
    return None


def _secrets(key: str, value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Environment variable names to Secrets Manager secrets or SSM parameters, which ECS
    fetches into the job's environment when it starts it (and only then)."""
    if not isinstance(value, Mapping):
        raise _fail(
            where,
            key,
            value,
            "is not a mapping",
            f"Give a dict of environment variable names to secret ARNs or SSM parameters, "
            f"e.g. {SECRETS_EXAMPLE!r} (on the command line, as JSON: "
            f'batch:{key}=\'{{"API_TOKEN":"/team/token"}}\').',
        )
    for name, reference in value.items():
        problem = fix = ""
        if not isinstance(name, str) or not _VARIABLE_NAME.match(name):
            problem = f"has the variable name {name!r}, which is not an environment variable name"
            fix = "Use letters, digits and '_', not starting with a digit, e.g. 'DB_PASSWORD'."
        elif is_reserved_variable(name):
            problem = (
                f"has the variable name {name!r}, which AWS Batch, ECS or batchwright sets in "
                "every job"
            )
            prefixes = " or ".join(RESERVED_VARIABLE_PREFIXES)
            names = ", ".join(sorted(RESERVED_VARIABLES))
            fix = (
                f"Rename the variable (e.g. 'APP_{name}'): names starting with {prefixes}, and "
                f"{names}, are reserved."
            )
        elif not isinstance(reference, str) or secret_kind(reference) is None:
            problem = (
                f"has {name!r}: {reference!r}, which is neither a Secrets Manager secret ARN nor "
                "an SSM parameter"
            )
            fix = (
                "Give a secret's ARN ('arn:aws:secretsmanager:<region>:<account>:secret:<name>', "
                "optionally followed by ':<json-key>:<version-stage>:<version-id>'), a "
                "parameter's ARN ('arn:aws:ssm:<region>:<account>:parameter/<name>') or the name "
                "of a parameter in the job's region, starting with '/'. Never the secret itself."
            )
        if problem:
            raise _fail(where, key, dict(value), problem, fix)
    return tuple(sorted(value.items()))


def _log_driver(key: str, value: Any, where: str) -> str:
    if value not in LOG_DRIVERS:
        raise _fail(
            where,
            key,
            value,
            "is not a log driver Batch knows",
            f"Use one of {', '.join(LOG_DRIVERS)}.",
        )
    return str(value)


def _at_least(low: int, high: int | None = None, unit: str = "") -> Check:
    def check(key: str, value: Any, where: str) -> int:
        return _int(key, value, where, low, high, unit)

    return check


# --- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One row of the ``@batch`` option table."""

    name: str
    default: Any
    check: Check
    #: The only platform whose jobs can use the option (``None``: every platform). A value
    #: other than the default then implies that platform and is refused on the other.
    only_on: PlatformKind | None = None
    #: The fix suggested when the option is used on the other platform.
    off_platform_fix: str = ""

    def is_used(self, value: Any) -> bool:
        """Whether ``value`` asks for something (differs from the default)."""
        return bool(value != self.default)


def _option(
    default: Any, check: Check, *, only_on: PlatformKind | None = None, fix: str = ""
) -> Any:
    """A :class:`BatchOptions` field carrying its table row (completed with its name)."""
    row = {"default": default, "check": check, "only_on": only_on, "off_platform_fix": fix}
    return field(default=default, metadata={"option": row})


_EC2_FIX = "Remove {key}, or send the step to an EC2 or Spot queue with @batch(queue=...)."


@dataclass(frozen=True)
class BatchOptions:
    """The checked ``@batch`` options of one step, every default filled in.

    Build it with :meth:`from_attributes`; the constructor itself does not validate.
    Mappings are stored as sorted tuples of pairs so the value stays hashable.
    """

    step: str
    #: vCPUs; fractions are meaningful on Fargate only (0.25, 0.5).
    cpu: float = _option(DEFAULT_CPU, _cpu)
    #: Memory in MiB.
    memory: int = _option(DEFAULT_MEMORY, _at_least(4, unit="MiB"))
    gpu: int = _option(DEFAULT_GPU, _at_least(0), only_on="EC2", fix=_EC2_FIX)
    #: Container image; ``None`` lets the job spec pick the environment's default image,
    #: else ``python:<major>.<minor>`` of the launching interpreter.
    image: str | None = _option(None, _image)
    #: Queue key of the environment, job queue name or ARN; ``None`` lets the runtime route
    #: the step.
    queue: str | None = _option(None, _queue)
    #: Job role ARN; ``None`` uses the environment's job role, if any.
    iam_role: str | None = _option(None, _role)
    #: Execution role ARN (Fargate needs one); ``None`` uses the environment's.
    execution_role: str | None = _option(None, _role)
    #: ``/dev/shm`` size in MiB (EC2 only); ``None`` keeps Docker's default.
    shared_memory: int | None = _option(None, _at_least(1, unit="MiB"), only_on="EC2", fix=_EC2_FIX)
    #: Swap in MiB (EC2 only); ``None`` means no swap configuration.
    max_swap: int | None = _option(None, _at_least(0, unit="MiB"), only_on="EC2", fix=_EC2_FIX)
    #: 0..100, only together with ``max_swap`` (EC2 only).
    swappiness: int | None = _option(None, _at_least(0, 100), only_on="EC2", fix=_EC2_FIX)
    #: Neuron devices (Inferentia or Trainium) mapped as ``/dev/neuron0..N-1``.
    inferentia: int = _option(0, _at_least(0), only_on="EC2", fix=_EC2_FIX)
    #: EFA devices mapped as ``/dev/infiniband/uverbs0..N-1``.
    efa: int = _option(0, _at_least(0), only_on="EC2", fix=_EC2_FIX)
    #: Whether a tmpfs is mounted (EC2 only).
    use_tmpfs: bool = _option(False, _bool, only_on="EC2", fix=_EC2_FIX)
    #: Whether ``current.tempdir`` points at the tmpfs mount when there is one.
    tmpfs_tempdir: bool = _option(True, _bool)
    #: tmpfs size in MiB; ``memory // 2`` when a tmpfs is used, ``None`` otherwise.
    tmpfs_size: int | None = _option(None, _at_least(1, unit="MiB"))
    tmpfs_path: str = _option(DEFAULT_TMPFS_PATH, _path)
    #: Fargate ephemeral storage in GiB; ``None`` keeps Fargate's 20 GiB.
    ephemeral_storage: int | None = _option(
        None,
        _at_least(*EPHEMERAL_STORAGE_RANGE, unit="GiB"),
        only_on="FARGATE",
        fix="Remove ephemeral_storage (EC2 jobs use the instance's disk), or use a Fargate queue.",
    )
    aws_batch_tags: tuple[tuple[str, str], ...] = _option((), _tags)
    #: Log driver; ``None`` uses awslogs into the environment's log group when it has one.
    log_driver: str | None = _option(None, _log_driver)
    log_options: tuple[tuple[str, str], ...] = _option((), _string_pairs)
    privileged: bool = _option(False, _bool, only_on="EC2", fix=_EC2_FIX)
    #: Environment variables ECS sets from Secrets Manager secrets or SSM parameters when
    #: it starts the job (``containerProperties.secrets``), by variable name; the job's
    #: execution role fetches them. Only a job on AWS Batch gets them.
    secrets: tuple[tuple[str, str], ...] = _option((), _secrets)
    #: The keys the user set (in code, ``@resources`` or on the command line).
    explicit: frozenset[str] = field(default=frozenset(), compare=False)
    #: The flow's name, when the caller gave it (messages only).
    flow: str | None = field(default=None, compare=False)
    #: Options the user set through an alias, as ``(option, alias)`` pairs
    #: (``("inferentia", "trainium")``): messages name the key the user wrote.
    spelled: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def key(self, option: str) -> str:
        """The key the user wrote for ``option`` (``trainium`` for ``inferentia``)."""
        return dict(self.spelled).get(option, option)

    @property
    def location(self) -> str:
        """``flow 'F', step 's'`` (or ``step 's'``): where messages say the problem is."""
        return (f"flow '{self.flow}', " if self.flow else "") + f"step '{self.step}'"

    @property
    def trainium(self) -> int:
        """Alias of :attr:`inferentia`: Neuron devices serve both chips."""
        return self.inferentia

    @property
    def tags(self) -> dict[str, str]:
        """The user's ``aws_batch_tags`` as a dict."""
        return dict(self.aws_batch_tags)

    @property
    def log_options_dict(self) -> dict[str, str]:
        """The ``log_options`` as a dict."""
        return dict(self.log_options)

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The variables the ``secrets`` set, sorted."""
        return tuple(name for name, _ in self.secrets)

    @property
    def tempdir(self) -> str | None:
        """Where ``current.tempdir`` points inside the job, if the tmpfs serves as one."""
        return self.tmpfs_path if self.use_tmpfs and self.tmpfs_tempdir else None

    def used_options(self) -> list[tuple[Option, Any]]:
        """The platform-limited options this step uses, with their values, in table order."""
        return [
            (row, getattr(self, name))
            for name, row in OPTIONS.items()
            if row.only_on is not None and row.is_used(getattr(self, name))
        ]

    @classmethod
    def from_attributes(
        cls,
        step: str,
        attributes: Mapping[str, Any],
        *,
        resources: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        flow: str | None = None,
        variables: Collection[str] = (),
    ) -> BatchOptions:
        """Checks and merges a step's ``@batch`` attributes into one value.

        Args:
            step: the step's name, for messages.
            attributes: the ``@batch(...)`` keyword arguments; ``None`` values mean "not
                given".
            resources: the step's ``@resources`` values; for ``cpu``, ``memory`` and
                ``gpu`` the larger of the two decorators wins.
            overrides: ``--with batch:k=v`` values, already parsed by the one ``--with``
                parser (:func:`batchwright.decorators.parse_value`); each replaces the
                code's value for that key.
            flow: the flow's name, for messages.
            variables: the names the step's ``@environment(vars=...)`` sets; a secret may
                not take one (``@environment`` would replace its value inside the job).

        Returns:
            The options with every default filled in.

        Raises:
            InvalidValue: an unknown key, a value of the wrong type or out of range, or
                two options that contradict each other.
        """
        location = (f"flow '{flow}', " if flow else "") + f"step '{step}'"
        code_where = f"{location}, @batch"
        cli_where = f"{location}, --with batch"
        merged: dict[str, Any] = {}
        source: dict[str, str] = {}
        code = _given(attributes, code_where)
        cli = _given(overrides or {}, cli_where)
        # How the user spelled each option (``trainium`` for ``inferentia``), for messages.
        spelled: dict[str, str] = {}
        for values, origin in ((code, code_where), (cli, cli_where)):
            # Checked as spelled, so a refusal names the key the user wrote (trainium).
            checked = {key: check_option(key, value, origin) for key, value in values.items()}
            for key, value in _resolve_alias(checked, origin).items():
                merged[key] = value
                source[key] = origin
            for alias, target in ALIASES.items():
                if alias in values:
                    spelled[target] = alias
                elif target in values:
                    spelled.pop(target, None)
        explicit = set(merged)

        # @resources: the larger value of each wins; a value only one of them gives is used.
        res_where = f"{location}, @resources"
        for key in RESOURCE_KEYS:
            value = (resources or {}).get(key)
            if value is None:
                continue
            value = check_option(key, value, res_where)
            if key not in merged or value > merged[key]:
                merged[key] = value
                source[key] = res_where
            explicit.add(key)
        _check_combinations(merged, lambda key: source.get(key, code_where))
        _check_secret_names(merged, variables, lambda key: source.get(key, code_where))
        _check_platform_conflicts(
            merged, explicit, lambda key: source.get(key, code_where), spelled
        )
        return cls(
            step=step,
            flow=flow,
            explicit=frozenset(explicit),
            spelled=tuple(sorted(spelled.items())),
            **merged,
        )


#: The table: every option by name, in declaration order.
OPTIONS: Mapping[str, Option] = {
    f.name: Option(name=f.name, **f.metadata["option"])
    for f in dataclasses.fields(BatchOptions)
    if "option" in f.metadata
}
#: Other names of options (``trainium`` names the same Neuron devices as ``inferentia``).
ALIASES: Mapping[str, str] = {"trainium": "inferentia"}
#: Every key ``@batch`` accepts, aliases after the option they name.
OPTION_KEYS: tuple[str, ...] = tuple(
    key
    for name in OPTIONS
    for key in (name, *(alias for alias, target in ALIASES.items() if target == name))
)
#: The keys ``@resources`` shares with ``@batch`` (its defaults are these rows' defaults).
RESOURCE_KEYS = ("cpu", "memory", "gpu")


def check_option(key: str, value: Any, where: str) -> Any:
    """The checked, normalised value of option ``key`` (aliases included).

    Raises:
        InvalidValue: the value is of the wrong type or out of range.
    """
    return OPTIONS[ALIASES.get(key, key)].check(key, value, where)


def _check_combinations(merged: dict[str, Any], where: Callable[[str], str]) -> None:
    """Fills in the options implied by others and refuses contradictions (in place)."""
    memory: int = merged.get("memory", DEFAULT_MEMORY)
    tmpfs_keys = [k for k in ("tmpfs_size", "tmpfs_path", "tmpfs_tempdir") if k in merged]
    if merged.get("use_tmpfs") is False and tmpfs_keys:
        key = tmpfs_keys[0]
        raise InvalidValue(
            where=where(key),
            key=key,
            value=merged[key],
            problem="is set while use_tmpfs=False",
            fix=f"Drop {key}, or set use_tmpfs=True to mount a tmpfs.",
        )
    # Setting a size or path implies the mount; only an explicit False contradicts it.
    use_tmpfs = bool(merged.get("use_tmpfs")) or "tmpfs_size" in merged or "tmpfs_path" in merged
    merged["use_tmpfs"] = use_tmpfs
    if use_tmpfs:
        merged.setdefault("tmpfs_size", max(1, memory // 2))
        if merged["tmpfs_size"] > memory:
            raise InvalidValue(
                where=where("tmpfs_size"),
                key="tmpfs_size",
                value=merged["tmpfs_size"],
                problem=f"exceeds the step's memory ({memory} MiB), which backs the tmpfs",
                fix=f"Use tmpfs_size <= {memory}, or raise memory.",
            )
    if "swappiness" in merged and "max_swap" not in merged:
        raise InvalidValue(
            where=where("swappiness"),
            key="swappiness",
            value=merged["swappiness"],
            problem="has no effect without max_swap (Batch ignores it)",
            fix="Set max_swap=<MiB> as well, or drop swappiness.",
        )
    if "log_options" in merged and "log_driver" not in merged:
        raise InvalidValue(
            where=where("log_options"),
            key="log_options",
            value=dict(merged["log_options"]),
            problem="is set without log_driver",
            fix="Set log_driver (e.g. 'awslogs') as well, or drop log_options.",
        )


def _check_secret_names(
    merged: Mapping[str, Any], variables: Collection[str], where: Callable[[str], str]
) -> None:
    """Refuses a secret named like a variable of the step's ``@environment``."""
    secrets = dict(merged.get("secrets", ()))
    clash = sorted(set(secrets) & set(variables))
    if clash:
        raise InvalidValue(
            where=where("secrets"),
            key="secrets",
            value=secrets,
            problem=f"has the variable name {clash[0]!r}, which @environment(vars=...) sets "
            "too; inside the job @environment would replace the secret's value",
            fix=f"Set {clash[0]} in only one of them.",
        )


@dataclass(frozen=True)
class _Side:
    """One option that ties a step to one platform, as the user gave it."""

    #: The key as the user spelled it (``trainium``, ``tmpfs_size``).
    key: str
    value: Any
    #: What exists on that platform only ("fractional vCPUs", "gpu").
    what: str
    #: What to do instead to run on the other platform ("use cpu=1"); ``""``: drop the key.
    instead: str = ""
    #: The merged option the key set, for its source (``inferentia`` for ``trainium``).
    option: str = ""


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _remedy(sides: list[_Side]) -> str:
    """``drop gpu and privileged``, ``use cpu=1 and drop ephemeral_storage``."""
    dropped = [s.key for s in sides if not s.instead]
    changed = [s.instead for s in sides if s.instead]
    return _and(changed + ([f"drop {_and(dropped)}"] if dropped else []))


def _platform_sides(
    merged: Mapping[str, Any], explicit: set[str], spelled: Mapping[str, str]
) -> tuple[list[_Side], list[_Side]]:
    """The options of a step that exist on Fargate only, and those that exist on EC2 only
    (read from the option table, plus fractional vCPUs and Fargate's log drivers)."""
    fargate: list[_Side] = []
    ec2: list[_Side] = []
    cpu = merged.get("cpu", DEFAULT_CPU)
    if not float(cpu).is_integer():
        fargate.append(_Side("cpu", cpu, "fractional vCPUs", f"use cpu={math.ceil(cpu)}", "cpu"))
    for name, row in OPTIONS.items():
        value = merged.get(name, row.default)
        if row.only_on is None or not row.is_used(value):
            continue
        key, option = spelled.get(name, name), name
        if name == "use_tmpfs" and "use_tmpfs" not in explicit:
            # Implied by tmpfs_size or tmpfs_path: name the key the user gave.
            key = option = next(k for k in ("tmpfs_size", "tmpfs_path") if k in explicit)
            value = merged[key]
        side = _Side(key, value, key, option=option)
        (fargate if row.only_on == "FARGATE" else ec2).append(side)
    driver = merged.get("log_driver")
    if driver is not None and driver not in FARGATE_LOG_DRIVERS:
        ec2.append(
            _Side(
                "log_driver",
                driver,
                f"the {driver} log driver",
                f"use log_driver={FARGATE_LOG_DRIVERS[0]!r} or {FARGATE_LOG_DRIVERS[1]!r}",
                "log_driver",
            )
        )
    return fargate, ec2


def _check_platform_conflicts(
    merged: Mapping[str, Any],
    explicit: set[str],
    where: Callable[[str], str],
    spelled: Mapping[str, str],
) -> None:
    """Refuses options that no single queue can honour: one that exists on Fargate only
    together with one that exists on EC2 only, or GPUs together with Neuron devices (no
    EC2 instance type has both). Needs no environment, so it runs with the other checks.

    Raises:
        InvalidValue: names the first option of each side and its value.
    """
    fargate, ec2 = _platform_sides(merged, explicit, spelled)
    if fargate and ec2:
        first, others = fargate[0], fargate[1:]

        def given(side: _Side) -> str:
            # A key from another source than the first says so: "(from --with batch)".
            origin = where(side.option)
            note = "" if origin == where(first.option) else f" (from {origin.split(', ')[-1]})"
            return f"{side.key}={side.value!r}{note}"

        # "cpu=0.5 and ephemeral_storage=30 contradict gpu=1": the first is the error's key.
        subject = "".join(f"and {given(side)} " for side in others) + (
            "contradict" if others else "contradicts"
        )
        exists = "exist" if len(fargate) > 1 or first.key == "cpu" else "exists"
        ec2_exists = "exist" if len(ec2) > 1 else "exists"
        raise InvalidValue(
            where=where(first.option),
            key=first.key,
            value=first.value,
            problem=f"{subject} {_and([given(s) for s in ec2])}: "
            f"{_and([s.what for s in fargate])} {exists} only on Fargate and "
            f"{_and([s.what for s in ec2])} {ec2_exists} only on EC2, so no queue can run "
            "the step",
            fix=f"{_remedy(ec2).capitalize()} to run on Fargate, or {_remedy(fargate)} to run "
            "on EC2.",
        )
    gpu, neuron = merged.get("gpu", DEFAULT_GPU), merged.get("inferentia", 0)
    if gpu and neuron:
        neuron_key = spelled.get("inferentia", "inferentia")
        raise InvalidValue(
            where=where("gpu"),
            key="gpu",
            value=gpu,
            problem=f"contradicts {neuron_key}={neuron!r}: no EC2 instance type has both "
            "NVIDIA GPUs and Neuron devices, so no queue can run the step",
            fix=f"Keep one of them: gpu for a GPU queue, or {neuron_key} for a Neuron queue.",
        )


def _given(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keys actually given (``None`` means "not given"); unknown keys are refused."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in OPTION_KEYS:
            close = difflib.get_close_matches(str(key), OPTION_KEYS, n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise InvalidValue(
                where=where,
                key=str(key),
                value=value,
                problem="is not a @batch option",
                fix=f"{hint}Known options: {', '.join(OPTION_KEYS)}.",
            )
        if value is not None:
            out[key] = value
    return out


def _resolve_alias(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Maps each alias onto its option; giving both is a contradiction."""
    out = dict(values)
    for alias, target in ALIASES.items():
        if alias not in out:
            continue
        if target in out:
            raise InvalidValue(
                where=where,
                key=alias,
                value=out[alias],
                problem=f"is given together with {target}={out[target]!r}",
                fix=f"Both name the same thing: give only one of {target} or {alias}.",
            )
        out[target] = out.pop(alias)
    return out
