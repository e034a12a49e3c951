"""The graph built from a flow's source: node types, parents, open splits, matching joins."""

from __future__ import annotations

import pytest

from batchwright import FlowSpec, step
from batchwright.errors import GraphError
from batchwright.graph import FlowGraph
from batchwright.lint import validate


class NestedFlow(FlowSpec):
    """A split inside a foreach, and a join that fans out again."""

    @step
    def start(self):
        """Begin."""
        self.items = [1, 2]
        self.next(self.outer, foreach="items")

    @step
    def outer(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.inner_join)

    @step
    def right(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.more = [3]
        self.next(self.again, foreach="more")

    @step
    def again(self):
        self.next(self.last_join)

    @step
    def last_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        """Finish."""


def test_node_types_and_links() -> None:
    graph = FlowGraph(NestedFlow)
    validate(graph)
    names = [n.name for n in graph]
    assert names[0] == "start" and sorted(names) == sorted(
        ["start", "outer", "left", "right", "inner_join", "outer_join", "again", "last_join", "end"]
    )
    assert graph["start"].is_foreach and graph["start"].foreach_param == "items"
    assert graph["outer"].type == "split" and graph["outer"].out_funcs == ["left", "right"]
    assert graph["inner_join"].type == "join"
    assert sorted(graph["inner_join"].in_funcs) == ["left", "right"]
    assert graph["outer_join"].type == "join" and graph["outer_join"].is_foreach
    assert graph["end"].type == "end"


def test_open_splits_and_matching_joins() -> None:
    graph = FlowGraph(NestedFlow)
    assert graph["left"].split_parents == ["start", "outer"]
    assert graph["inner_join"].split_parents == ["start"]
    assert graph["outer_join"].split_parents == []
    assert graph["again"].split_parents == ["outer_join"]
    assert graph["start"].matching_join == "outer_join"
    assert graph["outer"].matching_join == "inner_join"
    assert graph["outer_join"].matching_join == "last_join"
    assert graph.downstream("inner_join") == {
        "inner_join",
        "outer_join",
        "again",
        "last_join",
        "end",
    }


def test_lines_and_docstrings_come_from_the_source() -> None:
    graph = FlowGraph(NestedFlow)
    start = graph["start"]
    assert start.doc == "Begin."
    assert start.line == NestedFlow.start.__code__.co_firstlineno + 1  # the def, after @step
    assert start.next_line == start.line + 3  # def, docstring, items, next
    assert start.source_file.endswith("test_graph.py")


class BackToStartFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.start)

    @step
    def end(self):
        pass


def test_a_step_leading_back_to_start_is_blamed_at_its_own_line() -> None:
    graph = FlowGraph(BackToStartFlow)
    with pytest.raises(GraphError) as refused:
        validate(graph)
    line = graph["a"].next_line
    assert line > graph["start"].line
    assert str(refused.value) == (
        f"step 'a' (line {line}): self.next() goes back to 'start'; nothing may lead to "
        "start. Send it to another step (a loop is written as a foreach)."
    )


def _built_with_exec() -> type[FlowSpec]:
    namespace: dict[str, object] = {}
    exec("def start(self):\n    self.next(self.end)\n", namespace)
    return type(
        "ExecFlow",
        (FlowSpec,),
        {"start": step(namespace["start"]), "end": BackToStartFlow.end},  # type: ignore[arg-type]
    )


def test_a_step_without_readable_source_says_how_to_define_it() -> None:
    with pytest.raises(GraphError) as refused:
        validate(FlowGraph(_built_with_exec()))
    assert str(refused.value) == (
        "step 'start': its source code cannot be read, so its transitions are unknown. "
        "Define the step with 'def' in the flow's .py file: batchwright reads each step's "
        "source to learn where it goes."
    )
