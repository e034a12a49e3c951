"""``@schedule``: when a flow deployed as a Step Functions state machine runs by itself.

A flow-level decorator with Metaflow's shape, placed on the FlowSpec class::

    @schedule                          # daily at 00:00 (the default)
    @schedule(hourly=True)             # every hour, on the hour
    @schedule(weekly=True)             # Sundays at 00:00
    @schedule(cron="0 10 * * ? *")     # AWS's six-field cron: 10:00 every day
    @schedule(daily=True, timezone="Europe/Berlin")
    class MyFlow(FlowSpec): ...

Like every batchwright decorator it only declares: it records a frozen :class:`Schedule`
on the class, which :func:`flow_schedule` reads back, and the deployment turns into an
EventBridge Scheduler schedule (``ScheduleExpression`` and ``ScheduleExpressionTimezone``
of ``CreateSchedule`` / ``AWS::Scheduler::Schedule``). Every value is checked when the
decorator is applied, that is when the flow file is imported, so a bad one fails before
anything is planned, run or deployed, with a message naming the flow, the key, the value
and the fix.

The flags map to cron expressions at Metaflow's exact times rather than to ``rate(...)``
expressions: a rate runs relative to when the schedule was created, a cron on the clock.

================  ========================
flag              ``Schedule.expression``
================  ========================
``hourly=True``   ``cron(0 * * * ? *)``
``daily=True``    ``cron(0 0 * * ? *)``
``weekly=True``   ``cron(0 0 ? * SUN *)``
``cron=FIELDS``   ``cron(FIELDS)``
================  ========================

Without ``timezone`` EventBridge Scheduler evaluates the expression in UTC.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeVar, overload

from batchwright.errors import InvalidValue

__all__ = ["DAILY", "HOURLY", "WEEKLY", "Schedule", "flow_schedule", "schedule"]

_Flow = TypeVar("_Flow", bound=type)

#: ``@schedule(hourly=True)``: every hour at minute 0 (Metaflow's hourly).
HOURLY: Final = "cron(0 * * * ? *)"
#: ``@schedule(daily=True)`` and ``@schedule``: every day at 00:00 (Metaflow's daily).
DAILY: Final = "cron(0 0 * * ? *)"
#: ``@schedule(weekly=True)``: Sundays at 00:00 (Metaflow's weekly).
WEEKLY: Final = "cron(0 0 ? * SUN *)"

_FLAGS: Final = {"hourly": HOURLY, "daily": DAILY, "weekly": WEEKLY}

#: Where the recorded Schedule lives on the flow class (a private name, so it is not
#: taken for one of the flow's constants; subclasses inherit it).
_ATTRIBUTE: Final = "_batchwright_schedule"

#: ``ScheduleExpressionTimezone``'s and ``ScheduleExpression``'s length limits in
#: botocore's scheduler model (2021-06-30).
_TIMEZONE_LENGTH: Final = range(1, 51)
_EXPRESSION_LENGTH: Final = 256

#: An example the fixes quote.
_EXAMPLE_CRON: Final = "0 10 * * ? *"


@dataclass(frozen=True)
class Schedule:
    """When a deployed flow runs by itself.

    Attributes:
        expression: the EventBridge Scheduler ``ScheduleExpression``, e.g.
            ``cron(0 0 * * ? *)``.
        timezone: the ``ScheduleExpressionTimezone`` (an IANA name such as
            ``Europe/Berlin``); None means UTC, EventBridge Scheduler's default.
    """

    expression: str
    timezone: str | None = None


def flow_schedule(flow_class: type) -> Schedule | None:
    """The Schedule ``@schedule`` recorded on ``flow_class`` (or on one of its bases), or
    None when the flow has none."""
    recorded = getattr(flow_class, _ATTRIBUTE, None)
    return recorded if isinstance(recorded, Schedule) else None


def _is_flowspec_class(target: object) -> bool:
    # By name, not issubclass: importing FlowSpec here would make the command line,
    # which FlowSpec hands over to, import itself.
    return isinstance(target, type) and any(
        klass.__name__ == "FlowSpec" and klass.__module__ == "batchwright.flowspec"
        for klass in target.__mro__
    )


@overload
def schedule(flow_class: _Flow, /) -> _Flow: ...


@overload
def schedule(
    *,
    hourly: bool | None = None,
    daily: bool | None = None,
    weekly: bool | None = None,
    cron: str | None = None,
    timezone: str | None = None,
) -> Callable[[_Flow], _Flow]: ...


def schedule(
    flow_class: Any = None,
    /,
    *,
    hourly: bool | None = None,
    daily: bool | None = None,
    weekly: bool | None = None,
    cron: str | None = None,
    timezone: str | None = None,
) -> Any:
    """Run the deployed flow on a schedule: ``@schedule`` or ``@schedule(...)`` on the
    FlowSpec class.

    Args:
        hourly: every hour, on the hour (``cron(0 * * * ? *)``).
        daily: every day at 00:00 (``cron(0 0 * * ? *)``); the default when no other
            choice is given.
        weekly: every Sunday at 00:00 (``cron(0 0 ? * SUN *)``).
        cron: AWS's six cron fields, ``minutes hours day-of-month month day-of-week
            year``, without the ``cron( )`` around them; exactly one of day-of-month and
            day-of-week is ``?``.
        timezone: the IANA time zone the schedule runs in (e.g. ``Europe/Berlin``);
            omitted: UTC.

    At most one of ``hourly``, ``daily``, ``weekly`` and ``cron`` may be chosen; a flag
    left at None was not given (``hourly=False`` chooses nothing, as in Metaflow).

    Raises:
        InvalidValue: when the decorator is applied to something that is not a FlowSpec
            subclass, twice to one class, or with a value EventBridge Scheduler would
            refuse.
    """
    arguments = {
        "hourly": hourly,
        "daily": daily,
        "weekly": weekly,
        "cron": cron,
        "timezone": timezone,
    }
    if flow_class is not None:
        # Bare `@schedule`: the class came as the positional argument.
        _record(flow_class, arguments)
        return flow_class

    def decorate(target: _Flow) -> _Flow:
        _record(target, arguments)
        return target

    return decorate


def _record(target: Any, arguments: dict[str, Any]) -> None:
    """Check the target and every value, then record the Schedule on the class."""
    where = _check_target(target)
    setattr(target, _ATTRIBUTE, _schedule_of(where, arguments))


def _check_target(target: Any) -> str:
    """The ``where`` of messages; refuses anything but a FlowSpec subclass, and a second
    ``@schedule`` on the same class."""
    if not _is_flowspec_class(target):
        name = getattr(target, "__qualname__", None)
        if isinstance(target, str):
            problem = "is not a FlowSpec subclass (schedule takes its values by name)"
            fix = f"Write @schedule(cron={target!r}) on the flow class."
        else:
            kind = f"a {type(target).__name__}"
            if isinstance(target, type):
                kind = "a class that does not inherit FlowSpec"
            problem = f"is {kind}, and @schedule applies to a flow only"
            fix = "Put @schedule above the `class MyFlow(FlowSpec):` line, not on a step."
        raise InvalidValue(
            where=f"@schedule on {name or type(target).__name__}",
            key="target",
            value=target,
            problem=problem,
            fix=fix,
        )
    where = f"flow '{target.__name__}', @schedule"
    if _ATTRIBUTE in vars(target):
        raise InvalidValue(
            where=where,
            key="schedule",
            value=vars(target)[_ATTRIBUTE].expression,
            problem="is already set: @schedule is applied twice to this flow",
            fix="Keep one @schedule on the flow class.",
        )
    return where


def _schedule_of(where: str, arguments: dict[str, Any]) -> Schedule:
    """The Schedule the arguments describe, after checking each of them."""
    for flag in _FLAGS:
        value = arguments[flag]
        if value is not None and not isinstance(value, bool):
            raise InvalidValue(
                where=where,
                key=flag,
                value=value,
                problem="is not True or False",
                fix=f"Write @schedule({flag}=True).",
            )
    chosen = [flag for flag in _FLAGS if arguments[flag]]
    cron = arguments["cron"]
    if cron is not None:
        chosen.append("cron")
    if len(chosen) > 1:
        raise InvalidValue(
            where=where,
            key=chosen[1],
            value=arguments[chosen[1]],
            problem=f"comes with {chosen[0]}={arguments[chosen[0]]!r}: a flow has one schedule",
            fix="Choose one of hourly=True, daily=True, weekly=True or cron='...'.",
        )
    if arguments["daily"] is False and not chosen:
        # In Metaflow daily=False alone leaves the flow without a schedule; saying so with
        # a decorator that exists to add one is a contradiction.
        raise InvalidValue(
            where=where,
            key="daily",
            value=False,
            problem="turns off the only schedule chosen",
            fix="Remove @schedule to deploy the flow without one, or choose hourly=True, "
            "weekly=True or cron='...'.",
        )
    if cron is not None:
        expression = f"cron({_checked_cron(where, cron)})"
    else:
        expression = _FLAGS[chosen[0]] if chosen else DAILY
    return Schedule(expression=expression, timezone=_checked_timezone(where, arguments))


def _checked_timezone(where: str, arguments: dict[str, Any]) -> str | None:
    timezone = arguments["timezone"]
    if timezone is None:
        return None
    if not isinstance(timezone, str):
        problem = "is not a string"
    elif len(timezone) not in _TIMEZONE_LENGTH:
        problem = f"is {len(timezone)} characters long; EventBridge Scheduler takes 1 to 50"
    elif timezone not in _iana_names():
        problem = "is not a time zone zoneinfo knows"
    else:
        return timezone
    raise InvalidValue(
        where=where,
        key="timezone",
        value=timezone,
        problem=problem,
        fix="Pass an IANA time zone name, e.g. timezone='Europe/Berlin' or 'UTC' "
        "(zoneinfo.available_timezones() lists them).",
    )


#: Files of the time zone database that are not zones: "localtime" is this machine's zone
#: (Debian links it in /usr/share/zoneinfo), "Factory" a placeholder, "posixrules" a
#: rule file. available_timezones() lists what it finds on disk, these included.
_NOT_ZONES: Final = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


# -- AWS cron ------------------------------------------------------------------------------
# EventBridge's six fields (minutes hours day-of-month month day-of-week year), each with
# its numeric range, the names it accepts and its wildcards, as AWS's table lists them.


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    wildcards: str = ", - * /"
    names: tuple[str, ...] = ()

    def number(self, token: str) -> int | None:
        """The value of one number or name, or None when it is neither or out of range."""
        if token in self.names:
            return self.low + self.names.index(token)
        if token.isdigit() and self.low <= int(token) <= self.high:
            return int(token)
        return None

    @property
    def allowed(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"allows {self.low}-{self.high}{names} and the wildcards {self.wildcards}"


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_FIELDS: Final = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, wildcards=", - * ? / L W"),
    _Field("month", 1, 12, names=_MONTHS),
    _Field("day-of-week", 1, 7, wildcards=", - * ? L #", names=_DAYS),
    _Field("year", 1970, 2199),
)
#: One item of a field: a value or a range of values, with an optional step.
_ITEM = re.compile(r"(?P<start>[0-9A-Z]+)(?:-(?P<end>[0-9A-Z]+))?(?:/(?P<step>[0-9]+))?")


def _checked_cron(where: str, cron: Any) -> str:
    """The six fields, single-spaced, once they follow EventBridge's rules."""

    def refuse(problem: str) -> InvalidValue:
        return InvalidValue(
            where=where,
            key="cron",
            value=cron,
            problem=problem,
            fix=f"Pass AWS's six cron fields, e.g. cron='{_EXAMPLE_CRON}' (minutes hours "
            "day-of-month month day-of-week year; exactly one of the two day fields is '?').",
        )

    if not isinstance(cron, str):
        raise refuse("is not a string")
    if cron.strip().startswith("cron("):
        raise refuse("has cron( ) around it, which @schedule adds itself")
    fields = cron.split()
    if len(fields) != len(_CRON_FIELDS):
        raise refuse(
            f"has {len(fields)} fields; AWS cron has 6 (a 5-field Unix cron lacks the year)"
        )
    for field, text in zip(_CRON_FIELDS, fields, strict=True):
        problem = _field_problem(field, text)
        if problem is not None:
            raise refuse(f"has {field.name} {text!r}, which {problem}")
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        which = "both are" if day_of_month == "?" else "neither is"
        raise refuse(
            f"has day-of-month {day_of_month!r} and day-of-week {day_of_week!r}, but "
            f"exactly one of them must be '?' ({which})"
        )
    expression = " ".join(fields)
    if len(f"cron({expression})") > _EXPRESSION_LENGTH:
        raise refuse(f"is longer than ScheduleExpression's {_EXPRESSION_LENGTH} characters")
    return expression


