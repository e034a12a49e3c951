"""The pairing on the command line: ``plan``, and the environment of ``run`` / ``resume``.

- ``python flow.py plan [--environment NAME] [--json]`` and ``batchwright plan FLOW.py``
  print, per step, where it runs, the queue, platform, instance types that fit, the job
  definition and the verdict; exit code 2 when a step is refused. They work from
  ``cdk.out`` alone, before anything is deployed.
- ``run`` / ``resume`` get ``--environment``, ``--outputs-file``, ``--cdk-out`` and
  ``--run-batch-locally`` (:func:`add_run_options`). Before the scheduler starts,
  :func:`prepare_run` finds the environment (named, or the only one there is; see
  :mod:`batchwright.environment.discovery`), plans, refuses with exit code 2, shows each
  ``@batch`` step's queue and why, and (unless the steps run locally) checks the queues
  live. It returns a :class:`RunSetup`: the plan, whose step policies the scheduler runs
  with, the environment, the name it was found by and the datastore the run uses.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwright.cli.command import FlowCommand, add_with_option, load_flow_file
from batchwright.cli.config_options import add_config_options, config_choices
from batchwright.console import Console
from batchwright.definition import FlowDefinition
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.environment.discovery import find_environment, search
from batchwright.environment.sources import is_placeholder
from batchwright.errors import PlanError
from batchwright.plan import Plan, StepPlan, live_check, make_plan
from batchwright.policy import DEFAULT_RECLAIMS_BEFORE_ON_DEMAND

#: Instance types listed by name in ``plan`` before "... (N in all)".
SHOWN_INSTANCE_TYPES = 4


# --- options ------------------------------------------------------------------------------


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    """``--environment NAME``, ``--outputs-file PATH`` and ``--cdk-out DIR``."""
    parser.add_argument(
        "--environment",
        dest="environment_name",
        metavar="NAME",
        help="the batchwright environment (stack name); default: $BATCHWRIGHT_ENVIRONMENT, "
        "else the 'batchwright:defaultEnvironment' context of cdk.json, else the only "
        "batchwright stack of the outputs file, of cdk.out, or deployed in the region",
    )
    parser.add_argument(
        "--outputs-file",
        metavar="PATH",
        help="a 'cdk deploy --outputs-file' JSON; default: $BATCHWRIGHT_OUTPUTS_FILE, else "
        "cdk-outputs.json beside cdk.json or here",
    )
    parser.add_argument(
        "--cdk-out",
        metavar="DIR",
        help="the cloud assembly ('cdk synth' output); default: the 'output' folder of "
        "cdk.json (cdk.out), else cdk.out here",
    )


def count_option(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0 (e.g. 2)")
    return value


def add_spot_option(parser: argparse.ArgumentParser) -> None:
    """``--spot-reclaims N``: when a step's attempts move from Spot to on-demand."""
    parser.add_argument(
        "--spot-reclaims",
        type=count_option,
        default=DEFAULT_RECLAIMS_BEFORE_ON_DEMAND,
        metavar="N",
        help="after N Spot reclaims of one attempt, run it on the environment's on-demand "
        f"queue of the same kind (default {DEFAULT_RECLAIMS_BEFORE_ON_DEMAND}; 0: never); "
        "reclaims never use a @retry",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The environment options of ``run`` and ``resume``."""
    add_environment_options(parser)
    add_spot_option(parser)
    parser.add_argument(
        "--run-batch-locally",
        action="store_true",
        help="plan the @batch steps, then run them on this machine (local backend, same "
        "task entrypoint); reads cdk.out when nothing is deployed",
    )


# --- run / resume ---------------------------------------------------------------------------


def show_routes(plan: Plan, console: Console) -> None:
    """Each ``@batch`` step's queue and why, and every notice and warning (run and resume)."""
    for step in plan.batch_steps:
        for notice in step.notices:
            console.notice(notice)
        for warning in step.warnings:
            console.warn(warning)
        if not step.ok:
            continue
        if plan.run_batch_locally and step.queue:
            console.info(
                f"step '{step.step}': planned for queue {_queue_text(step)}; "
                "runs on the local backend"
            )
        elif plan.run_batch_locally:  # no queue to plan for: what was checked, and what not
            console.info(f"step '{step.step}': {step.reason}")
        elif step.queue:
            platform = step.platform or "platform read from AWS"
            console.info(
                f"step '{step.step}': queue {_queue_text(step)} ({platform}) - {step.reason}"
            )


def _queue_text(step: StepPlan) -> str:
    if step.queue_key:
        return f"'{step.queue_key}'"
    return f"'{step.queue}'"


def refuse(plan: Plan) -> PlanError:
    """The error of a plan with refused steps: one paragraph per step."""
    return PlanError("\n".join(plan.refusals))


@dataclass(frozen=True)
class RunSetup:
    """What ``run`` and ``resume`` decided before anything runs."""

    #: The plan; its step policies are what the scheduler runs with.
    plan: Plan
    #: The environment found, if any.
    environment: EnvironmentDescriptor | None
    #: The datastore root: the one given, else the environment's bucket for @batch steps.
    datastore_root: str | None
    #: The name the environment was found by (what ``--environment`` takes to find it
    #: again); ``None`` without an environment.
    environment_name: str | None = None


@dataclass(frozen=True)
class RunEnvironment:
    """The environment a run or resume found (before planning)."""

    environment: EnvironmentDescriptor | None = None
    #: The name it was found by (what ``--environment`` takes to find it again).
    found_by: str | None = None
    #: Where one was looked for, when none was found.
    looked: tuple[str, ...] = ()


def find_run_environment(
    args: argparse.Namespace, command: FlowCommand, has_batch_steps: bool
) -> RunEnvironment:
    """The environment of a run: searched when a step uses @batch or one is named.

    Raises:
        UnknownEnvironment: the environment named was not found, or several were found
            and none was named.
    """
    name = args.environment_name
    if not (has_batch_steps or name):
        return RunEnvironment()
    # An environment not found is bad input (UnknownEnvironment, exit code 2).
    found = search(
        name,
        cwd=os.getcwd(),
        flow_dir=os.path.dirname(command.flow_file),
        outputs_file=args.outputs_file,
        cdk_out=args.cdk_out,
        # Only a local run may plan against cdk.out: its ARNs are placeholders.
        allow_static=bool(args.run_batch_locally),
    )
    if found.found is None:
        return RunEnvironment(looked=found.looked)
    environment = found.found.descriptor
    origin = "" if name else f" ({found.found.origin})"
    command.chatter.info(f"Environment {environment.name}{origin}: {environment.source}")
    return RunEnvironment(environment, found.found.name, found.looked)


def prepare_run(
    args: argparse.Namespace,
    command: FlowCommand,
    definition: FlowDefinition,
    found: RunEnvironment | None = None,
) -> RunSetup:
    """Finds the environment (unless ``found`` gives it), plans, refuses or shows the
    routes, checks the queues live.

    Raises:
        PlanError: a step is refused (without an environment: saying where one was looked
            for), or @batch steps would run on AWS with a local datastore.
        UnknownEnvironment: the environment named was not found, or several were found
            and none was named.
    """
    locally = bool(args.run_batch_locally)
    has_batch_steps = any(
        d.name == "batch" for decorators in definition.decorators.values() for d in decorators
    )
    if found is None:
        found = find_run_environment(args, command, has_batch_steps)
    environment, found_by, looked = found.environment, found.found_by, found.looked
    plan = make_plan(
        command.flow_name,
        definition.decorators,
        environment,
        run_batch_locally=locally,
        reclaims_before_on_demand=args.spot_reclaims,
        # Local tasks inherit this environment: the only source of a step's secrets there.
        local_variables=frozenset(os.environ) if locally else (),
        parallel_steps=definition.parallel_steps,
    )
    if not plan.ok:
        raise _refuse_without(plan, looked) if environment is None else refuse(plan)
    datastore_root = args.datastore_root
    if has_batch_steps and not locally:
        datastore_root = batch_datastore_root(datastore_root, command, environment)
    show_routes(plan, command.chatter)  # --quiet drops the routes, not their warnings
    if has_batch_steps and not locally:
        from batchwright import aws

        region = environment.region if environment else None
        if region and is_placeholder(region):
            region = None
        plan = live_check(plan, aws.client("batch", region=region))
        if not plan.ok:
            raise refuse(plan)
    return RunSetup(plan, environment, datastore_root, found_by)


def _refuse_without(plan: Plan, looked: tuple[str, ...]) -> PlanError:
    """The refusal of a plan made without an environment, saying where one was looked for."""
    error = refuse(plan)
    if not looked:
        return error
    return PlanError(f"{error}\nNo environment is named, and none was found: {'; '.join(looked)}.")


def declares_batch(flow_class: type, with_options: Sequence[str]) -> bool:
    """Whether a step asks for @batch (written on it, or by ``--with``): known from the
    declarations alone, before the run's configs resolve the decorators' arguments."""
    from batchwright.decorators import parse_with_option, step_decorators

    if any(parse_with_option(option).decorator.name == "batch" for option in with_options):
        return True
    steps = (getattr(flow_class, name, None) for name in dir(flow_class))
    return any(
        decorator.name == "batch"
        for function in steps
        if getattr(function, "_is_step", False)
        for decorator in step_decorators(function)  # type: ignore[arg-type]
    )


def batch_datastore_root(
    given: str | None, command: FlowCommand, environment: EnvironmentDescriptor | None
) -> str:
    """The datastore of a run with @batch steps on AWS: the one given (or
    ``$BATCHWRIGHT_DATASTORE_ROOT``), else the environment's bucket; it must be in S3.

    Raises:
        PlanError: the datastore is a local folder, which a Batch job cannot reach.
        UserInputError: the ``s3://`` URL names no bucket.
    """
    from batchwright.datastore import ROOT_VARIABLE

    given = given or os.environ.get(ROOT_VARIABLE)
    if not given and environment is not None:
        given = environment.datastore_root
    if not given or not given.startswith("s3://"):
        shown = given or "the local folder ./.batchwright"
        raise PlanError(
            f"flow '{command.flow_name}': @batch steps run on AWS Batch, but the datastore "
            f"is {shown}, which a Batch job cannot reach. Pass --datastore-root "
            "s3://BUCKET/PREFIX (or set $BATCHWRIGHT_DATASTORE_ROOT), use --environment NAME "
            "so the environment's bucket is used, or --run-batch-locally."
        )
    from batchwright.datastore.s3 import split_s3_url

    split_s3_url(given)  # a malformed URL is refused before the first AWS call
    return given


# --- plan -----------------------------------------------------------------------------------


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``plan`` (flow command and ``batchwright plan``)."""
    add_environment_options(parser)
    add_spot_option(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_with_option(parser, "--with batch:memory=16000")
    parser.add_argument(
        "--static",
        action="store_true",
        help="read the environment from cdk.out only (no AWS call)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="also check the queues in AWS (DescribeJobQueues / DescribeComputeEnvironments)",
    )


def plan_flow(args: argparse.Namespace, command: FlowCommand) -> Plan:
    """The plan ``plan`` prints (static discovery allowed)."""
    definition = command.definition(args.with_options)
    environment = find_environment(
        args.environment_name,
        cwd=os.getcwd(),
        flow_dir=os.path.dirname(command.flow_file),
        outputs_file=args.outputs_file,
        cdk_out=args.cdk_out,
        allow_static=True,
        deployed=not args.static,
    )
    plan = make_plan(
        command.flow_name,
        definition.decorators,
        environment,
        reclaims_before_on_demand=args.spot_reclaims,
        parallel_steps=definition.parallel_steps,
    )
    if args.live and plan.ok:
        from batchwright import aws

        region = environment.region if environment else None
        plan = live_check(
            plan, aws.client("batch", region=None if region and is_placeholder(region) else region)
        )
    return plan


def handle_plan(args: argparse.Namespace, command: FlowCommand) -> int:
    """``plan``: print the plan (or its JSON); exit code 2 when a step is refused."""
    plan = plan_flow(args, command)
    if args.json:
        command.console.line(json.dumps(plan.to_json(), indent=2))
    else:
        render_plan(plan, command.console)
    return 0 if plan.ok else 2


def _instance_text(types: tuple[str, ...]) -> str:
    if not types:
        return "-"
    shown = ", ".join(types[:SHOWN_INSTANCE_TYPES])
    more = len(types) - SHOWN_INSTANCE_TYPES
    return shown + (f", ... ({len(types)} in all)" if more > 0 else "")


def _shape_text(shape: dict[str, Any]) -> str:
    parts = [f"image {shape.get('image')}"]
    if "vcpus" in shape:
        size = f"{shape['vcpus']} vCPU / {shape['memory_mib']} MiB"
        if shape.get("gpu"):
            size += f" / {shape['gpu']} GPU"
        parts.append(size)
    parts.append("platform " + ",".join(shape.get("platform_capabilities", [])))
    for key, label in (
        ("devices", "devices"),
        ("secrets", "secrets"),
        ("shared_memory_mib", "shared memory MiB"),
        ("max_swap_mib", "swap MiB"),
        ("tmpfs", "tmpfs"),
        ("ephemeral_storage_gib", "ephemeral storage GiB"),
        ("timeout_seconds", "timeout s"),
        ("log_driver", "logs"),
        ("job_role", "job role"),
        ("execution_role", "execution role"),
    ):
        if key in shape:
            value = shape[key]
            text = ", ".join(value) if isinstance(value, list) else str(value)
            parts.append(f"{label} {text}")
    if shape.get("privileged"):
        parts.append("privileged")
    return "; ".join(parts)


def render_plan(plan: Plan, console: Console) -> None:
    """The human form of a plan."""
    env = plan.environment
    title = f"Plan of {plan.flow}"
    title += f" on environment {env.name}" if env else " (no environment)"
    console.line(console.style(title, "bold"))
    if env:
        console.line(f"  from {env.source}")
    console.line()
    for step in plan.steps:
        head = console.style(f"step {step.step}", "bold")
        if not step.is_batch:
            console.line(f"{head}: local")
            continue
        console.line(f"{head}: AWS Batch")
        queue = _queue_text(step) if step.queue else "-"
        if step.queue_key and step.queue:
            queue += f" ({step.queue})"
        console.line(f"    queue:          {queue}")
        console.line(f"    platform:       {step.platform or 'known after the live check'}")
        if step.reason:
            console.line(f"    why:            {step.reason}")
        console.line(f"    instance types: {_instance_text(step.instance_types)}")
        if step.parallel:
            count = str(step.nodes) if step.nodes is not None else "num_parallel (set at run time)"
            first = step.instance_types[0] if step.instance_types else "an instance"
            console.line(
                f"    nodes:          {count} x {first}, one multi-node job (one instance per node)"
            )
        if step.on_demand_queue_key and step.policy.batch is not None:
            after = step.policy.batch.reclaims_before_on_demand
            console.line(
                f"    on reclaim:     after {after} Spot reclaim(s) of an attempt, queue "
                f"'{step.on_demand_queue_key}' (on-demand; no @retry used)"
            )
        shape = step.job_definition_shape()
        if shape is not None:
            console.line(f"    job definition: {_shape_text(shape)}")
        cost = step.cost
        if cost is not None:
            console.line(
                f"    cost estimate:  {cost.label} per task while it runs ({cost.basis}; "
                f"list prices of {cost.priced_on}, not a bill)"
            )
        for notice in step.notices:
            console.line(f"    notice:         {notice}")
        for warning in step.warnings:
            console.line(f"    {console.style('warning:', 'yellow', 'bold')}        {warning}")
        verdict = (
            console.style("ok", "green")
            if step.ok
            else console.style("REFUSED", "red", "bold") + f" - {step.verdict}"
        )
        console.line(f"    verdict:        {verdict}")
    console.line()
    refused = len(plan.refusals)
    console.line(
        "All steps can run." if not refused else f"{refused} step(s) refused; nothing would run."
    )


# --- batchwright plan FLOW.py ----------------------------------------------------------------


def _handle_batchwright_plan(args: argparse.Namespace, console: Console) -> int:
    flow_class = load_flow_file(args.flow_file)
    command = FlowCommand(flow_class, str(Path(args.flow_file).resolve()), console)
    command.config_choices = config_choices(args)
    return handle_plan(args, command)


def register(sub: Any) -> None:
    """Adds ``batchwright plan FLOW.py``."""
    parser = sub.add_parser(
        "plan",
        help="show where each step of a flow runs and whether it can",
        description="Plan a flow file against its environment (works from cdk.out alone).",
    )
    parser.add_argument("flow_file", metavar="FLOW.py")
    add_plan_options(parser)
    add_config_options(parser, before_subcommand=False)
    parser.set_defaults(handler=_handle_batchwright_plan)
