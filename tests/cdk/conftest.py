"""Fixtures of the construct tests.

Importing ``sample_synth`` puts ``<repo>/node_modules/.bin`` (the pinned Node.js that jsii
needs) first on PATH, so ``make test`` and a plain ``pytest`` both work.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load_sample_synth() -> ModuleType:
    name = "batchwright_tests_sample_synth"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("sample_synth.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sample_synth = _load_sample_synth()

from aws_cdk.assertions import Template  # noqa: E402  (after PATH points at the pinned Node)


@pytest.fixture(scope="session")
def sample() -> Any:
    """The sample app synthesized once per session (with cdk-nag attached)."""
    return sample_synth.synthesize_sample()


@pytest.fixture(scope="session")
def sample_template(sample: Any) -> Template:
    """Assertions over the sample stack's template."""
    return Template.from_json(sample.template, skip_cyclical_dependencies_check=True)
