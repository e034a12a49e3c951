"""Finding the environment: the name (flag > variable > cdk.json) and the sources in order
(outputs file > CloudFormation > SSM > cdk.out), with moto's in-process AWS for CFN/SSM."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchwright.cli.command import load_flow_file
from batchwright.cli.flow import main as flow_main
from batchwright.client import Flow
from batchwright.console import Console
from batchwright.datastore import open_datastore
from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    EnvironmentDescriptor,
)
from batchwright.environment.discovery import (
    DEFAULT_ENVIRONMENT_CONTEXT,
    datastore_roots,
    discover,
    find_environment,
    resolve_name,
)
from batchwright.errors import EnvironmentNotFound
from batchwright.identity import current_user

from .conftest import STACK, write_outputs_file

PARAMETER = "/batchwright/sample/descriptor"


def _cdk_app(folder: Path, default: str | None = STACK) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    context = {DEFAULT_ENVIRONMENT_CONTEXT: default} if default else {}
    (folder / "cdk.json").write_text(json.dumps({"app": "true", "context": context}))
    return folder


# --- the name ----------------------------------------------------------------------------------


def test_flag_beats_variable_beats_cdk_json(tmp_path: Path) -> None:
    app = _cdk_app(tmp_path / "app")
    variable = {"BATCHWRIGHT_ENVIRONMENT": "FromVariable"}
    flagged = resolve_name("FromFlag", cwd=app, environ=variable)
    assert flagged is not None and (flagged.name, flagged.origin) == ("FromFlag", "--environment")
    from_variable = resolve_name(None, cwd=app, environ=variable)
    assert from_variable is not None and from_variable.name == "FromVariable"
    assert from_variable.origin == "$BATCHWRIGHT_ENVIRONMENT"
    from_cdk = resolve_name(None, cwd=app, environ={})
    assert from_cdk is not None and from_cdk.name == STACK
    assert str(app / "cdk.json") in from_cdk.origin


def test_cdk_json_is_found_walking_up_from_the_flow_directory_first(tmp_path: Path) -> None:
    outer = _cdk_app(tmp_path / "outer", "OuterStack")
    inner = _cdk_app(outer / "inner", "InnerStack")
    flow_dir = inner / "flows" / "deep"
    flow_dir.mkdir(parents=True)
    found = resolve_name(None, cwd=tmp_path, flow_dir=flow_dir, environ={})
    assert found is not None and found.name == "InnerStack"
    assert found.cdk_json == inner / "cdk.json"
    assert resolve_name(None, cwd=outer, environ={}).name == "OuterStack"  # type: ignore[union-attr]


def test_nothing_names_an_environment(tmp_path: Path) -> None:
    _cdk_app(tmp_path / "app", default=None)
    assert resolve_name(None, cwd=tmp_path / "app", environ={}) is None
    assert find_environment(None, cwd=tmp_path / "app", environ={}) is None


# --- the sources -------------------------------------------------------------------------------


def _variant(env: EnvironmentDescriptor, marker: str) -> EnvironmentDescriptor:
    """The same environment with a distinguishable log group (to tell sources apart)."""
    return dataclasses.replace(env, log_group=marker)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """moto's in-process CloudFormation and SSM."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        yield session.client("cloudformation"), session.client("ssm")


def _stack(cfn: Any, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template))


def _parameter(ssm: Any, env: EnvironmentDescriptor) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=env.to_json(), Type="String", Tier="Advanced")


def _find(tmp_path: Path, clients: tuple[Any, Any], **kwargs: Any) -> EnvironmentDescriptor:
    cfn, ssm = clients
    found = find_environment(
        STACK,
        cwd=tmp_path,
        cloudformation=cfn,
        ssm=ssm,
        allow_static=False,
        environ={},
        **kwargs,
    )
    assert found is not None
    return found


