"""Contract 2 for multi-node parallel jobs: the ``multinode`` RegisterJobDefinition body
and the SubmitJob body with node overrides are valid against botocore's Batch model, carry
exactly the container and overrides a single-node job of the step would, are named by
their own stable content hash, and are refused where Batch cannot run them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from batchwright.batch.definition import (
    ALL_NODES,
    MAIN_NODE_INDEX,
    PLACEHOLDER_COMMAND,
    PLACEHOLDER_NUM_NODES,
    build_job_definition,
    container_properties,
    content_hash,
)
from batchwright.batch.jobenv import job_environment
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.batch.submission import (
    MAX_NODES,
    MAX_OVERRIDES_BYTES,
    MAX_SUBMIT_BYTES,
    TaskInvocation,
    build_submit_job,
)
from batchwright.entrypoint.bootstrap import OFFLOAD_BOOTSTRAP
from batchwright.errors import InvalidValue, PlanError

ACCOUNT = "123456789012"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-job"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-execution"
STEP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/step-job"
SECRETS = {
    "DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf",
    "API_TOKEN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team/token",
}


def full_target(platform: Any = "EC2") -> QueueTarget:
    """A target with every default an environment descriptor provides."""
    return QueueTarget(
        queue=f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/{platform.lower()}",
        platform=platform,
        job_role_arn=JOB_ROLE,
        execution_role_arn=EXECUTION_ROLE,
        default_image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1",
        log_group="/batchwright/env",
        region="us-east-1",
        key=platform.lower(),
    )


def bare_target(platform: Any = "EC2") -> QueueTarget:
    """A target without a descriptor."""
    return QueueTarget(queue=platform.lower(), platform=platform)


def options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


def invocation(**changes: Any) -> TaskInvocation:
    values: dict[str, Any] = {
        "flow": "TrainFlow",
        "run_id": "1732540000",
        "step": "train",
        "task_id": "3",
        "command": ("python3", "-m", "batchwright.task", "--step", "train"),
        "environment": {"BATCHWRIGHT_DATASTORE": "s3://bucket/prefix"},
        "num_nodes": 4,
    }
    values.update(changes)
    return TaskInvocation(**values)


def node_overrides(body: Any) -> dict[str, Any]:
    """The container overrides of a multi-node SubmitJob body's one node range."""
    ranges = body["nodeOverrides"]["nodePropertyOverrides"]
    assert len(ranges) == 1
    overrides: dict[str, Any] = ranges[0]["containerOverrides"]
    return overrides


def with_value(n: int, **changes: Any) -> TaskInvocation:
    """An invocation whose environment holds one variable of ``n`` bytes."""
    return invocation(environment={"BIG": "x" * n}, **changes)


def overrides_size(overrides: dict[str, Any]) -> int:
    data = {"command": overrides["command"], "environment": overrides["environment"]}
    return len(json.dumps(data, separators=(",", ":")).encode())


# (id, @batch attributes): what distributed training steps ask for.
TABLE: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("gpus", {"cpu": 8, "memory": 60000, "gpu": 4, "shared_memory": 8192}),
    ("efa and gpus", {"cpu": 96, "memory": 700000, "gpu": 8, "efa": 4, "shared_memory": 16384}),
    ("neuron with efa", {"trainium": 16, "efa": 8, "privileged": True, "memory": 500000}),
    ("secrets", {"secrets": SECRETS, "execution_role": STEP_ROLE}),
    ("tmpfs and swap", {"use_tmpfs": True, "max_swap": 1024, "swappiness": 10}),
    (
        "every EC2 option",
        {
            "cpu": 16,
            "memory": 64000,
            "gpu": 2,
            "image": "img:2",
            "iam_role": STEP_ROLE,
            "execution_role": STEP_ROLE,
            "secrets": SECRETS,
            "shared_memory": 4096,
            "max_swap": 2048,
            "swappiness": 60,
            "efa": 1,
            "tmpfs_size": 4096,
            "tmpfs_path": "/tmpfs",
            "aws_batch_tags": {"team": "ml"},
            "log_driver": "gelf",
            "log_options": {"gelf-address": "udp://1.2.3.4:12201"},
            "privileged": True,
        },
    ),
]

CASES = [
    pytest.param(attributes, make, id=f"{name}-{make.__name__}")
    for name, attributes in TABLE
    for make in (full_target, bare_target)
]


