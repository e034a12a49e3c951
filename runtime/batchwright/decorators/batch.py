"""``@batch``: run a step as an AWS Batch job.

The decorator only declares. At definition time (``step_init``) it turns what the step
wrote, its ``@resources`` values and any ``--with batch:key=value`` overrides into one
checked :class:`~batchwright.batch.options.BatchOptions`; the plan routes it to a queue
and the AWS Batch backend submits it. Inside the job, ``task_pre_step`` attaches
``current.batch``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from batchwright.batch.jobinfo import BatchJobInfo
from batchwright.batch.options import OPTION_KEYS, BatchOptions
from batchwright.decorators.base import (
    StepDecorator,
    StepInitContext,
    TaskContext,
    register_step_decorator,
    step_decorator_function,
)


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
        """``--with batch:...`` on a step that already has ``@batch``: its keys win."""
        self.overrides.update(other.given)

    @property
    def options(self) -> BatchOptions:
        """The checked options (available after ``step_init``)."""
        if self._options is None:
            raise RuntimeError("BatchDecorator.options read before step_init")
        return self._options

    def step_init(self, context: StepInitContext) -> None:
        """Checks every value once, in :meth:`BatchOptions.from_attributes`."""
        resources = next((d for d in context.decorators if d.name == "resources"), None)
        code, command_line = (
            ({}, self.given) if self.from_command_line else (self.given, self.overrides)
        )
        self._options = BatchOptions.from_attributes(
            context.step_name,
            code,
            resources=resources.given if resources is not None else None,
            overrides=command_line,
            flow=context.flow_name,
        )

    def task_pre_step(self, context: TaskContext) -> None:
        """Attaches ``current.batch`` from the job's ``AWS_BATCH_*`` variables."""
        from batchwright.current import current

        info = BatchJobInfo.from_environ(os.environ)
        if info is not None:
            current.extend("batch", info)


#: ``@batch`` / ``@batch(...)`` above ``@step``.
batch = step_decorator_function(BatchDecorator)
