"""``python flow.py dump [--max-value-size BYTES] [--include NAMES] [--private] [--file PATH]
[FLOW/]RUN_ID/STEP[/TASK]``: the artifacts of a task, or of every task of a step.

As Metaflow's ``dump``:

- without ``--file`` each task's artifacts are printed, sorted by name, one line each:
  ``name [size: BYTES type: TYPE] = VALUE``; a value whose stored pickle is larger than
  ``--max-value-size`` (default :data:`DEFAULT_MAX_VALUE_SIZE`) is not loaded, and 0 shows
  the names and sizes alone;
- with ``--file`` the values (whatever their size) are pickled to the file as one dict
  keyed by the task's pathspec without the flow, ``"RUN_ID/STEP/TASK"``, each mapping to
  ``{artifact name: value}``. Being one pickle, every chosen value is in memory while it
  is written (an artifact several tasks share, such as one inherited from the parent
  step, is loaded once); ``--include`` keeps the others out of memory;
- ``--include a,b`` keeps only those names (repeatable), and names starting with ``_`` are
  left out unless ``--private`` is given.

A size comes from the storage (a ``stat``, or one HeadObject on S3), so an artifact too
large to show is never downloaded.

Only tasks that finished hold artifacts: of a step, the unfinished ones are skipped (and
named); a single unfinished task is refused. The run is read from the datastore whoever
started it (see :mod:`batchwright.cli.tasks`).
"""

from __future__ import annotations

import argparse
import os
import pickle
import pprint
from typing import TYPE_CHECKING, Any

from batchwright.cli.command import FlowCommand, add_datastore_option
from batchwright.cli.tasks import listed, select_tasks
from batchwright.errors import InvalidValue, UserInputError

if TYPE_CHECKING:
    from batchwright.console import Console
    from batchwright.datastore import FlowDatastore

#: Values whose stored pickle is larger than this many bytes are not shown (as Metaflow).
DEFAULT_MAX_VALUE_SIZE = 1000


