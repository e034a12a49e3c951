"""BatchChecks: what cdk-nag does not look for in Batch job definitions and queues."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Annotations, Match

from batchwright_cdk import BatchChecks
from batchwright_cdk.aspects import job_definition_problems

pytestmark = pytest.mark.cdk


def test_privileged_and_secret_looking_job_definitions_fail_synthesis() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Jobs")
    for name, privileged, environment in [
        ("Bad", True, {"DB_PASSWORD": "hunter2", "MODE": "fast"}),
        ("Good", False, {"MODE": "fast"}),
    ]:
        batch.EcsJobDefinition(
            stack,
            name,
            container=batch.EcsEc2ContainerDefinition(
                stack,
                f"{name}Container",
                image=ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/python:3.11"),
                cpu=1,
                memory=cdk.Size.mebibytes(512),
                privileged=privileged,
                environment=environment,
            ),
        )
    cdk.Aspects.of(stack).add(BatchChecks())
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp(r"\[BatchChecks\]"))
    paths = {e.id for e in errors}
    assert paths == {"/Jobs/Bad/Resource"}
    text = " ".join(str(e.entry.data) for e in errors)
    assert "Privileged is true" in text
    assert "'DB_PASSWORD' looks like a secret" in text
    assert "@batch(secrets={'DB_PASSWORD':" in text  # the fix names the option


@pytest.mark.parametrize(
    ("name", "value", "flagged"),
    [
        ("API_TOKEN", "abc", True),
        ("GITHUB_PAT", "ghp_" + "a" * 36, True),
        ("ANYTHING", "AKIA" + "ABCDEFGHIJKLMNOP", True),
        ("LOG_LEVEL", "debug", False),
        ("SECRET_ARN_REF", "", False),
        ("HF_TOKEN", "hf_abc", True),
        ("AWS_SECRET_ACCESS_KEY", "abc", True),
        ("TOKENIZERS_PARALLELISM", "false", False),
        ("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:db", False),
        ("PASSWORD_FILE", "/run/secrets/db", False),
    ],
)
def test_secret_detection_by_name_or_value(name: str, value: str, flagged: bool) -> None:
    props = {"ContainerProperties": {"Environment": [{"Name": name, "Value": value}]}}
    assert bool(job_definition_problems(props)) is flagged


def test_multi_node_containers_are_checked_too() -> None:
    props = {
        "nodeProperties": {
            "nodeRangeProperties": [{"container": {"privileged": True}}],
        }
    }
    (problem,) = job_definition_problems(props)
    assert problem.startswith("NodeProperties.NodeRangeProperties[0].Container.Privileged")
