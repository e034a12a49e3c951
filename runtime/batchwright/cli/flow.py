"""The command line every flow file gets: ``python flow.py run|resume|show|check|logs|dump|plan``.

``MyFlow()`` at the bottom of a flow file calls :func:`main`. The subcommands are the
rows of :data:`SUBCOMMANDS`.

Exit codes: 0 success; 2 bad input (graph errors, bad parameter, decorator or tag values,
refused steps, an environment not found), found before any task runs, reported as one
paragraph without a traceback; 1 a task failed (the message names it, and the ``resume``
command to paste); 130 interrupted.

Metaflow habits carry over: ``--tag TAG`` (repeatable) on ``run`` and ``resume``,
``--no-pylint`` accepted (and ignored) before the subcommand or on ``run``, ``resume`` and
``check``, and ``--help`` describing the flow with its own docstring. Before the
subcommand, the options Metaflow takes there (``--metadata=local``, ``--datastore=local|s3``,
``--datastore-root``, ``--environment=local``, ``--event-logger=nullSidecarLogger``,
``--monitor=nullSidecarMonitor``, ``--quiet``) are accepted with their meaning in batchwright,
or refused with the reason (see :mod:`batchwright.cli.metaflow_options`).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchwright.aws import DEFAULT_OUTAGE_LIMIT_SECONDS, Patience
from batchwright.backends import DEFAULT_FOLLOW_LOGS, WaitPolicy
from batchwright.cli.command import (
    MAX_TAG_LENGTH,
    FlowCommand,
    add_datastore_option,
    add_with_option,
    check_tags,
    flow_file_of,
)
from batchwright.cli.config_options import (
    CONFIG_SUBCOMMANDS,
    add_config_options,
    config_choices,
)
from batchwright.cli.dump import configure_dump, handle_dump
from batchwright.cli.metaflow_options import add_top_options, apply_top_options, placement
from batchwright.cli.plan import (
    RunEnvironment,
    RunSetup,
    add_plan_options,
    add_run_options,
    handle_plan,
    prepare_run,
)
from batchwright.cli.progress import Progress, duration_text, step_of
from batchwright.cli.resume_hint import flow_path, resume_command
from batchwright.configs import flow_configs
from batchwright.console import Console
from batchwright.decorators.base import did_you_mean
from batchwright.definition import FlowDefinition
from batchwright.errors import BatchwrightError, InvalidValue, RunFailed, UserInputError
from batchwright.events import (
    AttemptFailed,
    Event,
    Notice,
    Reconnected,
    Reconnecting,
    RunFinished,
    RunStarted,
    TaskCloned,
    TaskOutput,
    TaskStatusChanged,
    TaskSubmitted,
    TaskSucceeded,
    TaskWaiting,
)
from batchwright.identity import current_user
from batchwright.scheduler import DEFAULT_MAX_NUM_SPLITS, DEFAULT_MAX_WORKERS

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore

#: What ``--no-pylint`` says in ``--help``.
NO_PYLINT_HELP = (
    "accepted for Metaflow habits and ignored: batchwright runs no pylint (its own graph "
    "and decorator checks always run)"
)

Configure = Callable[[argparse.ArgumentParser, FlowCommand], None]
Handle = Callable[[argparse.Namespace, FlowCommand], int]


@dataclass(frozen=True)
class Subcommand:
    """One ``python flow.py <name>`` subcommand."""

    name: str
    help: str
    configure: Configure
    handle: Handle


def flow_description(flow_class: type) -> str | None:
    """The flow class's own docstring (not one it inherits, such as FlowSpec's), cleaned
    of its indentation; ``None`` when it has none."""
    doc = vars(flow_class).get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def add_no_pylint_option(parser: argparse.ArgumentParser, default: Any = False) -> None:
    """``--no-pylint``: a no-op kept so Metaflow commands work unchanged."""
    parser.add_argument("--no-pylint", action="store_true", default=default, help=NO_PYLINT_HELP)


def build_parser(command: FlowCommand) -> argparse.ArgumentParser:
    """The flow's argument parser with every subcommand; ``--help`` shows the flow's
    docstring as written."""
    parser = argparse.ArgumentParser(
        prog=os.path.basename(command.flow_file),
        description=flow_description(command.flow_class),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Where Metaflow takes it: `python flow.py --no-pylint run`.
    add_no_pylint_option(parser)
    add_top_options(parser)
    add_config_options(parser, before_subcommand=True, flow_class=command.flow_class)
    # After the subcommand too, when the flow has configs (a flow without any may keep a
    # parameter named --config).
    has_configs = bool(flow_configs(command.flow_class))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        child = sub.add_parser(subcommand.name, help=subcommand.help, description=subcommand.help)
        if has_configs and subcommand.name in CONFIG_SUBCOMMANDS:
            add_config_options(child, before_subcommand=False, flow_class=command.flow_class)
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
        words = list(sys.argv[1:] if argv is None else argv)
        misplaced = misplaced_option(parser, words, command.flow_file)
        if misplaced is not None:
            raise misplaced
        args = parser.parse_args(words)
        apply_top_options(args, command)
        command.config_choices = config_choices(args)
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
    except BrokenPipeError:
        from batchwright.cli import output_closed

        return output_closed()


def _subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name."""
    for action in parser._actions:  # argparse's list of options and subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options_of(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """A parser's option strings, each with whether it takes a value."""
    return {
        option: action.nargs != 0 for action in parser._actions for option in action.option_strings
    }


