"""The ``@batch`` options: one frozen value, validated in one place.

:meth:`BatchOptions.from_attributes` is the only door in. It takes what the step's code
declared (``@batch(...)``), the step's ``@resources`` values and the ``--with batch:k=v``
overrides of the command line, and either returns a complete, checked
:class:`BatchOptions` or raises :class:`~batchwright.errors.InvalidValue` naming the
step, the key, the value and the fix. Checks that need the queue's platform (Fargate or
EC2) live in :mod:`batchwright.batch.jobspec`, which receives the checked options.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
#: The tags every job carries (see :func:`batchwright.batch.jobspec.job_tags`).
JOB_TAG_KEYS = tuple(TAG_PREFIX + k for k in ("flow", "run", "step", "task", "attempt"))
#: Batch's limit on tags per resource, ours included.
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
# AWS tag character set: letters, digits, white space and _ . : / = + - @ (Unicode letters too).
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")

#: Every key ``@batch`` accepts. ``trainium`` is an alias of ``inferentia``.
OPTION_KEYS = (
    "cpu",
    "memory",
    "gpu",
    "image",
    "queue",
    "iam_role",
    "execution_role",
    "shared_memory",
    "max_swap",
    "swappiness",
    "inferentia",
    "trainium",
    "efa",
    "use_tmpfs",
    "tmpfs_tempdir",
    "tmpfs_size",
    "tmpfs_path",
    "ephemeral_storage",
    "aws_batch_tags",
    "log_driver",
    "log_options",
    "privileged",
)


@dataclass(frozen=True)
class BatchOptions:
    """The checked ``@batch`` options of one step, every default filled in.

    Build it with :meth:`from_attributes`; the constructor itself does not validate.
    Mappings are stored as sorted tuples of pairs so the value stays hashable.
    """

    step: str
    #: vCPUs; fractions are meaningful on Fargate only (0.25, 0.5).
    cpu: float = DEFAULT_CPU
    #: Memory in MiB.
    memory: int = DEFAULT_MEMORY
    gpu: int = DEFAULT_GPU
    #: Container image; ``None`` lets the job spec pick the environment's default image,
    #: else ``python:<major>.<minor>`` of the launching interpreter.
    image: str | None = None
    #: Job queue name or ARN; ``None`` lets the runtime route the step.
    queue: str | None = None
    #: Job role ARN; ``None`` uses the environment's job role, if any.
    iam_role: str | None = None
    #: Execution role ARN (Fargate needs one); ``None`` uses the environment's.
    execution_role: str | None = None
    #: ``/dev/shm`` size in MiB (EC2 only); ``None`` keeps Docker's default.
    shared_memory: int | None = None
    #: Swap in MiB (EC2 only); ``None`` means no swap configuration.
    max_swap: int | None = None
    #: 0..100, only together with ``max_swap`` (EC2 only).
    swappiness: int | None = None
    #: Neuron devices (Inferentia or Trainium) mapped as ``/dev/neuron0..N-1``.
    inferentia: int = 0
    #: EFA devices mapped as ``/dev/infiniband/uverbs0..N-1``.
    efa: int = 0
    #: Whether a tmpfs is mounted (EC2 only).
    use_tmpfs: bool = False
    #: Whether ``current.tempdir`` points at the tmpfs mount when there is one.
    tmpfs_tempdir: bool = True
    #: tmpfs size in MiB; ``memory // 2`` when a tmpfs is used, ``None`` otherwise.
    tmpfs_size: int | None = None
    tmpfs_path: str = DEFAULT_TMPFS_PATH
    #: Fargate ephemeral storage in GiB; ``None`` keeps Fargate's 20 GiB.
    ephemeral_storage: int | None = None
    aws_batch_tags: tuple[tuple[str, str], ...] = ()
    #: Log driver; ``None`` uses awslogs into the environment's log group when it has one.
    log_driver: str | None = None
    log_options: tuple[tuple[str, str], ...] = ()
    privileged: bool = False
    #: The keys the user set (in code, ``@resources`` or on the command line).
    explicit: frozenset[str] = field(default=frozenset(), compare=False)
    #: The flow's name, when the caller gave it (messages only).
    flow: str | None = field(default=None, compare=False)

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
    def tempdir(self) -> str | None:
        """Where ``current.tempdir`` points inside the job, if the tmpfs serves as one."""
        return self.tmpfs_path if self.use_tmpfs and self.tmpfs_tempdir else None

    @classmethod
    def from_attributes(
        cls,
        step: str,
        attributes: Mapping[str, Any],
        *,
        resources: Mapping[str, Any] | None = None,
        overrides: Mapping[str, str] | None = None,
        flow: str | None = None,
    ) -> BatchOptions:
        """Checks and merges a step's ``@batch`` attributes into one value.

        Args:
            step: the step's name, for messages.
            attributes: the ``@batch(...)`` keyword arguments; ``None`` values mean "not
                given".
            resources: the step's ``@resources`` values; for ``cpu``, ``memory`` and
                ``gpu`` the larger of the two decorators wins.
            overrides: ``--with batch:k=v`` values as strings; each is parsed by its
                key's type and replaces the code's value for that key.

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
        cli = {
            k: _parse_override(k, v, cli_where)
            for k, v in _given(overrides or {}, cli_where).items()
        }
        for values, origin in ((code, code_where), (cli, cli_where)):
            for key, value in _resolve_alias(values, origin).items():
                merged[key] = _check(key, value, origin)
                source[key] = origin
        explicit = set(merged)

        # @resources: the larger value of each wins; a value only one of them gives is used.
        res_where = f"{location}, @resources"
        for key in ("cpu", "memory", "gpu"):
            value = (resources or {}).get(key)
            if value is None:
                continue
            value = _check(key, value, res_where)
            if key not in merged or value > merged[key]:
                merged[key] = value
                source[key] = res_where
            explicit.add(key)

        def where(key: str) -> str:
            return source.get(key, code_where)

        memory: int = merged.get("memory", DEFAULT_MEMORY)
        tmpfs_keys = [k for k in ("tmpfs_size", "tmpfs_path", "tmpfs_tempdir") if k in merged]
        use_tmpfs = merged.get("use_tmpfs")
        if use_tmpfs is False and tmpfs_keys:
            key = tmpfs_keys[0]
            raise InvalidValue(
                where=where(key),
                key=key,
                value=merged[key],
                problem="is set while use_tmpfs=False",
                fix=f"Drop {key}, or set use_tmpfs=True to mount a tmpfs.",
            )
        # Setting a size or path implies the mount; only an explicit False contradicts it.
        use_tmpfs = bool(use_tmpfs) or "tmpfs_size" in merged or "tmpfs_path" in merged
        tmpfs_size: int | None = None
        if use_tmpfs:
            tmpfs_size = merged.get("tmpfs_size", max(1, memory // 2))
            if tmpfs_size > memory:
                raise InvalidValue(
                    where=where("tmpfs_size"),
                    key="tmpfs_size",
                    value=tmpfs_size,
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
        tags = merged.get("aws_batch_tags", ())

        return cls(
            step=step,
            flow=flow,
            cpu=merged.get("cpu", DEFAULT_CPU),
            memory=memory,
            gpu=merged.get("gpu", DEFAULT_GPU),
            image=merged.get("image"),
            queue=merged.get("queue"),
            iam_role=merged.get("iam_role"),
            execution_role=merged.get("execution_role"),
            shared_memory=merged.get("shared_memory"),
            max_swap=merged.get("max_swap"),
            swappiness=merged.get("swappiness"),
            inferentia=merged.get("inferentia", 0),
            efa=merged.get("efa", 0),
            use_tmpfs=use_tmpfs,
            tmpfs_tempdir=merged.get("tmpfs_tempdir", True),
            tmpfs_size=tmpfs_size,
            tmpfs_path=merged.get("tmpfs_path", DEFAULT_TMPFS_PATH),
            ephemeral_storage=merged.get("ephemeral_storage"),
            aws_batch_tags=tags,
            log_driver=merged.get("log_driver"),
            log_options=merged.get("log_options", ()),
            privileged=merged.get("privileged", False),
            explicit=frozenset(explicit),
        )


# --- the per-key checks ---------------------------------------------------------------


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
    """Maps ``trainium`` onto ``inferentia``; giving both is a contradiction."""
    if "trainium" not in values:
        return values
    if "inferentia" in values:
        raise InvalidValue(
            where=where,
            key="trainium",
            value=values["trainium"],
            problem=f"is given together with inferentia={values['inferentia']!r}",
            fix="Both name the same Neuron devices: give only one of inferentia or trainium.",
        )
    out = {k: v for k, v in values.items() if k != "trainium"}
    out["inferentia"] = values["trainium"]
    return out


def _fail(where: str, key: str, value: Any, problem: str, fix: str) -> InvalidValue:
    return InvalidValue(where=where, key=key, value=value, problem=problem, fix=fix)


def _int(
    key: str, value: Any, where: str, low: int, high: int | None = None, unit: str = ""
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, key, value, "is not an integer", f"Give a whole number{unit}.")
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _fail(where, key, value, "is out of range", f"Give a value {allowed}{unit}.")
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
        raise _fail(where, key, value, "is not a boolean", "Give True or False.")
    return value


def _text(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise _fail(
            where,
            key,
            value,
            "is not a non-empty string without spaces",
            "Give a name, e.g. 'my-queue'.",
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
            where, key, value, "is not a mapping", "Give a dict of strings, e.g. {'team': 'ml'}."
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


_CHECKS: dict[str, Callable[[str, Any, str], Any]] = {
    "cpu": _cpu,
    "memory": lambda k, v, w: _int(k, v, w, 4, unit=" of MiB (at least 4)"),
    "gpu": lambda k, v, w: _int(k, v, w, 0),
    "image": _text,
    "queue": _text,
    "iam_role": _role,
    "execution_role": _role,
    "shared_memory": lambda k, v, w: _int(k, v, w, 1, unit=" of MiB"),
    "max_swap": lambda k, v, w: _int(k, v, w, 0, unit=" of MiB"),
    "swappiness": lambda k, v, w: _int(k, v, w, 0, 100),
    "inferentia": lambda k, v, w: _int(k, v, w, 0),
    "trainium": lambda k, v, w: _int(k, v, w, 0),
    "efa": lambda k, v, w: _int(k, v, w, 0),
    "use_tmpfs": _bool,
    "tmpfs_tempdir": _bool,
    "tmpfs_size": lambda k, v, w: _int(k, v, w, 1, unit=" of MiB"),
    "tmpfs_path": _path,
    "ephemeral_storage": lambda k, v, w: _int(k, v, w, *EPHEMERAL_STORAGE_RANGE, unit=" of GiB"),
    "aws_batch_tags": _tags,
    "log_driver": _log_driver,
    "log_options": _string_pairs,
    "privileged": _bool,
}


def _check(key: str, value: Any, where: str) -> Any:
    return _CHECKS[key](key, value, where)


# --- parsing ``--with batch:k=v`` -----------------------------------------------------

_INT_KEYS = frozenset(
    [
        "memory",
        "gpu",
        "shared_memory",
        "max_swap",
        "swappiness",
        "inferentia",
        "trainium",
        "efa",
        "tmpfs_size",
        "ephemeral_storage",
    ]
)
_BOOL_KEYS = frozenset(["use_tmpfs", "tmpfs_tempdir", "privileged"])
_MAP_KEYS = frozenset(["aws_batch_tags", "log_options"])
_TRUE = frozenset(["true", "yes", "1", "on"])
_FALSE = frozenset(["false", "no", "0", "off"])


def _parse_override(key: str, text: Any, where: str) -> Any:
    """Turns one ``--with batch:key=text`` value into the key's type (checked later)."""
    if not isinstance(text, str):
        return text  # already typed (a caller that parsed it itself)
    raw = text.strip()
    try:
        if key == "cpu":
            return float(raw) if "." in raw else int(raw)
        if key in _INT_KEYS:
            return int(raw)
    except ValueError:
        raise _fail(
            where, key, text, "is not a number", f"Write it as digits, e.g. batch:{key}=4."
        ) from None
    if key in _BOOL_KEYS:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise _fail(
            where, key, text, "is not a boolean", f"Write batch:{key}=true or batch:{key}=false."
        )
    if key in _MAP_KEYS:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise _fail(
                where,
                key,
                text,
                "is not a JSON object",
                f'Write it as JSON, e.g. batch:{key}=\'{{"team":"ml"}}\'.',
            )
        return value
    return raw
