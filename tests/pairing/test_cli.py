"""The pairing's commands: ``plan`` (flow and ``batchwright``), run/resume planning before
anything runs, ``--run-batch-locally``, and ``batchwright env show|export-metaflow``."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from batchwright import aws
from batchwright.cli import main as batchwright_main
from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.cli.jobs import ACTIVE_STATES
from batchwright.cli.plan import batch_datastore_root, prepare_run
from batchwright.console import Console
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.errors import PlanError, UserInputError

from .conftest import (
    FLOWS,
    REPO,
    STACK,
    deployed,
    isolate_from_aws,
    run_flow_cli,
    write_outputs_file,
)

PAIRING_FLOW = REPO / "sample_app" / "flows" / "pairing_flow.py"
METAFLOW_KEYS = {
    "METAFLOW_DEFAULT_DATASTORE",
    "METAFLOW_DATASTORE_SYSROOT_S3",
    "METAFLOW_DATATOOLS_S3ROOT",
    "METAFLOW_BATCH_JOB_QUEUE",
    "METAFLOW_ECS_S3_ACCESS_IAM_ROLE",
    "METAFLOW_ECS_FARGATE_EXECUTION_ROLE",
    "METAFLOW_BATCH_CONTAINER_IMAGE",
    "METAFLOW_BATCH_EMIT_TAGS",
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


# --- plan ----------------------------------------------------------------------------------------


def test_flow_plan_from_cdk_out_only(cdk_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_flow_cli(PAIRING_FLOW, ["plan", "--static", "--cdk-out", str(cdk_out)])
    assert code == 0
    assert f"Plan of PairingFlow on environment {STACK}" in out
    assert "cdk.out template" in out
    for step, queue in (("featurize", "cpu"), ("train", "spot"), ("export", "fargate")):
        block = out.split(f"step {step}: AWS Batch", 1)[1].split("verdict:", 1)[0]
        assert f"queue:          '{queue}'" in block
        # The job image the stack builds, in the account's bootstrap repository.
        assert "job definition: image <Ref:AWS::AccountId>.dkr.ecr." in block
        assert "container-assets" in block
    assert "step start: local" in out and "All steps can run." in out
    assert "(17 in all)" in out  # instance types: first few, then the count
    train = out.split("step train: AWS Batch", 1)[1].split("verdict:", 1)[0]
    assert re.search(
        r"on reclaim: +after 2 Spot reclaim\(s\) of an attempt, queue '(cpu|small)'", train
    )
    # --spot-reclaims 0 turns the move off; a negative count is refused by argparse.
    code, out, _ = run_flow_cli(
        PAIRING_FLOW, ["plan", "--static", "--cdk-out", str(cdk_out), "--spot-reclaims", "0"]
    )
    assert code == 0 and "on reclaim:" not in out
    with pytest.raises(SystemExit) as refused:  # argparse's usage error: exit code 2
        run_flow_cli(
            PAIRING_FLOW, ["plan", "--static", "--cdk-out", str(cdk_out), "--spot-reclaims", "-1"]
        )
    assert refused.value.code == 2
    assert "--spot-reclaims: '-1' is not a whole number >= 0" in capsys.readouterr().err


def test_plan_json_through_the_batchwright_command(
    cdk_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = batchwright_main(
        ["plan", str(PAIRING_FLOW), "--json", "--static", "--cdk-out", str(cdk_out)]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == ["start", "featurize", "train", "export", "score", "end"]
    assert {r["step"]: r["platform"] for r in rows if r["backend"] == "batch"} == {
        "featurize": "EC2",
        "train": "SPOT",
        "export": "FARGATE",
        "score": "EC2",
    }
    assert all(r["verdict"] == "ok" for r in rows)


def test_plan_exit_code_2_when_a_step_is_refused(cdk_out: Path) -> None:
    code, out, _ = run_flow_cli(
        FLOWS / "refusal_flow.py", ["plan", "--json", "--static", "--cdk-out", str(cdk_out)]
    )
    assert code == 2
    rows = json.loads(out)
    assert sum(r["verdict"] != "ok" for r in rows) == 6
    code, out, _ = run_flow_cli(
        FLOWS / "refusal_flow.py", ["plan", "--static", "--cdk-out", str(cdk_out)]
    )
    assert code == 2 and "6 step(s) refused" in out and "REFUSED" in out


def test_plan_with_overrides(cdk_out: Path) -> None:
    code, out, _ = run_flow_cli(
        PAIRING_FLOW,
        ["plan", "--json", "--static", "--cdk-out", str(cdk_out), "--with", "batch:memory=16384"],
    )
    assert code == 0
    rows = {r["step"]: r for r in json.loads(out)}
    assert rows["featurize"]["job_definition"]["memory_mib"] == 16384
    # --with batch puts every step on Batch.
    code, out, _ = run_flow_cli(
        PAIRING_FLOW, ["plan", "--json", "--static", "--cdk-out", str(cdk_out), "--with", "batch"]
    )
    assert {r["backend"] for r in json.loads(out)} == {"batch"}


def test_batchwright_plan_needs_one_flow_class(tmp_path: Path) -> None:
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UserInputError, match="expected one FlowSpec subclass, found none"):
        load_flow_file(str(empty))


BROKEN_FLOW = (
    "from batchwright import FlowSpec, step\n"
    "\n"
    "\n"
    "class BrokenFlow(FlowSpec):\n"
    "    @step\n"
    "    def start(self)\n"
    "        self.next(self.end)\n"
)


@pytest.mark.parametrize(
    ("source", "helper", "message"),
    [
        (
            BROKEN_FLOW,
            "",
            "SyntaxError at line 6 (def start(self)): expected ':'. Fix it and plan again.",
        ),
        (
            "from batchwright import FlowSpec\nimport batchwright_tests_no_such_module\n",
            "",
            "ModuleNotFoundError at line 2 (import batchwright_tests_no_such_module): No module "
            "named 'batchwright_tests_no_such_module'. Fix the import, or install what it needs "
            "in the Python that runs batchwright ({python}), and plan again.",
        ),
        (
            "import batchwright_tests_broken_helper\n",
            "x = (\n",
            "SyntaxError at {helper}, line 1 (x = (): '(' was never closed. Fix it and plan again.",
        ),
    ],
    ids=["syntax error", "missing module", "syntax error in an imported module"],
)
def test_batchwright_plan_reports_a_flow_file_that_does_not_import(
    source: str, helper: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.py").write_text(source)
    helper_file = tmp_path / "batchwright_tests_broken_helper.py"
    if helper:
        helper_file.write_text(helper)
    code = batchwright_main(["plan", "broken.py"])  # the working directory is tmp_path
    assert code == 2
    expected = message.format(python=sys.executable, helper=helper_file)
    assert capsys.readouterr().err == f"error: plan broken.py: {expected}\n"


# --- run / resume --------------------------------------------------------------------------------


def _outputs(tmp_path: Path, env: EnvironmentDescriptor) -> Path:
    return write_outputs_file(tmp_path / "outputs.json", env)


def test_run_refuses_before_anything_runs(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    store = tmp_path / "store"
    code, out, err = run_flow_cli(
        FLOWS / "memory_flow.py",
        [
            "run",
            "--environment",
            STACK,
            "--outputs-file",
            str(_outputs(tmp_path, sample_env)),
            "--datastore-root",
            str(store),
        ],
    )
    assert code == 2
    assert "error: step 'big', @batch: queue='small' can never run it" in err
    assert "Traceback" not in err
    assert "started" not in out
    assert not store.exists()  # no run was recorded, no task ran


def test_run_without_an_environment_refuses_batch_steps(tmp_path: Path) -> None:
    # A copy outside the repository: no cdk.json above it, no variable names an environment.
    flow = tmp_path / "pairing_flow.py"
    flow.write_text(PAIRING_FLOW.read_text())
    code, _, err = run_flow_cli(flow, ["run"])
    assert code == 2
    assert "error: flow 'PairingFlow', step 'featurize', @batch: no queue" in err
    assert "--environment NAME" in err
    # ...while a named but missing one is reported with the places tried.
    code, _, err = run_flow_cli(flow, ["run", "--environment", "Nowhere"])
    assert code == 2
    assert "environment 'Nowhere' (named by --environment) was not found" in err


def test_run_batch_locally_plans_then_runs_on_this_machine(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    code, out, err = run_flow_cli(
        PAIRING_FLOW,
        ["run", "--run-batch-locally", "--outputs-file", str(_outputs(tmp_path, sample_env))],
    )
    assert code == 0, err
    assert "step 'train': planned for queue 'spot'; runs on the local backend" in out
    assert "step 'export': planned for queue 'fargate'; runs on the local backend" in out
    # Artifacts flowed local -> batch steps -> local.
    assert "weight=38.5 model_bytes=4 top=385" in out
    # The datastore stays local (the default folder in the working directory).
    assert (tmp_path / ".batchwright").is_dir()


def test_run_batch_locally_without_an_environment_says_what_it_checked(tmp_path: Path) -> None:
    # Away from the repository's cdk.json, nothing names an environment.
    flow = tmp_path / PAIRING_FLOW.name
    flow.write_text(PAIRING_FLOW.read_text())
    code, out, err = run_flow_cli(flow, ["run", "--run-batch-locally"])
    assert code == 0, err
    train = next(line for line in out.splitlines() if line.startswith("step 'train':"))
    assert "no environment: runs on the local backend (--run-batch-locally)" in train
    assert "checked: the options" in train and "not checked without an environment" in train


def _run_args(**values: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {
        "environment_name": None,
        "outputs_file": None,
        "cdk_out": None,
        "run_batch_locally": False,
        "datastore_root": None,
        "with_options": [],
        "spot_reclaims": 2,
    }
    return argparse.Namespace(**{**defaults, **values})


@pytest.fixture
def moto_batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


def test_run_uses_the_environment_datastore_then_checks_queues_live(
    tmp_path: Path, sample_env: EnvironmentDescriptor, moto_batch: None
) -> None:
    flow_class = load_flow_file(str(PAIRING_FLOW))
    command = FlowCommand(flow_class, str(PAIRING_FLOW), Console(io.StringIO(), io.StringIO()))
    args = _run_args(outputs_file=str(_outputs(tmp_path, sample_env)), environment_name=STACK)
    # With no datastore given, a run with @batch steps uses the environment's bucket...
    assert batch_datastore_root(None, command, sample_env) == sample_env.datastore_root
    assert batch_datastore_root("s3://mine/x", command, sample_env) == "s3://mine/x"
    # ...then the live check (in moto's Batch, where nothing is deployed) finds none of the
    # planned queues.
    with pytest.raises(PlanError) as caught:
        prepare_run(args, command, command.definition())
    assert "does not exist in this account and region" in str(caught.value)


def test_run_on_aws_with_a_local_datastore_is_refused(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    code, _, err = run_flow_cli(
        PAIRING_FLOW,
        [
            "run",
            "--outputs-file",
            str(_outputs(tmp_path, sample_env)),
            "--datastore-root",
            str(tmp_path / "local"),
        ],
    )
    assert code == 2
    assert "which a Batch job cannot reach" in err and "--datastore-root s3://" in err


def test_prepare_run_returns_the_plan_whose_policies_the_scheduler_runs(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    flow_class = load_flow_file(str(PAIRING_FLOW))
    command = FlowCommand(flow_class, str(PAIRING_FLOW), Console(io.StringIO(), io.StringIO()))
    args = _run_args(outputs_file=str(_outputs(tmp_path, sample_env)), run_batch_locally=True)
    setup = prepare_run(args, command, command.definition())
    assert setup.environment == sample_env
    assert setup.plan.ok and setup.plan.step("score").queue_key == "gpu"
    assert setup.datastore_root is None  # --run-batch-locally keeps the local default
    # --run-batch-locally: planned for the GPU queue, run by the local backend.
    policy = setup.plan.policies["score"]
    assert policy.backend == "local" and policy.batch is None


# --- jobs ----------------------------------------------------------------------------------------

UNREACHABLE = (
    "could not list the jobs of queue(s) q on AWS Batch (EndpointConnectionError: Could not "
    'connect to the endpoint URL: "http://127.0.0.1:9/v1/listjobs"). Check the AWS region, '
    "credentials and network (or AWS_ENDPOINT_URL for the local AWS), then try again."
)


def _one_attempt_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore gives up at once instead of backing off through 8 attempts."""
    from botocore.config import Config

    real = aws.client
    monkeypatch.setattr(
        aws,
        "client",
        lambda service, **_: real(service, config=Config(retries={"total_max_attempts": 1})),
    )


