"""Graph checks: many small registered functions, each raising GraphError with step and line.

:func:`validate` runs every check in registration order and stops at the first error,
so the user fixes one clear problem at a time. Checks run before any task starts.
"""

from __future__ import annotations

from collections.abc import Callable

from batchwright.errors import GraphError
from batchwright.graph import FlowGraph, Node
from batchwright.multinode import MAX_NODES

Check = Callable[[FlowGraph], None]
_CHECKS: list[Check] = []

#: Names a step may not take: they are FlowSpec methods or attributes the runtime uses.
RESERVED_NAMES = frozenset({"next", "input", "index", "merge_artifacts", "foreach_stack", "name"})


def check(function: Check) -> Check:
    """Register a graph check (runs in registration order)."""
    _CHECKS.append(function)
    return function


def validate(graph: FlowGraph) -> None:
    """Run every registered check; raise the first GraphError found."""
    for function in _CHECKS:
        function(graph)


def _where(node: Node) -> dict[str, object]:
    return {"step": node.name, "line": node.line}


@check
def check_has_start_and_end(graph: FlowGraph) -> None:
    """The flow has a ``start`` and an ``end`` step."""
    for name, place in (("start", "first"), ("end", "last")):
        if name not in graph:
            raise GraphError(
                f"flow '{graph.name}' has no '{name}' step. Add '@step def {name}(self): ...' "
                f"as the {place} step."
            )


@check
def check_reserved_names(graph: FlowGraph) -> None:
    """No step takes a name the runtime uses."""
    for node in graph.sorted_nodes():
        if node.name in RESERVED_NAMES or node.name.startswith("_"):
            raise GraphError(
                f"'{node.name}' cannot be a step name (reserved or private). Rename the step.",
                **_where(node),  # type: ignore[arg-type]
            )


@check
def check_next_calls(graph: FlowGraph) -> None:
    """Every step but ``end`` ends with a well-formed ``self.next(...)``."""
    for node in graph.sorted_nodes():
        if node.next_problem:
            if not node.line:  # no source to read (a step built with exec, or in a REPL)
                fix = (
                    "Define the step with 'def' in the flow's .py file: batchwright reads "
                    "each step's source to learn where it goes."
                )
            elif node.next_fix is not None:
                fix = node.next_fix
            elif node.name != "end":
                fix = "End the step with self.next(self.<next_step>)."
            else:
                fix = "Remove the self.next(...) call from 'end'."
            raise GraphError(
                f"{node.next_problem}. {fix}",
                step=node.name,
                line=(node.next_line or node.line) or None,
            )


@check
def check_targets_exist(graph: FlowGraph) -> None:
    """``self.next`` names only existing steps."""
    for node in graph.sorted_nodes():
        for target in node.out_funcs:
            if target not in graph:
                known = ", ".join(sorted(graph.nodes))
                raise GraphError(
                    f"self.next() goes to '{target}', which is not a step of flow "
                    f"'{graph.name}' (steps: {known}). Fix the name or decorate that method "
                    "with @step.",
                    step=node.name,
                    line=node.next_line,
                )


@check
def check_start_and_end_arity(graph: FlowGraph) -> None:
    """``start`` takes no inputs; nothing leads back to ``start``."""
    start = graph["start"]
    if start.takes_inputs:
        raise GraphError(
            "the start step cannot be a join (it takes an 'inputs' argument). Define it as "
            "'def start(self)'.",
            **_where(start),  # type: ignore[arg-type]
        )
    if start.in_funcs:
        back = graph[sorted(start.in_funcs, key=lambda name: graph[name].line)[0]]
        raise GraphError(
            "self.next() goes back to 'start'; nothing may lead to start. Send it to "
            "another step (a loop is written as a foreach).",
            step=back.name,
            line=back.next_line or back.line,
        )


@check
def check_foreach_shape(graph: FlowGraph) -> None:
    """A foreach, or a ``num_parallel`` split, goes to exactly one step."""
    for node in graph.sorted_nodes():
        if node.is_foreach and len(node.out_funcs) != 1:
            keyword = (
                f"num_parallel={node.num_parallel or 'N'}"
                if node.parallel_foreach
                else f"foreach='{node.foreach_param}'"
            )
            raise GraphError(
                f"a {'num_parallel split' if node.parallel_foreach else 'foreach'} must go to "
                f"exactly one step, got {len(node.out_funcs)} ({', '.join(node.out_funcs)}). "
                f"Use self.next(self.<step>, {keyword}).",
                step=node.name,
                line=node.next_line,
            )


