"""Reading the descriptor from cdk.out, an outputs file, CloudFormation and SSM."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.environment.instances import lookup
from batchwright.environment.sources import (
    from_cloud_assembly,
    from_cloudformation,
    from_outputs_file,
    from_parameter,
    is_placeholder,
    placeholders_in,
    render_intrinsics,
    template_defaults,
)
from batchwright.errors import DescriptorError, EnvironmentNotFound

STACK = "BatchwrightSample"


def _sample_synth() -> ModuleType:
    name = "batchwright_tests_sample_synth"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "cdk" / "sample_synth.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- rendering intrinsics (pure) -----------------------------------------------------------


def test_join_select_split_and_sub_are_evaluated_when_static() -> None:
    value = {
        "Fn::Join": [
            "-",
            [
                "a",
                {"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]},
                {"Fn::Sub": "${AWS::Region}/${Thing.Arn}"},
            ],
        ]
    }
    assert render_intrinsics(value) == "a-y-<Ref:AWS::Region>/<GetAtt:Thing.Arn>"


def test_unresolvable_references_become_readable_placeholders() -> None:
    queue_name = {
        "Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": ["Queue1", "JobQueueArn"]}]}]
    }
    assert render_intrinsics({"Ref": "Bucket"}) == "<Ref:Bucket>"
    assert render_intrinsics(queue_name) == "<part-of:GetAtt:Queue1.JobQueueArn>"
    assert is_placeholder(render_intrinsics(queue_name))
    assert not is_placeholder("arn:aws:batch:us-east-1:1:job-queue/q")


def test_placeholders_are_found_inside_values() -> None:
    rendered = render_intrinsics(
        {"Fn::Join": ["", ["s3://", {"Ref": "Bucket"}, "/", {"Fn::If": ["C", "a", "b"]}]]}
    )
    assert rendered == "s3://<Ref:Bucket>/<Fn::If>"
    assert placeholders_in(rendered) == ["<Ref:Bucket>", "<Fn::If>"]
    assert placeholders_in("<part-of:GetAtt:Queue1.JobQueueArn>") == [
        "<part-of:GetAtt:Queue1.JobQueueArn>"
    ]
    # Angle brackets that no deployment fills in are values like any other.
    assert placeholders_in("s3://bucket/<my-prefix>") == []
    assert placeholders_in("public.ecr.aws/docker/library/python:3.11") == []


def test_template_defaults_are_what_a_ref_is_before_deployment() -> None:
    template = {
        "Parameters": {
            "DefaultImage": {"Type": "String", "Default": "python:3.11"},
            "Required": {"Type": "String"},
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            },
        }
    }
    assert template_defaults(template) == {"DefaultImage": "python:3.11"}
    assert render_intrinsics({"Ref": "DefaultImage"}, template_defaults(template)) == "python:3.11"


# --- cdk.out and the outputs file (the synthesized sample) -------------------------------


@pytest.fixture(scope="module")
def synthesis() -> Any:
    return _sample_synth().synthesize_sample()


@pytest.mark.cdk
def test_reads_the_static_descriptor_from_cdk_out(synthesis: Any) -> None:
    descriptor = from_cloud_assembly(STACK, synthesis.outdir)
    assert "cdk.out template" in descriptor.source and STACK in descriptor.source
    assert descriptor.name == STACK
    assert descriptor.region == "us-east-1"
    assert is_placeholder(descriptor.bucket) and is_placeholder(descriptor.job_role_arn)
    small = descriptor.queue("small")
    assert small is not None and is_placeholder(small.arn)
    # The static part is enough to plan: 8192 MiB never fits the c5.xlarge queue.
    (ce,) = small.compute_environments
    capacity = descriptor.capacity(ce.instance_types[0])
    assert capacity is not None and capacity.job_memory_mib < 8192
    assert small.max_vcpus == 16
    gpu = descriptor.queue("gpu")
    assert gpu is not None
    capacities = [lookup(t) for t in gpu.compute_environments[0].instance_types]
    assert max(c.gpus for c in capacities if c is not None) == 4  # g5.12xlarge


@pytest.mark.cdk
def test_cdk_out_errors_name_what_exists(synthesis: Any, tmp_path: Path) -> None:
    with pytest.raises(EnvironmentNotFound, match=r"no stack named 'Nope'.*BatchwrightSample"):
        from_cloud_assembly("Nope", synthesis.outdir)
    with pytest.raises(EnvironmentNotFound, match="cdk synth"):
        from_cloud_assembly(STACK, tmp_path)


@pytest.mark.cdk
def test_reads_the_descriptor_from_a_deploy_outputs_file(synthesis: Any, tmp_path: Path) -> None:
    static = from_cloud_assembly(STACK, synthesis.outdir)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({STACK: {DESCRIPTOR_OUTPUT_KEY: static.to_json()}}))
    descriptor = from_outputs_file(outputs, STACK)
    assert descriptor == static
    assert str(outputs) in descriptor.source
    with pytest.raises(EnvironmentNotFound, match=r"no outputs for stack 'Other'"):
        from_outputs_file(outputs, "Other")
    outputs.write_text(json.dumps({STACK: {DESCRIPTOR_OUTPUT_KEY: '{"version": 99}'}}))
    with pytest.raises(DescriptorError, match="version 99"):
        from_outputs_file(outputs, STACK)


# --- CloudFormation and SSM (moto, in process) ----------------------------------------------


def _descriptor() -> EnvironmentDescriptor:
    ce = ComputeEnvironmentDescription(
        arn="arn:aws:batch:us-east-1:123456789012:compute-environment/ce",
        platform="EC2",
        order=1,
        max_vcpus=16,
        instance_types=("c5.xlarge",),
    )
    queue = QueueDescription(
        key="small",
        name="q",
        arn="arn:aws:batch:us-east-1:123456789012:job-queue/q",
        platform="EC2",
        compute_environments=(ce,),
    )
    return EnvironmentDescriptor(
        name="Deployed",
        region="us-east-1",
        bucket="bucket",
        prefix="batchwright",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        execution_role_arn="arn:aws:iam::123456789012:role/exec",
        log_group="logs",
        default_image="public.ecr.aws/docker/library/python:3.11-slim",
        queues=(queue,),
    )


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """A boto3 session against moto's in-process mock, with one deployed stack whose
    outputs and SSM parameter carry a descriptor."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        text = _descriptor().to_json()
        template = {
            "Resources": {
                "Descriptor": {
                    "Type": "AWS::SSM::Parameter",
                    # moto needs a name; the real construct leaves naming to CloudFormation.
                    "Properties": {"Name": "/deployed/descriptor", "Type": "String", "Value": text},
                }
            },
            "Outputs": {
                DESCRIPTOR_OUTPUT_KEY: {"Value": text},
                DESCRIPTOR_PARAMETER_OUTPUT_KEY: {"Value": {"Ref": "Descriptor"}},
            },
        }
        session.client("cloudformation").create_stack(
            StackName="Deployed", TemplateBody=json.dumps(template)
        )
        yield session


def test_reads_the_descriptor_from_stack_outputs(session: boto3.Session) -> None:
    descriptor = from_cloudformation("Deployed", session=session)
    assert descriptor == _descriptor()
    assert descriptor.source.startswith("CloudFormation stack Deployed")
    with pytest.raises(EnvironmentNotFound, match="'Missing' could not be described"):
        from_cloudformation("Missing", session=session)


def test_reads_the_descriptor_from_the_ssm_parameter(session: boto3.Session) -> None:
    by_stack = from_parameter(stack_name="Deployed", session=session)
    assert by_stack == _descriptor()
    assert by_stack.source.startswith("SSM parameter ")
    name = by_stack.source.removeprefix("SSM parameter ")
    assert from_parameter(name, client=session.client("ssm")) == by_stack
    with pytest.raises(EnvironmentNotFound, match="does not exist"):
        from_parameter("/no/such/parameter", session=session)
