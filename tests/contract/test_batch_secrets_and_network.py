"""Contract 2 for ``@batch(secrets=...)`` and the Fargate public IP: the option's checks,
where both land in the job definition, that they take part in its content hash, and that
botocore's Batch model accepts the bodies on EC2 and on Fargate."""

from __future__ import annotations

from typing import Any

import pytest

from batchwright.batch.definition import build_job_definition
from batchwright.batch.jobspec import build_job_spec
from batchwright.batch.options import BatchOptions, secret_kind
from batchwright.batch.platforms import QueueTarget
from batchwright.batch.submission import TaskInvocation
from batchwright.decorators import parse_value
from batchwright.errors import InvalidValue, UserInputError

ACCOUNT = "123456789012"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-job"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/env-execution"
STEP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/step-execution"
DB_SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf"
TOKEN_PARAMETER = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team/token"
SECRETS = {"DB_PASSWORD": DB_SECRET, "API_TOKEN": TOKEN_PARAMETER}
#: The body's ``secrets``: sorted by name, whatever order the step gave them in.
RENDERED = [
    {"name": "API_TOKEN", "valueFrom": TOKEN_PARAMETER},
    {"name": "DB_PASSWORD", "valueFrom": DB_SECRET},
]


def target(
    platform: Any, *, execution_role: str | None = EXECUTION_ROLE, **extra: Any
) -> QueueTarget:
    return QueueTarget(
        queue=f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/{platform.lower()}",
        platform=platform,
        job_role_arn=JOB_ROLE,
        execution_role_arn=execution_role,
        default_image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchwright-job:1",
        log_group="/batchwright/env",
        region="us-east-1",
        **extra,
    )


def invocation() -> TaskInvocation:
    return TaskInvocation(
        flow="TrainFlow",
        run_id="1732540000",
        step="train",
        task_id="3",
        command=("python3", "-m", "batchwright.task", "--step", "train"),
        environment={"BATCHWRIGHT_DATASTORE_ROOT": "s3://bucket/prefix"},
    )


def options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


