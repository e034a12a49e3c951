"""The ``batchwright`` command.

Each subcommand group lives in its own module of this package and registers itself
through a ``register(subparsers)`` function listed in ``_GROUPS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from batchwright import __version__
from batchwright.console import Console
from batchwright.errors import BatchwrightError

#: Modules of this package that add subcommands (each has ``register(subparsers)``).
_GROUPS: tuple[str, ...] = ("localaws", "env", "plan", "jobs")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``batchwright`` command with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="batchwright",
        description="Run Metaflow-style flows on AWS Batch environments built with CDK.",
    )
    parser.add_argument("--version", action="version", version=f"batchwright {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _GROUPS:
        module = importlib.import_module(f"batchwright.cli.{name}")
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


if __name__ == "__main__":
    sys.exit(main())
