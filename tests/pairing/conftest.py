"""Fixtures of the pairing tests: the sample app synthesized once per session, the
environment read from it, and helpers to plan flow files."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from batchwright.cli.command import FlowCommand, load_flow_file
from batchwright.cli.flow import main as flow_main
from batchwright.console import Console
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.environment.sources import from_cloud_assembly

REPO = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).with_name("flows")
STACK = "BatchwrightSample"


def _sample_synth() -> ModuleType:
    # Shared with tests/cdk under one module name, so the session synthesizes once.
    name = "batchwright_tests_sample_synth"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO / "tests" / "cdk" / "sample_synth.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cdk_out() -> Path:
    """The synthesized sample app (a cloud assembly directory)."""
    return Path(_sample_synth().synthesize_sample().outdir)


@pytest.fixture(scope="session")
def sample_env(cdk_out: Path) -> EnvironmentDescriptor:
    """The sample environment read statically from cdk.out (placeholders for ARNs)."""
    return from_cloud_assembly(STACK, cdk_out)


def decorators_of(flow_file: Path, with_options: tuple[str, ...] = ()) -> tuple[str, Any]:
    """The flow's name and its validated decorators per step, as run/plan see them."""
    flow_class = load_flow_file(str(flow_file))
    command = FlowCommand(flow_class, str(flow_file), Console())
    return command.flow_name, command.definition(with_options).decorators


def write_outputs_file(path: Path, env: EnvironmentDescriptor, **extra: str) -> Path:
    """A 'cdk deploy --outputs-file' document holding ``env`` as the stack's output."""
    outputs = {"BatchwrightEnvironment": env.to_json(), **extra}
    path.write_text(json.dumps({env.name: outputs}))
    return path


def deployed(env: EnvironmentDescriptor) -> EnvironmentDescriptor:
    """``env`` as a deployment resolves it: every placeholder (``<Ref:Bucket>``,
    ``<GetAtt:Queue.JobQueueArn>``) replaced by a value of the same kind."""

    pseudo = {
        "Ref:AWS::AccountId": "123456789012",
        "Ref:AWS::Region": "us-east-1",
        "Ref:AWS::URLSuffix": "amazonaws.com",
    }

    def resolve(match: re.Match[str]) -> str:
        if match.group(1) in pseudo:
            return pseudo[match.group(1)]
        kind, _, target = match.group(1).partition(":")
        logical_id, _, attribute = target.partition(".")
        if attribute.endswith("Arn"):
            return f"arn:aws:batch:us-east-1:123456789012:{logical_id.lower()}"
        return logical_id.lower() or kind.lower()

    text = re.sub(r"<([^<>]*)>", resolve, env.to_json())
    return EnvironmentDescriptor.from_json(text, source="deployed for the test")


def isolate_from_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing names an environment or a datastore, the working directory is ``tmp_path``,
    and AWS is unreachable (connection refused), so a passing refusal test also shows that
    no AWS call was made before it; tests that need AWS bring moto."""
    for variable in (
        "BATCHWRIGHT_ENVIRONMENT",
        "BATCHWRIGHT_OUTPUTS_FILE",
        "BATCHWRIGHT_DATASTORE_ROOT",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)


def run_flow_cli(path: Path, argv: list[str]) -> tuple[int, str, str]:
    """``python FLOW ARGV`` in this process: the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = flow_main(load_flow_file(str(path)), argv, Console(out, err))
    return code, out.getvalue(), err.getvalue()
