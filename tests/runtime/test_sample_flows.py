"""Each example flow of sample_app/flows, run end to end and checked through the client."""

from __future__ import annotations

from pathlib import Path

from batchwright import Flow
from batchwright.datastore import open_datastore
from batchwright.lease import RunLease

from ._support import SAMPLE_FLOWS, RunFlow


def _ok(result: object) -> None:
    assert result.returncode == 0, result.output  # type: ignore[attr-defined]


def test_linear_flow(run_flow: RunFlow, datastore: Path) -> None:
    result = run_flow(SAMPLE_FLOWS / "linear_flow.py", "run")
    _ok(result)
    assert f"LinearFlow/{result.run_id} started" in result.stdout
    run = Flow("LinearFlow", str(datastore)).latest_run
    assert run is not None and run.id == result.run_id
    assert run.successful and run.finished_at is not None
    assert run.data.total == 1 + 4 + 9
    assert run["transform"].task.data.squares == [1, 4, 9]
    # Artifacts are inherited down the line.
    assert run["end"].task.data.numbers == [1, 2, 3]
    start = run["start"].task
    assert f"starting LinearFlow/{run.id}/start/{start.id}" in start.stdout
    # Echoed to the console with the task's pathspec as prefix.
    assert f"[LinearFlow/{run.id}/start/{start.id}] starting" in result.stdout


def test_identical_values_are_stored_once(run_flow: RunFlow, datastore: Path) -> None:
    _ok(run_flow(SAMPLE_FLOWS / "linear_flow.py", "run"))
    run = Flow("LinearFlow", str(datastore)).latest_run
    assert run is not None
    keys = {t["numbers"].key for s in run for t in s}
    assert len(keys) == 1
    stored = list((datastore / "LinearFlow" / "data").rglob("*"))
    blobs = [p for p in stored if p.is_file()]
    # numbers, squares, total: three distinct values, each stored once.
    assert len(blobs) == 3


