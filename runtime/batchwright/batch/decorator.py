"""``@batch``: run a step as an AWS Batch job.

The decorator only declares. At definition time (``step_init``) it turns what the step
wrote, its ``@resources`` values and any ``--with batch:key=value`` overrides into one
checked :class:`BatchOptions`; the planner routes it to a queue and the AWS Batch backend
submits it. Inside the job, ``task_pre_step`` attaches ``current.batch``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from batchwright.backends import Backend, BackendOptions, register_backend
from batchwright.batch.environment import BatchEnvironment
from batchwright.batch.jobspec import check_timeout
from batchwright.batch.options import OPTION_KEYS, BatchOptions
from batchwright.decorators import (
    StepDecorator,
    StepInitContext,
    TaskContext,
    TimeoutDecorator,
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
        timeout = next((d for d in context.decorators if isinstance(d, TimeoutDecorator)), None)
        # Command-line values are typed by the --with parser already; they replace the
        # code's values key by key.
        attributes = {**self.given, **self.overrides}
        self._options = BatchOptions.from_attributes(
            context.step_name,
            attributes,
            resources=resources.given if resources is not None else None,
            flow=context.flow_name,
        )
        if timeout is not None:
            # Batch enforces whole seconds, at least 60, per attempt.
            check_timeout(context.step_name, int(timeout.total_seconds), flow=context.flow_name)

    def task_pre_step(self, context: TaskContext) -> None:
        """Attaches ``current.batch`` from the job's ``AWS_BATCH_*`` variables."""
        from batchwright.current import current

        environment = BatchEnvironment.from_environ(os.environ)
        if environment is not None:
            current.extend("batch", environment)


#: ``@batch`` / ``@batch(...)`` above ``@step``.
batch = step_decorator_function(BatchDecorator)


def _create_backend(options: BackendOptions) -> Backend:
    # Imported here: tasks load this module, and only the scheduler needs boto3 clients.
    from batchwright.backends.aws_batch import AwsBatchBackend

    return AwsBatchBackend(options)


register_backend("batch", _create_backend)
