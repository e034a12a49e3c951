"""One exception hierarchy for everything batchwright raises on purpose.

Every user-facing error says what was wrong, where (flow, step, decorator, key) and what
to do. The CLI prints ``str(error)`` as one paragraph, without a traceback, and exits
with ``error.exit_code``.
"""

from __future__ import annotations

from typing import Any

from batchwright.entrypoint import DoNotRetry


class BatchwrightError(Exception):
    """Root of every error batchwright raises deliberately."""

    exit_code: int = 1


class UserInputError(BatchwrightError):
    """Bad input found before anything ran: the command exits with code 2."""

    exit_code = 2


class GraphError(UserInputError):
    """The flow's graph is malformed; names the step and its line."""

    def __init__(self, message: str, *, step: str | None = None, line: int | None = None):
        where = ""
        if step is not None:
            where = f"step '{step}'" + (f" (line {line})" if line is not None else "") + ": "
        super().__init__(where + message)
        self.step = step
        self.line = line


class InvalidValue(UserInputError):
    """A user-facing value is not acceptable.

    The message names where the value came from (``where``, e.g. "step 'train',
    @batch"), the key, the value received and the fix.
    """

    def __init__(self, *, where: str, key: str, value: Any, problem: str, fix: str):
        super().__init__(f"{where}: {key}={value!r} {problem}. {fix}")
        self.where = where
        self.key = key
        self.value = value
        self.fix = fix


class ParameterError(UserInputError):
    """A flow parameter is missing or its value cannot be converted."""


class PlanError(UserInputError):
    """A step can never be scheduled where it is asked to run (routing or fit refusal)."""


class DescriptorError(UserInputError):
    """An environment descriptor is malformed or of an unsupported version: the command
    exits 2, as for any other input it refuses."""


class EnvironmentNotFound(BatchwrightError):
    """No environment descriptor could be found for the requested name."""


class ArtifactIntegrityError(BatchwrightError, DoNotRetry):
    """A stored artifact's bytes no longer have the SHA-256 that is its key: it was changed
    after it was written, so it is never unpickled (a task that meets one fails without
    retrying)."""


class RunFailed(BatchwrightError):
    """A task of the run failed after its retries, so the run failed."""


class LocalAwsError(BatchwrightError):
    """The local AWS (moto server + Docker engine) could not be started or reached."""
