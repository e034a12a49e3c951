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

from batchwright.configs import ConfigChoice, RunConfigs, resolve_configs
from batchwright.console import Console
from batchwright.definition import FlowDefinition, import_flow_file, is_flow_class, load_definition
from batchwright.errors import InvalidValue, UserInputError


class QuietConsole(Console):
    """A console for the status lines ``--quiet`` drops (what an environment or plan
    looks like, headers): lines and notices go nowhere; warnings and errors still go to the
    console it stands for."""

    def __init__(self, console: Console) -> None:
        super().__init__(console.out, console.err)
        self.live_capable = False
        self._console = console

    def line(self, text: str = "") -> None:
        """Dropped."""

    def live(self, lines: list[str]) -> None:
        """Dropped."""

    def warn(self, text: str) -> None:
        """A warning, shown as ever."""
        self._console.warn(text)

    def error(self, text: str) -> None:
        """An error, shown as ever."""
        self._console.error(text)


@dataclass
class FlowCommand:
    """What every subcommand handler receives: the flow, its file and the console."""

    flow_class: type
    flow_file: str
    console: Console
    #: ``--quiet`` before the subcommand: status lines are dropped (see :attr:`chatter`).
    quiet: bool = False
    #: The configs chosen on the command line (``--config``, ``--config-value``).
    config_choices: tuple[ConfigChoice, ...] = ()
    _definitions: dict[tuple[str, ...], FlowDefinition] = field(default_factory=dict)
    _configs: RunConfigs | None = None

    @property
    def flow_name(self) -> str:
        """The flow's class name."""
        return self.flow_class.__name__

    @property
    def chatter(self) -> Console:
        """Where status lines go (the environment found, each step's route, a command's
        headers): the console, or with ``--quiet`` a :class:`QuietConsole` that drops them,
        as Metaflow's ``--quiet`` drops its ``echo`` lines. The tasks' output, warnings,
        errors and what a command exists to print go to :attr:`console`."""
        return QuietConsole(self.console) if self.quiet else self.console

    def configs(self) -> RunConfigs:
        """The run's configs: those :meth:`use_configs` set (a resumed run's), else
        resolved once from :attr:`config_choices`, the environment variables and the
        defaults.

        Raises:
            ConfigError: a config has no acceptable value (names the config and source).
        """
        if self._configs is None:
            self._configs = resolve_configs(self.flow_class, self.config_choices)
        return self._configs

    def use_configs(self, configs: RunConfigs) -> None:
        """Use ``configs`` (a resumed run's) for every definition made from now on."""
        self._configs = configs
        self._definitions.clear()

    def definition(self, with_options: Sequence[str] = ()) -> FlowDefinition:
        """The flow's checked definition with these ``--with`` options and the run's
        configs (checked once).

        Raises:
            UserInputError: a graph error, a bad decorator, parameter or config
                declaration, a config without an acceptable value.
        """
        key = tuple(with_options)
        if key not in self._definitions:
            self._definitions[key] = load_definition(self.flow_class, key, self.configs())
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


def add_datastore_option(parser: argparse.ArgumentParser) -> None:
    """``--datastore-root ROOT``, as the subcommands that read or write runs take it (also
    accepted before the subcommand, Metaflow's place for it)."""
    parser.add_argument(
        "--datastore-root",
        metavar="ROOT",
        help="folder or s3://bucket/prefix "
        "(default: $BATCHWRIGHT_DATASTORE_ROOT, else ./.batchwright)",
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


#: The longest tag ``--tag`` takes (as Metaflow).
MAX_TAG_LENGTH = 512


def check_tags(tags: Sequence[str], subcommand: str) -> tuple[str, ...]:
    """The ``--tag`` values, checked: each 1 to :data:`MAX_TAG_LENGTH` printable characters.

    Raises:
        InvalidValue: a tag is empty, too long or has a character that is not printable.
    """
    for tag in tags:
        problem = None
        if not tag:
            problem = "is empty"
        elif len(tag) > MAX_TAG_LENGTH:
            problem = f"is {len(tag)} characters long, more than {MAX_TAG_LENGTH}"
        elif not tag.isprintable():
            bad = next(c for c in tag if not c.isprintable())
            problem = f"has a character that is not printable ({bad!r})"
        if problem is not None:
            raise InvalidValue(
                where=subcommand,
                key="--tag",
                value=tag,
                problem=problem,
                fix=f"Pass tags of 1 to {MAX_TAG_LENGTH} printable characters, e.g. "
                "--tag experiment-3.",
            )
    return tuple(tags)
