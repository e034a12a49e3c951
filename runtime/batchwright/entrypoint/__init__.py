"""Contract 3, the task entrypoint: the command that runs one attempt of one task.

Standard library only: the scheduler builds this command, and every place a task runs (a
local subprocess, a Batch container with a stock image) parses it, so neither side may
need more than Python. The runner that executes the user's step lives in
:mod:`batchwright.task`; this module is only the agreement between the two.

Command (version :data:`TASK_ENTRYPOINT_VERSION`)::

    python -m batchwright.task --contract-version 1
        --flow-file FILE --flow NAME --step STEP --run-id RUN --task-id TASK
        --datastore-root ROOT [--input-paths RUN/STEP/TASK[,RUN/STEP/TASK...]]
        [--split-index I] [--retry-count N] [--max-retries N]
        [--origin-run-id RUN] [--with DECORATOR[:key=value,...]]...
        [--array-index-variable NAME]

Array form (one command for every member of a foreach fan-out, e.g. an AWS Batch array
job): ``--task-id`` and ``--split-index`` are comma-separated lists, and
``--array-index-variable AWS_BATCH_JOB_ARRAY_INDEX`` names the environment variable whose
value picks this member's entries (:func:`array_arguments` builds it;
:func:`parse_arguments` resolves it). A run of consecutive integers in a list is written
``FIRST-LAST`` (``2-10001`` for 10,000 entries), so the command of a 10,000-way array job
stays a few hundred bytes, within Batch's 30 KiB of overrides, instead of moving to S3.

``--flow-file`` is the only host path: the flow's source where the task runs. Every other
location is relative to the datastore root (input paths are ``run/step/task`` pathspecs
of the flow).

Exit codes: 0 success; 1 the step failed (a retry may help); 2 bad command line;
3 failed in a way a retry cannot fix (:data:`EXIT_DO_NOT_RETRY`); 4 the job's bootstrap
refused what it downloaded (:data:`EXIT_INTEGRITY`, see
:mod:`batchwright.entrypoint.integrity`), so nothing of it ran; 5 the main node of a
parallel step saw another node fail (:data:`EXIT_NODE_FAILED`).

Deployed form (a step of a flow deployed as a Step Functions state machine, see
:mod:`batchwright.stepfunctions`): ``--deployed`` replaces ``--run-id``, ``--task-id``,
``--input-paths``, ``--split-index`` and ``--retry-count``. The command is the same for
every execution: the run id is the execution's name (:data:`EXECUTION_VARIABLE`), the
attempt is Step Functions' retry count (:data:`RETRY_COUNT_VARIABLE`), an array child's
index (``--array-index-variable``) is its split index and task id, and the task derives
its inputs from the flow's graph (:mod:`batchwright.stepfunctions.layout`).

Parallel steps (one multi-node job): every node runs the array form with
``--array-index-variable AWS_BATCH_JOB_NODE_INDEX``, and ``BATCHWRIGHT_PARALLEL_TASKS``
holds the member task ids in node order (see :mod:`batchwright.multinode`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import NamedTuple

#: Version of this command's contract; bump on any incompatible change of the options.
TASK_ENTRYPOINT_VERSION = 2
#: The module run with ``python -m``.
ENTRYPOINT_MODULE = "batchwright.task"
EXIT_SUCCESS = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
#: The failure is deterministic (bad contract version, flow/graph mismatch, foreach over
#: a non-iterable): the scheduler must not retry.
EXIT_DO_NOT_RETRY = 3
#: The code package or command payload a job downloaded does not have the SHA-256 its
#: command gave, or the package holds an unsafe member: nothing of it ran.
EXIT_INTEGRITY = 4
#: The main node of a parallel step: its own work is done, but another node of the step
#: failed (that node's own failure is the step's error).
EXIT_NODE_FAILED = 5
#: Exit codes that say a retry cannot help: the same command fails the same way.
FINAL_EXIT_CODES = frozenset({EXIT_USAGE, EXIT_DO_NOT_RETRY, EXIT_INTEGRITY})
#: The variable AWS Batch sets to an array child's index.
ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
#: The variable AWS Batch sets to a multi-node job's node index (the members of a
#: parallel step are picked by it, as array children by the array index).
NODE_INDEX_VARIABLE = "AWS_BATCH_JOB_NODE_INDEX"
#: Deployed form: the variable holding the Step Functions execution's name (the run id).
EXECUTION_VARIABLE = "BATCHWRIGHT_EXECUTION"
#: Deployed form: the variable holding how many times Step Functions retried the state.
RETRY_COUNT_VARIABLE = "BATCHWRIGHT_RETRY_COUNT"
#: Deployed form: the task id of a step outside any foreach (one task per run).
DEPLOYED_TASK_ID = "1"


class DoNotRetry(Exception):
    """A failure that a retry cannot fix; the task exits with :data:`EXIT_DO_NOT_RETRY`."""


class TaskArguments(NamedTuple):
    """The inputs of one attempt of one task, as the command line carries them.

    (A NamedTuple rather than a dataclass: every task parses one, and ``dataclasses``
    imports ``inspect``, which costs start-up time.)
    """

    flow_file: str
    flow: str
    step: str
    run_id: str
    task_id: str
    datastore_root: str
    #: ``run/step/task`` pathspecs of the inputs.
    input_paths: tuple[str, ...] = ()
    #: Position in the foreach this task fans out of, if any.
    split_index: int | None = None
    #: How many ``@retry`` attempts came before this one (``current.retry_count``).
    retry_count: int = 0
    max_retries: int = 0
    #: Resume: the run the finished tasks are reused from.
    origin_run_id: str | None = None
    #: ``--with`` options of the run, as typed (``retry:times=2``).
    with_options: tuple[str, ...] = ()
    #: A step of a deployed flow: its inputs are derived from the graph once the flow is
    #: loaded (see :func:`deployed_arguments`).
    deployed: bool = False

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    def to_argv(self) -> list[str]:
        """The arguments after ``python -m batchwright.task``."""
        return _argv(
            self, self.task_id, None if self.split_index is None else str(self.split_index)
        )


def _argv(common: TaskArguments, task_ids: str, split_indexes: str | None) -> list[str]:
    args = [
        "--contract-version",
        str(TASK_ENTRYPOINT_VERSION),
        "--flow-file",
        common.flow_file,
        "--flow",
        common.flow,
        "--step",
        common.step,
        "--run-id",
        common.run_id,
        "--task-id",
        task_ids,
        "--datastore-root",
        common.datastore_root,
        "--retry-count",
        str(common.retry_count),
        "--max-retries",
        str(common.max_retries),
    ]
    if common.input_paths:
        args += ["--input-paths", ",".join(common.input_paths)]
    if split_indexes is not None:
        args += ["--split-index", split_indexes]
    if common.origin_run_id:
        args += ["--origin-run-id", common.origin_run_id]
    for option in common.with_options:
        args += ["--with", option]
    return args


def deployed_arguments(
    *,
    flow_file: str,
    flow: str,
    step: str,
    datastore_root: str,
    max_retries: int,
    with_options: Sequence[str] = (),
    array: bool = False,
) -> list[str]:
    """The arguments of a step in a deployed flow: the same for every execution (the run
    id, attempt and array index come from the job's environment). ``array``: the step
    runs as an array job, one child per foreach item."""
    args = [
        "--contract-version",
        str(TASK_ENTRYPOINT_VERSION),
        "--flow-file",
        flow_file,
        "--flow",
        flow,
        "--step",
        step,
        "--datastore-root",
        datastore_root,
        "--max-retries",
        str(max_retries),
        "--deployed",
    ]
    for option in with_options:
        args += ["--with", option]
    if array:
        args += ["--array-index-variable", ARRAY_INDEX_VARIABLE]
    return args


def array_arguments(
    members: Sequence[TaskArguments], array_index_variable: str = ARRAY_INDEX_VARIABLE
) -> list[str]:
    """One command for several members of one fan-out (an array job).

    Each member finds its task id and split index through ``array_index_variable``.

    Raises:
        ValueError: the members differ in anything but task id and split index.
    """
    first = members[0]
    for member in members[1:]:
        if member._replace(task_id="", split_index=None) != first._replace(
            task_id="", split_index=None
        ):
            raise ValueError("array members must differ only in task id and split index")
    task_ids = compact_list([m.task_id for m in members])
    splits = compact_list([str(0 if m.split_index is None else m.split_index) for m in members])
    return [*_argv(first, task_ids, splits), "--array-index-variable", array_index_variable]


def compact_list(values: Sequence[str]) -> str:
    """``values`` comma-separated, each run of consecutive integers as ``FIRST-LAST``:
    ``["2", "3", "4", "7"]`` is ``2-4,7``. (Only canonical non-negative integers, no
    leading zeros, join a run: every other value is written as it is.)

    Raises:
        ValueError: a value is empty, holds a comma, or reads as a run itself (``5-7``).
    """
    for value in values:
        first, dash, last = value.partition("-")
        if not value or "," in value or (dash and _is_count(first) and _is_count(last)):
            raise ValueError(f"{value!r} cannot be an entry of a compact list")
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        if _is_count(values[i]):
            while j + 1 < len(values) and values[j + 1] == str(int(values[j]) + 1):
                j += 1
        parts.append(values[i] if j - i < 2 else f"{values[i]}-{values[j]}")
        if j - i == 1:
            parts.append(values[j])
        i = j + 1
    return ",".join(parts)


def list_entry(listing: str, position: int) -> str:
    """The entry at ``position`` of a list written by :func:`compact_list`.

    Raises:
        IndexError: the list is shorter, or ``position`` is negative.
    """
    if position < 0 or not listing:
        raise IndexError(position)
    for part in listing.split(","):
        first, dash, last = part.partition("-")
        if dash and _is_count(first) and _is_count(last) and int(last) > int(first):
            size = int(last) - int(first) + 1
            if position < size:
                return str(int(first) + position)
            position -= size
        elif position == 0:
            return part
        else:
            position -= 1
    raise IndexError(position)


def expand_list(listing: str) -> list[str]:
    """Every entry of a list written by :func:`compact_list`, in order."""
    entries: list[str] = []
    for part in listing.split(",") if listing else ():
        first, dash, last = part.partition("-")
        if dash and _is_count(first) and _is_count(last) and int(last) > int(first):
            entries.extend(str(n) for n in range(int(first), int(last) + 1))
        else:
            entries.append(part)
    return entries


def _is_count(value: str) -> bool:
    return value.isdigit() and value.isascii() and (value == "0" or not value.startswith("0"))


def build_parser() -> argparse.ArgumentParser:
    """The entrypoint's argument parser (``--help`` shows the contract's options)."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRYPOINT_MODULE}")
    parser.add_argument("--contract-version", type=int, default=TASK_ENTRYPOINT_VERSION)
    for name in ("--flow-file", "--flow", "--step", "--datastore-root"):
        parser.add_argument(name, required=True)
    # Required unless --deployed (checked in parse_arguments).
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--task-id", default=None)
    parser.add_argument("--input-paths", default="")
    parser.add_argument("--split-index", default=None)
    parser.add_argument("--retry-count", type=int, default=0)
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--origin-run-id", default=None)
    parser.add_argument("--with", dest="with_options", action="append", default=[])
    parser.add_argument("--array-index-variable", default=None)
    parser.add_argument("--deployed", action="store_true")
    return parser