def misplaced_option(
    parser: argparse.ArgumentParser, words: Sequence[str], flow_file: str
) -> UserInputError | None:
    """The error for an option of a subcommand given before it (``python flow.py --with
    batch run``), which argparse would report as an invalid choice of subcommand; ``None``
    when there is none. The error shows the command with the options after the subcommand.
    """
    subcommands = _subcommand_parsers(parser)
    top = _options_of(parser)
    kept: list[str] = []  # words that may stay before the subcommand (--no-pylint)
    # Words of options that go after it: (option, its words, whether it may also stay).
    # One taken on both sides with one meaning (--datastore-root) is no error; it moves
    # along with a misplaced one when the subcommand shown takes it.
    moved: list[tuple[str, list[str], bool]] = []
    first: tuple[str, list[str]] | None = None  # the first misplaced option and who takes it
    chosen: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            break
        if word in subcommands:
            chosen = word
            break
        option, has_value, inline = word.partition("=")
        takers = [name for name, child in subcommands.items() if option in _options_of(child)]
        if not word.startswith("-") or not takers:
            kept.append(word)
            index += 1
            continue
        takes_value = _options_of(subcommands[takers[0]])[option]
        span = 2 if takes_value and not has_value else 1
        value = inline if has_value else (words[index + 1] if index + 1 < len(words) else None)
        # --environment before the subcommand is Metaflow's (local, conda...); a stack
        # name there is batchwright's --environment given too early.
        where = placement(option, value) if option in top else "subcommand"
        if where == "top":
            kept.append(word)
            index += 1
            continue
        moved.append((option, list(words[index : index + span]), where == "either"))
        if where == "subcommand":
            first = first or (option, takers)
        index += span
    if first is None:
        return None
    option, takers = first
    rest = list(words[index + 1 :]) if chosen in takers else []
    name = chosen if chosen in takers else takers[0]
    taken = _options_of(subcommands[name])
    after = [w for o, span_words, either in moved if not either or o in taken for w in span_words]
    kept += [w for o, span_words, either in moved if either and o not in taken for w in span_words]
    command = shlex.join(["python", flow_path(flow_file, os.getcwd()), *kept, name, *after, *rest])
    if chosen is not None and chosen not in takers:
        owners = ", ".join(takers[:-1]) + (" and " if len(takers) > 1 else "") + takers[-1]
        return UserInputError(
            f"{option} is an option of {owners}, not of {chosen}, and goes after the "
            f"subcommand: {command}"
        )
    return UserInputError(f"{option} goes after the subcommand: {command}")


