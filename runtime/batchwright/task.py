"""The task entrypoint (contract 3): run one step of one run, wherever the task runs.

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
value picks this member's entries. :func:`array_command_arguments` builds it.

``--flow-file`` is the only host path: the flow's source where the task runs (a local
file, or later the unpacked code package in a container). Every other location is
relative to the datastore root (input paths are ``run/step/task`` pathspecs of the
flow). The entrypoint loads the flow, reads the inputs' metadata, runs the step with its
decorators' ``task_*`` hooks (``@timeout`` uses a real-time alarm, ``@catch`` records the
exception), stores new artifacts, then the attempt's metadata, then its logs, and writes
the done marker LAST.

It needs only the standard library, boto3 (for ``s3://`` roots) and the flow's own code.

Exit codes: 0 success; 1 the step failed (a retry may help); 2 bad command line;
3 failed in a way a retry cannot fix (see :data:`EXIT_DO_NOT_RETRY`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

#: Version of this command's contract; bump on any incompatible change of the options.
TASK_ENTRYPOINT_VERSION = 1
EXIT_SUCCESS = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
#: The failure is deterministic (bad contract version, flow/graph mismatch, foreach over
#: a non-iterable): the scheduler must not retry.
EXIT_DO_NOT_RETRY = 3


class DoNotRetry(Exception):
    """A failure that a retry cannot fix; the task exits with EXIT_DO_NOT_RETRY."""


def build_parser() -> argparse.ArgumentParser:
    """The entrypoint's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m batchwright.task")
    parser.add_argument("--contract-version", type=int, default=TASK_ENTRYPOINT_VERSION)
    parser.add_argument("--flow-file", required=True)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--step", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--task-id", required=True)
    parser.add_argument("--datastore-root", required=True)
    parser.add_argument("--input-paths", default="")
    parser.add_argument("--split-index", default=None)
    parser.add_argument("--retry-count", type=int, default=0)
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--origin-run-id", default=None)
    parser.add_argument("--with", dest="with_options", action="append", default=[])
    parser.add_argument("--array-index-variable", default=None)
    return parser


