"""batchwright: Metaflow-style flows whose heavy steps run on AWS Batch environments
built by the batchwright CDK constructs.

``from batchwright import FlowSpec, step, Parameter, ...`` gives the flow API; the
client classes (``Flow``, ``Run``, ``Step``, ``Task``) are imported on first use so
that task start-up stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchwright.current import current
from batchwright.decorators import batch, catch, environment, resources, retry, timeout
from batchwright.flowspec import FlowSpec, step
from batchwright.parameters import IncludeFile, JSONType, Parameter

if TYPE_CHECKING:
    from batchwright.client import Flow, Run, Step, Task

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "Parameter",
    "Run",
    "Step",
    "Task",
    "__version__",
    "batch",
    "catch",
    "current",
    "environment",
    "resources",
    "retry",
    "step",
    "timeout",
]

_CLIENT_NAMES = frozenset({"Flow", "Run", "Step", "Task"})


def __getattr__(name: str) -> Any:
    # The client is only needed by notebooks and tests, never by a running task.
    if name in _CLIENT_NAMES:
        from batchwright import client

        return getattr(client, name)
    raise AttributeError(f"module 'batchwright' has no attribute '{name}'")
