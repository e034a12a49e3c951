"""``batchwright localaws up|down|status|env|deploy|destroy``: the local AWS for tests and demos.

The runtime's command lists this module by name and adds the group only when this
distribution's ``batchwright_localaws`` package is importable, so the runtime itself never
imports the development tool.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import batchwright_localaws as localaws
from batchwright.console import Console
from batchwright.environment.assembly import stack_template
from batchwright.errors import LocalAwsError, UserInputError

#: The template parameter of a BatchEnvironmentStack naming its default image.
IMAGE_PARAMETER = "DefaultImage"


def register(sub: Any) -> None:
    """Adds the ``localaws`` subcommand group."""
    parser = sub.add_parser(
        "localaws",
        help="start or stop the local AWS (moto server + Docker engine)",
        description=(
            "The local AWS runs Batch jobs in real containers: a Docker engine, a job "
            "image built offline and the moto server on a loopback port."
        ),
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("up", help="start it (installs Docker/mmdebstrap when missing)").set_defaults(
        handler=_up
    )
    verbs.add_parser("down", help="stop every process `up` started").set_defaults(handler=_down)
    verbs.add_parser("status", help="say whether it runs, and where").set_defaults(handler=_status)
    verbs.add_parser(
        "env", help="print `export` lines that point boto3 and flows at it"
    ).set_defaults(handler=_env)
    deploy = verbs.add_parser(
        "deploy",
        help="create a synthesized stack's resources in the local AWS and write its outputs",
        description=(
            "Publishes the stack's file assets from the cloud assembly to the local S3 "
            "(as `cdk deploy` does), creates the resources of its synthesized template "
            "(from `cdk synth`) in the local AWS, then writes the stack's outputs as "
            "`cdk deploy --outputs-file` would and records them as a CloudFormation "
            "stack in the emulator. Deploying "
            "again changes only what changed, as CloudFormation would: unchanged resources "
            "keep their physical ids."
        ),
    )
    deploy.add_argument("--cdk-out", default="cdk.out", help="cloud assembly directory")
    deploy.add_argument(
        "--stack", help="stack name (default: cdk.json context batchwright:defaultEnvironment)"
    )
    deploy.add_argument(
        "--outputs-file", default="cdk-outputs.json", help="where to write the outputs"
    )
    deploy.add_argument(
        "--parameters",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter value, as `cdk deploy --parameters`",
    )
    deploy.set_defaults(handler=_deploy)
    destroy = verbs.add_parser(
        "destroy",
        help="delete a locally deployed stack's resources (retained ones stay)",
        description=(
            "Deletes what `localaws deploy` made for STACK, newest first, as `cdk destroy` "
            "does: resources whose DeletionPolicy is Retain (the datastore bucket) stay."
        ),
    )
    destroy.add_argument("stack", metavar="STACK", help="the stack name")
    destroy.set_defaults(handler=_destroy)


def _up(args: argparse.Namespace, console: Console) -> int:
    local, started = localaws.up(log=console.info)
    console.info(
        ("started" if started else "already running")
        + f": endpoint {local.endpoint}, region {local.region}, job image {local.image}"
    )
    console.info('point a shell at it with: eval "$(batchwright localaws env)"')
    return 0


def _down(args: argparse.Namespace, console: Console) -> int:
    stopped = localaws.down(log=console.info)
    console.info("stopped" if stopped else "the local AWS was not running")
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    local = localaws.current()
    if local is None:
        console.info("the local AWS is not running (start it with `batchwright localaws up`)")
        return 1
    console.info(f"running: endpoint {local.endpoint}, region {local.region}, image {local.image}")
    return 0


def _env(args: argparse.Namespace, console: Console) -> int:
    local = localaws.current()
    if local is None:
        console.error("the local AWS is not running; start it with `batchwright localaws up`")
        return 1
    for key, value in local.environment().items():
        console.line(f"export {key}={value}")
    return 0


def default_stack_name(directory: Path) -> str | None:
    """The default environment named in ``cdk.json`` context, looking upwards."""
    for folder in (directory, *directory.parents):
        path = folder / "cdk.json"
        if path.exists():
            context = json.loads(path.read_text()).get("context", {})
            name = context.get("batchwright:defaultEnvironment")
            return str(name) if name else None
    return None


def _deploy(args: argparse.Namespace, console: Console) -> int:
    from batchwright_localaws import deploy  # loaded only by the verb that uses it

    stack = args.stack or default_stack_name(Path.cwd())
    if not stack:
        raise UserInputError(
            "localaws deploy: no --stack given and no cdk.json context "
            "'batchwright:defaultEnvironment' found; pass --stack NAME."
        )
    parameters: dict[str, str] = {}
    for item in args.parameters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(
                f"localaws deploy: --parameters {item!r} is not KEY=VALUE; "
                "write e.g. --parameters DefaultImage=my/image:tag."
            )
        parameters[key] = value
    local = localaws.current()
    if local is None:
        raise UserInputError(
            "localaws deploy: the local AWS is not running; start it with "
            "`batchwright localaws up`."
        )
    template = stack_template(args.cdk_out, stack)
    if IMAGE_PARAMETER in template.get("Parameters", {}) and IMAGE_PARAMETER not in parameters:
        # No registry is reachable here: the offline-built job image stands in.
        parameters[IMAGE_PARAMETER] = local.image
        console.notice(f"{IMAGE_PARAMETER}={local.image} (the local AWS's job image)")
    result = deploy.deploy(local, template, stack, parameters=parameters, cdk_out=args.cdk_out)
    deploy.record_stack(local, result)
    deploy.write_outputs_file(result, Path(args.outputs_file))
    console.info(f"deployed {stack} to {local.endpoint}: {result.summary()}")
    if result.assets:
        console.info(f"  file assets published: {len(result.assets)}")
    for what, ids in (("updated in place", result.updated), ("replaced", result.replaced)):
        for logical_id in ids:
            console.info(f"  {what}: {logical_id}")
    _report_removals(result, console)
    for logical_id, kind in sorted(result.skipped.items()):
        console.info(f"  skipped {logical_id} ({kind}): the emulator cannot hold it")
    for note in result.notes:
        console.notice(note)
    console.info(f"outputs written to {args.outputs_file}")
    return 1 if result.failed else 0


def _report_removals(result: Any, console: Console) -> None:
    for logical_id in result.deleted:
        console.info(f"  deleted: {logical_id}")
    for logical_id in result.retained:
        console.info(f"  retained (its policy keeps it): {logical_id}")
    for logical_id, problem in sorted(result.failed.items()):
        console.warn(f"could not delete {logical_id}: {problem}")


def _destroy(args: argparse.Namespace, console: Console) -> int:
    from batchwright_localaws import deploy

    local = localaws.current()
    if local is None:
        raise UserInputError(
            "localaws destroy: the local AWS is not running, so it holds no stack; start "
            "it with `batchwright localaws up`."
        )
    try:
        result = deploy.destroy(local, args.stack)
    except LocalAwsError as error:
        raise UserInputError(f"localaws destroy: {error}.") from None
    console.info(f"destroyed {args.stack} in {local.endpoint}: {result.summary()}")
    _report_removals(result, console)
    return 1 if result.failed else 0