def test_outputs_file_comes_first(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _stack(cfn, {DESCRIPTOR_OUTPUT_KEY: _variant(sample_env, "cfn").to_json()})
    _parameter(ssm, _variant(sample_env, "ssm"))
    write_outputs_file(tmp_path / "cdk-outputs.json", _variant(sample_env, "file"))
    found = _find(tmp_path, aws)
    assert found.log_group == "file"
    assert found.source.startswith(f"outputs file {tmp_path / 'cdk-outputs.json'}")


def test_cloudformation_when_no_outputs_file_has_the_stack(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _stack(cfn, {DESCRIPTOR_OUTPUT_KEY: _variant(sample_env, "cfn").to_json()})
    _parameter(ssm, _variant(sample_env, "ssm"))
    # An outputs file of another stack is passed over (it is not the one asked for).
    other = dataclasses.replace(sample_env, name="OtherStack")
    write_outputs_file(tmp_path / "cdk-outputs.json", other)
    found = _find(tmp_path, aws)
    assert found.log_group == "cfn"
    assert found.source.startswith(f"CloudFormation stack {STACK}")


def test_ssm_parameter_named_by_the_stack(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, ssm = aws
    _stack(cfn, {DESCRIPTOR_PARAMETER_OUTPUT_KEY: PARAMETER})
    _parameter(ssm, _variant(sample_env, "ssm"))
    found = _find(tmp_path, aws)
    assert found.log_group == "ssm"
    assert found.source == f"SSM parameter {PARAMETER}"


def test_explicit_outputs_file_and_variable(
    tmp_path: Path, aws: tuple[Any, Any], sample_env: EnvironmentDescriptor
) -> None:
    cfn, _ = aws
    _stack(cfn, {DESCRIPTOR_OUTPUT_KEY: _variant(sample_env, "cfn").to_json()})
    named = write_outputs_file(tmp_path / "elsewhere.json", _variant(sample_env, "named"))
    assert _find(tmp_path, aws, outputs_file=named).log_group == "named"
    found = find_environment(
        STACK,
        cwd=tmp_path,
        cloudformation=cfn,
        ssm=aws[1],
        environ={"BATCHWRIGHT_OUTPUTS_FILE": str(named)},
    )
    assert found is not None and found.log_group == "named"
    with pytest.raises(EnvironmentNotFound, match="does not exist"):
        _find(tmp_path, aws, outputs_file=tmp_path / "missing.json")


def test_outputs_file_beside_cdk_json(tmp_path: Path, sample_env: EnvironmentDescriptor) -> None:
    app = _cdk_app(tmp_path / "app")
    write_outputs_file(app / "cdk-outputs.json", sample_env)
    flow_dir = app / "flows"
    flow_dir.mkdir()
    found = find_environment(
        None, cwd=tmp_path, flow_dir=flow_dir, environ={}, allow_static=False, deployed=True
    )
    assert found is not None and found.source.startswith(f"outputs file {app}")


def test_static_read_of_cdk_out_needs_no_aws(tmp_path: Path, cdk_out: Path) -> None:
    app = _cdk_app(tmp_path / "app")
    (app / "cdk.out").symlink_to(cdk_out)
    found = discover(None, cwd=app, environ={}, deployed=False)
    assert found is not None
    assert found.descriptor.source.startswith("cdk.out template")
    assert {q.key for q in found.descriptor.queues} >= {"cpu", "spot", "fargate", "gpu"}
    # The stack's other outputs come along (the Metaflow profile among them).
    assert "BatchwrightMetaflowProfile" in found.outputs


def test_unreachable_aws_fails_fast_listing_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A closed loopback port: connection refused, and no retries during discovery.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with pytest.raises(EnvironmentNotFound) as caught:
        find_environment(STACK, cwd=tmp_path, session=session, allow_static=False, environ={})
    message = str(caught.value)
    assert f"environment '{STACK}' (named by --environment) was not found" in message
    assert f"outputs file {tmp_path / 'cdk-outputs.json'}: does not exist" in message
    assert f"CloudFormation stack {STACK}: EndpointConnectionError" in message
    assert "cdk deploy" in message and "--environment" in message


def test_no_credentials_skips_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(EnvironmentNotFound, match="skipped, no AWS credentials found"):
        find_environment(STACK, cwd=tmp_path, allow_static=False, environ={})


# --- readers find the datastore the way run does ------------------------------------------

DISCOVERED_FLOW = """
from batchwright import FlowSpec, step


class DiscoFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_logs_and_the_client_find_the_environments_datastore(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sample_env: EnvironmentDescriptor,
) -> None:
    for key in list(os.environ):
        if key.startswith(("BATCHWRIGHT_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env = dataclasses.replace(sample_env, bucket="discovered", prefix="bw")
    app = _cdk_app(tmp_path / "app")
    write_outputs_file(app / "cdk-outputs.json", env)
    (app / "disco_flow.py").write_text(DISCOVERED_FLOW)
    monkeypatch.chdir(app)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="discovered")
        store = open_datastore("DiscoFlow", env.datastore_root)
        # As `run` records it: who ran it (the client's default namespace) and its tags.
        store.write_run("42", {"status": "succeeded", "user": current_user(), "tags": []})
        store.write_log("42", "start", "1", 0, "stdout", io.BytesIO(b"said from S3\n"))
        store.mark_done("42", "start", "1", 0)
        # Nothing names the datastore: cdk.json names the environment, whose outputs file
        # gives its bucket, as `run` finds it.
        assert datastore_roots(None, cwd=app) == [
            env.datastore_root,
            str((app / ".batchwright").resolve()),
        ]
        flow = Flow("DiscoFlow")
        assert flow.latest_run is not None and flow.latest_run.id == "42"
        out, err = io.StringIO(), io.StringIO()
        code = flow_main(
            load_flow_file(str(app / "disco_flow.py")), ["logs", "42/start"], Console(out, err)
        )
        assert code == 0, err.getvalue()
        assert "said from S3" in out.getvalue()
