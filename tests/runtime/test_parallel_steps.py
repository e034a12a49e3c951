"""Parallel steps (``num_parallel``, ``@parallel``, ``current.parallel``) run as N local
processes side by side: nodes meet over TCP, the join sees one input per node, a failed
node fails, retries and resumes the whole step, and malformed graphs are refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.runtime._support import SAMPLE_FLOWS, TEST_FLOWS, RunFlow, write_flow

from batchwright import FlowSpec, current, parallel, step
from batchwright.client import Flow
from batchwright.errors import GraphError
from batchwright.graph import FlowGraph
from batchwright.lint import validate
from batchwright.multinode import (
    MAIN_IP_VARIABLE,
    NODE_INDEX_VARIABLE,
    NUM_NODES_VARIABLE,
    TASKS_VARIABLE,
    NodeFailed,
    describe_node,
    local_node_environment,
    member_task_ids,
    wait_for_nodes,
)


def test_the_sample_flow_runs_its_nodes_side_by_side_with_run_batch_locally(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    flow = Path(shutil.copy(SAMPLE_FLOWS / "distributed_training_flow.py", tmp_path))
    done = run_flow(flow, "run", "--run-batch-locally", timeout=120)
    assert done.returncode == 0, done.output
    run = Flow("DistributedTrainingFlow", str(datastore))[done.run_id]
    join = run["join"].task.data
    assert join.ranks == [0, 1, 2]
    assert join.totals == [465, 465, 465]
    # Three tasks of 'train', one per node, each with its own shard's sum.
    sums = sorted(t.data.local_sum for t in run["train"])
    assert sums == [145, 155, 165]
    assert "3 nodes agreed on the total 465" in done.output
    shown = run_flow(flow, "show")
    assert "Step start  (split into 3 parallel nodes, line" in shown.stdout
    assert "Step train  (parallel, line" in shown.stdout


def test_a_failing_node_retries_the_whole_step(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_NODE", "1")
    flow = Path(shutil.copy(TEST_FLOWS / "gang_flow.py", tmp_path))
    done = run_flow(flow, "run", timeout=120)
    assert done.returncode == 0, done.output
    join = Flow("GangFlow", str(datastore))[done.run_id]["join"].task.data
    # Every node ran again, not only the one that failed, and node 0 is the control.
    assert join.ranks == [0, 1, 2]
    assert join.attempts == [1, 1, 1]
    assert join.controls == {join.tasks[0]}
    assert "node 1: " in done.output


def test_a_failing_node_without_retries_fails_the_run_and_resume_reruns_every_node(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_NODE", "2")
    monkeypatch.setenv("FAIL_ALWAYS", "1")
    monkeypatch.setenv("GANG_RETRIES", "0")
    flow = Path(shutil.copy(TEST_FLOWS / "gang_flow.py", tmp_path))
    failed = run_flow(flow, "run", timeout=120)
    assert failed.returncode != 0
    assert "node 2: " in failed.output and "node 2 breaks" in failed.output
    monkeypatch.delenv("FAIL_NODE")
    resumed = run_flow(flow, "resume", failed.run_id or "", timeout=120)
    assert resumed.returncode == 0, resumed.output
    run = Flow("GangFlow", str(datastore))[resumed.run_id]
    assert run["start"].task.origin_pathspec is not None  # reused
    join = run["join"].task.data
    assert join.ranks == [0, 1, 2]
    # All three nodes ran in the resumed run, the two that had finished included.
    assert all(t.origin_pathspec is None for t in run["work"])


def _refusal(source: str, tmp_path: Path) -> GraphError:
    path = write_flow(tmp_path, "refused_flow", source)
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    with pytest.raises(GraphError) as refused:
        validate(FlowGraph(namespace["Refused"]))
    return refused.value


HEADER = "from batchwright import FlowSpec, parallel, step\n\n\nclass Refused(FlowSpec):\n"


def test_a_parallel_step_without_a_join_is_refused_at_its_line(tmp_path: Path) -> None:
    error = _refusal(
        HEADER
        + "    @step\n    def start(self):\n        self.next(self.train, num_parallel=2)\n\n"
        + "    @parallel\n    @step\n    def train(self):\n        self.next(self.end)\n\n"
        + "    @step\n    def end(self):\n        pass\n",
        tmp_path,
    )
    assert "is a parallel step, so its nodes must meet in a join right after it" in str(error)
    assert error.step == "train" and error.line == 12


@pytest.mark.parametrize(
    ("transition", "message"),
    [
        ("num_parallel=0", "num_parallel=0 is out of range"),
        ("num_parallel=1001", "num_parallel=1001 is out of range"),
        ("num_parallel=2.5", "num_parallel= must be a whole number of nodes"),
        ("num_parallel=2, foreach='x'", "takes foreach= or num_parallel=, not both"),
    ],
)
def test_bad_num_parallel_values_are_refused(tmp_path: Path, transition: str, message: str) -> None:
    error = _refusal(
        HEADER
        + f"    @step\n    def start(self):\n        self.next(self.train, {transition})\n\n"
        + "    @step\n    def train(self):\n        self.next(self.join)\n\n"
        + "    @step\n    def join(self, inputs):\n        self.next(self.end)\n\n"
        + "    @step\n    def end(self):\n        pass\n",
        tmp_path,
    )
    assert message in str(error)
    assert error.step == "start"


def test_parallel_without_num_parallel_is_refused(tmp_path: Path) -> None:
    error = _refusal(
        HEADER
        + "    @step\n    def start(self):\n        self.next(self.train)\n\n"
        + "    @parallel\n    @step\n    def train(self):\n        self.next(self.end)\n\n"
        + "    @step\n    def end(self):\n        pass\n",
        tmp_path,
    )
    assert "is @parallel but no step reaches it with num_parallel" in str(error)
    assert error.step == "train"


def test_graph_reads_num_parallel_and_marks_the_parallel_step() -> None:
    class Shape(FlowSpec):
        @step
        def start(self):
            self.next(self.train, num_parallel=4)

        @step
        def train(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = FlowGraph(Shape)
    validate(graph)
    assert graph["start"].type == "foreach" and graph["start"].num_parallel == 4
    assert graph["train"].parallel_step and not graph["train"].parallel_decorated
    assert graph["start"].matching_join == "join"
    assert parallel.__name__ == "parallel"  # the decorator, not a module


def test_current_parallel_is_none_outside_a_parallel_step() -> None:
    assert current.parallel is None and current.is_parallel is False


def test_node_description_follows_the_batch_variables() -> None:
    ids = ["7", "8", "9"]
    child = describe_node(
        {**local_node_environment(2, ids, "0.0"), MAIN_IP_VARIABLE: "10.0.1.5"}, None, None, "9"
    )
    assert child == (("10.0.1.5", 3, 2, "7"))
    # AWS Batch gives the main node no main address: it uses its own.
    main = describe_node({NODE_INDEX_VARIABLE: "0", NUM_NODES_VARIABLE: "2"}, None, None, "7")
    assert main.node_index == 0 and main.num_nodes == 2 and main.control_task_id == "7"
    assert main.main_ip
    # Without any variable (a backend that sets none): the split index and count.
    bare = describe_node({}, 1, 4, "12")
    assert (bare.node_index, bare.num_nodes, bare.control_task_id) == (1, 4, None)
    assert member_task_ids({TASKS_VARIABLE: "7-9,12"}) == ["7", "8", "9", "12"]


class _Store:
    """Node records by task id: (attempt, try, status, exit code), and done markers."""

    def __init__(self, metadata: dict[str, dict[str, Any]], done: dict[str, int]) -> None:
        self.metadata, self.done, self.reads = metadata, done, 0

    def read_metadata(self, run_id: str, step: str, task_id: str, attempt: int) -> Any:
        if task_id == "2":
            self.reads += 1
            if self.reads == 2:  # node 2 finishes this try while node 0 waits
                self.metadata["2"] = {
                    "status": "succeeded",
                    "exit_code": 0,
                    "attempt": 1,
                    "parallel_try": "1.1",
                }
                self.done["2"] = 1
        found = self.metadata.get(task_id)
        return found if found and found["attempt"] == attempt else None

    def read_done(self, run_id: str, step: str, task_id: str) -> Any:
        return {"attempt": self.done[task_id]} if task_id in self.done else None


def test_the_main_node_waits_for_every_node_of_its_try_and_fails_with_a_failed_one() -> None:
    sleeps: list[float] = []
    # This try is attempt 1 submitted again once ("1.1": the first one lost its capacity).
    # Node 1 is done in it. Node 2's failure of attempt 1 was stored by the try before:
    # it does not count, and node 2's own success in this try is waited for.
    store = _Store(
        {
            "1": {"status": "succeeded", "exit_code": 0, "attempt": 1, "parallel_try": "1.1"},
            "2": {"status": "failed", "exit_code": 1, "attempt": 1, "parallel_try": "1.0"},
        },
        {"1": 1, "2": 0},
    )
    wait_for_nodes(store, "r", "train", ["1", "2"], 1, "1.1", sleep=sleeps.append)
    assert store.reads == 2 and len(sleeps) == 1
    broken = _Store(
        {"2": {"status": "failed", "exit_code": 1, "attempt": 0, "parallel_try": "0.0"}}, {}
    )
    with pytest.raises(NodeFailed, match=r"node 2 \(task 2\) of parallel step 'train' failed"):
        wait_for_nodes(broken, "r", "train", ["1", "2"], 0, "0.0", sleep=sleeps.append)


NESTED = """from batchwright import FlowSpec, current, step


class NestedParallelFlow(FlowSpec):
    @step
    def start(self):
        self.groups = ["a", "b"]
        self.next(self.each, foreach="groups")

    @step
    def each(self):
        self.group = self.input
        self.next(self.train, num_parallel=2)

    @step
    def train(self):
        self.tag = f"{self.group}{current.parallel.node_index}/{current.parallel.num_nodes}"
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.tags = [i.tag for i in inputs]
        self.next(self.collect)

    @step
    def collect(self, inputs):
        self.all_tags = [t for i in inputs for t in i.tags]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NestedParallelFlow()
"""


def test_a_parallel_step_inside_a_foreach_runs_one_group_per_item(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    done = run_flow(write_flow(tmp_path, "nested_parallel_flow", NESTED), "run", timeout=120)
    assert done.returncode == 0, done.output
    collect = Flow("NestedParallelFlow", str(datastore))[done.run_id]["collect"].task.data
    assert collect.all_tags == ["a0/2", "a1/2", "b0/2", "b1/2"]