def select_array_member(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Resolve ``--task-id``/``--split-index`` to this task's own values (in place).

    Without ``--array-index-variable`` they are single values; with it, lists indexed by
    the variable's value.
    """
    variable = args.array_index_variable
    if variable is None:
        args.split_index = None if args.split_index is None else int(args.split_index)
        return
    value = environ.get(variable)
    if value is None and variable == "AWS_BATCH_JOB_ARRAY_INDEX":
        # Emulators set only AWS_BATCH_JOB_ID; an array child's id ends in ":<index>".
        parent, sep, index = environ.get("AWS_BATCH_JOB_ID", "").rpartition(":")
        value = index if sep and parent else None
    try:
        position = int(value)  # type: ignore[arg-type]
        args.task_id = args.task_id.split(",")[position]
        args.split_index = int(str(args.split_index).split(",")[position])
    except (KeyError, ValueError, IndexError):
        raise DoNotRetry(
            f"array task: ${variable}={environ.get(variable)!r} does not select one of the "
            f"task ids {args.task_id!r} and split indexes {args.split_index!r}"
        ) from None


def command_arguments(
    *,
    flow_file: str,
    flow: str,
    step: str,
    run_id: str,
    task_id: str,
    datastore_root: str,
    input_paths: Sequence[str],
    split_index: int | None = None,
    retry_count: int = 0,
    max_retries: int = 0,
    origin_run_id: str | None = None,
    with_options: Sequence[str] = (),
) -> list[str]:
    """The arguments after ``python -m batchwright.task`` for one task attempt."""
    args = [
        "--contract-version",
        str(TASK_ENTRYPOINT_VERSION),
        "--flow-file",
        flow_file,
        "--flow",
        flow,
        "--step",
        step,
        "--run-id",
        run_id,
        "--task-id",
        task_id,
        "--datastore-root",
        datastore_root,
        "--retry-count",
        str(retry_count),
        "--max-retries",
        str(max_retries),
    ]
    if input_paths:
        args += ["--input-paths", ",".join(input_paths)]
    if split_index is not None:
        args += ["--split-index", str(split_index)]
    if origin_run_id:
        args += ["--origin-run-id", origin_run_id]
    for option in with_options:
        args += ["--with", option]
    return args


def array_command_arguments(
    members: Sequence[tuple[str, int]],
    *,
    array_index_variable: str,
    **common: Any,
) -> list[str]:
    """One command for every member of a fan-out: ``members`` is (task id, split index).

    ``common`` takes the keyword arguments of :func:`command_arguments` except
    ``task_id`` and ``split_index``; every member shares them (one parent, one step).
    """
    args = command_arguments(task_id=",".join(m[0] for m in members), **common)
    return [
        *args,
        "--split-index",
        ",".join(str(m[1]) for m in members),
        "--array-index-variable",
        array_index_variable,
    ]


def load_flow_class(flow_file: str, flow_name: str) -> type:
    """Import the flow file as a module (named after the file) and return the flow class."""
    path = os.path.realpath(flow_file)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = os.path.splitext(os.path.basename(path))[0]
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != path:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise DoNotRetry(f"cannot import the flow file {flow_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    flow_class = getattr(module, flow_name, None)
    if not isinstance(flow_class, type):
        raise DoNotRetry(f"the flow file {flow_file} defines no class '{flow_name}'")
    return flow_class


class _OutputCapture:
    """Copies everything written to a file descriptor into a log file as well.

    The descriptor (1 or 2) is pointed at a pipe; a thread copies what arrives to the
    original destination and to the log. Working at the descriptor level captures the
    output of child processes and C extensions too, not only Python's ``print``.
    """

    def __init__(self, fd: int, log_path: str) -> None:
        import threading

        self.fd = fd
        self.log_path = log_path
        self._original = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self._read_end = read_end
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            data = os.read(self._read_end, 65536)
            if not data:
                return
            if not self._log.closed:
                self._log.write(data)
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._original, view)
                except OSError:
                    break  # the reader went away: keep logging
                view = view[written:]

    def stop(self) -> None:
        """Restore the descriptor and wait for the copy to drain."""
        os.dup2(self._original, self.fd)  # closes our write end of the pipe
        # A background child of the step may still hold the pipe open: do not wait forever.
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            os.close(self._read_end)
        self._log.close()
        os.close(self._original)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task attempt; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.contract_version != TASK_ENTRYPOINT_VERSION:
        sys.stderr.write(
            f"batchwright task entrypoint speaks contract version {TASK_ENTRYPOINT_VERSION}, "
            f"was called with {args.contract_version}: use the same batchwright version in "
            "the scheduler and the task image.\n"
        )
        return EXIT_DO_NOT_RETRY
    try:
        select_array_member(args, os.environ)
    except DoNotRetry as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_DO_NOT_RETRY
    tempdir = tempfile.mkdtemp(prefix="batchwright-task-")
    sys.stdout.flush()
    sys.stderr.flush()
    captures = {
        stream: _OutputCapture(fd, os.path.join(tempdir, f"{stream}.log"))
        for stream, fd in (("stdout", 1), ("stderr", 2))
    }
    # Line-buffered so that output reaches the console as the step prints it.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    runner: TaskRunner | None = None
    try:
        runner = TaskRunner(args, tempdir)
        code = runner.run()
    except DoNotRetry as error:
        sys.stderr.write(f"error: {error}\n")
        code = EXIT_DO_NOT_RETRY
    except BaseException:
        import traceback

        traceback.print_exc()
        code = EXIT_STEP_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for capture in captures.values():
            capture.stop()
    try:
        if runner is not None:
            runner.finish(code, {s: c.log_path for s, c in captures.items()})
    except BaseException:
        import traceback

        traceback.print_exc()
        code = code or EXIT_STEP_FAILED
    finally:
        shutil.rmtree(tempdir, ignore_errors=True)
    return code


class TaskRunner:
    """One attempt of one task: set up, run the step, persist."""

    def __init__(self, args: argparse.Namespace, tempdir: str) -> None:
        from batchwright.datastore import open_datastore

        self.args = args
        self.tempdir = tempdir
        self.started_at = time.time()
        self.flow_name: str = args.flow
        self.step_name: str = args.step
        self.store = open_datastore(self.flow_name, args.datastore_root)
        self.metadata: dict[str, Any] = {
            "flow": self.flow_name,
            "run_id": args.run_id,
            "step": self.step_name,
            "task_id": args.task_id,
            "attempt": args.retry_count,
            "input_paths": [p for p in args.input_paths.split(",") if p],
            "split_index": args.split_index,
            "origin_run_id": args.origin_run_id,
            "started_at": self.started_at,
            "status": "failed",
            "artifacts": {},
        }

    def run(self) -> int:
        """Load the flow and inputs, run the step with its hooks; returns the exit code."""
        from batchwright.current import current
        from batchwright.decorators import (
            StepInitContext,
            TaskContext,
            decorator_from_with_option,
            merge_with_options,
            step_decorators,
        )
        from batchwright.flowspec import Inputs, InputView
        from batchwright.graph import FlowGraph
        from batchwright.parameters import flow_parameters

        args = self.args
        flow_class = load_flow_class(args.flow_file, self.flow_name)
        graph = FlowGraph(flow_class)
        if self.step_name not in graph:
            raise DoNotRetry(f"flow '{self.flow_name}' has no step '{self.step_name}'")
        node = graph[self.step_name]
        function = getattr(flow_class, self.step_name)
        decorators = merge_with_options(
            step_decorators(function), [decorator_from_with_option(w) for w in args.with_options]
        )
        init_context = StepInitContext(
            self.flow_name,
            node.name,
            "foreach" if node.is_foreach else node.type,
            tuple(decorators),
        )
        for decorator in decorators:
            decorator.step_init(init_context)

        inputs = [self._read_input(path) for path in self.metadata["input_paths"]]
        flow = flow_class(use_cli=False)
        flow._init_holder({}, self.store, f"step '{self.step_name}'")
        parameter_names = frozenset(flow_parameters(flow_class))
        flow._parameter_names = parameter_names
        frames: list[dict[str, Any]] = (
            list(inputs[0][1].get("foreach_frames", [])) if inputs else []
        )
        join_inputs: Inputs | None = None
        if node.type == "join":
            flow._is_join = True
            first = inputs[0][1]["artifacts"] if inputs else {}
            flow._refs.update({k: v for k, v in first.items() if k in parameter_names})
            split = graph[graph.outgoing_stack(node.in_funcs[0])[-1]]
            if split.is_foreach:
                frames = frames[:-1]
            join_inputs = Inputs(
                InputView(
                    meta["step"],
                    meta["task_id"],
                    meta["artifacts"],
                    self.store,
                    meta.get("foreach_frames", []),
                )
                for _, meta in inputs
            )
        elif inputs:
            flow._refs.update(inputs[0][1]["artifacts"])
            parent = graph.nodes.get(inputs[0][1]["step"])
            if parent is not None and parent.is_foreach:
                frames.append(
                    {
                        "step": parent.name,
                        "var": parent.foreach_param,
                        "index": args.split_index,
                        "num_splits": inputs[0][1].get("foreach_num_splits"),
                        # The fanned-out value's key, so self.input still works after a
                        # join has dropped the artifact itself (nested foreach).
                        "key": inputs[0][1]["artifacts"].get(parent.foreach_param),
                    }
                )
        flow._foreach_frames = frames
        self.metadata["foreach_frames"] = frames

        current._set_task(
            flow_name=self.flow_name,
            run_id=args.run_id,
            step_name=self.step_name,
            task_id=args.task_id,
            retry_count=args.retry_count,
            origin_run_id=args.origin_run_id,
            tempdir=self.tempdir,
        )
        context = TaskContext(
            self.flow_name,
            self.step_name,
            args.run_id,
            args.task_id,
            args.retry_count,
            args.max_retries,
            flow,
        )
        method = getattr(flow, self.step_name)
        failure: Exception | None = None
        try:
            for decorator in decorators:
                decorator.task_pre_step(context)
            if join_inputs is not None:
                method(join_inputs)
            else:
                method()
            for decorator in decorators:
                decorator.task_post_step(context)
        except Exception as error:
            failure = error
        finally:
            # Before anything else: disarm what pre_step armed (e.g. the @timeout alarm).
            for decorator in decorators:
                decorator.task_finally(context)
        handled = False
        if failure is not None:
            handled = any(d.task_exception(context, failure) for d in decorators)
            if not handled:
                raise failure
            if context.extras.get("print_exception", True):
                import traceback

                traceback.print_exception(failure)
            self.metadata["caught_exception"] = str(context.extras.get("caught"))

        next_steps = list(node.out_funcs)
        if not handled and node.type != "end":
            self._check_transition(flow, node.out_funcs, node.foreach_param)
        if node.foreach_param is not None:
            self.metadata["foreach_num_splits"] = self._foreach_splits(flow, node.foreach_param)
        self.metadata["next_steps"] = next_steps
        self.metadata["artifacts"] = self._persist(flow)
        self.metadata["status"] = "succeeded"
        return EXIT_SUCCESS

    def _read_input(self, pathspec: str) -> tuple[str, dict[str, Any]]:
        run_id, step, task_id = pathspec.split("/")
        metadata = self.store.read_metadata(run_id, step, task_id)
        if metadata is None:
            raise DoNotRetry(
                f"input {pathspec} of step '{self.step_name}' has no done marker in the "
                f"datastore {self.args.datastore_root}"
            )
        return pathspec, metadata

    def _check_transition(self, flow: Any, expected: list[str], foreach: str | None) -> None:
        transition = flow._transition
        if transition is None:
            raise DoNotRetry(f"step '{self.step_name}' returned without calling self.next()")
        names, given_foreach = transition
        if names != expected or given_foreach != foreach:
            raise DoNotRetry(
                f"step '{self.step_name}' called self.next({', '.join(names)}"
                f"{', foreach=' + repr(given_foreach) if given_foreach else ''}) but its "
                f"last line names {expected}: call self.next() only as the step's last "
                "statement, the same way on every path."
            )

    def _foreach_splits(self, flow: Any, var: str) -> int:
        try:
            values = getattr(flow, var)
        except AttributeError:
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' names no artifact. Set self.{var} "
                "to a list before self.next()."
            ) from None
        if isinstance(values, str | bytes | dict) or not hasattr(values, "__iter__"):
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' needs a list, tuple or other "
                f"iterable of items, got {type(values).__name__} {values!r:.80}. Make "
                f"self.{var} a list."
            )
        if not (hasattr(values, "__len__") and hasattr(values, "__getitem__")):
            values = list(values)
            setattr(flow, var, values)
        if len(values) == 0:
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' is empty, so there is nothing to "
                "fan out over. Give it at least one item or skip the foreach."
            )
        return len(values)

    def _persist(self, flow: Any) -> dict[str, str]:
        refs: dict[str, str] = dict(flow._refs)
        for name, value in vars(flow).items():
            if name.startswith("_"):
                continue
            try:
                refs[name] = self.store.save(value)
            except Exception as error:
                raise DoNotRetry(
                    f"step '{self.step_name}': artifact '{name}' cannot be stored "
                    f"({type(error).__name__}: {error}). Keep only picklable values on self; "
                    "use a name starting with '_' for anything else."
                ) from error
        return refs

    def finish(self, code: int, logs: Mapping[str, str]) -> None:
        """Write metadata, then logs, then (on success) the done marker, in that order."""
        args = self.args
        self.metadata["finished_at"] = time.time()
        self.metadata["exit_code"] = code
        if code != EXIT_SUCCESS:
            self.metadata["status"] = "failed"
        self.store.write_metadata(
            args.run_id, self.step_name, args.task_id, args.retry_count, self.metadata
        )
        for stream, path in logs.items():
            with open(path, "rb") as data:
                self.store.write_log(
                    args.run_id, self.step_name, args.task_id, args.retry_count, stream, data
                )
        if code == EXIT_SUCCESS:
            self.store.mark_done(args.run_id, self.step_name, args.task_id, args.retry_count)


if __name__ == "__main__":
    sys.exit(main())