def _field_problem(field: _Field, text: str) -> str | None:
    """Why one field breaks AWS's cron rules, or None."""
    if text == "?":
        return None if "?" in field.wildcards else "cannot be '?' (only the two day fields can)"
    items = text.split(",")
    if "#" in text and len(items) > 1:
        return "combines '#' with other values (AWS allows one expression with '#')"
    for item in items:
        if not _item_allowed(field, item):
            return field.allowed
    return None


def _item_allowed(field: _Field, item: str) -> bool:
    """Whether one comma-separated item of a field is allowed."""
    wildcards = field.wildcards
    if item == "*":
        return True
    if "L" in wildcards and item == "L":
        return True
    if "W" in wildcards and item.endswith("W"):  # the weekday nearest a day, e.g. 15W
        return item == "LW" or field.number(item[:-1]) is not None
    if "#" in wildcards:
        if item.endswith("L"):  # the last given weekday of the month, e.g. 6L
            return field.number(item[:-1]) is not None
        if "#" in item:  # the Nth given weekday of the month, e.g. 3#2
            day, _, nth = item.partition("#")
            return field.number(day) is not None and nth in ("1", "2", "3", "4", "5")
    if item.startswith("*/"):
        item = f"{field.low}{item[1:]}"
    match = _ITEM.fullmatch(item)
    if match is None:
        return False
    if match["step"] is not None and ("/" not in wildcards or int(match["step"]) == 0):
        return False
    return all(
        part is None or field.number(part) is not None for part in (match["start"], match["end"])
    )
