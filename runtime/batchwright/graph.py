"""The flow's graph, built once from the source of its ``@step`` methods.

Each step's source is parsed with :mod:`ast`; its last statement must be
``self.next(...)``, which gives the step's successors and, with ``foreach="var"``, the
artifact it fans out over, or with ``num_parallel=N`` the nodes of a parallel step (a
foreach over node indexes whose members run together as one multi-node job), or, written
``self.next({"key": self.a, ...}, condition="var")``, the cases of a *switch*: one case
runs, chosen at run time by the value of artifact ``var`` (node type ``split-switch``, as
in Metaflow). A switch opens no split and has no join: its cases meet again as ordinary
steps, and a case may go back to the switch or to a step before it (a loop; each lap is
a new task of the same step). One pass then assigns node types (start, linear, split,
foreach, split-switch, join, end), parents, the stack of open splits at each node and
the join that closes each split; a step meant as a join but written without ``inputs``
is recognised as one, so that the error lands on it. The
checks that reject malformed graphs live in :mod:`batchwright.lint`; this module records
what it finds (including problems) without raising, so every check reports with the
step's name and line.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: What a switch case's key may be: a literal of one of these types (as in Metaflow, the
#: condition's value must equal the key; ``"1"`` and ``1`` are different cases).
CaseKey = str | int | bool

#: The node type of a switch, as Metaflow names it.
SWITCH = "split-switch"


class Node:
    """One step of the graph.

    A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, and the
    graph is built in every task process, where start-up time matters.
    """

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        #: start | linear | split | foreach | split-switch | join | end
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
        #: A switch: its cases (key -> step, in source order) and the artifact whose value
        #: picks one (``self.next({...}, condition="var")``).
        self.switch_cases: dict[CaseKey, str] = {}
        self.condition: str | None = None
        #: The branch of each open split that leads here, parallel to :attr:`split_parents`
        #: (for a foreach, its one child): steps with equal stacks and branches are never
        #: both run for one item, so a step they both reach needs no join.
        self.split_branches: list[str] = []
        #: Problems found while parsing ``self.next``; reported by lint with this node's line.
        self.next_problem: str | None = None
        #: How to fix :attr:`next_problem`, when it needs a fix of its own.
        self.next_fix: str | None = None
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
        """True for nodes that open a split (static or foreach); a join may also split.
        A switch is not one: only one of its cases runs."""
        return self.is_foreach or (
            self.name != "end" and not self.is_switch and len(self.out_funcs) > 1
        )

    @property
    def is_switch(self) -> bool:
        """True for a step that ends with ``self.next({...}, condition="var")``."""
        return self.condition is not None and bool(self.switch_cases)

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
        #: Edges ``(switch, step)`` of a case that goes back to the switch or to a step
        #: before it: they make loops, and are left out of the topological order.
        self.loop_edges: set[tuple[str, str]] = set()
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
                elif node.is_switch:
                    node.type = SWITCH
                elif len(node.out_funcs) > 1:
                    node.type = "split"
        self.loop_edges = self._find_loop_edges()
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
            node.split_branches = []
            node.matching_join = None
        for name in order:
            node = self.nodes[name]
            parents = [p for p in self.forward_parents(name) if p in self.nodes]
            stacks = [self.outgoing_stack(p) for p in parents]
            if not stacks:
                continue
            branches = [self.outgoing_branches(p, name) for p in parents]
            if node.type == "join":
                tops = {s[-1] for s in stacks if s}
                if len(tops) == 1 and all(stacks):
                    split = tops.pop()
                    node.split_parents = list(stacks[0][:-1])
                    node.split_branches = list(branches[0][:-1])
                    self.nodes[split].matching_join = self.nodes[split].matching_join or name
                elif all(stacks):
                    shortest = min(range(len(stacks)), key=lambda i: len(stacks[i]))
                    node.split_parents = list(stacks[shortest][:-1])
                    node.split_branches = list(branches[shortest][:-1])
            else:
                node.split_parents = list(stacks[0])
                node.split_branches = list(branches[0])

    def outgoing_stack(self, name: str) -> list[str]:
        """The open splits after ``name`` ran (its own split included)."""
        node = self.nodes[name]
        return [*node.split_parents, name] if node.is_split else list(node.split_parents)

    def outgoing_branches(self, name: str, child: str) -> list[str]:
        """The branches of :meth:`outgoing_stack` that ``name`` takes to go to ``child``."""
        node = self.nodes[name]
        return [*node.split_branches, child] if node.is_split else list(node.split_branches)

    def forward_parents(self, name: str) -> list[str]:
        """The steps that lead to ``name``, except through a loop's way back."""
        return [p for p in self.nodes[name].in_funcs if (p, name) not in self.loop_edges]

    def loops(self) -> list[list[str]]:
        """The steps of each loop (a strongly connected part of the graph with a cycle), in
        the order :meth:`sorted_nodes` gives them."""
        parts = _cycles(self.nodes, lambda name: self.nodes[name].out_funcs)
        rank = {node.name: i for i, node in enumerate(self.sorted_nodes())}
        return [
            sorted(part, key=rank.__getitem__)
            for part in sorted(parts, key=lambda p: min(rank[n] for n in p))
        ]

    def back_edges(self) -> list[tuple[str, str]]:
        """Edges that close a cycle when the graph is walked depth first from ``start``,
        cases in their written order (used to name the step of a cycle that is no loop;
        the ways back of loops are :attr:`loop_edges`)."""
        found: list[tuple[str, str]] = []
        state: dict[str, int] = {}
        if "start" not in self.nodes:
            return found
        state["start"] = 1
        work: list[tuple[str, Iterator[str]]] = [("start", iter(self.nodes["start"].out_funcs))]
        while work:
            name, children = work[-1]
            child = next((c for c in children if c in self.nodes), None)
            if child is None:
                state[name] = 2
                work.pop()
            elif state.get(child) == 1:
                found.append((name, child))
            elif child not in state:
                state[child] = 1
                work.append((child, iter(self.nodes[child].out_funcs)))
        return found

    def _find_loop_edges(self) -> set[tuple[str, str]]:
        """The way back of each loop: in every cycle (strongly connected part) that holds a
        switch with a case leaving it, one case of such a switch that stays inside. Which
        one does not depend on the order of the cases: a case back to where the part is
        entered is preferred, then the switch and the target written first. The part left
        once that edge is gone may hold inner loops, found the same way. A cycle with no
        switch keeps its edges and makes :meth:`topological_order` fail; one whose switches
        all stay inside is a loop that :mod:`batchwright.lint` refuses as never ending."""
        found: set[tuple[str, str]] = set()

        def children(name: str) -> list[str]:
            return [c for c in self.nodes[name].out_funcs if (name, c) not in found]

        def within(part: set[str]) -> Callable[[str], list[str]]:
            return lambda name: [c for c in children(name) if c in part]

        todo = _cycles(self.nodes, children)
        while todo:
            part = todo.pop()
            entries = {c for n in self.nodes if n not in part for c in children(n) if c in part}
            candidates = [
                (name, target)
                for name in part
                if self.nodes[name].is_switch
                for target in children(name)
                if target in part
            ]
            leaving = [e for e in candidates if any(c not in part for c in children(e[0]))]
            # A loop no switch leaves is still one (lint then says that it never ends).
            candidates = leaving or candidates
            if not candidates:
                continue
            edge = min(
                candidates,
                key=lambda e: (
                    e[1] not in entries,
                    self.nodes[e[0]].line,
                    e[0],
                    self.nodes[e[1]].line,
                    e[1],
                ),
            )
            found.add(edge)
            todo.extend(_cycles(part, within(part)))
        return found

    def topological_order(self) -> list[str] | None:
        """Names reachable from start in topological order, or None when there is a cycle
        other than a loop through a switch (whose ways back, :attr:`loop_edges`, are left
        out)."""
        if "start" not in self.nodes:
            return []
        reachable = self.reachable()
        indegree = {n: sum(1 for p in self.forward_parents(n) if p in reachable) for n in reachable}
        ready = ["start"] if indegree.get("start", 0) == 0 else []
        order: list[str] = []
        while ready:
            name = ready.pop()
            order.append(name)
            for child in self.nodes[name].out_funcs:
                if (name, child) in self.loop_edges:
                    continue
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

    def downstream(self, name: str, through_loops: bool = True) -> set[str]:
        """``name`` and every step after it; with ``through_loops=False``, not following
        a loop's way back (:attr:`loop_edges`), so the steps of a loop before ``name`` are
        not after it."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in self.nodes:
                continue
            seen.add(current)
            todo.extend(
                child
                for child in self.nodes[current].out_funcs
                if through_loops or (current, child) not in self.loop_edges
            )
        return seen


def _cycles(names: Iterable[str], children: Callable[[str], list[str]]) -> list[set[str]]:
    """The strongly connected parts of the graph over ``names`` (edges from ``children``,
    those to other names ignored) that hold a cycle: several steps, or one that goes back
    to itself."""
    nodes = set(names)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[set[str]] = []
    # Iterative Tarjan: a long chain of steps must not exhaust Python's recursion.
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(children(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, todo = work[-1]
            child = next((c for c in todo if c in nodes), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(children(child))))
                elif child in on_stack:
                    low[name] = min(low[name], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[name])
            if low[name] == index[name]:
                part: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.add(member)
                    if member == name:
                        break
                if len(part) > 1 or name in children(name):
                    parts.append(part)
    return parts


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
    if (call.args and isinstance(call.args[0], ast.Dict)) or any(
        k.arg == "condition" for k in call.keywords
    ):
        if name != "end":
            _parse_switch(node, call)
        return node
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


_SWITCH_FIX = (
    'Write a switch as self.next({"<value>": self.<step>, ...}, condition="<artifact>"): '
    "one dict of literal keys and self.<step> values, and the artifact's name as a string."
)


def _parse_switch(node: Node, call: ast.Call) -> None:
    """Reads ``self.next({"key": self.step, ...}, condition="var")`` into ``node``; a
    malformed one leaves :attr:`Node.next_problem` (and its fix) for lint to report."""

    def problem(text: str) -> None:
        node.next_problem = node.next_problem or text
        node.next_fix = _SWITCH_FIX

    cases = call.args[0] if call.args else None
    condition: str | None = None
    for keyword in call.keywords:
        if keyword.arg == "condition":
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                condition = value.value
            else:
                problem(
                    "condition= must be the artifact's name as a string literal, got "
                    f"{ast.unparse(value)}"
                )
        elif keyword.arg in ("foreach", "num_parallel"):
            problem(
                f"a switch (condition=) cannot be combined with {keyword.arg}=; a case may go "
                f"to a step that does the {keyword.arg}"
            )
        else:
            problem(f"self.next() does not accept the keyword '{keyword.arg}'")
    if not isinstance(cases, ast.Dict) or len(call.args) != 1:
        shown = ", ".join(ast.unparse(a) for a in call.args) or "no step"
        problem(f"condition= needs one dict of cases as the only argument, got {shown}")
        return
    if not any(k.arg == "condition" for k in call.keywords):
        problem("self.next() got a dict of cases without condition=, so nothing picks a case")
    if not cases.keys:
        problem("self.next() got an empty dict of cases")
    parsed: dict[CaseKey, str] = {}
    for key, value in zip(cases.keys, cases.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str | int | bool)):
            shown = "**" + ast.unparse(value) if key is None else ast.unparse(key)
            problem(f"switch case keys must be literal strings, numbers or booleans, got {shown}")
            continue
        if key.value in parsed:
            problem(f"switch case {key.value!r} is given twice")
            continue
        if not (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            problem(
                f"switch case {key.value!r} must name a step as self.<step>, got "
                f"{ast.unparse(value)}"
            )
            continue
        parsed[key.value] = value.attr
    if node.next_problem is not None:
        return
    node.condition = condition
    node.switch_cases = parsed
    node.out_funcs = list(dict.fromkeys(parsed.values()))


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
