"""Which job definitions batchwright made, when runs last used them, and which to prune.

The runtime names every definition ``batchwright-<content hash>`` and tags it with that
hash (:mod:`batchwright.batch.definition`). A definition counts as batchwright's own only
when both agree: a definition someone else named ``batchwright-...`` is never touched.
Runs stamp :data:`LAST_USED_TAG` (a UTC date) on each definition they submit with, at
most once a day, so "unused for 30 days" is read off the definition itself. A deployed
state machine's executions stamp nothing: a definition a state machine names
(:func:`state_machine_definitions`) is kept whatever its stamp says.

Pure logic: the ``jobdefs`` command makes the AWS calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from batchwright.batch.definition import (
    CONTENT_HASH_TAG,
    DEFINITION_NAME_PREFIX,
    LAST_USED_TAG,
    SPEC_VERSION_TAG,
)

#: The longest age ``prune --older-than`` takes (a hundred years).
MAX_AGE_DAYS = 36_500


@dataclass(frozen=True)
class OwnedDefinition:
    """One revision of a job definition batchwright registered."""

    name: str
    revision: int
    arn: str
    #: When a run last used it; ``None`` for one registered before use was recorded.
    last_used: date | None
    spec_version: str = ""


@dataclass(frozen=True)
class Verdict:
    """What ``jobdefs prune`` does with one definition, and why."""

    definition: OwnedDefinition
    prune: bool
    why: str


def owned(definition: Mapping[str, Any]) -> OwnedDefinition | None:
    """The definition as batchwright's own, or ``None`` when batchwright did not make it
    (its name and its content-hash tag must agree)."""
    name = str(definition.get("jobDefinitionName", ""))
    tags = definition.get("tags") or {}
    digest = name.removeprefix(DEFINITION_NAME_PREFIX)
    if not name.startswith(DEFINITION_NAME_PREFIX) or tags.get(CONTENT_HASH_TAG) != digest:
        return None
    try:
        last_used: date | None = date.fromisoformat(str(tags.get(LAST_USED_TAG, "")))
    except ValueError:
        last_used = None
    return OwnedDefinition(
        name,
        int(definition.get("revision", 0)),
        str(definition["jobDefinitionArn"]),
        last_used,
        str(tags.get(SPEC_VERSION_TAG, "")),
    )


def decide(
    definitions: Iterable[OwnedDefinition],
    *,
    today: date,
    older_than: timedelta,
    keep_last: int = 0,
    in_use: frozenset[str] = frozenset(),
    deployed: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """For each definition, most recently used first: prune it or keep it, and why.

    Kept: the ``keep_last`` most recently used; any an active job runs with (``in_use``
    holds ARNs); any a deployed state machine names (``deployed``: definition name ->
    the state machine's name; every revision of that name is kept, as a state machine
    naming it without a revision runs the latest); any used within ``older_than``. A
    definition with no recorded use is pruned only when it is not kept otherwise (it
    predates the recording, so nothing says a run needs it).
    """
    cutoff = today - older_than
    ordered = sorted(
        definitions,
        key=lambda d: (d.last_used or date.min, d.name, d.revision),
        reverse=True,
    )
    verdicts = []
    for position, definition in enumerate(ordered):
        used = definition.last_used
        if definition.arn in in_use:
            verdicts.append(Verdict(definition, False, "an active job runs with it"))
        elif deployed and definition.name in deployed:
            machine = deployed[definition.name]
            verdicts.append(Verdict(definition, False, f"state machine {machine} uses it"))
        elif position < keep_last:
            verdicts.append(Verdict(definition, False, f"among the {keep_last} last used"))
        elif used is not None and used > cutoff:
            verdicts.append(Verdict(definition, False, f"used on {used.isoformat()}"))
        elif used is None:
            verdicts.append(Verdict(definition, True, "no recorded use"))
        else:
            verdicts.append(Verdict(definition, True, f"last used {used.isoformat()}"))
    return verdicts


def state_machine_definitions(definition: Any) -> set[str]:
    """The names of the job definitions a state machine's ASL document names: each
    ``JobDefinition`` of a state's parameters, by name (``NAME``, ``NAME:REVISION``, as
    ``step-functions create`` deploys) or by ARN (``arn:…:job-definition/NAME:REVISION``,
    as a CloudFormation stack deploys); in branches and iterators too."""
    names: set[str] = set()
    if isinstance(definition, Mapping):
        for key, value in definition.items():
            if key == "JobDefinition" and isinstance(value, str) and value:
                reference = (
                    value.rsplit("job-definition/", 1)[-1] if value.startswith("arn:") else value
                )
                names.add(reference.split(":", 1)[0])
            else:
                names |= state_machine_definitions(value)
    elif isinstance(definition, list):
        for item in definition:
            names |= state_machine_definitions(item)
    return names


def parse_age(text: str) -> timedelta:
    """``30d``, ``2w`` or a bare number of days, as whole days: runs record the day a
    definition was used, not the hour, so an age is at least one day (``36h`` is 2 days).

    Raises:
        ValueError: anything else (the message says what is accepted).
    """
    units = {"d": 1.0, "w": 7.0, "h": 1 / 24}
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in units else "d"
    number = value[:-1] if value[-1:] in units else value
    try:
        days = float(number) * units[unit]
    except ValueError:
        days = float("nan")
    if not 1 <= days <= MAX_AGE_DAYS:  # also NaN
        raise ValueError(
            f"{text!r} is not an age of 1 to {MAX_AGE_DAYS} days: give a number of days or "
            "weeks, e.g. 30d or 2w (runs record the day they used a definition, not the hour)"
        )
    return timedelta(days=math.ceil(days))
