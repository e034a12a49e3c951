"""The flow API: ``FlowSpec``, ``@step``, ``self.next(...)``, joins and ``merge_artifacts``.

A flow is a class deriving from :class:`FlowSpec` whose ``@step`` methods end with
``self.next(...)``. Instance attributes set in a step (names not starting with ``_``)
are the step's *artifacts*: they are persisted when the step ends and inherited by the
steps after it. Inherited artifacts are loaded lazily, on first access, so a step only
pays for what it reads.

When a flow file runs as a script (``python flow.py run``), ``MyFlow()`` hands over to
the command line (:mod:`batchwright.cli.flow`), as in Metaflow.
"""

from __future__ import annotations

import reprlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from batchwright.entrypoint import DoNotRetry
from batchwright.exception import (
    MetaflowException,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)

if TYPE_CHECKING:
    from batchwright.graph import FlowGraph

_F = TypeVar("_F", bound=Callable[..., Any])

#: How much of a foreach item ``ForeachFrame.value`` keeps, as Metaflow's default.
FOREACH_VALUE_CHARS = 30


class StepFailed(MetaflowException):
    """A step used the flow API wrongly at run time (bad self.next, merge_artifacts
    outside a join...); a Metaflow exception, as Metaflow raises there."""


class ForeachFrame(NamedTuple):
    """One open foreach, as Metaflow's ``self._foreach_stack`` holds it: the step that
    runs once per item (the first step after the split; None in tasks of runs made before
    batchwright recorded it), the artifact fanned out over, how many items it has, this
    task's position and the item's value as short text (a parallel step's frame has no
    value)."""

    step: str | None
    var: str
    num_splits: int | None
    # Metaflow's field name, although it hides tuple.index.
    index: int  # type: ignore[assignment]
    value: str | None


class ArtifactLoader(Protocol):
    """Loads an artifact's value by its content key (the datastore implements this)."""

    def load(self, key: str, what: str = "") -> Any:
        """The value stored under ``key`` (``what`` names it in errors)."""
        ...

    def load_item(self, split_key: str, index: int) -> Any:
        """Item ``index`` of the foreach items stored under ``split_key``."""
        ...


def step(function: _F) -> _F:
    """Mark a method of a FlowSpec as a step of the flow."""
    function._is_step = True  # type: ignore[attr-defined]
    # Metaflow's step functions carry their name (``for step in flow: step.name``).
    function.name = function.__name__  # type: ignore[attr-defined]
    if not hasattr(function, "_step_decorators"):
        function._step_decorators = []  # type: ignore[attr-defined]
    return function


class _MissingArtifact(AttributeError):
    pass


class ArtifactHolder:
    """Lazy access to artifacts by name: values set here, or references loaded on demand."""

    _refs: dict[str, str]
    _loader: ArtifactLoader | None
    _cache: dict[str, Any]
    _owner: str

    def _init_holder(self, refs: dict[str, str], loader: ArtifactLoader | None, owner: str) -> None:
        object.__setattr__(self, "_refs", refs)
        object.__setattr__(self, "_loader", loader)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "_owner", owner)

    def _load_artifact(self, name: str) -> Any:
        values = self.__dict__
        if name in values and not name.startswith("_"):
            return values[name]
        cache = values.get("_cache", {})
        if name in cache:
            return cache[name]
        refs = values.get("_refs", {})
        if name in refs and values.get("_loader") is not None:
            owner = values.get("_owner", type(self).__name__)
            value = values["_loader"].load(refs[name], f"artifact '{name}' of {owner}")
            cache[name] = value
            return value
        raise _MissingArtifact(
            f"{values.get('_owner', type(self).__name__)} has no artifact '{name}'"
        )

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: an inherited artifact, or a real miss.
        if name.startswith("__"):
            raise AttributeError(name)
        return self._load_artifact(name)


class ConstantAssigned(AttributeError, DoNotRetry):
    """A step assigned one of the flow's constants: an AttributeError, as in Metaflow, that
    fails the same way on every attempt, so no retry runs."""


_CONSTANT_NAMES: dict[type, frozenset[str]] = {}


