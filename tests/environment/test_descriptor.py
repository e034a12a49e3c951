"""The descriptor the constructs publish satisfies contract 1: schema and typed model.

The synthesized sample's descriptor has deploy-time placeholders; they are replaced with
values shaped like real ones before the document meets the JSON Schema, so the test also
measures the size the deployed document will have.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_SCHEMA,
    EnvironmentDescriptor,
)
from batchwright.environment.instances import lookup
from batchwright.environment.sources import render_output
from batchwright.errors import DescriptorError

pytestmark = pytest.mark.cdk

ACCOUNT = "123456789012"
REGION = "us-east-1"
#: SSM Intelligent-Tiering promotes to Advanced up to this size (bytes).
SSM_ADVANCED_LIMIT = 8192


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


def deployed_like(text: str) -> str:
    """Replaces placeholders with values shaped like what CloudFormation returns."""
    suffix = "AbCdEfGhIjKl"

    def value(match: re.Match[str]) -> str:
        kind, target = match.group(1), match.group(2)
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if kind == "Ref" and target in pseudo:
            return pseudo[target]
        logical, _, attribute = target.partition(".")
        if kind == "part-of:GetAtt":
            return f"{logical}-{suffix}"
        if attribute == "JobQueueArn":
            return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{logical}-{suffix}"
        if attribute == "ComputeEnvironmentArn":
            return f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/{logical}-{suffix}"
        if attribute == "Arn":
            return f"arn:aws:iam::{ACCOUNT}:role/BatchwrightSample-{logical}-{suffix}"
        return f"batchwrightsample-{logical.lower()}-{suffix.lower()}"

    return re.sub(r"<(part-of:GetAtt|GetAtt|Ref):([^<>]+)>", value, text)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The sample's descriptor as it will read after deployment."""
    synthesis = _sample_synth().synthesize_sample()
    text = render_output(synthesis.template, DESCRIPTOR_OUTPUT_KEY)
    resolved = deployed_like(text)
    assert "<" not in resolved, resolved
    return dict(json.loads(resolved))


def test_descriptor_validates_against_the_schema(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)


def test_descriptor_round_trips_through_the_model(document: dict[str, Any]) -> None:
    descriptor = EnvironmentDescriptor.from_dict(document, source="test")
    assert descriptor.to_dict() == document
    assert EnvironmentDescriptor.from_json(descriptor.to_json()) == descriptor


def test_descriptor_describes_every_kind(document: dict[str, Any]) -> None:
    descriptor = EnvironmentDescriptor.from_dict(document)
    kinds = {q.key: (q.platform, q.accelerator, q.efa, q.multi_node) for q in descriptor.queues}
    # The sample's compute subnets are private (it has an EFA queue): every queue of
    # on-demand EC2 environments can run multi-node jobs, Spot and Fargate ones cannot.
    assert kinds == {
        "cpu": ("EC2", "none", False, True),
        "small": ("EC2", "none", False, True),
        "spot": ("SPOT", "none", False, False),
        "spot-fallback": ("SPOT", "none", False, False),
        "fargate": ("FARGATE", "none", False, False),
        "fargate-spot": ("FARGATE_SPOT", "none", False, False),
        "gpu": ("EC2", "gpu", False, True),
        "neuron": ("EC2", "neuron", False, True),
        "efa": ("EC2", "efa", True, True),
    }
    for queue in descriptor.queues:
        for ce in queue.compute_environments:
            # Names only; every one is in the shipped table, so no capacities travel.
            assert all(lookup(name) is not None for name in ce.instance_types)
            assert bool(ce.instance_types) is not ce.is_fargate
    assert descriptor.instance_types == {}
    small = descriptor.queue("small")
    assert small is not None and small.compute_environments[0].instance_types == ("c5.xlarge",)


def test_deployed_descriptor_fits_an_ssm_parameter(document: dict[str, Any]) -> None:
    size = len(EnvironmentDescriptor.from_dict(document).to_json().encode())
    assert size < SSM_ADVANCED_LIMIT, f"{size} bytes"
    # The construct's synth-time estimate must not undershoot the deployed size.
    from batchwright_cdk.descriptor import DEPLOYED_VALUE_CHARS

    longest = max(
        len(v)
        for q in document["queues"]
        for v in [q["arn"], q["name"], *(ce["arn"] for ce in q["compute_environments"])]
    )
    assert longest <= DEPLOYED_VALUE_CHARS


def test_schema_rejects_a_queue_with_four_compute_environments(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    queue = broken["queues"][0]
    queue["compute_environments"] = queue["compute_environments"] * 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(broken)


def test_deployed_flows_round_trip_and_older_documents_have_none(
    document: dict[str, Any],
) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:ProductionFlow-a1b2"
    with_flows = {**document, "flows": {"ProductionFlow": arn}}
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(with_flows)
    parsed = EnvironmentDescriptor.from_dict(with_flows)
    assert parsed.flows == {"ProductionFlow": arn}
    assert parsed.to_dict()["flows"] == {"ProductionFlow": arn}
    without = {k: v for k, v in document.items() if k != "flows"}
    assert EnvironmentDescriptor.from_dict(without).flows == {}
    assert "flows" not in EnvironmentDescriptor.from_dict(without).to_dict()
    with pytest.raises(DescriptorError, match=r"flows\.ProductionFlow"):
        EnvironmentDescriptor.from_dict({**document, "flows": {"ProductionFlow": ""}})
