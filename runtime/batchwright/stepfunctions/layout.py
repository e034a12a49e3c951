"""Where the tasks of a deployed run are, derived from the graph alone.

A state machine runs the same command for a step in every execution, so nobody hands a
deployed task its task id or inputs as the scheduler does: both follow from the graph,
the run id (the execution's name) and, inside a foreach, the array index.

* A step outside any foreach has one task, :data:`~batchwright.entrypoint.DEPLOYED_TASK_ID`.
* Inside a foreach, the task of item ``i`` is ``str(i)`` in every step of the body, so
  item ``i`` of one step reads item ``i`` of the step before it.
* ``start`` reads the run's parameters; a foreach's join reads every item of the body's
  last step, as many as the split recorded (``foreach_num_splits``).

Batch array jobs have 2 to 10,000 children, so a foreach of one item still runs an array
of 2: a child whose index is past the split's item count is padding and exits at once
(:func:`is_padding`). The split step publishes the array size at
:func:`array_size_key`, where the state machine reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchwright.datastore.store import (
    DEPLOYMENT_FOLDER,
    FAILURE_PREFIX,
    PARAMETERS_STEP,
    PARAMETERS_TASK,
    task_prefix,
)
from batchwright.entrypoint import DEPLOYED_TASK_ID, DoNotRetry

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore
    from batchwright.graph import FlowGraph

#: The smallest and largest array job AWS Batch runs.
MIN_ARRAY_SIZE, MAX_ARRAY_SIZE = 2, 10_000
#: The object, next to a foreach split's task, that holds the size of its array jobs.
ARRAY_SIZE_OBJECT = "array-size"
#: The execution's Parameters, as the state machine stored them for ``start``.
PARAMETERS_OBJECT = "parameters.json"
#: Next to a task: an attempt failed in a way no retry can fix (later attempts refuse).
FINAL_FAILURE_OBJECT = "final-failure.json"


def enclosing_foreach(graph: FlowGraph, step: str) -> str | None:
    """The foreach step whose body holds ``step``, or None outside any foreach."""
    for parent in reversed(graph[step].split_parents):
        if graph[parent].is_foreach:
            return parent
    return None


def task_id(graph: FlowGraph, step: str, index: int | None) -> str:
    """The task id of ``step`` for foreach item ``index`` (ignored outside a foreach)."""
    if enclosing_foreach(graph, step) is None or index is None:
        return DEPLOYED_TASK_ID
    return str(index)


def array_size(num_splits: int) -> int:
    """The size of the array jobs of a foreach over ``num_splits`` items."""
    return max(MIN_ARRAY_SIZE, num_splits)


def array_size_key(flow: str, run_id: str, foreach_step: str) -> str:
    """Where (relative to the datastore root) the split publishes its array size."""
    return f"{task_prefix(flow, run_id, foreach_step, DEPLOYED_TASK_ID)}/{ARRAY_SIZE_OBJECT}"


def deployment_key(flow: str, run_id: str, name: str) -> str:
    """Where (relative to the datastore root) the state machine writes object ``name``."""
    return f"{flow}/runs/{run_id}/{DEPLOYMENT_FOLDER}/{name}"


def failure_object(step: str) -> str:
    """The name of the object recording that ``step`` failed."""
    return f"{FAILURE_PREFIX}{step}.json"


def num_splits(store: FlowDatastore, run_id: str, foreach_step: str) -> int:
    """How many items the foreach split of this run fanned out over.

    Raises:
        DoNotRetry: the split has not finished (the state machine runs it first).
    """
    metadata = store.finished_metadata(run_id, foreach_step, DEPLOYED_TASK_ID, None)
    count: Any = (metadata or {}).get("foreach_num_splits")
    if not isinstance(count, int):
        raise DoNotRetry(
            f"foreach step '{foreach_step}' of run {run_id} has no finished task with its "
            "item count; the state machine runs it before its body."
        )
    return count


def is_padding(
    graph: FlowGraph, store: FlowDatastore, run_id: str, step: str, index: int | None
) -> bool:
    """Whether this array child is past the foreach's items (it then does nothing)."""
    split = enclosing_foreach(graph, step)
    return split is not None and index is not None and index >= num_splits(store, run_id, split)


def input_paths(
    graph: FlowGraph, store: FlowDatastore, run_id: str, step: str, index: int | None
) -> tuple[str, ...]:
    """The ``run/step/task`` pathspecs ``step``'s task of item ``index`` reads."""
    if step == "start":
        return (f"{run_id}/{PARAMETERS_STEP}/{PARAMETERS_TASK}",)
    node = graph[step]
    parents = graph.forward_parents(step)
    if node.type == "join":
        split = graph[graph.outgoing_stack(node.in_funcs[0])[-1]]
        if split.is_foreach:
            count = num_splits(store, run_id, split.name)
            return tuple(f"{run_id}/{p}/{i}" for p in parents for i in range(count))
    return tuple(f"{run_id}/{p}/{task_id(graph, p, index)}" for p in parents)
