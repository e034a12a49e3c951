"""Validation of request bodies against botocore's Batch service model.

A real boto3 Batch client (dummy credentials, no network) wrapped in a Stubber: the
Stubber checks the parameters of every call against the service model before it hands
back the canned response, so a body the model rejects raises here. botocore does not
check enums or maximum sizes client-side, so :func:`check_model_rules` adds those.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.model import Shape
from botocore.stub import Stubber


class ModelViolation(AssertionError):
    """A body breaks a rule of the model that botocore does not check client-side."""


def check_model_rules(shape: Shape, value: Any, path: str) -> None:
    """Checks what botocore's parameter validation leaves out: enum values and the
    maximum sizes of maps and lists (e.g. at most 50 tags), plus map minimums."""
    enum = shape.metadata.get("enum")
    if enum is not None and value not in enum:
        raise ModelViolation(f"{path}={value!r} is not one of {enum}")
    if shape.type_name == "structure" and isinstance(value, Mapping):
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key in members:
                check_model_rules(members[key], item, f"{path}.{key}")
    elif shape.type_name in ("map", "list") and isinstance(value, Mapping | list):
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max")
        if len(value) < low or (high is not None and len(value) > high):
            raise ModelViolation(f"{path} has {len(value)} entries; allowed {low}..{high}")
        if shape.type_name == "list":
            for i, item in enumerate(value):
                check_model_rules(shape.member, item, f"{path}[{i}]")  # type: ignore[attr-defined]
        else:
            for key, item in value.items():  # type: ignore[union-attr]
                check_model_rules(shape.value, item, f"{path}.{key}")  # type: ignore[attr-defined]


class BatchModel:
    """Sends request bodies through a stubbed client so the model validates them."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "batch",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _check(self, operation: str, body: Mapping[str, Any]) -> None:
        shape = self.client.meta.service_model.operation_model(operation).input_shape
        assert shape is not None
        check_model_rules(shape, body, operation)

    def register_job_definition(self, body: Mapping[str, Any]) -> None:
        """Validates a RegisterJobDefinition body (and that the client sends it unchanged)."""
        self._check("RegisterJobDefinition", body)
        with Stubber(self.client) as stub:
            stub.add_response(
                "register_job_definition",
                {
                    "jobDefinitionName": body["jobDefinitionName"],
                    "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/x:1",
                    "revision": 1,
                },
                dict(body),
            )
            self.client.register_job_definition(**body)
            stub.assert_no_pending_responses()

    def submit_job(self, body: Mapping[str, Any]) -> None:
        """Validates a SubmitJob body (and that the client sends it unchanged)."""
        self._check("SubmitJob", body)
        with Stubber(self.client) as stub:
            stub.add_response("submit_job", {"jobName": body["jobName"], "jobId": "1"}, dict(body))
            self.client.submit_job(**body)
            stub.assert_no_pending_responses()


@pytest.fixture(scope="session")
def batch_model() -> Iterator[BatchModel]:
    """One stubbed Batch client for the session."""
    yield BatchModel()
