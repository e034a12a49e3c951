"""``--config NAME PATH`` and ``--config-value NAME JSON``: a flow's configs on the command
line.

Accepted before the subcommand (Metaflow's place: ``python flow.py --config-value cfg
'{"a": 1}' run``) and, for a flow that declares configs, after ``run``, ``resume``,
``check``, ``show`` and ``plan``. Both places are read together by
:func:`config_choices`; :func:`batchwright.configs.resolve_configs` checks the names and
reads and parses the values.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from batchwright.configs import (
    FILES_VARIABLE,
    VALUES_VARIABLE,
    ConfigChoice,
    RunConfigs,
    configs_from_artifacts,
    flow_configs,
)
from batchwright.errors import UserInputError

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore

#: The subcommands that take the options after their name (when the flow has configs).
CONFIG_SUBCOMMANDS = frozenset({"run", "resume", "check", "show", "plan"})

_FILES = "config_files"
_VALUES = "config_values"
_TOP = "top_"


def add_config_options(
    parser: argparse.ArgumentParser, *, before_subcommand: bool, flow_class: type | None = None
) -> None:
    """Adds ``--config NAME PATH`` and ``--config-value NAME JSON`` (both repeatable); with
    ``flow_class``, ``--help`` lists its configs with their help."""
    prefix = _TOP if before_subcommand else ""
    listed = [
        f"{config.name}{' (required)' if config.required else ''}: {config.help or '-'}"
        for config in (flow_configs(flow_class) if flow_class is not None else {}).values()
    ]
    group = parser.add_argument_group(
        "configs", "the flow's configs: " + "; ".join(listed) if listed else None
    )
    group.add_argument(
        "--config",
        dest=prefix + _FILES,
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "PATH"),
        help=f"read config NAME from the file PATH (JSON unless the config names a parser); "
        f"default: ${FILES_VARIABLE} (JSON {{NAME: PATH}}), else the config's default",
    )
    group.add_argument(
        "--config-value",
        dest=prefix + _VALUES,
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "JSON"),
        help=f"give config NAME's value as text (JSON unless the config names a parser); "
        f"default: ${VALUES_VARIABLE} (JSON {{NAME: VALUE}})",
    )


def config_choices(args: argparse.Namespace) -> tuple[ConfigChoice, ...]:
    """The configs chosen on the command line, before and after the subcommand."""
    choices: list[ConfigChoice] = []
    for prefix in (_TOP, ""):
        for name, path in getattr(args, prefix + _FILES, None) or ():
            choices.append(ConfigChoice(name, "file", path, "--config"))
        for name, text in getattr(args, prefix + _VALUES, None) or ():
            choices.append(ConfigChoice(name, "value", text, "--config-value"))
    return tuple(choices)


def resumed_run_configs(store: FlowDatastore, flow_class: type, run_id: str) -> RunConfigs:
    """The configs run ``run_id`` was started with (stored with its parameters), which its
    resume runs with.

    Raises:
        UserInputError: the run has no stored parameters (not started by batchwright, or
            incomplete).
        ConfigError: it has no value for a config the flow declares now.
    """
    from batchwright.datastore.store import PARAMETERS_STEP, PARAMETERS_TASK

    if not flow_configs(flow_class):
        return RunConfigs()
    metadata = store.finished_metadata(run_id, PARAMETERS_STEP, PARAMETERS_TASK, None)
    if metadata is None:
        raise UserInputError(
            f"run {flow_class.__name__}/{run_id} has no stored parameters and configs, so it "
            "cannot be resumed (it was not started by batchwright, or is incomplete). Start a "
            "new run instead."
        )
    refs = metadata.get("artifacts", {})
    stored = {
        attribute: store.load(refs[attribute], f"config '{config.name}' of run {run_id}")
        for attribute, config in flow_configs(flow_class).items()
        if attribute in refs
    }
    return configs_from_artifacts(flow_class, stored)


def refuse_config_choices(choices: tuple[ConfigChoice, ...], run_id: str | None) -> None:
    """``resume`` runs with the configs of the run it resumes: a ``--config`` or
    ``--config-value`` given to it is refused rather than silently ignored.

    Raises:
        UserInputError: names the option and says how to run with other values.
    """
    if not choices:
        return
    first = choices[0]
    raise UserInputError(
        f"resume {first.source} {first.name} ...: a resume runs with the configs of the run "
        f"it resumes{f' ({run_id})' if run_id else ''}, stored with it. Drop the option, or "
        f"start a new run with it: run {first.source} {first.name} ..."
    )