def _constant_names(flow_class: type) -> frozenset[str]:
    names = _CONSTANT_NAMES.get(flow_class)
    if names is None:
        from batchwright.parameters import flow_constants

        names = _CONSTANT_NAMES[flow_class] = frozenset(flow_constants(flow_class))
    return names


class FlowSpec(ArtifactHolder):
    """Base class of every flow.

    ``MyFlow()`` at the bottom of a flow file starts the command line; the runtime
    creates instances with ``use_cli=False``.

    Class-level values (``LEARNING_RATE = 0.1`` in the class body) are the flow's
    constants: artifacts of every task, which a step cannot assign (see
    :func:`~batchwright.parameters.flow_constants`).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name in _constant_names(type(self)):
            raise ConstantAssigned(
                f"flow '{type(self).__name__}': '{name}' is a constant of the flow (a value "
                "set in its class body), so steps cannot assign it. Store the new value "
                "under another name, or make it a Parameter."
            )
        object.__setattr__(self, name, value)

    def __init__(self, use_cli: bool = True) -> None:
        self._init_holder({}, None, f"flow '{type(self).__name__}'")
        #: What ``self.next`` was called with: steps, ``foreach``, ``num_parallel``.
        self._transition: tuple[list[str], str | None, int | None] | None = None
        self._foreach_frames: list[dict[str, Any]] = []
        self._is_join = False
        self._parameter_names: frozenset[str] = frozenset()
        #: The running step's name (Metaflow's ``self._current_step``); None outside a task.
        self._current_step: str | None = None
        if use_cli:
            from batchwright.cli.flow import main

            sys.exit(main(type(self)))

    def _prepare_task(
        self,
        loader: ArtifactLoader,
        refs: Mapping[str, str],
        foreach_frames: list[dict[str, Any]],
        *,
        parameter_names: frozenset[str],
        is_join: bool,
        owner: str,
        step_name: str | None = None,
    ) -> None:
        """Make this instance the flow of one task: the artifacts it inherits (content keys
        loaded lazily through ``loader``), the open foreach frames, the flow's parameter
        names, whether the step is a join and the step's name. Called once, by the task
        runner."""
        self._init_holder(dict(refs), loader, owner)
        self._foreach_frames = foreach_frames
        self._parameter_names = parameter_names
        self._current_step = step_name
        self._is_join = is_join

    @property
    def name(self) -> str:
        """The flow's name (its class name)."""
        return type(self).__name__

    #: What a switch's ``self.next`` chose: the condition artifact, the chosen step and
    #: every case (key -> step). None when the step is not a switch.
    _switch: tuple[str, str, dict[Any, str]] | None = None

    def next(
        self,
        *steps: Callable[..., Any] | Mapping[Any, Callable[..., Any]],
        foreach: str | None = None,
        num_parallel: int | None = None,
        condition: str | None = None,
    ) -> None:
        """Name the step(s) that run after this one; ``foreach`` fans out over an artifact,
        ``num_parallel`` runs the next step on that many nodes at once (a multi-node job
        on AWS Batch, processes side by side locally), its tasks meeting in a join.

        A *switch*, ``self.next({"a": self.step_a, "b": self.step_b}, condition="var")``,
        runs only the case whose key equals the value of artifact ``var`` (compared as
        is, as in Metaflow: ``"1"`` is not ``1``); a value that is no key fails the task.
        """
        if condition is not None or (len(steps) == 1 and isinstance(steps[0], Mapping)):
            self._next_case(steps, condition, foreach, num_parallel)
            return
        names = []
        for target in steps:
            name = getattr(target, "__name__", None)
            if name is None or not getattr(target, "_is_step", False):
                raise StepFailed(
                    f"self.next() got {target!r}, which is not a step. Pass steps as "
                    "self.<step_name>."
                )
            names.append(name)
        if self._transition is not None:
            raise StepFailed("self.next() was called twice; call it once, at the end of the step.")
        if num_parallel is not None and (
            isinstance(num_parallel, bool) or not isinstance(num_parallel, int) or num_parallel < 1
        ):
            # The same call fails the same way on every attempt: no @retry helps.
            raise DoNotRetry(
                f"self.next(..., num_parallel={num_parallel!r}): num_parallel is the number of "
                "nodes, a whole number of at least 1."
            )
        self._transition = (names, foreach, num_parallel)

    def _next_case(
        self,
        steps: Sequence[object],
        condition: object,
        foreach: str | None,
        num_parallel: int | None,
    ) -> None:
        """``self.next({...}, condition="var")``: picks the case the value of ``var``
        names and records it (:attr:`_switch`, and the chosen step as the transition)."""
        from batchwright.current import current

        where = f"step '{current.step_name}'" if current.step_name else "self.next()"
        usage = 'Write self.next({"<value>": self.<step>, ...}, condition="<artifact>").'
        if self._transition is not None:
            raise StepFailed("self.next() was called twice; call it once, at the end of the step.")
        if condition is None:
            raise StepFailed(
                f"{where}: self.next() got a dict of cases without condition=, so nothing "
                f"picks a case. {usage}"
            )
        if not isinstance(condition, str) or not condition:
            raise StepFailed(
                f"{where}: condition= must be the name of an artifact, got {condition!r}. {usage}"
            )
        if foreach is not None or num_parallel is not None:
            raise StepFailed(
                f"{where}: a switch (condition=) cannot be combined with foreach= or "
                f"num_parallel=. {usage}"
            )
        cases = steps[0] if len(steps) == 1 else None
        if not isinstance(cases, Mapping) or not cases:
            raise StepFailed(
                f"{where}: condition= needs one non-empty dict of cases as the only argument "
                f"of self.next(). {usage}"
            )
        names: dict[Any, str] = {}
        for key, target in cases.items():
            name = getattr(target, "__name__", None)
            if name is None or not getattr(target, "_is_step", False):
                raise StepFailed(
                    f"{where}: switch case {key!r} goes to {target!r}, which is not a step. "
                    "Pass steps as self.<step_name>."
                )
            names[key] = name
        try:
            value = getattr(self, condition)
        except AttributeError:
            # The same code fails the same way on every attempt: no @retry helps.
            raise DoNotRetry(
                f"{where}: the switch condition '{condition}' names no artifact. Set "
                f"self.{condition} before self.next()."
            ) from None
        try:
            chosen = names.get(value)
        except TypeError:  # an unhashable value is no key
            chosen = None
        if chosen is None:
            hint = ""
            if not isinstance(value, str) and str(value) in names:
                hint = f" (the keys are strings: set self.{condition} = str(...))"
            raise DoNotRetry(
                f"{where}: the switch condition self.{condition} is {value!r:.80}, which is "
                f"none of its cases {list(names)}{hint}. Set self.{condition} to one of them, "
                "or add a case for that value."
            )
        self._switch = (condition, chosen, names)
        self._transition = ([chosen], None, None)

    @property
    def input(self) -> Any:
        """In a foreach, the item of the fanned-out artifact this task works on (None
        outside a foreach, as in Metaflow)."""
        if not self._foreach_frames:
            return None
        frame = self._foreach_frames[-1]
        return _foreach_item(self, frame)

    @property
    def index(self) -> int | None:
        """In a foreach, the position of :attr:`input` (None outside a foreach)."""
        if not self._foreach_frames:
            return None
        return int(self._foreach_frames[-1]["index"])

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """``(index, num_splits, input)`` for every open foreach, outermost first."""
        return [(f["index"], f["num_splits"], _foreach_item(self, f)) for f in self._foreach_frames]

    @property
    def _foreach_stack(self) -> list[ForeachFrame]:
        """Every open foreach as Metaflow's frames (:class:`ForeachFrame`), outermost
        first; an empty list outside a foreach."""
        return _foreach_frames_of(self, self._foreach_frames)

    @property
    def _graph(self) -> FlowGraph:
        """The flow's graph, as Metaflow's ``self._graph``: ``self._graph["name"].type``
        is the step's type (start, linear, split, foreach, join, end...)."""
        from batchwright.graph import FlowGraph

        cls = type(self)
        graph = cls.__dict__.get("_batchwright_graph")
        if graph is None:
            graph = FlowGraph(cls)
            cls._batchwright_graph = graph  # type: ignore[attr-defined]
        return graph

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        """The steps (their methods, each with ``.name``), in the graph's order: Metaflow's
        ``for step in flow``."""
        return iter([getattr(self, node.name) for node in self._graph])

    def merge_artifacts(
        self,
        inputs: Inputs,
        exclude: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
    ) -> None:
        """In a join, take over the artifacts of ``inputs`` that do not conflict.

        An artifact is merged when every input that has it holds the same value (compared
        by content key, without loading it). Artifacts already set in this join, and those
        in ``exclude``, are skipped. With ``include``, only those names are merged, and
        each must exist. A conflict raises an error that names the artifacts.
        """
        step_name = self._current_step or "this step"
        if not self._is_join:
            raise StepFailed(
                f"merge_artifacts() can only be called in a join, and step '{step_name}' is "
                "not a join."
            )
        if include and exclude:
            raise StepFailed("merge_artifacts() takes include= or exclude=, not both.")
        excluded = set(exclude or ())
        only = set(include) if include else None
        keys: dict[str, str] = {}
        conflicts: list[str] = []
        for view in inputs:
            for name, key in view._refs.items():
                if only is not None and name not in only:
                    continue
                if name in excluded or self._sets_itself(name):
                    continue
                if keys.setdefault(name, key) != key and name not in conflicts:
                    conflicts.append(name)
        # Nothing is merged unless everything is: a failed call leaves the join unchanged.
        if conflicts:
            raise UnhandledInMergeArtifactsException(
                f"step '{step_name}': merge_artifacts() found different values for "
                f"{conflicts} across the inputs. Set them explicitly in the join (e.g. "
                "self.x = max(i.x for i in inputs)) before merging, or pass "
                f"exclude={conflicts}.",
                conflicts,
            )
        missing = [n for n in include or () if n not in keys and not self._sets_itself(n)]
        if missing:
            raise MissingInMergeArtifactsException(
                f"step '{step_name}': merge_artifacts(include=...) names {missing}, which no "
                "input has. Remove them from include.",
                missing,
            )
        self._refs.update(keys)

    def _sets_itself(self, name: str) -> bool:
        # Artifacts the join set itself, and the parameters, are never merged over.
        return name in self.__dict__ or name in self._parameter_names


