"""The ASL validator helper (tests/contract/asl.py) accepts a state machine of the shape a
flow compiles to and rejects broken ones, each with the validator's own reason: a
contract test that uses it can fail."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from .asl import asl_problems

SUBMIT_JOB_SYNC = "arn:aws:states:::batch:submitJob.sync"
QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/batchwright-ondemand"
DEFINITION = "arn:aws:batch:us-east-1:123456789012:job-definition/batchwright-abc123:1"


def _batch_task(step: str, **transition: Any) -> dict[str, Any]:
    """A Task state that runs one step as a Batch job and waits for it (.sync)."""
    return {
        "Type": "Task",
        "Resource": SUBMIT_JOB_SYNC,
        "Parameters": {
            "JobName": step,
            "JobQueue": QUEUE,
            "JobDefinition": DEFINITION,
            "ContainerOverrides": {
                "Command.$": f"States.Array('python', 'flow.py', 'step', '{step}')",
            },
        },
        "ResultPath": f"$.{step}",
        **transition,
    }


def valid_state_machine() -> dict[str, Any]:
    """start (retried, caught) -> a Parallel split of two Batch steps -> end."""
    return {
        "Comment": "start -> (left | right) -> end, each step a Batch job",
        "StartAt": "start",
        "States": {
            "start": _batch_task(
                "start",
                Retry=[
                    {
                        "ErrorEquals": ["Batch.AWSBatchException", "States.TaskFailed"],
                        "IntervalSeconds": 2,
                        "MaxAttempts": 3,
                        "BackoffRate": 2.0,
                    }
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "failed"}],
                Next="split",
            ),
            "split": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "left", "States": {"left": _batch_task("left", End=True)}},
                    {"StartAt": "right", "States": {"right": _batch_task("right", End=True)}},
                ],
                "ResultPath": "$.split",
                "Next": "end",
            },
            "end": _batch_task("end", End=True),
            "failed": {"Type": "Fail", "Error": "StepFailed", "Cause": "a step failed"},
        },
    }


def test_a_state_machine_of_batch_jobs_with_parallel_retry_and_catch_is_valid() -> None:
    assert asl_problems(valid_state_machine()) == []


def _without_start_at(machine: dict[str, Any]) -> None:
    del machine["StartAt"]


def _next_to_a_missing_state(machine: dict[str, Any]) -> None:
    machine["States"]["split"]["Next"] = "nowhere"


def _retry_without_error_equals(machine: dict[str, Any]) -> None:
    del machine["States"]["start"]["Retry"][0]["ErrorEquals"]


def _catch_to_a_missing_state(machine: dict[str, Any]) -> None:
    machine["States"]["start"]["Catch"][0]["Next"] = "nowhere"


def _branch_leaving_its_parallel(machine: dict[str, Any]) -> None:
    left = machine["States"]["split"]["Branches"][0]["States"]["left"]
    del left["End"]
    left["Next"] = "end"


def _resource_that_is_not_an_arn(machine: dict[str, Any]) -> None:
    machine["States"]["end"]["Resource"] = "batch:submitJob.sync"


def _both_end_and_next(machine: dict[str, Any]) -> None:
    machine["States"]["end"]["Next"] = "failed"


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "missing StartAt": (_without_start_at, "required property 'StartAt'"),
    "Next to a missing state": (_next_to_a_missing_state, "target: nowhere"),
    "Retry without ErrorEquals": (_retry_without_error_equals, "/States/start/Retry/0"),
    "Catch to a missing state": (_catch_to_a_missing_state, "target: nowhere"),
    "branch leaving its Parallel": (_branch_leaving_its_parallel, "BRANCH_OUTBOUND"),
    "Resource not an ARN": (_resource_that_is_not_an_arn, "/States/end/Resource"),
    "both End and Next": (_both_end_and_next, 'exactly one of "End", "Next"'),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_state_machine_is_rejected_with_the_reason(case: str) -> None:
    breaks, reason = BROKEN[case]
    machine = copy.deepcopy(valid_state_machine())
    breaks(machine)
    problems = asl_problems(machine)
    assert problems, f"{case}: the validator accepted it"
    assert any(reason in problem for problem in problems), problems


def test_every_problem_is_one_message_with_its_code() -> None:
    machine = valid_state_machine()
    _next_to_a_missing_state(machine)
    problems = asl_problems(machine)
    # "end" becomes unreachable as well: two problems, each "CODE: message".
    assert len(problems) == 2
    assert all(problem.split(":", 1)[0].isupper() for problem in problems), problems


def test_a_missing_validator_skips_on_a_laptop_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from . import asl

    monkeypatch.setattr(asl, "VALIDATOR", tmp_path / "asl-validator")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(asl.ValidatorMissing, match="CI=true and asl-validator is not installed"):
        asl_problems(valid_state_machine())
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="make bootstrap"):
        asl_problems(valid_state_machine())
