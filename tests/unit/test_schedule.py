"""``@schedule``: Metaflow's flow-level decorator, recorded as the EventBridge Scheduler
expression and time zone a deployment uses; every bad value is refused when the flow
class is defined, with a message naming the flow, the key, the value and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from batchwright import FlowSpec, schedule, step
from batchwright.errors import InvalidValue, UserInputError
from batchwright.schedule import DAILY, HOURLY, WEEKLY, Schedule, flow_schedule


def _flow(name: str = "NightlyFlow") -> type[FlowSpec]:
    """A fresh FlowSpec subclass (each test decorates its own)."""
    return type(name, (FlowSpec,), {"__module__": __name__})


def _scheduled(**arguments: Any) -> Schedule | None:
    flow = schedule(**arguments)(_flow())
    return flow_schedule(flow)


def _refusal(**arguments: Any) -> InvalidValue:
    with pytest.raises(InvalidValue) as raised:
        schedule(**arguments)(_flow())
    return raised.value


# -- what each form records ----------------------------------------------------------------


def test_the_flags_map_to_metaflows_times_as_cron_expressions() -> None:
    assert (HOURLY, DAILY, WEEKLY) == (
        "cron(0 * * * ? *)",
        "cron(0 0 * * ? *)",
        "cron(0 0 ? * SUN *)",
    )
    assert _scheduled(hourly=True) == Schedule(HOURLY)
    assert _scheduled(daily=True) == Schedule(DAILY)
    assert _scheduled(weekly=True) == Schedule(WEEKLY)


def test_a_cron_is_wrapped_and_its_spacing_normalised() -> None:
    assert _scheduled(cron="0 10 * * ? *") == Schedule("cron(0 10 * * ? *)")
    assert _scheduled(cron="  15  10 ? *  MON-FRI *") == Schedule("cron(15 10 ? * MON-FRI *)")


def test_bare_and_empty_forms_mean_daily() -> None:
    @schedule
    class Bare(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    @schedule()
    class Empty(FlowSpec):
        pass

    assert flow_schedule(Bare) == flow_schedule(Empty) == Schedule(DAILY, None)
    # The decorator hands back the class itself, steps and all.
    assert Bare.__name__ == "Bare" and callable(Bare.start)


def test_the_time_zone_is_recorded_and_utc_is_none() -> None:
    assert _scheduled(daily=True, timezone="Europe/Berlin") == Schedule(DAILY, "Europe/Berlin")
    assert _scheduled(cron="0 10 * * ? *", timezone="UTC").timezone == "UTC"  # type: ignore[union-attr]
    assert _scheduled(hourly=True).timezone is None  # type: ignore[union-attr]


def test_a_flow_without_schedule_has_none_and_subclasses_inherit_or_override() -> None:
    assert flow_schedule(_flow()) is None
    base = schedule(weekly=True)(_flow("BaseFlow"))
    child = type("ChildFlow", (base,), {})
    assert flow_schedule(child) == Schedule(WEEKLY)
    schedule(hourly=True)(child)  # its own @schedule replaces the inherited one
    assert flow_schedule(child) == Schedule(HOURLY)
    assert flow_schedule(base) == Schedule(WEEKLY)


def test_the_schedule_is_frozen_and_not_a_flow_constant() -> None:
    from batchwright.parameters import flow_constants

    flow = schedule(hourly=True)(_flow())
    recorded = flow_schedule(flow)
    assert recorded is not None
    with pytest.raises(AttributeError):
        recorded.expression = "rate(1 minute)"  # type: ignore[misc]
    assert flow_constants(flow) == {}


@pytest.mark.parametrize(
    "fields",
    [
        "0 10 * * ? *",  # AWS's examples
        "15 12 * * ? *",
        "0 18 ? * MON-FRI *",
        "0 8 1 * ? *",
        "0/15 * * * ? *",
        "0/10 * ? * MON-FRI *",
        "0/5 8-17 ? * MON-FRI *",
        "0 9 ? * 2#1 *",
        "15 10 ? * 6L 2025-2030",
        "*/5 * L * ? *",
        "0 0 LW * ? *",
        "0 0 15W JAN,MAR,DEC ? 2030",
        "0 12 ? JAN-MAR SUN,SAT *",
    ],
)
def test_aws_cron_expressions_are_accepted(fields: str) -> None:
    assert _scheduled(cron=fields) == Schedule(f"cron({fields})")


# -- Hypothesis: every combination of the flags --------------------------------------------

FLAG_VALUES = st.sampled_from([None, False, True])
CRONS = st.sampled_from([None, "0 10 * * ? *", "30 6 ? * MON-FRI *"])


@given(hourly=FLAG_VALUES, daily=FLAG_VALUES, weekly=FLAG_VALUES, cron=CRONS)
def test_one_choice_at_most_and_it_decides_the_expression(
    hourly: bool | None, daily: bool | None, weekly: bool | None, cron: str | None
) -> None:
    arguments = {"hourly": hourly, "daily": daily, "weekly": weekly, "cron": cron}
    chosen = [key for key, value in arguments.items() if value not in (None, False)]
    flow = _flow()
    if len(chosen) > 1:
        with pytest.raises(InvalidValue) as raised:
            schedule(hourly=hourly, daily=daily, weekly=weekly, cron=cron)(flow)
        assert raised.value.key in chosen and "one schedule" in str(raised.value)
        assert flow_schedule(flow) is None  # nothing recorded when refused
        return
    if not chosen and daily is False:
        with pytest.raises(InvalidValue, match="Remove @schedule"):
            schedule(hourly=hourly, daily=daily, weekly=weekly, cron=cron)(flow)
        return
    schedule(hourly=hourly, daily=daily, weekly=weekly, cron=cron)(flow)
    expected = {
        "hourly": HOURLY,
        "daily": DAILY,
        "weekly": WEEKLY,
        "cron": f"cron({cron})",
    }[chosen[0] if chosen else "daily"]
    assert flow_schedule(flow) == Schedule(expected)


# -- refusals: each names the flow, the key, the value and the fix -------------------------

REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    # case: (arguments, "key=value" as the message shows it, a fragment of the fix)
    "two flags": ({"hourly": True, "weekly": True}, "weekly=True", "Choose one of"),
    "a flag and cron": ({"daily": True, "cron": "0 1 * * ? *"}, "cron='0 1 * * ? *'", "one of"),
    "daily=False alone": ({"daily": False}, "daily=False", "Remove @schedule"),
    "a non-bool flag": ({"hourly": 1}, "hourly=1", "@schedule(hourly=True)"),
    "a string flag": ({"weekly": "yes"}, "weekly='yes'", "@schedule(weekly=True)"),
    "a 5-field Unix cron": ({"cron": "0 10 * * *"}, "cron='0 10 * * *'", "six cron fields"),
    "a 7-field cron": ({"cron": "0 0 10 * * ? *"}, "cron='0 0 10 * * ? *'", "six cron fields"),
    "no day field is ?": ({"cron": "0 10 * * * *"}, "cron='0 10 * * * *'", "is '?'"),
    "both day fields are ?": ({"cron": "0 10 ? * ? *"}, "cron='0 10 ? * ? *'", "is '?'"),
    "a day-of-month with a weekday": (
        {"cron": "0 10 1 * MON *"},
        "cron='0 10 1 * MON *'",
        "is '?'",
    ),
    "minute 60": ({"cron": "60 10 * * ? *"}, "cron='60 10 * * ? *'", "six cron fields"),
    "hour 24": ({"cron": "0 24 * * ? *"}, "cron='0 24 * * ? *'", "six cron fields"),
    "Unix Sunday 0": ({"cron": "0 10 ? * 0 *"}, "cron='0 10 ? * 0 *'", "six cron fields"),
    "a lower-case day name": ({"cron": "0 10 ? * mon *"}, "cron='0 10 ? * mon *'", "six"),
    "a step in day-of-week": ({"cron": "0 10 ? * 1/2 *"}, "cron='0 10 ? * 1/2 *'", "six"),
    "a step of 0": ({"cron": "*/0 10 * * ? *"}, "cron='*/0 10 * * ? *'", "six cron fields"),
    "? in the hours": ({"cron": "0 ? * * ? *"}, "cron='0 ? * * ? *'", "six cron fields"),
    "# with a list": ({"cron": "0 10 ? * 2#1,3 *"}, "cron='0 10 ? * 2#1,3 *'", "six"),
    "a year before 1970": ({"cron": "0 10 * * ? 1969"}, "cron='0 10 * * ? 1969'", "six"),
    "cron( ) around it": (
        {"cron": "cron(0 10 * * ? *)"},
        "cron='cron(0 10 * * ? *)'",
        "six cron fields",
    ),
    "a non-string cron": ({"cron": 10}, "cron=10", "six cron fields"),
    "an unknown time zone": ({"timezone": "Mars/Olympus"}, "timezone='Mars/Olympus'", "IANA"),
    "an offset, not a zone": ({"timezone": "+02:00"}, "timezone='+02:00'", "Europe/Berlin"),
    "this machine's zone file": ({"timezone": "localtime"}, "timezone='localtime'", "IANA"),
    "a non-string time zone": ({"timezone": 2}, "timezone=2", "IANA"),
    "an empty time zone": ({"timezone": ""}, "timezone=''", "IANA"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_names_the_flow_the_key_the_value_and_the_fix(case: str) -> None:
    arguments, key_value, fix = REFUSALS[case]
    refusal = _refusal(**arguments)
    message = str(refusal)
    assert message.startswith("flow 'NightlyFlow', @schedule: " + key_value + " "), message
    assert fix in refusal.fix, refusal.fix
    assert isinstance(refusal, UserInputError)  # the CLI exits 2, without a traceback


def test_a_cron_refusal_says_which_field_breaks_which_rule() -> None:
    assert "minutes '60', which allows 0-59" in str(_refusal(cron="60 10 * * ? *"))
    assert "has 5 fields; AWS cron has 6" in str(_refusal(cron="0 10 * * *"))
    assert "exactly one of them must be '?' (neither is)" in str(_refusal(cron="0 1 * * * *"))
    assert "day-of-week 'mon', which allows 1-7 or SUN-SAT" in str(_refusal(cron="0 10 ? * mon *"))


def _on_a_step() -> object:
    class StepFlow(FlowSpec):
        @schedule  # type: ignore[call-overload]
        @step
        def start(self) -> None:
            pass

    return StepFlow


def _on_a_plain_class() -> object:
    @schedule(hourly=True)
    class NotAFlow:  # type: ignore[type-var]
        pass

    return NotAFlow


def _with_a_positional_cron() -> object:
    return schedule("0 10 * * ? *")  # type: ignore[call-overload]


def _twice() -> object:
    @schedule(hourly=True)
    @schedule
    class TwiceFlow(FlowSpec):
        pass

    return TwiceFlow


TARGETS: dict[str, tuple[Callable[[], object], str, str]] = {
    "a step": (_on_a_step, "@schedule on _on_a_step.<locals>.StepFlow.start: target=", "class"),
    "a plain class": (_on_a_plain_class, "does not inherit FlowSpec", "class MyFlow(FlowSpec)"),
    "a positional cron": (_with_a_positional_cron, "target='0 10 * * ? *'", "@schedule(cron="),
    "a second @schedule": (_twice, "flow 'TwiceFlow', @schedule: schedule=", "Keep one"),
}


@pytest.mark.parametrize("case", list(TARGETS))
def test_it_applies_once_to_a_flow_class_only(case: str) -> None:
    apply, named, fix = TARGETS[case]
    with pytest.raises(InvalidValue) as raised:
        apply()
    assert named in str(raised.value) and fix in raised.value.fix, str(raised.value)


# -- the recorded values are what EventBridge Scheduler's model takes ----------------------


@pytest.mark.parametrize(
    "recorded",
    [
        Schedule(HOURLY),
        Schedule(WEEKLY, "America/New_York"),
        _scheduled(cron="0/5 8-17 ? * MON-FRI *", timezone="Asia/Kolkata"),
    ],
)
def test_the_expression_and_time_zone_fit_create_schedule(recorded: Schedule | None) -> None:
    assert recorded is not None
    client = boto3.client(
        "scheduler",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    model = client.meta.service_model.operation_model("CreateSchedule").input_shape
    assert model is not None
    body: dict[str, Any] = {
        "Name": "NightlyFlow",
        "ScheduleExpression": recorded.expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:NightlyFlow",
            "RoleArn": "arn:aws:iam::123456789012:role/NightlyFlowScheduler",
            "Input": "{}",
        },
    }
    if recorded.timezone is not None:
        body["ScheduleExpressionTimezone"] = recorded.timezone
    for key in ("ScheduleExpression", "ScheduleExpressionTimezone"):
        if key in body:  # botocore checks the minimum length client-side, not the maximum
            assert len(body[key]) <= model.members[key].metadata["max"]
    with Stubber(client) as stubber:
        stubber.add_response("create_schedule", {"ScheduleArn": "arn:x"}, body)
        client.create_schedule(**body)
        stubber.assert_no_pending_responses()
