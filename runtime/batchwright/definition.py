"""A flow's definition, checked in one place: its graph, its steps' decorators (where they
are written, and the ``--with`` options), its parameters.

The command line checks the whole definition before anything runs
(:func:`load_definition`); each task checks its own step again with the same function
(:func:`step_decorators`), so a flow that passes one passes the other. Nothing here
runs user step code or touches a datastore.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple, TypeGuard

from batchwright.configs import (
    RunConfigs,
    contains_expression,
    flow_configs,
    resolve_configs,
    resolve_value,
)
from batchwright.decorators import (
    StepDecorator,
    StepInitContext,
    WithOption,
    merge_with_options,
    misplaced_decorators,
    parse_with_option,
)
from batchwright.decorators import step_decorators as declared_decorators
from batchwright.decorators.base import did_you_mean
from batchwright.errors import UserInputError
from batchwright.graph import FlowGraph
from batchwright.lint import validate
from batchwright.parameters import flow_constants, flow_parameters


class FlowDefinition(NamedTuple):
    """A flow class with its validated graph and each step's checked decorators."""

    flow_class: type
    graph: FlowGraph
    #: Each step's decorators (``--with`` ones included) after ``step_init``, graph order.
    decorators: Mapping[str, tuple[StepDecorator, ...]]
    #: The ``--with`` options the decorators were built with, as typed.
    with_options: tuple[str, ...] = ()
    #: The run's configs the decorators were resolved with (stored with the run).
    configs: RunConfigs = RunConfigs()

    @property
    def name(self) -> str:
        """The flow's name (its class name)."""
        return self.flow_class.__name__

    @property
    def parallel_steps(self) -> dict[str, int | None]:
        """The parallel steps and their node counts: ``num_parallel`` of the step before
        each, when the source gives it as a literal (else ``None``: known at run time)."""
        return {
            node.name: next(
                (self.graph[p].num_parallel for p in node.in_funcs if p in self.graph), None
            )
            for node in self.graph.nodes.values()
            if node.parallel_step
        }


def is_flow_class(value: object) -> TypeGuard[type]:
    """Whether ``value`` is a flow class: a class with a ``start`` step.

    Structural on purpose: the command line recognises flows without importing the
    FlowSpec module, which itself hands over to the command line.
    """
    return isinstance(value, type) and bool(
        getattr(getattr(value, "start", None), "_is_step", False)
    )


