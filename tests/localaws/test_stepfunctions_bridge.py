"""Step Functions on the local AWS calls its service integrations with the field names AWS
uses (:mod:`batchwright_localaws.stepfunctions`): a ``batch:submitJob.sync`` task written
in PascalCase, as AWS requires, submits the job, waits for it and returns its
DescribeJobs record in PascalCase; a failed job fails the task with ``States.TaskFailed``.

The first tests need no Docker: the conversions, checked against botocore's model, and
an execution in moto in-process with container execution off. The others run real
containers on the local AWS: an array job of three, and a job that fails once and passes
on the state's retry."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from botocore.validate import validate_parameters
from tests.localaws.test_smoke import _queue

from batchwright_localaws import LocalAws
from batchwright_localaws import stepfunctions as sf

ROLE = "arn:aws:iam::123456789012:role/states"  # moto checks the ARN's form only

# --- the pure conversions ---------------------------------------------------------------

SUBMIT = {
    "JobName": "train",
    "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
    "JobDefinition": "def:1",
    "ArrayProperties": {"Size": 3},
    "ContainerOverrides": {
        "Command": ["python3", "-c", "pass"],
        "Environment": [{"Name": "A", "Value": "1"}, {"name": "MANAGED_BY_AWS", "value": "x"}],
        "ResourceRequirements": [
            {"Type": "VCPU", "Value": "2"},
            {"Type": "MEMORY", "Value": "512"},
        ],
    },
    "Timeout": {"AttemptDurationSeconds": 600},
    "Tags": {"Flow": "f", "run_id": "r"},
    "Parameters": {"InputPath": "s3://x"},
    "RetryStrategy": {"Attempts": 2, "EvaluateOnExit": [{"OnExitCode": "3", "Action": "RETRY"}]},
    "DependsOn": [{"JobId": "abc", "Type": "N_TO_N"}],
}


def _input_shape(service: str, action: str) -> Any:
    operation = sf.operation_model(service, action)
    assert operation is not None
    return operation.input_shape


def test_submit_job_parameters_take_the_apis_names_and_botocore_accepts_them() -> None:
    converted = sf.api_parameters("batch", "submitJob", SUBMIT)
    assert converted == {
        "jobName": "train",
        "jobQueue": SUBMIT["JobQueue"],
        "jobDefinition": "def:1",
        "arrayProperties": {"size": 3},
        "containerOverrides": {
            "command": ["python3", "-c", "pass"],
            "environment": [
                {"name": "A", "value": "1"},
                {"name": "MANAGED_BY_AWS", "value": "x"},  # moto's own entry, already so
            ],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
        "timeout": {"attemptDurationSeconds": 600},
        "tags": {"Flow": "f", "run_id": "r"},  # map keys are the user's
        "parameters": {"InputPath": "s3://x"},
        "retryStrategy": {
            "attempts": 2,
            "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"}],
        },
        "dependsOn": [{"jobId": "abc", "type": "N_TO_N"}],
    }
    validate_parameters(converted, _input_shape("batch", "submit_job"))
    assert SUBMIT["JobName"] == "train" and "jobName" not in SUBMIT  # a new value


def test_api_names_are_idempotent_and_unknown_keys_stay() -> None:
    shape = _input_shape("batch", "SubmitJob")
    once = sf.to_api_names(SUBMIT, shape)
    assert sf.to_api_names(once, shape) == once
    odd = sf.to_api_names({"JobName": "j", "Bogus": {"Size": 1}}, shape)
    assert odd == {"jobName": "j", "Bogus": {"Size": 1}}
    # PascalCase APIs pass unchanged.
    s3 = {"Bucket": "b", "Key": "prefix/run/x.json"}
    assert sf.api_parameters("s3", "getObject", s3) == s3
    assert sf.api_parameters("no-such-service", "x", {"A": 1}) == {"A": 1}


def test_responses_take_step_functions_names_with_map_keys_kept() -> None:
    described = {
        "jobs": [
            {
                "jobId": "j1",
                "jobName": "train",
                "jobArn": "arn:j1",
                "status": "SUCCEEDED",
                "arrayProperties": {"size": 3, "statusSummary": {"SUCCEEDED": 3, "FAILED": 0}},
                "tags": {"run_id": "r"},
                "parameters": {"inputPath": "p"},
                "container": {
                    "environment": [{"name": "A", "value": "1"}],
                    "resourceRequirements": [{"type": "VCPU", "value": "2"}],
                },
                "attempts": [{"container": {"exitCode": 0}, "startedAt": 1, "stoppedAt": 2}],
            }
        ]
    }
    result = sf.sfn_result("batch", "describe_jobs", described)
    (job,) = result["Jobs"]
    assert job == {
        "JobId": "j1",
        "JobName": "train",
        "JobArn": "arn:j1",
        "Status": "SUCCEEDED",
        "ArrayProperties": {"Size": 3, "StatusSummary": {"SUCCEEDED": 3, "FAILED": 0}},
        "Tags": {"run_id": "r"},
        "Parameters": {"inputPath": "p"},
        "Container": {
            "Environment": [{"Name": "A", "Value": "1"}],
            "ResourceRequirements": [{"Type": "VCPU", "Value": "2"}],
        },
        "Attempts": [{"Container": {"ExitCode": 0}, "StartedAt": 1, "StoppedAt": 2}],
    }
    operation = sf.operation_model("batch", "describeJobs")
    assert operation is not None
    assert sf.to_sfn_names(result, operation.output_shape) == result  # idempotent
    assert described["jobs"][0]["jobId"] == "j1"  # a new value
    assert sf.sfn_result("batch", "submitJob", {"jobId": "j", "jobName": "n", "jobArn": "a"}) == {
        "JobId": "j",
        "JobName": "n",
        "JobArn": "a",
    }


def test_a_streaming_body_becomes_its_text() -> None:
    import io

    from botocore.response import StreamingBody

    raw = b'{"size": 3}'
    body = StreamingBody(io.BytesIO(raw), len(raw))
    result = sf.sfn_result("s3", "get_object", {"Body": body, "ContentLength": len(raw)})
    assert result == {"Body": '{"size": 3}', "ContentLength": len(raw)}


def test_the_round_trip_returns_to_step_functions_names() -> None:
    # The API's names of SubmitJob's input, back to PascalCase, are what was written.
    shape = _input_shape("batch", "submit_job")
    assert sf.to_sfn_names(sf.to_api_names(SUBMIT, shape), shape) == {
        **SUBMIT,
        "ContainerOverrides": {
            **SUBMIT["ContainerOverrides"],  # type: ignore[dict-item]
            "Environment": [
                {"Name": "A", "Value": "1"},
                {"Name": "MANAGED_BY_AWS", "Value": "x"},
            ],
        },
    }


# --- an execution in moto in-process, with container execution off ----------------------


@pytest.fixture
def bridged_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process with the bridge installed, undone afterwards."""
    moto = pytest.importorskip("moto")
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_aws_sdk,
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.backend import execution

    service = state_task_service.StateTaskService
    for name in ("_normalise_parameters", "_normalise_response"):
        monkeypatch.setattr(service, name, getattr(service, name))
    waiting = state_task_service_callback.StateTaskServiceCallback
    monkeypatch.setattr(waiting, "_eval_execution", waiting._eval_execution)
    monkeypatch.setattr(execution.Execution, "__deepcopy__", None, raising=False)
    monkeypatch.delattr(execution.Execution, "__deepcopy__")
    monkeypatch.setattr(
        state_task_service_aws_sdk,
        "_SERVICE_ERROR_NAMES",
        dict(state_task_service_aws_sdk._SERVICE_ERROR_NAMES),
    )
    sf.install()
    sf.install()  # idempotent
    config = {"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
    with moto.mock_aws(config=config):
        import boto3

        yield boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )


def _finish(sfn: Any, execution: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.3)
    raise AssertionError(f"{execution} still running after {timeout} s")


def _events(sfn: Any, execution: str) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
    return [event for page in pages for event in page["events"]]


def _batch_task(name: str, queue: str, definition: str, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": name, "JobQueue": queue, "JobDefinition": definition, **extra},
    }


def test_without_containers_a_sync_batch_task_returns_the_job_in_pascal_case(
    bridged_moto: Any,
) -> None:
    role = bridged_moto.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")
    batch, sfn = bridged_moto.client("batch"), bridged_moto.client("stepfunctions")
    ce = batch.create_compute_environment(
        computeEnvironmentName="sfn", type="UNMANAGED", state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )["computeEnvironmentArn"]  # fmt: skip
    queue = batch.create_job_queue(
        jobQueueName="sfn", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )["jobQueueArn"]  # fmt: skip
    definition = batch.register_job_definition(
        jobDefinitionName="sfn", type="container",
        containerProperties={"image": "img", "command": ["true"], "vcpus": 1, "memory": 128},
    )["jobDefinitionArn"]  # fmt: skip
    task = _batch_task(
        "sfn-array", queue, definition,
        **{"ArrayProperties": {"Size.$": "$.size"}, "Tags": {"run_id": "r1"},
           "ContainerOverrides": {"Environment": [{"Name": "A", "Value.$": "$$.Execution.Name"}]}},
    )  # fmt: skip
    machine = sfn.create_state_machine(
        name="sfn",
        roleArn=ROLE,
        definition=json.dumps({"StartAt": "Array", "States": {"Array": {**task, "End": True}}}),
    )["stateMachineArn"]
    outputs = []
    for run in ("run-1", "run-2"):  # a state machine runs more than once
        execution = sfn.start_execution(
            stateMachineArn=machine, name=run, input=json.dumps({"size": 3})
        )["executionArn"]
        described = _finish(sfn, execution)
        assert described["status"] == "SUCCEEDED", described
        outputs.append(json.loads(described["output"]))
    output = outputs[1]
    assert output["JobName"] == "sfn-array"
    assert output["Status"] == "SUCCEEDED"
    assert output["ArrayProperties"]["Size"] == 3
    assert output["Tags"]["run_id"] == "r1"
    assert {"Name": "A", "Value": "run-2"} in output["Container"]["Environment"]
    assert {"Name": "MANAGED_BY_AWS", "Value": "STARTED_BY_STEP_FUNCTIONS"} in output["Container"][
        "Environment"
    ]
    assert (output["JobId"], output["JobArn"]) != (outputs[0]["JobId"], outputs[0]["JobArn"])
    assert not any(key[:1].islower() for key in output)


