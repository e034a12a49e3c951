"""Switch steps (``self.next({...}, condition="var")``): the graph reads their cases, lint
refuses malformed ones with the step and line (exit 2), and local runs take only the
chosen case: at the top level, nested, inside a branch or a foreach, around a branch or a
foreach, and as loops (a switch going back to itself or to an earlier step), which
resume reuses lap by lap."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.runtime._support import TEST_FLOWS, FlowRun, RunFlow, write_flow

from batchwright import FlowSpec, step
from batchwright.client import Flow, Run
from batchwright.definition import import_flow_file, load_definition
from batchwright.entrypoint import DoNotRetry
from batchwright.errors import GraphError
from batchwright.flowspec import StepFailed
from batchwright.graph import FlowGraph
from batchwright.lint import validate

# -- the graph ------------------------------------------------------------------------------


class SimpleSwitchFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.switch_step)

    @step
    def switch_step(self) -> None:
        self.next({"case1": self.a, "case2": self.b, 3: self.c}, condition="condition")

    @step
    def a(self) -> None:
        self.next(self.end)

    @step
    def b(self) -> None:
        self.next(self.end)

    @step
    def c(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class LoopFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.loop_step)

    @step
    def loop_step(self) -> None:
        self.next({"continue": self.loop_step, "exit": self.exit_loop}, condition="status")

    @step
    def exit_loop(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_a_switch_is_read_into_its_cases_and_its_cases_meet_without_a_join() -> None:
    graph = FlowGraph(SimpleSwitchFlow)
    validate(graph)
    switch = graph["switch_step"]
    assert switch.type == "split-switch"
    assert switch.is_switch and not switch.is_split
    assert switch.condition == "condition"
    assert switch.switch_cases == {"case1": "a", "case2": "b", 3: "c"}
    assert switch.out_funcs == ["a", "b", "c"]
    end = graph["end"]
    # Reached from three steps, of which one runs: a plain step, not a join.
    assert sorted(end.in_funcs) == ["a", "b", "c"]
    assert end.type == "end" and end.split_parents == []
    assert graph.loop_edges == set()


def test_a_switch_back_to_itself_is_a_loop_left_out_of_the_topological_order() -> None:
    graph = FlowGraph(LoopFlow)
    validate(graph)
    assert graph.loop_edges == {("loop_step", "loop_step")}
    assert graph.loops() == [["loop_step"]]
    assert graph.topological_order() == ["start", "loop_step", "exit_loop", "end"]
    assert graph.forward_parents("loop_step") == ["start"]
    assert [n.name for n in graph.sorted_nodes()] == ["start", "loop_step", "exit_loop", "end"]
    assert graph.downstream("exit_loop") == {"exit_loop", "end"}


METAFLOW_SHAPES = {
    "switch_basic_flow.py": "switch_step",
    "switch_nested_flow.py": "switch2",
    "switch_in_branch_flow.py": "a",
    "switch_branch_in_case_flow.py": "start",
    "switch_in_foreach_flow.py": "process_item",
    "switch_foreach_in_case_flow.py": "start",
    "switch_recursive_flow.py": "loop_step",
    "switch_recursive_in_foreach_flow.py": "loop_body",
    "switch_loop_back_flow.py": "check",
}


@pytest.mark.parametrize("name", sorted(METAFLOW_SHAPES))
def test_the_shapes_of_metaflows_switch_tests_are_valid(name: str) -> None:
    module = import_flow_file(str(TEST_FLOWS / name))
    flow_class = next(
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FlowSpec) and value is not FlowSpec
    )
    definition = load_definition(flow_class)
    switch = definition.graph[METAFLOW_SHAPES[name]]
    assert switch.type == "split-switch"
    assert len(switch.switch_cases) == 2 or name == "switch_basic_flow.py"


def test_the_loop_back_to_an_earlier_step_is_its_switchs_case() -> None:
    module = import_flow_file(str(TEST_FLOWS / "switch_loop_back_flow.py"))
    graph = FlowGraph(module.SwitchLoopBackFlow)
    assert graph.loop_edges == {("check", "prepare")}
    assert graph.loops() == [["prepare", "check"]]
    assert sorted(graph["prepare"].in_funcs) == ["check", "start"]


_LOOP_INTO_A_CASE = """
@step
def start(self):
    self.next(CASES, condition="k")