@pytest.mark.parametrize("argv", [["list"], ["kill", "--flow", "F"]])
def test_jobs_say_in_one_paragraph_that_aws_is_unreachable(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_attempt_per_call(monkeypatch)
    code = batchwright_main(["jobs", *argv, "--queue", "q"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: jobs {argv[0]}: {UNREACHABLE}\n"
    assert captured.out == ""


def test_jobs_kill_says_what_was_terminated_before_aws_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.stub import Stubber

    batch = aws.client("batch")
    stubber = Stubber(batch)
    for state in ACTIVE_STATES:
        found = [{"jobId": "j-1", "jobName": "start"}] if state == "RUNNING" else []
        stubber.add_response("list_jobs", {"jobSummaryList": found})
    job = {
        "jobId": "j-1",
        "jobName": "start",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "status": "RUNNING",
        "startedAt": 1,
        "jobDefinition": "def:1",
        "tags": {"batchwright:flow": "F", "batchwright:run": "1", "batchwright:step": "start"},
    }
    stubber.add_response("describe_jobs", {"jobs": [job]})
    stubber.add_client_error(
        "terminate_job", service_error_code="ClientException", service_message="not allowed"
    )
    monkeypatch.setattr(aws, "client", lambda service, **_: batch)
    with stubber:
        code = batchwright_main(["jobs", "kill", "--flow", "F", "--queue", "q"])
    assert code == 1
    assert capsys.readouterr().err == (
        "error: jobs kill: could not terminate job j-1 on AWS Batch (ClientException: not "
        "allowed); 0 of the 1 job(s) found were terminated before it. Check the AWS region, "
        "credentials and network (or AWS_ENDPOINT_URL for the local AWS), then try again.\n"
    )


# --- env -----------------------------------------------------------------------------------------


def test_env_show(cdk_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = batchwright_main(["env", "show", STACK, "--static", "--cdk-out", str(cdk_out)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"Environment {STACK}" in out
    assert "source:" in out and "cdk.out template" in out
    assert "region:" in out and "us-east-1" in out
    for key in ("cpu", "small", "spot", "fargate", "gpu", "neuron", "efa"):
        assert f"\n{key} " in out
    small = next(line for line in out.splitlines() if line.startswith("small "))
    assert small.split()[2:] == ["EC2", "none", "1", "16"]


def test_env_show_names_what_named_the_environment(
    tmp_path: Path,
    sample_env: EnvironmentDescriptor,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = str(_outputs(tmp_path, sample_env))
    assert batchwright_main(["env", "show", "--environment", STACK, "--outputs-file", outputs]) == 0
    assert "\n  named by:       --environment\n" in capsys.readouterr().out
    monkeypatch.setenv("BATCHWRIGHT_ENVIRONMENT", STACK)
    assert batchwright_main(["env", "show", "--outputs-file", outputs]) == 0
    assert "\n  named by:       $BATCHWRIGHT_ENVIRONMENT\n" in capsys.readouterr().out
    assert batchwright_main(["env", "show", STACK, "--outputs-file", outputs]) == 0
    assert "\n  named by:       NAME\n" in capsys.readouterr().out


def test_env_show_from_an_outputs_file(
    tmp_path: Path, sample_env: EnvironmentDescriptor, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = _outputs(tmp_path, sample_env)
    code = batchwright_main(["env", "show", STACK, "--outputs-file", str(outputs), "--json"])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == f"outputs file {outputs} (stack {STACK})"
    assert shown["queues"] == sample_env.to_dict()["queues"]


def test_export_metaflow_reuses_the_stack_output(tmp_path: Path, cdk_out: Path) -> None:
    target = tmp_path / "profile.json"
    code = batchwright_main(
        ["env", "export-metaflow", STACK, "--static", "--cdk-out", str(cdk_out), "-o", str(target)]
    )
    assert code == 0
    profile = json.loads(target.read_text())
    assert set(profile) >= METAFLOW_KEYS
    assert profile["METAFLOW_DEFAULT_DATASTORE"] == "s3"


def test_export_metaflow_builds_it_from_the_descriptor(
    tmp_path: Path, sample_env: EnvironmentDescriptor, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_env = deployed(sample_env)
    outputs = _outputs(tmp_path, sample_env)  # no BatchwrightMetaflowProfile output in it
    code = batchwright_main(
        ["env", "export-metaflow", STACK, "--outputs-file", str(outputs), "--queue", "spot"]
    )
    assert code == 0
    profile = json.loads(capsys.readouterr().out)
    assert set(profile) >= METAFLOW_KEYS
    spot = sample_env.queue("spot")
    assert spot is not None and profile["METAFLOW_BATCH_JOB_QUEUE"] == spot.arn
    assert profile["METAFLOW_DATASTORE_SYSROOT_S3"] == f"{sample_env.datastore_root}/metaflow"
    assert profile["METAFLOW_DATATOOLS_S3ROOT"] == f"{sample_env.datastore_root}/data"
    assert profile["METAFLOW_ECS_S3_ACCESS_IAM_ROLE"] == sample_env.job_role_arn
    assert profile["METAFLOW_BATCH_CONTAINER_REGISTRY"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com"  # the job image's repository
    )


def test_export_metaflow_unknown_queue(
    tmp_path: Path, sample_env: EnvironmentDescriptor, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = _outputs(tmp_path, sample_env)
    code = batchwright_main(
        ["env", "export-metaflow", STACK, "--outputs-file", str(outputs), "--queue", "nope"]
    )
    assert code == 2
    assert "has no such queue" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly(cdk_out: Path, tmp_path: Path) -> None:
    # `batchwright env show | head -1`: the reader closes the pipe before the command
    # writes; the command ends with SIGPIPE's exit code and no traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "batchwright",
                "env",
                "show",
                STACK,
                "--static",
                "--cdk-out",
                str(cdk_out),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
