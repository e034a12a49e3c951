"""``batchwright env``: what environment was found, and from where; its Metaflow profile.

- ``batchwright env show [NAME] [--outputs-file PATH] [--static]``
- ``batchwright env export-metaflow [NAME] [-o FILE] [--queue KEY] [--static]``

NAME (or ``--environment NAME``) is found as ``run`` finds it; without one, the only
batchwright environment there is (see :mod:`batchwright.environment.discovery`).

A profile read before deployment (from ``cdk.out``) holds placeholders such as
``<GetAtt:...>`` where ARNs and names will be. ``export-metaflow`` refuses to write such a
profile unless ``--static`` asks for it, and then names every field that is unresolved.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from batchwright.cli.plan import add_environment_options
from batchwright.console import Console
from batchwright.environment.descriptor import (
    METAFLOW_PROFILE_OUTPUT_KEY,
    EnvironmentDescriptor,
)
from batchwright.environment.discovery import Discovery, UnknownEnvironment, search
from batchwright.environment.sources import placeholders_in
from batchwright.errors import UserInputError


def _name(args: argparse.Namespace) -> str | None:
    """NAME or ``--environment NAME`` (the same, if both are given).

    Raises:
        UserInputError: both are given, with different names.
    """
    if args.name and args.environment_name and args.name != args.environment_name:
        raise UserInputError(
            f"env {args.env_command}: NAME {args.name!r} and --environment "
            f"{args.environment_name!r} name different environments. Pass one of them."
        )
    return str(args.name or args.environment_name or "") or None


def _discover(args: argparse.Namespace) -> Discovery:
    found = search(
        _name(args),
        cwd=os.getcwd(),
        outputs_file=args.outputs_file,
        cdk_out=args.cdk_out,
        allow_static=True,
        deployed=not args.static,
    )
    if found.found is not None and args.name and not args.environment_name:
        # Given as the command's NAME, not as --environment.
        return dataclasses.replace(found.found, origin="named by NAME")
    if found.found is None:
        looked = "; ".join(found.looked) or "nothing to look at"
        raise UnknownEnvironment(
            f"env {args.env_command}: no environment is named, and none was found "
            f"({looked}). Pass NAME (a stack built with batchwright_cdk), set "
            "$BATCHWRIGHT_ENVIRONMENT, or add the 'batchwright:defaultEnvironment' context to "
            "cdk.json."
        )
    return found.found


def _max_vcpus_text(env: EnvironmentDescriptor) -> list[list[str]]:
    rows = []
    for q in env.queues:
        types = sorted({t for ce in q.compute_environments for t in ce.instance_types})
        rows.append(
            [
                q.key,
                q.name,
                q.platform,
                q.accelerator,
                str(len(types)) if types else "-",
                str(q.max_vcpus),
            ]
        )
    return rows


def _handle_show(args: argparse.Namespace, console: Console) -> int:
    found = _discover(args)
    env = found.descriptor
    if args.json:
        console.line(json.dumps({"source": env.source, **env.to_dict()}, indent=2))
        return 0
    console.line(console.style(f"Environment {env.name}", "bold"))
    for label, value in (
        # The origin reads "named by --environment" when a name was given.
        ("named by", found.origin.removeprefix("named by ")),
        ("source", env.source),
        ("region", env.region),
        ("datastore", f"{env.datastore_root} (bucket {env.bucket}, prefix {env.prefix!r})"),
        ("job role", env.job_role_arn),
        ("execution role", env.execution_role_arn),
        ("log group", env.log_group),
        ("default image", env.default_image),
    ):
        console.line(f"  {label + ':':16}{value}")
    console.line()
    console.table(
        ["queue", "name", "platform", "accelerator", "instance types", "max vCPUs"],
        _max_vcpus_text(env),
    )
    return 0


def metaflow_profile(env: EnvironmentDescriptor, queue_key: str | None = None) -> dict[str, str]:
    """A Metaflow profile built from the descriptor, for ``queue_key``'s queue (default:
    :func:`batchwright.environment.metaflow.default_queue`).

    Raises:
        UserInputError: ``queue_key`` is not a queue of the environment.
    """
    from batchwright.environment import metaflow

    if queue_key is not None:
        queue = env.queue(queue_key)
        if queue is None:
            raise UserInputError(
                f"env export-metaflow --queue {queue_key}: environment '{env.name}' has no "
                f"such queue (queues: {', '.join(q.key for q in env.queues)})."
            )
    else:
        queue = metaflow.default_queue(env)
    return metaflow.metaflow_profile(env, queue.arn if queue else "")


def profile_of(found: Discovery, queue_key: str | None = None) -> tuple[dict[str, str], str]:
    """The profile to export and where it came from: the stack's own
    ``BatchwrightMetaflowProfile`` output when present (and no other queue was asked for),
    else one built from the descriptor."""
    published = found.outputs.get(METAFLOW_PROFILE_OUTPUT_KEY)
    if published and queue_key is None:
        try:
            document: Any = json.loads(published)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and document:
            return (
                {str(k): str(v) for k, v in document.items()},
                f"stack output {METAFLOW_PROFILE_OUTPUT_KEY}",
            )
    return metaflow_profile(found.descriptor, queue_key), "built from the descriptor"


def unresolved_fields(profile: dict[str, str]) -> dict[str, list[str]]:
    """The fields of a profile that hold placeholders (values only a deployment knows),
    with those placeholders, in key order."""
    return {key: found for key in sorted(profile) if (found := placeholders_in(profile[key]))}


def _unresolved_text(unresolved: dict[str, list[str]]) -> str:
    return ", ".join(f"{key} ({' '.join(parts)})" for key, parts in unresolved.items())


def check_resolved(
    found: Discovery, profile: dict[str, str], static: bool, console: Console
) -> None:
    """Refuses a profile with unresolved fields, unless ``static`` asked for one; then
    names each of them on standard error (the profile itself stays a valid Metaflow
    profile).

    Raises:
        UserInputError: fields are unresolved and ``static`` is false.
    """
    unresolved = unresolved_fields(profile)
    if not unresolved:
        return
    env = found.descriptor
    name = found.name or env.name
    if not static:
        raise UserInputError(
            f"env export-metaflow: environment '{env.name}' was read from {env.source}, so "
            f"these fields of its Metaflow profile are not known until it is deployed: "
            f"{_unresolved_text(unresolved)}. Deploy it ('cdk deploy {name} --outputs-file "
            "cdk-outputs.json') and export again, or pass --outputs-file PATH of the deployed "
            "stack; --static writes the profile anyway, with these fields labelled unresolved."
        )
    for key, parts in unresolved.items():
        console.warn(
            f"{key} is unresolved: {' '.join(parts)} is known only after "
            f"'cdk deploy {name}'; export again after deploying before using the profile"
        )


def _handle_export(args: argparse.Namespace, console: Console) -> int:
    found = _discover(args)
    profile, origin = profile_of(found, args.queue)
    check_resolved(found, profile, args.static, console)
    text = json.dumps(profile, indent=2, sort_keys=True) + "\n"
    if args.output in (None, "-"):
        console.line(text.rstrip("\n"))
    else:
        Path(args.output).write_text(text)
        console.info(
            f"Metaflow profile of {found.descriptor.name} ({origin}) written to {args.output}; "
            f"import it with: metaflow configure import {args.output}"
        )
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="environment (stack) name; default: $BATCHWRIGHT_ENVIRONMENT, else cdk.json, "
        "else the only batchwright environment found",
    )
    add_environment_options(parser)


def register(sub: Any) -> None:
    """Adds ``batchwright env show|export-metaflow``."""
    env = sub.add_parser("env", help="show or export the batchwright environment")
    commands = env.add_subparsers(dest="env_command", metavar="COMMAND")
    show = commands.add_parser("show", help="print what was found and from where")
    _common(show)
    show.add_argument(
        "--static", action="store_true", help="read cdk.out only, before deploying (no AWS call)"
    )
    show.add_argument("--json", action="store_true", help="print the descriptor as JSON")
    show.set_defaults(handler=_handle_show)
    export = commands.add_parser(
        "export-metaflow", help="write a Metaflow profile (metaflow configure import FILE)"
    )
    _common(export)
    export.add_argument(
        "--static",
        action="store_true",
        help="read cdk.out only, before deploying (no AWS call); fields only a deployment "
        "knows are written as placeholders such as <GetAtt:...> and named on stderr",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="where to write it (stdout)")
    export.add_argument("--queue", metavar="KEY", help="the queue Metaflow submits to")
    export.set_defaults(handler=_handle_export)