@step
def a(self):
    self.next(self.b)

@step
def b(self):
    self.next(self.s)

@step
def s(self):
    self.next({"again": self.a, "done": self.end}, condition="go")

@step
def end(self):
    pass
"""


@pytest.mark.parametrize(
    "cases", ['{"a": self.a, "b": self.b}', '{"b": self.b, "a": self.a}'], ids=["ab", "ba"]
)
def test_a_loop_is_found_whatever_the_order_of_a_switchs_cases(cases: str, tmp_path: Path) -> None:
    # start switches to a or b, a -> b -> s, and s goes back to a or on to end. Walked
    # depth first b-first, the edge closing the cycle is a -> b (no switch): the loop must
    # still be found, with s's case back to a as its way back.
    _, flow_class = _graph_of(tmp_path, _LOOP_INTO_A_CASE.replace("CASES", cases))
    graph = FlowGraph(flow_class)
    validate(graph)
    assert graph.loop_edges == {("s", "a")}
    assert sorted(graph.loops()[0]) == ["a", "b", "s"]
    assert graph.topological_order() == ["start", "a", "b", "s", "end"]
    assert graph.forward_parents("a") == ["start"]


def test_nested_loops_each_get_their_switchs_way_back(tmp_path: Path) -> None:
    _, flow_class = _graph_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.inner)

        @step
        def inner(self):
            self.next({"again": self.a, "on": self.outer}, condition="x")

        @step
        def outer(self):
            self.next({"done": self.end, "again": self.a}, condition="y")

        @step
        def end(self):
            pass
        """,
    )
    graph = FlowGraph(flow_class)
    validate(graph)
    assert graph.loop_edges == {("inner", "a"), ("outer", "a")}
    assert graph.topological_order() == ["start", "a", "inner", "outer", "end"]


def test_a_cycle_that_no_switch_leaves_is_still_refused(tmp_path: Path) -> None:
    _, flow_class = _graph_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next({"a": self.a, "b": self.b}, condition="k")

        @step
        def a(self):
            self.next(self.b)

        @step
        def b(self):
            self.next(self.a)

        @step
        def end(self):
            pass
        """,
    )
    with pytest.raises(GraphError, match="a loop that no switch decides to leave"):
        validate(FlowGraph(flow_class))


def test_a_switch_inside_a_branch_joins_as_that_one_branch() -> None:
    module = import_flow_file(str(TEST_FLOWS / "switch_in_branch_flow.py"))
    graph = FlowGraph(module.SwitchInBranchFlow)
    assert graph["c"].split_parents == ["start"] and graph["c"].split_branches == ["a"]
    assert graph["d"].split_branches == ["a"]
    assert graph["start"].matching_join == "join"
    assert graph["join"].split_parents == []


# -- lint: refused graphs, with step and line --------------------------------------------------


def _graph_of(tmp_path: Path, body: str) -> tuple[Path, type]:
    source = "from batchwright import FlowSpec, step\n\n\nclass BadFlow(FlowSpec):\n"
    source += textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    source += "\n\n\nif __name__ == '__main__':\n    BadFlow()\n"
    path = write_flow(tmp_path, "bad_switch_flow", source)
    module = import_flow_file(str(path))
    return path, module.BadFlow


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


_TAIL = """
        @step
        def a(self):
            self.next(self.end)

        @step
        def b(self):
            self.next(self.end)

        @step
        def end(self):
            pass