# -- shared options ----------------------------------------------------------------------------


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-workers",
        type=int,
        default=DEFAULT_MAX_WORKERS,
        metavar="N",
        help=f"tasks running on this machine at once ({DEFAULT_MAX_WORKERS}); a @batch "
        "fan-out is submitted whole, its compute environments bound how many run",
    )
    parser.add_argument(
        "--max-num-splits",
        type=int,
        default=DEFAULT_MAX_NUM_SPLITS,
        metavar="N",
        help=f"fail a foreach that makes more splits than this ({DEFAULT_MAX_NUM_SPLITS:,})",
    )
    parser.add_argument(
        "--follow-logs",
        type=int,
        default=DEFAULT_FOLLOW_LOGS,
        metavar="N",
        help=f"stream the logs of N running children of each @batch fan-out "
        f"({DEFAULT_FOLLOW_LOGS}; 0 for none); failed ones are always shown, and every "
        "task's logs stay available with 'logs'",
    )
    add_with_option(parser, "--with retry:times=2")
    parser.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="TAG",
        help=f"tag the run (repeatable; 1 to {MAX_TAG_LENGTH} printable characters), as "
        "Metaflow does; the client's namespaces and Run.user_tags read them",
    )
    # The subcommand's own copy must not reset the one given before the subcommand.
    add_no_pylint_option(parser, default=argparse.SUPPRESS)
    parser.add_argument("--run-id-file", metavar="PATH", help="write the new run's id to this file")
    add_run_options(parser)
    waits = parser.add_argument_group("waiting on AWS")
    waits.add_argument(
        "--max-wait",
        type=seconds_option,
        metavar="SECONDS",
        help="stop an attempt that waited this long to start (default: no limit; the "
        "queue's own job-state time limit decides)",
    )
    waits.add_argument(
        "--misconfiguration-grace",
        type=seconds_option,
        default=WaitPolicy.misconfiguration_grace_seconds,
        metavar="SECONDS",
        help="stop an attempt whose queue keeps saying MISCONFIGURATION:... this long "
        f"(default {WaitPolicy.misconfiguration_grace_seconds:g}; such reasons can show "
        "briefly while capacity scales up from zero)",
    )
    waits.add_argument(
        "--outage-limit",
        type=seconds_option,
        default=DEFAULT_OUTAGE_LIMIT_SECONDS,
        metavar="SECONDS",
        help="keep retrying while AWS does not answer or throttles, up to this long in a "
        f"row (default {DEFAULT_OUTAGE_LIMIT_SECONDS:g}); jobs keep running meanwhile",
    )


