"""An environment nothing names is looked for (the outputs file, the cloud assembly, the
account's SSM path, then its deployed stacks), several are refused with their names, and an
environment not found exits 2 like every other refusal."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from batchwright.cli import main as batchwright_main
from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    EnvironmentDescriptor,
    descriptor_parameter_name,
)
from batchwright.environment.discovery import (
    UnknownEnvironment,
    cloud_assemblies,
    discover,
    find_unnamed,
    search,
)
from batchwright.environment.sources import environment_stacks, outputs_file_environments
from batchwright.errors import EnvironmentNotFound, UserInputError

from .conftest import STACK, isolate_from_aws, write_outputs_file

SECOND = "BatchwrightSecond"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def _assembly(folder: Path, cdk_out: Path, batchwright: list[str], other: str = "") -> Path:
    """A cloud assembly whose stacks ``batchwright`` have the sample template, plus
    ``other`` (a stack without the descriptor output) when given."""
    folder.mkdir(parents=True)
    sample = cdk_out / f"{STACK}.template.json"
    artifacts: dict[str, Any] = {}
    for name in batchwright:
        (folder / f"{name}.template.json").symlink_to(sample)
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{name}.template.json", "stackName": name},
        }
    if other:
        (folder / f"{other}.template.json").write_text(json.dumps({"Resources": {}}))
        artifacts[other] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{other}.template.json"},
        }
    (folder / "manifest.json").write_text(json.dumps({"version": "36", "artifacts": artifacts}))
    return folder


def _cdk_json(folder: Path, **document: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cdk.json").write_text(json.dumps({"app": "true", **document}))
    return folder


# --- the cloud assembly ----------------------------------------------------------------------


def test_the_only_stack_of_the_cloud_assembly_is_the_environment(
    tmp_path: Path, cdk_out: Path
) -> None:
    # cdk.json's "output" key names the assembly folder; another stack there is no
    # batchwright environment and is passed over.
    app = _cdk_json(tmp_path / "app", output="build/assembly")
    _assembly(app / "build" / "assembly", cdk_out, [STACK], other="Network")
    found = discover(None, cwd=app, environ={}, deployed=False)
    assert found is not None
    assert found.name == STACK
    assert found.origin == (
        f"the only batchwright stack in cloud assembly {app / 'build' / 'assembly'}"
    )
    assert found.descriptor.source.startswith("cdk.out template")
    # Parameter defaults and the conditions they decide resolve in the other outputs too:
    # DefaultImage is empty, so the image is the job image the stack builds.
    profile = json.loads(found.outputs["BatchwrightMetaflowProfile"])
    assert profile["METAFLOW_BATCH_CONTAINER_IMAGE"] == found.descriptor.default_image
    assert "container-assets" in found.descriptor.default_image
    assert "<Fn::If>" not in found.outputs["BatchwrightMetaflowProfile"]


def test_cloud_assemblies_in_order(tmp_path: Path) -> None:
    app = _cdk_json(tmp_path / "app", output="synth")
    assert cloud_assemblies(None, app / "cdk.json", tmp_path) == [
        app / "synth",
        tmp_path / "cdk.out",
    ]
    plain = _cdk_json(tmp_path / "plain")
    assert cloud_assemblies(None, plain / "cdk.json", plain) == [plain / "cdk.out"]
    assert cloud_assemblies("given", plain / "cdk.json", plain) == [Path("given")]


def test_several_stacks_in_the_cloud_assembly_are_listed(tmp_path: Path, cdk_out: Path) -> None:
    assembly = _assembly(tmp_path / "cdk.out", cdk_out, [STACK, SECOND], other="Network")
    assert environment_stacks(assembly) == [STACK, SECOND]
    with pytest.raises(UnknownEnvironment) as caught:
        discover(None, cwd=tmp_path, environ={}, deployed=False)
    assert str(caught.value) == (
        "several batchwright environments were found and none is named: cloud assembly "
        f"{assembly} holds '{STACK}', '{SECOND}'. Choose one with --environment NAME (e.g. "
        f"--environment {STACK}), set $BATCHWRIGHT_ENVIRONMENT=NAME, or add "
        '"batchwright:defaultEnvironment": "NAME" to the context of cdk.json.'
    )
    assert isinstance(caught.value, UserInputError) and caught.value.exit_code == 2
    # Naming one settles it.
    found = discover(SECOND, cwd=tmp_path, environ={}, deployed=False)
    assert found is not None and found.name == SECOND and found.origin == "named by --environment"


def test_a_found_name_that_is_not_deployed_says_where_it_came_from(
    tmp_path: Path, cdk_out: Path
) -> None:
    assembly = _assembly(tmp_path / "cdk.out", cdk_out, [STACK])
    with pytest.raises(UnknownEnvironment) as caught:
        # run on AWS: deployed sources only, and AWS is unreachable.
        discover(None, cwd=tmp_path, environ={}, allow_static=False)
    assert str(caught.value).startswith(
        f"environment '{STACK}' (the only batchwright stack in cloud assembly {assembly}) was "
        "not found. Tried: "
    )


# --- the outputs file ------------------------------------------------------------------------


def test_the_only_environment_of_the_outputs_file(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    outputs = write_outputs_file(tmp_path / "cdk-outputs.json", sample_env)
    assert outputs_file_environments(outputs) == [STACK]
    found = discover(None, cwd=tmp_path, environ={}, allow_static=False)
    assert found is not None and found.name == STACK
    assert found.origin == f"the only batchwright environment in outputs file {outputs}"
    assert found.descriptor.source == f"outputs file {outputs} (stack {STACK})"


def test_several_environments_in_the_outputs_file(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    outputs = tmp_path / "given.json"
    second = dataclasses.replace(sample_env, name=SECOND)
    outputs.write_text(
        json.dumps(
            {
                STACK: {DESCRIPTOR_OUTPUT_KEY: sample_env.to_json()},
                SECOND: {DESCRIPTOR_OUTPUT_KEY: second.to_json()},
                "Network": {"VpcId": "vpc-1"},
            }
        )
    )
    with pytest.raises(UnknownEnvironment, match="several batchwright environments") as caught:
        discover(None, cwd=tmp_path, outputs_file=outputs, environ={})
    assert f"outputs file {outputs} holds '{STACK}', '{SECOND}'." in str(caught.value)


# --- the account -----------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """moto's in-process CloudFormation and SSM."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        yield session.client("cloudformation"), session.client("ssm")