"""

LINT_ERRORS: dict[str, tuple[str, str, str, str]] = {
    # case: (body, step, text on the blamed line, message fragment)
    "no condition": (
        """
        @step
        def start(self):
            self.next({"x": self.a, "y": self.b})
        """
        + _TAIL,
        "start",
        'self.next({"x"',
        "self.next() got a dict of cases without condition=, so nothing picks a case. "
        'Write a switch as self.next({"<value>": self.<step>, ...}, condition="<artifact>")',
    ),
    "condition not a literal": (
        """
        @step
        def start(self):
            name = "v"
            self.next({"x": self.a, "y": self.b}, condition=name)
        """
        + _TAIL,
        "start",
        "condition=name",
        "condition= must be the artifact's name as a string literal, got name",
    ),
    "case not a step": (
        """
        @step
        def start(self):
            self.next({"x": self.a, "y": "b"}, condition="v")
        """
        + _TAIL,
        "start",
        'condition="v"',
        "switch case 'y' must name a step as self.<step>, got 'b'",
    ),
    "key not a literal": (
        """
        @step
        def start(self):
            key = "x"
            self.next({key: self.a, "y": self.b}, condition="v")
        """
        + _TAIL,
        "start",
        'condition="v"',
        "switch case keys must be literal strings, numbers or booleans, got key",
    ),
    "empty dict": (
        """
        @step
        def start(self):
            self.next({}, condition="v")
        """
        + _TAIL,
        "start",
        "self.next({}",
        "self.next() got an empty dict of cases",
    ),
    "with foreach": (
        """
        @step
        def start(self):
            self.next({"x": self.a, "y": self.b}, condition="v", foreach="items")
        """
        + _TAIL,
        "start",
        'condition="v"',
        "a switch (condition=) cannot be combined with foreach=",
    ),
    "condition without a dict": (
        """
        @step
        def start(self):
            self.next(self.a, condition="v")
        """
        + _TAIL,
        "start",
        'condition="v"',
        "condition= needs one dict of cases as the only argument, got self.a",
    ),
    "one case": (
        """
        @step
        def start(self):
            self.next({"x": self.a}, condition="v")

        @step
        def a(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        "start",
        'condition="v"',
        "is a switch on 'v' with 1 case; a switch chooses between at least two",
    ),
    "unknown case step": (
        """
        @step
        def start(self):
            self.next({"x": self.a, "y": self.nowhere}, condition="v")
        """
        + _TAIL,
        "start",
        'condition="v"',
        "self.next() goes to 'nowhere', which is not a step",
    ),
    "case straight to a join": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next({"x": self.c, "y": self.join}, condition="v")

        @step
        def b(self):
            self.next(self.join)

        @step
        def c(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        "a",
        'condition="v"',
        "switch case 'y' goes straight to join 'join'; a case may not lead directly to a join",
    ),
    "cases meeting in a join": (
        """
        @step
        def start(self):
            self.next({"x": self.a, "y": self.b}, condition="v")

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        "join",
        "def join(self, inputs)",
        "takes 'inputs' but there is no split or foreach open before it to join",
    ),
    "loop through no switch": (
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b)

        @step
        def b(self):
            self.next(self.a)  # back

        @step
        def end(self):
            pass
        """,
        "b",
        "# back",
        "self.next() goes back to 'a', which makes a loop that no switch decides to leave",
    ),
    "loop around a split": (
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b, self.c)

        @step
        def b(self):
            self.next(self.join)

        @step
        def c(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next({"again": self.a, "done": self.end}, condition="v")

        @step
        def end(self):
            pass
        """,
        "a",
        "def a(self)",
        "is a split step inside a loop (through a, b, join, c); a loop may hold only linear "
        "and switch steps",
    ),
    "loop without a way out": (
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.s)

        @step
        def s(self):
            self.next({"x": self.a, "y": self.s}, condition="v")

        @step
        def end(self):
            pass
        """,
        "s",
        "def s(self)",
        "is a switch whose every case goes back into its loop (through a, s), so the flow "
        "never reaches 'end'",
    ),
    "case into another branch": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next({"x": self.b, "y": self.c}, condition="v")

        @step
        def b(self):
            self.next(self.join)

        @step
        def c(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        "b",
        "def b(self)",
        "is reached from several steps (a, start) and so must be a join",
    ),
}


