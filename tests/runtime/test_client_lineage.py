"""The client on real local runs, where Metaflow's core test suite relies on it: lineage
(``parent_tasks``, ``child_tasks``, ``parent_steps``, ``child_steps``) across branches,
nested foreaches and joins; origins after a resume; task metadata; log lines; and the
namespace checks of its ``MetadataCheck``."""

from __future__ import annotations

import platform
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from batchwright import client
from batchwright.client import (
    ClientError,
    Flow,
    Metadata,
    MetaflowNamespaceMismatch,
    Run,
    Step,
    Task,
    default_namespace,
    get_namespace,
    namespace,
)
from batchwright.datastore import ROOT_VARIABLE

from ._support import TEST_FLOWS, RunFlow, write_flow


@pytest.fixture(autouse=True)
def fresh_client(monkeypatch: pytest.MonkeyPatch, datastore: Path) -> Iterator[None]:
    """No metadata() or namespace() choice; the flows run, and the client reads, as alice,
    from the datastore the runs use (so a pathspec alone finds them, as in Metaflow)."""
    monkeypatch.setattr(client, "_settings", client._ClientSettings())
    monkeypatch.setenv(ROOT_VARIABLE, str(datastore))
    monkeypatch.setenv("LOGNAME", "alice")  # getpass.getuser() reads LOGNAME first
    monkeypatch.delenv("BATCHWRIGHT_USER", raising=False)
    yield


# Metaflow's runtime_dag test, on one graph with every shape: a branch whose first arm
# holds a foreach nesting another (of 2 and 3 items, so the inner splits differ in size),
# each joined in turn, then the branch joined. Every task stores its own pathspec and
# those of the tasks it read.
LINEAGE_FLOW = """
from batchwright import FlowSpec, current, step


class LineageFlow(FlowSpec):
    def _linear(self):
        self.parent_pathspecs = {self.task_pathspec}
        self.task_pathspec = current.pathspec

    def _join(self, inputs):
        self.parent_pathspecs = {i.task_pathspec for i in inputs}
        self.task_pathspec = current.pathspec

    @step
    def start(self):
        self.parent_pathspecs = set()
        self.task_pathspec = current.pathspec
        self.next(self.fan, self.side)

    @step
    def fan(self):
        self._linear()
        self.outer = [1, 2]
        self.next(self.outer_body, foreach="outer")

    @step
    def outer_body(self):
        self._linear()
        self.inner = list(range(self.input + 1))
        self.next(self.inner_body, foreach="inner")

    @step
    def inner_body(self):
        self._linear()
        self.next(self.inner_tail)

    @step
    def inner_tail(self):
        self._linear()
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self._join(inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self._join(inputs)
        self.next(self.branch_join)

    @step
    def side(self):
        self._linear()
        self.next(self.branch_join)

    @step
    def branch_join(self, inputs):
        self._join(inputs)
        self.next(self.end)

    @step
    def end(self):
        self._linear()


if __name__ == "__main__":
    LineageFlow()
"""

GRAPH = {
    "start": (["fan", "side"], []),
    "fan": (["outer_body"], ["start"]),
    "outer_body": (["inner_body"], ["fan"]),
    "inner_body": (["inner_tail"], ["outer_body"]),
    "inner_tail": (["inner_join"], ["inner_body"]),
    "inner_join": (["outer_join"], ["inner_tail"]),
    "outer_join": (["branch_join"], ["inner_join"]),
    "side": (["branch_join"], ["start"]),
    "branch_join": (["end"], ["outer_join", "side"]),
    "end": ([], ["branch_join"]),
}


