"""The bring-your-own sample app (``sample_app/bring_your_own.py``) synthesizes: the
environment stack creates only Batch parts on the team's VPC, bucket and role, its jobs
may read the team's secret through the execution role, and the second stack's Lambda may
submit to the gpu queue only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

pytestmark = pytest.mark.cdk

APP = Path(__file__).parents[2] / "sample_app" / "bring_your_own.py"


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("bring_your_own", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assembly = module.build_app(cdk.App()).synth()
    return {s.stack_name: s.template for s in assembly.stacks}


def _types(template: dict[str, Any]) -> set[str]:
    return {r["Type"] for r in template["Resources"].values()}


def test_the_environment_stack_creates_batch_parts_and_brings_the_rest(
    templates: dict[str, dict[str, Any]],
) -> None:
    assert set(templates) == {"PlatformBase", "PlatformBatch", "PlatformTriggers"}
    created = _types(templates["PlatformBatch"])
    assert {"AWS::Batch::JobQueue", "AWS::Batch::ComputeEnvironment"} <= created
    assert not {"AWS::EC2::VPC", "AWS::S3::Bucket", "AWS::EC2::NatGateway"} & created
    text = json.dumps(templates["PlatformBatch"])
    assert "Fn::ImportValue" in text and "PlatformBase" in text  # the team's VPC and bucket


def test_only_the_execution_role_reads_the_secret(templates: dict[str, dict[str, Any]]) -> None:
    policies = [
        r["Properties"]
        for r in templates["PlatformBatch"]["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
    ]
    readers = [
        p for p in policies if "secretsmanager:GetSecretValue" in json.dumps(p["PolicyDocument"])
    ]
    assert len(readers) == 1
    assert "ExecutionRole" in json.dumps(readers[0]["Roles"])
    assert "platform/db-password" in json.dumps(readers[0]["PolicyDocument"])


def test_the_lambda_may_submit_to_the_gpu_queue_only(templates: dict[str, dict[str, Any]]) -> None:
    resources = templates["PlatformTriggers"]["Resources"]
    policy = next(r for r in resources.values() if r["Type"] == "AWS::IAM::Policy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    queues = [
        s["Resource"]
        for s in statements
        if (s["Action"] == "batch:SubmitJob" and "job-queue" in json.dumps(s["Resource"]).lower())
        or (s["Action"] == "batch:SubmitJob" and "Fn::ImportValue" in json.dumps(s["Resource"]))
    ]
    assert len(queues) == 1
    exports = templates["PlatformBatch"]["Outputs"]
    gpu_exports = [k for k in exports if "gpu" in k.lower()]
    assert gpu_exports and "cpu" not in json.dumps(queues[0]).lower()
