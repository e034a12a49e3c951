"""The flow's graph, built once from the source of its ``@step`` methods.

Each step's source is parsed with :mod:`ast`; its last statement must be
``self.next(...)``, which gives the step's successors and, with ``foreach="var"``, the
artifact it fans out over, or with ``num_parallel=N`` the nodes of a parallel step (a
foreach over node indexes whose members run together as one multi-node job). One pass
then assigns node types (start, linear, split, foreach, join, end), parents, the stack
of open splits at each node and the join that closes each split; a step meant as a join
but written without ``inputs`` is recognised as one, so that the error lands on it. The
checks that reject malformed graphs live in :mod:`batchwright.lint`; this module records
what it finds (including problems) without raising, so every check reports with the
step's name and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any


class Node:
    """One step of the graph.

    A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, and the
    graph is built in every task process, where start-up time matters.
    """

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        #: start | linear | split | foreach | join | end
        self.type = "linear"
        self.line = 0
        self.source_file = ""
        self.doc = doc
        #: Successors named in ``self.next(...)``, in order.
        self.out_funcs: list[str] = []
        self.in_funcs: list[str] = []
        #: The artifact a foreach step fans out over.
        self.foreach_param: str | None = None
        #: True when ``self.next(..., num_parallel=N)`` starts a parallel step: a foreach
        #: over N node indexes whose members run at once, as one multi-node job.
        self.parallel_foreach = False
        #: ``N`` when ``num_parallel`` is an integer literal (what the plan can check);
        #: None when it is computed at run time.
        self.num_parallel: int | None = None
        #: True for a step that runs on N nodes at once: decorated ``@parallel``, or
        #: reached through ``num_parallel`` (see :attr:`parallel_step`).
        self.parallel_decorated = False
        #: Set when linking: the step follows a ``num_parallel`` split.
        self.after_parallel_split = False
        #: True when the method takes ``inputs`` (``def join(self, inputs)``).
        self.takes_inputs = False
        #: The split/foreach steps that are open at this node, outermost first.
        self.split_parents: list[str] = []
        #: For split and foreach nodes: the join that closes them.
        self.matching_join: str | None = None
        #: Problems found while parsing ``self.next``; reported by lint with this node's line.
        self.next_problem: str | None = None
        self.next_line = 0
        #: Number of positional parameters besides ``self``.
        self.num_args = 0
        #: True when a step without ``inputs`` still reads like a join: it is called
        #: ``join`` (or ``*_join``, ``join_*``), or its body reads ``inputs`` or calls
        #: ``self.merge_artifacts``.
        self.looks_like_join = False
        #: True for a step taken as the join of a split although it has no ``inputs``
        #: argument (see :meth:`FlowGraph._infer_joins_without_inputs`).
        self.missing_inputs = False

    def __repr__(self) -> str:
        return f"Node({self.name!r}, type={self.type!r}, out={self.out_funcs})"

    @property
    def is_split(self) -> bool:
        """True for nodes that open a split (static or foreach); a join may also split."""
        return self.is_foreach or (self.name != "end" and len(self.out_funcs) > 1)

    @property
    def is_foreach(self) -> bool:
        """True for nodes that fan out over an artifact or over the nodes of a parallel
        step (a join may also do so)."""
        return (self.foreach_param is not None or self.parallel_foreach) and self.name != "end"

    @property
    def parallel_step(self) -> bool:
        """True for a step whose tasks are the nodes of one multi-node run
        (``@parallel``, or the target of ``num_parallel``, as in Metaflow)."""
        return self.parallel_decorated or self.after_parallel_split


class FlowGraph:
    """All nodes of a flow, by name, with traversal helpers."""

    def __init__(self, flow_class: type) -> None:
        self.name = flow_class.__name__
        self.doc = cleandoc(flow_class.__doc__)
        self.nodes: dict[str, Node] = {}
        for attribute in dir(flow_class):
            function = getattr(flow_class, attribute, None)
            if callable(function) and getattr(function, "_is_step", False):
                self.nodes[attribute] = _parse_step(attribute, function)
        self._link()

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(self.sorted_nodes())

    def sorted_nodes(self) -> list[Node]:
        """Nodes in execution order from ``start`` (unreachable ones last, by line)."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen or name not in self.nodes:
                return
            seen.add(name)
            order.append(name)
            for child in self.nodes[name].out_funcs:
                visit(child)

        visit("start")
        rest = sorted((n for n in self.nodes if n not in seen), key=lambda n: self.nodes[n].line)
        return [self.nodes[n] for n in order + rest]

    def _link(self) -> None:
        for node in self.nodes.values():
            for child in node.out_funcs:
                if child in self.nodes:
                    self.nodes[child].in_funcs.append(node.name)
                    if node.parallel_foreach:
                        self.nodes[child].after_parallel_split = True
        for node in self.nodes.values():
            if node.name == "start":
                node.type = "start"
            elif node.name == "end":
                node.type = "end"
            elif node.takes_inputs:
                node.type = "join"
            if node.name != "end" and node.type != "join":
                if node.is_foreach:
                    node.type = "foreach"
                elif len(node.out_funcs) > 1:
                    node.type = "split"
        self._assign_split_parents()
        self._infer_joins_without_inputs()

    def _infer_joins_without_inputs(self) -> None:
        """Take a step written as ``def join(self)`` as the join it was meant to be.

        After a foreach, such a step has one parent, so nothing marks it as a join: the
        foreach stays open down to ``end`` and would be blamed for never being joined,
        with a fix (add a join step) naming a step that already exists. When a split is
        still open at ``end``, the first step inside it that looks like a join (see
        :attr:`Node.looks_like_join`) becomes its join, marked :attr:`Node.missing_inputs`;
        lint then reports that step, at its line, as a join without ``inputs``. A split
        reaching ``end`` with no such step is left open and reported as never joined.
        """
        order = self.topological_order() or []
        for _ in range(len(self.nodes)):
            end = self.nodes.get("end")
            if end is None or not end.split_parents:
                return
            open_split = end.split_parents[-1]
            candidate = next(
                (
                    self.nodes[name]
                    for name in order
                    if open_split in self.nodes[name].split_parents
                    and self.nodes[name].type not in ("join", "end")
                    and self.nodes[name].looks_like_join
                ),
                None,
            )
            if candidate is None:
                return
            candidate.type = "join"
            candidate.missing_inputs = True
            self._assign_split_parents()

    def _assign_split_parents(self) -> None:
        # Walk in topological order; a cycle leaves nodes unvisited (lint reports it).
        order = self.topological_order()
        if order is None:
            return
        for node in self.nodes.values():
            node.split_parents = []
            node.matching_join = None
        for name in order:
            node = self.nodes[name]
            stacks = [self.outgoing_stack(p) for p in node.in_funcs if p in self.nodes]
            if not stacks:
                continue
            if node.type == "join":
                tops = {s[-1] for s in stacks if s}
                if len(tops) == 1 and all(stacks):
                    split = tops.pop()
                    node.split_parents = list(stacks[0][:-1])
                    self.nodes[split].matching_join = self.nodes[split].matching_join or name
                else:
                    node.split_parents = list(min(stacks, key=len)[:-1]) if all(stacks) else []
            else:
                node.split_parents = list(stacks[0])

    def outgoing_stack(self, name: str) -> list[str]:
        """The open splits after ``name`` ran (its own split included)."""
        node = self.nodes[name]
        return [*node.split_parents, name] if node.is_split else list(node.split_parents)

    def topological_order(self) -> list[str] | None:
        """Names reachable from start in topological order, or None when there is a cycle."""
        if "start" not in self.nodes:
            return []
        reachable = self.reachable()
        indegree = {n: sum(1 for p in self.nodes[n].in_funcs if p in reachable) for n in reachable}
        ready = ["start"] if indegree.get("start", 0) == 0 else []
        order: list[str] = []
        while ready:
            name = ready.pop()
            order.append(name)
            for child in self.nodes[name].out_funcs:
                if child in indegree:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        ready.append(child)
        return order if len(order) == len(reachable) else None

    def reachable(self) -> set[str]:
        """Names reachable from ``start`` following ``self.next``."""
        seen: set[str] = set()
        todo = ["start"] if "start" in self.nodes else []
        while todo:
            name = todo.pop()
            if name in seen or name not in self.nodes:
                continue
            seen.add(name)
            todo.extend(self.nodes[name].out_funcs)
        return seen

    def downstream(self, name: str) -> set[str]:
        """``name`` and every step after it."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in self.nodes:
                continue
            seen.add(current)
            todo.extend(self.nodes[current].out_funcs)
        return seen


def _parse_step(name: str, function: Any) -> Node:
    code = getattr(function, "__code__", None)
    node = Node(name=name, doc=cleandoc(getattr(function, "__doc__", None)))
    definition = _find_definition(code) if code is not None else None
    if definition is None:
        node.next_problem = "its source code cannot be read, so its transitions are unknown"
        return node
    node.source_file = code.co_filename if code is not None else ""
    node.line = definition.lineno
    args = definition.args
    node.num_args = len(args.posonlyargs) + len(args.args) - 1
    node.takes_inputs = node.num_args >= 1
    node.looks_like_join = not node.takes_inputs and _looks_like_join(name, definition)
    node.parallel_decorated = any(
        getattr(d, "name", None) == "parallel" for d in getattr(function, "_step_decorators", ())
    )
    body = [s for s in definition.body if not _is_docstring(s)]
    if not body:
        if name != "end":
            node.next_problem = "does not end with self.next(...) (its body is empty)"
            node.next_line = node.line
        return node
    last = body[-1]
    node.next_line = last.lineno
    call = last.value if isinstance(last, ast.Expr) else None
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "next"
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "self"
    ):
        if name != "end":
            node.next_problem = "does not end with self.next(...)"
        return node
    if name == "end":
        node.next_problem = "is the end step and must not call self.next(...)"
    for arg in call.args:
        if (
            isinstance(arg, ast.Attribute)
            and isinstance(arg.value, ast.Name)
            and arg.value.id == "self"
        ):
            node.out_funcs.append(arg.attr)
        else:
            node.next_problem = (
                f"self.next() takes steps written as self.<step>, got '{ast.unparse(arg)}'"
            )
    if not call.args:
        node.next_problem = "self.next() names no step"
    for keyword in call.keywords:
        if keyword.arg == "foreach":
            if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                node.foreach_param = keyword.value.value
            else:
                node.next_problem = (
                    "foreach= must be the artifact's name as a string literal, "
                    f"got {ast.unparse(keyword.value)}"
                )
        elif keyword.arg == "num_parallel":
            node.parallel_foreach = True
            value = keyword.value
            if isinstance(value, ast.Constant) and type(value.value) is int:
                node.num_parallel = value.value
            elif isinstance(value, ast.Constant):
                node.next_problem = (
                    f"num_parallel= must be a whole number of nodes, got {ast.unparse(value)}"
                )
        else:
            node.next_problem = f"self.next() does not accept the keyword '{keyword.arg}'"
    if node.parallel_foreach and node.foreach_param is not None:
        node.next_problem = "self.next() takes foreach= or num_parallel=, not both"
    return node


# Each source file is parsed once per process; functions are found by name and first line
# (the first decorator's line, as in ``co_firstlineno``). This avoids ``inspect`` and its
# tokenizer, which would dominate the start-up time of every task.
_PARSED: dict[str, dict[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef]] = {}


def _find_definition(code: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    filename = code.co_filename
    if filename not in _PARSED:
        try:
            with open(filename, "rb") as source:
                tree = ast.parse(source.read(), filename)
        except (OSError, SyntaxError, ValueError):
            return None
        index: dict[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for item in ast.walk(tree):
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                first = item.decorator_list[0].lineno if item.decorator_list else item.lineno
                index[(item.name, first)] = item
        _PARSED[filename] = index
    return _PARSED[filename].get((code.co_name, code.co_firstlineno))


def _looks_like_join(name: str, definition: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a step reads like a join: named ``join``, ``*_join`` or ``join_*``, or its
    body reads a name ``inputs`` or calls ``self.merge_artifacts``."""
    if "join" in name.lower().split("_"):
        return True
    for item in ast.walk(definition):
        if isinstance(item, ast.Name) and item.id == "inputs" and isinstance(item.ctx, ast.Load):
            return True
        if (
            isinstance(item, ast.Attribute)
            and item.attr == "merge_artifacts"
            and isinstance(item.value, ast.Name)
            and item.value.id == "self"
        ):
            return True
    return False


def cleandoc(text: str | None) -> str:
    """A docstring without its indentation and surrounding blank lines."""
    if not text:
        return ""
    lines = text.expandtabs().splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    margin = min(indents) if indents else 0
    cleaned = [lines[0].strip()] + [line[margin:].rstrip() for line in lines[1:]]
    return "\n".join(cleaned).strip("\n")


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
