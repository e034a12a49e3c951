"""The cloud assembly reader and the intrinsic-function evaluator (pure, no synthesis)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from batchwright.environment.assembly import (
    FUNCTIONS,
    NO_VALUE,
    CloudAssembly,
    References,
    Unresolved,
    evaluate,
    stack_template,
)
from batchwright.environment.sources import render_intrinsics
from batchwright.errors import EnvironmentNotFound

# --- the manifest --------------------------------------------------------------------------


def _assembly(tmp_path: Path) -> Path:
    template = {"Resources": {}, "Outputs": {"Out": {"Value": "v"}}}
    (tmp_path / "Prod.template.json").write_text(json.dumps(template))
    manifest = {
        "artifacts": {
            "ProdStack": {
                "type": "aws:cloudformation:stack",
                "displayName": "App/Prod",
                "properties": {"templateFile": "Prod.template.json", "stackName": "prod-env"},
            },
            "Tree": {"type": "cdk:tree", "properties": {"file": "tree.json"}},
            "NoTemplate": {"type": "aws:cloudformation:stack", "properties": {}},
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


@pytest.mark.parametrize("name", ["ProdStack", "App/Prod", "prod-env"])
def test_a_stack_answers_to_its_id_display_name_and_stack_name(tmp_path: Path, name: str) -> None:
    directory = _assembly(tmp_path)
    assert CloudAssembly.read(directory).template_path(name) == directory / "Prod.template.json"
    assert stack_template(directory, name)["Outputs"] == {"Out": {"Value": "v"}}


def test_the_manifest_lists_only_stacks(tmp_path: Path) -> None:
    stacks = CloudAssembly.read(_assembly(tmp_path)).stacks
    assert [(s.artifact_id, s.stack_name) for s in stacks] == [
        ("ProdStack", "prod-env"),
        ("NoTemplate", "NoTemplate"),
    ]


def test_errors_say_what_to_run_and_what_exists(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentNotFound, match=r"manifest\.json does not exist.*cdk synth"):
        CloudAssembly.read(tmp_path)
    assembly = CloudAssembly.read(_assembly(tmp_path))
    with pytest.raises(EnvironmentNotFound, match=r"no stack named 'Nope'; it has .*'prod-env'"):
        assembly.stack("Nope")
    with pytest.raises(EnvironmentNotFound, match="no stack named 'NoTemplate'"):
        assembly.template("NoTemplate")  # listed, but nothing to read


# --- the evaluator ---------------------------------------------------------------------------


class _Values(References):
    """A deployed stack of two resources, a parameter and one condition."""

    functions = FUNCTIONS

    def ref(self, name: str) -> Any:
        return {"AWS::Region": "eu-west-1", "AWS::NoValue": NO_VALUE, "Env": "prod"}.get(
            name, f"id-of-{name}"
        )

    def get_att(self, logical_id: str, attribute: str) -> Any:
        return f"{attribute}-of-{logical_id}"

    def condition(self, name: str) -> bool:
        return name == "IsProd"

    def find_in_map(self, map_name: Any, top_level_key: Any, second_level_key: Any) -> Any:
        return f"{map_name}/{top_level_key}/{second_level_key}"

    def availability_zones(self, region: str) -> list[str]:
        return [f"{region}a", f"{region}b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Fn::Join": ["-", ["a", {"Ref": "Bucket"}]]}, "a-id-of-Bucket"),
        ({"Fn::GetAtt": "Queue.Arn"}, "Arn-of-Queue"),
        ({"Fn::Sub": "${Env}:${Queue.Arn}:${!Literal}"}, "prod:Arn-of-Queue:${Literal}"),
        ({"Fn::Sub": ["${X}-${AWS::Region}", {"X": {"Ref": "Env"}}]}, "prod-eu-west-1"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "big"),
        ({"Fn::If": ["IsTest", "big", "small"]}, "small"),
        ({"Fn::Equals": [{"Ref": "Env"}, "prod"]}, True),
        ({"Fn::Not": [{"Condition": "IsProd"}]}, False),
        ({"Fn::And": [True, {"Condition": "IsProd"}]}, True),
        ({"Fn::Or": [False, {"Condition": "IsTest"}]}, False),
        ({"Fn::Base64": "hi"}, base64.b64encode(b"hi").decode()),
        ({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "Id"]}, "Images/eu-west-1/Id"),
        ({"Fn::GetAZs": ""}, ["eu-west-1a", "eu-west-1b"]),
        ({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}),
    ],
)
def test_functions_compute_with_the_values_references_give(value: Any, expected: Any) -> None:
    assert evaluate(value, _Values()) == expected


def test_no_value_leaves_the_item_or_property_out() -> None:
    no_value = {"Fn::If": ["IsTest", "x", {"Ref": "AWS::NoValue"}]}
    assert evaluate(["a", no_value, "b"], _Values()) == ["a", "b"]
    assert evaluate({"Keep": 1, "Drop": no_value}, _Values()) == {"Keep": 1}


def test_a_setting_computes_only_its_functions() -> None:
    class JoinsOnly(_Values):
        functions = frozenset({"Fn::Join"})

        def unevaluated(self, function: str, argument: Any) -> Any:
            return f"<{function}>"

    value = {"Fn::Join": ["/", [{"Fn::If": ["IsProd", "a", "b"]}, {"Ref": "Env"}]]}
    assert evaluate(value, JoinsOnly()) == "<Fn::If>/prod"


def test_unresolved_values_stay_recognizable_when_taken_apart() -> None:
    arn = Unresolved.named("GetAtt:Queue.JobQueueArn")
    assert arn.part() == "<part-of:GetAtt:Queue.JobQueueArn>"
    assert arn.part().part() == arn.part()
    queue_name = {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": ["Queue", "Arn"]}]}]}
    assert render_intrinsics(queue_name) == "<part-of:GetAtt:Queue.Arn>"
    assert render_intrinsics({"Fn::Select": [5, ["a"]]}) == "<Fn::Select:5>"
    assert render_intrinsics({"Fn::If": ["C", "a", "b"]}) == "<Fn::If>"
    assert render_intrinsics({"Ref": "Image"}, {"Image": "repo:tag"}) == "repo:tag"