def seconds_option(text: str) -> float:
    """An argparse type: seconds, a number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0 (e.g. 600)")
    return value


def _add_datastore_option(parser: argparse.ArgumentParser) -> None:
    add_datastore_option(parser)


def _datastore_root(given: str | None) -> str:
    from batchwright.datastore import default_root

    root = default_root(given)
    return root if root.startswith("s3://") else os.path.abspath(root)


# -- run / resume ------------------------------------------------------------------------------


def _configure_run(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    from batchwright.parameters import flow_parameters

    _add_execution_options(parser)
    _add_datastore_option(parser)
    group = parser.add_argument_group("flow parameters")
    for attribute, parameter in flow_parameters(command.flow_class).items():
        names = [f"--{parameter.name}"]
        if "_" in parameter.name:
            names.append(f"--{parameter.name.replace('_', '-')}")
        default = (
            ""
            if callable(parameter.default)
            or parameter.default is None
            or not parameter.show_default
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

    definition, setup = _prepare(args, command)
    given = {
        attribute: getattr(args, f"parameter:{attribute}", None)
        for attribute in flow_parameters(command.flow_class)
    }
    # A parameter's default may read the run's configs (config.key, ctx.configs.NAME).
    values = resolve_parameters(
        command.flow_class, given, command.flow_name, configs=definition.configs.namespace()
    )
    return _execute(args, command, definition, setup, values, origin_run_id=None)


def _configure_resume(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument(
        "run_id",
        nargs="?",
        metavar="RUN_ID|STEP",
        help="the run to resume (default: your latest run of the flow); a step name instead "
        "reruns that step and all after it, as Metaflow's 'resume STEP' does",
    )
    parser.add_argument("--step", metavar="STEP", help="rerun this step and all after it")
    parser.add_argument(
        "--origin-run-id",
        metavar="RUN_ID",
        help="the run to resume, as Metaflow names it (the same as RUN_ID)",
    )
    _add_execution_options(parser)
    _add_datastore_option(parser)


def resume_target(
    args: argparse.Namespace,
    steps: Sequence[str],
    is_run: Callable[[str], bool],
    flow_name: str = "the flow",
) -> tuple[str | None, str | None]:
    """The run to resume (``None``: the latest) and the step to rerun from, from batchwright's
    form (``resume RUN_ID --step STEP``) or Metaflow's (``resume STEP --origin-run-id ID``).

    A positional word is a step when it names a step of the flow and no run has that id.

    Raises:
        UserInputError: two different runs or two different steps are given, or the word
            given with ``--origin-run-id`` is neither a run nor a step (a mistyped step).
    """
    positional, step, origin = args.run_id, args.step, args.origin_run_id
    if positional is not None and positional in steps and not is_run(positional):
        if step is not None and step != positional:
            raise UserInputError(
                f"resume {positional} --step {step}: two steps to rerun from. Give one."
            )
        positional, step = None, positional
    if (
        positional is not None
        and origin is not None
        and positional != origin
        and not is_run(positional)
    ):
        raise UserInputError(
            f"resume {positional} --origin-run-id {origin}: '{positional}' is neither a run "
            f"of flow '{flow_name}' nor one of its steps ({', '.join(steps)})."
            f"{did_you_mean(positional, steps)} Give the step to rerun from: resume STEP "
            f"--origin-run-id {origin}."
        )
    if positional is not None and origin is not None and positional != origin:
        raise UserInputError(
            f"resume {positional} --origin-run-id {origin}: two runs to resume. Give one: "
            f"resume RUN_ID [--step STEP], or resume [STEP] --origin-run-id RUN_ID."
        )
    return positional or origin, step


def _latest_own_run(store: FlowDatastore, flow_name: str) -> str:
    """The newest run of ``flow_name`` started by this user (or recorded without a user),
    so that a shared datastore never resumes a colleague's run by default. A folder without
    a run record (nothing was started in it) is no run."""
    runs = store.list_runs()
    if not runs:
        raise UserInputError(
            f"flow '{flow_name}' has no run in {store.storage.root} to resume. "
            "Start one with 'run' (or pass --datastore-root)."
        )
    me = current_user()
    for run_id in reversed(runs):
        record = store.read_run(run_id)
        if record is not None and record.get("user") in (None, me):
            return run_id
    raise UserInputError(
        f"flow '{flow_name}' has no run started by user '{me}' in {store.storage.root} to "
        f"resume (the newest of its {len(runs)} run folder(s) is {runs[-1]}). Pass the id "
        "of the run to resume: resume RUN_ID."
    )


def _handle_resume(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.cli.config_options import refuse_config_choices, resumed_run_configs
    from batchwright.cli.plan import batch_datastore_root, declares_batch, find_run_environment
    from batchwright.datastore import open_datastore
    from batchwright.graph import FlowGraph

    refuse_config_choices(command.config_choices, args.run_id or args.origin_run_id)
    _check_run_options(args)
    # The run to resume is found before the plan: its configs decide the decorators'
    # arguments, so the plan is made with them (the datastore comes first).
    has_batch_steps = declares_batch(command.flow_class, args.with_options)
    found = find_run_environment(args, command, has_batch_steps)
    root = args.datastore_root
    if has_batch_steps and not args.run_batch_locally:
        root = batch_datastore_root(root, command, found.environment)
    graph = FlowGraph(command.flow_class)
    store = open_datastore(command.flow_name, _datastore_root(root))
    steps = [n.name for n in graph]
    origin, step = resume_target(
        args, steps, lambda word: store.read_run(word) is not None, command.flow_name
    )
    if origin is None:
        origin = _latest_own_run(store, command.flow_name)
    elif store.read_run(origin) is None:
        raise UserInputError(
            f"flow '{command.flow_name}' has no run '{origin}' in {store.storage.root}. "
            "Pass an id listed by the client (Flow(name).runs()), or a step name to rerun "
            f"your latest run from it (steps: {', '.join(steps)}).{did_you_mean(origin, steps)}"
        )
    if step is not None and step not in graph:
        raise UserInputError(
            f"resume --step {step}: flow '{command.flow_name}' has no such step "
            f"(steps: {', '.join(steps)}).{did_you_mean(step, steps)}"
        )
    command.use_configs(resumed_run_configs(store, command.flow_class, origin))
    definition, setup = _prepare(args, command, found)
    return _execute(args, command, definition, setup, None, origin_run_id=origin, resume_step=step)


def check_run_id_file(path: str | None, subcommand: str) -> None:
    """``--run-id-file``: a file that can be written once the run starts, in a folder that
    exists (checked before the run starts, so a bad path never leaves a run behind).

    Raises:
        InvalidValue: the path is a folder, its folder does not exist or is not writable,
            or the file exists and is not writable.
    """
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    problem: str | None = None
    fix = ""
    if os.path.isdir(path):
        problem = "is a folder"
        fix = (
            f"Pass the path of a file to write, e.g. --run-id-file {os.path.join(path, 'run-id')}."
        )
    elif os.path.exists(folder) and not os.path.isdir(folder):
        problem = f"is below {folder}, which is a file, not a folder"
        fix = "Pass a path in an existing folder."
    elif not os.path.isdir(folder):
        problem = f"is in a folder that does not exist ({folder})"
        fix = (
            f"Create the folder first (mkdir -p {shlex.quote(folder)}), or pass a path in an "
            "existing one."
        )
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"is in a folder you cannot write to ({folder})"
        fix = "Pass a path in a folder you can write to."
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        problem = "is a file you cannot write to"
        fix = "Pass a path you can write to, or make the file writable."
    if problem is not None:
        raise InvalidValue(
            where=subcommand, key="--run-id-file", value=path, problem=problem, fix=fix
        )


def _prepare(
    args: argparse.Namespace, command: FlowCommand, found: RunEnvironment | None = None
) -> tuple[FlowDefinition, RunSetup]:
    _check_run_options(args)
    definition = command.definition(args.with_options)
    # Environment, plan, refusals and the live queue check: before any task or submission.
    return definition, prepare_run(args, command, definition, found)


def _check_run_options(args: argparse.Namespace) -> None:
    check_tags(args.tags, args.command)
    check_run_id_file(args.run_id_file, args.command)
    if args.max_workers < 1:
        raise UserInputError(
            f"--max-workers={args.max_workers} must be at least 1. Pass e.g. --max-workers "
            f"{DEFAULT_MAX_WORKERS}."
        )
    if args.follow_logs < 0:
        raise UserInputError(
            f"--follow-logs={args.follow_logs} must be 0 or more. Pass e.g. --follow-logs "
            f"{DEFAULT_FOLLOW_LOGS}, or 0 to stream no running child's logs."
        )
    if args.max_num_splits < 1:
        raise UserInputError(
            f"--max-num-splits={args.max_num_splits} must be at least 1. Pass e.g. "
            f"--max-num-splits {DEFAULT_MAX_NUM_SPLITS}."
        )


def _execute(
    args: argparse.Namespace,
    command: FlowCommand,
    definition: FlowDefinition,
    setup: RunSetup,
    parameters: dict[str, Any] | None,
    *,
    origin_run_id: str | None,
    resume_step: str | None = None,
) -> int:
    from batchwright.datastore import open_datastore
    from batchwright.scheduler import RunOptions, Scheduler

    renderer = EventRenderer(command.console, args.run_id_file, quiet=command.quiet)
    patience = Patience(
        limit_seconds=args.outage_limit,
        on_wait=lambda problem, seconds: renderer(Reconnecting(problem, seconds)),
        on_recovered=lambda seconds: renderer(Reconnected(seconds)),
    )
    root = _datastore_root(setup.datastore_root)
    store = open_datastore(command.flow_name, root, patience)
    options = RunOptions(
        flow_file=command.flow_file,
        datastore_root=root,
        max_workers=args.max_workers,
        max_num_splits=args.max_num_splits,
        follow_logs=args.follow_logs,
        origin_run_id=origin_run_id,
        resume_step=resume_step,
        waits=WaitPolicy(
            misconfiguration_grace_seconds=args.misconfiguration_grace,
            max_wait_seconds=args.max_wait,
        ),
        patience=patience,
        tags=tuple(args.tags),  # checked by _prepare
    )
    scheduler = Scheduler(definition, setup.plan.policies, store, options, renderer)
    result = scheduler.run(parameters)
    if not result.successful:
        hint = resume_command(
            flow_file=command.flow_file,
            run_id=result.run_id,
            args=args,
            resume_parser=resume_parser(command),
            environment_name=setup.environment_name,
            datastore_root=root,
            cwd=os.getcwd(),
        )
        raise RunFailed(
            f"task {result.failed_task} failed ({result.reason}); run "
            f"{command.flow_name}/{result.run_id} did not finish. Fix the step and continue "
            f"with: {hint}"
        )
    return 0


def resume_parser(command: FlowCommand) -> argparse.ArgumentParser:
    """The flow's ``resume`` parser alone: what the resume hint may carry, and defaults."""
    parser = argparse.ArgumentParser(prog=f"{os.path.basename(command.flow_file)} resume")
    _configure_resume(parser, command)
    return parser


