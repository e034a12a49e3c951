"""The options Metaflow's command line takes before the subcommand, as batchwright reads them.

Metaflow's own test harness, and scripts written for Metaflow, start a flow as::

    python flow.py --metadata=local --datastore=local --environment=local \\
        --event-logger=nullSidecarLogger --no-pylint --quiet run --max-workers=50 ...

Each such option is declared once, in :data:`TOP_OPTIONS`: the values that have a meaning
in batchwright, and for the values it refuses, what batchwright does instead. After the
command line is parsed, :func:`apply_top_options` refuses what has no meaning (exit code 2,
one paragraph naming the option, the value and the fix) and turns the rest into what the
subcommand uses: the datastore root, and ``--quiet``.

``--environment`` has two meanings, told apart by where it stands: before the subcommand
it is Metaflow's execution environment (only ``local``); after ``run``, ``resume`` or
``plan`` it names the batchwright environment (the CDK stack) as it always has. A stack
name given before the subcommand is reported by the flow command as an option that goes
after it (see :func:`placement`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from batchwright.cli.command import FlowCommand
from batchwright.errors import EnvironmentNotFound, InvalidValue, UserInputError

#: Where a message says the options stand.
WHERE = "before the subcommand"
#: Metaflow's execution environments: before the subcommand, ``--environment`` with one of
#: these is Metaflow's option, anything else a batchwright environment put too early.
METAFLOW_ENVIRONMENTS = ("local", "conda", "pypi", "uv")


@dataclass(frozen=True)
class TopOption:
    """One option Metaflow takes before the subcommand and batchwright accepts there."""

    flag: str
    dest: str
    metavar: str
    help: str
    #: The values batchwright gives a meaning to.
    accepted: tuple[str, ...]
    #: Values refused with a reason of their own: value -> (what is wrong with it, what
    #: to do instead); ``{python}`` stands for this Python.
    refused: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: The fix for any other value.
    otherwise: str = ""

    def check(self, value: str | None) -> None:
        """Raises :class:`InvalidValue` for a value without a meaning in batchwright."""
        if value is None or value in self.accepted:
            return
        if value in self.refused:
            problem, fix = (text.format(python=sys.executable) for text in self.refused[value])
        else:
            choices = " or ".join(f"'{choice}'" for choice in self.accepted)
            problem, fix = f"is not a value batchwright takes (it takes {choices})", self.otherwise
        raise InvalidValue(where=WHERE, key=self.flag, value=value, problem=problem, fix=fix)


_NO_CONDA = (
    "asks Metaflow to build a Python environment for the steps; batchwright builds none: "
    "local steps run in this Python ({python}) and a @batch step runs in its container image",
    "Put the packages in an image and pass @batch(image=...) (or --with batch:image=...), "
    "or pass --environment=local (or drop the option).",
)

TOP_OPTIONS: tuple[TopOption, ...] = (
    TopOption(
        "--metadata",
        "metadata_provider",
        "local",
        "accepted as Metaflow's 'local': batchwright keeps each run's metadata (run "
        "record, tags, task records) with its artifacts in the datastore",
        accepted=("local",),
        refused={
            "service": (
                "is Metaflow's metadata service; batchwright has none: each run's metadata "
                "is kept with its artifacts in the datastore, where the client reads it",
                "To share runs, keep them in S3 (--datastore=s3, or --datastore-root "
                "s3://BUCKET/PREFIX), and pass --metadata=local or drop the option.",
            ),
        },
        otherwise="Pass --metadata=local, or drop the option.",
    ),
    TopOption(
        "--datastore",
        "datastore_type",
        "local|s3",
        "where runs are kept: 'local' a folder ($BATCHWRIGHT_DATASTORE_ROOT, else "
        "./.batchwright), 's3' S3 ($BATCHWRIGHT_DATASTORE_ROOT, else the bucket of the "
        "environment); --datastore-root names the root itself",
        accepted=("local", "s3"),
        otherwise="batchwright keeps runs in a local folder or in S3: pass --datastore=local "
        "or --datastore=s3, or name the root with --datastore-root.",
    ),
    TopOption(
        "--environment",
        "execution_environment",
        "local",
        "before the subcommand, Metaflow's execution environment: only 'local' (this "
        "Python) is accepted; after run, resume or plan, --environment NAME names the "
        "batchwright environment (the CDK stack)",
        accepted=("local",),
        refused={name: _NO_CONDA for name in METAFLOW_ENVIRONMENTS if name != "local"},
        otherwise="Before the subcommand, --environment is Metaflow's execution environment "
        "and only 'local' is accepted; to name the batchwright environment (the CDK stack), "
        "give --environment NAME after run, resume or plan: python flow.py run --environment "
        "NAME.",
    ),
    TopOption(
        "--event-logger",
        "event_logger",
        "nullSidecarLogger",
        "accepted as 'nullSidecarLogger' only: batchwright runs no event-logger sidecar",
        accepted=("nullSidecarLogger",),
        otherwise="batchwright runs no event-logger sidecar (a run's events are in its "
        "datastore records; 'report' draws its timeline): pass "
        "--event-logger=nullSidecarLogger, or drop the option.",
    ),
    TopOption(
        "--monitor",
        "monitor",
        "nullSidecarMonitor",
        "accepted as 'nullSidecarMonitor' only: batchwright runs no monitor sidecar",
        accepted=("nullSidecarMonitor",),
        otherwise="batchwright runs no monitor sidecar (each attempt's timings are in the "
        "datastore; 'report' shows them): pass --monitor=nullSidecarMonitor, or drop the "
        "option.",
    ),
)

#: Options taken on either side of the subcommand with one meaning.
EITHER_SIDE = frozenset({"--datastore-root"})


def add_top_options(parser: argparse.ArgumentParser) -> None:
    """Metaflow's options before the subcommand: :data:`TOP_OPTIONS`, ``--datastore-root``
    and ``--quiet`` / ``--not-quiet``."""
    group = parser.add_argument_group("Metaflow's options before the subcommand")
    for option in TOP_OPTIONS:
        group.add_argument(option.flag, dest=option.dest, metavar=option.metavar, help=option.help)
    group.add_argument(
        "--datastore-root",
        dest="top_datastore_root",
        metavar="ROOT",
        help="folder or s3://bucket/prefix, as after the subcommand",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        default=False,
        help="show only the tasks' output, the run's task lines, warnings and errors (no "
        "environment or route lines, no progress display); 'logs' prints the bare log",
    )
    group.add_argument(
        "--not-quiet", dest="quiet", action="store_false", help="the opposite of --quiet"
    )


def placement(option: str, value: str | None) -> Literal["top", "either", "subcommand"]:
    """Where an option of the flow command given before the subcommand belongs: ``top``
    (its place), ``either`` (taken on both sides with one meaning) or ``subcommand``
    (``--environment`` with a value that is no Metaflow execution environment: a
    batchwright environment given too early)."""
    if option in EITHER_SIDE:
        return "either"
    if option == "--environment" and value not in METAFLOW_ENVIRONMENTS:
        return "subcommand"
    return "top"


def apply_top_options(args: argparse.Namespace, command: FlowCommand) -> None:
    """Checks the options given before the subcommand and applies them: the datastore
    root the subcommand uses (``args.datastore_root``, when it has one) and ``--quiet``.

    Raises:
        InvalidValue: a value without a meaning in batchwright.
        UserInputError: ``--datastore-root`` given on both sides with two roots, or a root
            that contradicts ``--datastore``; ``--datastore=s3`` and no S3 root is known.
    """
    for option in TOP_OPTIONS:
        option.check(getattr(args, option.dest, None))
    command.quiet = bool(args.quiet)
    if "datastore_root" not in args:  # show, check, plan: they read no run
        return
    top, after = args.top_datastore_root, args.datastore_root
    if top and after and top != after:
        raise UserInputError(
            f"--datastore-root is given twice: {top} before the subcommand and {after} after "
            f"it. Give it once."
        )
    args.datastore_root = _datastore_root(args.datastore_type, top or after, args, command)


def _datastore_root(
    kind: str | None, given: str | None, args: argparse.Namespace, command: FlowCommand
) -> str | None:
    """The root ``--datastore`` and ``--datastore-root`` name together (``None``: the
    subcommand's default)."""
    from batchwright.datastore import ROOT_VARIABLE, default_root

    if kind is None:
        return given
    in_s3 = kind == "s3"
    if given:
        if given.startswith("s3://") != in_s3:
            raise UserInputError(
                f"--datastore={kind} --datastore-root {given}: the root is "
                f"{_kind_text('local' if in_s3 else 's3')}, but --datastore={kind} asks for "
                f"{_kind_text(kind)}. Drop --datastore (the root alone says where runs are "
                f"kept), or pass {_kind_text(kind)} as the root."
            )
        return given
    configured = os.environ.get(ROOT_VARIABLE)
    if configured and configured.startswith("s3://") != in_s3:
        raise UserInputError(
            f"--datastore={kind}: ${ROOT_VARIABLE} names {configured}, which is not "
            f"{_kind_text(kind)}. Unset ${ROOT_VARIABLE}, or pass --datastore-root "
            f"{'s3://BUCKET/PREFIX' if in_s3 else 'FOLDER'}, or drop --datastore."
        )
    if not in_s3:
        # Named explicitly, so that a run with @batch steps is refused rather than moved
        # to the environment's bucket.
        return os.path.abspath(default_root(None))
    return configured or _environment_bucket(args, command)


def _kind_text(kind: str) -> str:
    return "an S3 root (s3://BUCKET/PREFIX)" if kind == "s3" else "a local folder"


def _environment_bucket(args: argparse.Namespace, command: FlowCommand) -> str:
    """``--datastore=s3`` without a root: the datastore of the batchwright environment (the
    one ``--environment NAME`` names after run, resume or plan, else the one discovery
    finds, as ``run`` finds it); refused when there is none."""
    from batchwright.datastore import ROOT_VARIABLE
    from batchwright.environment.discovery import search
    from batchwright.environment.sources import is_placeholder

    try:
        found = search(
            getattr(args, "environment_name", None),
            cwd=os.getcwd(),
            flow_dir=os.path.dirname(command.flow_file),
            outputs_file=getattr(args, "outputs_file", None),
            cdk_out=getattr(args, "cdk_out", None),
            allow_static=False,
        )
    except UserInputError:
        raise
    except EnvironmentNotFound:
        found = None
    environment = found.found.descriptor if found and found.found else None
    if environment is not None and not is_placeholder(environment.bucket):
        return environment.datastore_root
    raise UserInputError(
        "--datastore=s3: no S3 datastore root is known (no --datastore-root, no "
        f"${ROOT_VARIABLE}, and no deployed batchwright environment found whose bucket to "
        "use). Pass --datastore-root s3://BUCKET/PREFIX, set "
        f"${ROOT_VARIABLE}=s3://BUCKET/PREFIX, or deploy the environment (cdk deploy) and "
        "name it with --environment NAME after the subcommand."
    )
