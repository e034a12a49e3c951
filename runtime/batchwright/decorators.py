"""Step decorators: ``@retry``, ``@timeout``, ``@catch``, ``@environment``, ``@resources``.

A decorator only *declares*: applying one to a step stores its raw attributes and
nothing else. The runtime decides when to act, through hooks named after the phase and
process they run in:

- ``step_init(context)``: definition time, in whatever process builds the graph (the CLI
  before anything runs, and again inside each task). Validates and normalises the
  attributes; raises :class:`~batchwright.errors.InvalidValue` naming flow, step,
  decorator, key, value and fix.
- ``runtime_init(context)``, ``runtime_finished(context, successful)``: the scheduler
  process, once per run and step (the built-in decorators need none; the scheduler reads
  ``retry`` and ``timeout`` attributes itself).
- ``task_pre_step(context)``, ``task_post_step(context)``, ``task_exception(context,
  exception)``: inside the task process, around the user's step code.

Other modules add decorators with :func:`register_step_decorator`; the registry is what
``--with name:key=value,...`` looks names up in.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, ClassVar, NamedTuple, TypeVar

from batchwright.errors import BatchwrightError, InvalidValue, UserInputError

StepFunction = Callable[..., Any]
_F = TypeVar("_F", bound=Callable[..., Any])


class StepInitContext(NamedTuple):
    """What ``step_init`` can see: where the decorator sits (for messages) and its peers."""

    flow_name: str
    step_name: str
    #: The step's node type ("start", "linear", "split", "foreach", "join", "end").
    step_type: str
    #: Every decorator of the step, including this one.
    decorators: tuple[StepDecorator, ...]


class TaskContext:
    """What ``task_*`` hooks can see and change inside the running task.

    ``flow`` is the user's FlowSpec instance, so a hook can set artifacts on it (as
    ``@catch`` does); ``extras`` carries values between hooks of one task. (A plain class,
    not a dataclass, to keep ``inspect`` out of the task's start-up.)
    """

    def __init__(
        self,
        flow_name: str,
        step_name: str,
        run_id: str,
        task_id: str,
        retry_count: int,
        max_retries: int,
        flow: Any,
    ) -> None:
        self.flow_name = flow_name
        self.step_name = step_name
        self.run_id = run_id
        self.task_id = task_id
        self.retry_count = retry_count
        self.max_retries = max_retries
        self.flow = flow
        self.extras: dict[str, Any] = {}

    @property
    def is_last_attempt(self) -> bool:
        """True when no retry will follow a failure of this attempt."""
        return self.retry_count >= self.max_retries


class RuntimeContext(NamedTuple):
    """What ``runtime_*`` hooks see in the scheduler process (once per run and step)."""

    flow_name: str
    step_name: str
    run_id: str
    datastore_root: str
    #: Settings of the run's command-line options by name (e.g. a later ``environment``).
    options: Mapping[str, Any]


class StepDecorator:
    """Base class of every step decorator.

    Subclasses set :attr:`name` and :attr:`defaults` (every accepted attribute with its
    default) and override the hooks they need. ``attributes`` holds the effective values
    after :meth:`step_init`.
    """

    #: The name used by ``@name`` and ``--with name:...``.
    name: ClassVar[str] = ""
    #: Every accepted attribute and its default value.
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: Name of the execution backend this decorator asks for (``None``: no preference).
    backend: ClassVar[str | None] = None

    def __init__(self, **attributes: Any) -> None:
        self.given: dict[str, Any] = dict(attributes)
        self.attributes: dict[str, Any] = {**self.defaults, **attributes}
        #: True when attached by ``--with`` rather than written on the step.
        self.from_command_line = False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.given.items())
        return f"@{self.name}({args})"

    # -- construction ---------------------------------------------------------------

    def __call__(self, function: _F) -> _F:
        """Attach this decorator to a ``@step`` function (written above ``@step``)."""
        attach_decorator(function, self)
        return function

    @classmethod
    def from_spec(cls, spec: str) -> StepDecorator:
        """Build from the ``key=value,key=value`` part of a ``--with`` option.

        Values are parsed as JSON when they parse (numbers, booleans, lists, objects) and
        kept as strings otherwise.
        """
        attributes: dict[str, Any] = {}
        for piece in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = piece.partition("=")
            if not sep or not key.strip():
                raise UserInputError(
                    f"--with {cls.name}:{spec}: '{piece}' is not key=value. "
                    f"Write e.g. --with {cls.name}:{next(iter(cls.defaults), 'key')}=VALUE."
                )
            attributes[key.strip()] = parse_value(raw.strip())
        decorator = cls(**attributes)
        decorator.from_command_line = True
        return decorator

    # -- hooks ------------------------------------------------------------------------

    def step_init(self, context: StepInitContext) -> None:
        """Validate the attributes (definition time). The base checks unknown keys."""
        for key, value in self.given.items():
            if key not in self.defaults:
                allowed = ", ".join(sorted(self.defaults)) or "none"
                raise InvalidValue(
                    where=self.where(context),
                    key=key,
                    value=value,
                    problem="is not an attribute of this decorator",
                    fix=f"Use one of: {allowed}.",
                )

    def runtime_init(self, context: RuntimeContext) -> None:
        """In the scheduler, before the run's first task (e.g. prepare remote resources)."""

    def runtime_finished(self, context: RuntimeContext, successful: bool) -> None:
        """In the scheduler, after the run ended (also after a failure or an interrupt)."""

    def absorb_command_line(self, other: StepDecorator) -> None:
        """``--with`` gave the same decorator to a step that declares it; by default the
        step's own declaration wins and ``other`` is ignored."""

    def task_pre_step(self, context: TaskContext) -> None:
        """Inside the task, just before the step's code runs."""

    def task_post_step(self, context: TaskContext) -> None:
        """Inside the task, after the step's code returned normally."""

    def task_exception(self, context: TaskContext, exception: BaseException) -> bool:
        """Inside the task, when the step raised; return True to mark it handled."""
        return False

    def task_finally(self, context: TaskContext) -> None:
        """Inside the task, always, after the step and the other hooks."""

    # -- helpers for subclasses -----------------------------------------------------------

    def where(self, context: StepInitContext) -> str:
        """``flow 'F', step 's', @name``: the location prefix of messages."""
        return f"flow '{context.flow_name}', step '{context.step_name}', @{self.name}"

    def require_number(
        self,
        context: StepInitContext,
        key: str,
        *,
        minimum: float = 0,
        integer: bool = False,
        allow_none: bool = False,
    ) -> None:
        """Check that attribute ``key`` is a number >= ``minimum`` (optionally an int)."""
        value = self.attributes.get(key)
        if value is None and allow_none:
            return
        kind = "an integer" if integer else "a number"
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and isinstance(value, float):
            ok = value.is_integer()
            if ok:
                self.attributes[key] = int(value)
        if not ok or value < minimum:  # type: ignore[operator]
            raise InvalidValue(
                where=self.where(context),
                key=key,
                value=value,
                problem=f"must be {kind} >= {minimum:g}",
                fix=f"Pass e.g. @{self.name}({key}={int(minimum) if minimum >= 1 else 1}).",
            )


_REGISTRY: dict[str, type[StepDecorator]] = {}


def register_step_decorator(cls: type[StepDecorator]) -> type[StepDecorator]:
    """Make ``cls`` known by ``cls.name`` (for ``--with``); usable as a class decorator."""
    if not cls.name:
        raise BatchwrightError(f"{cls.__qualname__} needs a non-empty 'name' to be registered")
    _REGISTRY[cls.name] = cls
    return cls


def step_decorator_class(name: str) -> type[StepDecorator]:
    """The registered decorator class called ``name``; UserInputError when unknown."""
    if name not in _REGISTRY:
        _load_optional_decorators()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UserInputError(
            f"--with {name}: there is no step decorator named '{name}'. Known: {known}."
        ) from None


def registered_step_decorators() -> dict[str, type[StepDecorator]]:
    """A copy of the registry (name -> class)."""
    _load_optional_decorators()
    return dict(_REGISTRY)


def _load_optional_decorators() -> None:
    # Decorators that live in other subpackages register themselves on import; import
    # them only when a name is looked up, so task start-up stays light.
    import importlib

    for module in ("batchwright.batch",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            # Absent subpackage: fine. A missing import inside it is a real bug: re-raise.
            if error.name != module:
                raise


def decorator_from_with_option(option: str) -> StepDecorator:
    """Parse one ``--with name[:k=v,...]`` value into a decorator instance."""
    name, _, spec = option.partition(":")
    return step_decorator_class(name.strip()).from_spec(spec)


def parse_value(raw: str) -> Any:
    """A ``--with`` value: JSON when it parses (``3``, ``true``, ``[1,2]``), else the string."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def attach_decorator(function: StepFunction, decorator: StepDecorator) -> None:
    """Record ``decorator`` on a step function; it must already be a ``@step``."""
    decorators: list[StepDecorator] | None = getattr(function, "_step_decorators", None)
    if decorators is None:
        # Raised while the flow class is being defined; the CLI is not running yet, so
        # keep it a plain, readable error naming the function.
        raise UserInputError(
            f"@{decorator.name} is applied to '{getattr(function, '__name__', function)}', "
            f"which is not a step. Put @{decorator.name} above @step."
        )
    decorators.append(decorator)


def step_decorators(function: StepFunction) -> list[StepDecorator]:
    """The decorators written on a step function (outermost first)."""
    return list(reversed(getattr(function, "_step_decorators", [])))


def step_decorator_function(cls: type[StepDecorator]) -> Callable[..., Any]:
    """The user-facing ``@name`` / ``@name(...)`` function for a decorator class."""

    def apply(function: StepFunction | None = None, **attributes: Any) -> Any:
        if function is not None and callable(function):
            return cls()(function)
        return cls(**attributes)

    apply.__name__ = cls.name
    apply.__qualname__ = cls.name
    apply.__doc__ = cls.__doc__
    return apply


# -- built-in decorators -----------------------------------------------------------------


@register_step_decorator
class RetryDecorator(StepDecorator):
    """Retry a failed task: ``times`` more attempts, ``minutes_between_retries`` apart."""

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``times`` (integer >= 0) and ``minutes_between_retries`` (number >= 0)."""
        super().step_init(context)
        self.require_number(context, "times", integer=True)
        self.require_number(context, "minutes_between_retries")


class TimeoutExceeded(Exception):
    """The step ran longer than its ``@timeout``."""


@register_step_decorator
class TimeoutDecorator(StepDecorator):
    """Stop the step after ``seconds + 60*minutes + 3600*hours`` (enforced inside the task)."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def step_init(self, context: StepInitContext) -> None:
        """Check each part is a number >= 0 and that the total is positive."""
        super().step_init(context)
        for key in ("seconds", "minutes", "hours"):
            self.require_number(context, key)
        if self.total_seconds <= 0:
            raise InvalidValue(
                where=self.where(context),
                key="seconds",
                value=self.attributes["seconds"],
                problem="gives a total timeout of 0",
                fix="Pass a positive seconds=, minutes= or hours=.",
            )

    @property
    def total_seconds(self) -> float:
        """The timeout in seconds."""
        a = self.attributes
        return float(a["seconds"]) + 60.0 * float(a["minutes"]) + 3600.0 * float(a["hours"])

    def task_pre_step(self, context: TaskContext) -> None:
        """Arm a real-time alarm that raises TimeoutExceeded in the step's code."""
        limit = self.total_seconds

        def expire(signum: int, frame: FrameType | None) -> None:
            raise TimeoutExceeded(
                f"step '{context.step_name}' exceeded its @timeout of {limit:g} seconds"
            )

        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, limit)

    def task_finally(self, context: TaskContext) -> None:
        """Disarm the alarm."""
        signal.setitimer(signal.ITIMER_REAL, 0)


class CaughtException:
    """What ``@catch(var=...)`` stores: the exception's type, message and stack trace.

    Picklable and importable without the user's code, so the client can read it.
    Attribute names follow Metaflow's (``type``, ``exception``, ``stacktrace``).
    """

    def __init__(self, exception: BaseException) -> None:
        import traceback

        self.type = f"{type(exception).__module__}.{type(exception).__qualname__}"
        self.exception = str(exception)
        self.stacktrace = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )

    def __repr__(self) -> str:
        return f"CaughtException({self.type}: {self.exception})"

    def __str__(self) -> str:
        return f"{self.type}: {self.exception}"


