"""A property over random ``@batch`` option combinations and queue platforms.

Every combination, routed on an environment with EC2, Spot, Fargate, Fargate Spot, GPU
and Neuron queues (or sent to a queue outside it, of any platform), either yields
RegisterJobDefinition and SubmitJob bodies that botocore's Batch model accepts and that
carry every option asked for, or is refused by a UserInputError whose message names an
option key. Nothing else: no other exception, no option dropped in silence.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchwright.batch.jobspec import JobSpec, build_job_spec
from batchwright.batch.options import OPTION_KEYS, BatchOptions
from batchwright.batch.platforms import PLATFORMS, QueueTarget
from batchwright.batch.submission import TaskInvocation
from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.environment.routing import route
from batchwright.errors import BatchwrightError, InvalidValue, UserInputError
from batchwright.plan import environment_target, queue_target

from .conftest import check_model_rules

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/job"
OUTSIDE = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/team-queue"


def _queue(
    key: str,
    platform: str,
    types: tuple[str, ...] = (),
    accelerator: str = "none",
    public: bool = True,
) -> QueueDescription:
    return QueueDescription(
        key=key,
        name=f"sample-{key}",
        arn=f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/sample-{key}",
        platform=platform,  # type: ignore[arg-type]
        accelerator=accelerator,  # type: ignore[arg-type]
        compute_environments=(
            ComputeEnvironmentDescription(
                arn=f"arn:aws:batch:us-east-1:{ACCOUNT}:compute-environment/{key}",
                platform=platform,  # type: ignore[arg-type]
                order=1,
                max_vcpus=512,
                instance_types=types,
                accelerator=accelerator,  # type: ignore[arg-type]
                assign_public_ip=public,
            ),
        ),
    )


ENV = EnvironmentDescriptor(
    name="Sample",
    region="us-east-1",
    bucket="bucket",
    prefix="batchwright",
    job_role_arn=ROLE,
    execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/execution",
    log_group="/batchwright/sample",
    default_image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright:1",
    queues=(
        _queue("cpu", "EC2", ("c5.large", "c5.2xlarge", "m5.4xlarge", "r6i.8xlarge")),
        _queue("spot", "SPOT", ("c5.large", "m5.4xlarge")),
        _queue("fargate", "FARGATE"),
        # In private subnets: its jobs get no public IP.
        _queue("fargate-spot", "FARGATE_SPOT", public=False),
        _queue("gpu", "EC2", ("g5.xlarge", "g5.12xlarge", "p4d.24xlarge"), "gpu"),
        _queue("neuron", "EC2", ("inf2.xlarge", "trn1.32xlarge"), "neuron"),
        _queue("efa", "EC2", ("c6in.32xlarge",), "efa"),
    ),
)

#: Per key, values a user might write: mostly valid, some wrong on purpose.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "cpu": st.sampled_from([0.25, 0.5, 1, 1.5, 2, 4, 16, 96, 300, 0, -1, "2"]),
    "memory": st.sampled_from([512, 1024, 2048, 4096, 8000, 30000, 200_000, 10**7, 3, 2.5]),
    "gpu": st.sampled_from([0, 1, 4, 8, 16, -1]),
    "image": st.sampled_from(
        ["python:3.12", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/train:1.4", "x!!", "A/B"]
    ),
    "queue": st.sampled_from([*(q.key for q in ENV.queues), "cpus", "gpu-large", OUTSIDE]),
    "iam_role": st.sampled_from([ROLE, "my-role"]),
    "execution_role": st.sampled_from([ROLE, "arn:aws:s3:::b"]),
    "shared_memory": st.sampled_from([64, 8192, 0]),
    "max_swap": st.sampled_from([0, 2048, -1]),
    "swappiness": st.sampled_from([0, 60, 101]),
    "inferentia": st.sampled_from([0, 1, 2, 16]),
    "trainium": st.sampled_from([1, 16]),
    "efa": st.sampled_from([0, 1, 4]),
    "use_tmpfs": st.sampled_from([True, False, "yes"]),
    "tmpfs_size": st.sampled_from([256, 100_000, 0]),
    "tmpfs_path": st.sampled_from(["/scratch", "scratch"]),
    "tmpfs_tempdir": st.booleans(),
    "ephemeral_storage": st.sampled_from([21, 100, 200, 20, 201]),
    "aws_batch_tags": st.sampled_from([{"team": "ml"}, {"aws:x": "y"}, {"n": 1}]),
    "log_driver": st.sampled_from(["awslogs", "splunk", "syslog", "json-file", "stdout"]),
    "log_options": st.sampled_from([{"max-size": "10m"}, {"a": 1}]),
    "privileged": st.sampled_from([True, False, 1]),
    "secrets": st.sampled_from(
        [
            {"DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf"},
            {"API_TOKEN": "/team/token", "KEY": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/k"},
            {"AWS_REGION": "/team/region"},
            {"TOKEN": "plain-text-secret"},
            ["DB_PASSWORD"],
        ]
    ),
}
assert set(VALUES) == set(OPTION_KEYS)

MODEL = botocore.session.get_session().get_service_model("batch")
VALIDATOR = ParamValidator()
INVOCATION = TaskInvocation(
    flow="TrainFlow",
    run_id="1700000000",
    step="train",
    task_id="1",
    command=("python", "-m", "batchwright.entrypoint", "step", "train"),
    environment={"BATCHWRIGHT_DATASTORE_ROOT": "s3://bucket/batchwright"},
)
_KEY_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, OPTION_KEYS)) + r")\b")


@st.composite
def option_sets(draw: st.DrawFn) -> dict[str, Any]:
    """A few options at a time (up to six), so that most combinations get past the value
    checks and reach routing and the job spec."""
    keys = draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, max_size=6))
    return {key: draw(VALUES[key]) for key in keys}


def _assert_names_a_key(error: BaseException | str) -> None:
    message = str(error)
    if isinstance(error, InvalidValue):
        assert error.key in OPTION_KEYS, message
        assert f"{error.key}={error.value!r}" in message, message
    assert message.startswith("step 'train', "), message
    assert _KEY_WORDS.search(message), message


def _assert_valid(operation: str, body: dict[str, Any]) -> None:
    shape = MODEL.operation_model(operation).input_shape
    assert shape is not None
    report = VALIDATOR.validate(body, shape)
    assert not report.has_errors(), report.generate_report()
    check_model_rules(shape, body, operation)


def _requirements(body: dict[str, Any]) -> dict[str, str]:
    return {r["type"]: r["value"] for r in body["containerOverrides"]["resourceRequirements"]}


def _assert_nothing_dropped(options: BatchOptions, target: QueueTarget, spec: JobSpec) -> None:
    container = spec.definition.body["containerProperties"]
    linux = container.get("linuxParameters", {})
    submit = spec.submit.body
    asked = _requirements(dict(submit))
    assert float(asked["VCPU"]) >= options.cpu
    assert int(asked["MEMORY"]) >= options.memory
    assert int(asked.get("GPU", 0)) == options.gpu
    if not target.is_fargate:
        assert float(asked["VCPU"]) == options.cpu and int(asked["MEMORY"]) == options.memory
    assert submit["jobQueue"] == target.queue
    assert container["image"] == (options.image or ENV.default_image)
    assert container.get("jobRoleArn") == (options.iam_role or ENV.job_role_arn)
    if options.execution_role:
        assert container["executionRoleArn"] == options.execution_role
    assert linux.get("sharedMemorySize") == options.shared_memory
    assert linux.get("maxSwap") == options.max_swap
    assert linux.get("swappiness") == options.swappiness
    devices = [d["containerPath"] for d in linux.get("devices", [])]
    assert sum(p.startswith("/dev/neuron") for p in devices) == options.inferentia
    assert sum(p.startswith("/dev/infiniband/") for p in devices) == options.efa
    tmpfs = linux.get("tmpfs", [])
    assert bool(tmpfs) == options.use_tmpfs
    if tmpfs:
        assert tmpfs == [{"containerPath": options.tmpfs_path, "size": options.tmpfs_size}]
    storage = container.get("ephemeralStorage", {}).get("sizeInGiB")
    assert storage == options.ephemeral_storage
    assert container.get("privileged", False) == options.privileged
    assert options.tags.items() <= submit["tags"].items()
    logs = container.get("logConfiguration", {})
    if options.log_driver:
        assert logs["logDriver"] == options.log_driver
        assert logs.get("options", {}).items() >= options.log_options_dict.items()
    assert spec.definition.body["platformCapabilities"] == [
        "FARGATE" if target.is_fargate else "EC2"
    ]
    secrets = container.get("secrets", [])
    assert [(s["name"], s["valueFrom"]) for s in secrets] == list(options.secrets)
    if options.secrets or target.is_fargate:
        assert container["executionRoleArn"] == (options.execution_role or ENV.execution_role_arn)
    if target.is_fargate:
        public = "ENABLED" if target.assign_public_ip else "DISABLED"
        assert container["networkConfiguration"] == {"assignPublicIp": public}
    else:
        assert "networkConfiguration" not in container


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    attributes=option_sets(),
    has_retry=st.booleans(),
    outside_platform=st.sampled_from(PLATFORMS),
)
def test_every_combination_is_valid_requests_or_a_refusal_naming_a_key(
    attributes: dict[str, Any], has_retry: bool, outside_platform: str
) -> None:
    try:
        options = BatchOptions.from_attributes("train", attributes)
    except BatchwrightError as error:
        assert isinstance(error, UserInputError) and error.exit_code == 2
        _assert_names_a_key(error)
        event("refused by the option checks")
        return
    routed = route(options, ENV, has_retry=has_retry)
    if not routed.ok:
        _assert_names_a_key(routed.verdict)
        event("refused by routing")
        return
    if routed.queue is None:
        # A queue outside the environment: its platform is whatever AWS says.
        assert routed.queue_id == OUTSIDE
        target = queue_target(ENV, OUTSIDE, outside_platform)  # type: ignore[arg-type]
    else:
        queue = routed.queue
        target = environment_target(ENV, queue)
    try:
        spec = build_job_spec(options, target, INVOCATION)
    except BatchwrightError as error:
        assert isinstance(error, UserInputError) and error.exit_code == 2
        _assert_names_a_key(error)
        assert "<" not in str(error)
        event("refused by the job spec")
        return
    _assert_valid("RegisterJobDefinition", dict(spec.definition.body))
    _assert_valid("SubmitJob", dict(spec.submit.body))
    _assert_nothing_dropped(options, target, spec)
    event(f"requests for {target.platform}")
