"""``@catch`` when the step's last attempt dies without raising (a signal, an
out-of-memory kill): as in Metaflow, one more attempt runs that does not run the step and
stores ``FailureHandledByCatch`` in ``var``, and the flow goes on. And the records of
attempts that died before writing their own: the scheduler writes them, with the output
the local backend saw."""

from __future__ import annotations

from pathlib import Path

from batchwright import Flow

from ._support import RunFlow, write_flow

KILLED = """
import os
import signal

from batchwright import FlowSpec, catch, current, retry, step


class KilledFlow(FlowSpec):
    @catch(var="failure")
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.reached = current.retry_count
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.failure.type, self.failure.exception)


if __name__ == "__main__":
    KilledFlow()
"""


def test_a_killed_last_attempt_is_caught_by_one_more_attempt(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "killed_flow", KILLED)
    result = run_flow(flow_file, "run")
    assert result.returncode == 0, result.output
    run = Flow("KilledFlow", str(datastore))[result.run_id or ""]
    start = run["start"].task
    attempts = sorted(m.value for m in start.metadata if m.type == "attempt")
    assert attempts == ["0", "1", "2"]  # two killed attempts, then the fallback
    # The killed attempts wrote nothing; the scheduler recorded why they ended.
    failures = [m.value for m in start.metadata if m.name == "failure"]
    assert len(failures) == 2 and all("SIGKILL" in text for text in failures), failures
    assert start.retry_count == 2 and start.exception is None
    assert "reached" not in start  # the fallback does not run the step
    kind, message = run.data.seen
    assert kind == "batchwright.decorators.builtin.FailureHandledByCatch"
    assert "kept failing over 2 attempts" in message


def test_without_catch_a_killed_last_attempt_fails_the_run(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    source = KILLED.replace('    @catch(var="failure")\n', "")
    result = run_flow(write_flow(tmp_path, "killed_flow", source), "run")
    assert result.returncode == 1
    run = Flow("KilledFlow", str(datastore))[result.run_id or ""]
    assert "end" not in run


SEGFAULT = """
from batchwright import FlowSpec, step


class CrashFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        import ctypes
        import time

        print("Crash and burn!")
        # The task copies its output in a thread of its own process: output printed in
        # the very last moment before a crash can be lost with it.
        time.sleep(0.5)
        ctypes.string_at(0)


if __name__ == "__main__":
    CrashFlow()
"""


def test_a_crashed_attempt_keeps_its_output_and_says_which_signal(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "crash_flow", SEGFAULT), "run")
    assert result.returncode == 1
    end = Flow("CrashFlow", str(datastore))[result.run_id or ""]["end"].task
    assert not end.successful and end.metadata_dict["status"] == "failed"
    assert "Crash and burn!" in end.stdout  # printed before the process died
    assert "killed by signal SIGSEGV (segmentation fault)" in end.stderr


STOPPED_NODES = """
import time

from batchwright import FlowSpec, current, retry, step


class StoppedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @retry(times=1, minutes_between_retries=0)
    @step
    def train(self):
        if current.parallel.node_index == 1:
            raise RuntimeError("node 1 fails")
        time.sleep(60)  # node 0 is stopped when node 1 fails
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StoppedFlow()
"""


def test_nodes_stopped_by_a_failed_node_keep_a_record_of_each_attempt(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "stopped_flow", STOPPED_NODES), "run", timeout=120)
    assert result.returncode == 1
    train = Flow("StoppedFlow", str(datastore))[result.run_id or ""]["train"]
    for task in train:
        attempts = sorted(m.value for m in task.metadata if m.type == "attempt")
        assert attempts == ["0", "1"], (task.pathspec, attempts)
    stopped = [m.value for t in train for m in t.metadata if m.name == "failure"]
    assert stopped and all("node 1 of the parallel step failed" in text for text in stopped)