def import_flow_file(path: str, module_name: str | None = None) -> ModuleType:
    """Imports a flow file as a module (named after the file unless ``module_name`` says
    otherwise), its directory first on ``sys.path`` so it imports its neighbours as it does
    when run; a module already imported from that file is reused (a task forked from the
    local backend's warm parent finds the one the parent imported), one that failed to
    import is not.

    Raises:
        UserInputError: the file cannot be imported as Python.
    """
    path = os.path.realpath(path)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = module_name or os.path.splitext(os.path.basename(path))[0]
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserInputError(f"the flow file {path} cannot be imported as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        # As the import system does: a half-executed module is never reused.
        sys.modules.pop(name, None)
        raise
    return module


def step_decorators(
    flow_class: type,
    graph: FlowGraph,
    step: str,
    with_options: Sequence[WithOption] = (),
    configs: RunConfigs | Callable[[], RunConfigs] | None = None,
) -> tuple[StepDecorator, ...]:
    """One step's decorators, the ``--with`` ones merged in, each after ``step_init``.

    ``--with NAME`` options apply to every step; ``--with STEP/NAME`` ones to theirs.
    Config references in the decorators' arguments (``@batch(memory=config.memory)``)
    are replaced by their values first, so each value is checked like a literal;
    ``configs`` gives them (a function is called only when a reference needs it; None:
    resolved from the environment variables and defaults).

    Raises:
        UserInputError: a step decorator is written below ``@step``.
        InvalidValue: a decorator's attribute is not acceptable.
        ConfigError: a config reference cannot be evaluated.
    """
    node = graph[step]
    function = getattr(flow_class, step)
    _refuse_misplaced(graph, step, function)
    # A copy per step and definition: step_init and --with change the objects they get,
    # and the one written in the class (possibly shared by several steps) stays as written.
    written = [copy.deepcopy(decorator) for decorator in declared_decorators(function)]
    for decorator in written:
        if contains_expression(decorator.given) or contains_expression(decorator.attributes):
            if not isinstance(configs, RunConfigs):
                configs = resolve_configs(flow_class) if configs is None else configs()
            where = f"flow '{graph.name}', step '{step}', @{decorator.name}"
            decorator.given = resolve_value(decorator.given, configs.values, where)
            decorator.attributes = resolve_value(decorator.attributes, configs.values, where)
    decorators = merge_with_options(
        written,
        [option.decorator for option in with_options if option.step is None],
        [option.decorator for option in with_options if option.step == step],
    )
    step_type = "foreach" if node.is_foreach else node.type
    context = StepInitContext(graph.name, step, step_type, tuple(decorators))
    for decorator in decorators:
        decorator.step_init(context)
    return tuple(decorators)


def _refuse_misplaced(graph: FlowGraph, attribute: str, function: Callable[..., Any]) -> None:
    """Refuses step decorators applied to ``function`` before it was a step: written below
    ``@step`` (they would never apply), or on a method that is no step at all."""
    misplaced = misplaced_decorators(function)
    if not misplaced:
        return
    names = " and ".join(f"@{d.name}" for d in misplaced)
    one = len(misplaced) == 1
    if attribute in graph:
        raise UserInputError(
            f"flow '{graph.name}', step '{attribute}' (line {graph[attribute].line}): "
            f"{names} {'is' if one else 'are'} written below @step, so "
            f"{'it' if one else 'they'} would not apply. Put {names} above @step."
        )
    code = getattr(function, "__code__", None)
    line = f" (line {code.co_firstlineno})" if code is not None else ""
    raise UserInputError(
        f"flow '{graph.name}': {names} {'is' if one else 'are'} applied to '{attribute}'"
        f"{line}, which is not a step. Add @step below {names}, or remove "
        f"{'it' if one else 'them'}."
    )


def check_decorator_placement(flow_class: type, graph: FlowGraph) -> None:
    """Refuses step decorators that would never apply: written below ``@step``, or on a
    method without ``@step``. They are recorded when the class is defined
    (:func:`batchwright.decorators.attach_decorator`) and refused here, so the command
    line reports them as one paragraph with exit code 2 instead of a traceback from the
    import. The first in the file is reported.

    Raises:
        UserInputError: names the flow, the step (or method) and its line, the decorator
            and the fix.
    """
    found = []
    for attribute in dir(flow_class):
        function = getattr(flow_class, attribute, None)
        if callable(function) and misplaced_decorators(function):
            code = getattr(function, "__code__", None)
            found.append((code.co_firstlineno if code is not None else 0, attribute, function))
    for _, attribute, function in sorted(found):
        _refuse_misplaced(graph, attribute, function)


def check_with_option_steps(graph: FlowGraph, with_options: Sequence[WithOption]) -> None:
    """Refuses a step-scoped ``--with STEP/NAME`` whose step is not a step of the flow.

    Raises:
        UserInputError: names the option and the flow, suggests the closest step and
            lists the steps.
    """
    for option in with_options:
        if option.step is not None and option.step not in graph:
            steps = ", ".join(node.name for node in graph)
            raise UserInputError(
                f"--with {option.text}: flow '{graph.name}' has no step '{option.step}'."
                f"{did_you_mean(option.step, graph.nodes)} Steps: {steps}."
            )


def load_definition(
    flow_class: type, with_options: Sequence[str] = (), configs: RunConfigs | None = None
) -> FlowDefinition:
    """The checked definition of ``flow_class`` with the ``--with`` options applied, its
    decorators' config references resolved with ``configs`` (None: the flow's configs
    resolved from the environment variables and defaults,
    :func:`batchwright.configs.resolve_configs`).

    Raises:
        GraphError: the graph is malformed (names the step and its line).
        InvalidValue: a decorator's or parameter's declaration is not acceptable.
        UserInputError: a step decorator is written below ``@step`` or on a method that
            is no step; a ``--with`` option names no decorator, or (``STEP/NAME``) no
            step of the flow; a parameter or config has the name of a step, or a
            parameter the name of a config.
        ConfigError: a config is declared wrongly or has no acceptable value, or a
            config reference cannot be evaluated.
    """
    graph = FlowGraph(flow_class)
    validate(graph)
    check_decorator_placement(flow_class, graph)
    parsed = [parse_with_option(option) for option in with_options]
    check_with_option_steps(graph, parsed)
    if configs is None:
        configs = resolve_configs(flow_class)
    _check_config_names(flow_class, graph)
    decorators = {
        node.name: step_decorators(flow_class, graph, node.name, parsed, configs) for node in graph
    }
    for attribute, parameter in flow_parameters(flow_class).items():
        parameter.check_declaration(graph.name)
        if attribute in graph:
            raise UserInputError(
                f"flow '{graph.name}': parameter '{attribute}' has the name of a step. "
                "Rename the parameter or the step."
            )
    _check_constants(flow_class, graph)
    return FlowDefinition(flow_class, graph, decorators, tuple(with_options), configs)


def _check_constants(flow_class: type, graph: FlowGraph) -> None:
    """Refuses a class-level value that cannot be stored: the flow's constants are
    pickled with the run's parameters (see :func:`batchwright.parameters.flow_constants`)."""
    import pickle

    for name, value in flow_constants(flow_class).items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise UserInputError(
                f"flow '{graph.name}': the class attribute '{name}' ({type(value).__name__}) "
                f"is a constant of the flow, stored with every run, but it cannot be pickled "
                f"({type(error).__name__}: {error}). Name it '_{name}' to keep it out of the "
                "run's artifacts, or create it inside the step that uses it."
            ) from None


def _check_config_names(flow_class: type, graph: FlowGraph) -> None:
    """Refuses a config stored under the name of a step or of a parameter (both are
    artifacts of the run)."""
    parameters = flow_parameters(flow_class)
    for attribute, config in flow_configs(flow_class).items():
        clash = "a step" if attribute in graph else "a parameter" if attribute in parameters else ""
        if clash:
            raise UserInputError(
                f"flow '{graph.name}': config '{config.name}' is stored as '{attribute}', the "
                f"name of {clash}. Rename the config's attribute or the {clash[2:]}."
            )
