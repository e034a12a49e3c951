"""Synthesizes the sample app once per test session (synthesis costs seconds).

Importing this module puts the pinned Node.js first on PATH (jsii runs on it). The cdk-nag
AwsSolutions pack is attached to the app, so one synthesis serves both the template
assertions and the nag check; a nag failure is recorded, not raised, so the template tests
still run and the nag test reports the violations.

Tests outside ``tests/cdk`` load this file with :func:`load` (by path, under one module
name) so every test module shares the one synthesis.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "node_modules" / ".bin"
os.environ["PATH"] = f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
MODULE_NAME = "batchwright_tests_sample_synth"
STACK_NAME = "BatchwrightSample"


@dataclass(frozen=True)
class SampleSynthesis:
    """The synthesized sample app: where it is, its template, and cdk-nag's verdict."""

    outdir: Path
    template: dict[str, Any]
    nag_failure: str | None
    validation_report: dict[str, Any] | None

    @property
    def template_path(self) -> Path:
        """The stack's template file in the cloud assembly."""
        return self.outdir / f"{STACK_NAME}.template.json"


def _sample_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "batchwright_sample_app", REPO / "sample_app" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def synthesize_sample() -> SampleSynthesis:
    """Synthesizes the sample app with cdk-nag attached into a fresh directory."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    outdir = Path(tempfile.mkdtemp(prefix="batchwright-cdk-out-"))
    app = cdk.App(outdir=str(outdir))
    _sample_app_module().build_app(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    failure: str | None = None
    try:
        app.synth()
    except Exception as error:  # jsii surfaces the validation failure as RuntimeError
        failure = str(error)
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    template = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    return SampleSynthesis(outdir, template, failure, report)


def load() -> ModuleType:
    """This module, loaded once under a fixed name (shared synthesis cache)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, Path(__file__))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
