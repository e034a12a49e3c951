"""The pure parts of benchmarks/metaflow_core.py: how a generated Metaflow test flow is
switched to batchwright and which cases count as outside batchwright's scope."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "metaflow_core.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metaflow_core_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_import_lines_switch_and_missing_names_are_dropped(script: ModuleType) -> None:
    code = (
        "from metaflow import FlowSpec, step, project, current\n"
        "class F(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        from metaflow.exception import MetaflowException\n"
        "        from metaflow import project\n"
        "        from metaflow.cards import get_cards\n"
        "        from metaflow.plugins.cards.exception import CardNotPresentException\n"
    )
    switched = script.switch_imports(code, {"FlowSpec", "step", "current"})
    assert switched.splitlines() == [
        "from batchwright import FlowSpec, step, current",
        "class F(FlowSpec):",
        "    @step",
        "    def start(self):",
        "        from batchwright.exception import MetaflowException",
        "        pass",
        "        from _mfcore_cards import get_cards",
        "        from _mfcore_cards import CardNotPresentException",
    ]


def test_only_import_lines_and_module_paths_in_strings_change(script: ModuleType) -> None:
    code = (
        "x = 'from metaflow import y'\n"
        'assert t == "metaflow.exception.ExternalCommandFailed"\n'
        'e = "metaflow.plugins.timeout_decorator." "TimeoutException"\n'
        "from metaflow.plugins.catch_decorator import FailureHandledByCatch\n"
        "metaflow_flow = 'metaflowish'\n"
    )
    assert script.switch_imports(code, set()).splitlines() == [
        "x = 'from metaflow import y'",
        'assert t == "batchwright.exception.ExternalCommandFailed"',
        'e = "batchwright.decorators.builtin." "TimeoutException"',
        "from batchwright.decorators.builtin import FailureHandledByCatch",
        "metaflow_flow = 'metaflowish'",
    ]


@pytest.mark.parametrize(
    ("code", "feature"),
    [
        ("@card(type='blank')\ndef f(): pass", "cards"),
        ("checker.add_tag('x')", "tag mutation"),
        ("@project(name='p')\nclass F: pass", "@project"),
        ("assert current.project_name", "@project"),
        ("@secrets(sources=[])\ndef f(): pass", "secrets (@secrets)"),
    ],
)
def test_out_of_scope_features_are_found_in_the_code(
    script: ModuleType, code: str, feature: str
) -> None:
    assert script.out_of_scope(code) == feature


def test_names_only_imported_or_inside_other_words_are_in_scope(script: ModuleType) -> None:
    code = (
        "from metaflow import project, card\n"
        "from metaflow_test import try_to_get_card\n"
        "self.discard = 'cards'\n"
        "my_project_name_list = []\n"
    )
    assert script.out_of_scope(code) is None
