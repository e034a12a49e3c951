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
``--with name:key=value,...`` (every step) and ``--with step/name:key=value,...`` (one
step) look names up in (:func:`parse_with_option`).

A decorator written below ``@step`` is recorded, not raised on while the class body runs
(:func:`attach_decorator`); the flow's definition refuses it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    def from_spec(cls, spec: str, *, option: str | None = None) -> StepDecorator:
        """Build from the ``key=value,key=value`` part of a ``--with`` option.

        The pieces are split at commas outside brackets, braces and double quotes, so a JSON
        value may hold commas (``aws_batch_tags={"team":"ml","cc":"12"}``). Values are
        parsed by :func:`parse_value`. ``option`` is the whole ``--with`` value, for
        messages (default ``NAME:spec``).

        Raises:
            UserInputError: a piece is not ``key=value``, or a value leaves a bracket,
                brace or quote open (or closes one it never opened).
        """
        option = option if option is not None else f"{cls.name}:{spec}"
        try:
            pieces = split_top_level(spec)
        except UnbalancedValue as problem:
            raise UserInputError(
                f"--with {option}: {problem} Close every bracket, brace and quote, and put "
                "the whole option in single quotes so that the shell keeps its quotes, e.g. "
                f"""--with '{cls.name}:key={{"a":"1","b":"2"}}'."""
            ) from None
        attributes: dict[str, Any] = {}
        for piece in filter(None, (p.strip() for p in pieces)):
            key, sep, raw = piece.partition("=")
            if not sep or not key.strip():
                raise UserInputError(
                    f"--with {option}: '{piece}' is not key=value. "
                    f"Write e.g. --with {cls.name}:{next(iter(cls.defaults), 'key')}=VALUE."
                )
            attributes[key.strip()] = parse_value(raw.strip())
        decorator = cls(**attributes)
        decorator.from_command_line = True
        return decorator

    # -- hooks ------------------------------------------------------------------------

    def step_init(self, context: StepInitContext) -> None:
        """Validate the attributes (definition time). The base refuses unknown keys,
        suggesting the closest known one, as ``@batch`` and ``Parameter`` do."""
        for key, value in self.given.items():
            if key not in self.defaults:
                allowed = ", ".join(sorted(self.defaults)) or "none"
                hint = did_you_mean(key, self.defaults)
                raise InvalidValue(
                    where=self.where(context),
                    key=key,
                    value=value,
                    problem="is not an attribute of this decorator",
                    fix=f"{hint} Use one of: {allowed}.".lstrip(),
                )

    def runtime_init(self, context: RuntimeContext) -> None:
        """In the scheduler, before the run's first task (e.g. prepare remote resources)."""

    def runtime_finished(self, context: RuntimeContext, successful: bool) -> None:
        """In the scheduler, after the run ended (also after a failure or an interrupt)."""

    def absorb_command_line(self, other: StepDecorator) -> None:
        """``--with NAME`` (for every step) gave the same decorator to a step that declares
        it; by default the step's own declaration wins and ``other`` is ignored, as in
        Metaflow."""

    def override_from_command_line(self, other: StepDecorator) -> None:
        """``--with STEP/NAME:k=v`` named this step: ``other``'s keys replace this
        decorator's, key by key (the option names the step, so it wins over the code)."""
        self.given.update(other.given)
        self.attributes.update(other.given)

    def task_pre_step(self, context: TaskContext) -> None:
        """Inside the task, just before the step's code runs."""

    def task_post_step(self, context: TaskContext) -> None:
        """Inside the task, after the step's code returned normally."""

    def task_exception(self, context: TaskContext, exception: BaseException) -> bool:
        """Inside the task, when the step raised; return True to mark it handled."""
        return False

    def task_decorate(
        self, context: TaskContext, step_function: Callable[..., Any]
    ) -> Callable[..., Any]:
        """Inside the task, before the step runs: the function to run in its place (by
        default the step itself; Metaflow's hook of the same name)."""
        return step_function

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
    if not cls.name.isidentifier():
        # An identifier, so that ``--with STEP/NAME:...`` can never be read two ways.
        raise BatchwrightError(
            f"{cls.__qualname__} needs a 'name' that is a Python identifier to be "
            f"registered, got {cls.name!r}"
        )
    _REGISTRY[cls.name] = cls
    return cls


