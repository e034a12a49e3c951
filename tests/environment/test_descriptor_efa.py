"""Contract 1's ``efa`` of a compute environment: written always, read as ``accelerator ==
"efa"`` from documents older than the field, checked, and summed up per queue."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from tests.environment.descriptors import compute_environment, environment, queue

from batchwright.environment.descriptor import (
    DESCRIPTOR_SCHEMA,
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
)
from batchwright.errors import DescriptorError

ENV = environment(
    queue("cpu", "EC2", compute_environment("cpu", "EC2")),
    queue(
        "efa",
        "EC2",
        compute_environment("efa", "EC2", types=("c5n.18xlarge",), accelerator="efa"),
    ),
    queue(
        "gpu-efa",
        "EC2",
        compute_environment("gpu-efa", "EC2", types=("p4d.24xlarge",), accelerator="gpu", efa=True),
    ),
    queue(
        "trainium-efa",
        "EC2",
        compute_environment("trn", "EC2", types=("trn1.32xlarge",), accelerator="neuron", efa=True),
    ),
    queue("gpu", "EC2", compute_environment("gpu", "EC2", types=("g5.xlarge",), accelerator="gpu")),
)


def _entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [ce for q in document["queues"] for ce in q["compute_environments"]]


def test_every_compute_environment_writes_the_field_and_it_round_trips() -> None:
    document = ENV.to_dict()
    assert [ce["efa"] for ce in _entries(document)] == [False, True, True, True, False]
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    assert EnvironmentDescriptor.from_dict(document) == ENV
    assert EnvironmentDescriptor.from_json(ENV.to_json()) == ENV


def test_a_document_older_than_the_field_reads_efa_from_the_accelerator() -> None:
    document = ENV.to_dict()
    for ce in _entries(document):
        del ce["efa"]
    jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    read = EnvironmentDescriptor.from_dict(document)
    # Only EFA-only environments had EFA interfaces before the field existed.
    assert {q.key: q.compute_environments[0].efa for q in read.queues} == {
        "cpu": False,
        "efa": True,
        "gpu-efa": False,
        "trainium-efa": False,
        "gpu": False,
    }


@pytest.mark.parametrize("value", ["true", 1, None])
def test_anything_but_a_boolean_is_refused(value: Any) -> None:
    document = ENV.to_dict()
    document["queues"][2]["compute_environments"][0]["efa"] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).validate(document)
    with pytest.raises(DescriptorError) as caught:
        EnvironmentDescriptor.from_dict(document, source="outputs.json")
    assert str(caught.value).startswith(
        "outputs.json: queues[2].compute_environments[0].efa must be true or false."
    )


def test_the_schema_describes_the_field() -> None:
    properties = DESCRIPTOR_SCHEMA["$defs"]["compute_environment"]["properties"]
    assert properties["efa"]["type"] == "boolean"
    assert "efa" not in DESCRIPTOR_SCHEMA["$defs"]["compute_environment"]["required"]
    multi_node = DESCRIPTOR_SCHEMA["$defs"]["queue"]["properties"]["multi_node"]
    assert "on-demand" in multi_node["description"]


def test_accelerator_efa_implies_the_flag() -> None:
    ce = ComputeEnvironmentDescription(
        arn="arn", platform="EC2", order=1, max_vcpus=8, accelerator="efa", efa=False
    )
    assert ce.efa is True
    document = ENV.to_dict()
    document["queues"][1]["compute_environments"][0]["efa"] = False
    read = EnvironmentDescriptor.from_dict(document)
    assert read.queues[1].compute_environments[0].efa is True


def test_a_queue_has_efa_when_every_compute_environment_does() -> None:
    assert {q.key: q.efa for q in ENV.queues} == {
        "cpu": False,
        "efa": True,
        "gpu-efa": True,
        "trainium-efa": True,
        "gpu": False,
    }
    mixed = queue(
        "mixed",
        "EC2",
        compute_environment("a", "EC2", types=("p4d.24xlarge",), accelerator="gpu", efa=True),
        compute_environment("b", "EC2", 2, types=("g5.xlarge",), accelerator="gpu"),
    )
    assert mixed.efa is False