def _deploy(cfn: Any, name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_only_environment_deployed_in_the_account(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _deploy(cfn, "Network", {"VpcId": "vpc-1"})
    _deploy(cfn, STACK, {DESCRIPTOR_OUTPUT_KEY: sample_env.to_json()})
    found = discover(None, cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
    assert found is not None and found.name == STACK
    assert found.origin == (
        "the only batchwright environment deployed in CloudFormation in us-east-1"
    )
    assert (
        found.descriptor.source == f"CloudFormation stack {STACK} (output {DESCRIPTOR_OUTPUT_KEY})"
    )


def _publish(cfn: Any, ssm: Any, name: str, env: EnvironmentDescriptor) -> None:
    """A stack as the construct library deploys it: the output and the named parameter."""
    _deploy(cfn, name, {DESCRIPTOR_OUTPUT_KEY: env.to_json()})
    ssm.put_parameter(Name=descriptor_parameter_name(name), Value=env.to_json(), Type="String")


def test_the_only_environment_listed_under_the_ssm_path(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _deploy(cfn, "Network", {"VpcId": "vpc-1"})
    _publish(cfn, ssm, STACK, sample_env)
    ssm.put_parameter(Name="/batchwright/environments-old", Value="{}", Type="String")
    ssm.put_parameter(Name="/unrelated/parameter", Value="{}", Type="String")
    found = discover(None, cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
    assert found is not None and found.name == STACK
    assert found.origin == (
        "the only batchwright environment listed in SSM in us-east-1 (parameters under "
        "/batchwright/environments)"
    )


def test_an_environment_only_ssm_knows_is_found_by_its_parameter(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    # The descriptor is published, but CloudFormation has no such stack to say where
    # (a role without cloudformation:DescribeStacks sees the same).
    _, ssm = aws
    ssm.put_parameter(
        Name=descriptor_parameter_name(STACK), Value=sample_env.to_json(), Type="String"
    )
    for name in (None, STACK):
        found = discover(name, cwd=tmp_path, environ={}, ssm=ssm)
        assert found is not None and found.name == STACK, name
        assert found.descriptor.source == f"SSM parameter {descriptor_parameter_name(STACK)}"


def test_several_environments_under_the_ssm_path_are_listed(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _publish(cfn, ssm, STACK, sample_env)
    _publish(cfn, ssm, SECOND, sample_env)
    with pytest.raises(UnknownEnvironment) as caught:
        find_unnamed(cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
    assert str(caught.value).startswith(
        "several batchwright environments were found and none is named: SSM in us-east-1 "
        f"(parameters under /batchwright/environments) holds '{STACK}', '{SECOND}'. Choose "
        f"one with --environment NAME (e.g. --environment {STACK})"
    )


def test_a_listing_refused_falls_back_to_the_deployed_stacks(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, _ = aws
    _deploy(cfn, STACK, {DESCRIPTOR_OUTPUT_KEY: sample_env.to_json()})
    ssm = boto3.client("ssm", region_name="us-east-1")
    with Stubber(ssm) as denied:
        denied.add_client_error("get_parameters_by_path", "AccessDeniedException", "not authorized")
        result = find_unnamed(cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
    assert result.found is not None and result.found.name == STACK
    assert result.looked[-1] == (
        "SSM parameters under /batchwright/environments: AccessDeniedException: not authorized"
    )


def test_the_account_is_not_asked_when_only_cdk_out_may_be_read(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, _ = aws
    _deploy(cfn, STACK, {DESCRIPTOR_OUTPUT_KEY: sample_env.to_json()})
    result = search(None, cwd=tmp_path, environ={}, cloudformation=cfn, deployed=False)
    assert result.found is None
    assert result.looked == (f"cloud assembly {tmp_path / 'cdk.out'}: none (no manifest.json)",)


def test_several_deployed_environments_are_refused_with_exit_code_2(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, _ = aws
    _deploy(cfn, STACK, {DESCRIPTOR_OUTPUT_KEY: sample_env.to_json()})
    _deploy(cfn, SECOND, {"BatchwrightEnvironmentParameter": "/some/parameter"})
    with pytest.raises(UnknownEnvironment) as caught:
        find_unnamed(cwd=tmp_path, environ={}, cloudformation=cfn)
    assert str(caught.value) == (
        "several batchwright environments were found and none is named: CloudFormation in "
        f"us-east-1 (the deployed stacks of this account) holds '{STACK}', '{SECOND}'. Choose "
        f"one with --environment NAME (e.g. --environment {STACK}), set "
        '$BATCHWRIGHT_ENVIRONMENT=NAME, or add "batchwright:defaultEnvironment": "NAME" to '
        "the context of cdk.json."
    )
    code = batchwright_main(["env", "show"])
    assert code == 2


def _stack_summary(name: str, outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "StackName": name,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
    }


def test_every_page_of_the_account_is_read(tmp_path: Path) -> None:
    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stacks",
            {"Stacks": [_stack_summary("Network", {"VpcId": "vpc-1"})], "NextToken": "page-2"},
            {},
        )
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    _stack_summary(STACK, {"BatchwrightEnvironmentParameter": "/p"}),
                    {
                        **_stack_summary("Leaving", {DESCRIPTOR_OUTPUT_KEY: "{}"}),
                        "StackStatus": "DELETE_IN_PROGRESS",
                    },
                ]
            },
            {"NextToken": "page-2"},
        )
        ssm = boto3.client("ssm", region_name="eu-west-1")
        with Stubber(ssm) as listing:  # nothing published under the path: the stacks
            listing.add_response(
                "get_parameters_by_path", {"Parameters": []}, {"Path": "/batchwright/environments"}
            )
            result = find_unnamed(cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
            listing.assert_no_pending_responses()
        stub.assert_no_pending_responses()
    assert result.found is not None and result.found.name == STACK
    assert result.found.origin == (
        "the only batchwright environment deployed in CloudFormation in eu-west-1"
    )


def test_nothing_found_anywhere_leaves_the_run_without_an_environment(
    tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    cfn, ssm = aws
    _deploy(cfn, "Network", {"VpcId": "vpc-1"})
    ssm.put_parameter(Name="/batchwright/other/x", Value="{}", Type="String")
    result = search(None, cwd=tmp_path, environ={}, cloudformation=cfn, ssm=ssm)
    assert result.found is None
    assert result.looked == (
        f"cloud assembly {tmp_path / 'cdk.out'}: none (no manifest.json)",
        "SSM in us-east-1 (parameters under /batchwright/environments): none",
        "CloudFormation in us-east-1: no stack with the 'BatchwrightEnvironment' output",
    )


# --- exit code 2 -------------------------------------------------------------------------------


def test_an_environment_not_found_exits_2_everywhere(
    tmp_path: Path, cdk_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Path(__file__).with_name("flows") / "memory_flow.py"
    expected = (
        f"error: environment 'Nowhere' (named by --environment) was not found. Tried: cloud "
        f"assembly {cdk_out}: {cdk_out / 'manifest.json'} has no stack named 'Nowhere'; it "
        f"has ['{STACK}']."
    )
    for argv in (
        ["env", "show", "Nowhere", "--static", "--cdk-out", str(cdk_out)],
        ["env", "show", "--environment", "Nowhere", "--static", "--cdk-out", str(cdk_out)],
        ["plan", str(flow), "--environment", "Nowhere", "--static", "--cdk-out", str(cdk_out)],
    ):
        assert batchwright_main(argv) == 2, argv
        assert capsys.readouterr().err.startswith(expected), argv
    assert issubclass(UnknownEnvironment, EnvironmentNotFound)


def test_env_with_no_environment_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = batchwright_main(["env", "show", "--static"])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: env show: no environment is named, and none was found (cloud assembly "
        f"{tmp_path / 'cdk.out'}: none (no manifest.json)). Pass NAME (a stack built with "
        "batchwright_cdk), set $BATCHWRIGHT_ENVIRONMENT, or add the "
        "'batchwright:defaultEnvironment' context to cdk.json.\n"
    )
    code = batchwright_main(["env", "show", "One", "--environment", "Other"])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: env show: NAME 'One' and --environment 'Other' name different environments. "
        "Pass one of them.\n"
    )


def test_a_malformed_descriptor_exits_2_naming_its_source(
    tmp_path: Path, sample_env: EnvironmentDescriptor, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(sample_env.to_json())
    document["version"] = 2
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({STACK: {"BatchwrightEnvironment": json.dumps(document)}}))
    flow = Path(__file__).with_name("flows") / "memory_flow.py"
    code = batchwright_main(["plan", str(flow), "--outputs-file", str(outputs)])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: outputs file {outputs} (stack {STACK}) has version 2")
    assert "Traceback" not in error