def _foreach_item(holder: ArtifactHolder, frame: dict[str, Any]) -> Any:
    if frame.get("parallel"):
        return frame["index"]  # a parallel step's item is its node index, as in Metaflow
    key = frame.get("key")
    split = frame.get("split")
    loader = holder.__dict__.get("_loader")
    if split and loader is not None:
        # Only this task's item is read, however many items the foreach has.
        cache = holder.__dict__["_cache"]
        if ("item", split, frame["index"]) not in cache:
            cache[("item", split, frame["index"])] = loader.load_item(split, frame["index"])
        return cache[("item", split, frame["index"])]
    if key and loader is not None:
        cache = holder.__dict__["_cache"]
        if ("foreach", key) not in cache:
            what = f"the foreach list '{frame.get('var')}' of {holder.__dict__.get('_owner')}"
            cache[("foreach", key)] = loader.load(key, what)
        values = cache[("foreach", key)]
    else:
        values = holder._load_artifact(frame["var"])
    return values[frame["index"]]


def _foreach_frames_of(
    holder: ArtifactHolder, frames: Sequence[dict[str, Any]]
) -> list[ForeachFrame]:
    stack = []
    for frame in frames:
        value = None
        if not frame.get("parallel"):
            # Metaflow's rule: a str, int, float or bool item as text, anything else as its
            # short repr, both cut to FOREACH_VALUE_CHARS.
            item = _foreach_item(holder, frame)
            text = str(item) if isinstance(item, str | int | float) else reprlib.repr(item)
            value = text[:FOREACH_VALUE_CHARS]
        stack.append(
            ForeachFrame(
                frame.get("inner_step"),
                frame["var"],
                frame.get("num_splits"),
                int(frame["index"]),
                value,
            )
        )
    return stack