@check
def check_parallel_steps(graph: FlowGraph) -> None:
    """``num_parallel`` asks for 1 to :data:`MAX_NODES` nodes; a ``@parallel`` step
    is reached through ``num_parallel`` and goes straight to a join."""
    for node in graph.sorted_nodes():
        if node.num_parallel is not None and not 1 <= node.num_parallel <= MAX_NODES:
            raise GraphError(
                f"num_parallel={node.num_parallel} is out of range: a parallel step runs on 1 "
                f"to {MAX_NODES} nodes (AWS Batch's limit for one multi-node job). "
                "Ask for fewer nodes.",
                step=node.name,
                line=node.next_line,
            )
        if not node.parallel_step or node.name in ("start", "end"):
            continue
        if node.parallel_decorated and not node.after_parallel_split:
            raise GraphError(
                "is @parallel but no step reaches it with num_parallel. Call "
                f"self.next(self.{node.name}, num_parallel=N) in the step before it.",
                **_where(node),  # type: ignore[arg-type]
            )
        outside = [p for p in node.in_funcs if p in graph and not graph[p].parallel_foreach]
        if outside:
            raise GraphError(
                f"runs on several nodes, and is also reached from '{outside[0]}' without "
                "num_parallel. Reach a parallel step only through "
                f"self.next(self.{node.name}, num_parallel=N).",
                **_where(node),  # type: ignore[arg-type]
            )
        targets = [graph[c] for c in node.out_funcs if c in graph]
        if node.is_split or not targets or targets[0].type != "join":
            after = ", ".join(node.out_funcs) or "nothing"
            raise GraphError(
                f"is a parallel step, so its nodes must meet in a join right after it (it goes "
                f"to {after}). End it with self.next(self.<join>) where the join is "
                "'def <join>(self, inputs)', one input per node.",
                step=node.name,
                line=node.next_line or node.line,
            )


@check
def check_switch_steps(graph: FlowGraph) -> None:
    """A switch has at least two cases, and no case goes straight to a join (as in
    Metaflow: a join waits for every branch, and a case that is not taken never comes)."""
    for node in graph.sorted_nodes():
        if not node.is_switch:
            continue
        if len(node.switch_cases) < 2:
            raise GraphError(
                f"is a switch on '{node.condition}' with {len(node.switch_cases)} case; a "
                "switch chooses between at least two. Add a case, or write "
                f"self.next(self.{node.out_funcs[0]}) instead.",
                step=node.name,
                line=node.next_line,
            )
        for key, target in node.switch_cases.items():
            if graph[target].type == "join":
                raise GraphError(
                    f"switch case {key!r} goes straight to join '{target}'; a case may not "
                    "lead directly to a join. Put a step between them on that case "
                    f"(e.g. {key!r}: self.<step> with self.next(self.{target})).",
                    step=node.name,
                    line=node.next_line,
                )


@check
def check_no_cycles(graph: FlowGraph) -> None:
    """The graph has no cycle except loops through a switch: a case that goes back to the
    switch or to a step before it."""
    if graph.topological_order() is None:
        back = [edge for edge in graph.back_edges() if edge not in graph.loop_edges]
        step, target = back[0] if back else ("start", "start")
        raise GraphError(
            f"self.next() goes back to '{target}', which makes a loop that no switch "
            "decides to leave. Repeat work with a foreach, or loop with a switch step whose "
            f'case goes back: self.next({{"again": self.{target}, "done": self.<next_step>}}, '
            'condition="<artifact>").',
            step=step,
            line=graph[step].next_line,
        )


@check
def check_loops(graph: FlowGraph) -> None:
    """A loop holds only linear and switch steps (each lap runs one task of each, in the
    open splits of the steps before it), and every step can reach ``end``."""
    loops = graph.loops()
    for members in loops:
        laps = ", ".join(members)
        for name in members:
            node = graph[name]
            if node.is_split or node.type == "join" or node.parallel_step:
                kind = {"split": "split", "foreach": "foreach", "join": "join"}.get(
                    node.type, "parallel"
                )
                raise GraphError(
                    f"is a {kind} step inside a loop (through {laps}); a loop may hold only linear "
                    "and switch steps. Move the split and its join out of the loop, before "
                    "or after it.",
                    **_where(node),  # type: ignore[arg-type]
                )
    reaches_end: set[str] = set()
    todo = ["end"] if "end" in graph else []
    while todo:
        name = todo.pop()
        if name in reaches_end:
            continue
        reaches_end.add(name)
        todo.extend(p for p in graph[name].in_funcs if p in graph)
    for members in loops:
        if reaches_end.isdisjoint(members):
            switch = next(graph[n] for n in members if graph[n].is_switch)
            raise GraphError(
                f"is a switch whose every case goes back into its loop (through "
                f"{', '.join(members)}), so the flow never reaches 'end'. Give it a case "
                "that leaves the loop.",
                **_where(switch),  # type: ignore[arg-type]
            )
    reachable = graph.reachable()
    for node in graph.sorted_nodes():
        if node.name in reachable and node.name not in reaches_end:
            raise GraphError(
                "can never reach 'end': every case of the switch it leads to goes back "
                "into the loop. Give the switch a case that leaves the loop.",
                **_where(node),  # type: ignore[arg-type]
            )


