"""Decorators and ``current`` inside real runs."""

from __future__ import annotations

from pathlib import Path

from batchwright import Flow

from ._support import RunFlow, write_flow

CURRENT_FLOW = """
import os
import sys
from batchwright import FlowSpec, current, environment, resources, step


class CurrentFlow(FlowSpec):
    @environment(vars={"MODE": "fast", "LEVEL": 3})
    @resources(cpu=2, memory=1024)
    @step
    def start(self):
        self.mode = os.environ.get("MODE")
        self.level = os.environ.get("LEVEL")
        self.seen = {
            "flow_name": current.flow_name,
            "run_id": current.run_id,
            "step_name": current.step_name,
            "task_id": current.task_id,
            "retry_count": current.retry_count,
            "origin_run_id": current.origin_run_id,
            "pathspec": current.pathspec,
            "is_running_flow": current.is_running_flow,
            "tempdir_exists": os.path.isdir(current.tempdir),
        }
        self.next(self.end)

    @step
    def end(self):
        self.mode_in_end = os.environ.get("MODE")
        print("from python")
        os.system("echo from a child process; echo child error >&2")
        print("to stderr", file=sys.stderr)


if __name__ == "__main__":
    CurrentFlow()
"""

FAILING_FLOW = """
from batchwright import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        raise ValueError("bad data")
        self.next(self.end)

    @step
    def end(self):
        # The caught exception is inherited; --with also put @catch on end, which
        # stores None in err once end succeeds.
        self.err_in_end = self.err


if __name__ == "__main__":
    FailingFlow()
"""


def test_environment_resources_and_current(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "current_flow", CURRENT_FLOW), "run")
    assert result.returncode == 0, result.output
    run = Flow("CurrentFlow", str(datastore)).latest_run
    assert run is not None
    start = run["start"].task
    assert (start.data.mode, start.data.level) == ("fast", "3")
    assert run["end"].task.data.mode_in_end is None  # only the decorated step
    assert start.data.seen == {
        "flow_name": "CurrentFlow",
        "run_id": run.id,
        "step_name": "start",
        "task_id": start.id,
        "retry_count": 0,
        "origin_run_id": None,
        "pathspec": f"CurrentFlow/{run.id}/start/{start.id}",
        "is_running_flow": True,
        "tempdir_exists": True,
    }


def test_logs_capture_child_processes(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    result = run_flow(write_flow(tmp_path, "current_flow", CURRENT_FLOW), "run")
    assert result.returncode == 0, result.output
    run = Flow("CurrentFlow", str(datastore)).latest_run
    assert run is not None
    end = run["end"].task
    assert end.stdout.splitlines() == ["from python", "from a child process"]
    assert end.stderr.splitlines() == ["child error", "to stderr"]
    # ... and the console showed them, prefixed by the task's pathspec.
    assert f"[{end.pathspec}] from a child process" in result.stdout
    assert f"[{end.pathspec}] child error" in result.stdout


def test_current_outside_a_flow() -> None:
    from batchwright import current

    assert not current.is_running_flow
    assert current.pathspec is None and current.retry_count == 0


def test_with_option_attaches_a_decorator_to_every_step(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "failing_flow", FAILING_FLOW)
    failed = run_flow(flow_file, "run")
    assert failed.returncode == 1
    assert f"task FailingFlow/{failed.run_id}/start/1 failed" in failed.stderr
    rescued = run_flow(flow_file, "run", "--with", "catch:var=err")
    assert rescued.returncode == 0, rescued.output
    run = Flow("FailingFlow", str(datastore)).latest_run
    assert run is not None and run.successful
    assert run.data.err is None and "bad data" in run.data.err_in_end.exception
    assert "bad data" in run["start"].task.data.err.exception
    # As in Metaflow: the exception @catch handled is in its artifact, not the task's.
    assert run["start"].task.exception is None
    first = Flow("FailingFlow", str(datastore))[failed.run_id]
    unhandled = first["start"].task.exception
    assert unhandled is not None and unhandled.type == "builtins.ValueError"
    assert unhandled.exception == "bad data" and "raise ValueError" in unhandled.stacktrace
