"""batchwright: Metaflow-style flows whose heavy steps run on AWS Batch environments
built by the batchwright CDK constructs.

``from batchwright import FlowSpec, step, Parameter, ...`` gives the flow API; the
client (``Flow``, ``Run``, ``Step``, ``Task``, ``DataArtifact``, ``Metaflow``,
``namespace``, ``get_namespace``, ``default_namespace``, ``metadata``, ``get_metadata``,
``default_metadata``) is imported on first use so that task start-up stays light.
``@schedule`` (a flow-level decorator) says when a deployed flow runs by itself.

Modules at the paths Metaflow's users import from: :mod:`batchwright.exception`
(``MetaflowException`` and the rest of Metaflow's exception names) and
:mod:`batchwright.metaflow_current` (``current``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The subpackage batchwright.environment (descriptors, routing) shares its name with the
# @environment decorator, and importing a subpackage binds it on its parent. It is
# imported first (it is empty), so the decorator bound below keeps the name whatever the
# CLI imports later: `from batchwright import environment` is always the decorator.
import_module("batchwright.environment")

from batchwright.configs import Config, config_expr  # noqa: E402
from batchwright.current import current  # noqa: E402
from batchwright.decorators import (  # noqa: E402
    batch,
    catch,
    environment,
    parallel,
    resources,
    retry,
    timeout,
)
from batchwright.flowspec import FlowSpec, step  # noqa: E402
from batchwright.parameters import IncludeFile, JSONType, Parameter  # noqa: E402
from batchwright.schedule import schedule  # noqa: E402

if TYPE_CHECKING:
    from batchwright.client import (
        DataArtifact,
        Flow,
        Metaflow,
        Run,
        Step,
        Task,
        default_metadata,
        default_namespace,
        get_metadata,
        get_namespace,
        metadata,
        namespace,
    )

__version__ = "0.1.0"

__all__ = [
    "Config",
    "DataArtifact",
    "Flow",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "Metaflow",
    "Parameter",
    "Run",
    "Step",
    "Task",
    "__version__",
    "batch",
    "catch",
    "config_expr",
    "current",
    "default_metadata",
    "default_namespace",
    "environment",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
    "parallel",
    "resources",
    "retry",
    "schedule",
    "step",
    "timeout",
]

_CLIENT_NAMES = frozenset(
    {
        "DataArtifact",
        "Flow",
        "Metaflow",
        "Run",
        "Step",
        "Task",
        "default_metadata",
        "default_namespace",
        "get_metadata",
        "get_namespace",
        "metadata",
        "namespace",
    }
)


def __getattr__(name: str) -> Any:
    # The client is only needed by notebooks and tests, never by a running task.
    if name in _CLIENT_NAMES:
        from batchwright import client

        return getattr(client, name)
    raise AttributeError(f"module 'batchwright' has no attribute '{name}'")
