"""The ``resume`` command a failed run prints: one that works when pasted.

It is rebuilt from the options the run actually used, read off the ``resume`` parser
itself, so an option resume takes is carried without being listed twice:

- every option of ``resume`` whose value differs from its default (``--with`` and
  ``--tag`` once per value, ``--run-batch-locally`` as a flag), except the few in
  :data:`NOT_CARRIED`;
- ``--environment``: the name the environment was found by, so the resume finds the same
  one wherever the name came from (flag, variable, ``cdk.json``, or the only one there is);
- ``--datastore-root``: the root the run used, when it was chosen (flag or
  ``$BATCHWRIGHT_DATASTORE_ROOT``); the default folder is found again from the same
  working directory;
- ``--outputs-file``: the one given, else ``$BATCHWRIGHT_OUTPUTS_FILE`` when the run used
  an environment, so the command works in a shell without the variable;
- paths (``--outputs-file``, ``--cdk-out``, a local datastore root) made absolute.

Flow parameters are not given to ``resume``: it reuses the run's stored values. The flow
file is named relative to the working directory when it lies under it, so the command is
pasted where the run was started.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Options of ``resume`` the hint leaves out: where to write the new run's id is the
#: caller's plumbing, and ``--no-pylint`` does nothing.
NOT_CARRIED = frozenset({"run_id_file", "no_pylint", "step", "origin_run_id", "help"})
#: Options whose value is a path: made absolute, so the command works from anywhere.
PATH_OPTIONS = frozenset({"outputs_file", "cdk_out"})


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _absolute(path: str, cwd: str) -> str:
    if path.startswith("s3://"):
        return path
    return str(Path(cwd, path).resolve())


def flow_path(flow_file: str, cwd: str) -> str:
    """The flow file as a command typed in ``cwd`` names it: relative when it is below
    ``cwd``, else absolute."""
    try:
        return str(Path(flow_file).resolve().relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(Path(flow_file).resolve())


def _option_words(action: argparse.Action, value: Any, cwd: str) -> list[str]:
    """The words that give ``value`` to ``action`` on a command line."""
    flag = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
    if action.nargs == 0:  # store_true and its kin
        return [flag] if value else []
    values = value if isinstance(value, list) else [value]  # --with and --tag: each
    if action.dest in PATH_OPTIONS:
        values = [_absolute(str(v), cwd) for v in values]
    return [word for v in values for word in (flag, _value_text(v))]


def resume_command(
    *,
    flow_file: str,
    run_id: str,
    args: argparse.Namespace,
    resume_parser: argparse.ArgumentParser,
    environment_name: str | None,
    datastore_root: str,
    cwd: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``python FLOW resume RUN_ID ...``: the command that resumes the failed run ``run_id``
    with the options ``args`` of the run (see the module docstring).

    Args:
        resume_parser: the flow's ``resume`` parser; its options and their defaults say
            what is carried.
        environment_name: the name the run's environment was found by, if it had one.
        datastore_root: the root the run used.
    """
    from batchwright.datastore import ROOT_VARIABLE
    from batchwright.environment.discovery import OUTPUTS_FILE_VARIABLE

    env = os.environ if environ is None else environ
    given = vars(args)
    words = ["python", flow_path(flow_file, cwd), "resume", run_id]
    for action in resume_parser._actions:  # argparse's list of options, groups included
        dest = action.dest
        if not action.option_strings or dest in NOT_CARRIED or dest not in given:
            continue
        if dest == "environment_name":
            value: Any = environment_name or given[dest]
        elif dest == "outputs_file":
            value = given[dest] or (env.get(OUTPUTS_FILE_VARIABLE) if environment_name else None)
        elif dest == "datastore_root":
            chosen = given[dest] or env.get(ROOT_VARIABLE)
            value = _absolute(datastore_root, cwd) if chosen else None
        else:
            value = given[dest]
        if value is None or value == action.default or value == []:
            continue
        words.extend(_option_words(action, value, cwd))
    return shlex.join(words)
