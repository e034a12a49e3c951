"""The step decorator model: the base class, its hook contexts, the registry, ``--with``.

A decorator only *declares*: applying one to a step stores its raw attributes and
nothing else. The runtime decides when to act, through hooks named after the phase and
process they run in:

- ``step_init(context)``: definition time, in whatever process builds the graph (the CLI
  before anything runs, and again inside each task). Validates and normalises the
  attributes; raises :class:`~batchwright.errors.InvalidValue` naming flow, step,
  decorator, key, value and fix.
- ``runtime_init(context)``, ``runtime_finished(context, successful)``: the scheduler
  process, once per run and step. What the scheduler itself needs of a step (retries,
  timeout, backend, queue) is decided by the plan, not read from decorators here.
- ``task_pre_step(context)``, ``task_post_step(context)``, ``task_exception(context,
  exception)``, ``task_finally(context)``: inside the task process, around the user's
  step code.

Decorator classes register with :func:`register_step_decorator`; the registry is what
``--with name:key=value,...`` looks names up in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from batchwright.errors import BatchwrightError, InvalidValue, UserInputError

if TYPE_CHECKING:
    from batchwright.policy import StepPolicy

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
    #: What the plan decided for the step (backend, queue, retries, timeout).
    policy: StepPolicy


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
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UserInputError(
            f"--with {name}: there is no step decorator named '{name}'. Known: {known}."
        ) from None


def registered_step_decorators() -> dict[str, type[StepDecorator]]:
    """A copy of the registry (name -> class)."""
    return dict(_REGISTRY)


def decorator_from_with_option(option: str) -> StepDecorator:
    """Parse one ``--with name[:k=v,...]`` value into a decorator instance."""
    name, _, spec = option.partition(":")
    return step_decorator_class(name.strip()).from_spec(spec)


#: ``--with`` words for booleans, any case.
TRUE_WORDS = frozenset(["true", "yes", "on"])
FALSE_WORDS = frozenset(["false", "no", "off"])


def parse_value(raw: str) -> Any:
    """A ``--with`` value, the one parser for every decorator: a boolean word (``true``,
    ``yes``, ``on``, ``false``, ``no``, ``off``, any case), else JSON when it parses
    (``3``, ``0.5``, ``[1,2]``, ``{"team":"ml"}``), else the string itself. The
    decorator's own checks then judge the typed value."""
    lowered = raw.strip().lower()
    if lowered in TRUE_WORDS or lowered in FALSE_WORDS:
        return lowered in TRUE_WORDS
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