def test_branch_join_flow(run_flow: RunFlow, datastore: Path) -> None:
    _ok(run_flow(SAMPLE_FLOWS / "branch_join_flow.py", "run"))
    run = Flow("BranchJoinFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    join = run["join"].task
    assert join.data.values == {"left": 20, "right": 11}
    assert join.data.total == 31
    # merge_artifacts took what the branches agree on and skipped the excluded one.
    assert join.data.base == 10 and join.data.side == "left"
    assert "value" not in join
    assert run.data.summary == "10: 31"


def test_foreach_with_nested_foreach(run_flow: RunFlow, datastore: Path) -> None:
    _ok(run_flow(SAMPLE_FLOWS / "foreach_flow.py", "run"))
    run = Flow("ForeachFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    assert run.data.all_pairs == ["a0", "b0", "b1", "c0", "c1", "c2"]
    assert run.data.by_letter == {"a": ["a0"], "b": ["b0", "b1"], "c": ["c0", "c1", "c2"]}
    assert run.data.count == 6
    assert len(run["per_letter"].tasks()) == 3
    assert len(run["per_number"].tasks()) == 6
    assert len(run["join_numbers"].tasks()) == 3
    assert sorted(t.data.letter_again for t in run["join_numbers"]) == ["a", "b", "c"]
    assert all(t.data.letter_again == t.data.letter for t in run["join_numbers"])
    assert sorted(t.index for t in run["per_letter"]) == [0, 1, 2]


def test_parameters_of_every_type(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("line one\nline two\n")
    result = run_flow(
        SAMPLE_FLOWS / "parameters_flow.py",
        "run",
        "--name", "ada",
        "--count", "5",
        "--ratio", "0.25",
        "--verbose",
        "--config", '{"depth": 3, "tags": ["x"]}',
        "--token", "secret-ish",
        "--notes", str(notes),
    )  # fmt: skip
    _ok(result)
    run = Flow("ParametersFlow", str(datastore)).latest_run
    assert run is not None
    echo = run["start"].task.data.echo
    assert echo == {
        "name": "ada",
        "count": 5,
        "ratio": 0.25,
        "verbose": True,
        "config": {"depth": 3, "tags": ["x"]},
        "label": "label-for-ParametersFlow",
        "token": "secret-ish",
        "notes": "line one\nline two\n",
    }
    assert run.data.doubled == 10


def test_parameter_defaults(run_flow: RunFlow, datastore: Path) -> None:
    _ok(run_flow(SAMPLE_FLOWS / "parameters_flow.py", "run", "--token", "t", "--verbose", "false"))
    run = Flow("ParametersFlow", str(datastore)).latest_run
    assert run is not None
    echo = run["start"].task.data.echo
    assert echo["name"] == "world" and echo["count"] == 2 and echo["ratio"] == 0.5
    assert echo["verbose"] is False and echo["config"] == {"depth": 1} and echo["notes"] is None


def test_retry_recovers_from_a_first_attempt_failure(run_flow: RunFlow, datastore: Path) -> None:
    result = run_flow(SAMPLE_FLOWS / "retry_flow.py", "run")
    _ok(result)
    assert "attempt 0 failed" in result.stderr
    run = Flow("RetryFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    flaky = run["flaky"].task
    assert flaky.data.attempt_that_worked == 1
    assert flaky.retry_count == 1
    assert "transient failure" not in flaky.stderr  # the final attempt's log


def test_catch_stores_the_exception(run_flow: RunFlow, datastore: Path) -> None:
    _ok(run_flow(SAMPLE_FLOWS / "catch_flow.py", "run"))
    run = Flow("CatchFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    assert run.data.failed is True
    assert run.data.failure_type == "builtins.ZeroDivisionError"
    caught = run["divide"].task.data.divide_failure
    assert "division by zero" in caught.exception
    assert "ZeroDivisionError" in caught.stacktrace
    assert "result" not in run["divide"].task


def test_timeout_stops_a_hung_step(run_flow: RunFlow, datastore: Path) -> None:
    result = run_flow(SAMPLE_FLOWS / "timeout_flow.py", "run", timeout=30)
    _ok(result)
    run = Flow("TimeoutFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    assert run.data.stopped_by == "batchwright.decorators.builtin.TimeoutException"
    assert "exceeded its @timeout of 1 seconds" in run["hang"].task.stderr


def test_timeout_without_catch_fails_the_run(run_flow: RunFlow, tmp_path: Path) -> None:
    flow = (
        (SAMPLE_FLOWS / "timeout_flow.py")
        .read_text()
        .replace('@catch(var="timeout_failure")\n    ', "")
    )
    flow = flow.replace("self.timeout_failure.type if self.timeout_failure else None", "None")
    path = tmp_path / "timeout_nocatch.py"
    path.write_text(flow)
    result = run_flow(path, "run", timeout=30)
    assert result.returncode == 1
    assert f"task TimeoutFlow/{result.run_id}/hang/2 failed" in result.stderr
    assert "Traceback" not in result.stderr.split("error: ")[-1]


def test_resume_reuses_finished_tasks(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    flag = tmp_path / "fail.flag"
    flag.write_text("fragile")
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    first = run_flow(flow_file, "run", "--marker", str(marker), "--fail_flag", str(flag))
    assert first.returncode == 1, first.output
    assert f"ResumeFlow/{first.run_id}/fragile/" in first.stderr
    executed_first = marker.read_text().split()
    assert sorted(executed_first) == ["collect", "fragile", "start", "work1", "work2", "work3"]

    flag.unlink()
    marker.write_text("")
    second = run_flow(flow_file, "resume", first.run_id)
    assert second.returncode == 0, second.output
    # Only the failed step and what follows ran again.
    assert marker.read_text().split() == ["fragile", "end"]

    flow = Flow("ResumeFlow", str(datastore))
    origin, resumed = flow[first.run_id], flow[second.run_id]
    assert resumed.successful and not origin.successful
    assert resumed.origin_run_id == origin.id
    for step in ("start", "work", "collect"):
        assert [t.id for t in resumed[step]] == [t.id for t in origin[step]]
        for task in resumed[step]:
            assert task.origin_pathspec == f"ResumeFlow/{origin.id}/{step}/{task.id}"
    assert resumed["fragile"].task.id not in {t.id for s in origin for t in s}
    assert resumed.data.checked == 18
    assert flow.latest_successful_run is not None
    assert flow.latest_successful_run.id == resumed.id


def test_resume_reruns_only_the_failed_foreach_member(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    flag = tmp_path / "fail.flag"
    flag.write_text("work2")
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    first = run_flow(flow_file, "run", "--marker", str(marker), "--fail_flag", str(flag))
    assert first.returncode == 1, first.output
    assert sorted(marker.read_text().split()) == ["start", "work1", "work2", "work3"]

    flag.unlink()
    marker.write_text("")
    second = run_flow(flow_file, "resume")
    assert second.returncode == 0, second.output
    assert marker.read_text().split() == ["work2", "collect", "fragile", "end"]
    flow = Flow("ResumeFlow", str(datastore))
    origin, resumed = flow[first.run_id], flow[second.run_id]
    reused = {t.id for t in resumed["work"] if t.origin_pathspec}
    rerun = [t for t in resumed["work"] if not t.origin_pathspec]
    assert reused == {t.id for t in origin["work"] if t.successful}
    assert len(reused) == 2 and len(rerun) == 1 and rerun[0].data.tripled == 6
    assert resumed.data.checked == 18


def test_resume_from_a_step_reruns_it(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    flag = tmp_path / "absent.flag"
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    first = run_flow(flow_file, "run", "--marker", str(marker), "--fail_flag", str(flag))
    assert first.returncode == 0, first.output
    marker.write_text("")
    second = run_flow(flow_file, "resume", "--step", "collect")
    assert second.returncode == 0, second.output
    assert marker.read_text().split() == ["collect", "fragile", "end"]
    assert "resuming run " + str(first.run_id) in second.stdout


def test_metaflow_forms_of_resume(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    first = run_flow(
        flow_file, "run", "--marker", str(marker), "--fail_flag", str(tmp_path / "absent.flag")
    )
    assert first.returncode == 0, first.output
    other = run_flow(
        flow_file, "run", "--marker", str(marker), "--fail_flag", str(tmp_path / "absent.flag")
    )
    assert other.returncode == 0, other.output
    # Metaflow's 'resume STEP': the step to rerun from, in your latest run.
    marker.write_text("")
    latest = run_flow(flow_file, "resume", "collect")
    assert latest.returncode == 0, latest.output
    assert marker.read_text().split() == ["collect", "fragile", "end"]
    assert f"resuming run {other.run_id}" in latest.stdout
    # 'resume STEP --origin-run-id ID': that step of that run.
    marker.write_text("")
    chosen = run_flow(flow_file, "resume", "fragile", "--origin-run-id", str(first.run_id))
    assert chosen.returncode == 0, chosen.output
    assert marker.read_text().split() == ["fragile", "end"]
    assert f"resuming run {first.run_id}" in chosen.stdout
    # Two different runs, or two different steps, are refused.
    both = run_flow(flow_file, "resume", str(other.run_id), "--origin-run-id", str(first.run_id))
    assert both.returncode == 2
    assert both.stderr == (
        f"error: resume {other.run_id} --origin-run-id {first.run_id}: two runs to resume. "
        "Give one: resume RUN_ID [--step STEP], or resume [STEP] --origin-run-id RUN_ID.\n"
    )
    steps = run_flow(flow_file, "resume", "collect", "--step", "end")
    assert steps.returncode == 2
    assert steps.stderr == "error: resume collect --step end: two steps to rerun from. Give one.\n"


def test_a_mistyped_step_with_an_origin_run_id_suggests_the_step(run_flow: RunFlow) -> None:
    flow_file = SAMPLE_FLOWS / "linear_flow.py"
    first = run_flow(flow_file, "run")
    assert first.returncode == 0, first.output
    typo = run_flow(flow_file, "resume", "transfrom", "--origin-run-id", str(first.run_id))
    assert typo.returncode == 2
    assert typo.stderr == (
        f"error: resume transfrom --origin-run-id {first.run_id}: 'transfrom' is neither a run "
        "of flow 'LinearFlow' nor one of its steps (start, transform, end). Did you mean "
        f"'transform'? Give the step to rerun from: resume STEP --origin-run-id {first.run_id}.\n"
    )


def test_resume_takes_your_latest_run_never_a_colleagues(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    mine = run_flow(
        flow_file, "run", "--marker", str(marker), "--fail_flag", str(tmp_path / "absent.flag")
    )
    theirs = run_flow(
        flow_file, "run", "--marker", str(marker), "--fail_flag", str(tmp_path / "absent.flag")
    )
    assert mine.returncode == 0 and theirs.returncode == 0, theirs.output
    store = open_datastore("ResumeFlow", str(datastore))
    record = store.read_run(str(theirs.run_id))
    assert record is not None
    store.write_run(str(theirs.run_id), {**record, "user": "a-colleague"})
    resumed = run_flow(flow_file, "resume", "--step", "end")
    assert resumed.returncode == 0, resumed.output
    assert f"resuming run {mine.run_id}" in resumed.stdout


def test_a_resume_refused_for_a_run_in_use_leaves_no_run_behind(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    flow_file = SAMPLE_FLOWS / "resume_flow.py"
    first = run_flow(
        flow_file, "run", "--marker", str(marker), "--fail_flag", str(tmp_path / "absent.flag")
    )
    assert first.returncode == 0, first.output
    store = open_datastore("ResumeFlow", str(datastore))
    held = RunLease(store, [str(first.run_id)])  # this live process drives it
    held.acquire()
    try:
        refused = run_flow(flow_file, "resume", str(first.run_id))
    finally:
        held.release()
    assert refused.returncode == 2, refused.output
    assert "is being driven by another orchestrator" in refused.stderr
    assert store.list_runs() == [str(first.run_id)]
    # The plain resume that follows finds the real run, not an empty folder.
    again = run_flow(flow_file, "resume", "--step", "end")
    assert again.returncode == 0, again.output
    assert f"resuming run {first.run_id}" in again.stdout