def parse_arguments(argv: Sequence[str] | None, environ: Mapping[str, str]) -> TaskArguments:
    """This task's arguments, with an array member's own task id and split index picked.

    Raises:
        SystemExit: the command line is malformed (argparse's usage error, exit code 2).
        DoNotRetry: the contract version differs, or the array index selects no member.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.deployed:
        given = [o for o in ("run_id", "task_id", "input_paths", "split_index") if getattr(args, o)]
        if given:
            parser.error(f"--deployed derives {', '.join(given)}; do not pass them")
    elif args.run_id is None or args.task_id is None:
        parser.error("the following arguments are required: --run-id, --task-id")
    if args.contract_version != TASK_ENTRYPOINT_VERSION:
        raise DoNotRetry(
            f"batchwright task entrypoint speaks contract version {TASK_ENTRYPOINT_VERSION}, "
            f"was called with {args.contract_version}: use the same batchwright version in "
            "the scheduler and the task image."
        )
    if args.deployed:
        return _deployed(args, environ)
    task_id, split_index = _select_member(
        args.task_id, args.split_index, args.array_index_variable, environ
    )
    return TaskArguments(
        flow_file=args.flow_file,
        flow=args.flow,
        step=args.step,
        run_id=args.run_id,
        task_id=task_id,
        datastore_root=args.datastore_root,
        input_paths=tuple(p for p in args.input_paths.split(",") if p),
        split_index=split_index,
        retry_count=args.retry_count,
        max_retries=args.max_retries,
        origin_run_id=args.origin_run_id,
        with_options=tuple(args.with_options),
    )


def _deployed(args: argparse.Namespace, environ: Mapping[str, str]) -> TaskArguments:
    """The arguments of a deployed step, from what Step Functions and Batch put in the
    job's environment. The input paths are left for the task (they need the graph)."""
    run_id = environ.get(EXECUTION_VARIABLE, "")
    retries = environ.get(RETRY_COUNT_VARIABLE, "0")
    if not run_id or not retries.isdigit():
        raise DoNotRetry(
            f"a deployed step needs ${EXECUTION_VARIABLE} (the execution's name, got "
            f"{run_id!r}) and ${RETRY_COUNT_VARIABLE} (a count, got {retries!r}); the state "
            "machine sets both: deploy it again with this batchwright version."
        )
    task_id, split_index = DEPLOYED_TASK_ID, None
    variable = args.array_index_variable
    if variable is not None:
        index = environ.get(variable)
        if index is None:  # emulators may set only AWS_BATCH_JOB_ID, "<parent>:<index>"
            parent, sep, index = environ.get("AWS_BATCH_JOB_ID", "").rpartition(":")
            index = index if sep and parent else None
        if index is None or not _is_count(index):
            raise DoNotRetry(f"deployed array task: ${variable}={index!r} is not an index")
        task_id, split_index = index, int(index)
    return TaskArguments(
        flow_file=args.flow_file,
        flow=args.flow,
        step=args.step,
        run_id=run_id,
        task_id=task_id,
        datastore_root=args.datastore_root,
        split_index=split_index,
        retry_count=int(retries),
        max_retries=args.max_retries,
        with_options=tuple(args.with_options),
        deployed=True,
    )


def _select_member(
    task_ids: str, split_indexes: str | None, variable: str | None, environ: Mapping[str, str]
) -> tuple[str, int | None]:
    """This member's task id and split index: the single values, or the entries of the
    lists at the index the array variable holds."""
    if variable is None:
        return task_ids, None if split_indexes is None else int(split_indexes)
    value = environ.get(variable)
    separator = {ARRAY_INDEX_VARIABLE: ":", NODE_INDEX_VARIABLE: "#"}.get(variable)
    if value is None and separator:
        # Emulators may set only AWS_BATCH_JOB_ID; an array child's id ends in ":<index>",
        # a multi-node job's node's in "#<index>".
        parent, sep, index = environ.get("AWS_BATCH_JOB_ID", "").rpartition(separator)
        value = index if sep and parent else None
    try:
        position = int(value)  # type: ignore[arg-type]
        return list_entry(task_ids, position), int(list_entry(str(split_indexes), position))
    except (TypeError, ValueError, IndexError):
        raise DoNotRetry(
            f"array task: ${variable}={environ.get(variable)!r} does not select one of the "
            f"task ids {task_ids:.200} and split indexes {split_indexes!s:.200}"
        ) from None
