"""``python flow.py step-functions create|trigger|list-runs|delete``: a flow in production.

* ``create`` plans the flow against its environment as ``run`` does, compiles it to a
  state machine (:mod:`batchwright.stepfunctions.compiler`), uploads the code package,
  registers the job definitions, and creates or updates the state machine, its role and,
  for a flow with ``@schedule``, its schedule (:mod:`batchwright.stepfunctions.deploy`).
  Steps without ``@batch`` run on AWS Batch with ``@batch``'s defaults, as Metaflow's
  ``step-functions create`` does, unless ``--no-implicit-batch`` (then they are refused).
  ``--only-json`` prints the state machine's definition and does nothing else.
* ``trigger`` checks the flow's parameters as ``run`` takes them (``--alpha 0.5``), with
  the configs the deployed state machine carries, then starts an execution; the
  execution's name is the run id.
* ``list-runs`` lists the executions; ``delete`` removes what ``create`` made.

Every refusal is found before the first AWS call (``trigger`` of a flow with configs:
before the execution starts, once the deployed configs are read) and exits with code 2.
The region is resolved once per action (:func:`_target`; ``create``: ``--region``, else
the environment's, else the AWS configuration's).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchwright.cli.command import (
    FlowCommand,
    add_datastore_option,
    add_with_option,
    check_tags,
)
from batchwright.cli.plan import add_environment_options
from batchwright.errors import BatchwrightError, InvalidValue, ParameterError, UserInputError

if TYPE_CHECKING:
    from batchwright.environment.descriptor import EnvironmentDescriptor
    from batchwright.stepfunctions.deploy import Deployment

#: State machine names: Step Functions takes 1 to 80 characters; a schedule's name (the
#: same) 1 to 64 of ``[0-9a-zA-Z-_.]``. batchwright keeps to what both take.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: The statuses ``list-runs`` filters on, by option.
STATUS_OPTIONS = {
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "timed_out": "TIMED_OUT",
    "aborted": "ABORTED",
}


# --- the parser -----------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    """The ``step-functions`` subcommand and its four actions. ``--name`` and ``--region``
    go before the action, as Metaflow's ``step-functions --name NAME create``, or after
    it (after ``trigger`` only when no flow parameter has that name)."""
    from batchwright.parameters import flow_parameters

    _add_common(parser, on_group=True)
    taken = {
        parameter.name.replace("_", "-")
        for parameter in flow_parameters(command.flow_class).values()
    }
    actions = parser.add_subparsers(dest="step_functions_action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser(
        "create",
        help="deploy the flow as a state machine (or update it)",
        description="Deploy the flow as an AWS Step Functions state machine, or update the "
        "one deployed before. Every step runs as an AWS Batch job.",
    )
    _configure_create(create, command)
    trigger = actions.add_parser(
        "trigger",
        help="start a run of the deployed flow",
        description="Start an execution of the deployed flow; its name is the run id.",
    )
    _add_common(trigger, skip=taken)
    _add_parameter_options(trigger, command)
    runs = actions.add_parser("list-runs", help="list the runs of the deployed flow")
    _add_common(runs)
    statuses = runs.add_mutually_exclusive_group()
    for option, status in STATUS_OPTIONS.items():
        statuses.add_argument(
            f"--{option.replace('_', '-')}",
            dest="status",
            action="store_const",
            const=status,
            help=f"only the runs whose execution is {status}",
        )
    remove = actions.add_parser(
        "delete",
        help="delete the state machine, its schedule and the roles create made",
    )
    _add_common(remove)


def _add_common(
    parser: argparse.ArgumentParser, *, on_group: bool = False, skip: set[str] | None = None
) -> None:
    """``--name`` and ``--region``; an action's copy does not reset the group's."""
    default = None if on_group else argparse.SUPPRESS
    if "name" not in (skip or ()):
        parser.add_argument(
            "--name",
            metavar="NAME",
            default=default,
            help="the state machine's name (default: the flow's name)",
        )
    if "region" not in (skip or ()):
        parser.add_argument(
            "--region",
            metavar="REGION",
            default=default,
            help="the AWS region (default: the region of the state machine the environment "
            "publishes for the flow, else the environment's, else your AWS configuration's)",
        )


def _configure_create(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    from batchwright.cli.config_options import add_config_options
    from batchwright.configs import flow_configs

    _add_common(parser)
    add_environment_options(parser)
    add_datastore_option(parser)
    add_with_option(parser, "--with retry:times=2")
    parser.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="TAG",
        help="tag every run of the deployed flow (repeatable), as run --tag does",
    )
    parser.add_argument(
        "--no-implicit-batch",
        action="store_true",
        help="refuse steps without @batch instead of running them on AWS Batch with "
        "@batch's defaults",
    )
    parser.add_argument(
        "--role-arn",
        metavar="ARN",
        help="the role the state machine runs with (default: one made for it, with only "
        "what its states need)",
    )
    parser.add_argument(
        "--scheduler-role-arn",
        metavar="ARN",
        help="the role EventBridge Scheduler starts executions with, for a flow with "
        "@schedule (default: one made for it, allowed to start this state machine only)",
    )
    parser.add_argument(
        "--only-json",
        action="store_true",
        help="print the state machine's definition (Amazon States Language) and deploy nothing",
    )
    parser.set_defaults(run_batch_locally=False)
    if flow_configs(command.flow_class):
        add_config_options(parser, before_subcommand=False, flow_class=command.flow_class)


def _add_parameter_options(parser: argparse.ArgumentParser, command: FlowCommand) -> None:
    """The flow's parameters as options, exactly as ``run`` takes them."""
    from batchwright.parameters import flow_parameters

    group = parser.add_argument_group("flow parameters")
    for attribute, parameter in flow_parameters(command.flow_class).items():
        names = [f"--{parameter.name}"]
        if "_" in parameter.name:
            names.append(f"--{parameter.name.replace('_', '-')}")
        required = " (required)" if parameter.required else ""
        extra: dict[str, Any] = {}
        if parameter.type is bool:
            extra = {"nargs": "?", "const": "true"}
        try:
            group.add_argument(
                *names,
                dest=f"parameter:{attribute}",
                metavar=parameter.type_name.split()[-1].upper(),
                help=(parameter.help or parameter.type_name) + required,
                **extra,
            )
        except argparse.ArgumentError:
            raise UserInputError(
                f"flow '{command.flow_name}': parameter '{parameter.name}' has the name of an "
                f"option of 'step-functions trigger' (--{parameter.name}). Rename the "
                "parameter."
            ) from None