def waiting_text(event: TaskWaiting) -> str:
    """``[Flow/1/train/4] waiting for capacity on queue gpu: CAPACITY:..., 4 min``."""
    what = (
        "waiting for capacity"
        if event.reason.startswith("CAPACITY:")
        else f"waiting to start ({event.status})"
    )
    tasks = f" {event.tasks} tasks" if event.tasks > 1 else ""
    reason = f": {event.reason}" if event.reason else ""
    return (
        f"[{event.pathspec}]{tasks} {what} on queue {event.queue}{reason}, "
        f"{duration_text(event.waited_seconds)}"
    )


class EventRenderer:
    """Shows scheduler events on the console: a line per event, except for the tasks of
    fan-outs wider than :data:`~batchwright.cli.progress.PER_TASK_LINES`, which are
    summarized per step (refreshed in place on a terminal, a line now and then in logs);
    their failures and output are still shown. ``quiet`` (``--quiet``) drops the summaries
    and the live display, keeping the other lines, as Metaflow's ``--quiet`` keeps its
    runtime's lines."""

    def __init__(
        self, console: Console, run_id_file: str | None = None, *, quiet: bool = False
    ) -> None:
        self.console = console
        self.run_id_file = run_id_file
        self.quiet = quiet
        self.progress = Progress()

    def _summarize(self, event: Event) -> bool:
        if not self.progress.observe(event):
            return False
        if self.quiet:
            return True
        name = step_of(getattr(event, "pathspec", ""))
        if name not in self.progress.steps:  # an ArrayProgress names the step itself
            name = getattr(event, "pathspec", "")
        live = self.console.live_capable
        if live:
            self.console.live(self.progress.lines())
        if name in self.progress.steps and self.progress.due(name, live=live):
            self.console.info(self.progress.line(name))
        return True

    def __call__(self, event: Event) -> None:
        console = self.console
        if self._summarize(event):
            return
        if isinstance(event, TaskOutput):
            where = event.pathspec if event.node is None else f"{event.pathspec} node {event.node}"
            console.task_output(where, event.text, stream=event.stream)
        elif isinstance(event, TaskSubmitted):
            suffix = f" (retry {event.attempt})" if event.attempt else ""
            console.info(console.style(f"[{event.pathspec}] started{suffix}", "dim"))
        elif isinstance(event, TaskStatusChanged):
            reason = f" ({event.reason})" if event.reason else ""
            console.info(console.style(f"[{event.pathspec}] {event.status}{reason}", "dim"))
        elif isinstance(event, TaskSucceeded):
            console.info(console.style(f"[{event.pathspec}] finished", "dim"))
        elif isinstance(event, AttemptFailed) and event.infrastructure:
            console.warn(
                f"[{event.pathspec}] attempt {event.attempt} lost its capacity: {event.reason}; "
                "submitting it again (no @retry used)"
            )
        elif isinstance(event, AttemptFailed):
            retry = f"; retrying in {event.retry_in:g} s" if event.retry_in is not None else ""
            console.warn(
                f"[{event.pathspec}] attempt {event.attempt} failed: {event.reason} "
                f"(exit code {event.exit_code}){retry}"
            )
        elif isinstance(event, TaskWaiting):
            console.info(console.style(waiting_text(event), "dim"))
        elif isinstance(event, Reconnecting):
            console.warn(
                f"AWS unreachable for {duration_text(event.unreachable_seconds)} "
                f"({event.problem}); reconnecting"
            )
        elif isinstance(event, Reconnected):
            console.notice(f"AWS answers again after {duration_text(event.unreachable_seconds)}")
        elif isinstance(event, TaskCloned):
            console.info(f"[{event.pathspec}] reused from {event.origin_pathspec}")
        elif isinstance(event, RunStarted):
            if self.run_id_file:
                try:
                    with open(self.run_id_file, "w", encoding="utf-8") as out:
                        out.write(event.run_id)
                except OSError as error:  # checked before the run; changed since
                    console.warn(
                        f"--run-id-file {self.run_id_file}: could not write the run id "
                        f"({error.strerror or error}); the run goes on"
                    )
            origin = f", resuming run {event.origin_run_id}" if event.origin_run_id else ""
            console.info(
                console.style(f"Run {event.flow_name}/{event.run_id} started", "bold")
                + f" (run id {event.run_id}{origin}; datastore {event.datastore_root})"
            )
        elif isinstance(event, RunFinished):
            console.live([])
            if event.successful:
                console.info(console.style(f"Run {event.run_id} succeeded.", "green", "bold"))
        elif isinstance(event, Notice):
            console.notice(event.text)


