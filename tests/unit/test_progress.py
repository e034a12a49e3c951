"""Wide fan-outs on the console: a summary per step, not a line per task."""

from __future__ import annotations

import io

from batchwright.cli.flow import EventRenderer
from batchwright.cli.progress import LOG_EVERY_SECONDS, PER_TASK_LINES, Progress
from batchwright.console import Console
from batchwright.events import (
    ArrayProgress,
    AttemptFailed,
    RunFinished,
    TaskOutput,
    TaskSubmitted,
    TaskSucceeded,
    TaskWaiting,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_narrow_fan_out_is_shown_task_by_task() -> None:
    progress = Progress()
    assert not progress.observe(TaskSubmitted("F/1/work/2", 0, "batch", PER_TASK_LINES))
    assert not progress.observe(TaskSucceeded("F/1/work/2", 0))
    assert progress.steps == {}


def test_a_wide_fan_out_is_counted_per_step() -> None:
    clock = Clock()
    progress = Progress(clock=clock)
    width = 1000
    for task in range(width):
        assert progress.observe(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
    counts = {"RUNNABLE": 300, "RUNNING": 200, "SUCCEEDED": 500, "FAILED": 0}
    assert progress.observe(ArrayProgress("F/1/work", "arr", width, counts))
    clock.now += 100
    for task in range(500):
        assert progress.observe(TaskSucceeded(f"F/1/work/{task}", 0))
    # A failure is counted and still shown; a retry is counted when it is submitted.
    failure = AttemptFailed("F/1/work/700", 0, "boom", 1, retry_in=0.0)
    assert not progress.observe(failure)
    assert progress.observe(TaskSubmitted("F/1/work/700", 1, "batch", width))
    line = progress.line("F/1/work")
    assert line == (
        "[F/1/work] 1000 tasks: 500 done, 200 running, 300 waiting, 1 retries; "
        "2 min elapsed, 5.0/s, ETA 2 min"
    )
    assert progress.lines() == [line]


def test_tasks_started_here_count_as_running_until_they_end() -> None:
    progress = Progress(clock=Clock())
    width = 40
    for task in range(6):  # --max-workers 6: the others wait their turn
        progress.observe(TaskSubmitted(f"F/1/work/{task}", 0, "local", width))
    progress.observe(TaskSucceeded("F/1/work/0", 0))
    progress.observe(AttemptFailed("F/1/work/1", 0, "boom", 1, retry_in=None))
    line = progress.line("F/1/work")
    assert "40 tasks: 1 done, 4 running, 34 queued, 1 failed;" in line
    # Submitted to Batch, before its counts arrive: waiting, not running.
    remote = Progress(clock=Clock())
    for task in range(width):
        remote.observe(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
    assert "40 tasks: 0 done, 40 waiting;" in remote.line("F/1/work")


def test_outside_a_terminal_a_summary_is_printed_now_and_then() -> None:
    out = io.StringIO()
    renderer = EventRenderer(Console(out, io.StringIO()))
    clock = Clock()
    renderer.progress.clock = clock
    width = 10_000
    for task in range(width):
        renderer(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
    for task in range(width):
        clock.now += 0.01  # 100 s in all
        renderer(TaskSucceeded(f"F/1/work/{task}", 0))
    renderer(TaskOutput("F/1/work/7", "stdout", "a line the task printed"))
    clock.now += 60  # the join and the end take a minute
    renderer(RunFinished("1", True))
    lines = out.getvalue().splitlines()
    summaries = [line for line in lines if line.startswith("[F/1/work] 10000 tasks")]
    # One when it began, one every LOG_EVERY_SECONDS, one when it ended.
    assert 3 <= len(summaries) <= 100 / LOG_EVERY_SECONDS + 3
    assert [line for line in summaries if "10000 done" in line] == [summaries[-1]]
    assert "2 min elapsed, 100.0/s" in summaries[-1]  # the step's 100 s, not the run's
    assert "[F/1/work/7] a line the task printed" in lines  # output is never hidden
    assert not any(" started" in line or " finished" in line for line in lines)
    assert len(lines) < 20  # not 20,000


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_summary_is_live_and_its_last_state_stays(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    out = Terminal()
    console = Console(out, io.StringIO())
    assert console.live_capable
    renderer = EventRenderer(console)
    clock = Clock()
    renderer.progress.clock = clock
    width = 100
    for task in range(width):
        renderer(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
        clock.now += 1
    for task in range(width):
        renderer(TaskSucceeded(f"F/1/work/{task}", 0))
        clock.now += 1
    assert console._live is None  # the region closed when the step ended
    renderer(RunFinished("1", True))
    # Lines written above the live region go through rich; what stays is one final line.
    text = out.getvalue()
    assert text.count("[F/1/work] 100 tasks: 100 done") == 1
    assert "Run 1 succeeded." in text


def test_batchs_counts_say_how_many_children_are_done_before_the_array_ends() -> None:
    progress = Progress(clock=Clock())
    width = 1000
    for task in range(width):
        progress.observe(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
    for task in range(3):  # the followed children, known one by one
        progress.observe(TaskSucceeded(f"F/1/work/{task}", 0))
    counts = {"RUNNABLE": 200, "RUNNING": 100, "SUCCEEDED": 700}
    progress.observe(ArrayProgress("F/1/work", "arr", width, counts))
    assert "1000 tasks: 700 done, 100 running, 200 waiting;" in progress.line("F/1/work")


def test_the_final_line_is_printed_once_when_batch_reports_the_end_first() -> None:
    out = io.StringIO()
    renderer = EventRenderer(Console(out, io.StringIO()))
    clock = Clock()
    renderer.progress.clock = clock
    width = 1000
    for task in range(width):
        renderer(TaskSubmitted(f"F/1/work/{task}", 0, "batch", width))
    # Batch says all children succeeded a poll before the backend confirms them one by one.
    clock.now += LOG_EVERY_SECONDS + 1
    renderer(ArrayProgress("F/1/work", "arr", width, {"SUCCEEDED": width}))
    clock.now += LOG_EVERY_SECONDS + 1
    for task in range(width):
        renderer(TaskSucceeded(f"F/1/work/{task}", 0))
    finals = [line for line in out.getvalue().splitlines() if "1000 tasks: 1000 done" in line]
    assert len(finals) == 1


def test_a_wide_steps_waits_are_shown_when_aws_says_why() -> None:
    progress = Progress()
    progress.observe(TaskSubmitted("F/1/work/2", 0, "batch", 100))
    quiet = TaskWaiting("F/1/work/2", "RUNNABLE", "q", "", 30.0)
    assert progress.observe(quiet)  # counted in the summary, not printed
    why = TaskWaiting("F/1/work/2", "RUNNABLE", "q", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 30)
    assert not progress.observe(why)
    # A whole array's wait names the step: printed like any step's.
    assert not progress.observe(TaskWaiting("F/1/work", "RUNNABLE", "q", "", 30.0, 98))
