"""The ``batchwright`` command.

Each subcommand group lives in its own module and registers itself through a
``register(subparsers)`` function; ``_GROUPS`` lists those modules. A group from another
distribution (the local AWS, a development tool that never ships into job containers) is
listed by its full module path and imported by name, so this package has no import of it
and the command simply lacks the group where it is not installed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from batchwright import __version__
from batchwright.console import Console
from batchwright.errors import BatchwrightError

#: Modules that add subcommands (each has ``register(subparsers)``): a bare name is a
#: module of this package, a dotted path a module of an optional package.
_GROUPS: tuple[str, ...] = (
    "batchwright_localaws.cli",
    "env",
    "plan",
    "jobs",
    "jobdefs",
    "report",
)


def _group_module(name: str) -> ModuleType | None:
    """The module of a subcommand group; ``None`` when its optional package is absent.

    Only the absence of the group's own top-level package is forgiven: a group that is
    installed but fails to import (a missing dependency of its own, a syntax error) must
    say so rather than vanish from the command.
    """
    if "." not in name:
        return importlib.import_module(f"batchwright.cli.{name}")
    package = name.split(".", 1)[0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == package:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``batchwright`` command with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="batchwright",
        description="Run Metaflow-style flows on AWS Batch environments built with CDK.",
    )
    parser.add_argument("--version", action="version", version=f"batchwright {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _GROUPS:
        module = _group_module(name)
        if module is not None:
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    console = Console()
    try:
        return int(args.handler(args, console) or 0)
    except BatchwrightError as error:
        console.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    except BrokenPipeError:
        return output_closed()


#: The exit code of a command whose reader went away (``| head``), as for SIGPIPE.
EXIT_OUTPUT_CLOSED = 128 + 13


def output_closed() -> int:
    """Ends a command whose standard output was closed by its reader: what remains to be
    written goes nowhere (no traceback at exit), and the exit code is SIGPIPE's."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OUTPUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