class InputView(ArtifactHolder):
    """One input of a join: the artifacts of a parent task, loaded on access."""

    def __init__(
        self,
        step_name: str,
        task_id: str,
        refs: dict[str, str],
        loader: ArtifactLoader,
        foreach_frames: list[dict[str, Any]],
        wanted: set[str] | None = None,
    ) -> None:
        self._init_holder(dict(refs), loader, f"input {step_name}/{task_id}")
        object.__setattr__(self, "_step", step_name)
        object.__setattr__(self, "_task_id", task_id)
        object.__setattr__(self, "_foreach_frames", foreach_frames)
        #: Names read from inputs so far (shared by a join's inputs, to read ahead).
        object.__setattr__(self, "_wanted", wanted if wanted is not None else set())

    def _load_artifact(self, name: str) -> Any:
        self.__dict__["_wanted"].add(name)
        return super()._load_artifact(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("inputs of a join are read-only; set artifacts on self instead")

    @property
    def input(self) -> Any:
        """The foreach item this input worked on."""
        frames = self.__dict__["_foreach_frames"]
        if not frames:
            raise AttributeError("this input is not part of a foreach")
        return _foreach_item(self, frames[-1])

    @property
    def index(self) -> int | None:
        """The foreach position of this input, or None."""
        frames = self.__dict__["_foreach_frames"]
        return int(frames[-1]["index"]) if frames else None

    @property
    def _foreach_stack(self) -> list[ForeachFrame]:
        """The foreach frames this input ran in (see :attr:`FlowSpec._foreach_stack`)."""
        return _foreach_frames_of(self, self.__dict__["_foreach_frames"])

    def __repr__(self) -> str:
        return f"<input {self.__dict__['_step']}/{self.__dict__['_task_id']}>"


#: Inputs read ahead while a join iterates over its inputs, and the threads reading them.
READ_AHEAD = 32
READ_AHEAD_THREADS = 8


class Inputs(Sequence[InputView]):
    """The inputs of a join: iterate, index, or reach a branch as ``inputs.<step>``.

    Views are made on demand and not kept, so a join over 10,000 inputs holds only the
    inputs its code holds. Iterating reads ahead: the artifacts read from the inputs so
    far are loaded, in parallel, for the next :data:`READ_AHEAD` inputs.
    """

    def __init__(self, metadata: Sequence[Mapping[str, Any]], loader: ArtifactLoader) -> None:
        self._metadata = list(metadata)
        self._loader = loader
        self._wanted: set[str] = set()

    def _view(self, index: int, loaded: Mapping[str, Any] | None = None) -> InputView:
        meta = self._metadata[index]
        view = InputView(
            meta["step"],
            meta["task_id"],
            meta["artifacts"],
            self._loader,
            meta.get("foreach_frames", []),
            self._wanted,
        )
        if loaded:
            view.__dict__["_cache"].update(loaded)
        return view

    def _read_ahead(self, index: int, names: frozenset[str]) -> dict[str, Any]:
        meta = self._metadata[index]
        refs = meta["artifacts"]
        owner = f"input {meta['step']}/{meta['task_id']}"
        return {
            name: self._loader.load(refs[name], f"artifact '{name}' of {owner}")
            for name in names
            if name in refs
        }

    def __len__(self) -> int:
        return len(self._metadata)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._view(i) for i in range(len(self))[index]]
        return self._view(range(len(self))[index])

    def __iter__(self) -> Iterator[InputView]:
        if len(self) <= 1:
            yield from (self._view(i) for i in range(len(self)))
            return
        from concurrent.futures import Future, ThreadPoolExecutor

        pending: dict[int, Future[dict[str, Any]]] = {}
        with ThreadPoolExecutor(max_workers=READ_AHEAD_THREADS) as pool:
            for index in range(len(self)):
                names = frozenset(self._wanted)
                for ahead in range(index + 1, min(len(self), index + 1 + READ_AHEAD)):
                    if names and ahead not in pending:
                        pending[ahead] = pool.submit(self._read_ahead, ahead, names)
                loaded = pending.pop(index).result() if index in pending else None
                yield self._view(index, loaded)

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for index, meta in enumerate(self._metadata):
            if meta["step"] == name:
                return self._view(index)
        steps = sorted({m["step"] for m in self._metadata})
        raise AttributeError(f"the join has no input from step '{name}' (inputs come from {steps})")