@pytest.mark.parametrize(("attributes", "make_target"), CASES)
def test_multinode_bodies_are_valid_for_botocore(
    batch_model: Any, attributes: dict[str, Any], make_target: Any
) -> None:
    step = options(**attributes)
    target = make_target("EC2")
    spec = build_job_spec(step, target, invocation(num_nodes=8, timeout_seconds=7200))
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())

    definition = spec.definition.body
    assert spec.definition.multi_node
    assert definition["type"] == "multinode"
    assert definition["platformCapabilities"] == ["EC2"]
    assert "containerProperties" not in definition
    assert definition["jobDefinitionName"] == f"batchwright-{content_hash(definition)}"
    assert definition["timeout"] == {"attemptDurationSeconds": 7200 + 30}
    nodes = definition["nodeProperties"]
    assert (nodes["numNodes"], nodes["mainNode"]) == (PLACEHOLDER_NUM_NODES, MAIN_NODE_INDEX)
    assert [r["targetNodes"] for r in nodes["nodeRangeProperties"]] == [ALL_NODES]

    submit = spec.submit.body
    assert "containerOverrides" not in submit and "arrayProperties" not in submit
    assert submit["jobDefinition"] == definition["jobDefinitionName"]
    assert submit["nodeOverrides"]["numNodes"] == 8
    # Batch requires the overridden ranges to be the definition's ranges.
    assert [r["targetNodes"] for r in submit["nodeOverrides"]["nodePropertyOverrides"]] == [
        r["targetNodes"] for r in nodes["nodeRangeProperties"]
    ]


@pytest.mark.parametrize(("attributes", "make_target"), CASES)
def test_the_node_container_is_the_single_node_container(
    attributes: dict[str, Any], make_target: Any
) -> None:
    step = options(**attributes)
    target = make_target("EC2")
    single = build_job_definition(step, target, timeout_seconds=600).body
    multi = build_job_definition(step, target, timeout_seconds=600, multi_node=True).body
    container = multi["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert container == single["containerProperties"] == container_properties(step, target)
    # Everything around the container is shared too.
    for key in ("retryStrategy", "propagateTags", "timeout"):
        assert multi[key] == single[key]


@pytest.mark.parametrize(("attributes", "make_target"), CASES)
def test_the_node_overrides_are_the_single_job_overrides(
    attributes: dict[str, Any], make_target: Any
) -> None:
    step = options(**attributes)
    target = make_target("EC2")
    multi = build_job_spec(step, target, invocation(num_nodes=2)).submit.body
    single = build_job_spec(step, target, invocation(num_nodes=None)).submit.body
    assert node_overrides(multi) == single["containerOverrides"]
    assert set(node_overrides(multi)) == {"command", "environment", "resourceRequirements"}
    for key in ("jobName", "jobQueue", "tags", "propagateTags"):
        assert multi[key] == single[key]


def test_a_minimal_multinode_spec_explicitly(batch_model: Any) -> None:
    target = QueueTarget(queue="ec2", platform="EC2", default_image="python:3.11")
    spec = build_job_spec(options(), target, invocation(num_nodes=3))
    # Pinned: a change here changes every user's multi-node definitions.
    digest = "d8168953c6f46bc402ce682c350c17af"
    container = {
        "image": "python:3.11",
        "command": list(PLACEHOLDER_COMMAND),
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "4096"},
        ],
    }
    assert spec.definition.body == {
        "jobDefinitionName": f"batchwright-{digest}",
        "type": "multinode",
        "platformCapabilities": ["EC2"],
        "nodeProperties": {
            "numNodes": 1,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
        "retryStrategy": build_job_definition(options(), target).body["retryStrategy"],
        "propagateTags": True,
        "tags": {"batchwright:content-hash": digest, "batchwright:job-spec-version": "2"},
    }
    assert spec.submit.body == {
        "jobName": "TrainFlow-train-3-1732540000-a0",
        "jobQueue": "ec2",
        "jobDefinition": f"batchwright-{digest}",
        "nodeOverrides": {
            "numNodes": 3,
            "nodePropertyOverrides": [
                {
                    "targetNodes": "0:",
                    "containerOverrides": {
                        "command": ["python3", "-m", "batchwright.task", "--step", "train"],
                        "environment": [
                            {"name": "BATCHWRIGHT_DATASTORE", "value": "s3://bucket/prefix"}
                        ],
                        "resourceRequirements": [
                            {"type": "VCPU", "value": "1"},
                            {"type": "MEMORY", "value": "4096"},
                        ],
                    },
                }
            ],
        },
        "tags": {
            "batchwright:flow": "TrainFlow",
            "batchwright:run": "1732540000",
            "batchwright:step": "train",
            "batchwright:task": "3",
            "batchwright:attempt": "0",
        },
        "propagateTags": True,
    }
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())