# --- the handlers ---------------------------------------------------------------------------


def handle(args: argparse.Namespace, command: FlowCommand) -> int:
    """Runs the action chosen."""
    action = args.step_functions_action
    if action == "create":
        return _create(args, command)
    if action == "trigger":
        return _trigger(args, command)
    if action == "list-runs":
        return _list_runs(args, command)
    return _delete(args, command)


def _name(args: argparse.Namespace, command: FlowCommand) -> str:
    name: str = args.name or command.flow_name
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidValue(
            where=f"step-functions {args.step_functions_action}",
            key="--name",
            value=name,
            problem="is not a state machine name batchwright deploys: 1 to 64 letters, "
            "digits, '-' or '_', starting with a letter or digit",
            fix="Pass e.g. --name " + (re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64] or "MyFlow"),
        )
    return name


def _target(
    args: argparse.Namespace, command: FlowCommand, *, published: bool = True
) -> tuple[str, str | None]:
    """The state machine an action acts on and its region, resolved once.

    The state machine: ``--name``; else (``published``) the one the environment's
    descriptor publishes for this flow (a ``FlowStateMachine`` deployed in the
    environment's stack, whose name CloudFormation chose); else the flow's name. The
    region: ``--region``; else the region of the ARN the descriptor publishes; else the
    environment's; else the AWS configuration's (None when there is none)."""
    environment = _found_environment(command) if not (args.name and args.region) else None
    arn = environment.flows.get(command.flow_name) if environment is not None else None
    arn_region = _arn_region(arn)
    if args.region and arn_region != args.region:
        arn, arn_region = None, None  # published in another region than the one asked for
    region = args.region or arn_region or _environment_region(environment) or configured_region()
    if published and not args.name and arn is not None:
        return arn, region
    return _name(args, command), region