@register_step_decorator
class CatchDecorator(StepDecorator):
    """On the last failed attempt, store the exception in artifact ``var`` and go on."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``var`` is an identifier and that the step is not a foreach split."""
        super().step_init(context)
        var = self.attributes["var"]
        if var is not None and (not isinstance(var, str) or not var.isidentifier()):
            raise InvalidValue(
                where=self.where(context),
                key="var",
                value=var,
                problem="is not a valid artifact name",
                fix="Pass a Python identifier, e.g. @catch(var='failure').",
            )
        if context.step_type == "foreach":
            raise InvalidValue(
                where=self.where(context),
                key="var",
                value=var,
                problem="cannot recover a foreach split (its fan-out would be unknown)",
                fix="Move the risky code into the steps inside the foreach.",
            )

    def task_post_step(self, context: TaskContext) -> None:
        """A successful step stores None in the artifact (so later steps can test it)."""
        if self.attributes["var"]:
            setattr(context.flow, self.attributes["var"], None)

    def task_exception(self, context: TaskContext, exception: BaseException) -> bool:
        """Handle the exception only on the last attempt (retries come first)."""
        if not context.is_last_attempt:
            return False
        if self.attributes["var"]:
            setattr(context.flow, self.attributes["var"], CaughtException(exception))
        context.extras["caught"] = CaughtException(exception)
        context.extras["print_exception"] = bool(self.attributes["print_exception"])
        return True