# --- the option --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "kind"),
    [
        (DB_SECRET, "secretsmanager"),
        (f"{DB_SECRET}:password::", "secretsmanager"),
        (f"{DB_SECRET}:password:AWSPREVIOUS:", "secretsmanager"),
        (f"{DB_SECRET}::AWSCURRENT:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "secretsmanager"),
        (
            f"arn:aws-us-gov:secretsmanager:us-gov-west-1:{ACCOUNT}:secret:prod/db-AbCdEf",
            "secretsmanager",
        ),
        (TOKEN_PARAMETER, "ssm"),
        (f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/plain", "ssm"),
        ("/team/token", "ssm"),
        ("/a.b-c_d/e", "ssm"),
    ],
)
def test_secret_references_ecs_takes(reference: str, kind: str) -> None:
    assert secret_kind(reference) == kind
    assert options(secrets={"VALUE": reference}).secrets == (("VALUE", reference),)


@pytest.mark.parametrize(
    "reference",
    [
        "hunter2",
        "team/token",
        "db-AbCdEf",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:db-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123:secret:db-AbCdEf",
        f"{DB_SECRET}:password",
        f"{DB_SECRET}:a:b:c:d",
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter",
        f"arn:aws:s3:::bucket/{ACCOUNT}",
        "/has space",
        "",
    ],
)
def test_anything_else_is_not_a_secret_reference(reference: str) -> None:
    assert secret_kind(reference) is None


def test_secrets_are_stored_sorted_and_named() -> None:
    checked = options(secrets=SECRETS)
    assert checked.secrets == (("API_TOKEN", TOKEN_PARAMETER), ("DB_PASSWORD", DB_SECRET))
    assert checked.secret_names == ("API_TOKEN", "DB_PASSWORD")
    assert "secrets" in checked.explicit
    assert options().secrets == () and options().secret_names == ()


def test_secrets_from_the_command_line_are_json() -> None:
    text = '{"API_TOKEN":"/team/token"}'
    checked = BatchOptions.from_attributes("train", {}, overrides={"secrets": parse_value(text)})
    assert checked.secrets == (("API_TOKEN", "/team/token"),)


RESERVED = (
    "names starting with AWS_ or ECS_ or BATCHWRIGHT_, and PYTHONPATH, PYTHONUNBUFFERED, "
    "TMPDIR, are reserved."
)
REFERENCE_FIX = (
    "Give a secret's ARN ('arn:aws:secretsmanager:<region>:<account>:secret:<name>', "
    "optionally followed by ':<json-key>:<version-stage>:<version-id>'), a parameter's ARN "
    "('arn:aws:ssm:<region>:<account>:parameter/<name>') or the name of a parameter in the "
    "job's region, starting with '/'. Never the secret itself."
)

# (id, secrets, the message after "step 'train', @batch: ")
REFUSALS: list[tuple[str, Any, str]] = [
    (
        "not a mapping",
        ["DB_PASSWORD"],
        "secrets=['DB_PASSWORD'] is not a mapping. Give a dict of environment variable names "
        "to secret ARNs or SSM parameters, e.g. {'DB_PASSWORD': "
        f"'{DB_SECRET}', 'API_TOKEN': '/team/token'}} (on the command line, as JSON: "
        """batch:secrets='{"API_TOKEN":"/team/token"}').""",
    ),
    (
        "name with a dash",
        {"DB-PASSWORD": DB_SECRET},
        f"secrets={{'DB-PASSWORD': '{DB_SECRET}'}} has the variable name 'DB-PASSWORD', which "
        "is not an environment variable name. Use letters, digits and '_', not starting with "
        "a digit, e.g. 'DB_PASSWORD'.",
    ),
    (
        "name starting with a digit",
        {"1PASSWORD": DB_SECRET},
        f"secrets={{'1PASSWORD': '{DB_SECRET}'}} has the variable name '1PASSWORD', which is "
        "not an environment variable name. Use letters, digits and '_', not starting with a "
        "digit, e.g. 'DB_PASSWORD'.",
    ),
    (
        "name not a string",
        {1: DB_SECRET},
        f"secrets={{1: '{DB_SECRET}'}} has the variable name 1, which is not an environment "
        "variable name. Use letters, digits and '_', not starting with a digit, e.g. "
        "'DB_PASSWORD'.",
    ),
    (
        "AWS name",
        {"AWS_SECRET_ACCESS_KEY": DB_SECRET},
        f"secrets={{'AWS_SECRET_ACCESS_KEY': '{DB_SECRET}'}} has the variable name "
        "'AWS_SECRET_ACCESS_KEY', which AWS Batch, ECS or batchwright sets in every job. Rename "
        f"the variable (e.g. 'APP_AWS_SECRET_ACCESS_KEY'): {RESERVED}",
    ),
    (
        "batchwright name",
        {"BATCHWRIGHT_USER": "/u"},
        "secrets={'BATCHWRIGHT_USER': '/u'} has the variable name 'BATCHWRIGHT_USER', which "
        "AWS Batch, ECS or batchwright sets in every job. Rename the variable (e.g. "
        f"'APP_BATCHWRIGHT_USER'): {RESERVED}",
    ),
    (
        "TMPDIR",
        {"TMPDIR": "/tmp-dir"},
        "secrets={'TMPDIR': '/tmp-dir'} has the variable name 'TMPDIR', which AWS Batch, ECS or "
        f"batchwright sets in every job. Rename the variable (e.g. 'APP_TMPDIR'): {RESERVED}",
    ),
    (
        "the secret itself",
        {"DB_PASSWORD": "hunter2"},
        "secrets={'DB_PASSWORD': 'hunter2'} has 'DB_PASSWORD': 'hunter2', which is neither a "
        f"Secrets Manager secret ARN nor an SSM parameter. {REFERENCE_FIX}",
    ),
    (
        "a parameter name without its slash",
        {"API_TOKEN": "team/token"},
        "secrets={'API_TOKEN': 'team/token'} has 'API_TOKEN': 'team/token', which is neither a "
        f"Secrets Manager secret ARN nor an SSM parameter. {REFERENCE_FIX}",
    ),
    (
        "a value not a string",
        {"PORT": 5432},
        "secrets={'PORT': 5432} has 'PORT': 5432, which is neither a Secrets Manager secret ARN "
        f"nor an SSM parameter. {REFERENCE_FIX}",
    ),
]


@pytest.mark.parametrize(("secrets", "message"), [pytest.param(*c[1:], id=c[0]) for c in REFUSALS])
def test_bad_secrets_are_refused_naming_step_key_value_and_fix(secrets: Any, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        options(secrets=secrets)
    error = caught.value
    assert str(error) == f"step 'train', @batch: {message}"
    assert error.key == "secrets"
    assert isinstance(error, UserInputError) and error.exit_code == 2


def test_a_secret_may_not_share_a_name_with_environment_variables_of_the_step() -> None:
    with pytest.raises(InvalidValue) as caught:
        BatchOptions.from_attributes(
            "train", {"secrets": SECRETS}, variables=["MODE", "DB_PASSWORD"], flow="TrainFlow"
        )
    assert str(caught.value) == (
        # The checked value, sorted by name.
        f"flow 'TrainFlow', step 'train', @batch: secrets={dict(sorted(SECRETS.items()))!r} "
        "has the variable name "
        "'DB_PASSWORD', which @environment(vars=...) sets too; inside the job @environment "
        "would replace the secret's value. Set DB_PASSWORD in only one of them."
    )
    assert BatchOptions.from_attributes("train", {"secrets": SECRETS}, variables=["MODE"])


# --- the job definition ------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["EC2", "SPOT", "FARGATE", "FARGATE_SPOT"])
def test_secrets_land_in_the_definition_with_the_execution_role(
    batch_model: Any, platform: str
) -> None:
    spec = build_job_spec(options(secrets=SECRETS), target(platform), invocation())
    batch_model.register_job_definition(spec.definition.kwargs())
    batch_model.submit_job(spec.submit.kwargs())
    container = spec.definition.body["containerProperties"]
    assert container["secrets"] == RENDERED
    # ECS fetches secrets with the execution role, on EC2 as on Fargate.
    assert container["executionRoleArn"] == EXECUTION_ROLE
    # Secrets never travel in the submission: only their references, in the definition.
    assert "secrets" not in spec.submit.body["containerOverrides"]


def test_without_secrets_an_ec2_definition_has_no_execution_role() -> None:
    container = build_job_definition(options(), target("EC2")).body["containerProperties"]
    assert "secrets" not in container and "executionRoleArn" not in container


def test_the_steps_execution_role_fetches_its_secrets() -> None:
    body = build_job_definition(
        options(secrets=SECRETS, execution_role=STEP_ROLE), target("EC2", execution_role=None)
    ).body
    assert body["containerProperties"]["executionRoleArn"] == STEP_ROLE


def test_secrets_without_any_execution_role_are_refused_on_ec2() -> None:
    with pytest.raises(InvalidValue) as caught:
        build_job_definition(options(secrets=SECRETS), target("EC2", execution_role=None))
    assert str(caught.value) == (
        "step 'train', @batch: execution_role=None (not given): the step has secrets "
        "(API_TOKEN, DB_PASSWORD), which ECS fetches with the job's execution role, and the "
        "environment of queue 'arn:aws:batch:us-east-1:123456789012:job-queue/ec2' has none. "
        "Give @batch(execution_role='arn:aws:iam::<account>:role/<name>') with a role allowed "
        "to read the secrets, or drop secrets."
    )


def test_secrets_take_part_in_the_content_hash_not_their_order() -> None:
    ec2 = target("EC2")
    plain = build_job_definition(options(), ec2)
    with_secrets = build_job_definition(options(secrets=SECRETS), ec2)
    reordered = build_job_definition(options(secrets=dict(reversed(SECRETS.items()))), ec2)
    other = build_job_definition(options(secrets={**SECRETS, "API_TOKEN": "/team/other"}), ec2)
    assert with_secrets.content_hash == reordered.content_hash
    assert len({plain.name, with_secrets.name, other.name}) == 3


# --- the Fargate public IP -----------------------------------------------------------------


@pytest.mark.parametrize("platform", ["FARGATE", "FARGATE_SPOT"])
def test_fargate_jobs_get_a_public_ip_only_where_the_subnets_need_one(
    batch_model: Any, platform: str
) -> None:
    public = build_job_spec(options(), target(platform, assign_public_ip=True), invocation())
    private = build_job_spec(options(), target(platform, assign_public_ip=False), invocation())
    for spec in (public, private):
        batch_model.register_job_definition(spec.definition.kwargs())
        batch_model.submit_job(spec.submit.kwargs())
    network = [
        spec.definition.body["containerProperties"]["networkConfiguration"]
        for spec in (public, private)
    ]
    assert network == [{"assignPublicIp": "ENABLED"}, {"assignPublicIp": "DISABLED"}]
    assert public.definition.content_hash != private.definition.content_hash


def test_a_target_says_nothing_of_its_subnets_keeps_the_public_ip() -> None:
    body = build_job_definition(options(), target("FARGATE")).body
    assert body["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "ENABLED"}


@pytest.mark.parametrize("public", [True, False])
def test_ec2_definitions_have_no_network_configuration(public: bool) -> None:
    body = build_job_definition(options(), target("EC2", assign_public_ip=public)).body
    assert "networkConfiguration" not in body["containerProperties"]
