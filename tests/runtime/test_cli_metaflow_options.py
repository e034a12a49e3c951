"""The command lines of Metaflow's core test harness, run through a flow's own CLI.

``test/core/run_tests.py`` and ``metaflow_test/cli_check.py`` start flows as::

    python test_flow.py --metadata=local --datastore=local --environment=local \\
        --event-logger=nullSidecarLogger --no-pylint --quiet run --run-id-file run-id \\
        --max-workers=50 --max-num-splits=10000 --tag='...' --tag='...'
    python test_flow.py <top options> resume [STEP] --run-id-file run-id ...
    python test_flow.py <top options> dump --max-value-size N --private --include NAME \\
        --file FILE RUN_ID/STEP
    python test_flow.py <top options> --quiet logs --stdout RUN_ID/STEP

Each option before the subcommand is accepted with its meaning or refused (exit 2, one
paragraph); ``dump`` writes Metaflow's pickle; ``resume STEP`` and ``--run-id-file`` work
as the harness uses them.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._support import FlowRun, RunFlow, write_flow

TOP_OPTIONS = (
    "--metadata=local",
    "--datastore=local",
    "--environment=local",
    "--event-logger=nullSidecarLogger",
    "--no-pylint",
)
RUN_OPTIONS = (
    "--max-workers=50",
    "--max-num-splits=10000",
    "--tag=\u523a\u8eab means sashimi",
    "--tag=multiple tags should be ok",
)

DUMP_FLOW = """
from batchwright import FlowSpec, step


