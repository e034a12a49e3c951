"""The task entrypoint contract (version 2): its command line and its exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchwright.entrypoint import (
    EXIT_DO_NOT_RETRY,
    TASK_ENTRYPOINT_VERSION,
    DoNotRetry,
    TaskArguments,
    array_arguments,
    compact_list,
    expand_list,
    list_entry,
    parse_arguments,
)

from ._support import SAMPLE_FLOWS


def test_command_arguments_round_trip() -> None:
    arguments = TaskArguments(
        flow_file="/code/flow.py",
        flow="DemoFlow",
        step="work",
        run_id="17",
        task_id="4",
        datastore_root="s3://bucket/prefix",
        input_paths=("17/start/1", "17/start/2"),
        split_index=3,
        retry_count=1,
        max_retries=2,
        origin_run_id="9",
        with_options=("retry:times=2",),
    )
    argv = arguments.to_argv()
    assert argv[:2] == ["--contract-version", str(TASK_ENTRYPOINT_VERSION)]
    assert TASK_ENTRYPOINT_VERSION == 2
    assert "17/start/1,17/start/2" in argv
    assert parse_arguments(argv, {}) == arguments


def test_array_arguments_refuse_members_that_differ_beyond_id_and_index() -> None:
    first = TaskArguments("f.py", "F", "s", "1", "2", "/d", ("1/start/1",), 0)
    other_step = first._replace(step="t", task_id="3", split_index=1)
    with pytest.raises(ValueError, match="differ only in task id and split index"):
        array_arguments([first, other_step])
    members = [first, first._replace(task_id="3", split_index=1)]
    argv = array_arguments(members, "INDEX")
    assert parse_arguments(argv, {"INDEX": "1"}) == members[1]
    # Emulators set only AWS_BATCH_JOB_ID: the child's id suffix is its index.
    argv = array_arguments(members)
    assert parse_arguments(argv, {"AWS_BATCH_JOB_ID": "abc:0"}) == members[0]


# Runs of consecutive integers, a few odd values, numbers with leading zeros.
_ENTRIES = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 10**6), st.integers(1, 60)).map(
            lambda run: [str(run[0] + i) for i in range(run[1])]
        ),
        st.lists(st.sampled_from(["0", "007", "x", "10", "-3", "a-b"]), max_size=3),
    ),
    max_size=6,
).map(lambda chunks: [value for chunk in chunks for value in chunk])


@given(_ENTRIES)
def test_a_compact_list_keeps_every_entry_at_its_position(values: list[str]) -> None:
    listing = compact_list(values)
    assert [list_entry(listing, i) for i in range(len(values))] == values
    assert expand_list(listing) == values
    with pytest.raises(IndexError):
        list_entry(listing, len(values))
    with pytest.raises(IndexError):
        list_entry(listing, -1)


def test_compact_lists_refuse_values_they_could_not_tell_apart() -> None:
    assert compact_list(["2", "3", "4", "7", "8"]) == "2-4,7,8"
    for bad in (["5-7"], ["1,2"], [""]):
        with pytest.raises(ValueError, match="cannot be an entry"):
            compact_list(bad)


def test_a_ten_thousand_way_array_command_stays_small() -> None:
    first = TaskArguments("f.py", "F", "work", "17", "2", "s3://b/p", ("17/start/1",), 0)
    members = [first._replace(task_id=str(2 + i), split_index=i) for i in range(10_000)]
    argv = array_arguments(members)
    assert len(" ".join(argv)) < 400  # a plain list would be ~100 KB, over Batch's 30 KiB
    for index in (0, 4321, 9999):
        assert parse_arguments(argv, {"AWS_BATCH_JOB_ARRAY_INDEX": str(index)}) == members[index]


def _task(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    base = TaskArguments(
        flow_file=str(SAMPLE_FLOWS / "linear_flow.py"),
        flow="LinearFlow",
        step="transform",
        run_id="1",
        task_id="2",
        datastore_root=str(tmp_path),
        input_paths=("1/start/1",),
    ).to_argv()
    return subprocess.run(
        [sys.executable, "-m", "batchwright.task", *base, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wrong_contract_version_is_not_retryable(tmp_path: Path) -> None:
    done = _task(tmp_path, "--contract-version", "99")
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert "contract version 2, was called with 99" in done.stderr


def test_missing_input_is_not_retryable_and_writes_no_done_marker(tmp_path: Path) -> None:
    done = _task(tmp_path)
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert "input 1/start/1 of step 'transform' has no done marker" in done.stderr
    task = tmp_path / "LinearFlow" / "runs" / "1" / "transform" / "2"
    assert (task / "0" / "metadata.json").exists()
    assert not (task / "DONE").exists()


def test_array_form_selects_each_members_task(tmp_path: Path) -> None:
    from batchwright import Flow

    flow_file = SAMPLE_FLOWS / "foreach_flow.py"
    ran = subprocess.run(
        [sys.executable, str(flow_file), "run", "--datastore-root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    run = Flow("ForeachFlow", str(tmp_path)).latest_run
    assert run is not None
    start = f"{run.id}/start/{run['start'].task.id}"
    members = [
        TaskArguments(str(flow_file), "ForeachFlow", "per_letter", run.id, task_id, str(tmp_path),
                      (start,), split_index=index)
        for task_id, index in (("900", 0), ("901", 1), ("902", 2))
    ]  # fmt: skip
    args = array_arguments(members, "ARRAY_INDEX")
    done = subprocess.run(
        [sys.executable, "-m", "batchwright.task", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ARRAY_INDEX": "1"},
    )
    assert done.returncode == 0, done.stderr
    task = run["per_letter"]["901"]
    assert task.successful and task.data.letter == "b" and task.index == 1
    assert "900" not in [t.id for t in run["per_letter"]]

    bad = subprocess.run(
        [sys.executable, "-m", "batchwright.task", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ARRAY_INDEX": "7"},
    )
    assert bad.returncode == EXIT_DO_NOT_RETRY
    assert "$ARRAY_INDEX='7' does not select" in bad.stderr


def test_an_array_task_without_its_index_fails_clearly_and_is_not_retried(tmp_path: Path) -> None:
    members = [
        TaskArguments("f.py", "F", "s", "1", task_id, str(tmp_path), ("1/start/1",), index)
        for task_id, index in (("5", 0), ("6", 1))
    ]
    argv = array_arguments(members)
    # No AWS_BATCH_JOB_ARRAY_INDEX, and a job id without an ":<index>" suffix.
    for environ in ({}, {"AWS_BATCH_JOB_ID": "plain-job"}):
        with pytest.raises(DoNotRetry, match="does not select one of the task ids"):
            parse_arguments(argv, environ)
    done = subprocess.run(
        [sys.executable, "-m", "batchwright.task", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_BATCH_")},
    )
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert "AWS_BATCH_JOB_ARRAY_INDEX=None does not select" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_deployed_form_takes_run_attempt_and_item_from_the_environment() -> None:
    from batchwright.entrypoint import (
        EXECUTION_VARIABLE,
        RETRY_COUNT_VARIABLE,
        deployed_arguments,
    )

    argv = deployed_arguments(
        flow_file="flow.py",
        flow="DemoFlow",
        step="work",
        datastore_root="s3://bucket/prefix",
        max_retries=2,
        with_options=("retry:times=2",),
        array=True,
    )
    environ = {
        EXECUTION_VARIABLE: "1733260000000000",
        RETRY_COUNT_VARIABLE: "1",
        "AWS_BATCH_JOB_ARRAY_INDEX": "6",
    }
    parsed = parse_arguments(argv, environ)
    assert (parsed.run_id, parsed.task_id, parsed.split_index) == ("1733260000000000", "6", 6)
    assert (parsed.retry_count, parsed.max_retries, parsed.deployed) == (1, 2, True)
    assert parsed.with_options == ("retry:times=2",) and parsed.input_paths == ()
    # Outside a foreach: the step's one task; an emulator's job id gives the index too.
    single = parse_arguments(argv[: argv.index("--array-index-variable")], environ)
    assert (single.task_id, single.split_index) == ("1", None)
    no_index = {k: v for k, v in environ.items() if k != "AWS_BATCH_JOB_ARRAY_INDEX"}
    child = parse_arguments(argv, {**no_index, "AWS_BATCH_JOB_ID": "a1b2:3"})
    assert (child.task_id, child.split_index) == ("3", 3)
    with pytest.raises(DoNotRetry, match="is not an index"):
        parse_arguments(argv, {**environ, "AWS_BATCH_JOB_ARRAY_INDEX": ""})
    with pytest.raises(DoNotRetry, match="BATCHWRIGHT_EXECUTION"):
        parse_arguments(argv, {RETRY_COUNT_VARIABLE: "0"})


def test_the_deployed_form_refuses_what_it_derives() -> None:
    from batchwright.entrypoint import deployed_arguments

    argv = deployed_arguments(
        flow_file="flow.py", flow="DemoFlow", step="work", datastore_root="/d", max_retries=0
    )
    with pytest.raises(SystemExit) as refused:
        parse_arguments([*argv, "--run-id", "7"], {})
    assert refused.value.code == 2
    with pytest.raises(SystemExit):
        parse_arguments([a for a in argv if a != "--deployed"], {})
