"""Parallel steps: one step run on N nodes at once, its nodes meeting in a join.

``self.next(self.train, num_parallel=N)`` (and ``@parallel``, as in Metaflow) makes
``train`` a foreach over N node indexes whose tasks run together: on AWS Batch as one
multi-node parallel job (node *i* runs task *i*), locally as N processes side by side.
Inside, :data:`batchwright.current` gives ``current.parallel``: ``main_ip`` (the
rendezvous address), ``num_nodes``, ``node_index`` and ``control_task_id`` (node 0's task).

Each node learns who it is from the variables AWS Batch sets in a multi-node job
(:data:`NODE_INDEX_VARIABLE` ...); the local backend sets the same ones, so the same step
code runs on a laptop. The member task ids, in node order, travel in
:data:`TASKS_VARIABLE`, a compact list (:func:`batchwright.entrypoint.compact_list`).

AWS Batch ends a multi-node job when its main node exits and stops the others, so the
main node, once its own work is stored, waits for every other node's done marker
(:func:`wait_for_nodes`) before it exits: the join then finds all N inputs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from batchwright.entrypoint import NODE_INDEX_VARIABLE, compact_list, expand_list

#: The most nodes a parallel step may have: the default limit of AWS Batch on one
#: multi-node job's ``numNodes`` (the instances of an ECS cluster; raisable on request).
MAX_NODES = 1_000
#: Set by AWS Batch in every node of a multi-node job (and by the local backend), with
#: :data:`NODE_INDEX_VARIABLE`.
NUM_NODES_VARIABLE = "AWS_BATCH_JOB_NUM_NODES"
MAIN_NODE_INDEX_VARIABLE = "AWS_BATCH_JOB_MAIN_NODE_INDEX"
#: Set by AWS Batch in the child nodes only: the main node's private IPv4 address.
MAIN_IP_VARIABLE = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
#: The member task ids of the parallel step, node 0 first (set by the backends).
TASKS_VARIABLE = "BATCHWRIGHT_PARALLEL_TASKS"
#: Which try of the nodes this is (:func:`try_token`): a group submitted again after its
#: capacity failed keeps its attempt number, and must not read the records of the try
#: before it.
TRY_VARIABLE = "BATCHWRIGHT_PARALLEL_TRY"
#: What Metaflow's parallel steps export, for tools built on them (torchrun launchers).
METAFLOW_VARIABLES = {
    "main_ip": "MF_PARALLEL_MAIN_IP",
    "num_nodes": "MF_PARALLEL_NUM_NODES",
    "node_index": "MF_PARALLEL_NODE_INDEX",
    "control_task_id": "MF_PARALLEL_CONTROL_TASK_ID",
}
#: Seconds between the main node's looks for the other nodes' done markers.
WAIT_POLL_SECONDS = 1.0
#: The address the local backend gives every node: its processes share this machine.
LOCAL_MAIN_IP = "127.0.0.1"


class Parallel(NamedTuple):
    """``current.parallel``: where this node stands in its parallel step."""

    main_ip: str
    num_nodes: int
    node_index: int
    control_task_id: str | None


class NodeFailed(Exception):
    """Another node of the parallel step failed, so the step's attempt fails. ``node`` is
    its index, ``exit_code`` what it exited with; the main node stores both (its
    metadata's ``failed_node``), so the orchestrator blames that node, not one Batch
    stopped afterwards."""

    def __init__(self, message: str, node: int, task_id: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.node, self.task_id, self.exit_code = node, task_id, exit_code


def try_token(attempt: int, resubmission: int) -> str:
    """Names one try of a parallel step's nodes: its attempt and how many times that
    attempt was submitted again after its capacity failed."""
    return f"{attempt}.{resubmission}"


def group_environment(task_ids: Sequence[str], token: str) -> dict[str, str]:
    """What every node of one try gets from the backend: the member task ids (node
    order) and the try."""
    return {TASKS_VARIABLE: compact_list(task_ids), TRY_VARIABLE: token}


def local_node_environment(index: int, task_ids: Sequence[str], token: str) -> dict[str, str]:
    """The variables of node ``index`` when the nodes are processes of this machine: the
    ones AWS Batch sets in a multi-node job, with the main node on the loopback address
    (given to the main node too, whose processes cannot learn it otherwise)."""
    return {
        NODE_INDEX_VARIABLE: str(index),
        NUM_NODES_VARIABLE: str(len(task_ids)),
        MAIN_NODE_INDEX_VARIABLE: "0",
        MAIN_IP_VARIABLE: LOCAL_MAIN_IP,
        **group_environment(task_ids, token),
    }


def member_task_ids(environ: Mapping[str, str]) -> list[str]:
    """The member task ids from :data:`TASKS_VARIABLE` (empty when it is not set)."""
    return expand_list(environ.get(TASKS_VARIABLE, ""))


def _own_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return LOCAL_MAIN_IP


def describe_node(
    environ: Mapping[str, str], split_index: int | None, num_splits: int | None, task_id: str
) -> Parallel:
    """This node's :class:`Parallel`, from the variables of its job (the split index and
    the number of splits when a backend sets none). The main node's own address is its
    host's, as AWS Batch gives the main node no :data:`MAIN_IP_VARIABLE`."""
    index = int(environ.get(NODE_INDEX_VARIABLE) or (split_index or 0))
    nodes = int(environ.get(NUM_NODES_VARIABLE) or (num_splits or 1))
    main = int(environ.get(MAIN_NODE_INDEX_VARIABLE) or 0)
    main_ip = environ.get(MAIN_IP_VARIABLE) or (_own_address() if index == main else "")
    members = member_task_ids(environ)
    control = members[0] if members else (task_id if index == main else None)
    return Parallel(main_ip or LOCAL_MAIN_IP, nodes, index, control)


