"""Subcommand groups of other packages: listed by name, left out only when not installed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from batchwright import cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def test_the_local_aws_group_comes_from_its_own_package() -> None:
    assert "batchwright_localaws.cli" in cli._GROUPS
    assert "localaws" in _commands(cli.build_parser())


def test_a_group_whose_package_is_not_installed_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "_GROUPS", ("batchwright_not_installed.cli", "env"))
    assert _commands(cli.build_parser()) == {"env"}


def test_a_group_that_is_installed_but_broken_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "batchwright_broken_group"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("import batchwright_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_GROUPS", ("batchwright_broken_group.cli",))
    with pytest.raises(ModuleNotFoundError, match="batchwright_missing_dependency"):
        cli.build_parser()