def configure_dump(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    """The options of ``dump``."""
    parser.add_argument("pathspec", metavar="[FLOW/]RUN_ID/STEP[/TASK]")
    parser.add_argument(
        "--max-value-size",
        type=int,
        default=DEFAULT_MAX_VALUE_SIZE,
        metavar="BYTES",
        help="show values whose stored pickle is at most this large "
        f"(default {DEFAULT_MAX_VALUE_SIZE}; 0: names and sizes only); --file writes every "
        "value whatever its size",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="only these artifacts (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        default=False,
        help="also the artifacts whose names start with '_'",
    )
    parser.add_argument(
        "--no-private", dest="private", action="store_false", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="pickle {'RUN_ID/STEP/TASK': {name: value}} to this file instead of printing; "
        "as one pickle, it holds every chosen value in memory while it is written (use "
        "--include to leave large ones out)",
    )
    add_datastore_option(parser)


def included_names(values: list[str]) -> frozenset[str]:
    """The names of ``--include`` (each value comma-separated); empty: every name."""
    return frozenset(name.strip() for value in values for name in value.split(",") if name.strip())


def handle_dump(args: argparse.Namespace, command: FlowCommand) -> int:
    """``dump``: print the artifacts, or pickle them to ``--file``."""
    if args.max_value_size < 0:
        raise InvalidValue(
            where="dump",
            key="--max-value-size",
            value=args.max_value_size,
            problem="is below 0",
            fix=f"Pass a number of bytes (default {DEFAULT_MAX_VALUE_SIZE}), or 0 to show "
            "the names and sizes alone.",
        )
    selection = select_tasks(
        "dump", args.pathspec, command.flow_name, args.datastore_root, "the artifacts"
    )
    store, run_id, step = selection.store, selection.run_id, selection.step
    include = included_names(args.include)
    chatter = command.chatter
    tasks: list[tuple[str, dict[str, str]]] = []
    unfinished: list[str] = []
    for task_id in selection.task_ids:
        metadata = store.read_metadata(run_id, step, task_id)  # the finished attempt's
        if metadata is None:
            unfinished.append(task_id)
            continue
        refs: dict[str, str] = metadata.get("artifacts") or {}
        tasks.append((task_id, _chosen(refs, include, args.private)))
    where = f"{command.flow_name}/{run_id}/{step}"
    if not tasks:
        logs = f"{run_id}/{step}/{unfinished[0]}" if selection.one_task else f"{run_id}/{step}"
        raise UserInputError(
            f"dump {args.pathspec}: {_tasks_text(unfinished)} of {where} did not finish, so "
            f"{'it holds' if len(unfinished) == 1 else 'they hold'} no artifacts. See what "
            f"happened with: logs {logs}"
        )
    if unfinished:
        chatter.notice(
            f"{_tasks_text(unfinished)} of {where} did not finish and "
            f"{'holds' if len(unfinished) == 1 else 'hold'} no artifacts; the other tasks "
            "are dumped"
        )
    _note_missing(include, args.private, tasks, store, where, chatter)
    if args.file is not None:
        return _write_file(args.file, store, run_id, step, tasks, command)
    for task_id, refs in tasks:
        pathspec = f"{where}/{task_id}"
        chatter.info(f"Artifacts of task {pathspec}:")
        for name in sorted(refs):
            command.console.line(
                _artifact_line(store, name, refs[name], pathspec, args.max_value_size)
            )
    return 0


def _tasks_text(task_ids: list[str]) -> str:
    return f"task {task_ids[0]}" if len(task_ids) == 1 else f"tasks {listed(task_ids)}"


def _chosen(refs: dict[str, str], include: frozenset[str], private: bool) -> dict[str, str]:
    """The artifacts to dump, as Metaflow picks them: those included (all when none is
    named), less the private ones unless asked for."""
    return {
        name: key
        for name, key in refs.items()
        if (not include or name in include) and (private or not name.startswith("_"))
    }


def _note_missing(
    include: frozenset[str],
    private: bool,
    tasks: list[tuple[str, dict[str, str]]],
    store: FlowDatastore,
    where: str,
    chatter: Console,
) -> None:
    """A notice for each ``--include`` name that no task dumps (the dump goes on without
    it, as Metaflow's does)."""
    dumped = {name for _, refs in tasks for name in refs}
    for name in sorted(include - dumped):
        if name.startswith("_") and not private:
            why = "it starts with '_': add --private to dump it"
        else:
            why = "no task has an artifact of that name"
        chatter.notice(f"--include {name}: nothing dumped for it from {where} ({why})")


def _write_file(
    path: str,
    store: FlowDatastore,
    run_id: str,
    step: str,
    tasks: list[tuple[str, dict[str, str]]],
    command: FlowCommand,
) -> int:
    """Pickles ``{"RUN_ID/STEP/TASK": {name: value}}`` to ``path`` (Metaflow's keys).

    One pickle of one dict, so every chosen value is in memory when it is written; only
    those ``--include`` and ``--private`` chose are loaded, and each stored blob once: an
    artifact several tasks share (the same content key, such as one the tasks of a
    foreach inherit from their parent) is one object in the dict, pickled once.
    """
    output: dict[str, dict[str, Any]] = {}
    loaded: dict[str, Any] = {}  # content key -> value
    for task_id, refs in tasks:
        pathspec = f"{command.flow_name}/{run_id}/{step}/{task_id}"
        values: dict[str, Any] = {}
        for name, key in sorted(refs.items()):
            if key not in loaded:
                loaded[key] = store.load(key, f"artifact '{name}' of task {pathspec}")
            values[name] = loaded[key]
        output[f"{run_id}/{step}/{task_id}"] = values
    try:
        with open(path, "wb") as out:
            pickle.dump(output, out, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as error:
        raise UserInputError(
            f"dump --file {path}: the file cannot be written ({error.strerror or error}). "
            "Pass a path in an existing folder you can write to."
        ) from None
    count = len(output)
    command.chatter.info(
        f"Artifacts of {count} task{'s' if count != 1 else ''} written to {os.path.abspath(path)}"
    )
    return 0


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _artifact_line(
    store: FlowDatastore, name: str, key: str, pathspec: str, max_value_size: int
) -> str:
    """``name [size: BYTES type: TYPE] = VALUE`` (no value above ``max_value_size``)."""
    size = store.artifact_size(key)  # a stat or HeadObject: nothing is downloaded
    if size is None:
        return f"{name} = <missing: its blob {key} is not in {store.storage.root}>"
    if max_value_size == 0:
        return f"{name} [size: {size}]"
    if size > max_value_size:
        return (
            f"{name} [size: {size}] = <not shown: its pickle is larger than "
            f"--max-value-size {max_value_size}>"
        )
    value = store.load(key, f"artifact '{name}' of task {pathspec}")
    text = pprint.pformat(value, width=100, sort_dicts=False)
    return f"{name} [size: {size} type: {_type_name(value)}] = {text}"