class DumpFlow(FlowSpec):
    @step
    def start(self):
        self.alpha = 1
        self.big = "x" * 2000
        self.items = ["a", "b", "c"]
        print("hello from start")
        print("second line")
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.letter = self.input.upper()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.letters = sorted(i.letter for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DumpFlow()
"""

RESUME_FLOW = """
import os

from batchwright import FlowSpec, step


class ResumeFlow(FlowSpec):
    @step
    def start(self):
        self.value = 1
        self.next(self.middle)

    @step
    def middle(self):
        if not os.path.exists(os.environ["RESUME_MARKER"]):
            raise RuntimeError("the first attempt fails")
        self.value += 1
        self.next(self.end)

    @step
    def end(self):
        print("value", self.value)


if __name__ == "__main__":
    ResumeFlow()
"""


def _wide_flow(width: int) -> str:
    return textwrap.dedent(
        f"""
        from batchwright import FlowSpec, step


        class WideFlow(FlowSpec):
            @step
            def start(self):
                self.items = list(range({width}))
                self.next(self.work, foreach="items")

            @step
            def work(self):
                self.next(self.join)

            @step
            def join(self, inputs):
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            WideFlow()
        """
    )


def _harness_run(run_flow: RunFlow, flow_file: Path, run_id_file: Path, *extra: str) -> FlowRun:
    """``run`` as run_tests.py starts it (--quiet included)."""
    return run_flow(
        flow_file,
        *TOP_OPTIONS,
        "--quiet",
        "run",
        *extra,
        "--run-id-file",
        str(run_id_file),
        *RUN_OPTIONS,
    )


def _assert_refused(result: FlowRun, *fragments: str) -> str:
    """Exit 2, one paragraph on stderr naming ``fragments``, no traceback; the error."""
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output
    return lines[0]


@pytest.fixture
def dump_run(run_flow: RunFlow, tmp_path: Path) -> tuple[Path, str]:
    """DumpFlow run once, the harness's way: its file and run id."""
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    run_id_file = tmp_path / "run-id"
    ran = _harness_run(run_flow, flow_file, run_id_file)
    assert ran.returncode == 0, ran.output
    return flow_file, run_id_file.read_text()


def _start_task(datastore: Path, run_id: str) -> str:
    from batchwright.datastore import open_datastore

    (task_id,) = open_datastore("DumpFlow", str(datastore)).list_tasks(run_id, "start")
    return task_id


def _dump_file(
    run_flow: RunFlow, flow_file: Path, target: Path, pathspec: str, *options: str
) -> dict[str, dict[str, object]]:
    """``dump --file`` with the harness's options (no --quiet), unpickled."""
    done = run_flow(flow_file, *TOP_OPTIONS, "dump", *options, "--file", str(target), pathspec)
    assert done.returncode == 0, done.output
    with target.open("rb") as stream:
        loaded: dict[str, dict[str, object]] = pickle.load(stream)
    return loaded


# --- run: the harness's command line --------------------------------------------------------


def test_the_harness_run_command_line_runs_tags_and_writes_the_run_id(
    run_flow: RunFlow, tmp_path: Path, datastore: Path
) -> None:
    from batchwright.datastore import open_datastore

    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    run_id_file = tmp_path / "run-id"
    ran = _harness_run(run_flow, flow_file, run_id_file)
    assert ran.returncode == 0, ran.output
    run_id = run_id_file.read_text()
    assert run_id.isdigit()
    # --datastore=local is $BATCHWRIGHT_DATASTORE_ROOT (the test's private folder).
    record = open_datastore("DumpFlow", str(datastore)).read_run(run_id)
    assert record is not None
    assert set(record["tags"]) == {"\u523a\u8eab means sashimi", "multiple tags should be ok"}
    # --quiet keeps the run's task lines and the tasks' own output.
    assert f"[DumpFlow/{run_id}/start/" in ran.stdout
    assert "hello from start" in ran.stdout


def test_every_accepted_value_before_the_subcommand(run_flow: RunFlow, tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    checked = run_flow(
        flow_file,
        "--metadata",
        "local",
        "--datastore",
        "local",
        "--environment",
        "local",
        "--event-logger=nullSidecarLogger",
        "--monitor=nullSidecarMonitor",
        "--no-pylint",
        "--not-quiet",
        "check",
    )
    assert checked.returncode == 0, checked.output
    assert "Flow DumpFlow is valid: 4 steps." in checked.stdout


# --- refused values ---------------------------------------------------------------------------

REFUSED = {
    "metadata service": (
        ["--metadata=service", "run"],
        [
            "--metadata='service' is Metaflow's metadata service; batchwright has none",
            "kept with its artifacts in the datastore",
            "pass --metadata=local",
        ],
    ),
    "metadata other": (
        ["--metadata=mine", "run"],
        ["--metadata='mine' is not a value batchwright takes (it takes 'local')"],
    ),
    "datastore azure": (
        ["--datastore=azure", "run"],
        [
            "--datastore='azure' is not a value batchwright takes (it takes 'local' or 's3')",
            "pass --datastore=local or --datastore=s3",
        ],
    ),
    "environment conda": (
        ["--environment=conda", "run"],
        ["--environment='conda' asks Metaflow to build a Python environment", "@batch(image=...)"],
    ),
    "environment pypi": (["--environment=pypi", "run"], ["--environment='pypi'", "@batch(image="]),
    "environment uv": (["--environment", "uv", "run"], ["--environment='uv'", "@batch(image="]),
    "stack name and no subcommand": (
        ["--environment=MyStack"],
        ["--environment goes after the subcommand: python dump_flow.py run --environment=MyStack"],
    ),
    "event logger": (
        ["--event-logger=debugLogger", "run"],
        ["--event-logger='debugLogger'", "runs no event-logger sidecar"],
    ),
    "monitor": (
        ["--monitor=debugMonitor", "run"],
        ["--monitor='debugMonitor'", "runs no monitor sidecar"],
    ),
    "local datastore with an S3 root": (
        ["--datastore=local", "--datastore-root", "s3://bucket/runs", "run"],
        [
            "--datastore=local --datastore-root s3://bucket/runs: the root is an S3 root",
            "asks for a local folder",
        ],
    ),
    "S3 datastore with a local root variable": (
        ["--datastore=s3", "run"],
        ["--datastore=s3: $BATCHWRIGHT_DATASTORE_ROOT names", "which is not an S3 root"],
    ),
    "two roots": (
        ["--datastore-root", "one", "run", "--datastore-root", "two"],
        ["--datastore-root is given twice: one before the subcommand and two after it"],
    ),
    "stack name before the subcommand": (
        ["--environment", "MyStack", "run"],
        ["--environment goes after the subcommand: python dump_flow.py run --environment MyStack"],
    ),
    "stack name before a subcommand without --environment": (
        ["--environment=MyStack", "check"],
        ["--environment is an option of run, resume and plan, not of check"],
    ),
}


@pytest.mark.parametrize(("argv", "fragments"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_value_before_the_subcommand_says_why_and_what_to_do(
    argv: list[str], fragments: list[str], run_flow: RunFlow, tmp_path: Path, datastore: Path
) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    _assert_refused(run_flow(flow_file, *argv), *fragments)
    assert not datastore.exists() and not (tmp_path / ".batchwright").exists()


def test_a_misplaced_option_carries_the_top_level_datastore_root_along(
    run_flow: RunFlow, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    error = _assert_refused(run_flow(flow_file, "--datastore-root", "here", "--tag", "x", "run"))
    assert error == (
        "error: --tag goes after the subcommand: python dump_flow.py run --datastore-root here "
        "--tag x"
    )


# --- the datastore options ------------------------------------------------------------------


def test_datastore_root_before_the_subcommand_is_where_the_run_goes(
    run_flow: RunFlow, tmp_path: Path, datastore: Path
) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    elsewhere = tmp_path / "elsewhere"
    run_id_file = tmp_path / "run-id"
    ran = run_flow(
        flow_file, "--datastore-root", str(elsewhere), "run", "--run-id-file", str(run_id_file)
    )
    assert ran.returncode == 0, ran.output
    run_id = run_id_file.read_text()
    assert (elsewhere / "DumpFlow" / "runs" / run_id / "run.json").is_file()
    assert not datastore.exists()
    # The same root is where dump and logs read it (the variable points elsewhere).
    dumped = run_flow(flow_file, "--datastore-root", str(elsewhere), "dump", f"{run_id}/start")
    assert dumped.returncode == 0 and "alpha [size: " in dumped.stdout, dumped.output


def _cli(flow_file: Path, *args: str, env: dict[str, str]) -> FlowRun:
    done = subprocess.run(
        [sys.executable, str(flow_file), *args],
        cwd=flow_file.parent,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return FlowRun(done.returncode, done.stdout, done.stderr, None)


def test_datastore_s3_keeps_the_run_in_the_s3_root(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    env = {**os.environ, "BATCHWRIGHT_DATASTORE_ROOT": "s3://runs/team"}
    run_id_file = tmp_path / "run-id"
    ran = _cli(flow_file, "--datastore=s3", "run", "--run-id-file", str(run_id_file), env=env)
    assert ran.returncode == 0, ran.output
    run_id = run_id_file.read_text()
    listed = boto3.client("s3").list_objects_v2(
        Bucket="runs", Prefix=f"team/DumpFlow/runs/{run_id}/"
    )
    assert listed.get("KeyCount", 0) > 0
    assert not (tmp_path / ".batchwright").exists()
    target = tmp_path / "artifacts.pkl"
    dumped = _cli(
        flow_file,
        "--datastore=s3",
        "dump",
        "--include",
        "alpha",
        "--file",
        str(target),
        f"{run_id}/start",
        env=env,
    )
    assert dumped.returncode == 0, dumped.output
    with target.open("rb") as stream:
        assert list(pickle.load(stream).values()) == [{"alpha": 1}]


def test_datastore_s3_without_a_known_root_is_refused(tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    # No root, no environment and no AWS credentials: nothing names an S3 datastore.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "BATCHWRIGHT_"))
    }
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )
    refused = _cli(flow_file, "--datastore=s3", "run", env=env)
    _assert_refused(
        refused,
        "--datastore=s3: no S3 datastore root is known",
        "Pass --datastore-root s3://BUCKET/PREFIX",
    )
    assert not (tmp_path / ".batchwright").exists()


# --- --quiet ---------------------------------------------------------------------------------


def test_quiet_drops_the_fan_out_summary_but_not_the_run_lines(
    run_flow: RunFlow, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "wide_flow", _wide_flow(40))
    loud = run_flow(flow_file, "run", "--max-workers", "8")
    quiet = run_flow(flow_file, "--quiet", "run", "--max-workers", "8")
    assert loud.returncode == 0 and quiet.returncode == 0, loud.output + quiet.output
    assert "/work] 40 tasks: 40 done" in loud.stdout
    assert " tasks: " not in quiet.stdout
    assert "Run WideFlow/" in quiet.stdout and "/start/1] finished" in quiet.stdout


def test_quiet_drops_the_check_message(run_flow: RunFlow, tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "dump_flow", DUMP_FLOW)
    checked = run_flow(flow_file, *TOP_OPTIONS, "--quiet", "check")
    assert checked.returncode == 0, checked.output
    assert checked.stdout == ""


def test_quiet_logs_print_the_bare_log(
    run_flow: RunFlow, dump_run: tuple[Path, str], datastore: Path
) -> None:
    flow_file, run_id = dump_run
    quiet = run_flow(flow_file, *TOP_OPTIONS, "--quiet", "logs", "--stdout", f"{run_id}/start")
    assert quiet.returncode == 0, quiet.output
    assert quiet.stdout == "hello from start\nsecond line\n"
    loud = run_flow(flow_file, *TOP_OPTIONS, "logs", "--stdout", f"{run_id}/start")
    task = _start_task(datastore, run_id)
    assert f"[DumpFlow/{run_id}/start/{task}] hello from start\n" in loud.stdout


# --- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["middle", None], ids=["resume STEP", "resume"])
def test_the_harness_resume_command_line_writes_the_new_run_id(
    step: str | None, run_flow: RunFlow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("RESUME_MARKER", str(marker))
    flow_file = write_flow(tmp_path, "resume_flow", RESUME_FLOW)
    run_id_file = tmp_path / "run-id"
    failed = _harness_run(run_flow, flow_file, run_id_file)
    assert failed.returncode == 1, failed.output
    origin = run_id_file.read_text()
    marker.touch()
    resumed = run_flow(
        flow_file,
        *TOP_OPTIONS,
        "--quiet",
        "resume",
        *([step] if step else []),
        "--run-id-file",
        str(run_id_file),
        *RUN_OPTIONS,
    )
    assert resumed.returncode == 0, resumed.output
    new = run_id_file.read_text()
    assert new != origin and new.isdigit()
    assert f"resuming run {origin}" in resumed.stdout
    assert f"[ResumeFlow/{new}/start/1] reused from ResumeFlow/{origin}/start/1" in resumed.stdout
    logs = run_flow(flow_file, *TOP_OPTIONS, "--quiet", "logs", "--stdout", f"{new}/end")
    assert logs.stdout == "value 2\n"


def test_resume_step_reruns_that_step_even_when_it_finished(
    run_flow: RunFlow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    monkeypatch.setenv("RESUME_MARKER", str(marker))
    flow_file = write_flow(tmp_path, "resume_flow", RESUME_FLOW)
    run_id_file = tmp_path / "run-id"
    assert _harness_run(run_flow, flow_file, run_id_file).returncode == 0
    origin = run_id_file.read_text()
    resumed = run_flow(
        flow_file, *TOP_OPTIONS, "resume", "start", "--run-id-file", str(run_id_file)
    )
    assert resumed.returncode == 0, resumed.output
    new = run_id_file.read_text()
    assert "reused from" not in resumed.stdout
    assert f"[ResumeFlow/{new}/start/" in resumed.stdout and new != origin


# --- dump ------------------------------------------------------------------------------------


def test_dump_file_is_metaflows_pickle(
    run_flow: RunFlow, dump_run: tuple[Path, str], datastore: Path, tmp_path: Path
) -> None:
    flow_file, run_id = dump_run
    task = _start_task(datastore, run_id)
    everything = _dump_file(
        run_flow, flow_file, tmp_path / "all.pkl", f"{run_id}/start", "--max-value-size", "1"
    )
    # Keyed by RUN_ID/STEP/TASK; --file writes values whatever --max-value-size says.
    assert everything == {
        f"{run_id}/start/{task}": {"alpha": 1, "big": "x" * 2000, "items": ["a", "b", "c"]}
    }
    # The harness's own options; the pathspec may name the flow and the task.
    included = _dump_file(
        run_flow,
        flow_file,
        tmp_path / "one.pkl",
        f"DumpFlow/{run_id}/start/{task}",
        "--max-value-size",
        "100000000000",
        "--private",
        "--include",
        "alpha",
    )
    assert included == {f"{run_id}/start/{task}": {"alpha": 1}}
    two = _dump_file(
        run_flow, flow_file, tmp_path / "two.pkl", f"{run_id}/start", "--include", "alpha,items"
    )
    assert two == {f"{run_id}/start/{task}": {"alpha": 1, "items": ["a", "b", "c"]}}
    repeated = _dump_file(
        run_flow,
        flow_file,
        tmp_path / "three.pkl",
        f"{run_id}/start",
        "--include",
        "alpha",
        "--include",
        "big",
    )
    assert set(repeated[f"{run_id}/start/{task}"]) == {"alpha", "big"}


def test_dump_of_a_foreach_step_has_a_key_per_task(
    run_flow: RunFlow, dump_run: tuple[Path, str], datastore: Path, tmp_path: Path
) -> None:
    from batchwright.datastore import open_datastore

    flow_file, run_id = dump_run
    tasks = open_datastore("DumpFlow", str(datastore)).list_tasks(run_id, "fan")
    assert len(tasks) == 3
    dumped = _dump_file(
        run_flow, flow_file, tmp_path / "fan.pkl", f"{run_id}/fan", "--include", "letter"
    )
    assert set(dumped) == {f"{run_id}/fan/{task}" for task in tasks}
    assert sorted(values["letter"] for values in dumped.values()) == ["A", "B", "C"]  # type: ignore[type-var]


def test_dump_private_adds_names_starting_with_an_underscore(
    run_flow: RunFlow, dump_run: tuple[Path, str], datastore: Path, tmp_path: Path
) -> None:
    from batchwright.datastore import open_datastore

    flow_file, run_id = dump_run
    task = _start_task(datastore, run_id)
    # A private artifact, as a Metaflow task stores them (_foreach_stack, ...).
    store = open_datastore("DumpFlow", str(datastore))
    metadata = store.read_metadata(run_id, "start", task)
    assert metadata is not None
    metadata["artifacts"]["_hidden"] = store.save({"secret": True})
    store.write_metadata(run_id, "start", task, int(metadata["attempt"]), metadata)
    key = f"{run_id}/start/{task}"
    public = _dump_file(run_flow, flow_file, tmp_path / "public.pkl", f"{run_id}/start")
    assert "_hidden" not in public[key] and "alpha" in public[key]
    private = _dump_file(
        run_flow, flow_file, tmp_path / "private.pkl", f"{run_id}/start", "--private"
    )
    assert private[key]["_hidden"] == {"secret": True} and "alpha" in private[key]
    # --include alone does not reach a private name; a notice says what to add.
    shown = run_flow(flow_file, "dump", "--include", "_hidden", f"{run_id}/start")
    assert shown.returncode == 0, shown.output
    assert "_hidden [size:" not in shown.stdout
    assert "--include _hidden: nothing dumped" in shown.stdout and "add --private" in shown.stdout


def test_dump_prints_the_values_within_max_value_size(
    run_flow: RunFlow, dump_run: tuple[Path, str], datastore: Path
) -> None:
    flow_file, run_id = dump_run
    task = _start_task(datastore, run_id)
    shown = run_flow(flow_file, *TOP_OPTIONS, "dump", f"{run_id}/start")
    assert shown.returncode == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Artifacts of task DumpFlow/{run_id}/start/{task}:"
    assert lines[1].startswith("alpha [size: ") and lines[1].endswith(" type: int] = 1")
    assert lines[2].startswith("big [size: 20")  # 2000 characters and the pickle's own
    assert lines[2].endswith("<not shown: its pickle is larger than --max-value-size 1000>")
    assert lines[3].endswith("type: list] = ['a', 'b', 'c']")
    assert len(lines) == 4
    wide = run_flow(flow_file, "--quiet", "dump", "--max-value-size", "5000", f"{run_id}/start")
    assert wide.returncode == 0, wide.output
    assert "Artifacts of task" not in wide.stdout  # --quiet drops the header
    assert f"type: str] = '{'x' * 2000}'" in wide.stdout
    names = run_flow(flow_file, "dump", "--max-value-size", "0", f"{run_id}/start/{task}")
    assert [line.split(" [")[0] for line in names.stdout.splitlines()[1:]] == [
        "alpha",
        "big",
        "items",
    ]
    assert " = " not in names.stdout


def test_dump_of_a_task_that_did_not_finish_is_refused(
    run_flow: RunFlow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESUME_MARKER", str(tmp_path / "never"))
    flow_file = write_flow(tmp_path, "resume_flow", RESUME_FLOW)
    run_id_file = tmp_path / "run-id"
    assert _harness_run(run_flow, flow_file, run_id_file).returncode == 1
    run_id = run_id_file.read_text()
    refused = run_flow(flow_file, "dump", f"{run_id}/middle")
    _assert_refused(
        refused,
        f"dump {run_id}/middle: task 2 of ResumeFlow/{run_id}/middle did not finish, so it "
        "holds no artifacts. See what happened with: logs",
    )


BAD_PATHSPECS = {
    "no step": ("{run}", ["expected RUN_ID/STEP or RUN_ID/STEP/TASK"]),
    "too long": ("{run}/start/1/2/3", ["expected RUN_ID/STEP or RUN_ID/STEP/TASK"]),
    "no run": ("999/start", ["flow 'DumpFlow' has no run '999' in"]),
    "no step of the run": (
        "{run}/nosuch",
        ["has no tasks for step 'nosuch'", "(its steps: ", "start"],
    ),
    "no task": ("{run}/start/77", ["has no task '77'", "or dump {run}/start for the artifacts"]),
    "another flow": ("OtherFlow/{run}/start", ["the pathspec names flow 'OtherFlow'"]),
    "negative size": ("--max-value-size=-1 {run}/start", ["--max-value-size=-1 is below 0"]),
}


@pytest.mark.parametrize(("pathspec", "fragments"), BAD_PATHSPECS.values(), ids=BAD_PATHSPECS)
def test_dump_of_a_bad_pathspec_is_refused(
    pathspec: str, fragments: list[str], run_flow: RunFlow, dump_run: tuple[Path, str]
) -> None:
    flow_file, run_id = dump_run
    words = pathspec.format(run=run_id).split()
    _assert_refused(run_flow(flow_file, "dump", *words), *(f.format(run=run_id) for f in fragments))


def test_dump_file_in_a_missing_folder_is_refused(
    run_flow: RunFlow, dump_run: tuple[Path, str], tmp_path: Path
) -> None:
    flow_file, run_id = dump_run
    target = tmp_path / "missing" / "out.pkl"
    refused = run_flow(flow_file, "dump", "--file", str(target), f"{run_id}/start")
    _assert_refused(refused, f"dump --file {target}: the file cannot be written")
