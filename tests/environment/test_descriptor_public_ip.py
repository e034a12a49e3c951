"""Contract 1's ``assign_public_ip`` of a compute environment, from the document to the
job definition: written always, read with today's behaviour when absent, checked, and
turned into the Fargate job definition's ``assignPublicIp`` of the queue's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from tests.environment.descriptors import compute_environment, environment, queue

from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.console import Console
from batchwright.environment.descriptor import (
    DESCRIPTOR_SCHEMA,
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
)
from batchwright.errors import DescriptorError
from batchwright.plan import Plan, environment_target, make_plan


def _ce(
    name: str, platform: str, order: int = 1, *, public: bool = True
) -> ComputeEnvironmentDescription:
    return compute_environment(name, platform, order, public=public)


ENV = environment(
    queue("cpu", "EC2", _ce("cpu", "EC2")),
    queue("public", "FARGATE", _ce("public", "FARGATE", public=True)),
    queue("private", "FARGATE", _ce("private", "FARGATE", public=False)),
    queue(
        "mixed",
        "FARGATE_SPOT",
        _ce("mixed-spot", "FARGATE_SPOT", 1, public=False),
        _ce("mixed-on-demand", "FARGATE", 2, public=True),
    ),
)


def _entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [ce for q in document["queues"] for ce in q["compute_environments"]]


# --- the document ---------------------------------------------------------------------------


def test_every_compute_environment_writes_the_field_and_it_round_trips() -> None:
    document = ENV.to_dict()
    assert [ce["assign_public_ip"] for ce in _entries(document)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    assert EnvironmentDescriptor.from_dict(document) == ENV
    assert EnvironmentDescriptor.from_json(ENV.to_json()) == ENV


def test_a_document_older_than_the_field_keeps_the_public_ip() -> None:
    document = ENV.to_dict()
    for ce in _entries(document):
        del ce["assign_public_ip"]
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    read = EnvironmentDescriptor.from_dict(document)
    assert all(ce.assign_public_ip for q in read.queues for ce in q.compute_environments)


@pytest.mark.parametrize("value", ["false", 0, None])
def test_anything_but_a_boolean_is_refused(value: Any) -> None:
    document = ENV.to_dict()
    document["queues"][1]["compute_environments"][0]["assign_public_ip"] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    with pytest.raises(DescriptorError) as caught:
        EnvironmentDescriptor.from_dict(document, source="outputs.json")
    assert str(caught.value).startswith(
        "outputs.json: queues[1].compute_environments[0].assign_public_ip must be true or false."
    )


def test_the_schema_describes_the_field() -> None:
    field = DESCRIPTOR_SCHEMA["$defs"]["compute_environment"]["properties"]["assign_public_ip"]
    assert field["type"] == "boolean"
    assert "assign_public_ip" not in DESCRIPTOR_SCHEMA["$defs"]["compute_environment"]["required"]
    assert field["description"].startswith("Fargate only")


def test_a_queue_needs_a_public_ip_when_any_fargate_environment_does() -> None:
    needs = {q.key: q.assign_public_ip for q in ENV.queues}
    # EC2 queues have no such setting; a mixed queue's job may land in either environment.
    assert needs == {"cpu": False, "public": True, "private": False, "mixed": True}
    assert [environment_target(ENV, q).assign_public_ip for q in ENV.queues] == [
        False,
        True,
        False,
        True,
    ]


# --- the plan -----------------------------------------------------------------------------

FLOW = """
from batchwright import FlowSpec, batch, step


class NetworkFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.public)

    @batch(queue="public")
    @step
    def public(self):
        self.next(self.private)

    @batch(queue="private")
    @step
    def private(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _plan(tmp_path: Path, environment: EnvironmentDescriptor) -> Plan:
    path = tmp_path / f"network_flow_{len(list(tmp_path.glob('*.py')))}.py"
    path.write_text(FLOW)
    command = FlowCommand(load_flow_file(str(path)), str(path), Console())
    return make_plan(command.flow_name, command.definition(()).decorators, environment)


def test_a_fargate_queue_in_private_subnets_gets_no_public_ip(tmp_path: Path) -> None:
    plan = _plan(tmp_path, ENV)
    assert plan.ok, plan.refusals
    network = {}
    for name in ("public", "private"):
        definition = plan.step(name).job_definition
        assert definition is not None
        network[name] = definition.body["containerProperties"]["networkConfiguration"]
    assert network == {
        "public": {"assignPublicIp": "ENABLED"},
        "private": {"assignPublicIp": "DISABLED"},
    }
    public, private = (plan.step(n).job_definition for n in ("public", "private"))
    assert public is not None and private is not None
    assert public.content_hash != private.content_hash


def test_the_published_document_carries_the_setting_to_the_plan(tmp_path: Path) -> None:
    read = EnvironmentDescriptor.from_json(json.dumps(ENV.to_dict()), source="outputs.json")
    plan = _plan(tmp_path, read)
    target = plan.step("private").target
    assert target is not None and not target.assign_public_ip