@pytest.fixture
def lineage_run(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> Run:
    """A finished run of LineageFlow."""
    result = run_flow(write_flow(tmp_path, "lineage_flow", LINEAGE_FLOW), "run")
    assert result.returncode == 0, result.output
    return Flow("LineageFlow", str(datastore))[str(result.run_id)]


def test_parent_and_child_tasks_are_the_tasks_each_task_read_and_was_read_by(
    lineage_run: Run,
) -> None:
    tasks = [task for step in lineage_run for task in step]
    # 1 start, 1 fan, 2 outer_body, 2 + 3 inner_body and inner_tail, 2 inner_join, ...
    assert sorted(t.step.id for t in tasks).count("inner_tail") == 5
    assert len(tasks) == 1 + 1 + 2 + 5 + 5 + 2 + 1 + 1 + 1 + 1
    read_by: dict[str, set[str]] = {t.pathspec: set() for t in tasks}
    for task in tasks:
        for parent in task.data.parent_pathspecs:
            read_by[parent].add(task.pathspec)
    edges = 0
    for task in tasks:
        parents = list(task.parent_tasks)
        assert {p.pathspec for p in parents} == task.data.parent_pathspecs, task
        assert len(parents) == len(task.data.parent_pathspecs)  # each once
        children = list(task.child_tasks)
        assert {c.pathspec for c in children} == read_by[task.pathspec], task
        assert list(task.parent_task_pathspecs) == [p.pathspec for p in parents]
        assert list(task.child_task_pathspecs) == [c.pathspec for c in children]
        edges += len(parents)
    # fan, side, outer_body, inner_body, inner_tail, inner_join, outer_join, branch_join, end
    assert edges == 1 + 1 + 2 + 5 + 5 + 5 + 2 + 2 + 1  # nothing was trivially empty


def test_a_join_inside_a_foreach_gathers_only_its_own_splits(lineage_run: Run) -> None:
    for join in lineage_run["inner_join"]:
        parents = list(join.parent_tasks)
        assert [p.index for p in parents] == list(range(len(parents)))
        # 2 splits under outer item 1, 3 under item 2: all of one outer split.
        assert {len(p.data.inner) for p in parents} == {len(parents)}
        outer = {p.metadata_dict["foreach-execution-path"].split(",")[0] for p in parents}
        assert outer == {f"fan:{join.index}"}
        (child,) = join.child_tasks
        assert child.step.id == "outer_join"
        # In the foreach's order; the step lists its tasks in the order they finished.
        assert [t.pathspec for t in child.parent_tasks] == [
            t.pathspec for t in sorted(lineage_run["inner_join"], key=lambda t: t.index)
        ]
    (fan,) = lineage_run["fan"]
    assert [c.index for c in fan.child_tasks] == [0, 1]
    (start,) = lineage_run["start"]
    assert list(start.parent_tasks) == []
    assert sorted(c.step.id for c in start.child_tasks) == ["fan", "side"]
    assert list(lineage_run["end"].task.child_tasks) == []


def test_parent_and_child_steps_follow_the_graph(lineage_run: Run) -> None:
    assert sorted(step.id for step in lineage_run) == sorted(GRAPH)
    for step in lineage_run:
        following, preceding = GRAPH[step.id]
        assert [s.id for s in step.child_steps] == following, step
        assert sorted(s.id for s in step.parent_steps) == preceding, step
        assert all(isinstance(s, Step) and s.run == lineage_run for s in step.child_steps)


@pytest.mark.parametrize(
    ("name", "flow", "expected"),
    [
        # Laps 1-3 of check go back to prepare, lap 4 on to end; prepare's first lap read
        # start, the others check.
        (
            "switch_loop_back_flow.py",
            "SwitchLoopBackFlow",
            {
                "prepare": (["check"], ["start", "check"]),
                "check": (["prepare", "end"], ["prepare"]),
            },
        ),
        # Items A, B, A: the switch's tasks chose different cases, which meet at join.
        (
            "switch_in_foreach_flow.py",
            "SwitchInForeachFlow",
            {"process_item": (["handle_a", "handle_b"], ["start"])},
        ),
    ],
)
def test_parent_and_child_steps_count_every_task_of_a_switch_or_a_loop(
    name: str,
    flow: str,
    expected: dict[str, tuple[list[str], list[str]]],
    run_flow: RunFlow,
    datastore: Path,
    tmp_path: Path,
) -> None:
    result = run_flow(Path(shutil.copy(TEST_FLOWS / name, tmp_path)), "run", timeout=180)
    assert result.returncode == 0, result.output
    run = Flow(flow, str(datastore))[str(result.run_id)]
    for step_name, (following, preceding) in expected.items():
        step = run[step_name]
        assert [s.id for s in step.child_steps] == following, step
        assert [s.id for s in step.parent_steps] == preceding, step


def test_a_parent_task_equals_the_task_read_by_its_pathspec(lineage_run: Run) -> None:
    # Metaflow's runtime_dag compares every property of a parent with the same task made
    # from its pathspec (with _namespace_check=False).
    skipped = {"parent_tasks", "parent_task_pathspecs", "child_tasks", "child_task_pathspecs"}
    skipped |= {"metadata", "data", "artifacts", "code"}
    names = [n for n, v in vars(Task).items() if isinstance(v, property) and n not in skipped]
    assert {"metadata_dict", "origin_pathspec", "index", "finished_at"} <= set(names)
    (join,) = lineage_run["branch_join"]
    for parent in join.parent_tasks:
        again = Task(parent.pathspec, _namespace_check=False)
        assert again == parent and hash(again) == hash(parent)
        for name in names:
            assert getattr(parent, name) == getattr(again, name), name
    assert join.parent == lineage_run["branch_join"]
    assert join.parent.parent == lineage_run
    assert lineage_run.parent.id == "LineageFlow"
    assert join.path_components == ["LineageFlow", lineage_run.id, "branch_join", join.id]


def test_lineage_ignores_the_namespace_as_metaflow_does(lineage_run: Run) -> None:
    (join,) = lineage_run["branch_join"]
    namespace("user:nobody")
    assert len(list(join.parent_tasks)) == 2
    assert [c.step.id for c in join.child_tasks] == ["end"]
    with pytest.raises(MetaflowNamespaceMismatch):
        Task(join.pathspec)


# -- metadata ---------------------------------------------------------------------------------

RETRY_FLOW = """
from batchwright import FlowSpec, current, retry, step


class RetriedFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails")
        self.items = ["a", "b"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetriedFlow()
"""


def test_metadata_lists_every_attempt_and_metadata_dict_the_latest(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "retried_flow", RETRY_FLOW), "run")
    assert result.returncode == 0, result.output
    run = Flow("RetriedFlow", str(datastore))[str(result.run_id)]
    start = run["start"].task
    entries = start.metadata
    assert all(isinstance(e, Metadata) and e.task == start for e in entries)
    assert sorted(e.value for e in entries if e.type == "attempt") == ["0", "1"]
    statuses = [e.value for e in entries if e.name == "status"]
    assert statuses == ["failed", "succeeded"]  # oldest attempt first
    assert [e.created_at for e in entries if e.name == "attempt"] == sorted(
        e.created_at for e in entries if e.name == "attempt"
    )
    values = start.metadata_dict
    assert values["attempt"] == "1" and values["status"] == "succeeded"
    assert (values["ds-type"], values["ds-root"]) == ("local", str(datastore))
    assert values["python_version"] == platform.python_version()  # the task's interpreter
    assert values["next_steps"] == '["each"]'
    assert "origin-run-id" not in values and "origin-task-id" not in values
    assert "artifacts" not in values and "run_id" not in values
    assert all(isinstance(v, str) for v in values.values())
    assert "foreach-execution-path" not in values
    paths = sorted(t.metadata_dict["foreach-execution-path"] for t in run["each"])
    assert paths == ["start:0", "start:1"]
    assert "foreach-execution-path" not in run["join"].task.metadata_dict