@register_step_decorator
class EnvironmentDecorator(StepDecorator):
    """Set environment variables for the step's code: ``@environment(vars={...})``."""

    name = "environment"
    defaults: ClassVar[Mapping[str, Any]] = {"vars": {}}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``vars`` maps names to strings (numbers and booleans are converted)."""
        super().step_init(context)
        variables = self.attributes["vars"]
        if not isinstance(variables, dict):
            raise InvalidValue(
                where=self.where(context),
                key="vars",
                value=variables,
                problem="must be a dict of variable names to values",
                fix="Pass e.g. @environment(vars={'MODE': 'fast'}).",
            )
        for key, value in variables.items():
            if not isinstance(key, str) or not key or "=" in key:
                raise InvalidValue(
                    where=self.where(context),
                    key="vars",
                    value=key,
                    problem="has an invalid variable name",
                    fix="Use non-empty names without '='.",
                )
            if not isinstance(value, str | int | float | bool):
                raise InvalidValue(
                    where=self.where(context),
                    key=f"vars[{key!r}]",
                    value=value,
                    problem="is not a string, number or boolean",
                    fix="Environment variables hold text; convert the value with str().",
                )
        self.attributes["vars"] = {k: str(v) for k, v in variables.items()}

    def task_pre_step(self, context: TaskContext) -> None:
        """Export the variables into the task's environment."""
        os.environ.update(self.attributes["vars"])


