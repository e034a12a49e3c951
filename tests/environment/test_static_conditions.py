"""Reading a template before deployment: parameter defaults decide its conditions, and
``Fn::If`` takes the branch they give; what only a deployment knows stays a placeholder."""

from __future__ import annotations

from typing import Any

import pytest

from batchwright.environment.sources import render_output


def _template(default: str | None, left: Any = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"Type": "String"}
    if default is not None:
        parameter["Default"] = default
    return {
        "Parameters": {"DefaultImage": parameter},
        "Conditions": {
            "UseJobImage": {"Fn::Equals": [left or {"Ref": "DefaultImage"}, ""]},
            "Brought": {"Fn::Not": [{"Condition": "UseJobImage"}]},
        },
        "Outputs": {
            "Image": {
                "Value": {
                    "Fn::If": [
                        "UseJobImage",
                        {"Fn::Sub": "${AWS::AccountId}.dkr.ecr.eu-west-1.amazonaws.com/jobs"},
                        {"Ref": "DefaultImage"},
                    ]
                }
            },
            "Brought": {"Value": {"Fn::If": ["Brought", "yes", "no"]}},
        },
    }


@pytest.mark.parametrize(
    ("default", "image", "brought"),
    [
        ("", "<Ref:AWS::AccountId>.dkr.ecr.eu-west-1.amazonaws.com/jobs", "no"),
        ("python:3.11-slim", "python:3.11-slim", "yes"),
        (None, "<Fn::If>", "<Fn::If>"),  # no default: only a deployment knows
    ],
)
def test_parameter_defaults_decide_conditions(
    default: str | None, image: str, brought: str
) -> None:
    template = _template(default)
    assert render_output(template, "Image") == image
    assert render_output(template, "Brought") == brought


def test_a_condition_on_a_deploy_time_value_stays_unresolved() -> None:
    template = _template("", left={"Fn::GetAtt": ["Bucket", "Arn"]})
    assert render_output(template, "Image") == "<Fn::If>"
