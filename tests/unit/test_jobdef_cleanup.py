"""Which job definitions are batchwright's, and which ``jobdefs prune`` removes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchwright.batch.cleanup import OwnedDefinition, decide, owned, parse_age
from batchwright.batch.definition import CONTENT_HASH_TAG, LAST_USED_TAG

DIGEST = "0123456789abcdef0123456789abcdef"


def _definition(name: str, tags: dict[str, str], revision: int = 1) -> dict[str, object]:
    return {
        "jobDefinitionName": name,
        "jobDefinitionArn": f"arn:aws:batch:us-east-1:1:job-definition/{name}:{revision}",
        "revision": revision,
        "tags": tags,
    }


def test_only_a_definition_whose_name_and_hash_tag_agree_is_ours() -> None:
    mine = owned(
        _definition(
            f"batchwright-{DIGEST}", {CONTENT_HASH_TAG: DIGEST, LAST_USED_TAG: "2026-11-02"}
        )
    )
    assert mine is not None and mine.last_used == date(2026, 11, 2)
    assert owned(_definition(f"batchwright-{DIGEST}", {})) is None  # named like ours, untagged
    assert owned(_definition(f"batchwright-{DIGEST}", {CONTENT_HASH_TAG: "f" * 32})) is None
    assert owned(_definition("training", {CONTENT_HASH_TAG: "training"})) is None
    undated = owned(_definition(f"batchwright-{DIGEST}", {CONTENT_HASH_TAG: DIGEST}))
    assert undated is not None and undated.last_used is None


def _owned(name: str, used: date | None) -> OwnedDefinition:
    return OwnedDefinition(name, 1, f"arn:{name}", used)


TODAY = date(2026, 12, 3)


def test_prune_keeps_the_recent_the_last_n_and_the_active() -> None:
    recent = _owned("batchwright-a", TODAY - timedelta(days=3))
    old = _owned("batchwright-b", TODAY - timedelta(days=40))
    older = _owned("batchwright-c", TODAY - timedelta(days=90))
    active = _owned("batchwright-d", TODAY - timedelta(days=200))
    undated = _owned("batchwright-e", None)
    verdicts = decide(
        [older, undated, recent, active, old],
        today=TODAY,
        older_than=timedelta(days=30),
        keep_last=2,
        in_use=frozenset({active.arn}),
    )
    by_name = {v.definition.name: v for v in verdicts}
    assert [v.definition.name for v in verdicts][:2] == ["batchwright-a", "batchwright-b"]
    assert not by_name["batchwright-a"].prune  # recent, and among the last 2
    assert not by_name["batchwright-b"].prune and "last used" in by_name["batchwright-b"].why
    assert by_name["batchwright-c"].prune
    assert not by_name["batchwright-d"].prune and "active job" in by_name["batchwright-d"].why
    assert by_name["batchwright-e"].prune and by_name["batchwright-e"].why == "no recorded use"


@given(
    ages=st.lists(st.one_of(st.none(), st.integers(0, 400)), max_size=12),
    days=st.integers(1, 120),
    keep=st.integers(0, 5),
)
def test_prune_never_takes_a_definition_used_within_the_age(
    ages: list[int | None], days: int, keep: int
) -> None:
    definitions = [
        _owned(f"batchwright-{i}", None if age is None else TODAY - timedelta(days=age))
        for i, age in enumerate(ages)
    ]
    verdicts = decide(definitions, today=TODAY, older_than=timedelta(days=days), keep_last=keep)
    assert len(verdicts) == len(definitions)
    for position, verdict in enumerate(verdicts):
        used = verdict.definition.last_used
        if used is not None and used > TODAY - timedelta(days=days):
            assert not verdict.prune
        if position < keep:
            assert not verdict.prune


@pytest.mark.parametrize(
    ("text", "days"), [("30d", 30), ("2w", 14), ("36h", 2), ("7", 7), ("1.5d", 2), ("24h", 1)]
)
def test_ages_read_as_whole_days(text: str, days: int) -> None:
    assert parse_age(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "soon", "-3d", "3y", "nan", "0d", "12h", "inf", "1e9"])
def test_anything_else_is_not_an_age(text: str) -> None:
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)


def test_a_definition_used_today_is_kept_at_the_shortest_age() -> None:
    [verdict] = decide([_owned("batchwright-a", TODAY)], today=TODAY, older_than=parse_age("1d"))
    assert not verdict.prune
