"""Which job definitions are batchwright's, and which ``jobdefs prune`` removes."""

from __future__ import annotations

import argparse
import io
import json
from datetime import date, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from batchwright.batch.cleanup import (
    OwnedDefinition,
    decide,
    owned,
    parse_age,
    state_machine_definitions,
)
from batchwright.batch.definition import CONTENT_HASH_TAG, LAST_USED_TAG
from batchwright.cli import jobdefs
from batchwright.console import Console

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


def test_a_definition_a_deployed_state_machine_names_is_kept() -> None:
    """A deployed execution stamps no use: the state machine naming it keeps it, every
    revision of it, however old its stamp."""
    named = _owned("batchwright-a", TODAY - timedelta(days=400))
    unstamped = _owned("batchwright-b", None)
    unused = _owned("batchwright-c", TODAY - timedelta(days=400))
    verdicts = decide(
        [named, unstamped, unused],
        today=TODAY,
        older_than=timedelta(days=30),
        deployed={"batchwright-a": "Nightly", "batchwright-b": "Stack-FlowA1B2"},
    )
    by_name = {v.definition.name: v for v in verdicts}
    assert not by_name["batchwright-a"].prune
    assert by_name["batchwright-a"].why == "state machine Nightly uses it"
    assert not by_name["batchwright-b"].prune
    assert by_name["batchwright-c"].prune


def test_the_definitions_a_state_machine_names_by_name_or_by_arn() -> None:
    document = {
        "StartAt": "start",
        "States": {
            "start": {
                "Type": "Task",
                "Resource": "arn:aws:states:::batch:submitJob.sync",
                "Parameters": {"JobDefinition": "batchwright-a", "JobQueue": "q"},
            },
            "split": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "States": {
                            "left": {
                                "Type": "Task",
                                "Parameters": {
                                    "JobDefinition": "arn:aws:batch:us-east-1:1:"
                                    "job-definition/FlowJobDefinitionsleft-Ab1:3"
                                },
                            },
                            "right": {"Type": "Task", "Parameters": {"JobDefinition": "b:7"}},
                            "dynamic": {"Type": "Task", "Parameters": {"JobDefinition.$": "$.d"}},
                        }
                    }
                ],
            },
        },
    }
    assert state_machine_definitions(document) == {
        "batchwright-a",
        "FlowJobDefinitionsleft-Ab1",
        "b",
    }


def _register(batch: Any, name: str, used: str | None) -> str:
    tags = {CONTENT_HASH_TAG: name.removeprefix("batchwright-")}
    if used:
        tags[LAST_USED_TAG] = used
    return str(
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "busybox",
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
            tags=tags,
        )["jobDefinitionArn"]
    )


def _machine(sfn: Any, name: str, job_definition: str) -> None:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobDefinition": job_definition, "JobName": "x", "JobQueue": "q"},
        "End": True,
    }
    sfn.create_state_machine(
        name=name,
        definition=json.dumps({"StartAt": "start", "States": {"start": task}}),
        roleArn="arn:aws:iam::123456789012:role/states",
    )


def test_prune_keeps_what_deployed_state_machines_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    old = "2020-01-01"
    by_name, by_arn, unused = (f"batchwright-{c * 32}" for c in "abc")
    with mock_aws():
        batch = boto3.client("batch")
        sfn = boto3.client("stepfunctions")
        _register(batch, by_name, old)
        cdk_arn = _register(batch, by_arn, None)
        _register(batch, unused, old)
        _machine(sfn, "ProductionFlow", by_name)  # as step-functions create deploys
        _machine(sfn, "Stack-FlowA1B2", cdk_arn)  # as a CloudFormation stack deploys
        out, err = io.StringIO(), io.StringIO()
        args = argparse.Namespace(older_than="30d", keep_last=0, yes=True)
        assert jobdefs._prune(args, Console(out, err)) == 0
        assert "state machine ProductionFlow uses it" in out.getvalue()
        assert "state machine Stack-FlowA1B2 uses it" in out.getvalue()
        active = {
            d["jobDefinitionName"]
            for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
        }
        assert active == {by_name, by_arn}


def test_a_state_machine_that_cannot_be_read_is_a_notice() -> None:
    from botocore.exceptions import ClientError

    class Listing:
        def paginate(self) -> list[dict[str, Any]]:
            return [
                {
                    "stateMachines": [
                        {"name": "Secret", "stateMachineArn": "arn:secret"},
                        {"name": "Open", "stateMachineArn": "arn:open"},
                    ]
                }
            ]

    class StepFunctions:
        def get_paginator(self, operation: str) -> Listing:
            return Listing()

        def describe_state_machine(self, stateMachineArn: str) -> dict[str, Any]:
            if stateMachineArn == "arn:secret":
                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                    "DescribeStateMachine",
                )
            return {
                "definition": json.dumps({"States": {"s": {"Parameters": {"JobDefinition": "j"}}}})
            }

    notices: list[str] = []
    assert jobdefs.definitions_deployed(StepFunctions(), notices) == {"j": "Open"}
    (notice,) = notices
    assert "could not read state machine Secret" in notice
    assert "states:DescribeStateMachine" in notice
