"""The task runner: ``python -m batchwright.task ...`` runs one attempt of one task.

The command line is contract 3 (:mod:`batchwright.entrypoint`); this module is what
executes it, wherever the task runs (a local subprocess or a Batch container). It loads
the flow, checks the step's decorators as the command line did
(:func:`batchwright.definition.step_decorators`), reads the inputs' metadata, runs the step
with its decorators' ``task_*`` hooks (``@timeout`` uses a real-time alarm, ``@catch``
records the exception), stores new artifacts, then the attempt's metadata, then its logs,
and writes the done marker LAST.

It needs only the standard library, boto3 (for ``s3://`` roots) and the flow's own code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batchwright.batch.jobinfo import placement
from batchwright.entrypoint import (
    EXIT_DO_NOT_RETRY,
    EXIT_NODE_FAILED,
    EXIT_STEP_FAILED,
    EXIT_SUCCESS,
    FINAL_EXIT_CODES,
    DoNotRetry,
    TaskArguments,
    parse_arguments,
)
from batchwright.multinode import MAX_NODES, NodeFailed

if TYPE_CHECKING:
    from batchwright.configs import RunConfigs

#: Threads reading a join's inputs' metadata.
INPUT_READERS = 16


def load_flow_class(flow_file: str, flow_name: str) -> type:
    """Import the flow file as a module (named after the file) and return the flow class."""
    from batchwright.definition import import_flow_file
    from batchwright.errors import UserInputError

    try:
        module = import_flow_file(flow_file)
    except UserInputError as error:
        raise DoNotRetry(str(error)) from None
    flow_class = getattr(module, flow_name, None)
    if not isinstance(flow_class, type):
        raise DoNotRetry(f"the flow file {flow_file} defines no class '{flow_name}'")
    return flow_class


#: What a task imports as it runs, most of it lazily (:func:`preload` imports it ahead).
RUNNER_MODULES = (
    "batchwright.current",
    "batchwright.datastore",
    "batchwright.decorators",
    "batchwright.definition",
    "batchwright.flowspec",
    "batchwright.graph",
    "batchwright.parameters",
    "concurrent.futures",
    "threading",
    "traceback",
)
#: What a task with an ``s3://`` datastore root imports as well (modules, no clients).
S3_MODULES = ("batchwright.datastore.s3", "boto3", "botocore.config")


def preload(flow_file: str, datastore_root: str) -> None:
    """Import what a task of ``flow_file`` needs, without running any of its steps.

    For a parent that forks one process per task (the local backend's fork server): each
    child starts with the runner's modules, boto3 for an ``s3://`` root, and the flow
    module already imported, and :func:`load_flow_class` finds that module (only its
    module-level code ran, once, in the parent).

    Raises:
        BaseException: whatever importing the flow module raised.
    """
    import importlib

    from batchwright.definition import import_flow_file

    extra = S3_MODULES if datastore_root.startswith("s3://") else ()
    for name in (*RUNNER_MODULES, *extra):
        importlib.import_module(name)
    # Once, so that argparse's patterns are compiled already when a task parses its own.
    sample = TaskArguments(flow_file, "Flow", "start", "1", "1", datastore_root)
    parse_arguments(sample.to_argv(), {})
    import_flow_file(flow_file)


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
    try:
        arguments = parse_arguments(argv, os.environ)
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
        runner = TaskRunner(arguments, tempdir)
        code = runner.run()
    except DoNotRetry as error:
        sys.stderr.write(f"error: {error}\n")
        code = EXIT_DO_NOT_RETRY
        if runner is not None:
            runner.record_exception(error)
    except NodeFailed as error:
        sys.stderr.write(f"error: {error}\n")
        code = EXIT_NODE_FAILED
        if runner is not None:
            runner.metadata["failed_node"] = {
                "node": error.node,
                "task_id": error.task_id,
                "exit_code": error.exit_code,
            }
    except BaseException as error:
        import traceback

        traceback.print_exc()
        code = EXIT_STEP_FAILED
        if runner is not None:
            runner.record_exception(error)
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


#: The most characters of an exception's message and stack trace a task's record keeps
#: (the end, where the error is).
EXCEPTION_TEXT_LIMIT = 64 * 1024


class TaskRunner:
    """One attempt of one task: set up, run the step, persist."""

    def __init__(self, arguments: TaskArguments, tempdir: str) -> None:
        from batchwright.datastore import ROOT_VARIABLE, open_datastore

        self.args = arguments
        self.tempdir = tempdir
        # The client inside the step reads this run's datastore unless told otherwise,
        # wherever the task runs (a container has no other way to know it).
        os.environ.setdefault(ROOT_VARIABLE, arguments.datastore_root)
        self.started_at = time.time()
        #: A deployed task with nothing to do says why here; it then records nothing.
        self.skipped: str | None = None
        #: The step has @catch (a deployed run is not failed by its last attempt).
        self.catches = False
        self.flow_name = arguments.flow
        self.step_name = arguments.step
        self.store = open_datastore(self.flow_name, arguments.datastore_root)
        self.metadata: dict[str, Any] = {
            "flow": self.flow_name,
            "run_id": arguments.run_id,
            "step": self.step_name,
            "task_id": arguments.task_id,
            "attempt": arguments.retry_count,
            "input_paths": list(arguments.input_paths),
            "split_index": arguments.split_index,
            "origin_run_id": arguments.origin_run_id,
            "started_at": self.started_at,
            "status": "failed",
            "artifacts": {},
            # The interpreter that ran the step (a container's may differ from the
            # orchestrator's); Metaflow's task metadata has it too.
            "python_version": ".".join(str(part) for part in sys.version_info[:3]),
        }
        # On Batch: the compute environment, queue and instance the job runs on, for the
        # run's timeline and cost report.
        where = placement(os.environ)
        if where is not None:
            self.metadata["placement"] = where

    def run(self) -> int:
        """Load the flow and inputs, run the step with its hooks; returns the exit code."""
        from batchwright.configs import flow_configs
        from batchwright.current import current
        from batchwright.decorators import TaskContext, parse_with_option
        from batchwright.definition import step_decorators
        from batchwright.flowspec import Inputs
        from batchwright.graph import FlowGraph
        from batchwright.parameters import flow_constants, flow_parameters

        args = self.args
        flow_class = load_flow_class(args.flow_file, self.flow_name)
        graph = FlowGraph(flow_class)
        if self.step_name not in graph:
            raise DoNotRetry(f"flow '{self.flow_name}' has no step '{self.step_name}'")
        node = graph[self.step_name]
        if args.deployed:
            from batchwright.stepfunctions import deployed

            placed = deployed.place(graph, self.store, args)
            if placed.skip is not None:
                self.skipped = placed.skip
                print(f"{args.pathspec}: nothing to do: {placed.skip}", file=sys.stderr)
                return EXIT_SUCCESS
            args = self.args = args._replace(input_paths=placed.input_paths)
            self.metadata["input_paths"] = list(placed.input_paths)
            if self.step_name == "start":
                deployed.start_run(self.store, flow_class, args)
        with_options = [parse_with_option(w) for w in args.with_options]
        inputs = self._read_inputs(args.input_paths)
        # Config references in decorator arguments read the run's configs from the inputs
        # (only when the step's decorators have any).
        decorators = step_decorators(
            flow_class,
            graph,
            self.step_name,
            with_options,
            lambda: self._stored_configs(flow_class, inputs),
        )
        parameter_names = frozenset(flow_parameters(flow_class))
        # The configs and the flow's constants are inherited as the parameters are, joins
        # included.
        inherited = (
            parameter_names
            | frozenset(flow_configs(flow_class))
            | frozenset(flow_constants(flow_class))
        )
        frames: list[dict[str, Any]] = (
            list(inputs[0][1].get("foreach_frames", [])) if inputs else []
        )
        refs: dict[str, str] = {}
        join_inputs: Inputs | None = None
        if node.type == "join":
            first = inputs[0][1]["artifacts"] if inputs else {}
            refs = {k: v for k, v in first.items() if k in inherited}
            split = graph[graph.outgoing_stack(node.in_funcs[0])[-1]]
            if split.is_foreach:
                frames = frames[:-1]
            join_inputs = Inputs([meta for _, meta in inputs], self.store)
        elif inputs:
            refs = dict(inputs[0][1]["artifacts"])
            parent = graph.nodes.get(inputs[0][1]["step"])
            if parent is not None and parent.is_foreach:
                frames.append(
                    {
                        "step": parent.name,
                        # The step the frame opens on (Metaflow's ForeachFrame.step).
                        "inner_step": self.step_name,
                        "var": parent.foreach_param,
                        "parallel": parent.parallel_foreach,
                        "index": args.split_index,
                        "num_splits": inputs[0][1].get("foreach_num_splits"),
                        # The fanned-out value's key, so self.input still works after a
                        # join has dropped the artifact itself (nested foreach).
                        "key": inputs[0][1]["artifacts"].get(parent.foreach_param),
                        # The items stored one by one: self.input reads only its own.
                        "split": inputs[0][1].get("foreach_split"),
                    }
                )
        flow = flow_class(use_cli=False)
        flow._prepare_task(
            self.store,
            refs,
            frames,
            parameter_names=inherited,
            is_join=join_inputs is not None,
            owner=f"task {self.flow_name}/{args.run_id}/{self.step_name}/{args.task_id}",
            step_name=self.step_name,
        )
        self.metadata["foreach_frames"] = frames
        node_place = None
        if node.parallel_step and frames:
            from batchwright import multinode

            node_place = multinode.describe_node(
                os.environ, args.split_index, frames[-1].get("num_splits"), args.task_id
            )
            multinode.export_for_tools(node_place)
            # Which try of the nodes stored this record (see multinode.TRY_VARIABLE).
            self.metadata["parallel_try"] = os.environ.get(multinode.TRY_VARIABLE)

        current._set_task(
            flow_name=self.flow_name,
            run_id=args.run_id,
            step_name=self.step_name,
            task_id=args.task_id,
            retry_count=args.retry_count,
            origin_run_id=args.origin_run_id,
            tempdir=self.tempdir,
            parallel=node_place,
            # Metaflow lists them as dir() finds them on the flow class: sorted.
            parameter_names=sorted(parameter_names),
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
        self.catches = any(d.name == "catch" for d in decorators)
        for decorator in decorators:
            method = decorator.task_decorate(context, method)
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
            self._check_transition(flow, node)
        if node.is_switch:
            # The one case that runs next (the scheduler reads it from here).
            next_steps = [self._chosen_case(flow, node)]
        if node.parallel_foreach:
            # The nodes of the parallel step: num_parallel, or 1 when @catch handled a
            # failure before self.next() was reached.
            transition = flow._transition
            self.metadata["foreach_num_splits"] = (transition[2] if transition else None) or 1
            self.metadata["parallel"] = True
        elif node.foreach_param is not None:
            values = self._foreach_values(flow, node.foreach_param)
            self.metadata["foreach_num_splits"] = len(values)
            # Stored once more, item by item, so each child reads only its own item.
            self.metadata["foreach_split"] = self.store.save_split(values)
            if args.deployed:
                from batchwright.stepfunctions import deployed

                deployed.publish_array_size(self.store, args.run_id, node.name, len(values))
        self.metadata["next_steps"] = next_steps
        self.metadata["artifacts"] = self._persist(flow)
        if node_place is not None and node_place.node_index == 0:
            self._wait_for_other_nodes()
        self.metadata["status"] = "succeeded"
        return EXIT_SUCCESS

    def _stored_configs(
        self, flow_class: type, inputs: Sequence[tuple[str, dict[str, Any]]]
    ) -> RunConfigs:
        """The run's configs, as stored with it: every task inherits them from its first
        input (``start`` from the run's parameters)."""
        from batchwright.configs import ConfigError, configs_from_artifacts, flow_configs

        refs = inputs[0][1]["artifacts"] if inputs else {}
        stored = {
            attribute: self.store.load(refs[attribute], f"config '{attribute}'")
            for attribute in flow_configs(flow_class)
            if attribute in refs
        }
        try:
            return configs_from_artifacts(flow_class, stored)
        except ConfigError as error:
            raise DoNotRetry(str(error)) from None

    def _wait_for_other_nodes(self) -> None:
        """The main node of a parallel step: AWS Batch stops the other nodes when it
        exits, so it waits for their done markers first (a failed node fails it)."""
        from batchwright import multinode

        members = multinode.member_task_ids(os.environ)
        if len(members) > 1:
            multinode.wait_for_nodes(
                self.store,
                self.args.run_id,
                self.step_name,
                members[1:],
                self.args.retry_count,
                os.environ.get(multinode.TRY_VARIABLE),
            )

    def _read_inputs(self, pathspecs: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Every input's metadata. For a join over many inputs: which finished (and their
        attempts) from one listing per input step, then a GET per input, in parallel."""
        if len(pathspecs) <= 1:
            return [self._read_input(p, None) for p in pathspecs]
        from concurrent.futures import ThreadPoolExecutor

        finished: dict[str, int] = {}
        for run_step in {p.rsplit("/", 1)[0] for p in pathspecs}:
            run_id, step = run_step.split("/")
            for task_id, attempt in self.store.finished_attempts(run_id, step).items():
                finished[f"{run_step}/{task_id}"] = attempt
        with ThreadPoolExecutor(max_workers=min(INPUT_READERS, len(pathspecs))) as pool:
            return list(pool.map(self._read_input, pathspecs, map(finished.get, pathspecs)))

    def _read_input(self, pathspec: str, attempt: int | None) -> tuple[str, dict[str, Any]]:
        run_id, step, task_id = pathspec.split("/")
        metadata = self.store.finished_metadata(run_id, step, task_id, attempt)
        if metadata is None:
            raise DoNotRetry(
                f"input {pathspec} of step '{self.step_name}' has no done marker in the "
                f"datastore {self.args.datastore_root}"
            )
        return pathspec, metadata

    def _chosen_case(self, flow: Any, node: Any) -> str:
        """The step a switch chose (a failure @catch handled leaves no choice)."""
        switch = flow._switch
        if switch is None:
            raise DoNotRetry(
                f"step '{self.step_name}' is a switch on '{node.condition}', and its failure "
                "was caught before self.next() chose a case, so the run cannot go on. Catch "
                "the error inside the step and still end it with self.next({...}, "
                f"condition='{node.condition}')."
            )
        return str(switch[1])

    def _check_transition(self, flow: Any, node: Any) -> None:
        transition = flow._transition
        if transition is None:
            raise DoNotRetry(f"step '{self.step_name}' returned without calling self.next()")
        switch = flow._switch
        if switch is not None or node.is_switch:
            given = (switch[0], switch[2]) if switch is not None else None
            if given != (node.condition, node.switch_cases):
                called = (
                    f"self.next({switch[2]}, condition={switch[0]!r})"
                    if switch is not None
                    else f"self.next({', '.join(transition[0])})"
                )
                cases = ", ".join(f"{k!r}: self.{v}" for k, v in node.switch_cases.items())
                written = (
                    f"self.next({{{cases}}}, condition={node.condition!r})"
                    if node.is_switch
                    else f"self.next({', '.join(node.out_funcs)})"
                )
                raise DoNotRetry(
                    f"step '{self.step_name}' called {called} but its last line is "
                    f"{written}: call self.next() only as the step's last statement, the same "
                    "way on every path."
                )
            return
        names, given_foreach, given_parallel = transition
        expected = list(node.out_funcs)
        if (
            names != expected
            or given_foreach != node.foreach_param
            or (given_parallel is not None) != node.parallel_foreach
        ):
            extra = f", foreach={given_foreach!r}" if given_foreach else ""
            extra += f", num_parallel={given_parallel}" if given_parallel is not None else ""
            raise DoNotRetry(
                f"step '{self.step_name}' called self.next({', '.join(names)}{extra}) but its "
                f"last line names {expected}: call self.next() only as the step's last "
                "statement, the same way on every path."
            )
        if given_parallel is not None and given_parallel > MAX_NODES:
            raise DoNotRetry(
                f"step '{self.step_name}' called self.next(..., num_parallel={given_parallel}): "
                f"a parallel step runs on at most {MAX_NODES} nodes (AWS Batch's limit for one "
                "multi-node job). Ask for fewer nodes."
            )
        if node.num_parallel is not None and given_parallel != node.num_parallel:
            raise DoNotRetry(
                f"step '{self.step_name}' called self.next(..., num_parallel={given_parallel}) "
                f"but its last line says num_parallel={node.num_parallel}."
            )

    def _foreach_values(self, flow: Any, var: str) -> Sequence[Any]:
        try:
            values = getattr(flow, var)
        except AttributeError:
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' names no artifact. Set self.{var} "
                "to a list before self.next()."
            ) from None
        # As in Metaflow, anything iterable fans out over what iterating it gives: a str
        # over its characters, a dict over its keys, a generator over what it yields.
        try:
            iterator = iter(values)
        except TypeError:
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' needs a list, tuple or other "
                f"iterable of items, got {type(values).__name__} {values!r:.80}. Make "
                f"self.{var} a list."
            ) from None
        if not isinstance(values, Sequence):
            try:
                items = list(iterator)
            except Exception as error:
                raise DoNotRetry(
                    f"step '{self.step_name}': foreach='{var}': iterating self.{var} "
                    f"({type(values).__name__}) raised {type(error).__name__}: {error}. Make "
                    f"self.{var} a list."
                ) from error
            if iterator is values:
                # An iterator is used up by the fan-out (and a generator cannot be stored):
                # the artifact keeps the items it gave.
                setattr(flow, var, items)
            values = items
        if len(values) == 0:
            raise DoNotRetry(
                f"step '{self.step_name}': foreach='{var}' is empty, so there is nothing to "
                "fan out over. Give it at least one item or skip the foreach."
            )
        return values  # type: ignore[no-any-return]

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

    def record_exception(self, error: BaseException) -> None:
        """Keep the exception that failed the step in the attempt's record (the client's
        ``Task.exception``, as Metaflow's): its type, message and stack trace."""
        from batchwright.exception import MetaflowExceptionWrapper

        try:
            wrapped = MetaflowExceptionWrapper(error)
            recorded = {
                "type": wrapped.type,
                "exception": wrapped.exception,
                "stacktrace": wrapped.stacktrace,
            }
        except Exception as broken:  # e.g. an exception whose __str__ raises
            kind = type(error)
            recorded = {
                "type": f"{kind.__module__}.{kind.__qualname__}",
                "exception": f"<cannot be shown: {type(broken).__name__} in its __str__>",
                "stacktrace": None,
            }
        # The record is read whole by the scheduler and the client: keep it small.
        self.metadata["exception"] = {
            key: value[-EXCEPTION_TEXT_LIMIT:] if isinstance(value, str) else value
            for key, value in recorded.items()
        }

    def finish(self, code: int, logs: Mapping[str, str]) -> None:
        """Write metadata, then logs, then (on success) the done marker, in that order.
        A deployed run's ``end`` records the run as succeeded, and its last failing
        attempt records it as failed."""
        args = self.args
        if self.skipped is not None:
            return
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
        if args.deployed:
            self._finish_deployed_run(code)

    def _finish_deployed_run(self, code: int) -> None:
        from batchwright.stepfunctions import deployed

        args = self.args
        if code == EXIT_SUCCESS and self.step_name == "end":
            deployed.finish_run(self.store, args.run_id)
        if code == EXIT_SUCCESS:
            return
        recorded = (self.metadata.get("exception") or {}).get("exception")
        reason = f"exit code {code}" + (f": {recorded:.500}" if recorded else "")
        if code in FINAL_EXIT_CODES:
            deployed.mark_final_failure(self.store, args, reason)
        final = code in FINAL_EXIT_CODES or args.retry_count >= args.max_retries
        if final and not (self.catches and code not in FINAL_EXIT_CODES):
            deployed.finish_run(self.store, args.run_id, failed_task=args.pathspec, reason=reason)


if __name__ == "__main__":
    sys.exit(main())