def test_without_containers_s3_bodies_intrinsics_parallel_retry_and_catch(
    bridged_moto: Any,
) -> None:
    s3, sfn = bridged_moto.client("s3"), bridged_moto.client("stepfunctions")
    s3.create_bucket(Bucket="sfn-bucket")
    s3.put_object(Bucket="sfn-bucket", Key="prefix/found/x.json", Body=b'{"size": 3}')
    machine = sfn.create_state_machine(name="reads", roleArn=ROLE, definition=json.dumps(_READER))[
        "stateMachineArn"
    ]

    found = sfn.start_execution(
        stateMachineArn=machine, name="found", input=json.dumps({"n": 4, "obj": {"k": [1]}})
    )["executionArn"]
    described = _finish(sfn, found)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {
        "n": 4,
        "obj": {"k": [1]},
        "read": {"size": {"size": 3}},  # the Body came back as text
        "done": {"fmt": "found-4", "js": '{"k":[1]}', "parsed": {"a": 1}, "sum": 5},
    }

    missing = sfn.start_execution(
        stateMachineArn=machine, name="missing", input=json.dumps({"n": 1, "obj": {}})
    )["executionArn"]
    described = _finish(sfn, missing)
    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED",
        "Missing",
        "no such object",
    )
    failures = [e for e in _events(sfn, missing) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failures] == [
        "S3.NoSuchKeyException"
    ] * 2  # the first try and the one retry


_GET = {
    "Type": "Task",
    "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
    "Parameters": {
        "Bucket": "sfn-bucket",
        "Key.$": "States.Format('prefix/{}/x.json', $$.Execution.Name)",
    },
    "ResultSelector": {"size.$": "States.StringToJson($.Body)"},
}
_RETRY = {"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1, "IntervalSeconds": 1,
          "BackoffRate": 1.0}  # fmt: skip
_READER = {
    "StartAt": "Guard",
    "States": {
        "Guard": {
            "Type": "Parallel",
            "ResultPath": None,
            "Retry": [_RETRY],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Missing"}],
            "Branches": [{"StartAt": "Get", "States": {"Get": {**_GET, "End": True}}}],
            "Next": "Read",
        },
        "Read": {**_GET, "ResultPath": "$.read", "Next": "Intrinsics"},
        "Intrinsics": {
            "Type": "Pass",
            "ResultPath": "$.done",
            "Parameters": {
                "fmt.$": "States.Format('{}-{}', $$.Execution.Name, $.n)",
                "js.$": "States.JsonToString($.obj)",
                "parsed.$": """States.StringToJson('{"a": 1}')""",
                "sum.$": "States.MathAdd($.n, 1)",
            },
            "End": True,
        },
        "Missing": {"Type": "Fail", "Error": "Missing", "Cause": "no such object"},
    },
}


# --- real containers --------------------------------------------------------------------

# The flaky job fails on its first try and passes on the state's retry: Step Functions
# passes the retry count in its environment.
FLAKY = (
    "import os, sys; n = os.environ['RETRY_COUNT']; print('try', n); sys.exit(3 if n == '0' else 0)"
)
CHILD = "import os; print('child', os.environ['AWS_BATCH_JOB_ID'])"


