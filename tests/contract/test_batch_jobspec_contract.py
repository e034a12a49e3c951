"""Contract 2: the request bodies for a table of @batch inputs on EC2, Spot and Fargate
queues are valid against botocore's Batch model and equal the expected bodies."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from batchwright.batch.definition import PLACEHOLDER_COMMAND, build_job_definition, content_hash
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.batch.submission import TaskInvocation

from .conftest import ModelViolation

ACCOUNT = "123456789012"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-job"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-execution"
STEP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/step-job"


def queue_arn(name: str) -> str:
    return f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/{name}"


def full_target(platform: Any) -> QueueTarget:
    """A target with every default an environment descriptor provides."""
    return QueueTarget(
        queue=queue_arn(platform.lower()),
        platform=platform,
        job_role_arn=JOB_ROLE,
        execution_role_arn=EXECUTION_ROLE,
        default_image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1",
        log_group="/batchwright/env",
        region="us-east-1",
    )


def bare_target(platform: Any) -> QueueTarget:
    """A target without a descriptor (Fargate still needs an execution role)."""
    fargate = platform.startswith("FARGATE")
    return QueueTarget(
        queue=platform.lower(),
        platform=platform,
        execution_role_arn=EXECUTION_ROLE if fargate else None,
    )


def invocation(**changes: Any) -> TaskInvocation:
    values: dict[str, Any] = {
        "flow": "TrainFlow",
        "run_id": "1732540000",
        "step": "train",
        "task_id": "3",
        "command": ("python3", "-m", "batchwright.task", "--step", "train"),
        "environment": {"BATCHWRIGHT_DATASTORE": "s3://bucket/prefix"},
    }
    values.update(changes)
    return TaskInvocation(**values)


EC2_LIKE = ("EC2", "SPOT")
FARGATE_LIKE = ("FARGATE", "FARGATE_SPOT")
ALL = EC2_LIKE + FARGATE_LIKE

# (id, @batch attributes, platforms it is valid on)
TABLE: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("defaults", {}, ALL),
    ("cpu", {"cpu": 4}, ALL),
    ("memory", {"memory": 16384}, ALL),
    ("cpu and memory", {"cpu": 8, "memory": 30000}, ALL),
    ("fractional cpu", {"cpu": 0.25, "memory": 512}, FARGATE_LIKE),
    ("gpu", {"gpu": 1}, EC2_LIKE),
    ("image", {"image": "python:3.12-slim"}, ALL),
    ("queue", {"queue": "anything"}, ALL),
    ("iam_role", {"iam_role": STEP_ROLE}, ALL),
    ("execution_role", {"execution_role": STEP_ROLE}, ALL),
    ("shared_memory", {"shared_memory": 2048}, EC2_LIKE),
    ("max_swap", {"max_swap": 1024}, EC2_LIKE),
    ("swap and swappiness", {"max_swap": 1024, "swappiness": 0}, EC2_LIKE),
    ("inferentia", {"inferentia": 2}, EC2_LIKE),
    ("trainium", {"trainium": 16}, EC2_LIKE),
    ("efa", {"efa": 4}, EC2_LIKE),
    ("use_tmpfs", {"use_tmpfs": True}, EC2_LIKE),
    (
        "tmpfs sized",
        {"tmpfs_size": 1000, "tmpfs_path": "/scratch", "tmpfs_tempdir": False},
        EC2_LIKE,
    ),
    ("ephemeral_storage", {"ephemeral_storage": 100}, FARGATE_LIKE),
    ("tags", {"aws_batch_tags": {"team": "ml", "cost-center": "1234"}}, ALL),
    ("45 tags", {"aws_batch_tags": {f"tag{i}": f"v{i}" for i in range(45)}}, ALL),
    ("awslogs", {"log_driver": "awslogs", "log_options": {"awslogs-group": "/mine"}}, ALL),
    ("awslogs from env", {"log_driver": "awslogs"}, ALL),
    ("splunk", {"log_driver": "splunk", "log_options": {"splunk-url": "https://s:8088"}}, ALL),
    ("json-file", {"log_driver": "json-file", "log_options": {"max-size": "10m"}}, EC2_LIKE),
    ("privileged", {"privileged": True}, EC2_LIKE),
    (
        # With the step's execution role: a bare EC2 target has none to fetch them with.
        "secrets",
        {
            "secrets": {
                "DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf",
                "API_TOKEN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team/token",
                "PLAIN": "/team/plain",
            },
            "execution_role": STEP_ROLE,
        },
        ALL,
    ),
    (
        "gpu training",
        {"cpu": 8, "memory": 60000, "gpu": 4, "shared_memory": 8192, "use_tmpfs": True},
        EC2_LIKE,
    ),
    ("neuron with efa", {"trainium": 16, "efa": 8, "privileged": True, "memory": 500000}, EC2_LIKE),
    (
        "every EC2 option",
        {
            "cpu": 16,
            "memory": 64000,
            "gpu": 2,
            "image": "img:2",
            "queue": "q",
            "iam_role": STEP_ROLE,
            "execution_role": STEP_ROLE,
            "shared_memory": 4096,
            "max_swap": 2048,
            "swappiness": 60,
            # inferentia is left out: no instance type has both GPUs and Neuron devices.
            "efa": 1,
            "tmpfs_size": 4096,
            "tmpfs_path": "/tmpfs",
            "tmpfs_tempdir": True,
            "aws_batch_tags": {"a": "b"},
            "log_driver": "gelf",
            "log_options": {"gelf-address": "udp://1.2.3.4:12201"},
            "privileged": True,
        },
        EC2_LIKE,
    ),
    (
        "every Fargate option",
        {
            "cpu": 2,
            "memory": 6000,
            "image": "img:2",
            "iam_role": STEP_ROLE,
            "execution_role": STEP_ROLE,
            "ephemeral_storage": 200,
            "aws_batch_tags": {"a": "b"},
            "log_driver": "awslogs",
            "log_options": {"awslogs-group": "/g", "awslogs-stream-prefix": "p"},
        },
        FARGATE_LIKE,
    ),
]

CASES = [
    pytest.param(attributes, platform, make, id=f"{name}-{platform}-{make.__name__}")
    for name, attributes, platforms in TABLE
    for platform in platforms
    for make in (full_target, bare_target)
]


@pytest.mark.parametrize(("attributes", "platform", "make_target"), CASES)
def test_table_bodies_are_valid_for_botocore(
    batch_model: Any, attributes: dict[str, Any], platform: str, make_target: Any
) -> None:
    options = BatchOptions.from_attributes("train", attributes)
    target = make_target(platform)
    spec = build_job_spec(options, target, invocation(timeout_seconds=3600, array_size=16))
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())

    definition = spec.definition.body
    submit = spec.submit.body
    fargate = platform in FARGATE_LIKE
    assert definition["platformCapabilities"] == (["FARGATE"] if fargate else ["EC2"])
    assert definition["jobDefinitionName"] == f"batchwright-{content_hash(definition)}"
    assert submit["jobDefinition"] == definition["jobDefinitionName"]
    assert submit["jobQueue"] == target.queue
    assert submit["arrayProperties"] == {"size": 16}
    assert definition["timeout"] == {"attemptDurationSeconds": 3600 + 30}
    assert len(submit["tags"]) == len(options.aws_batch_tags) + 5 <= 50
    requirements = {
        r["type"]: r["value"] for r in submit["containerOverrides"]["resourceRequirements"]
    }
    if not fargate:
        assert requirements["VCPU"] == str(int(options.cpu))
        assert requirements["MEMORY"] == str(options.memory)
        assert requirements.get("GPU") == (str(options.gpu) if options.gpu else None)
    container = definition["containerProperties"]
    assert ("ephemeralStorage" in container) == (options.ephemeral_storage is not None)
    assert ("executionRoleArn" in container) == (
        fargate or options.execution_role is not None or bool(options.secrets)
    )
    assert [s["name"] for s in container.get("secrets", [])] == sorted(dict(options.secrets))


# The part of each option's output that must appear, per option alone on EC2 (bare target).
EC2_FRAGMENTS: list[tuple[dict[str, Any], str, Any]] = [
    ({"shared_memory": 2048}, "linuxParameters", {"sharedMemorySize": 2048}),
    ({"max_swap": 1024, "swappiness": 10}, "linuxParameters", {"maxSwap": 1024, "swappiness": 10}),
    (
        {"inferentia": 2},
        "linuxParameters",
        {
            "devices": [
                {
                    "hostPath": "/dev/neuron0",
                    "containerPath": "/dev/neuron0",
                    "permissions": ["READ", "WRITE"],
                },
                {
                    "hostPath": "/dev/neuron1",
                    "containerPath": "/dev/neuron1",
                    "permissions": ["READ", "WRITE"],
                },
            ]
        },
    ),
    (
        {"trainium": 1},
        "linuxParameters",
        {
            "devices": [
                {
                    "hostPath": "/dev/neuron0",
                    "containerPath": "/dev/neuron0",
                    "permissions": ["READ", "WRITE"],
                }
            ]
        },
    ),
    (
        {"efa": 2},
        "linuxParameters",
        {
            "devices": [
                {
                    "hostPath": "/dev/infiniband/uverbs0",
                    "containerPath": "/dev/infiniband/uverbs0",
                    "permissions": ["READ", "WRITE", "MKNOD"],
                },
                {
                    "hostPath": "/dev/infiniband/uverbs1",
                    "containerPath": "/dev/infiniband/uverbs1",
                    "permissions": ["READ", "WRITE", "MKNOD"],
                },
            ]
        },
    ),
    (
        {"use_tmpfs": True},
        "linuxParameters",
        {"tmpfs": [{"containerPath": "/batchwright_temp", "size": 2048}]},
    ),
    (
        {"tmpfs_size": 100, "tmpfs_path": "/scratch"},
        "linuxParameters",
        {"tmpfs": [{"containerPath": "/scratch", "size": 100}]},
    ),
    ({"privileged": True}, "privileged", True),
    ({"image": "my/image:7"}, "image", "my/image:7"),
    ({"iam_role": STEP_ROLE}, "jobRoleArn", STEP_ROLE),
    ({"execution_role": STEP_ROLE}, "executionRoleArn", STEP_ROLE),
    (
        {"log_driver": "fluentd", "log_options": {"fluentd-address": "x:24224"}},
        "logConfiguration",
        {"logDriver": "fluentd", "options": {"fluentd-address": "x:24224"}},
    ),
    ({"log_driver": "syslog"}, "logConfiguration", {"logDriver": "syslog"}),
]


@pytest.mark.parametrize(("attributes", "key", "expected"), EC2_FRAGMENTS)
def test_each_ec2_option_lands_where_stated(
    attributes: dict[str, Any], key: str, expected: Any
) -> None:
    body = build_job_definition(
        BatchOptions.from_attributes("s", attributes), bare_target("EC2")
    ).body
    assert body["containerProperties"][key] == expected


def test_options_without_a_request_field_leave_the_definition_alone() -> None:
    target = bare_target("EC2")
    plain = build_job_definition(BatchOptions.from_attributes("s", {"use_tmpfs": True}), target)
    no_tempdir = build_job_definition(
        BatchOptions.from_attributes("s", {"use_tmpfs": True, "tmpfs_tempdir": False}), target
    )
    routed = build_job_definition(
        BatchOptions.from_attributes("s", {"use_tmpfs": True, "queue": "x"}), target
    )
    assert plain == no_tempdir == routed


def test_defaults_from_the_environment_fill_the_definition() -> None:
    container = build_job_definition(
        BatchOptions.from_attributes("s", {}), full_target("SPOT")
    ).body["containerProperties"]
    assert container["image"] == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1"
    assert container["jobRoleArn"] == JOB_ROLE
    assert "executionRoleArn" not in container  # EC2 does not need one
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/batchwright/env",
            "awslogs-stream-prefix": "batchwright",
            "awslogs-region": "us-east-1",
        },
    }


def test_step_values_win_over_the_environment() -> None:
    options = BatchOptions.from_attributes(
        "s", {"image": "mine:1", "iam_role": STEP_ROLE, "execution_role": STEP_ROLE}
    )
    container = build_job_definition(options, full_target("FARGATE")).body["containerProperties"]
    assert (container["image"], container["jobRoleArn"], container["executionRoleArn"]) == (
        "mine:1",
        STEP_ROLE,
        STEP_ROLE,
    )


# --- explicit bodies ------------------------------------------------------------------

RETRY_STRATEGY = {
    "attempts": 3,
    "evaluateOnExit": [
        {"action": "RETRY", "onStatusReason": "Host EC2*"},
        {"action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"},
        {"action": "RETRY", "onReason": "CannotPullContainerError:*"},
        {"action": "RETRY", "onReason": "ResourceInitializationError:*"},
        {"action": "EXIT", "onReason": "*"},
    ],
}


def expected_definition(
    name_hash: str, container: dict[str, Any], platform: str, **extra: Any
) -> dict[str, Any]:
    return {
        "jobDefinitionName": f"batchwright-{name_hash}",
        "type": "container",
        "platformCapabilities": [platform],
        "containerProperties": container,
        "retryStrategy": RETRY_STRATEGY,
        "propagateTags": True,
        **extra,
        "tags": {"batchwright:content-hash": name_hash, "batchwright:job-spec-version": "2"},
    }


OUR_TAGS = {
    "batchwright:flow": "TrainFlow",
    "batchwright:run": "1732540000",
    "batchwright:step": "train",
    "batchwright:task": "3",
    "batchwright:attempt": "0",
}


def test_bare_target_uses_the_launching_python_image() -> None:
    body = build_job_definition(BatchOptions.from_attributes("s", {}), bare_target("EC2")).body
    major, minor = sys.version_info[:2]
    assert body["containerProperties"]["image"] == f"python:{major}.{minor}"


def test_default_step_on_a_minimal_ec2_queue(batch_model: Any) -> None:
    target = QueueTarget(queue="ec2", platform="EC2", default_image="python:3.11")
    spec = build_job_spec(BatchOptions.from_attributes("train", {}), target, invocation())
    assert spec.definition.body == expected_definition(
        # Pinned: a change here changes every user's definitions; bump JOB_SPEC_VERSION.
        "a8b19a8c1da2310cd19afcb6a49e080e",
        {
            "image": "python:3.11",
            "command": list(PLACEHOLDER_COMMAND),
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "4096"},
            ],
        },
        "EC2",
    )
    assert spec.submit.body == {
        "jobName": "TrainFlow-train-3-1732540000-a0",
        "jobQueue": "ec2",
        "jobDefinition": spec.definition.name,
        "containerOverrides": {
            "command": ["python3", "-m", "batchwright.task", "--step", "train"],
            "environment": [{"name": "BATCHWRIGHT_DATASTORE", "value": "s3://bucket/prefix"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "4096"},
            ],
        },
        "tags": OUR_TAGS,
        "propagateTags": True,
    }
    assert spec.notices == () and spec.submit.offload is None
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())


def test_gpu_training_step_on_a_spot_queue(batch_model: Any) -> None:
    options = BatchOptions.from_attributes(
        "train",
        {"cpu": 8, "memory": 61000, "gpu": 4, "shared_memory": 8192, "use_tmpfs": True},
        resources={"memory": 60000},
        overrides={"gpu": 2},
    )
    task = invocation(retry_count=1, timeout_seconds=7200, environment={"A": "1", "B": "2"})
    spec = build_job_spec(options, full_target("SPOT"), task)
    assert spec.definition.body == expected_definition(
        "dfabffb05783def9d70c749a3929fe12",
        {
            "image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1",
            "command": list(PLACEHOLDER_COMMAND),
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "4096"},
            ],
            "jobRoleArn": JOB_ROLE,
            "linuxParameters": {
                "sharedMemorySize": 8192,
                "tmpfs": [{"containerPath": "/batchwright_temp", "size": 30500}],
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/batchwright/env",
                    "awslogs-stream-prefix": "batchwright",
                    "awslogs-region": "us-east-1",
                },
            },
        },
        "EC2",
        timeout={"attemptDurationSeconds": 7200 + 30},
    )
    assert spec.submit.body == {
        "jobName": "TrainFlow-train-3-1732540000-a1",
        "jobQueue": queue_arn("spot"),
        "jobDefinition": spec.definition.name,
        "containerOverrides": {
            "command": ["python3", "-m", "batchwright.task", "--step", "train"],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "8"},
                {"type": "MEMORY", "value": "61000"},
                {"type": "GPU", "value": "2"},
            ],
        },
        "tags": {**OUR_TAGS, "batchwright:attempt": "1"},
        "propagateTags": True,
    }
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())


def test_fargate_step_with_storage_and_rounding(batch_model: Any) -> None:
    options = BatchOptions.from_attributes(
        "train",
        {"cpu": 1, "memory": 3000, "ephemeral_storage": 50, "aws_batch_tags": {"team": "ml"}},
    )
    spec = build_job_spec(options, full_target("FARGATE_SPOT"), invocation(array_size=10000))
    assert spec.definition.body == expected_definition(
        "292136cf1dfaea72088e20627d42c05f",
        {
            "image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1",
            "command": list(PLACEHOLDER_COMMAND),
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "4096"},
            ],
            "jobRoleArn": JOB_ROLE,
            "executionRoleArn": EXECUTION_ROLE,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/batchwright/env",
                    "awslogs-stream-prefix": "batchwright",
                    "awslogs-region": "us-east-1",
                },
            },
            "ephemeralStorage": {"sizeInGiB": 50},
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
        },
        "FARGATE",
    )
    assert spec.submit.body["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "3072"},
    ]
    assert spec.submit.body["arrayProperties"] == {"size": 10000}
    assert spec.submit.body["tags"] == {"team": "ml", **OUR_TAGS}
    assert [(n.step, n.key, n.message) for n in spec.notices] == [
        (
            "train",
            "memory",
            "Fargate has no 1 vCPU / 3000 MiB size; rounded up to 1 vCPU / 3072 MiB.",
        )
    ]
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())


def test_the_model_check_is_not_vacuous(batch_model: Any) -> None:
    """The Stubber really validates: bodies the model forbids raise."""
    spec = build_job_spec(BatchOptions.from_attributes("s", {}), bare_target("EC2"), invocation())
    broken_definition = spec.definition.kwargs()
    broken_definition["containerProperties"]["linuxParameters"] = {"swappiness": "high"}
    with pytest.raises(ParamValidationError):
        batch_model.register_job_definition(broken_definition)
    broken_submit = copy.deepcopy(spec.submit.kwargs())
    broken_submit["containerOverrides"]["resourceRequirements"] = [{"type": "CPU", "value": "1"}]
    with pytest.raises(ModelViolation, match="not one of"):
        batch_model.submit_job(broken_submit)
    unknown = spec.submit.kwargs()
    unknown["containerOverrides"]["gpus"] = 1
    with pytest.raises(ParamValidationError, match="Unknown parameter"):
        batch_model.submit_job(unknown)
    for tags in ({}, {f"k{i}": "v" for i in range(51)}):
        with pytest.raises(ModelViolation, match="entries"):
            batch_model.submit_job({**spec.submit.kwargs(), "tags": tags})
