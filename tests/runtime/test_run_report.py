"""Per-attempt timings recorded as a run goes, read back through the client API, and the
run report built from them (local backend: real processes, a real datastore)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from batchwright.client import Flow
from batchwright.datastore import open_datastore
from batchwright.report import MAX_BARS, price_attempts, render_report, summarize, timeline_figure
from batchwright.timings import AttemptTiming, TimingRecorder, completed, read_timeline

from ._support import RunFlow, write_flow

RETRYING_FOREACH = """
import time
from batchwright import FlowSpec, current, retry, step


class TimedFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        time.sleep(0.2)
        if current.retry_count == 0 and self.input == 2:
            raise RuntimeError("the first attempt of item 2 fails on purpose")
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TimedFlow()
"""


@pytest.fixture
def timed_run(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> tuple[Path, str]:
    flow = write_flow(tmp_path, "timed_flow", RETRYING_FOREACH)
    done = run_flow(flow, "run")
    assert done.returncode == 0, done.output
    assert done.run_id is not None
    return flow, done.run_id


def test_every_attempt_is_recorded_and_a_retry_is_its_own_record(
    timed_run: tuple[Path, str], datastore: Path
) -> None:
    _, run_id = timed_run
    run = Flow("TimedFlow", datastore_root=str(datastore))[run_id]
    timeline = run.timeline()
    # start, three work tasks plus one retry, join, end.
    assert [t.step for t in timeline].count("work") == 4
    assert len(timeline) == 7
    failed = [t for t in timeline if t.state == "failed"]
    assert len(failed) == 1
    [first] = failed
    assert (first.step, first.attempt, first.failure, first.exit_code) == (
        "work",
        0,
        "user-error",
        1,
    )
    retried = [t for t in timeline if t.task_id == first.task_id]
    assert [(t.attempt, t.state) for t in retried] == [(0, "failed"), (1, "succeeded")]
    # The client reads one task's attempts too.
    [task] = [t for t in run["work"] if t.id == first.task_id]
    assert [t.attempt for t in task.timings] == [0, 1]
    for timing in timeline:
        assert timing.backend == "local" and timing.platform is None
        assert timing.started_at is not None
        assert timing.submitted_at <= timing.started_at <= timing.stopped_at
    # The work steps slept 0.2 s: their running time shows it, waiting is apart.
    work = [t for t in timeline if t.step == "work"]
    assert all(t.running_seconds >= 0.2 for t in work)
    assert all(t.waiting_seconds < t.running_seconds + 5 for t in work)


def test_the_report_command_writes_one_self_contained_page(
    timed_run: tuple[Path, str], tmp_path: Path, datastore: Path
) -> None:
    flow, run_id = timed_run
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    env = {"BATCHWRIGHT_DATASTORE_ROOT": str(datastore), "NO_COLOR": "1", "PATH": ""}
    done = subprocess.run(
        [sys.executable, str(flow), "report", run_id, "--output", str(target)],
        capture_output=True,
        text=True,
        env={**env, "PATH": str(Path(sys.executable).parent)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"TimedFlow/{run_id}" in done.stdout
    page = target.read_text()
    # Nothing to fetch: no script or stylesheet comes from elsewhere (the browser test
    # watches the network itself).
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert 'id="timeline"' in page and 'id="steps"' in page
    steps_table = page.split('id="steps"', 1)[1]
    for step in ("start", "work", "join", "end"):
        assert f"<td>{step}</td>" in steps_table
    assert "user-error x1" in steps_table
    # The same report through the batchwright command, by the flow's latest run.
    again = tmp_path / "again.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchwright",
            "report",
            "TimedFlow",
            "--datastore-root",
            str(datastore),
            "-o",
            str(again),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"TimedFlow/{run_id}" in again.read_text()


def test_a_report_of_a_run_that_does_not_exist_is_refused(
    timed_run: tuple[Path, str], datastore: Path
) -> None:
    flow, run_id = timed_run
    done = subprocess.run(
        [sys.executable, str(flow), "report", "12345", "--datastore-root", str(datastore)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no run '12345'" in done.stderr and run_id in done.stderr
    assert "Traceback" not in done.stderr
    other = subprocess.run(
        [sys.executable, str(flow), "report", "OtherFlow/1", "--datastore-root", str(datastore)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 2
    assert "names flow 'OtherFlow'" in other.stderr and "batchwright report OtherFlow/1" in (
        other.stderr
    )


def test_a_task_fills_in_what_the_compute_service_did_not_report(tmp_path: Path) -> None:
    store = open_datastore("F", str(tmp_path))
    # An array child the orchestrator never described: no start, a late stop.
    record = AttemptTiming(
        "work",
        "7",
        0,
        submitted_at=100.0,
        stopped_at=190.0,
        state="succeeded",
        backend="batch",
        platform="EC2",
        instance_type="m5.large",
        instance_type_source="plan",
        vcpus=1,
        memory_mib=1024,
    )
    metadata = {
        "attempt": 0,
        "started_at": 130.0,
        "finished_at": 160.0,
        "placement": {"compute_environment": "ce-1", "instance_type": "c5.xlarge"},
    }
    filled = completed(record, metadata)
    assert (filled.started_at, filled.stopped_at) == (130.0, 160.0)
    assert (filled.waiting_seconds, filled.running_seconds) == (30.0, 30.0)
    assert filled.compute_environment == "ce-1"
    assert (filled.instance_type, filled.instance_type_source) == ("c5.xlarge", "reported")
    # Another attempt's metadata is never used for this one.
    assert completed(record, {**metadata, "attempt": 1}) == record
    # Nor another submission's of the same attempt (a Spot reclaim submits it again):
    # job ids tell them apart, and without ids a start outside its life does.
    with_ids = replace(record, job_id="job-1")
    placed = {**metadata["placement"], "job_id": "job-2"}
    assert completed(with_ids, {**metadata, "placement": placed}) == with_ids
    assert completed(record, {**metadata, "started_at": 200.0}) == record
    # Through the datastore: the recorder's chunk and the task's metadata are merged.
    recorder = TimingRecorder(store, "1")
    recorder.record(record)
    recorder.flush()
    store.write_metadata("1", "work", "7", 0, metadata)
    assert read_timeline(store, "1") == [filled]


def _synthetic(count: int) -> list[AttemptTiming]:
    return [
        AttemptTiming(
            "work",
            str(i),
            0,
            submitted_at=float(i % 50),
            stopped_at=float(i % 50 + 20),
            state="succeeded",
            started_at=float(i % 50 + 5),
        )
        for i in range(count)
    ]


def test_past_the_bar_limit_the_timeline_counts_attempts_over_time() -> None:
    priced = price_attempts(_synthetic(MAX_BARS + 500))
    figure = json.loads(timeline_figure(priced, 0.0).to_json())
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["work: waiting", "work: running"]
    running = figure["data"][1]["y"]
    # Every attempt runs 15 s within [5, 70): the busiest moment has at most all of them.
    assert 0 < max(running) <= MAX_BARS + 500
    assert running[0] == 0 and running[-1] == 0
    small = json.loads(timeline_figure(price_attempts(_synthetic(10)), 0.0).to_json())
    bars = [t for t in small["data"] if t["name"].startswith("running")]
    assert sum(len(t["x"]) for t in bars) == 10


def test_step_summaries_count_retries_failures_and_percentiles() -> None:
    base = {"backend": "local", "state": "succeeded"}
    timings = [
        AttemptTiming("a", "1", 0, 0.0, 10.0, started_at=0.0, **base),
        AttemptTiming("a", "2", 0, 0.0, 4.0, started_at=2.0, state="failed", failure="user-error"),
        AttemptTiming("a", "2", 1, 5.0, 9.0, started_at=6.0, **base),
    ]
    [row] = summarize(price_attempts(timings))
    assert (row.tasks, row.attempts, row.retries) == (2, 3, 1)
    assert dict(row.failures) == {"user-error": 1}
    assert sorted(row.running) == [2.0, 3.0, 10.0]
    page = render_report("F", "1", {"status": "succeeded", "started_at": 0.0}, timings)
    assert "- (ran locally)" in page
