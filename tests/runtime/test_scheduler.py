"""The scheduler with a recording backend: concurrency limit, fan-out groups, interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from batchwright.backends import BackendOptions, TaskHandle, TaskSpec, TaskStatus, register_backend
from batchwright.backends.local import LocalBackend
from batchwright.datastore import open_datastore
from batchwright.definition import load_definition
from batchwright.events import Event, TaskSubmitted
from batchwright.plan import make_plan
from batchwright.scheduler import RunOptions, Scheduler
from batchwright.task import load_flow_class

from ._support import SAMPLE_FLOWS, RunFlow, start_flow, write_flow


class RecordingBackend(LocalBackend):
    """The local backend, recording submit batches and the most attempts in flight."""

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.batches: list[list[TaskSpec]] = []
        self.in_flight: set[str] = set()
        self.most_in_flight = 0
        self.polled_batch_sizes: list[int] = []

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        self.batches.append(list(tasks))
        handles = super().submit(tasks)
        self.in_flight.update(h.id for h in handles)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return handles

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        self.polled_batch_sizes.append(len(handles))
        statuses = super().poll(handles)
        for handle, status in zip(handles, statuses, strict=True):
            if status.is_finished:
                self.in_flight.discard(handle.id)
        return statuses


def _run_with(backend: RecordingBackend, flow_file: Path, datastore: Path, workers: int) -> bool:
    flow_class = load_flow_class(str(flow_file), "ForeachFlow")
    definition = load_definition(flow_class)
    plan = make_plan("ForeachFlow", definition.decorators, None)
    events: list[Event] = []
    register_backend("local", lambda options: backend)
    try:
        scheduler = Scheduler(
            definition,
            plan.policies,
            open_datastore("ForeachFlow", str(datastore)),
            RunOptions(
                flow_file=str(flow_file), datastore_root=str(datastore), max_workers=workers
            ),
            events.append,
        )
        result = scheduler.run({})
    finally:
        register_backend("local", LocalBackend)
    assert all(isinstance(e, Event.__args__) for e in events)  # type: ignore[attr-defined]
    assert sum(isinstance(e, TaskSubmitted) for e in events) == 15
    return result.successful


def test_concurrency_limit_and_fan_out_groups(datastore: Path) -> None:
    backend = RecordingBackend(BackendOptions("ForeachFlow", "r", str(datastore)))
    assert _run_with(backend, SAMPLE_FLOWS / "foreach_flow.py", datastore, workers=2)
    assert backend.most_in_flight <= 2
    # Fan-out members are submitted together, never mixed with other steps or fan-outs.
    for batch in backend.batches:
        assert len({(t.step, t.group) for t in batch}) == 1
    grouped = [b for b in backend.batches if b[0].group is not None]
    assert grouped and all(b[0].group.size >= len(b) for b in grouped)  # type: ignore[union-attr]
    per_letter = [t for b in backend.batches for t in b if t.step == "per_letter"]
    assert sorted(t.arguments.split_index or 0 for t in per_letter) == [0, 1, 2]
    assert max(backend.polled_batch_sizes) <= 2


def test_wide_fan_out_is_one_submit_batch(datastore: Path) -> None:
    backend = RecordingBackend(BackendOptions("ForeachFlow", "r", str(datastore)))
    assert _run_with(backend, SAMPLE_FLOWS / "foreach_flow.py", datastore, workers=16)
    per_letter = [b for b in backend.batches if b[0].step == "per_letter"]
    assert len(per_letter) == 1 and len(per_letter[0]) == 3


HANGING_FLOW = """
import os, time
from batchwright import FlowSpec, step


class HangingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.hang)

    @step
    def hang(self):
        with open(os.environ["PID_FILE"], "w") as out:
            out.write(str(os.getpid()))
        print("hanging", flush=True)
        time.sleep(600)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HangingFlow()
"""


def test_interrupt_terminates_tasks_in_flight(tmp_path: Path, datastore: Path) -> None:
    flow_file = write_flow(tmp_path, "hanging", HANGING_FLOW)
    pid_file = tmp_path / "pid"
    process = start_flow(
        flow_file,
        datastore,
        env={"PID_FILE": str(pid_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait (without sleeping) until the step is running
        if "hanging" in line:
            break
    task_pid = int(pid_file.read_text())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not _alive(task_pid)
    from batchwright import Flow

    run = Flow("HangingFlow", str(datastore)).latest_run
    assert run is not None and run.status == "interrupted" and not run.successful


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie still answers kill(0); it is gone once its state is Z or it vanished.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.05)
    return True


def test_show_check_and_logs(run_flow: RunFlow) -> None:
    shown = run_flow(SAMPLE_FLOWS / "branch_join_flow.py", "show")
    assert shown.returncode == 0
    assert "Step start" in shown.stdout and "=> left, right" in shown.stdout
    assert "Combine both values" in shown.stdout
    checked = run_flow(SAMPLE_FLOWS / "branch_join_flow.py", "check")
    assert checked.returncode == 0 and "is valid: 5 steps" in checked.stdout

    ran = run_flow(SAMPLE_FLOWS / "linear_flow.py", "run")
    assert ran.returncode == 0
    logs = run_flow(SAMPLE_FLOWS / "linear_flow.py", "logs", f"{ran.run_id}/end")
    assert logs.returncode == 0 and "total 14" in logs.stdout
    bad = run_flow(SAMPLE_FLOWS / "linear_flow.py", "logs", f"{ran.run_id}/nosuch")
    assert bad.returncode == 2 and "has no tasks for step 'nosuch'" in bad.stderr
    # A full pathspec, as the client prints it, names the same task.
    full = run_flow(SAMPLE_FLOWS / "linear_flow.py", "logs", f"LinearFlow/{ran.run_id}/end")
    assert full.returncode == 0 and full.stdout == logs.stdout


def test_logs_of_another_flow_or_a_missing_task_say_what_is_there(run_flow: RunFlow) -> None:
    flow_file = SAMPLE_FLOWS / "linear_flow.py"
    ran = run_flow(flow_file, "run")
    assert ran.returncode == 0, ran.output
    for pathspec in ("OtherFlow/1234/start", "OtherFlow/1234/start/1"):
        other = run_flow(flow_file, "logs", pathspec)
        assert other.returncode == 2
        assert other.stderr == (
            f"error: logs {pathspec}: the pathspec names flow 'OtherFlow', but this file's flow "
            "is 'LinearFlow'. Run the logs command of OtherFlow's own file, or pass a pathspec "
            "of LinearFlow: [LinearFlow/]RUN_ID/STEP[/TASK].\n"
        )
    missing = run_flow(flow_file, "logs", f"{ran.run_id}/start/99")
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: logs {ran.run_id}/start/99: step 'start' of run '{ran.run_id}' of flow "
        "'LinearFlow' has no task '99' (its tasks: 1). Pass one of them, or logs "
        f"{ran.run_id}/start for the logs of them all.\n"
    )