def step_decorator_class(name: str, *, option: str | None = None) -> type[StepDecorator]:
    """The registered decorator class called ``name``; UserInputError when unknown
    (naming ``option``, the whole ``--with`` value, when given)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UserInputError(
            f"--with {option or name}: there is no step decorator named '{name}'."
            f"{did_you_mean(name, _REGISTRY)} Known: {known}."
        ) from None


def registered_step_decorators() -> dict[str, type[StepDecorator]]:
    """A copy of the registry (name -> class)."""
    return dict(_REGISTRY)


#: Separates a step from a decorator in a step-scoped ``--with STEP/NAME:k=v``.
STEP_SEPARATOR = "/"


class WithOption(NamedTuple):
    """One ``--with`` value, parsed.

    ``--with NAME[:k=v,...]`` applies to every step (``step`` is None);
    ``--with STEP/NAME[:k=v,...]`` to that step only. Names of steps and decorators are
    identifiers, so the ``/`` can never be part of either.
    """

    decorator: StepDecorator
    #: The one step this option applies to, or None for every step.
    step: str | None
    #: The option as typed (for messages).
    text: str

    def applies_to(self, step: str) -> bool:
        """Whether the option adds or changes ``step``'s decorator."""
        return self.step is None or self.step == step


def parse_with_option(option: str) -> WithOption:
    """Parse one ``--with NAME[:k=v,...]`` or ``--with STEP/NAME[:k=v,...]`` value.

    Whether ``STEP`` is a step of the flow is checked where the graph is known
    (:func:`batchwright.definition.load_definition`).

    Raises:
        UserInputError: the decorator is unknown, the step part is not a name, the order
            is reversed (``NAME/STEP``), or the ``k=v`` part is malformed.
    """
    head, colon, spec = option.partition(":")
    scope, slash, name = (part.strip() for part in head.partition(STEP_SEPARATOR))
    if not slash:
        cls = step_decorator_class(scope, option=option)
        return WithOption(cls.from_spec(spec, option=option), None, option)
    rest = f"{colon}{spec}"
    if not scope.isidentifier():
        raise UserInputError(
            f"--with {option}: '{scope}' is not a step name. Write --with STEP/{name}{rest} "
            f"for one step (e.g. --with train/{name}{rest}), or --with {name}{rest} for "
            "every step."
        )
    if name not in _REGISTRY and scope in _REGISTRY:
        raise UserInputError(
            f"--with {option}: '{name}' is not a step decorator, while '{scope}' is: the "
            f"step comes first. Write --with {name}/{scope}{rest}."
        )
    cls = step_decorator_class(name, option=option)
    return WithOption(cls.from_spec(spec, option=option), scope, option)


