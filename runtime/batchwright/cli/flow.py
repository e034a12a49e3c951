"""The command line every flow file gets: ``python flow.py run|resume|show|logs|check``.

``MyFlow()`` at the bottom of a flow file calls :func:`main`. Subcommands are entries of
:data:`SUBCOMMANDS`; a later module adds one (e.g. ``plan``) with
:func:`register_subcommand`, and options shared by ``run`` and ``resume`` (e.g.
``--environment``) with :func:`register_run_option`.

Exit codes: 0 success; 2 bad input (graph errors, bad parameter or decorator values),
found before any task runs, reported as one paragraph without a traceback; 1 a task
failed (the message names it); 130 interrupted.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchwright.console import Console
from batchwright.errors import BatchwrightError, TaskFailed, UserInputError
from batchwright.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    TaskCloned,
    TaskOutput,
    TaskStatusChanged,
    TaskSubmitted,
    TaskSucceeded,
)
from batchwright.events import (
    TaskFailed as TaskFailedEvent,
)


@dataclass
class FlowCommand:
    """What every subcommand handler receives: the flow, its file and the console."""

    flow_class: type
    flow_file: str
    console: Console
    _graph: Any = None
    _decorators: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def flow_name(self) -> str:
        """The flow's class name."""
        return self.flow_class.__name__

    def validated_graph(self) -> Any:
        """The flow's graph after every lint check (GraphError on failure)."""
        if self._graph is None:
            from batchwright.graph import FlowGraph
            from batchwright.lint import validate

            graph = FlowGraph(self.flow_class)
            validate(graph)
            self._graph = graph
        return self._graph

    def validated_decorators(self, with_options: Sequence[str] = ()) -> dict[str, list[Any]]:
        """Each step's decorators (plus ``--with`` ones), after ``step_init`` validation."""
        from batchwright.decorators import (
            StepInitContext,
            decorator_from_with_option,
            merge_with_options,
            step_decorators,
        )
        from batchwright.parameters import flow_parameters

        graph = self.validated_graph()
        extra = [decorator_from_with_option(option) for option in with_options]
        result: dict[str, list[Any]] = {}
        for node in graph:
            function = getattr(self.flow_class, node.name)
            decorators = merge_with_options(step_decorators(function), extra)
            step_type = "foreach" if node.is_foreach else node.type
            context = StepInitContext(self.flow_name, node.name, step_type, tuple(decorators))
            for decorator in decorators:
                decorator.step_init(context)
            result[node.name] = decorators
        parameters = flow_parameters(self.flow_class)
        for attribute, parameter in parameters.items():
            parameter.check_declaration(self.flow_name)
            if attribute in graph:
                raise UserInputError(
                    f"flow '{self.flow_name}': parameter '{attribute}' has the name of a step. "
                    "Rename the parameter or the step."
                )
        return result


Configure = Callable[[argparse.ArgumentParser, FlowCommand], None]
Handle = Callable[[argparse.Namespace, FlowCommand], int]


@dataclass(frozen=True)
class Subcommand:
    """One ``python flow.py <name>`` subcommand."""

    name: str
    help: str
    configure: Configure
    handle: Handle


#: The subcommands, in the order ``--help`` shows them.
SUBCOMMANDS: list[Subcommand] = []
#: Functions adding options to ``run`` and ``resume`` (e.g. a later ``--environment``).
RUN_OPTIONS: list[Configure] = []


def register_subcommand(subcommand: Subcommand) -> None:
    """Add (or replace) a subcommand."""
    SUBCOMMANDS[:] = [s for s in SUBCOMMANDS if s.name != subcommand.name] + [subcommand]


def register_run_option(configure: Configure) -> None:
    """Add options to ``run`` and ``resume``; handlers find them on the namespace."""
    RUN_OPTIONS.append(configure)


def flow_file_of(flow_class: type) -> str:
    """Absolute path of the file defining ``flow_class``."""
    return os.path.abspath(inspect.getfile(flow_class))


