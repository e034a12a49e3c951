"""Which tasks a pathspec on the command line names, for ``logs`` and ``dump``.

Both take ``RUN_ID/STEP`` (every task of the step) or ``RUN_ID/STEP/TASK``, as Metaflow's
do, and the same with the flow's name in front, as the client prints pathspecs. The run is
read from the datastore directly, whoever started it and whatever the client's namespace:
these commands name the run they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchwright.errors import UserInputError

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore

#: Task ids a message lists before "..." (a foreach may have thousands).
SHOWN_TASK_IDS = 10


@dataclass(frozen=True)
class TaskSelection:
    """The tasks a pathspec names, and where they are kept."""

    store: FlowDatastore
    run_id: str
    step: str
    #: The tasks named, in numeric order: the one given, or every task of the step.
    task_ids: tuple[str, ...]
    #: Whether the pathspec named a task (``RUN_ID/STEP/TASK``) rather than a step.
    one_task: bool


def listed(names: Sequence[str], shown: int = SHOWN_TASK_IDS) -> str:
    """``1, 2, 3`` or ``1, 2, ..., 40 (40 in all)``."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[: shown - 1])}, ..., {names[-1]} ({len(names)} in all)"


def other_flow(subcommand: str, pathspec: str, named: str, flow_name: str) -> UserInputError:
    """The error of a pathspec that names another flow."""
    return UserInputError(
        f"{subcommand} {pathspec}: the pathspec names flow '{named}', but this file's flow is "
        f"'{flow_name}'. Run the {subcommand} command of {named}'s own file, or pass a "
        f"pathspec of {flow_name}: [{flow_name}/]RUN_ID/STEP[/TASK]."
    )


def select_tasks(
    subcommand: str, pathspec: str, flow_name: str, datastore_root: str | None, what: str
) -> TaskSelection:
    """The tasks ``pathspec`` names (``[FLOW/]RUN_ID/STEP[/TASK]``), found like the client
    finds a run (the run may be in the environment's S3 datastore).

    Args:
        subcommand: the command, for messages (``logs``, ``dump``).
        what: what the command shows of every task of a step, for the message of a task
            that is not there (``the logs``).

    Raises:
        UserInputError: the pathspec is malformed or names another flow; the run, the step
            or the task is not in the datastore.
    """
    from batchwright.client import find_datastore

    parts = pathspec.strip("/").split("/")
    if len(parts) in (3, 4) and parts[0] == flow_name:
        parts = parts[1:]  # a full pathspec, as the client prints them: FLOW/RUN_ID/STEP
    elif len(parts) == 4:
        raise other_flow(subcommand, pathspec, parts[0], flow_name)
    if len(parts) not in (2, 3) or not all(parts):
        raise UserInputError(
            f"{subcommand} {pathspec}: expected RUN_ID/STEP or RUN_ID/STEP/TASK (optionally "
            f"after {flow_name}/), e.g. {subcommand} 1234/start."
        )
    run_id, step = parts[0], parts[1]
    store = find_datastore(flow_name, datastore_root, run_id)
    if len(parts) == 3 and not run_id.isdigit() and store.read_run(run_id) is None:
        # Run ids are numbers: a name there is another flow's, as in OtherFlow/1234/start.
        raise other_flow(subcommand, pathspec, run_id, flow_name)
    known = store.list_tasks(run_id, step)
    if not known:
        root = store.storage.root
        if store.read_run(run_id) is None and not store.list_steps(run_id):
            raise UserInputError(
                f"{subcommand} {pathspec}: flow '{flow_name}' has no run '{run_id}' in "
                f"{root}. Pass the id of one of its runs (Flow('{flow_name}').runs() lists "
                "them), or the --datastore-root that holds it."
            )
        steps = store.list_steps(run_id)
        there = f" (its steps: {', '.join(steps)})" if steps else ""
        raise UserInputError(
            f"{subcommand} {pathspec}: run '{run_id}' of flow '{flow_name}' has no tasks "
            f"for step '{step}' in {root}{there}."
        )
    if len(parts) == 2:
        return TaskSelection(store, run_id, step, tuple(known), one_task=False)
    task_id = parts[2]
    if store.read_done(run_id, step, task_id) is None and not store.list_attempts(
        run_id, step, task_id
    ):
        raise UserInputError(
            f"{subcommand} {pathspec}: step '{step}' of run '{run_id}' of flow "
            f"'{flow_name}' has no task '{task_id}' (its tasks: {listed(known)}). Pass one "
            f"of them, or {subcommand} {run_id}/{step} for {what} of them all."
        )
    return TaskSelection(store, run_id, step, (task_id,), one_task=True)