def decorator_from_with_option(option: str) -> StepDecorator:
    """Parse one ``--with NAME[:k=v,...]`` value (for every step) into a decorator.

    Raises:
        UserInputError: as :func:`parse_with_option`, and for a step-scoped value
            (``STEP/NAME:...``), whose step this function would drop: use
            :func:`parse_with_option` for those.
    """
    parsed = parse_with_option(option)
    if parsed.step is not None:
        raise UserInputError(
            f"--with {option} applies to step '{parsed.step}' only; it cannot be used "
            "where the option applies to every step."
        )
    return parsed.decorator


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``known`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnbalancedValue(ValueError):
    """A ``--with`` spec leaves a bracket, brace or double quote open, or closes a bracket
    or brace it never opened."""


_CLOSERS = {"[": "]", "{": "}"}


def split_top_level(spec: str, separator: str = ",") -> list[str]:
    """``spec`` split at each ``separator`` outside brackets, braces and double quotes
    (JSON's strings; a backslash escapes the next character inside them). Single quotes
    are ordinary characters: JSON has none, and a plain value may hold an apostrophe.

    Raises:
        UnbalancedValue: a bracket or brace is never closed, or closes nothing (or the
            wrong opener), or a double quote is never closed.
    """
    pieces: list[str] = []
    open_brackets: list[str] = []
    quote: str | None = None
    start = 0
    index = 0
    while index < len(spec):
        char = spec[index]
        if quote is not None:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char == '"':
            quote = char
        elif char in _CLOSERS:
            open_brackets.append(char)
        elif char in _CLOSERS.values():
            if not open_brackets:
                raise UnbalancedValue(f"a '{char}' closes nothing that is open.")
            if _CLOSERS[open_brackets[-1]] != char:
                raise UnbalancedValue(
                    f"a '{char}' stands where the '{open_brackets[-1]}' before it needs a "
                    f"'{_CLOSERS[open_brackets[-1]]}'."
                )
            open_brackets.pop()
        elif char == separator and not open_brackets:
            pieces.append(spec[start:index])
            start = index + 1
        index += 1
    if quote is not None:
        raise UnbalancedValue('a " quote is never closed.')
    if open_brackets:
        raise UnbalancedValue(f"a '{open_brackets[-1]}' is never closed.")
    pieces.append(spec[start:])
    return pieces


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


#: Where a decorator applied to a function that is not (yet) a ``@step`` is recorded.
MISPLACED_ATTRIBUTE = "_misplaced_step_decorators"


def attach_decorator(function: StepFunction, decorator: StepDecorator) -> None:
    """Record ``decorator`` on a step function.

    A decorator written below ``@step`` (or on a method without ``@step``) meets a plain
    function. Raising here would happen while the flow's class body runs, before the
    command line could turn the error into its one-paragraph message and exit code 2,
    so the decorator is recorded as misplaced instead; :func:`misplaced_decorators`
    gives it back and the flow's definition refuses it
    (:func:`batchwright.definition.load_definition`).
    """
    decorators: list[StepDecorator] | None = getattr(function, "_step_decorators", None)
    if decorators is not None:
        decorators.append(decorator)
        return
    misplaced: list[StepDecorator] | None = getattr(function, MISPLACED_ATTRIBUTE, None)
    if misplaced is None:
        misplaced = []
        try:
            setattr(function, MISPLACED_ATTRIBUTE, misplaced)
        except (AttributeError, TypeError):
            # Not a function we can mark (a builtin, a bound method): nothing would ever
            # report it later, so say it now.
            raise UserInputError(
                f"@{decorator.name} is applied to "
                f"'{getattr(function, '__name__', function)}', which is not a step. "
                f"Put @{decorator.name} above @step on a step of the flow."
            ) from None
    misplaced.append(decorator)


def misplaced_decorators(function: StepFunction) -> list[StepDecorator]:
    """The step decorators applied to ``function`` before it was a ``@step`` (written
    below ``@step``, or on a method without ``@step``), outermost first."""
    return list(reversed(getattr(function, MISPLACED_ATTRIBUTE, [])))


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
    decorators: list[StepDecorator],
    with_options: list[StepDecorator],
    step_options: Sequence[StepDecorator] = (),
) -> list[StepDecorator]:
    """A step's decorators with the ``--with`` ones applied.

    ``with_options`` (``--with NAME``, for every step) add the decorators the step does
    not already declare; a decorator written on the step wins over the same one given
    this way, except where it absorbs the command line's values
    (:meth:`StepDecorator.absorb_command_line`, e.g. ``--with batch:cpu=4`` overriding
    one key of ``@batch``). ``step_options`` (``--with STEP/NAME``, for this step) come
    last and replace keys of the step's decorator of that name
    (:meth:`StepDecorator.override_from_command_line`), or add it. Each ``--with``
    decorator is copied per step, since ``step_init`` normalises attributes.
    """
    present = {d.name: d for d in decorators}
    merged = list(decorators)

    def add(extra: StepDecorator) -> None:
        copy = type(extra)(**extra.given)
        copy.from_command_line = True
        merged.append(copy)
        present[copy.name] = copy

    for extra in with_options:
        if extra.name in present:
            present[extra.name].absorb_command_line(extra)
        else:
            add(extra)
    for extra in step_options:
        if extra.name in present:
            present[extra.name].override_from_command_line(extra)
        else:
            add(extra)
    return merged