# -- origins after a resume -------------------------------------------------------------------

RESUMED_FLOW = """
from batchwright import FlowSpec, current, step


class ResumedFlow(FlowSpec):
    @step
    def start(self):
        self.origin_pathspec = current.pathspec
        self.items = [1, 2, 3]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        if current.origin_run_id is None:
            raise RuntimeError("fails until resumed")


if __name__ == "__main__":
    ResumedFlow()
"""


def test_a_resumed_run_names_its_origins_and_keeps_its_lineage(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "resumed_flow", RESUMED_FLOW)
    first = run_flow(flow_file, "run")
    assert first.returncode == 1, first.output
    second = run_flow(flow_file, "resume", str(first.run_id))
    assert second.returncode == 0, second.output
    flow = Flow("ResumedFlow", str(datastore))
    origin, resumed = flow[str(first.run_id)], flow[str(second.run_id)]

    # Metaflow's resume_originpath: the start step's task was cloned.
    start = resumed["start"].task
    assert start.origin_pathspec == start.data.origin_pathspec
    assert start.origin_pathspec == f"ResumedFlow/{origin.id}/start/{start.id}"
    assert resumed["start"].origin_pathspec == f"ResumedFlow/{origin.id}/start"
    assert resumed.origin_pathspec == f"ResumedFlow/{origin.id}"
    assert resumed.origin_run_id == origin.id
    # end ran again: its step has an origin, the task none.
    end = resumed["end"].task
    assert end.origin_pathspec is None
    assert resumed["end"].origin_pathspec == f"ResumedFlow/{origin.id}/end"
    assert origin.origin_pathspec is None and origin["start"].origin_pathspec is None
    assert origin["start"].task.origin_pathspec is None

    # Metaflow's resume_end_step: the metadata of a reused task is its origin's, plus
    # where it came from; a task run again has only the origin run.
    for step in ("start", "each", "join"):
        for task in resumed[step]:
            values = task.metadata_dict
            assert values["origin-run-id"] == origin.id
            assert values["origin-task-id"] == task.id
            before = origin[step][values["origin-task-id"]].metadata_dict
            assert {k: v for k, v in values.items() if not k.startswith("origin-")} == before
    assert end.metadata_dict["origin-run-id"] == origin.id
    assert "origin-task-id" not in end.metadata_dict

    # Reused tasks read their origin run's tasks; lineage stays inside the resumed run.
    (join,) = resumed["join"]
    assert [p.pathspec for p in join.parent_tasks] == [t.pathspec for t in resumed["each"]]
    assert all(p.step.run == resumed for p in join.parent_tasks)
    assert [c.pathspec for c in join.child_tasks] == [end.pathspec]
    assert [p.pathspec for p in end.parent_tasks] == [join.pathspec]