@pytest.mark.localaws
def test_a_state_machine_runs_an_array_job_and_retries_a_failed_job(local_aws: LocalAws) -> None:
    name = f"sfn-{uuid.uuid4().hex[:8]}"
    batch, sfn = local_aws.client("batch"), local_aws.client("stepfunctions")
    queue = _queue(local_aws, name)
    definition = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": local_aws.image,
            "command": ["python3", "-c", "pass"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )["jobDefinitionArn"]
    array = _batch_task(
        f"{name}-array", queue, definition,
        ArrayProperties={"Size.$": "$.size"},
        ContainerOverrides={
            "Command": ["python3", "-c", CHILD],
            "Environment": [{"Name": "RUN", "Value.$": "$$.Execution.Name"}],
            "ResourceRequirements": [{"Type": "MEMORY", "Value": "256"}],
        },
        Timeout={"AttemptDurationSeconds": 600},
        Tags={"flow": name},
    )  # fmt: skip
    flaky = _batch_task(
        f"{name}-flaky", queue, definition,
        ContainerOverrides={
            "Command": ["python3", "-c", FLAKY],
            "Environment": [
                {"Name": "RETRY_COUNT", "Value.$": "States.Format('{}', $$.State.RetryCount)"}
            ],
        },
        Tags={"flow": name},
    )  # fmt: skip
    machine = sfn.create_state_machine(
        name=name,
        roleArn=ROLE,
        definition=json.dumps(
            {
                "StartAt": "Array",
                "States": {
                    "Array": {**array, "ResultPath": "$.array", "Next": "Flaky"},
                    "Flaky": {**flaky, "Retry": [_RETRY], "ResultPath": "$.flaky", "End": True},
                },
            }
        ),
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name=name, input=json.dumps({"size": 3})
    )["executionArn"]
    described = _finish(sfn, execution, timeout=300)
    events = _events(sfn, execution)
    assert described["status"] == "SUCCEEDED", (described, events)

    output = json.loads(described["output"])
    assert output["size"] == 3
    assert (output["array"]["JobName"], output["array"]["Status"]) == (f"{name}-array", "SUCCEEDED")
    assert output["array"]["ArrayProperties"]["Size"] == 3
    assert output["array"]["Tags"]["flow"] == name
    assert (output["flaky"]["JobName"], output["flaky"]["Status"]) == (f"{name}-flaky", "SUCCEEDED")
    assert {"Name": "RETRY_COUNT", "Value": "1"} in output["flaky"]["Container"]["Environment"]

    # Batch shows one array job of three children, and the flaky job twice: failed, then
    # passed.
    records = local_aws.job_records(keep=lambda job: job.get("tags", {}).get("flow") == name)
    parents = [job for job in records if ":" not in job["jobId"]]
    arrays = [job for job in parents if job.get("arrayProperties", {}).get("size")]
    assert [(job["jobName"], job["arrayProperties"]["size"]) for job in arrays] == [
        (f"{name}-array", 3)
    ]
    assert arrays[0]["jobId"] == output["array"]["JobId"]
    children = [job for job in records if job["jobId"].startswith(arrays[0]["jobId"] + ":")]
    assert sorted(job["status"] for job in children) == ["SUCCEEDED"] * 3
    tries = sorted(
        (job for job in parents if job["jobName"] == f"{name}-flaky"),
        key=lambda job: job["createdAt"],
    )
    assert [job["status"] for job in tries] == ["FAILED", "SUCCEEDED"]
    assert tries[1]["jobId"] == output["flaky"]["JobId"]

    # The history shows the retry: three submissions, one failure, two successes.
    kinds = [event["type"] for event in events]
    assert kinds.count("TaskSubmitted") == 3
    assert kinds.count("TaskSucceeded") == 2
    (failed,) = [event for event in events if event["type"] == "TaskFailed"]
    details = failed["taskFailedEventDetails"]
    assert details["error"] == "States.TaskFailed"
    cause = json.loads(details["cause"])
    assert (cause["JobId"], cause["Status"]) == (tries[0]["jobId"], "FAILED")


def test_the_local_aws_keeps_step_functions_executing_after_a_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batchwright_localaws import services

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(services, "moto_api", lambda _, path, body=None: calls.append((path, body)))
    services.reset(cast(LocalAws, None))
    assert calls == [("reset", None), ("config", services.MOTO_CONFIG)]
    assert services.MOTO_CONFIG == {"stepfunctions": {"execute_state_machine": True}}
