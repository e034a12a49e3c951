"""Step decorators: the model (:mod:`.base`), the built-in ones (:mod:`.builtin`) and
``@batch`` (:mod:`.batch`).

Importing the package registers every built-in decorator, so ``--with NAME`` finds them
all.
"""

from batchwright.decorators.base import (
    RuntimeContext,
    StepDecorator,
    StepInitContext,
    TaskContext,
    UnbalancedValue,
    WithOption,
    attach_decorator,
    decorator_from_with_option,
    merge_with_options,
    misplaced_decorators,
    parse_value,
    parse_with_option,
    register_step_decorator,
    registered_step_decorators,
    split_top_level,
    step_decorator_class,
    step_decorator_function,
    step_decorators,
)
from batchwright.decorators.batch import BatchDecorator, batch
from batchwright.decorators.builtin import (
    CatchDecorator,
    CaughtException,
    EnvironmentDecorator,
    ResourcesDecorator,
    RetryDecorator,
    TimeoutDecorator,
    TimeoutExceeded,
    catch,
    environment,
    resources,
    retry,
    timeout,
)

__all__ = [
    "BatchDecorator",
    "CatchDecorator",
    "CaughtException",
    "EnvironmentDecorator",
    "ResourcesDecorator",
    "RetryDecorator",
    "RuntimeContext",
    "StepDecorator",
    "StepInitContext",
    "TaskContext",
    "TimeoutDecorator",
    "TimeoutExceeded",
    "UnbalancedValue",
    "WithOption",
    "attach_decorator",
    "batch",
    "catch",
    "decorator_from_with_option",
    "environment",
    "merge_with_options",
    "misplaced_decorators",
    "parse_value",
    "parse_with_option",
    "register_step_decorator",
    "registered_step_decorators",
    "resources",
    "retry",
    "split_top_level",
    "step_decorator_class",
    "step_decorator_function",
    "step_decorators",
    "timeout",
]
