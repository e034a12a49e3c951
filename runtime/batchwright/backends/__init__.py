"""Execution backends and the chooser that decides, per step, where tasks run.

A decorator class asks for a backend through its ``backend`` class attribute (``@batch``
sets ``"batch"``). :func:`choose_backend_name` takes the first decorator asking for a
registered backend; steps asking for none, or for one nobody registered, run on
``"local"``. Backends register a factory with :func:`register_backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from batchwright.backends.base import (
    Backend,
    BackendOptions,
    FanOut,
    TaskHandle,
    TaskSpec,
    TaskStatus,
    array_entrypoint_arguments,
)

BackendFactory = Callable[[BackendOptions], Backend]
_FACTORIES: dict[str, BackendFactory] = {}

__all__ = [
    "Backend",
    "BackendFactory",
    "BackendOptions",
    "FanOut",
    "TaskHandle",
    "TaskSpec",
    "TaskStatus",
    "array_entrypoint_arguments",
    "choose_backend_name",
    "create_backend",
    "register_backend",
    "registered_backends",
]


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available under ``name``."""
    _FACTORIES[name] = factory


def registered_backends() -> list[str]:
    """Names of the registered backends."""
    _ensure_local()
    return sorted(_FACTORIES)


def choose_backend_name(decorators: Iterable[object]) -> str:
    """The backend a step's tasks run on, from its decorators (default ``"local"``)."""
    _ensure_local()
    for decorator in decorators:
        wanted = getattr(decorator, "backend", None)
        if wanted and wanted in _FACTORIES:
            return str(wanted)
    return "local"


def wanted_but_missing(decorators: Iterable[object]) -> list[str]:
    """Backends the decorators ask for that nobody registered (reported as a notice)."""
    _ensure_local()
    wanted = (getattr(d, "backend", None) for d in decorators)
    return [str(name) for name in wanted if name and name not in _FACTORIES]


def create_backend(name: str, options: BackendOptions) -> Backend:
    """A new backend instance for one run."""
    _ensure_local()
    return _FACTORIES[name](options)


def _ensure_local() -> None:
    if "local" not in _FACTORIES:
        from batchwright.backends.local import LocalBackend

        _FACTORIES["local"] = LocalBackend