@check
def check_reachable(graph: FlowGraph) -> None:
    """Every step is reachable from ``start``."""
    reachable = graph.reachable()
    for node in graph.sorted_nodes():
        if node.name not in reachable:
            raise GraphError(
                "is not reachable from 'start': no self.next() leads to it. Call "
                f"self.next(self.{node.name}) from an earlier step or remove it.",
                **_where(node),  # type: ignore[arg-type]
            )


@check
def check_end_is_terminal(graph: FlowGraph) -> None:
    """``end`` has no successors and every other step has one."""
    end = graph["end"]
    if end.takes_inputs:
        raise GraphError(
            "the end step cannot be a join. Add a join step before 'end'.",
            **_where(end),  # type: ignore[arg-type]
        )


@check
def check_several_parents_need_join(graph: FlowGraph) -> None:
    """A step reached from several steps is a join (takes ``inputs``)."""
    for node in graph.sorted_nodes():
        parents = graph.forward_parents(node.name)
        if len(parents) < 2 or node.takes_inputs:
            continue
        # Parents in the same branch of every open split differ only by the case a switch
        # took: one of them runs, so the step has one input and is no join.
        ways = {
            (tuple(graph.outgoing_stack(p)), tuple(graph.outgoing_branches(p, node.name)))
            for p in parents
        }
        if len(ways) > 1:
            raise GraphError(
                f"is reached from several steps ({', '.join(parents)}) and so must be a "
                f"join. Define it as 'def {node.name}(self, inputs)'.",
                **_where(node),  # type: ignore[arg-type]
            )


@check
def check_join_closes_a_split(graph: FlowGraph) -> None:
    """A join joins branches of one split, and all of them."""
    for node in graph.sorted_nodes():
        if node.type != "join":
            continue
        if node.num_args != 1:
            raise GraphError(
                f"a join takes exactly one argument besides self (inputs), got {node.num_args}. "
                f"Define it as 'def {node.name}(self, inputs)'.",
                **_where(node),  # type: ignore[arg-type]
            )
        parents = graph.forward_parents(node.name)
        stacks = [graph.outgoing_stack(p) for p in parents]
        if not stacks or not all(stacks):
            raise GraphError(
                "takes 'inputs' but there is no split or foreach open before it to join. "
                f"Define it as 'def {node.name}(self)' or split before it.",
                **_where(node),  # type: ignore[arg-type]
            )
        tops = {s[-1] for s in stacks}
        if len(tops) > 1:
            raise GraphError(
                "joins branches of different splits "
                f"({', '.join(sorted(tops))}): mismatched branches. Join each split's "
                "branches in their own join step first.",
                **_where(node),  # type: ignore[arg-type]
            )
        split = graph[tops.pop()]
        # The branch of the split each parent ends (cases of a switch inside a branch
        # end the same branch: one of them runs).
        roots = {graph.outgoing_branches(p, node.name)[-1] for p in parents}
        if not split.is_foreach and roots != set(split.out_funcs):
            raise GraphError(
                f"joins {len(roots)} branch(es) ({', '.join(sorted(roots))}, through "
                f"{', '.join(parents)}) but split '{split.name}' (line {split.line}) opens "
                f"{len(split.out_funcs)} ({', '.join(split.out_funcs)}). Route every branch "
                f"of '{split.name}' to '{node.name}'.",
                **_where(node),  # type: ignore[arg-type]
            )


@check
def check_splits_are_joined(graph: FlowGraph) -> None:
    """Every split is closed by a join before ``end``."""
    end = graph["end"]
    if end.split_parents:
        split = graph[end.split_parents[-1]]
        raise GraphError(
            "is never joined: the branches it opens reach 'end' without a join. Add a "
            "step 'def join(self, inputs)' and route its branches there.",
            **_where(split),  # type: ignore[arg-type]
        )
    for node in graph.sorted_nodes():
        if node.is_split and node.matching_join is None:
            raise GraphError(
                "is never joined. Route its branches to a step 'def join(self, inputs)'.",
                **_where(node),  # type: ignore[arg-type]
            )