# --- the content hash -------------------------------------------------------------------


def test_the_nodes_are_pinned_to_the_planned_instance_type(batch_model: Any) -> None:
    # Batch could otherwise place the job on another type of the compute environment,
    # one without the EFA interfaces or the node count the plan checked.
    spec = build_job_spec(
        options(trainium=16, efa=16, memory=400000),
        full_target(),
        invocation(node_instance_type="trn1n.32xlarge"),
    )
    assert node_overrides(spec.submit.body)["instanceType"] == "trn1n.32xlarge"
    batch_model.submit_job(spec.submit.kwargs())
    unpinned = build_job_spec(options(), full_target(), invocation())
    assert "instanceType" not in node_overrides(unpinned.submit.body)


def test_the_hash_differs_from_the_single_node_one_and_is_stable() -> None:
    step = options(gpu=4, efa=2, secrets=SECRETS, execution_role=STEP_ROLE)
    target = full_target()
    single = build_job_definition(step, target)
    first = build_job_definition(step, target, multi_node=True)
    again = build_job_definition(step, target, multi_node=True)
    reordered = build_job_definition(
        options(secrets=dict(reversed(SECRETS.items())), execution_role=STEP_ROLE, efa=2, gpu=4),
        target,
        multi_node=True,
    )
    assert first.name != single.name and first.content_hash != single.content_hash
    assert first == again == reordered
    assert first.body == again.body
    assert first.name == f"batchwright-{first.content_hash}"
    assert first.body["tags"]["batchwright:content-hash"] == first.content_hash


def test_per_task_values_do_not_change_the_multinode_definition() -> None:
    target = full_target()
    specs = [
        build_job_spec(options(), target, invocation(num_nodes=n, task_id=str(n)))
        for n in (1, 2, 64, MAX_NODES)
    ]
    assert len({spec.definition.name for spec in specs}) == 1
    assert [spec.submit.body["nodeOverrides"]["numNodes"] for spec in specs] == [1, 2, 64, 1000]


def test_step_values_and_timeout_change_the_multinode_definition() -> None:
    target = full_target()
    base = build_job_definition(options(), target, multi_node=True)
    assert build_job_definition(options(efa=1), target, multi_node=True).name != base.name
    assert (
        build_job_definition(options(), target, multi_node=True, timeout_seconds=600).name
        != base.name
    )
    # Spot and on-demand share a single-node definition; multi-node is on-demand only.
    assert build_job_definition(options(), bare_target("SPOT")) == build_job_definition(
        options(), bare_target("EC2")
    )


# --- size limits and offloading ---------------------------------------------------------


def test_node_overrides_at_the_limit_stay_and_one_byte_more_moves(batch_model: Any) -> None:
    target = bare_target()
    definition = build_job_definition(options(), target, multi_node=True)
    probe = build_submit_job(options(), target, with_value(0), definition)[0]
    room = MAX_OVERRIDES_BYTES - overrides_size(node_overrides(probe.body))
    at_limit = build_submit_job(
        options(), target, with_value(room), definition, offload_root="s3://b"
    )[0]
    assert at_limit.offload is None
    assert overrides_size(node_overrides(at_limit.body)) == MAX_OVERRIDES_BYTES
    batch_model.submit_job(at_limit.kwargs())
    over = build_submit_job(
        options(), target, with_value(room + 1), definition, offload_root="s3://b"
    )[0]
    assert over.offload is not None
    batch_model.submit_job(over.kwargs())
    # The same threshold as a single-node job: one path decides both.
    single = build_job_definition(options(), target)
    single_probe = build_submit_job(options(), target, with_value(0, num_nodes=None), single)[0]
    single_room = MAX_OVERRIDES_BYTES - overrides_size(single_probe.body["containerOverrides"])
    assert single_room == room


