"""Metaflow's exception names, at the module path Metaflow's users import them from.

``from metaflow.exception import MetaflowException`` becomes
``from batchwright.exception import MetaflowException``: the same classes, with the same
constructor arguments and attributes (``headline``, ``message``, ``line_no``,
``source_file``; ``artifact_names`` on the merge errors). They are batchwright errors
(:class:`batchwright.errors.BatchwrightError`) as well, so one ``except`` catches both.

A user's own subclass (``class Oops(MetaflowException): headline = "Oops"``) raised in a
step fails the attempt like any other exception: ``@retry`` runs the step again and
``@catch`` stores it, under its own type name.

The client's errors live here too (:class:`ClientError`, :class:`FlowNotFound`,
:class:`MetaflowNamespaceMismatch`); :mod:`batchwright.client` raises them.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

from batchwright.errors import BatchwrightError

__all__ = [
    "CommandException",
    "ExternalCommandFailed",
    "MetaflowDataMissing",
    "MetaflowException",
    "MetaflowExceptionWrapper",
    "MetaflowInternalError",
    "MetaflowInvalidPathspec",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MissingInMergeArtifactsException",
    "UnhandledInMergeArtifactsException",
]


def _rebuild(kind: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    # Subclasses take constructor arguments their ``args`` do not hold (Metaflow's
    # ``UnhandledInMergeArtifactsException(msg, unhandled)``): unpickling makes the object
    # without calling __init__ and restores its attributes from the pickled state.
    error = kind.__new__(kind)
    error.args = args
    return error


class MetaflowException(BatchwrightError):
    """Base of Metaflow's exceptions: a ``headline`` (one line naming the kind of failure)
    and a message, optionally located by ``lineno`` and ``source_file``.

    ``str(error)`` is the message, prefixed ``line N:`` (or ``FILE:``) when located, as in
    Metaflow.
    """

    headline: str = "Flow failed"
    message: str = ""
    line_no: int | None = None
    source_file: str | None = None

    def __init__(
        self, msg: str = "", lineno: int | None = None, source_file: str | None = None
    ) -> None:
        super().__init__(msg)
        self.message = msg
        self.line_no = lineno
        self.source_file = source_file

    def __str__(self) -> str:
        prefix = ""
        if self.source_file:
            prefix = f"{self.source_file}:"
        if self.line_no:
            prefix = f"line {self.line_no}:"
        return f"{prefix} {self.message}" if prefix else str(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), self.__dict__)


class MetaflowExceptionWrapper(Exception):
    """An exception turned into plain data that unpickles without the code that raised
    it: ``type`` (``module.ClassName``), ``exception`` (its message) and ``stacktrace``.

    What ``@catch(var=...)`` stores is one (:class:`batchwright.decorators.CaughtException`).
    """

    type: str | None = None
    exception: str | None = None
    stacktrace: str | None = None

    def __init__(self, exc: BaseException | None = None) -> None:
        super().__init__()
        if exc is not None:
            self.type = f"{type(exc).__module__}.{type(exc).__qualname__}"
            self.exception = str(exc)
            if exc.__traceback__ is not None:
                self.stacktrace = "".join(traceback.format_exception(exc))
            elif sys.exc_info()[1] is exc:
                self.stacktrace = traceback.format_exc()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), ()), self.__dict__)

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.stacktrace:
            return self.stacktrace
        return f"[no stacktrace]\n{self.type}: {self.exception}"


class ExternalCommandFailed(MetaflowException):
    """A command the flow ran failed."""

    headline = "External command failed"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)


class MetaflowNotFound(MetaflowException):
    """The requested object does not exist."""

    headline = "Object not found"


class MetaflowInvalidPathspec(MetaflowException):
    """A pathspec that names no flow, run, step or task."""

    headline = "Invalid pathspec"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)


class MetaflowInternalError(MetaflowException):
    """Something that should not happen did: a bug, not bad input."""

    headline = "Internal error"


class CommandException(MetaflowException):
    """A command was used wrongly."""

    headline = "Invalid command"


class MetaflowDataMissing(MetaflowException):
    """Data the flow expected is not in the datastore."""

    headline = "Data missing"


class UnhandledInMergeArtifactsException(MetaflowException):
    """``merge_artifacts`` found artifacts whose values differ across the join's inputs;
    ``artifact_names`` lists them. Nothing was merged."""

    headline = "Unhandled artifacts in merge"

    def __init__(self, msg: str, unhandled: Sequence[str]) -> None:
        super().__init__(msg)
        self.artifact_names = list(unhandled)


class MissingInMergeArtifactsException(MetaflowException):
    """``merge_artifacts(include=...)`` names artifacts that no input has;
    ``artifact_names`` lists them. Nothing was merged."""

    headline = "Missing artifacts in merge"

    def __init__(self, msg: str, unhandled: Sequence[str]) -> None:
        super().__init__(msg)
        self.artifact_names = list(unhandled)


# -- the client's errors (batchwright.client raises them) -----------------------------------


class ClientError(BatchwrightError, KeyError):
    """The requested flow, run, step, task or artifact does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FlowNotFound(ClientError):
    """No datastore the client looked in holds a run of the flow (Metaflow's
    ``MetaflowNotFound``)."""


class MetaflowNamespaceMismatch(ClientError):
    """A run, or a step, task or artifact of one, asked for by id outside the current
    namespace (Metaflow's ``MetaflowNamespaceMismatch``)."""

    def __init__(self, asked: str, run: str, namespace: str, tags: Iterable[str]) -> None:
        self.asked = asked
        self.run = run
        self.namespace = namespace
        self.tags = frozenset(tags)
        listed = ", ".join(f"'{tag}'" for tag in sorted(self.tags)) or "none"
        owner = "" if asked == f"Run('{run}')" else f" belongs to run {run}, which"
        user = sorted(tag for tag in self.tags if tag.startswith("user:"))
        switch = f" or namespace('{user[0]}') for its user's runs" if user else ""
        super().__init__(
            f"{asked}{owner} is not in the namespace '{namespace}': the run's tags are "
            f"{listed}. Call namespace(None) to read runs of every namespace{switch}, "
            "then ask again; or pass _namespace_check=False for this one object."
        )
