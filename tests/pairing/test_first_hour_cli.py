"""A new user's first hour on the command line: ``--cdk-out`` on run/resume, a resume hint that
works when pasted, ``--tag``, ``--no-pylint``, the flow's own docstring in ``--help``, and
``env export-metaflow`` refusing (or labelling) unresolved fields."""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from batchwright.cli import main as batchwright_main
from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.cli.flow import build_parser, resume_parser
from batchwright.cli.flow import main as flow_main
from batchwright.cli.resume_hint import resume_command
from batchwright.console import Console
from batchwright.datastore import open_datastore
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.identity import current_user
from batchwright.scheduler import RunOptions

from .conftest import (
    FLOWS,
    REPO,
    STACK,
    deployed,
    isolate_from_aws,
    run_flow_cli,
    write_outputs_file,
)

FAILING_FLOW = FLOWS / "first_hour_failing_flow.py"
UNDOCUMENTED_FLOW = FLOWS / "first_hour_undocumented_flow.py"
PAIRING_FLOW = REPO / "sample_app" / "flows" / "pairing_flow.py"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def _shell(words: list[str], cwd: Path, marker: Path) -> subprocess.CompletedProcess[str]:
    """``python FLOW ...`` in a fresh process, as a user types it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]),
        "FIRST_HOUR_MARKER": str(marker),
        "NO_COLOR": "1",
    }
    command = [sys.executable if words[0] == "python" else words[0], *words[1:]]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


# --- the resume hint, pasted ------------------------------------------------------------------


def test_the_resume_hint_works_when_pasted(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    work = tmp_path / "work"
    (work / "flows").mkdir(parents=True)
    flow = work / "flows" / FAILING_FLOW.name
    flow.write_text(FAILING_FLOW.read_text())
    outputs = write_outputs_file(tmp_path / "outputs.json", sample_env)
    store = tmp_path / "store"
    marker = tmp_path / "marker"
    run = _shell(
        [
            "python",
            "flows/first_hour_failing_flow.py",
            "run",
            "--run-batch-locally",
            "--environment",
            STACK,
            "--outputs-file",
            "../outputs.json",
            "--datastore-root",
            str(store),
            "--max-workers",
            "3",
            "--with",
            "retry:times=0",
            "--tag",
            "team-a",
            "--tag",
            "first hour",
            "--outage-limit",
            "120",
            "--no-pylint",
            "--size",
            "5",
        ],
        work,
        marker,
    )
    assert run.returncode == 1, run.stderr
    run_id = re.search(r"Run FirstHourFailingFlow/(\d+) started", run.stdout)
    assert run_id is not None, run.stdout
    hint = run.stderr.split("continue with: ", 1)[1].strip()
    # Every option the run used, resolved; the parameter is not given (resume reuses it).
    assert hint == (
        f"python flows/first_hour_failing_flow.py resume {run_id.group(1)} --max-workers 3 "
        f"--with retry:times=0 --tag team-a --tag 'first hour' --environment {STACK} "
        f"--outputs-file {outputs} --run-batch-locally --outage-limit 120 "
        f"--datastore-root {store}"
    )
    marker.touch()
    resumed = _shell(shlex.split(hint), work, marker)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {run_id.group(1)}" in resumed.stdout
    assert "/start/1] reused from" in resumed.stdout
    assert "total=10" in resumed.stdout  # size=5 came from the stored parameters


def test_the_resume_hint_pins_the_environment_found_and_uses_cdk_out(
    tmp_path: Path, cdk_out: Path
) -> None:
    # Nothing names the environment: --cdk-out holds only one, and run and resume take it.
    flow = tmp_path / FAILING_FLOW.name
    flow.write_text(FAILING_FLOW.read_text())
    marker = tmp_path / "marker"
    run = _shell(
        ["python", flow.name, "run", "--run-batch-locally", "--cdk-out", str(cdk_out)],
        tmp_path,
        marker,
    )
    assert run.returncode == 1, run.stderr
    assert (
        f"Environment {STACK} (the only batchwright stack in cloud assembly {cdk_out}): "
        "cdk.out template" in run.stdout
    )
    hint = run.stderr.split("continue with: ", 1)[1].strip()
    run_id = hint.split()[3]
    assert hint == (
        f"python {flow.name} resume {run_id} --environment {STACK} --cdk-out {cdk_out} "
        "--run-batch-locally"
    )
    marker.touch()
    resumed = _shell(shlex.split(hint), tmp_path, marker)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Environment {STACK}: cdk.out template" in resumed.stdout


# --- --tag ----------------------------------------------------------------------------------


def test_tags_and_the_user_are_in_the_run_record(tmp_path: Path, cdk_out: Path) -> None:
    flow = tmp_path / UNDOCUMENTED_FLOW.name
    flow.write_text(UNDOCUMENTED_FLOW.read_text())
    store = tmp_path / "store"
    code, _, err = run_flow_cli(
        flow,
        ["run", "--tag", "b", "--tag", "a", "--tag", "b", "--datastore-root", str(store)],
    )
    assert code == 0, err
    datastore = open_datastore("FirstHourUndocumentedFlow", str(store))
    (run_id,) = datastore.list_runs()
    record = datastore.read_run(run_id)
    assert record is not None
    assert record["tags"] == ["a", "b"]
    assert record["user"] == getpass.getuser()
    # resume takes --tag too; its run carries its own.
    code, _, err = run_flow_cli(flow, ["resume", "--tag", "again", "--datastore-root", str(store)])
    assert code == 0, err
    resumed = [r for r in datastore.list_runs() if r != run_id]
    assert (datastore.read_run(resumed[0]) or {})["tags"] == ["again"]


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("", "is empty"),
        ("x" * 513, "is 513 characters long, more than 512"),
        ("two\nlines", "has a character that is not printable ('\\n')"),
    ],
)
def test_bad_tags_are_refused_before_anything_runs(tmp_path: Path, tag: str, problem: str) -> None:
    store = tmp_path / "store"
    code, _, err = run_flow_cli(
        UNDOCUMENTED_FLOW, ["run", "--tag", "fine", "--tag", tag, "--datastore-root", str(store)]
    )
    assert code == 2
    assert err == (
        f"error: run: --tag={tag!r} {problem}. Pass tags of 1 to 512 printable characters, "
        "e.g. --tag experiment-3.\n"
    )
    assert not store.exists()
    code, _, err = run_flow_cli(UNDOCUMENTED_FLOW, ["resume", "--tag", tag])
    assert code == 2 and err.startswith(f"error: resume: --tag={tag!r} {problem}.")


# --- --no-pylint ------------------------------------------------------------------------------


def test_no_pylint_is_accepted_as_metaflow_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert (
        run_flow_cli(UNDOCUMENTED_FLOW, ["--no-pylint", "run", "--datastore-root", store])[0] == 0
    )
    assert (
        run_flow_cli(UNDOCUMENTED_FLOW, ["run", "--no-pylint", "--datastore-root", store])[0] == 0
    )
    assert (
        run_flow_cli(UNDOCUMENTED_FLOW, ["resume", "--no-pylint", "--datastore-root", store])[0]
        == 0
    )
    code, out, _ = run_flow_cli(UNDOCUMENTED_FLOW, ["check", "--no-pylint"])
    assert code == 0 and "Flow FirstHourUndocumentedFlow is valid: 2 steps." in out
    flow_class = load_flow_file(str(UNDOCUMENTED_FLOW))
    for argv in (["--help"], ["run", "--help"], ["resume", "--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            flow_main(flow_class, argv)
        text = " ".join(capsys.readouterr().out.split())
        assert (
            "--no-pylint accepted for Metaflow habits and ignored: batchwright runs no pylint "
            "(its own graph and decorator checks always run)" in text
        ), argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--with", "batch", "run"],
            "--with goes after the subcommand: python flow.py run --with batch",
        ),
        (
            [
                "--no-pylint",
                "--tag",
                "nightly",
                "--datastore-root",
                "store",
                "run",
                "--max-workers",
                "2",
            ],
            "--tag goes after the subcommand: python flow.py --no-pylint run --tag nightly "
            "--datastore-root store --max-workers 2",
        ),
        (
            ["--environment", "Sample", "plan"],
            "--environment goes after the subcommand: python flow.py plan --environment Sample",
        ),
        (
            ["--tag", "x", "logs", "1/start"],
            "--tag is an option of run and resume, not of logs, and goes after the subcommand: "
            "python flow.py run --tag x",
        ),
    ],
    ids=["with", "tag among others", "environment", "option of another subcommand"],
)
def test_an_option_before_the_subcommand_says_where_it_goes(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.py"  # in the working directory, as a user types its name
    flow.write_text(UNDOCUMENTED_FLOW.read_text())
    code, out, err = run_flow_cli(flow, argv)
    assert code == 2
    assert (out, err) == ("", f"error: {message}\n")
    assert not (tmp_path / "store").exists() and not (tmp_path / ".batchwright").exists()


# --- --help -----------------------------------------------------------------------------------


def test_help_shows_the_flows_own_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        flow_main(load_flow_file(str(FAILING_FLOW)), ["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert (
        "\n\nFails in 'train' the first time; a resume after the marker exists finishes.\n\n"
        in text
    )
    with pytest.raises(SystemExit):
        flow_main(load_flow_file(str(UNDOCUMENTED_FLOW)), ["--help"])
    text = capsys.readouterr().out
    # No description at all: not FlowSpec's docstring, not a made-up sentence.
    assert text.split("\n\n")[1].startswith("positional arguments:")
    assert "FlowSpec" not in text


# --- env export-metaflow ----------------------------------------------------------------------

UNRESOLVED = {
    # The job image the stack builds is pushed to the account's bootstrap repository.
    "METAFLOW_BATCH_CONTAINER_IMAGE": "<Ref:AWS::AccountId> <Ref:AWS::URLSuffix> "
    "<Ref:AWS::AccountId>",
    "METAFLOW_BATCH_JOB_QUEUE": "<GetAtt:EnvironmentcpuQueue4C4CE61F.JobQueueArn>",
    "METAFLOW_DATASTORE_SYSROOT_S3": "<Ref:EnvironmentDatastoreBucket695EB659>",
    "METAFLOW_DATATOOLS_S3ROOT": "<Ref:EnvironmentDatastoreBucket695EB659>",
    "METAFLOW_ECS_FARGATE_EXECUTION_ROLE": "<GetAtt:EnvironmentExecutionRoleA0E74382.Arn>",
    "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": "<GetAtt:EnvironmentJobRole8BFEEDFC.Arn>",
}


def test_export_metaflow_refuses_unresolved_fields(
    tmp_path: Path, cdk_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "profile.json"
    code = batchwright_main(
        ["env", "export-metaflow", STACK, "--cdk-out", str(cdk_out), "-o", str(target)]
    )
    assert code == 2
    fields = ", ".join(f"{key} ({value})" for key, value in UNRESOLVED.items())
    assert capsys.readouterr().err == (
        f"error: env export-metaflow: environment '{STACK}' was read from cdk.out template "
        f"{cdk_out / (STACK + '.template.json')} (stack {STACK}, not deployed), so these "
        f"fields of its Metaflow profile are not known until it is deployed: {fields}. Deploy "
        f"it ('cdk deploy {STACK} --outputs-file cdk-outputs.json') and export again, or pass "
        "--outputs-file PATH of the deployed stack; --static writes the profile anyway, with "
        "these fields labelled unresolved.\n"
    )
    assert not target.exists()


def test_export_metaflow_static_labels_each_unresolved_field(
    tmp_path: Path, cdk_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = batchwright_main(
        ["env", "export-metaflow", STACK, "--static", "--cdk-out", str(cdk_out)]
    )
    assert code == 0
    captured = capsys.readouterr()
    profile = json.loads(captured.out)  # stdout stays the profile alone
    assert [line for line in captured.err.splitlines()] == [
        f"warning: {key} is unresolved: {value} is known only after 'cdk deploy {STACK}'; "
        "export again after deploying before using the profile"
        for key, value in UNRESOLVED.items()
    ]
    assert profile["METAFLOW_BATCH_JOB_QUEUE"] == UNRESOLVED["METAFLOW_BATCH_JOB_QUEUE"]


def test_export_metaflow_of_a_deployed_environment_says_nothing(
    tmp_path: Path, sample_env: EnvironmentDescriptor, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = write_outputs_file(tmp_path / "outputs.json", deployed(sample_env))
    code = batchwright_main(["env", "export-metaflow", "--outputs-file", str(outputs)])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "<" not in captured.out


def test_run_without_an_environment_says_where_it_looked(tmp_path: Path) -> None:
    flow = tmp_path / "pairing_flow.py"
    flow.write_text(PAIRING_FLOW.read_text())  # @batch steps that name no queue
    code, _, err = run_flow_cli(flow, ["run"])
    assert code == 2
    assert "error: flow 'PairingFlow', step 'featurize', @batch: no queue" in err
    assert err.rstrip("\n").endswith(
        f"No environment is named, and none was found: cloud assembly {tmp_path / 'cdk.out'}: "
        "none (no manifest.json); the account (SSM, CloudFormation): "
        "EndpointConnectionError: Could not connect to the endpoint URL: "
        '"http://127.0.0.1:9/".'
    )


def test_the_user_falls_back_to_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login_name() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_login_name)
    assert current_user() == "unknown"
    assert RunOptions(flow_file="f.py", datastore_root="/tmp/x").user == "unknown"


def test_the_resume_hint_carries_what_variables_chose(tmp_path: Path) -> None:
    flow_class = load_flow_file(str(FAILING_FLOW))
    command = FlowCommand(flow_class, str(FAILING_FLOW), Console())
    args = build_parser(command).parse_args(
        ["run", "--run-id-file", "id.txt", "--max-wait", "90.5", "--size", "7"]
    )
    environ = {
        "BATCHWRIGHT_DATASTORE_ROOT": "s3://bucket/runs",
        "BATCHWRIGHT_OUTPUTS_FILE": "outputs.json",
    }
    hint = resume_command(
        flow_file=str(FAILING_FLOW),
        run_id="17",
        args=args,
        resume_parser=resume_parser(command),
        environment_name=STACK,
        datastore_root="s3://bucket/runs",
        cwd=str(tmp_path),
        environ=environ,
    )
    # Not carried: --run-id-file (the caller's plumbing) and the parameter --size.
    assert hint == (
        f"python {FAILING_FLOW} resume 17 --environment {STACK} --outputs-file "
        f"{tmp_path / 'outputs.json'} --max-wait 90.5 --datastore-root s3://bucket/runs"
    )


def test_an_s3_datastore_without_a_bucket_is_refused_before_any_aws_call(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    outputs = write_outputs_file(tmp_path / "outputs.json", deployed(sample_env))
    flow = tmp_path / "pairing_flow.py"
    flow.write_text(PAIRING_FLOW.read_text())
    argv = ["run", "--outputs-file", str(outputs), "--datastore-root", "s3://"]
    code, _, err = run_flow_cli(flow, argv)
    # AWS is unreachable (isolate_from_aws): a live queue check would say so instead.
    assert code == 2
    assert err.rstrip("\n").endswith(
        "error: datastore root 's3://' names no bucket. Write it as s3://BUCKET[/PREFIX]."
    ), err
