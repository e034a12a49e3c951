"""``@batch``: run a step as an AWS Batch job.

The decorator only declares. At definition time (``step_init``) it turns what the step
wrote, its ``@resources`` values and any ``--with batch:key=value`` overrides into one
checked :class:`~batchwright.batch.options.BatchOptions`; the plan routes it to a queue
and the AWS Batch backend submits it. Inside the job, ``task_pre_step`` attaches
``current.batch`` and, with a tmpfs that serves as the temporary directory, moves
``TMPDIR`` and ``current.tempdir`` onto it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, ClassVar

from batchwright.batch.jobenv import tempdir_environment
from batchwright.batch.jobinfo import BatchJobInfo
from batchwright.batch.options import OPTION_KEYS, BatchOptions
from batchwright.decorators.base import (
    StepDecorator,
    StepInitContext,
    TaskContext,
    register_step_decorator,
    step_decorator_function,
)
from batchwright.entrypoint import DoNotRetry

#: ``TaskContext.extras`` key of the private directory made inside the tmpfs.
_TMPFS_TEMPDIR = "batch_tmpfs_tempdir"


@register_step_decorator
class BatchDecorator(StepDecorator):
    """``@batch(cpu=..., memory=..., gpu=..., image=..., queue=..., ...)``.

    Every key of :data:`batchwright.batch.options.OPTION_KEYS` is accepted; a key left out
    takes the default documented on :class:`BatchOptions`.
    """

    name = "batch"
    defaults: ClassVar[dict[str, Any]] = dict.fromkeys(OPTION_KEYS)
    backend = "batch"

    def __init__(self, **attributes: Any) -> None:
        super().__init__(**attributes)
        #: ``--with batch:k=v`` values that override the code's, key by key.
        self.overrides: dict[str, Any] = {}
        self._options: BatchOptions | None = None

    def absorb_command_line(self, other: StepDecorator) -> None:
        """``--with batch:...`` on a step that already has ``@batch``: its keys win, key
        by key (Metaflow would ignore them; batchwright does not drop an option quietly)."""
        self.overrides.update(other.given)

    def override_from_command_line(self, other: StepDecorator) -> None:
        """``--with STEP/batch:...``: its keys win, key by key, checked as command-line
        values (messages name ``--with batch`` as their source)."""
        self.overrides.update(other.given)

    @property
    def options(self) -> BatchOptions:
        """The checked options (available after ``step_init``)."""
        if self._options is None:
            raise RuntimeError("BatchDecorator.options read before step_init")
        return self._options

    def step_init(self, context: StepInitContext) -> None:
        """Checks every value once, in :meth:`BatchOptions.from_attributes` (which also
        refuses a secret named like a variable of the step's ``@environment``)."""
        resources = next((d for d in context.decorators if d.name == "resources"), None)
        environment = next((d for d in context.decorators if d.name == "environment"), None)
        # Names only: @environment checks its own values.
        variables = environment.attributes.get("vars") if environment is not None else None
        code, command_line = (
            ({}, {**self.given, **self.overrides})
            if self.from_command_line
            else (self.given, self.overrides)
        )
        self._options = BatchOptions.from_attributes(
            context.step_name,
            code,
            resources=resources.given if resources is not None else None,
            overrides=command_line,
            flow=context.flow_name,
            variables=[str(name) for name in variables] if isinstance(variables, dict) else (),
        )

    def task_pre_step(self, context: TaskContext) -> None:
        """Inside a Batch job (``AWS_BATCH_JOB_ID`` is set): attaches ``current.batch``
        from the job's ``AWS_BATCH_*`` variables and, when the tmpfs serves as the
        temporary directory (:attr:`BatchOptions.tempdir`), points ``TMPDIR`` at the
        tmpfs and ``current.tempdir`` at a private directory inside it.

        Elsewhere (a local run, ``--run-batch-locally``) nothing is mounted, so the step
        keeps the task's own temporary directory.
        """
        from batchwright.current import current

        info = BatchJobInfo.from_environ(os.environ)
        if info is None:
            return
        current.extend("batch", info)
        if self.options.tempdir is not None:
            private = self._use_tmpfs_tempdir(context, self.options.tempdir)
            context.extras[_TMPFS_TEMPDIR] = private
            current._set_tempdir(private)

    def task_finally(self, context: TaskContext) -> None:
        """Removes the private directory made inside the tmpfs (the tmpfs is the job's
        memory: what the step left there would count against it)."""
        private = context.extras.pop(_TMPFS_TEMPDIR, None)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)

    def _use_tmpfs_tempdir(self, context: TaskContext, path: str) -> str:
        """Sends the task's temporary files to ``path`` and returns a private directory
        made inside it.

        On AWS Batch the job definition mounts the tmpfs at ``path``; an emulator that
        ignores ``linuxParameters.tmpfs`` gets a plain directory there instead.

        Raises:
            DoNotRetry: ``path`` cannot be made or written (a retry would fail alike).
        """
        try:
            os.makedirs(path, exist_ok=True)
            private = tempfile.mkdtemp(prefix="batchwright-task-", dir=path)
        except OSError as error:
            raise DoNotRetry(
                f"flow '{context.flow_name}', step '{context.step_name}', @batch: "
                f"tmpfs_tempdir=True but the tmpfs path '{path}' cannot be used in this "
                f"job ({type(error).__name__}: {error}). Check that the job runs with "
                "the job definition batchwright registered (it mounts the tmpfs), or set "
                "tmpfs_tempdir=False."
            ) from error
        os.environ.update(tempdir_environment(path))
        # tempfile caches its directory on first use (the task runner used it already).
        tempfile.tempdir = path
        return private


#: ``@batch`` / ``@batch(...)`` above ``@step``.
batch = step_decorator_function(BatchDecorator)