@pytest.mark.parametrize("case", sorted(LINT_ERRORS))
def test_malformed_switches_are_refused_with_the_step_and_line(case: str, tmp_path: Path) -> None:
    body, step_name, text, fragment = LINT_ERRORS[case]
    path, flow_class = _graph_of(tmp_path, body)
    with pytest.raises(GraphError) as refused:
        validate(FlowGraph(flow_class))
    message = str(refused.value)
    line = _line_of(path, text)
    assert message.startswith(f"step '{step_name}' (line {line}): "), message
    assert fragment in message, message


def test_check_exits_2_on_a_malformed_switch(tmp_path: Path, run_flow: RunFlow) -> None:
    body, _, _, fragment = LINT_ERRORS["no condition"]
    path, _ = _graph_of(tmp_path, body)
    checked = run_flow(path, "check")
    assert checked.returncode == 2, checked.output
    assert fragment in checked.stderr
    assert "Traceback" not in checked.output


# -- self.next at run time ----------------------------------------------------------------------


def _flow(condition: Any) -> SimpleSwitchFlow:
    flow = SimpleSwitchFlow(use_cli=False)
    flow.condition = condition  # type: ignore[attr-defined]
    return flow


def test_next_picks_the_case_equal_to_the_condition() -> None:
    flow = _flow(3)
    flow.next({"case1": flow.a, "case2": flow.b, 3: flow.c}, condition="condition")
    assert flow._transition == (["c"], None, None)
    assert flow._switch == ("condition", "c", {"case1": "a", "case2": "b", 3: "c"})


def test_a_value_that_is_no_case_fails_without_retry_naming_value_and_cases() -> None:
    flow = _flow("case9")
    with pytest.raises(DoNotRetry) as refused:
        flow.next({"case1": flow.a, "case2": flow.b}, condition="condition")
    assert str(refused.value) == (
        "self.next(): the switch condition self.condition is 'case9', which is none of its "
        "cases ['case1', 'case2']. Set self.condition to one of them, or add a case for that "
        "value."
    )


def test_a_value_matching_a_key_only_as_text_is_no_case_and_says_so() -> None:
    # As in Metaflow, the value is compared as it is: True is not "True".
    flow = _flow(True)
    with pytest.raises(DoNotRetry) as refused:
        flow.next({"True": flow.a, "False": flow.b}, condition="condition")
    assert "is True, which is none of its cases ['True', 'False']" in str(refused.value)
    assert "(the keys are strings: set self.condition = str(...))" in str(refused.value)


def test_a_missing_condition_artifact_or_a_bad_call_fails() -> None:
    flow = SimpleSwitchFlow(use_cli=False)
    with pytest.raises(DoNotRetry, match="the switch condition 'missing' names no artifact"):
        flow.next({"x": flow.a, "y": flow.b}, condition="missing")
    with pytest.raises(StepFailed, match="without condition="):
        flow.next({"x": flow.a, "y": flow.b})
    with pytest.raises(StepFailed, match="cannot be combined with foreach"):
        flow.next({"x": flow.a}, condition="c", foreach="items")
    with pytest.raises(StepFailed, match="switch case 'y' goes to 'b', which is not a step"):
        flow.next({"x": flow.a, "y": "b"}, condition="c")  # type: ignore[dict-item]
    with pytest.raises(StepFailed, match="non-empty dict"):
        flow.next({}, condition="c")
    assert flow._transition is None


# -- runs ----------------------------------------------------------------------------------------


def _run(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, name: str, flow: str, *args: str
) -> tuple[FlowRun, Run]:
    path = tmp_path / name
    if not path.exists():
        shutil.copy(TEST_FLOWS / name, path)
    done = run_flow(path, "run", *args, timeout=180)
    assert done.returncode == 0, done.output
    return done, Flow(flow, str(datastore))[done.run_id or ""]