# -- logs -------------------------------------------------------------------------------------

LOG_FLOW = """
import sys

from batchwright import FlowSpec, step


class LogFlow(FlowSpec):
    @step
    def start(self):
        sys.stdout.write("stdout: A regular message.\\n")
        sys.stdout.write("stdout: A message with unicode: \\u5e74\\n")
        sys.stderr.write("stderr: A regular message.\\n")
        sys.stderr.write("stderr: A message with unicode: \\u5e74\\n")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LogFlow()
"""


def test_loglines_yields_each_line_with_a_time(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "log_flow", LOG_FLOW), "run")
    assert result.returncode == 0, result.output
    task = Flow("LogFlow", str(datastore))[str(result.run_id)]["start"].task
    # Metaflow's basic_log: the whole stream, as printed.
    expected = {
        stream: f"{stream}: A regular message.\n{stream}: A message with unicode: \u5e74\n"
        for stream in ("stdout", "stderr")
    }
    assert expected["stdout"] in task.stdout and expected["stderr"] in task.stderr
    for stream in ("stdout", "stderr"):
        lines = list(task.loglines(stream))
        messages = [line for _, line in lines]
        assert messages[-2:] == expected[stream].splitlines()
        assert all(isinstance(when, datetime) and when == task.finished_at for when, _ in lines)
        raw = [line for _, line in task.loglines(stream, as_unicode=False)]
        assert raw[-1] == f"{stream}: A message with unicode: \u5e74".encode()
    with pytest.raises(ClientError) as raised:
        list(task.loglines("stdlog"))
    assert str(raised.value) == (
        f"task {task.pathspec}: there is no log stream 'stdlog'; use 'stdout' or 'stderr'."
    )


# -- Metaflow's MetadataCheck ----------------------------------------------------------------


def test_the_namespace_checks_of_metaflows_metadata_check(lineage_run: Run) -> None:
    name, run_id = "LineageFlow", lineage_run.id
    assert get_namespace() == "user:alice"
    assert run_id in [run.id for run in Flow(name)]
    namespace("user:nobody")
    assert get_namespace() == "user:nobody"
    with pytest.raises(MetaflowNamespaceMismatch):
        Flow(name)[run_id]
    with pytest.raises(MetaflowNamespaceMismatch):
        Run(f"{name}/{run_id}")
    namespace(None)
    assert Flow(name)[run_id] == lineage_run
    assert Run(f"{name}/{run_id}").end_task is not None
    assert default_namespace() == "user:alice"
