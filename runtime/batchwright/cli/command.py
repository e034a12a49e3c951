"""What every flow subcommand works on: the flow, its file, its checked definition.

Shared by the flow's own command line (:mod:`batchwright.cli.flow`) and by
``batchwright plan FLOW.py`` (:mod:`batchwright.cli.plan`), which loads a flow file
without running it.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchwright.console import Console
from batchwright.definition import FlowDefinition, import_flow_file, is_flow_class, load_definition
from batchwright.errors import UserInputError


@dataclass
class FlowCommand:
    """What every subcommand handler receives: the flow, its file and the console."""

    flow_class: type
    flow_file: str
    console: Console
    _definitions: dict[tuple[str, ...], FlowDefinition] = field(default_factory=dict)

    @property
    def flow_name(self) -> str:
        """The flow's class name."""
        return self.flow_class.__name__

    def definition(self, with_options: Sequence[str] = ()) -> FlowDefinition:
        """The flow's checked definition with these ``--with`` options (checked once).

        Raises:
            UserInputError: a graph error, a bad decorator or parameter declaration.
        """
        key = tuple(with_options)
        if key not in self._definitions:
            self._definitions[key] = load_definition(self.flow_class, key)
        return self._definitions[key]


def flow_file_of(flow_class: type) -> str:
    """Absolute path of the file defining ``flow_class``."""
    return os.path.abspath(inspect.getfile(flow_class))


def add_with_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``--with [STEP/]DECORATOR[:KEY=VALUE,...]`` (repeatable), as run, resume, check and
    plan take it."""
    parser.add_argument(
        "--with",
        dest="with_options",
        action="append",
        default=[],
        metavar="[STEP/]DECORATOR[:KEY=VALUE,...]",
        help=f"add a step decorator to every step, e.g. {example}; prefix a step name "
        "(train/batch:memory=30000) to add it to that step only",
    )


def _where_in(filename: str | None, line: int | None, flow_file: Path, code: str | None) -> str:
    """``line 5 (CODE)`` of the flow file, else ``other.py, line 5 (CODE)``."""
    at = f"line {line}" if line is not None else "an unknown line"
    if filename is not None and Path(filename).resolve() != flow_file:
        at = f"{filename}, {at}"
    return f"{at} ({code.strip()})" if code and code.strip() else at


def load_flow_file(path: str) -> type:
    """The flow class defined in a flow file (imported as a module, not run).

    Raises:
        UserInputError: no such file, it has a syntax error or an import in it fails (the
            file, line and error in one paragraph), or not exactly one flow class in it.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise UserInputError(f"plan {path}: no such file. Pass the path of a flow file.")
    name = f"batchwright_plan_{file.stem}"
    try:
        module = import_flow_file(str(file), name)
    except SyntaxError as error:
        at = _where_in(error.filename, error.lineno, file, (error.text or "").strip())
        raise UserInputError(
            f"plan {path}: {type(error).__name__} at {at}: {error.msg}. Fix it and plan again."
        ) from None
    except ImportError as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(file)]
        frame = frames[-1] if frames else None
        at = _where_in(
            str(file), frame.lineno if frame else None, file, frame.line if frame else ""
        )
        raise UserInputError(
            f"plan {path}: {type(error).__name__} at {at}: {error}. Fix the import, or install "
            f"what it needs in the Python that runs batchwright ({sys.executable}), and plan "
            "again."
        ) from None
    flows = [
        value
        for value in vars(module).values()
        if is_flow_class(value) and getattr(value, "__module__", None) == name
    ]
    if len(flows) != 1:
        found = ", ".join(f.__name__ for f in flows) or "none"
        raise UserInputError(
            f"plan {path}: expected one FlowSpec subclass, found {found}. Put one flow per "
            "file, or run 'python FLOW.py plan'."
        )
    return flows[0]
