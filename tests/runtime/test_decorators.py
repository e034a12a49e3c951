"""The step-decorator API: declaration, validation, ``--with`` parsing, the registry."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from batchwright.backends import choose_backend_name, register_backend
from batchwright.decorators import (
    StepDecorator,
    StepInitContext,
    decorator_from_with_option,
    merge_with_options,
    misplaced_decorators,
    parse_value,
    register_step_decorator,
    registered_step_decorators,
    retry,
    step_decorators,
)
from batchwright.errors import InvalidValue, UserInputError
from batchwright.flowspec import step


def _context(
    decorators: tuple[StepDecorator, ...] = (), step_type: str = "linear"
) -> StepInitContext:
    return StepInitContext("DemoFlow", "train", step_type, decorators)


def test_decorators_only_declare() -> None:
    @retry(times=2)
    @step
    def train(self: Any) -> None:
        pass

    (declared,) = step_decorators(train)
    assert declared.name == "retry"
    assert declared.given == {"times": 2}
    assert declared.attributes == {"times": 2, "minutes_between_retries": 2}


def test_bare_decorator_uses_defaults() -> None:
    @retry
    @step
    def train(self: Any) -> None:
        pass

    assert step_decorators(train)[0].attributes["times"] == 3


def test_decorator_on_a_plain_function_is_recorded_as_misplaced() -> None:
    """Not raised while the class body runs (that would be a traceback before the command
    line starts): recorded, and refused when the flow's definition is loaded (see
    test_first_hour_flow_definitions.py)."""

    def helper(self: Any) -> None:
        pass

    decorated = retry(times=1)(helper)
    assert decorated is helper
    assert [d.name for d in misplaced_decorators(helper)] == ["retry"]
    assert step_decorators(step(helper)) == []
    assert [d.given for d in misplaced_decorators(helper)] == [{"times": 1}]


def test_decorator_on_something_that_cannot_be_marked_is_refused_at_once() -> None:
    with pytest.raises(UserInputError) as caught:
        retry(times=1)(len)
    assert str(caught.value) == (
        "@retry is applied to 'len', which is not a step. Put @retry above @step on a step "
        "of the flow."
    )


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("retry", {"times": 3, "minutes_between_retries": 2}),
        ("retry:times=5", {"times": 5, "minutes_between_retries": 2}),
        ("retry:times=1,minutes_between_retries=0.5", {"times": 1, "minutes_between_retries": 0.5}),
        ('environment:vars={"A": 1}', {"vars": {"A": "1"}}),
        ("catch:var=oops", {"var": "oops", "print_exception": True}),
    ],
)
def test_with_options_parse_values_from_strings(option: str, expected: dict[str, Any]) -> None:
    decorator = decorator_from_with_option(option)
    assert decorator.from_command_line
    decorator.step_init(_context((decorator,)))
    assert decorator.attributes == expected


def test_parse_value() -> None:
    assert parse_value("3") == 3 and parse_value("2.5") == 2.5
    assert parse_value("TRUE") is True and parse_value("text") == "text"
    assert parse_value("[1, 2]") == [1, 2]


@pytest.mark.parametrize(
    ("option", "fragments"),
    [
        ("retry:times=-1", ["step 'train', @retry", "times=-1", "integer >= 0"]),
        ("retry:times=1.5", ["times=1.5"]),
        ("timeout:seconds=0", ["total timeout of 0"]),
        ("resources:memory=lots", ["memory='lots'"]),
        ("resources:gpus=1", ["gpus=1", "is not an attribute", "cpu, gpu, memory"]),
        ("environment:vars=5", ["vars=5", "must be a dict"]),
        ("catch:var=not-a-name", ["var='not-a-name'"]),
    ],
)
def test_validation_messages_name_step_decorator_key_and_value(
    option: str, fragments: list[str]
) -> None:
    decorator = decorator_from_with_option(option)
    with pytest.raises(InvalidValue) as error:
        decorator.step_init(_context((decorator,)))
    for fragment in fragments:
        assert fragment in str(error.value)
    assert "flow 'DemoFlow'" in str(error.value)


@pytest.mark.parametrize(
    ("name", "typed", "meant"),
    [
        ("retry", "time", "times"),
        ("timeout", "second", "seconds"),
        ("catch", "vars", "var"),
        ("environment", "var", "vars"),
        ("resources", "cpus", "cpu"),
        ("batch", "memroy", "memory"),
    ],
)
def test_an_unknown_key_of_any_decorator_gets_a_guess(name: str, typed: str, meant: str) -> None:
    decorator = registered_step_decorators()[name](**{typed: 2})
    with pytest.raises(InvalidValue) as error:
        decorator.step_init(_context((decorator,)))
    assert f"{typed}=2 is not " in str(error.value)
    assert f"Did you mean '{meant}'? " in str(error.value)


def test_catch_refuses_a_foreach_step() -> None:
    decorator = decorator_from_with_option("catch:var=failure")
    with pytest.raises(InvalidValue, match="foreach"):
        decorator.step_init(_context((decorator,), step_type="foreach"))


def test_malformed_with_option() -> None:
    with pytest.raises(UserInputError, match="is not key=value"):
        decorator_from_with_option("retry:times")
    with pytest.raises(UserInputError, match="no step decorator named 'gpu'"):
        decorator_from_with_option("gpu:count=1")


def test_step_decorator_wins_over_with_option() -> None:
    written = decorator_from_with_option("retry:times=1")
    merged = merge_with_options([written], [decorator_from_with_option("retry:times=4")])
    assert merged == [written]
    extra = decorator_from_with_option("timeout:seconds=5")
    merged = merge_with_options([written], [extra])
    assert [d.name for d in merged] == ["retry", "timeout"] and merged[1] is not extra


def test_another_module_can_register_a_decorator_and_a_backend() -> None:
    class FakeBackend:
        pass

    @register_step_decorator
    class RemoteDecorator(StepDecorator):
        name = "remote_test"
        defaults: ClassVar[dict[str, Any]] = {"queue": "default", "cpu": 1}
        backend = "remote_test_backend"

        def step_init(self, context: StepInitContext) -> None:
            super().step_init(context)
            self.require_number(context, "cpu", minimum=1)

    assert registered_step_decorators()["remote_test"] is RemoteDecorator
    decorator = decorator_from_with_option("remote_test:queue=gpu,cpu=4")
    decorator.step_init(_context((decorator,)))
    assert decorator.attributes == {"queue": "gpu", "cpu": 4}
    # Without a registered backend the step runs locally; with one, there.
    assert choose_backend_name([decorator]) == "local"
    register_backend("remote_test_backend", lambda options: FakeBackend())  # type: ignore[arg-type,return-value]
    assert choose_backend_name([decorator]) == "remote_test_backend"
    assert choose_backend_name([decorator_from_with_option("retry")]) == "local"
