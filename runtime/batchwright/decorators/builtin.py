"""The built-in step decorators: ``@retry``, ``@timeout``, ``@catch``, ``@environment``,
``@resources``, ``@parallel``.

``@retry`` and ``@timeout`` are read by the plan (the scheduler's retries, the attempt
limits); ``@timeout`` is also enforced inside the task, with a real-time alarm.
``@resources`` shares its keys, defaults and checks with ``@batch``'s option table.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, ClassVar

from batchwright.batch.options import OPTIONS, RESOURCE_KEYS, check_option
from batchwright.decorators.base import (
    StepDecorator,
    StepInitContext,
    TaskContext,
    register_step_decorator,
    step_decorator_function,
)
from batchwright.errors import InvalidValue
from batchwright.exception import MetaflowException, MetaflowExceptionWrapper


@register_step_decorator
class RetryDecorator(StepDecorator):
    """Retry a failed task: ``times`` more attempts, ``minutes_between_retries`` apart."""

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``times`` (integer >= 0) and ``minutes_between_retries`` (number >= 0)."""
        super().step_init(context)
        self.require_number(context, "times", integer=True)
        self.require_number(context, "minutes_between_retries")


class TimeoutException(MetaflowException):
    """The step ran longer than its ``@timeout`` (Metaflow's name for it)."""

    headline = "@timeout"


#: The name this exception had before it took Metaflow's.
TimeoutExceeded = TimeoutException


@register_step_decorator
class TimeoutDecorator(StepDecorator):
    """Stop the step after ``seconds + 60*minutes + 3600*hours`` (enforced inside the task)."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def step_init(self, context: StepInitContext) -> None:
        """Check each part is a number >= 0 and that the total is positive."""
        super().step_init(context)
        for key in ("seconds", "minutes", "hours"):
            self.require_number(context, key)
        if self.total_seconds <= 0:
            raise InvalidValue(
                where=self.where(context),
                key="seconds",
                value=self.attributes["seconds"],
                problem="gives a total timeout of 0",
                fix="Pass a positive seconds=, minutes= or hours=.",
            )

    @property
    def total_seconds(self) -> float:
        """The timeout in seconds."""
        a = self.attributes
        return float(a["seconds"]) + 60.0 * float(a["minutes"]) + 3600.0 * float(a["hours"])

    def task_pre_step(self, context: TaskContext) -> None:
        """Arm a real-time alarm that raises TimeoutException in the step's code."""
        limit = self.total_seconds

        def expire(signum: int, frame: FrameType | None) -> None:
            raise TimeoutException(
                f"step '{context.step_name}' exceeded its @timeout of {limit:g} seconds"
            )

        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, limit)

    def task_finally(self, context: TaskContext) -> None:
        """Disarm the alarm."""
        signal.setitimer(signal.ITIMER_REAL, 0)


class FailureHandledByCatch(MetaflowException):
    """What ``@catch`` stores when the step's attempts died without raising anything (a
    signal, an out-of-memory kill, a lost host): the extra attempt the scheduler runs then
    does not run the step, it raises this, and ``@catch`` handles it (Metaflow's name)."""

    headline = "Task execution failed but @catch handled it"

    def __init__(self, retry_count: int) -> None:
        super().__init__(
            f"Task execution kept failing over {retry_count} attempts. Your code did not "
            "raise an exception. Something in the execution environment caused the failure."
        )


class CaughtException(MetaflowExceptionWrapper):
    """What ``@catch(var=...)`` stores: the exception's type, message and stack trace.

    Picklable and importable without the user's code, so the client can read it.
    Attribute names follow Metaflow's (``type``, ``exception``, ``stacktrace``), and it is
    a :class:`batchwright.exception.MetaflowExceptionWrapper`, as in Metaflow.
    """

    def __init__(self, exception: BaseException) -> None:
        super().__init__(exception)

    def __repr__(self) -> str:
        return f"CaughtException({self.type}: {self.exception})"

    def __str__(self) -> str:
        return f"{self.type}: {self.exception}"