def export_for_tools(node: Parallel) -> None:
    """Sets Metaflow's ``MF_PARALLEL_*`` variables in this process for launchers that read
    them."""
    for field, variable in METAFLOW_VARIABLES.items():
        value = getattr(node, field)
        if value is not None:
            os.environ[variable] = str(value)


def node_stored(metadata: Mapping[str, Any] | None, token: str | None) -> bool | None:
    """Whether a node's stored record of one attempt says it succeeded in try ``token``
    (True), failed in it (False), or is not of that try or not there yet (None)."""
    if metadata is None or (token is not None and metadata.get("parallel_try") != token):
        return None
    return metadata.get("status") == "succeeded" and not metadata.get("exit_code")


def wait_for_nodes(
    store: Any,
    run_id: str,
    step: str,
    task_ids: Sequence[str],
    attempt: int,
    token: str | None = None,
    *,
    poll_seconds: float = WAIT_POLL_SECONDS,
    sleep: Any = time.sleep,
) -> None:
    """Returns once every task in ``task_ids`` has stored its success of ``attempt`` in
    try ``token`` and its done marker names that attempt.

    Raises:
        NodeFailed: one of them stored a failure of that attempt and try (its node's
            error is in its own log).
    """
    waiting = list(task_ids)
    while waiting:
        still = []
        for task_id in waiting:
            # A node's metadata is written when it ends, either way; its done marker
            # follows on success. Records of an earlier try of the same attempt (the
            # nodes were submitted again) do not count.
            metadata = store.read_metadata(run_id, step, task_id, attempt)
            stored = node_stored(metadata, token)
            if stored is False:
                assert metadata is not None
                index = list(task_ids).index(task_id) + 1
                code = metadata.get("exit_code")
                raise NodeFailed(
                    f"node {index} (task {task_id}) of parallel step '{step}' failed with "
                    f"exit code {code}; see its log",
                    index,
                    task_id,
                    code,
                )
            done = store.read_done(run_id, step, task_id) if stored else None
            if done is None or done.get("attempt") != attempt:
                still.append(task_id)  # running, or stored and its done marker not yet
        waiting = still
        if waiting:
            sleep(poll_seconds)