# -- show / check / logs ----------------------------------------------------------------------


def _configure_nothing(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    pass


def _handle_show(args: argparse.Namespace, command: FlowCommand) -> int:
    graph = command.definition().graph
    console = command.console
    console.line(console.style(command.flow_name, "bold"))
    if graph.doc:
        console.line(graph.doc)
    console.line()
    for node in graph:
        kind = node.type + (f" over '{node.foreach_param}'" if node.foreach_param else "")
        if node.parallel_foreach:
            kind = f"split into {node.num_parallel or 'num_parallel'} parallel nodes"
        elif node.parallel_step:
            kind = "parallel"
        elif node.is_switch:
            kind = f"switch on '{node.condition}'"
        console.line(console.style(f"Step {node.name}", "bold") + f"  ({kind}, line {node.line})")
        if node.doc:
            for line in node.doc.splitlines():
                console.line(f"    {line}")
        if node.is_switch:
            # One case runs: each key with the step it leads to.
            cases = ", ".join(f"{key!r}: {name}" for key, name in node.switch_cases.items())
            console.line(f"    => one of {cases}")
        elif node.out_funcs:
            console.line(f"    => {', '.join(node.out_funcs)}")
        console.line()
    return 0


def _handle_check(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.cli.plan import refuse
    from batchwright.plan import make_plan

    definition = command.definition(args.with_options)
    # Every check that needs no environment (e.g. a @timeout Batch cannot enforce).
    plan = make_plan(
        command.flow_name,
        definition.decorators,
        None,
        run_batch_locally=True,
        parallel_steps=definition.parallel_steps,
    )
    if not plan.ok:
        raise refuse(plan)
    steps = len(definition.graph.nodes)
    command.chatter.info(f"Flow {command.flow_name} is valid: {steps} steps.")
    return 0


def _configure_check(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    add_with_option(parser, "--with batch:memory=16000")
    add_no_pylint_option(parser, default=argparse.SUPPRESS)


def _configure_plan(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    add_plan_options(parser)


def _configure_report(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    from batchwright.cli.report import add_report_options

    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the latest run")
    add_report_options(parser)


def _handle_report(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.cli.report import write_report

    run_id = args.run_id
    if run_id and "/" in run_id.strip("/"):
        flow, _, run_id = run_id.strip("/").partition("/")
        if flow != command.flow_name:
            raise UserInputError(
                f"report {args.run_id}: names flow '{flow}', but this file's flow is "
                f"'{command.flow_name}'. Run batchwright report {args.run_id}, or pass a run "
                f"id of {command.flow_name}."
            )
    return write_report(
        command.flow_name,
        run_id,
        datastore_root=args.datastore_root,
        output=args.output,
        console=command.console,
    )


def _configure_logs(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    parser.add_argument("pathspec", metavar="[FLOW/]RUN_ID/STEP[/TASK]")
    streams = parser.add_mutually_exclusive_group()
    streams.add_argument("--stdout", dest="stream", action="store_const", const="stdout")
    streams.add_argument("--stderr", dest="stream", action="store_const", const="stderr")
    _add_datastore_option(parser)


def _handle_logs(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.cli.tasks import select_tasks

    selection = select_tasks(
        "logs", args.pathspec, command.flow_name, args.datastore_root, "the logs"
    )
    store, run_id, step = selection.store, selection.run_id, selection.step
    streams = [args.stream] if args.stream else ["stdout", "stderr"]
    for task_id in selection.task_ids:
        done = store.read_done(run_id, step, task_id)
        attempts = store.list_attempts(run_id, step, task_id)
        if done is None and not attempts:
            continue  # a task folder with nothing recorded yet
        attempt = int(done["attempt"]) if done else attempts[-1]
        pathspec = f"{command.flow_name}/{run_id}/{step}/{task_id}"
        for stream in streams:
            text = (store.read_log(run_id, step, task_id, attempt, stream) or b"").decode(
                "utf-8", "replace"
            )
            if command.quiet:  # the bare log, line by line, as Metaflow's --quiet logs
                for line in text.splitlines():
                    command.console.line(line)
            elif text:
                command.console.task_output(pathspec, text, stream=stream)
    return 0


#: The subcommands, in the order ``--help`` shows them.
SUBCOMMANDS: tuple[Subcommand, ...] = (
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
    Subcommand(
        "dump",
        "print the artifacts of a step's tasks, or pickle them to a file (--file)",
        configure_dump,
        handle_dump,
    ),
    Subcommand(
        "plan",
        "show where each step runs, its queue and job definition, and whether it can run",
        _configure_plan,
        handle_plan,
    ),
    Subcommand(
        "report",
        "write a run's report: timeline, step table, estimated costs (one HTML file)",
        _configure_report,
        _handle_report,
    ),
    Subcommand(
        "step-functions",
        "deploy the flow as an AWS Step Functions state machine, trigger, list or delete it",
        lambda parser, command: _step_functions().configure(parser, command),
        lambda args, command: _step_functions().handle(args, command),
    ),
)


def _step_functions() -> Any:
    # The deployment CLI lives in its own module (its AWS modules load only when used).
    from batchwright.cli import stepfunctions

    return stepfunctions