@register_step_decorator
class CatchDecorator(StepDecorator):
    """On the last failed attempt, store the exception in artifact ``var`` and go on."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``var`` is an identifier and that the step is not a foreach split."""
        super().step_init(context)
        var = self.attributes["var"]
        if var is not None and (not isinstance(var, str) or not var.isidentifier()):
            raise InvalidValue(
                where=self.where(context),
                key="var",
                value=var,
                problem="is not a valid artifact name",
                fix="Pass a Python identifier, e.g. @catch(var='failure').",
            )
        if context.step_type == "foreach":
            raise InvalidValue(
                where=self.where(context),
                key="var",
                value=var,
                problem="cannot recover a foreach split (its fan-out would be unknown)",
                fix="Move the risky code into the steps inside the foreach.",
            )

    def task_post_step(self, context: TaskContext) -> None:
        """A successful step stores None in the artifact (so later steps can test it)."""
        if self.attributes["var"]:
            setattr(context.flow, self.attributes["var"], None)

    def task_decorate(
        self, context: TaskContext, step_function: Callable[..., Any]
    ) -> Callable[..., Any]:
        """On the attempt after the last one (the scheduler runs it when the last attempt
        died without raising), the step does not run: FailureHandledByCatch stands in."""
        if context.retry_count <= context.max_retries:
            return step_function
        attempts = context.retry_count

        def fallback(*inputs: Any) -> None:
            raise FailureHandledByCatch(attempts)

        return fallback

    def task_exception(self, context: TaskContext, exception: BaseException) -> bool:
        """Handle the exception only on the last attempt (retries come first)."""
        if not context.is_last_attempt:
            return False
        caught = CaughtException(exception)
        if self.attributes["var"]:
            setattr(context.flow, self.attributes["var"], caught)
        context.extras["caught"] = caught
        context.extras["print_exception"] = bool(self.attributes["print_exception"])
        return True


@register_step_decorator
class EnvironmentDecorator(StepDecorator):
    """Set environment variables for the step's code: ``@environment(vars={...})``."""

    name = "environment"
    defaults: ClassVar[Mapping[str, Any]] = {"vars": {}}

    def step_init(self, context: StepInitContext) -> None:
        """Check ``vars`` maps names to strings (numbers and booleans are converted)."""
        super().step_init(context)
        variables = self.attributes["vars"]
        if not isinstance(variables, dict):
            raise InvalidValue(
                where=self.where(context),
                key="vars",
                value=variables,
                problem="must be a dict of variable names to values",
                fix="Pass e.g. @environment(vars={'MODE': 'fast'}).",
            )
        for key, value in variables.items():
            if not isinstance(key, str) or not key or "=" in key:
                raise InvalidValue(
                    where=self.where(context),
                    key="vars",
                    value=key,
                    problem="has an invalid variable name",
                    fix="Use non-empty names without '='.",
                )
            if not isinstance(value, str | int | float | bool):
                raise InvalidValue(
                    where=self.where(context),
                    key=f"vars[{key!r}]",
                    value=value,
                    problem="is not a string, number or boolean",
                    fix="Environment variables hold text; convert the value with str().",
                )
        self.attributes["vars"] = {k: str(v) for k, v in variables.items()}

    def task_pre_step(self, context: TaskContext) -> None:
        """Export the variables into the task's environment."""
        os.environ.update(self.attributes["vars"])


@register_step_decorator
class ResourcesDecorator(StepDecorator):
    """Declare what the step needs (cpu, memory in MiB, gpu); local runs ignore it.

    Its keys, defaults and checks are the rows of ``@batch``'s option table, so the two
    decorators agree on what a valid request is (``@batch`` takes the larger of each).
    """

    name = "resources"
    defaults: ClassVar[Mapping[str, Any]] = {key: OPTIONS[key].default for key in RESOURCE_KEYS}

    def step_init(self, context: StepInitContext) -> None:
        """Check each value with the option table's check (cpu > 0, memory >= 4 MiB, gpu >= 0)."""
        super().step_init(context)
        for key in RESOURCE_KEYS:
            self.attributes[key] = check_option(key, self.attributes[key], self.where(context))


@register_step_decorator
class ParallelDecorator(StepDecorator):
    """Mark a step as run on several nodes at once, reached by
    ``self.next(self.<step>, num_parallel=N)`` (which implies it, as in Metaflow). Inside,
    ``current.parallel`` tells each node its index, the node count and the main node's
    address; on AWS Batch the nodes are one multi-node parallel job."""

    name = "parallel"
    defaults: ClassVar[Mapping[str, Any]] = {}


retry = step_decorator_function(RetryDecorator)
parallel = step_decorator_function(ParallelDecorator)
timeout = step_decorator_function(TimeoutDecorator)
catch = step_decorator_function(CatchDecorator)
environment = step_decorator_function(EnvironmentDecorator)
resources = step_decorator_function(ResourcesDecorator)
