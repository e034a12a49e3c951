"""What ``plan`` says of ``@batch(secrets=...)`` and of images other than the environment's
job image: secret names (never where they come from) in the job definition's shape, the
refusal of secrets a local run cannot provide, and the warning about images that may
lack boto3."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from tests.environment.descriptors import (
    ACCOUNT,
    JOB_IMAGE,
    compute_environment,
    environment,
    queue,
)

from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.cli.plan import render_plan, show_routes
from batchwright.console import Console
from batchwright.errors import InvalidValue
from batchwright.plan import Plan, make_plan

DB_SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf"
TOKEN_PARAMETER = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team/token"


ENV = environment(
    queue("cpu", "EC2", compute_environment("cpu", "EC2", types=("c5.large", "c5.xlarge"))),
    queue("fargate", "FARGATE"),
)

FLOW = """
# batchwright.environment (the package) is imported in this test's process already: the
# name is still the decorator.
from batchwright import FlowSpec, batch, environment, step


class NotesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    {decorators}
    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SECRETS = f"secrets={{'DB_PASSWORD': {DB_SECRET!r}, 'API_TOKEN': {TOKEN_PARAMETER!r}}}"


def _plan(tmp_path: Path, decorators: str, **kwargs: Any) -> Plan:
    path = tmp_path / f"notes_flow_{len(list(tmp_path.glob('*.py')))}.py"
    path.write_text(FLOW.format(decorators=decorators))
    command = FlowCommand(load_flow_file(str(path)), str(path), Console())
    return make_plan(command.flow_name, command.definition(()).decorators, ENV, **kwargs)


def _rendered(plan: Plan) -> str:
    out = io.StringIO()
    render_plan(plan, Console(out=out, err=out))
    return out.getvalue()


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["cpu", "fargate"])
def test_plan_shows_the_secret_names_and_never_their_sources(tmp_path: Path, queue: str) -> None:
    plan = _plan(tmp_path, f"@batch(queue={queue!r}, {SECRETS})")
    assert plan.ok, plan.refusals
    step = plan.step("work")
    shape = step.job_definition_shape()
    assert shape is not None
    assert shape["secrets"] == ["API_TOKEN", "DB_PASSWORD"]
    assert shape["execution_role"] == ENV.execution_role_arn
    assert "secrets API_TOKEN, DB_PASSWORD" in _rendered(plan)
    shown = json.dumps(plan.to_json())
    assert "API_TOKEN" in shown
    assert DB_SECRET not in shown and TOKEN_PARAMETER not in shown


def test_secrets_a_local_run_cannot_fetch_are_refused(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        f"@batch({SECRETS})",
        run_batch_locally=True,
        local_variables={"HOME", "API_TOKEN"},
    )
    assert plan.refusals == [
        "flow 'NotesFlow', step 'work', @batch: secrets API_TOKEN, DB_PASSWORD are fetched by "
        "ECS when the job starts on AWS Batch; --run-batch-locally runs the step on this "
        "machine, where nothing fetches them, and DB_PASSWORD is not set in this shell. Run "
        "the step on AWS Batch (without --run-batch-locally), or set DB_PASSWORD in your shell "
        "for local runs."
    ]


def test_secrets_set_in_the_shell_serve_a_local_run(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        f"@batch({SECRETS})",
        run_batch_locally=True,
        local_variables={"API_TOKEN", "DB_PASSWORD"},
    )
    assert plan.ok, plan.refusals
    assert plan.step("work").notices == (
        "flow 'NotesFlow', step 'work', @batch: secrets API_TOKEN, DB_PASSWORD come from this "
        "shell's environment (--run-batch-locally); on AWS Batch, ECS fetches them.",
    )


def test_secrets_are_not_looked_for_in_the_shell_of_a_run_on_batch(tmp_path: Path) -> None:
    assert _plan(tmp_path, f"@batch({SECRETS})").ok


def test_a_secret_named_like_a_variable_of_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as caught:
        _plan(tmp_path, f"@environment(vars={{'API_TOKEN': 'x'}})\n    @batch({SECRETS})")
    message = str(caught.value)
    assert message.startswith("flow 'NotesFlow', step 'work', @batch: secrets={'API_TOKEN': ")
    assert message.endswith(
        "has the variable name 'API_TOKEN', which @environment(vars=...) sets too; inside the "
        "job @environment would replace the secret's value. Set API_TOKEN in only one of them."
    )


# --- images that may lack boto3 -----------------------------------------------------------

IMAGE_WARNING = (
    "flow 'NotesFlow', step 'work', @batch: image 'python:3.12-slim' is not the environment's "
    f"job image ({JOB_IMAGE}): if it lacks boto3, every job pip-installs it at start (slower, "
    "unpinned, needs internet). Build your image FROM the environment's job image, or add "
    "boto3 to it."
)


@pytest.mark.parametrize("queue", ["cpu", "fargate"])
def test_an_image_other_than_the_job_image_is_a_warning(tmp_path: Path, queue: str) -> None:
    plan = _plan(tmp_path, f"@batch(queue={queue!r}, image='python:3.12-slim')")
    assert plan.ok, plan.refusals
    step = plan.step("work")
    assert step.warnings == (IMAGE_WARNING,)
    assert step.notices == ()
    assert plan.to_json()[1]["warnings"] == [IMAGE_WARNING]
    assert f"warning:        {IMAGE_WARNING}" in _rendered(plan)


@pytest.mark.parametrize("decorator", ["@batch", f"@batch(image={JOB_IMAGE!r})"])
def test_the_job_image_needs_no_warning(tmp_path: Path, decorator: str) -> None:
    step = _plan(tmp_path, decorator).step("work")
    assert step.ok and step.warnings == ()


def test_a_local_run_does_not_warn_about_images(tmp_path: Path) -> None:
    step = _plan(tmp_path, "@batch(image='python:3.12-slim')", run_batch_locally=True).step("work")
    assert step.ok and step.warnings == ()


def test_run_shows_the_warning_on_standard_error(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "@batch(image='python:3.12-slim')")
    out, err = io.StringIO(), io.StringIO()
    show_routes(plan, Console(out=out, err=err))
    assert err.getvalue() == f"warning: {IMAGE_WARNING}\n"