def _arn_region(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] or None if len(parts) > 3 and parts[0] == "arn" else None


def _environment_region(environment: EnvironmentDescriptor | None) -> str | None:
    from batchwright.environment.sources import is_placeholder

    if environment is None or not environment.region or is_placeholder(environment.region):
        return None
    return environment.region


def configured_region() -> str | None:
    """The region of the AWS configuration (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
    profile's), as boto3 resolves it; None when there is none."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        region = boto3.session.Session().region_name
    except BotoCoreError:
        return None
    return str(region) if region else None


def _region_option(region: str | None) -> str:
    """``--region REGION`` for a hint, unless it is the configured default."""
    return f" --region {region}" if region and region != configured_region() else ""


def _found_environment(command: FlowCommand) -> EnvironmentDescriptor | None:
    from batchwright.environment.discovery import find_environment

    try:
        return find_environment(
            None,
            cwd=os.getcwd(),
            flow_dir=os.path.dirname(command.flow_file),
            allow_static=False,
        )
    except BatchwrightError:
        return None  # no environment to ask: the flow's name is all there is


def _job_environ(region: str | None) -> dict[str, str]:
    """This process's variables, as the jobs' environment is derived from them, with the
    region variables set to the state machine's region: a shell set to another region
    must not send the jobs there."""
    from batchwright.batch.jobenv import FORWARDED_VARIABLES

    environ = dict(os.environ)
    if region:
        environ.update(dict.fromkeys(FORWARDED_VARIABLES, region))
    return environ


def _with_options(args: argparse.Namespace) -> list[str]:
    """``--with`` plus, unless ``--no-implicit-batch``, ``batch`` for every step (a step
    with ``@batch`` keeps its own; a ``--with batch:...`` for every step already is one)."""
    from batchwright.decorators import parse_with_option

    options = list(args.with_options)
    if args.no_implicit_batch:
        return options
    if not any(
        (parsed := parse_with_option(option)).decorator.name == "batch" and parsed.step is None
        for option in options
    ):
        options.append("batch")
    return options


def _create(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright import codepackage
    from batchwright.cli.plan import find_run_environment, show_routes
    from batchwright.datastore import ROOT_VARIABLE
    from batchwright.datastore.s3 import split_s3_url
    from batchwright.identity import current_user
    from batchwright.plan import make_plan
    from batchwright.schedule import flow_schedule
    from batchwright.stepfunctions import deploy
    from batchwright.stepfunctions.compiler import (
        CodePackageLocation,
        CompileError,
        compile_flow,
        deployment_environment,
    )

    if args.only_json:
        command.quiet = True  # the document alone on standard output; warnings still shown
    # Everything that can be refused is, before the first AWS call.
    name = _name(args, command)
    tags = check_tags(args.tags, "step-functions create")
    schedule = flow_schedule(command.flow_class)
    definition = command.definition(_with_options(args))
    found = find_run_environment(args, command, has_batch_steps=True)
    environment = found.environment
    # A state machine has no Spot-to-on-demand escalation: each step keeps its first queue.
    plan = make_plan(
        command.flow_name,
        definition.decorators,
        environment,
        reclaims_before_on_demand=0,
        parallel_steps=definition.parallel_steps,
    )
    root = args.datastore_root or os.environ.get(ROOT_VARIABLE)
    if not root and environment is not None:
        root = environment.datastore_root
    root = root or os.path.abspath(".batchwright")
    if root.startswith("s3://"):
        split_s3_url(root)
    elif "://" not in root:
        root = os.path.abspath(root)
    # The region, once: the state machine's, and the one its jobs are told.
    region = args.region or _environment_region(environment) or configured_region()
    if region is None and not args.only_json:
        raise UserInputError(
            "step-functions create: no AWS region to deploy to: the environment names none "
            "and your AWS configuration has none. Pass --region REGION."
        )
    package = codepackage.build(Path(command.flow_file).parent)
    user = current_user()
    try:
        compiled = compile_flow(
            definition,
            plan,
            datastore_root=root,
            code_package=CodePackageLocation(f"{root.rstrip('/')}/{package.key}", package.sha256),
            environment=deployment_environment(user, tags, environ=_job_environ(region)),
            # In the container the flow file sits at the root of the code package.
            flow_file=os.path.basename(command.flow_file),
            scheduled=schedule is not None,
        )
    except CompileError as error:
        if environment is None and found.looked:
            raise CompileError(
                f"{error}\nNo environment is named, and none was found: {'; '.join(found.looked)}."
            ) from None
        raise
    if args.only_json:
        command.console.line(compiled.to_json())
        return 0
    console = command.chatter
    show_routes(plan, console)
    console.info(f"Deploying {command.flow_name} to AWS Step Functions as state machine {name}...")
    deploy.upload_code_package(package, root)
    deployment = deploy.deploy(
        compiled,
        name=name,
        region=region,
        user=user,
        role_arn=args.role_arn,
        schedule=schedule,
        scheduler_role_arn=args.scheduler_role_arn,
    )
    _show_deployment(command, deployment, args)
    return 0


def _show_deployment(
    command: FlowCommand, deployment: Deployment, args: argparse.Namespace
) -> None:
    console = command.console
    for notice in deployment.notices:
        console.notice(notice)
    console.line(
        console.style(
            f"State machine {deployment.name} {deployment.state_machine} "
            f"({deployment.state_machine_arn}).",
            "bold",
        )
    )
    console.line(f"  role: {deployment.role_arn} ({deployment.role})")
    definitions = len(deployment.registered_definitions) + len(deployment.reused_definitions)
    console.line(
        f"  job definitions: {definitions} ({len(deployment.registered_definitions)} "
        f"registered, {len(deployment.reused_definitions)} already active)"
    )
    script = os.path.basename(command.flow_file)
    where = f" --name {deployment.name}" if args.name else ""
    region = _region_option(deployment.region)
    if deployment.schedule_arn:
        console.line(
            f"  schedule: {deployment.schedule_arn} ({deployment.schedule}); it starts the "
            "flow with every parameter at its default"
        )
    else:
        console.line("  schedule: none; the flow runs when triggered")
    console.line(f"Start a run: python {script} step-functions trigger{where}{region}")


def _trigger_input(args: argparse.Namespace, command: FlowCommand, configs: Any) -> dict[str, str]:
    """The execution's ``Parameters``: each value given, as typed (an IncludeFile's: the
    file's content, base64 when it is not text), checked by the parameter's own
    conversion with ``configs`` (the deployed ones, as the deployed ``start`` resolves
    them; :meth:`RunConfigs.namespace`). A required parameter not given must have a
    default, resolved with those configs.

    Raises:
        ParameterError: a value the parameter refuses, or a required one not given.
        InvalidValue: the input would exceed Step Functions' 256 KiB.
    """
    from batchwright.parameters import IncludeFile, flow_parameters
    from batchwright.stepfunctions.compiler import MAX_INPUT_BYTES

    values: dict[str, str] = {}
    for attribute, parameter in flow_parameters(command.flow_class).items():
        given = getattr(args, f"parameter:{attribute}", None)
        if given is None:
            if parameter.required and parameter.default is None:
                raise ParameterError(
                    f"flow '{command.flow_name}': parameter '{parameter.name}' is required "
                    f"and was not given. Pass --{parameter.name} VALUE ({parameter.type_name})."
                )
            if parameter.required and not isinstance(parameter, IncludeFile):
                # A default computed from the configs: it must give a value.
                parameter.resolve(None, command.flow_name, {}, configs)
            continue  # the deployed start step resolves its default
        # The same conversion the deployed start step applies; the environment's
        # METAFLOW_RUN_* variables play no part in a deployed run.
        value = parameter.resolve(given, command.flow_name, {}, configs)
        if isinstance(parameter, IncludeFile):
            values[parameter.name] = (
                value if isinstance(value, str) else base64.b64encode(value).decode("ascii")
            )
        else:
            values[parameter.name] = given
    size = len(json.dumps({"Parameters": values}).encode())
    if size > MAX_INPUT_BYTES:
        biggest = max(values, key=lambda key: len(values[key]))
        raise InvalidValue(
            where=f"flow '{command.flow_name}', step-functions trigger",
            key=f"--{biggest}",
            value=_shorten(str(getattr(args, f"parameter:{_attribute(command, biggest)}"))),
            problem=f"makes the execution's input {size:,} bytes; Step Functions takes at "
            f"most {MAX_INPUT_BYTES:,}",
            fix="Keep the file in S3 and pass its URL as a Parameter instead.",
        )
    return values


def _attribute(command: FlowCommand, parameter_name: str) -> str:
    from batchwright.parameters import flow_parameters

    for attribute, parameter in flow_parameters(command.flow_class).items():
        if parameter.name == parameter_name:
            return attribute
    return parameter_name


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _deployed_configs(command: FlowCommand, arn: str, region: str | None) -> Any:
    """The configs a trigger checks the parameters with, as the deployed ``start``
    resolves them: those the state machine carries (resolved when it was deployed), else
    (a definition without them) the local ones."""
    from batchwright.configs import RunConfigs
    from batchwright.stepfunctions import deploy

    text = deploy.deployed_configs(arn, region=region)
    if text is not None:
        try:
            return RunConfigs.from_json(text).namespace()
        except ValueError:
            pass  # not batchwright's: as if it had none
    return command.configs().namespace()


def _trigger(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.configs import RunConfigs, flow_configs
    from batchwright.stepfunctions import deploy

    name, region = _target(args, command)
    if flow_configs(command.flow_class):
        # Values and defaults may depend on the configs: checked with the deployed ones.
        arn = deploy.state_machine_arn(name, region=region)
        parameters = _trigger_input(args, command, _deployed_configs(command, arn, region))
    else:
        # No configs: every value is checked before the first AWS call.
        parameters = _trigger_input(args, command, RunConfigs().namespace())
        arn = deploy.state_machine_arn(name, region=region)
    triggered = deploy.trigger(arn, parameters, region=region)
    run_id, execution = triggered.run_id, triggered.execution_arn
    script = os.path.basename(command.flow_file)
    where = execution.split(":")[3]
    root = f" --datastore-root {triggered.datastore_root}" if triggered.datastore_root else ""
    console = command.console
    console.line(
        console.style(f"Run {command.flow_name}/{run_id} started", "bold")
        + f" (run id {run_id}; execution {execution})."
    )
    console.line(
        f"Follow it: python {script} step-functions list-runs"
        + (f" --name {name}" if args.name else "")
        + _region_option(where)
        + f"; logs: python {script} logs {run_id}/STEP{root}; "
        f"console: https://{where}.console.aws.amazon.com/states/home?region={where}"
        f"#/v2/executions/details/{execution}"
    )
    return 0


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _list_runs(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.stepfunctions import deploy

    name, region = _target(args, command)
    statuses = (args.status,) if args.status else ()
    runs = deploy.list_runs(name, region=region, statuses=statuses)
    if not runs:
        which = f" {args.status.lower()}" if args.status else ""
        command.chatter.info(f"State machine {name} has no{which} runs.")
        return 0
    command.console.table(
        ["run id", "status", "started", "stopped"],
        [[run.run_id, run.status, _time(run.started_at), _time(run.stopped_at)] for run in runs],
    )
    return 0


def _delete(args: argparse.Namespace, command: FlowCommand) -> int:
    from batchwright.stepfunctions import deploy

    # The state machine create made (never one a stack deployed), in the region resolved
    # as for every action.
    name, region = _target(args, command, published=False)
    deletion = deploy.delete(name, region=region)
    console = command.console
    if deletion.nothing:
        console.line(
            f"Nothing to delete: region {deletion.region} has no state machine {name}, no "
            "schedule and no role of it."
        )
    else:
        console.line(f"State machine {name}: {deletion.state_machine}.")
        console.line(f"  schedule: {deletion.schedule}")
        console.line(f"  roles deleted: {', '.join(deletion.roles) or 'none'}")
    for notice in deletion.notices:
        console.notice(notice)
    return 0