def test_an_offloaded_multinode_request_fetches_its_command_and_environment(
    batch_model: Any,
) -> None:
    environment = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_DEFAULT_REGION": "us-east-1",
        **{f"PARAM_{i}": "v" * 50 for i in range(200)},
    }
    command = ("python3", "-c", "print('x')", *[f"--input=s3://b/{i}" for i in range(300)])
    step = options(cpu=8, gpu=4, efa=4, secrets=SECRETS, execution_role=STEP_ROLE)
    spec = build_job_spec(
        step,
        full_target(),
        invocation(environment=environment, command=command, num_nodes=16, timeout_seconds=3600),
        offload_root="s3://bucket/prefix/",
    )
    offload = spec.submit.offload
    assert offload is not None
    digest = hashlib.sha256(offload.payload).hexdigest()
    assert offload.key == f"code/payloads/{digest}.json"
    payload = json.loads(offload.payload)
    assert payload["command"] == list(command)
    assert payload["environment"] == job_environment(environment)
    overrides = node_overrides(spec.submit.body)
    assert overrides["command"] == ["python3", "-c", OFFLOAD_BOOTSTRAP, offload.url, digest]
    assert {e["name"] for e in overrides["environment"]} == {
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
    }
    assert {"type": "GPU", "value": "4"} in overrides["resourceRequirements"]
    assert overrides_size(overrides) <= MAX_OVERRIDES_BYTES
    assert len(json.dumps(spec.submit.body, separators=(",", ":")).encode()) <= MAX_SUBMIT_BYTES
    assert spec.submit.body["nodeOverrides"]["numNodes"] == 16
    assert "containerOverrides" not in spec.submit.body
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())


def test_a_too_big_multinode_request_without_an_offload_location_is_refused() -> None:
    big = invocation(environment={"BIG": "x" * 10_000})
    with pytest.raises(PlanError, match=r"step 'train', task '3'.*offload"):
        build_job_spec(options(), bare_target(), big)


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["FARGATE", "FARGATE_SPOT", "SPOT"])
def test_multinode_jobs_are_refused_off_ec2_on_demand(platform: str) -> None:
    step = BatchOptions.from_attributes("train", {}, flow="TrainFlow")
    target = full_target(platform)
    with pytest.raises(InvalidValue) as refused:
        build_job_definition(step, target, multi_node=True)
    message = str(refused.value)
    assert message.startswith(
        f"flow 'TrainFlow', step 'train', @batch: queue='{platform.lower()}' "
    ), message
    assert "multi-node jobs run on EC2 on-demand queues only" in message
    assert refused.value.key == "queue"
    with pytest.raises(InvalidValue, match="EC2 on-demand queues only"):
        build_job_spec(step, target, invocation())
    # The same step as a single-node job is fine there.
    build_job_spec(step, target, invocation(num_nodes=None))


def test_ec2_options_are_still_checked_on_a_multinode_definition() -> None:
    with pytest.raises(InvalidValue, match=r"ephemeral_storage"):
        build_job_definition(options(ephemeral_storage=50), bare_target(), multi_node=True)
    with pytest.raises(InvalidValue, match=r"@timeout"):
        build_job_definition(options(), bare_target(), multi_node=True, timeout_seconds=5)


@pytest.mark.parametrize(
    "changes",
    [
        {"num_nodes": 4, "array_size": 4},
        {"num_nodes": 0},
        {"num_nodes": -1},
        {"num_nodes": MAX_NODES + 1},
    ],
)
def test_invalid_node_counts_are_caller_bugs(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        invocation(**changes)


def test_node_counts_at_the_bounds(batch_model: Any) -> None:
    assert MAX_NODES == 1000
    for count in (1, MAX_NODES):
        spec = build_job_spec(options(), bare_target(), invocation(num_nodes=count))
        assert spec.submit.body["nodeOverrides"]["numNodes"] == count
        batch_model.submit_job(spec.submit.kwargs())


def test_a_definition_and_an_invocation_of_different_shapes_are_caller_bugs() -> None:
    target = bare_target()
    single = build_job_definition(options(), target)
    multi = build_job_definition(options(), target, multi_node=True)
    with pytest.raises(ValueError, match="single-node"):
        build_submit_job(options(), target, invocation(num_nodes=2), single)
    with pytest.raises(ValueError, match="multi-node"):
        build_submit_job(options(), target, invocation(num_nodes=None), multi)