@register_step_decorator
class ResourcesDecorator(StepDecorator):
    """Declare what the step needs (cpu, memory in MiB, gpu); local runs ignore it."""

    name = "resources"
    defaults = {"cpu": 1, "memory": 4096, "gpu": 0}

    def step_init(self, context: StepInitContext) -> None:
        """Check cpu > 0, memory >= 1 MiB (integer) and gpu >= 0 (integer)."""
        super().step_init(context)
        self.require_number(context, "cpu", minimum=0.25)
        self.require_number(context, "memory", minimum=1, integer=True)
        self.require_number(context, "gpu", integer=True)


retry = step_decorator_function(RetryDecorator)
timeout = step_decorator_function(TimeoutDecorator)
catch = step_decorator_function(CatchDecorator)
environment = step_decorator_function(EnvironmentDecorator)
resources = step_decorator_function(ResourcesDecorator)


def merge_with_options(
    decorators: list[StepDecorator], with_options: list[StepDecorator]
) -> list[StepDecorator]:
    """A step's decorators plus the ``--with`` ones it does not already declare.

    A decorator written on the step wins over the same one given by ``--with``, except
    where it absorbs the command line's values (:meth:`StepDecorator.absorb_command_line`,
    e.g. ``--with batch:cpu=4`` overriding one key of ``@batch``). Each
    ``--with`` decorator is copied per step, since ``step_init`` normalises attributes.
    """
    present = {d.name: d for d in decorators}
    merged = list(decorators)
    for extra in with_options:
        if extra.name in present:
            present[extra.name].absorb_command_line(extra)
        else:
            copy = type(extra)(**extra.given)
            copy.from_command_line = True
            merged.append(copy)
    return merged
