"""A flow's definition, checked in one place: its graph, its steps' decorators, its parameters.

The command line checks the whole definition before anything runs
(:func:`load_definition`); each task checks its own step again with the same function
(:func:`step_decorators`), so a flow that passes one passes the other. Nothing here
runs user step code or touches a datastore.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import NamedTuple, TypeGuard

from batchwright.decorators import (
    StepDecorator,
    StepInitContext,
    decorator_from_with_option,
    merge_with_options,
)
from batchwright.decorators import step_decorators as declared_decorators
from batchwright.errors import UserInputError
from batchwright.graph import FlowGraph
from batchwright.lint import validate
from batchwright.parameters import flow_parameters


class FlowDefinition(NamedTuple):
    """A flow class with its validated graph and each step's checked decorators."""

    flow_class: type
    graph: FlowGraph
    #: Each step's decorators (``--with`` ones included) after ``step_init``, graph order.
    decorators: Mapping[str, tuple[StepDecorator, ...]]
    #: The ``--with`` options the decorators were built with, as typed.
    with_options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The flow's name (its class name)."""
        return self.flow_class.__name__


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
    with_decorators: Sequence[StepDecorator] = (),
) -> tuple[StepDecorator, ...]:
    """One step's decorators, the ``--with`` ones merged in, each after ``step_init``.

    Raises:
        InvalidValue: a decorator's attribute is not acceptable.
    """
    node = graph[step]
    function = getattr(flow_class, step)
    decorators = merge_with_options(declared_decorators(function), list(with_decorators))
    step_type = "foreach" if node.is_foreach else node.type
    context = StepInitContext(graph.name, step, step_type, tuple(decorators))
    for decorator in decorators:
        decorator.step_init(context)
    return tuple(decorators)


def load_definition(flow_class: type, with_options: Sequence[str] = ()) -> FlowDefinition:
    """The checked definition of ``flow_class`` with the ``--with`` options applied.

    Raises:
        GraphError: the graph is malformed (names the step and its line).
        InvalidValue: a decorator's or parameter's declaration is not acceptable.
        UserInputError: a ``--with`` option names no decorator, or a parameter has the
            name of a step.
    """
    graph = FlowGraph(flow_class)
    validate(graph)
    extra = [decorator_from_with_option(option) for option in with_options]
    decorators = {node.name: step_decorators(flow_class, graph, node.name, extra) for node in graph}
    for attribute, parameter in flow_parameters(flow_class).items():
        parameter.check_declaration(graph.name)
        if attribute in graph:
            raise UserInputError(
                f"flow '{graph.name}': parameter '{attribute}' has the name of a step. "
                "Rename the parameter or the step."
            )
    return FlowDefinition(flow_class, graph, decorators, tuple(with_options))
