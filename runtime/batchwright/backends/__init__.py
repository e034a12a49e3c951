"""Execution backends, by name: ``local`` (a subprocess per task) and ``batch`` (AWS Batch).

The plan chooses a step's backend (:func:`choose_backend_name`): a decorator class asks
for one through its ``backend`` class attribute (``@batch`` asks for ``"batch"``); steps
asking for none, or for one nobody registered, run on ``"local"``. The scheduler creates
each backend once per run (:func:`create_backend`). Other backends (and test doubles)
register a factory with :func:`register_backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from batchwright.backends.base import (
    DEFAULT_FOLLOW_LOGS,
    AttemptFacts,
    Backend,
    BackendOptions,
    FanOut,
    TaskHandle,
    TaskSpec,
    TaskStatus,
    WaitPolicy,
)

BackendFactory = Callable[[BackendOptions], Backend]

__all__ = [
    "DEFAULT_FOLLOW_LOGS",
    "AttemptFacts",
    "Backend",
    "BackendFactory",
    "BackendOptions",
    "FanOut",
    "TaskHandle",
    "TaskSpec",
    "TaskStatus",
    "WaitPolicy",
    "choose_backend_name",
    "create_backend",
    "register_backend",
    "wanted_but_missing",
]


def _local(options: BackendOptions) -> Backend:
    from batchwright.backends.local import LocalBackend

    return LocalBackend(options)


def _aws_batch(options: BackendOptions) -> Backend:
    # Imported on first use: only runs with @batch steps need boto3 clients.
    from batchwright.backends.aws_batch import AwsBatchBackend

    return AwsBatchBackend(options)


_FACTORIES: dict[str, BackendFactory] = {"local": _local, "batch": _aws_batch}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available under ``name`` (replacing one of that name)."""
    _FACTORIES[name] = factory


def choose_backend_name(decorators: Iterable[object]) -> str:
    """The backend a step's tasks run on, from its decorators (default ``"local"``)."""
    for decorator in decorators:
        wanted = getattr(decorator, "backend", None)
        if wanted and wanted in _FACTORIES:
            return str(wanted)
    return "local"


def wanted_but_missing(decorators: Iterable[object]) -> list[str]:
    """Backends the decorators ask for that nobody registered (reported as a notice)."""
    wanted = (getattr(d, "backend", None) for d in decorators)
    return [str(name) for name in wanted if name and name not in _FACTORIES]


def create_backend(name: str, options: BackendOptions) -> Backend:
    """A new backend instance for one run."""
    return _FACTORIES[name](options)