def test_a_simple_switch_runs_only_the_chosen_case(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    _, run = _run(tmp_path, run_flow, datastore, "switch_basic_flow.py", "SwitchBasicFlow")
    assert run["end"].task.data.final == "switch_step->b"
    assert "b" in run and "a" not in run and "c" not in run
    assert len(run["end"].tasks()) == 1
    switch_task = run["switch_step"].task
    assert [t.pathspec for t in switch_task.child_tasks] == [run["b"].task.pathspec]
    _, other = _run(
        tmp_path, run_flow, datastore, "switch_basic_flow.py", "SwitchBasicFlow", "--mode", "case3"
    )
    assert other["end"].task.data.final == "switch_step->c"
    assert "b" not in other


def test_a_value_that_is_no_case_fails_the_run_once_naming_step_value_and_cases(
    tmp_path: Path, run_flow: RunFlow
) -> None:
    path = Path(shutil.copy(TEST_FLOWS / "switch_basic_flow.py", tmp_path))
    failed = run_flow(path, "run", "--mode", "case9", timeout=120)
    assert failed.returncode == 1
    assert (
        "error: step 'switch_step': the switch condition self.condition is 'case9', which is "
        "none of its cases ['case1', 'case2', 'case3']" in failed.output
    )
    assert "attempt 0 failed: the task failed in a way a retry cannot fix" in failed.output


def test_nested_switches(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_nested_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchNestedFlow")
    assert run["end"].task.data.final == "d"
    assert {s.id for s in run} == {"start", "switch2", "d", "end"}
    _, other = _run(tmp_path, run_flow, datastore, name, "SwitchNestedFlow", "--first", "case2")
    assert other["end"].task.data.final == "b"
    assert {s.id for s in other} == {"start", "b", "end"}


def test_a_switch_inside_a_branch(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_in_branch_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchInBranchFlow")
    join = run["join"].task
    assert join.data.paths == ["b", "d"]
    assert "c" not in run
    _, other = _run(tmp_path, run_flow, datastore, name, "SwitchInBranchFlow", "--mode", "case1")
    assert other["join"].task.data.paths == ["b", "c"]


def test_a_branch_inside_a_switch(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_branch_in_case_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchBranchInCaseFlow")
    assert run["end"].task.data.final == 3
    assert "skip_path" not in run
    _, other = _run(tmp_path, run_flow, datastore, name, "SwitchBranchInCaseFlow", "--mode", "skip")
    assert other["end"].task.data.final == "skipped"
    assert {s.id for s in other} == {"start", "skip_path", "end"}


def test_a_switch_inside_a_foreach(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_in_foreach_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchInForeachFlow")
    join = run["join"].task.data
    # Each item took its own case, kept its foreach position, and the join has all three.
    assert join.results == ["A(200)", "B(100.0)", "A(600)"]
    assert join.positions == [0, 1, 2]
    assert len(run["handle_a"].tasks()) == 2 and len(run["handle_b"].tasks()) == 1


def test_a_foreach_inside_a_switch(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_foreach_in_case_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchForeachInCaseFlow")
    assert run["end"].task.data.final == ["ITEM_1", "ITEM_2"]
    assert len(run["do_work"].tasks()) == 2
    _, other = _run(
        tmp_path, run_flow, datastore, name, "SwitchForeachInCaseFlow", "--mode", "skip"
    )
    assert other["end"].task.data.final == []
    assert "do_work" not in other


def test_a_recursive_switch_runs_ten_laps_as_ten_tasks_each_reading_the_last(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    name = "switch_recursive_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchRecursiveFlow")
    assert run["end"].task.data.final == 10
    assert run["exit_loop"].task.data.count == 10
    laps = run["loop_step"].tasks()
    assert len(laps) == 10
    assert len({t.id for t in laps}) == 10
    by_count = {t.data.count: t for t in laps}
    assert sorted(by_count) == list(range(1, 11))
    # Lap n read lap n-1; the first read start; the last one's only child is exit_loop.
    assert [p.pathspec for p in by_count[1].parent_tasks] == [run["start"].task.pathspec]
    for count in range(2, 11):
        parents = [p.pathspec for p in by_count[count].parent_tasks]
        assert parents == [by_count[count - 1].pathspec]
    assert [c.pathspec for c in by_count[10].child_tasks] == [run["exit_loop"].task.pathspec]
    assert run["end"].task.data.laps == [by_count[n].id for n in range(1, 11)]


def test_a_loop_back_to_an_earlier_step(tmp_path: Path, run_flow: RunFlow, datastore: Path) -> None:
    name = "switch_loop_back_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchLoopBackFlow")
    assert run["end"].task.data.final == (20, 4)
    assert len(run["prepare"].tasks()) == 4 and len(run["check"].tasks()) == 4


def test_resume_from_a_step_in_a_loop_clones_the_laps_before_it(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    name = "switch_loop_back_flow.py"
    first, _ = _run(tmp_path, run_flow, datastore, name, "SwitchLoopBackFlow")
    resumed = run_flow(tmp_path / name, "resume", "--step", "check", timeout=180)
    assert resumed.returncode == 0, resumed.output
    run = Flow("SwitchLoopBackFlow", str(datastore))[resumed.run_id or ""]
    assert run.origin_run_id == first.run_id
    assert run["end"].task.data.final == (20, 4)
    assert run["start"].task.origin_pathspec is not None
    # prepare's first lap comes before check: cloned. Every lap of check runs again, and
    # so does every lap of prepare after one (it reads a check that ran again).
    prepares = sorted(run["prepare"].tasks(), key=lambda t: t.data.prepared)
    assert [t.origin_pathspec is not None for t in prepares] == [True, False, False, False]
    assert all(t.origin_pathspec is None for t in run["check"].tasks())
    assert len(run["check"].tasks()) == 4
    assert run["end"].task.origin_pathspec is None


def test_a_recursive_switch_inside_a_foreach(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    name = "switch_recursive_in_foreach_flow.py"
    _, run = _run(tmp_path, run_flow, datastore, name, "SwitchRecursiveInForeachFlow")
    join = run["join"].task.data
    assert join.results == [
        "Item A finished after 3 iterations.",
        "Item B finished after 5 iterations.",
        "Item C finished after 2 iterations.",
    ]
    # The foreach frames survive the loop: each item's exit step keeps its position.
    assert join.positions == [0, 1, 2]
    assert len(run["loop_body"].tasks()) == 3 + 5 + 2
    assert sorted(-1 if t.index is None else t.index for t in run["loop_body"]) == [
        0,
        0,
        0,
        1,
        1,
        1,
        1,
        1,
        2,
        2,
    ]


def test_resume_of_a_failed_recursive_switch_reuses_the_finished_laps(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(shutil.copy(TEST_FLOWS / "switch_recursive_flow.py", tmp_path))
    monkeypatch.setenv("FAIL_AT_COUNT", "6")
    failed = run_flow(path, "run", timeout=180)
    assert failed.returncode == 1
    assert "lap 6 breaks" in failed.output
    monkeypatch.delenv("FAIL_AT_COUNT")
    resumed = run_flow(path, "resume", failed.run_id or "", timeout=180)
    assert resumed.returncode == 0, resumed.output
    run = Flow("SwitchRecursiveFlow", str(datastore))[resumed.run_id or ""]
    assert run.origin_run_id == failed.run_id
    assert run["end"].task.data.final == 10
    laps = run["loop_step"].tasks()
    assert len(laps) == 10
    by_count = {t.data.count: t for t in laps}
    origin = f"SwitchRecursiveFlow/{failed.run_id}/loop_step/{by_count[5].id}"
    assert by_count[5].origin_pathspec == origin  # reused
    assert all(by_count[n].origin_pathspec is not None for n in range(1, 6))
    assert all(by_count[n].origin_pathspec is None for n in range(6, 11))  # ran again
    # The lap that ran again has a new task id and reads the reused lap 5.
    assert by_count[6].id not in {
        t.id for t in Flow("SwitchRecursiveFlow", str(datastore))[failed.run_id or ""]["loop_step"]
    }
    assert [p.pathspec for p in by_count[6].parent_tasks] == [by_count[5].pathspec]


def test_resume_of_a_recursive_switch_inside_a_foreach(
    tmp_path: Path, run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(shutil.copy(TEST_FLOWS / "switch_recursive_in_foreach_flow.py", tmp_path))
    monkeypatch.setenv("FAIL_ITEM", "B")
    monkeypatch.setenv("FAIL_AT_COUNT", "3")
    failed = run_flow(path, "run", timeout=180)
    assert failed.returncode == 1
    assert "item B lap 3 breaks" in failed.output
    monkeypatch.delenv("FAIL_ITEM")
    resumed = run_flow(path, "resume", failed.run_id or "", timeout=180)
    assert resumed.returncode == 0, resumed.output
    run = Flow("SwitchRecursiveInForeachFlow", str(datastore))[resumed.run_id or ""]
    assert run["join"].task.data.results == [
        "Item A finished after 3 iterations.",
        "Item B finished after 5 iterations.",
        "Item C finished after 2 iterations.",
    ]
    b_laps = {t.data.item_loop_count: t for t in run["loop_body"] if t.data.item_id == "B"}
    assert sorted(b_laps) == [1, 2, 3, 4, 5]
    assert b_laps[2].origin_pathspec is not None and b_laps[3].origin_pathspec is None
    exits = {t.data.item_id: t for t in run["exit_item_loop"]}
    assert exits["B"].origin_pathspec is None


def test_show_names_the_condition_and_each_case(tmp_path: Path, run_flow: RunFlow) -> None:
    path = Path(shutil.copy(TEST_FLOWS / "switch_recursive_flow.py", tmp_path))
    shown = run_flow(path, "show")
    assert shown.returncode == 0, shown.output
    assert "Step loop_step  (switch on 'loop_status', line" in shown.stdout
    assert "=> one of 'continue': loop_step, 'exit': exit_loop" in shown.stdout


BATCH_LOOP_FLOW = """
from batchwright import FlowSpec, batch, step


class BatchLoopFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.next(self.loop_step)

    @batch(cpu=1, memory=1024)
    @step
    def loop_step(self):
        self.count += 1
        self.status = "again" if self.count < 3 else "done"
        self.next({"again": self.loop_step, "done": self.end}, condition="status")

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BatchLoopFlow()
"""


def _outputs_file(tmp_path: Path) -> Path:
    """A 'cdk deploy --outputs-file' document of an environment 'Sample' with one queue."""
    from batchwright.environment.descriptor import (
        ComputeEnvironmentDescription,
        EnvironmentDescriptor,
        QueueDescription,
    )

    arn = "arn:aws:batch:us-east-1:123456789012"
    queue = QueueDescription(
        key="cpu",
        name="sample-cpu",
        arn=f"{arn}:job-queue/sample-cpu",
        platform="EC2",
        accelerator="none",
        compute_environments=(
            ComputeEnvironmentDescription(
                arn=f"{arn}:compute-environment/cpu",
                platform="EC2",
                order=1,
                max_vcpus=64,
                instance_types=("c5.large",),
                accelerator="none",
            ),
        ),
    )
    env = EnvironmentDescriptor(
        name="Sample",
        region="us-east-1",
        bucket="bucket",
        prefix="bw",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        execution_role_arn="arn:aws:iam::123456789012:role/execution",
        log_group="/bw",
        default_image="python:3.12-slim",
        queues=(queue,),
    )
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"Sample": {"BatchwrightEnvironment": env.to_json()}}))
    return path


def test_a_batch_step_in_a_loop_is_planned_once_and_runs_each_lap(
    tmp_path: Path, run_flow: RunFlow, datastore: Path
) -> None:
    path = write_flow(tmp_path, "batch_loop_flow", BATCH_LOOP_FLOW)
    environment = ("--environment", "Sample", "--outputs-file", str(_outputs_file(tmp_path)))
    planned = run_flow(path, "plan", *environment)
    assert planned.returncode == 0, planned.output
    assert "step loop_step: AWS Batch" in planned.stdout
    assert planned.stdout.count("step loop_step") == 1
    done = run_flow(path, "run", "--run-batch-locally", *environment, timeout=120)
    assert done.returncode == 0, done.output
    run = Flow("BatchLoopFlow", str(datastore))[done.run_id or ""]
    assert sorted(t.data.count for t in run["loop_step"]) == [1, 2, 3]
