"""Contract 2, the rules: platform refusals, Fargate sizes, timeouts, content hashes, job
names, tags, credentials, offloading and the container commands."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import pytest

from batchwright.batch import definition
from batchwright.batch.definition import build_job_definition, check_timeout, retry_strategy
from batchwright.batch.jobenv import (
    JOB_ENDPOINT_VARIABLE,
    credentials_allowed,
    forwarded_aws_environment,
    is_loopback_endpoint,
    job_environment,
)
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import FARGATE_SIZES, QueueTarget, fargate_size, vcpu_text
from batchwright.batch.submission import (
    JOB_NAME_PATTERN,
    MAX_OVERRIDES_BYTES,
    TaskInvocation,
    build_submit_job,
    sanitize_job_name,
)
from batchwright.entrypoint.bootstrap import OFFLOAD_BOOTSTRAP, container_command
from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.errors import InvalidValue, PlanError
from batchwright.plan import queue_target

EXECUTION_ROLE = "arn:aws:iam::123456789012:role/execution"
EC2 = QueueTarget(queue="cpu", platform="EC2")
SPOT = QueueTarget(queue="spot", platform="SPOT")
FARGATE = QueueTarget(queue="serverless", platform="FARGATE", execution_role_arn=EXECUTION_ROLE)
FARGATE_SPOT = QueueTarget(
    queue="cheap", platform="FARGATE_SPOT", execution_role_arn=EXECUTION_ROLE
)


def options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


def task(**changes: Any) -> TaskInvocation:
    values: dict[str, Any] = {
        "flow": "F",
        "run_id": "r1",
        "step": "train",
        "task_id": "7",
        "command": ("python3", "-c", "pass"),
    }
    values.update(changes)
    return TaskInvocation(**values)


def assert_names(error: InvalidValue, key: str, value: Any, fix: str) -> None:
    message = str(error)
    assert message.startswith("step 'train', @"), message
    assert f"{key}={value!r}" in message, message
    assert fix in error.fix and error.fix in message, message


# --- platform refusals ------------------------------------------------------------------


@pytest.mark.parametrize("target", [FARGATE, FARGATE_SPOT], ids=lambda t: t.platform)
@pytest.mark.parametrize(
    ("attributes", "key", "value"),
    [
        ({"gpu": 1}, "gpu", 1),
        ({"inferentia": 1}, "inferentia", 1),
        ({"trainium": 2}, "inferentia", 2),
        ({"efa": 1}, "efa", 1),
        ({"shared_memory": 64}, "shared_memory", 64),
        ({"max_swap": 0}, "max_swap", 0),
        ({"use_tmpfs": True}, "use_tmpfs", True),
        ({"tmpfs_size": 10}, "use_tmpfs", True),
        ({"privileged": True}, "privileged", True),
    ],
)
def test_ec2_only_options_are_refused_on_fargate(
    target: QueueTarget, attributes: dict[str, Any], key: str, value: Any
) -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(**attributes), target)
    assert_names(caught.value, key, value, "EC2 or Spot queue")
    assert f"queue '{target.queue}'" in str(caught.value)


def test_swappiness_alone_on_fargate_is_refused_before_the_platform() -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(max_swap=10, swappiness=5), FARGATE)
    assert caught.value.key == "max_swap"


def test_zero_gpus_and_no_privilege_are_fine_on_fargate() -> None:
    body = build_job_definition(options(gpu=0, privileged=False, use_tmpfs=False), FARGATE).body
    assert body["platformCapabilities"] == ["FARGATE"]


@pytest.mark.parametrize(
    "driver", ["json-file", "syslog", "journald", "gelf", "fluentd", "awsfirelens"]
)
def test_fargate_takes_only_awslogs_and_splunk(driver: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(log_driver=driver), FARGATE)
    assert_names(caught.value, "log_driver", driver, "awslogs, splunk")


def test_fargate_needs_an_execution_role() -> None:
    bare = QueueTarget(queue="serverless", platform="FARGATE")
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(), bare)
    assert_names(caught.value, "execution_role", None, "@batch(execution_role=")
    step_role = build_job_definition(options(execution_role=EXECUTION_ROLE), bare).body
    assert step_role["containerProperties"]["executionRoleArn"] == EXECUTION_ROLE


@pytest.mark.parametrize("target", [EC2, SPOT], ids=lambda t: t.platform)
def test_ephemeral_storage_is_refused_on_ec2(target: QueueTarget) -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(ephemeral_storage=50), target)
    assert_names(caught.value, "ephemeral_storage", 50, "Fargate queue")


def test_fractional_cpu_is_refused_on_ec2_with_the_next_whole_number() -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(cpu=2.5), EC2)
    assert_names(caught.value, "cpu", 2.5, "cpu=3")


# --- Fargate sizes ----------------------------------------------------------------------


def test_the_fargate_table_matches_the_documented_pairs() -> None:
    by_cpu: dict[float, list[int]] = {}
    for vcpus, memory in FARGATE_SIZES:
        by_cpu.setdefault(vcpus, []).append(memory)
    assert by_cpu[0.25] == [512, 1024, 2048]
    assert by_cpu[0.5] == [1024, 2048, 3072, 4096]
    assert (by_cpu[1][0], by_cpu[1][-1], len(by_cpu[1])) == (2048, 8192, 7)
    assert (by_cpu[2][0], by_cpu[2][-1], len(by_cpu[2])) == (4096, 16384, 13)
    assert (by_cpu[4][0], by_cpu[4][-1], len(by_cpu[4])) == (8192, 30720, 23)
    assert by_cpu[8] == list(range(16384, 61441, 4096))
    assert by_cpu[16] == list(range(32768, 122881, 8192))


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (0.25, 512, (0.25, 512)),
        (0.25, 4096, (0.5, 4096)),
        (1, 1000, (1, 2048)),
        (1, 9000, (2, 9216)),
        (3, 5000, (4, 8192)),
        (8, 20000, (8, 20480)),
        (16, 122880, (16, 122880)),
        (4, 40000, (8, 40960)),
    ],
)
def test_fargate_requests_round_up_to_the_next_pair(
    cpu: float, memory: int, expected: tuple[float, int]
) -> None:
    assert fargate_size(cpu, memory) == expected
    built = build_submit_job(options(cpu=cpu, memory=memory), FARGATE, task(), _definition())
    request, notices = built
    requirements = request.body["containerOverrides"]["resourceRequirements"]
    assert requirements == [
        {"type": "VCPU", "value": vcpu_text(expected[0])},
        {"type": "MEMORY", "value": str(expected[1])},
    ]
    if (cpu, memory) == expected:
        assert notices == ()
    else:
        (notice,) = notices
        assert "rounded up" in notice.message and notice.step == "train"
        assert str(notice).startswith("step 'train', @batch: Fargate has no")


def test_fargate_rounding_is_minimal_over_random_requests() -> None:
    rng = random.Random(6)
    for _ in range(500):
        cpu = rng.choice([0.25, 0.5, 1, 2, 3, 4, 5, 8, 12, 16])
        memory = rng.randint(4, 122880)
        size = fargate_size(cpu, memory)
        assert size is not None and size in FARGATE_SIZES
        assert size[0] >= cpu and size[1] >= memory
        # No other valid size that fits the request is smaller in both dimensions.
        for other in FARGATE_SIZES:
            if other != size and other[0] >= cpu and other[1] >= memory:
                assert not (other[0] <= size[0] and other[1] <= size[1]), (cpu, memory, size, other)


@pytest.mark.parametrize(
    ("attributes", "key", "value", "nearest"),
    [
        ({"cpu": 32, "memory": 8192}, "cpu", 32, "cpu=16, memory=32768"),
        ({"cpu": 2, "memory": 200000}, "memory", 200000, "cpu=16, memory=122880"),
        ({"cpu": 16, "memory": 122881}, "memory", 122881, "cpu=16, memory=122880"),
    ],
)
def test_fargate_beyond_the_largest_pair_is_refused_with_the_nearest(
    attributes: dict[str, Any], key: str, value: Any, nearest: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_spec(options(**attributes), FARGATE, task())
    assert_names(caught.value, key, value, nearest)


# --- timeouts and retries ---------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 1, 59])
def test_timeouts_under_a_minute_are_refused(seconds: int) -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_spec(options(), EC2, task(timeout_seconds=seconds))
    message = str(caught.value)
    assert message.startswith("step 'train', @timeout:")
    assert f"seconds={seconds!r}" in message and "@timeout(seconds=60)" in message


def test_a_minute_is_the_shortest_timeout() -> None:
    assert check_timeout("s", 60) == 60
    body = build_job_spec(options(), EC2, task(timeout_seconds=60)).definition.body
    assert body["timeout"] == {"attemptDurationSeconds": 60 + 30}
    assert "timeout" not in build_job_spec(options(), EC2, task()).definition.body


def test_retry_strategy_obeys_batch_limits_and_ends_with_exit() -> None:
    strategy = retry_strategy()
    rules = strategy["evaluateOnExit"]
    assert 1 <= strategy["attempts"] <= 10
    assert len(rules) <= 5
    assert rules[-1] == {"action": "EXIT", "onReason": "*"}
    assert all(rule["action"] == "RETRY" for rule in rules[:-1])
    # Batch's pattern: letters, digits, periods, colons, white space, optional final '*'.
    pattern = re.compile(r"^[A-Za-z0-9.:\s]*\*?$")
    for rule in rules:
        for field in ("onStatusReason", "onReason", "onExitCode"):
            if field in rule:
                assert pattern.match(rule[field]) and len(rule[field]) <= 512, rule


# --- content hash -----------------------------------------------------------------------


def _definition(**attributes: Any) -> definition.JobDefinitionRequest:
    return build_job_definition(options(**attributes), EC2)


def test_the_hash_is_deterministic_and_order_independent() -> None:
    first = build_job_definition(
        options(
            log_driver="gelf", log_options={"a": "1", "b": "2"}, aws_batch_tags={"x": "1", "y": "2"}
        ),
        EC2,
    )
    second = build_job_definition(
        options(
            aws_batch_tags={"y": "2", "x": "1"}, log_options={"b": "2", "a": "1"}, log_driver="gelf"
        ),
        EC2,
    )
    assert first.name == second.name == f"batchwright-{first.content_hash}"
    assert re.fullmatch(r"batchwright-[0-9a-f]{32}", first.name)
    assert first.body["tags"]["batchwright:content-hash"] == first.content_hash
    assert first.kwargs() == second.kwargs()


def test_per_task_values_do_not_change_the_definition() -> None:
    base = build_job_spec(options(), EC2, task())
    variants = [
        build_job_spec(options(), EC2, task(task_id="8", run_id="r2", retry_count=3)),
        build_job_spec(options(), EC2, task(command=("echo", "x"), environment={"A": "B"})),
        build_job_spec(options(), EC2, task(array_size=100, flow="Other", step="other")),
        build_job_spec(options(cpu=16, memory=64000, gpu=4), EC2, task()),
        build_job_spec(options(aws_batch_tags={"team": "ml"}, queue="q2"), EC2, task()),
    ]
    for variant in variants:
        assert variant.definition == base.definition
    assert len({v.submit.body["containerOverrides"]["command"][0] for v in variants}) == 2


@pytest.mark.parametrize(
    "attributes",
    [
        {"image": "other:1"},
        {"shared_memory": 64},
        {"privileged": True},
        {"iam_role": "arn:aws:iam::1:role/x"},
        {"use_tmpfs": True},
        {"inferentia": 1},
    ],
)
def test_step_values_change_the_definition(attributes: dict[str, Any]) -> None:
    assert _definition(**attributes).name != _definition().name


def test_the_contract_version_is_part_of_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _definition().name
    monkeypatch.setattr(definition, "JOB_SPEC_VERSION", definition.JOB_SPEC_VERSION + 1)
    assert _definition().name != before


def test_platform_and_timeout_change_the_definition() -> None:
    ec2 = build_job_definition(options(), EC2)
    assert build_job_definition(options(), SPOT) == ec2  # same platform capabilities
    assert build_job_definition(options(), FARGATE).name != ec2.name
    assert build_job_definition(options(), EC2, timeout_seconds=600).name != ec2.name


def test_an_oversized_definition_is_refused() -> None:
    huge = {f"opt{i}": "x" * 250 for i in range(100)}
    with pytest.raises(PlanError, match=r"step 'train'.*24576"):
        build_job_definition(options(log_driver="gelf", log_options=huge), EC2)


# --- job names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("MyFlow", "start", "1"), "MyFlow-start-1"),
        (("my flow", "step.one", "a/b"), "my-flow-step-one-a-b"),
        (("", "", ""), "batchwright"),
        (("__private", "x"), "private-x"),
        (("ünïcödé",), "n-c-d"),
        (("-_-",), "batchwright"),
    ],
)
def test_job_name_examples(parts: tuple[str, ...], expected: str) -> None:
    assert sanitize_job_name(*parts) == expected


def test_job_names_are_valid_and_deterministic_over_odd_inputs() -> None:
    rng = random.Random(128)
    alphabet = "aZ09_-. /:\\\t\n\x00é中🙂*" + "x" * 10
    seen: dict[str, str] = {}
    for _ in range(2000):
        parts = tuple(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
            for _ in range(rng.randint(1, 4))
        )
        name = sanitize_job_name(*parts)
        assert JOB_NAME_PATTERN.match(name), (parts, name)
        assert sanitize_job_name(*parts) == name
        seen["-".join(parts)] = name
    assert len(seen) > 1000


def test_long_job_names_are_cut_to_128_and_stay_distinct() -> None:
    a = sanitize_job_name("f" * 200, "step", "1")
    b = sanitize_job_name("f" * 200, "step", "2")
    assert len(a) == len(b) == 128 and a != b
    assert a[:119] == "f" * 119 and JOB_NAME_PATTERN.match(a)


def test_submitted_job_name_is_sanitized() -> None:
    body = build_job_spec(options(), EC2, task(flow="My Flow!", task_id="run/1/t:2")).submit.body
    assert body["jobName"] == "My-Flow-train-run-1-t-2-r1-a0"


# --- tags -------------------------------------------------------------------------------


def test_job_tags_identify_the_task_and_keep_user_tags() -> None:
    body = build_job_spec(
        options(aws_batch_tags={"team": "ml"}), EC2, task(retry_count=2, run_id="r#1")
    ).submit.body
    assert body["tags"] == {
        "team": "ml",
        "batchwright:flow": "F",
        "batchwright:run": "r_1",
        "batchwright:step": "train",
        "batchwright:task": "7",
        "batchwright:attempt": "2",
    }
    assert body["propagateTags"] is True


def test_tags_total_at_most_fifty() -> None:
    full = options(aws_batch_tags={f"k{i}": "v" for i in range(45)})
    assert len(build_job_spec(full, EC2, task()).submit.body["tags"]) == 50


def test_long_identifiers_are_cut_to_the_tag_value_limit() -> None:
    body = build_job_spec(options(), EC2, task(task_id="t" * 300)).submit.body
    assert body["tags"]["batchwright:task"] == "t" * 256


# --- credentials ------------------------------------------------------------------------

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "token",
}


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.9.8.7", True),
        ("http://localhost:4566", True),
        ("http://[::1]:5000", True),
        ("127.0.0.1:5000", True),
        ("http://10.0.0.5:5000", False),
        ("https://batch.us-east-1.amazonaws.com", False),
        ("http://localhost.example.com", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://[::1", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_endpoints(url: str | None, loopback: bool) -> None:
    assert is_loopback_endpoint(url) is loopback


@pytest.mark.parametrize(
    ("endpoints", "allowed"),
    [
        ({}, False),
        ({"AWS_ENDPOINT_URL": "https://s3.amazonaws.com"}, False),
        ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000"}, False),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, True),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "AWS_ENDPOINT_URL_S3": "http://localhost:9000",
            },
            True,
        ),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "AWS_ENDPOINT_URL_S3": "https://s3.example.com",
            },
            False,
        ),
    ],
)
def test_credentials_reach_jobs_only_with_loopback_endpoints(
    endpoints: dict[str, str], allowed: bool
) -> None:
    environment = {**CREDENTIALS, **endpoints, "AWS_PROFILE": "dev", "KEEP": "1"}
    assert credentials_allowed(environment) is allowed
    filtered = job_environment(environment)
    assert all((k in filtered) is allowed for k in CREDENTIALS)
    assert "AWS_PROFILE" not in filtered and filtered["KEEP"] == "1"
    assert all(filtered[k] == v for k, v in endpoints.items())
    body = build_job_spec(options(), EC2, task(environment=environment)).submit.body
    sent = {e["name"] for e in body["containerOverrides"]["environment"]}
    assert sent == set(filtered)


def test_forwarded_aws_environment_takes_endpoints_and_region_only() -> None:
    environ = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": "https://vpce.example.com",
        "AWS_ENDPOINT_URL_S3": "https://s3.vpce.example.com",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "HOME": "/root",
        "AWS_PROFILE": "dev",
    }
    assert forwarded_aws_environment(environ) == {
        "AWS_ENDPOINT_URL": "https://vpce.example.com",
        "AWS_ENDPOINT_URL_S3": "https://s3.vpce.example.com",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    local = {
        **environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
    }
    assert set(forwarded_aws_environment(local)) == {
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_DEFAULT_REGION",
        *CREDENTIALS,
    }


def test_jobs_can_be_given_their_own_endpoint() -> None:
    through_a_proxy = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:7000",  # the orchestrator's route
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:7000",
        JOB_ENDPOINT_VARIABLE: "http://127.0.0.1:5000",  # the jobs' route
    }
    forwarded = forwarded_aws_environment(through_a_proxy)
    assert forwarded["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert "AWS_ENDPOINT_URL_S3" not in forwarded and set(CREDENTIALS) <= set(forwarded)
    # A job endpoint that is not loopback: no credentials travel.
    public = forwarded_aws_environment(
        {**through_a_proxy, JOB_ENDPOINT_VARIABLE: "https://vpce.example.com"}
    )
    assert public == {"AWS_ENDPOINT_URL": "https://vpce.example.com"}


def test_no_credentials_in_any_request_for_a_real_endpoint() -> None:
    environment = {**CREDENTIALS, "AWS_ENDPOINT_URL": "https://batch.amazonaws.com"}
    environment.update({f"V{i}": "x" * 100 for i in range(100)})  # forces an offload
    spec = build_job_spec(
        options(), EC2, task(environment=environment), offload_root="s3://b/prefix"
    )
    assert spec.submit.offload is not None
    for text in (
        json.dumps(spec.submit.body),
        spec.submit.offload.payload.decode(),
        json.dumps(spec.definition.body),
    ):
        assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text


# --- offloading -------------------------------------------------------------------------


def test_small_requests_are_not_offloaded() -> None:
    spec = build_job_spec(options(), EC2, task(environment={"A": "1"}), offload_root="s3://b")
    assert spec.submit.offload is None


def _overrides_size(body: dict[str, Any]) -> int:
    overrides = body["containerOverrides"]
    data = {"command": overrides["command"], "environment": overrides["environment"]}
    return len(json.dumps(data, separators=(",", ":")).encode())


def test_overrides_at_the_limit_stay_and_one_byte_more_moves(batch_model: Any) -> None:
    def with_value(n: int) -> TaskInvocation:
        return task(environment={"BIG": "x" * n})

    probe = build_submit_job(options(), EC2, with_value(0), _definition())[0]
    room = MAX_OVERRIDES_BYTES - _overrides_size(dict(probe.body))
    at_limit = build_submit_job(
        options(), EC2, with_value(room), _definition(), offload_root="s3://b"
    )[0]
    assert at_limit.offload is None and _overrides_size(dict(at_limit.body)) == MAX_OVERRIDES_BYTES
    over = build_submit_job(
        options(), EC2, with_value(room + 1), _definition(), offload_root="s3://b"
    )[0]
    assert over.offload is not None
    batch_model.submit_job(over.kwargs())


def test_offloaded_request_fetches_its_command_and_environment(batch_model: Any) -> None:
    environment = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PROFILE": "dev",
        **{f"PARAM_{i}": "v" * 50 for i in range(200)},
    }
    command = ("python3", "-c", "print('x')", *[f"--input=s3://b/{i}" for i in range(300)])
    spec = build_job_spec(
        options(cpu=2),
        EC2,
        task(environment=environment, command=command),
        offload_root="s3://bucket/prefix/",
    )
    offload = spec.submit.offload
    assert offload is not None
    # Content-addressed under code/ (jobs may read it, never write it).
    digest = hashlib.sha256(offload.payload).hexdigest()
    assert offload.key == f"code/payloads/{digest}.json"
    assert offload.url == f"s3://bucket/prefix/code/payloads/{digest}.json"
    payload = json.loads(offload.payload)
    assert payload["command"] == list(command)
    assert payload["environment"] == job_environment(environment)
    overrides = spec.submit.body["containerOverrides"]
    assert overrides["command"] == ["python3", "-c", OFFLOAD_BOOTSTRAP, offload.url, digest]
    assert {e["name"] for e in overrides["environment"]} == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    }
    assert overrides["resourceRequirements"][0] == {"type": "VCPU", "value": "2"}
    assert _overrides_size(dict(spec.submit.body)) <= MAX_OVERRIDES_BYTES
    batch_model.submit_job(spec.submit.kwargs())


def test_too_big_without_an_offload_location_is_refused() -> None:
    big = task(environment={"BIG": "x" * 10_000})
    with pytest.raises(PlanError, match=r"step 'train', task '7'.*offload"):
        build_job_spec(options(), EC2, big)
    with pytest.raises(PlanError):
        build_job_spec(options(), EC2, big, offload_root="/local/path")


# --- invocations and commands -----------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{"array_size": 1}, {"array_size": 10_001}, {"command": ()}, {"retry_count": -1}],
)
def test_invalid_invocations_are_caller_bugs(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        task(**changes)


def test_array_sizes_at_the_bounds() -> None:
    for size in (2, 10_000):
        body = build_job_spec(options(), EC2, task(array_size=size)).submit.body
        assert body["arrayProperties"] == {"size": size}


SHA = "ab" * 32


def test_command_for_task_is_a_python_bootstrap() -> None:
    url = f"s3://bucket/code/{SHA}.tar.gz"
    command = container_command(url, SHA, ["--flow", "F", "--step", "train"])
    assert command[:2] == ("python3", "-c")
    assert command[3:] == (url, SHA, "--flow", "F", "--step", "train")
    script = command[2]
    compile(script, "<bootstrap>", "exec")
    compile(OFFLOAD_BOOTSTRAP, "<offload>", "exec")
    assert "batchwright.task" in script and "pip" in script
    # The checks travel in the command: nothing is unpacked before them.
    assert script.index("check_digest(data") < script.index("safe_extract(archive")
    assert len(json.dumps(list(command))) < 4096  # leaves room in the 8 KiB overrides


@pytest.mark.parametrize(
    ("url", "sha256"),
    [
        ("bucket/key", SHA),
        ("s3://bucket", SHA),
        ("https://b.s3.amazonaws.com/k", SHA),
        ("s3://bucket/k", "abc"),
        ("s3://bucket/k", SHA.upper()),
    ],
)
def test_command_for_task_needs_an_s3_url_and_a_digest(url: str, sha256: str) -> None:
    with pytest.raises(ValueError):
        container_command(url, sha256, [])


def test_queue_target_from_a_descriptor() -> None:
    ce = ComputeEnvironmentDescription(arn="arn:ce", platform="FARGATE", order=1, max_vcpus=16)
    queue = QueueDescription(
        key="fargate",
        name="q",
        arn="arn:aws:batch:eu-west-1:1:job-queue/q",
        platform="FARGATE",
        compute_environments=(ce,),
    )
    descriptor = EnvironmentDescriptor(
        name="env",
        region="eu-west-1",
        bucket="b",
        prefix="p",
        job_role_arn="arn:aws:iam::1:role/job",
        execution_role_arn="arn:aws:iam::1:role/exec",
        log_group="/lg",
        default_image="img:1",
        queues=(queue,),
    )
    assert queue_target(descriptor, queue.arn, queue.platform) == QueueTarget(
        queue="arn:aws:batch:eu-west-1:1:job-queue/q",
        platform="FARGATE",
        job_role_arn="arn:aws:iam::1:role/job",
        execution_role_arn="arn:aws:iam::1:role/exec",
        default_image="img:1",
        log_group="/lg",
        region="eu-west-1",
    )


def test_job_spec_refusals_name_the_flow_when_known() -> None:
    flow_options = BatchOptions.from_attributes("train", {"gpu": 1}, flow="TrainFlow")
    with pytest.raises(InvalidValue, match=r"^flow 'TrainFlow', step 'train', @batch: gpu=1 "):
        build_job_definition(flow_options, FARGATE)
    with pytest.raises(InvalidValue, match=r"^flow 'TrainFlow', step 'train', @timeout: "):
        build_job_definition(flow_options, EC2, timeout_seconds=5)


def test_a_spec_checks_the_platform_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = definition.check_platform

    def counting(options: BatchOptions, target: QueueTarget) -> None:
        calls.append(target.queue)
        real(options, target)

    monkeypatch.setattr(definition, "check_platform", counting)
    build_job_spec(options(), EC2, task())
    assert calls == [EC2.queue]
    with pytest.raises(InvalidValue, match=r"cpu=2\.5"):
        build_job_spec(options(cpu=2.5), EC2, task())


@pytest.mark.parametrize(("queue", "platform"), [("q", "GPU"), ("", "EC2")])
def test_queue_targets_are_checked(queue: str, platform: Any) -> None:
    with pytest.raises(ValueError):
        QueueTarget(queue=queue, platform=platform)