def build_parser(command: FlowCommand) -> argparse.ArgumentParser:
    """The flow's argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog=os.path.basename(command.flow_file),
        description=(inspect.getdoc(command.flow_class) or f"The flow {command.flow_name}."),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        child = sub.add_parser(subcommand.name, help=subcommand.help, description=subcommand.help)
        subcommand.configure(child, command)
        child.set_defaults(handler=subcommand.handle)
    return parser


def main(
    flow_class: type, argv: Sequence[str] | None = None, console: Console | None = None
) -> int:
    """Run the flow's command line; returns the exit code."""
    command = FlowCommand(flow_class, flow_file_of(flow_class), console or Console())
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        handler: Handle | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 0
        return int(handler(args, command))
    except BatchwrightError as error:
        command.console.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        command.console.error("interrupted; tasks in flight were terminated")
        return 130


# -- shared options ----------------------------------------------------------------------------


def add_with_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``--with DECORATOR[:KEY=VALUE,...]`` (repeatable), as run, resume and plan take it."""
    parser.add_argument(
        "--with",
        dest="with_options",
        action="append",
        default=[],
        metavar="DECORATOR[:KEY=VALUE,...]",
        help=f"add a step decorator to every step, e.g. {example}",
    )


def _add_execution_options(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument(
        "--max-workers", type=int, default=16, metavar="N", help="tasks running at once (16)"
    )
    add_with_option(parser, "--with retry:times=2")
    parser.add_argument("--run-id-file", metavar="PATH", help="write the new run's id to this file")
    for configure in RUN_OPTIONS:
        configure(parser, command)


def _add_datastore_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datastore-root",
        metavar="ROOT",
        help="folder or s3://bucket/prefix "
        "(default: $BATCHWRIGHT_DATASTORE_ROOT, else ./.batchwright)",
    )


def _datastore_root(args: argparse.Namespace) -> str:
    from batchwright.datastore import default_root

    root = default_root(args.datastore_root)
    return root if root.startswith("s3://") else os.path.abspath(root)


# -- run / resume ------------------------------------------------------------------------------


def _configure_run(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    from batchwright.parameters import flow_parameters

    _add_execution_options(parser, command)
    _add_datastore_option(parser)
    group = parser.add_argument_group("flow parameters")
    for attribute, parameter in flow_parameters(command.flow_class).items():
        names = [f"--{parameter.name}"]
        if "_" in parameter.name:
            names.append(f"--{parameter.name.replace('_', '-')}")
        default = (
            ""
            if callable(parameter.default) or parameter.default is None
            else f" (default: {parameter.default!r})"
        )
        required = " (required)" if parameter.required else ""
        extra: dict[str, Any] = {}
        if parameter.type is bool:
            extra = {"nargs": "?", "const": "true"}
        try:
            group.add_argument(
                *names,
                dest=f"parameter:{attribute}",
                metavar=parameter.type_name.split()[-1].upper(),
                help=(parameter.help or parameter.type_name) + default + required,
                **extra,
            )
        except argparse.ArgumentError:
            raise UserInputError(
                f"flow '{command.flow_name}': parameter '{parameter.name}' has the name of an "
                f"option of 'run' (--{parameter.name}). Rename the parameter."
            ) from None


def _handle_run(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.parameters import flow_parameters, resolve_parameters

    decorators = _prepare(args, command)
    given = {
        attribute: getattr(args, f"parameter:{attribute}", None)
        for attribute in flow_parameters(command.flow_class)
    }
    values = resolve_parameters(command.flow_class, given, command.flow_name)
    return _execute(args, command, decorators, values, origin_run_id=None, resume_step=None)


def _configure_resume(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="run to resume (latest)")
    parser.add_argument("--step", metavar="STEP", help="rerun this step and all after it")
    _add_execution_options(parser, command)
    _add_datastore_option(parser)


def _handle_resume(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.datastore import open_datastore

    decorators = _prepare(args, command)
    graph = command.validated_graph()
    store = open_datastore(command.flow_name, _datastore_root(args))
    origin = args.run_id
    if origin is None:
        runs = store.list_runs()
        if not runs:
            raise UserInputError(
                f"flow '{command.flow_name}' has no run in {store.storage.root} to resume. "
                "Start one with 'run' (or pass --datastore-root)."
            )
        origin = runs[-1]
    elif store.read_run(origin) is None:
        raise UserInputError(
            f"flow '{command.flow_name}' has no run '{origin}' in {store.storage.root}. "
            "Pass an id listed by the client (Flow(name).runs())."
        )
    if args.step is not None and args.step not in graph:
        raise UserInputError(
            f"resume --step {args.step}: flow '{command.flow_name}' has no such step "
            f"(steps: {', '.join(n.name for n in graph)})."
        )
    return _execute(args, command, decorators, None, origin_run_id=origin, resume_step=args.step)


def _prepare(args: argparse.Namespace, command: FlowCommand) -> dict[str, list[Any]]:
    if args.max_workers < 1:
        raise UserInputError(
            f"--max-workers={args.max_workers} must be at least 1. Pass e.g. --max-workers 16."
        )
    decorators = command.validated_decorators(args.with_options)
    from batchwright.cli.plan import prepare_run

    # Environment, plan, refusals and the live queue check: before any task or submission.
    prepare_run(args, command, decorators)
    return decorators


def _execute(
    args: argparse.Namespace,
    command: FlowCommand,
    decorators: dict[str, list[Any]],
    parameters: dict[str, Any] | None,
    *,
    origin_run_id: str | None,
    resume_step: str | None,
) -> int:
    from batchwright.backends import wanted_but_missing
    from batchwright.datastore import open_datastore
    from batchwright.scheduler import RunOptions, Scheduler

    root = _datastore_root(args)
    store = open_datastore(command.flow_name, root)
    extras = {k: v for k, v in vars(args).items() if k not in ("handler",)}
    options = RunOptions(
        flow_file=command.flow_file,
        datastore_root=root,
        max_workers=args.max_workers,
        with_options=tuple(args.with_options),
        origin_run_id=origin_run_id,
        resume_step=resume_step,
        extras=extras,
    )
    overridden = getattr(args, "backend_overrides", None) or {}
    for step, step_decorators in decorators.items():
        for missing in wanted_but_missing(step_decorators):
            if missing in overridden:
                continue
            command.console.notice(
                f"step '{step}' asks for the '{missing}' backend, which is not available "
                "here; it runs locally."
            )
    renderer = EventRenderer(command.console, args.run_id_file)
    scheduler = Scheduler(
        command.flow_class, command.validated_graph(), decorators, store, options, renderer
    )
    result = scheduler.run(parameters)
    if not result.successful:
        raise TaskFailed(
            f"task {result.failed_task} failed ({result.reason}); run "
            f"{command.flow_name}/{result.run_id} did not finish. Fix the step and continue "
            f"with: python {os.path.basename(command.flow_file)} resume {result.run_id}"
        )
    return 0


class EventRenderer:
    """Shows scheduler events on the console."""

    def __init__(self, console: Console, run_id_file: str | None = None) -> None:
        self.console = console
        self.run_id_file = run_id_file

    def __call__(self, event: Event) -> None:
        console = self.console
        if isinstance(event, TaskOutput):
            console.task_output(event.pathspec, event.text, stream=event.stream)
        elif isinstance(event, TaskSubmitted):
            suffix = f" (retry {event.attempt})" if event.attempt else ""
            console.info(console.style(f"[{event.pathspec}] started{suffix}", "dim"))
        elif isinstance(event, TaskStatusChanged):
            reason = f" ({event.reason})" if event.reason else ""
            console.info(console.style(f"[{event.pathspec}] {event.status}{reason}", "dim"))
        elif isinstance(event, TaskSucceeded):
            console.info(console.style(f"[{event.pathspec}] finished", "dim"))
        elif isinstance(event, TaskFailedEvent):
            retry = f"; retrying in {event.retry_in:g} s" if event.retry_in is not None else ""
            console.warn(
                f"[{event.pathspec}] attempt {event.attempt} failed: {event.reason} "
                f"(exit code {event.exit_code}){retry}"
            )
        elif isinstance(event, TaskCloned):
            console.info(f"[{event.pathspec}] reused from {event.origin_pathspec}")
        elif isinstance(event, RunStarted):
            if self.run_id_file:
                with open(self.run_id_file, "w", encoding="utf-8") as out:
                    out.write(event.run_id)
            origin = f", resuming run {event.origin_run_id}" if event.origin_run_id else ""
            console.info(
                console.style(f"Run {event.flow_name}/{event.run_id} started", "bold")
                + f" (run id {event.run_id}{origin}; datastore {event.datastore_root})"
            )
        elif isinstance(event, RunFinished):
            if event.successful:
                console.info(console.style(f"Run {event.run_id} succeeded.", "green", "bold"))
        elif isinstance(event, Notice):
            console.notice(event.text)


# -- show / check / logs ----------------------------------------------------------------------


def _configure_nothing(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    pass


def _handle_show(args: argparse.Namespace, command: FlowCommand) -> int:
    graph = command.validated_graph()
    console = command.console
    console.line(console.style(command.flow_name, "bold"))
    if graph.doc:
        console.line(graph.doc)
    console.line()
    for node in graph:
        kind = node.type + (f" over '{node.foreach_param}'" if node.foreach_param else "")
        console.line(console.style(f"Step {node.name}", "bold") + f"  ({kind}, line {node.line})")
        if node.doc:
            for line in node.doc.splitlines():
                console.line(f"    {line}")
        if node.out_funcs:
            console.line(f"    => {', '.join(node.out_funcs)}")
        console.line()
    return 0


def _handle_check(args: argparse.Namespace, command: FlowCommand) -> int:
    command.validated_decorators(getattr(args, "with_options", []))
    steps = len(command.validated_graph().nodes)
    command.console.info(f"Flow {command.flow_name} is valid: {steps} steps.")
    return 0


def _configure_check(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument("--with", dest="with_options", action="append", default=[])


def _configure_logs(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument("pathspec", metavar="RUN_ID/STEP[/TASK]")
    streams = parser.add_mutually_exclusive_group()
    streams.add_argument("--stdout", dest="stream", action="store_const", const="stdout")
    streams.add_argument("--stderr", dest="stream", action="store_const", const="stderr")
    _add_datastore_option(parser)


def _handle_logs(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.datastore import open_datastore

    parts = args.pathspec.strip("/").split("/")
    if len(parts) not in (2, 3):
        raise UserInputError(
            f"logs {args.pathspec}: expected RUN_ID/STEP or RUN_ID/STEP/TASK, e.g. logs 1234/start."
        )
    run_id, step = parts[0], parts[1]
    store = open_datastore(command.flow_name, _datastore_root(args))
    tasks = [parts[2]] if len(parts) == 3 else store.list_tasks(run_id, step)
    if not tasks:
        raise UserInputError(
            f"logs {args.pathspec}: run '{run_id}' of flow '{command.flow_name}' has no tasks "
            f"for step '{step}' in {store.storage.root}."
        )
    streams = [args.stream] if args.stream else ["stdout", "stderr"]
    for task_id in tasks:
        done = store.read_done(run_id, step, task_id)
        attempts = store.list_attempts(run_id, step, task_id)
        if done is None and not attempts:
            raise UserInputError(f"logs {args.pathspec}: task '{task_id}' does not exist.")
        attempt = int(done["attempt"]) if done else attempts[-1]
        pathspec = f"{command.flow_name}/{run_id}/{step}/{task_id}"
        for stream in streams:
            data = store.read_log(run_id, step, task_id, attempt, stream) or b""
            if data:
                command.console.task_output(
                    pathspec, data.decode("utf-8", "replace"), stream=stream
                )
    return 0


for _subcommand in (
    Subcommand("run", "run the flow", _configure_run, _handle_run),
    Subcommand(
        "resume",
        "rerun a run's unfinished tasks, reusing the finished ones",
        _configure_resume,
        _handle_resume,
    ),
    Subcommand(
        "show", "show the flow's steps and their docstrings", _configure_nothing, _handle_show
    ),
    Subcommand("check", "validate the flow without running it", _configure_check, _handle_check),
    Subcommand("logs", "print the logs of a step's tasks", _configure_logs, _handle_logs),
):
    register_subcommand(_subcommand)

# ``plan`` and the run options --environment / --outputs-file / --run-batch-locally.
from batchwright.cli import plan as _plan  # noqa: E402, F401, I001


if __name__ == "__main__":  # pragma: no cover - flows call main() through FlowSpec
    sys.exit(0)
