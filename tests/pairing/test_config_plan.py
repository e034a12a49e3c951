"""A ``@batch`` request written as a config reference (``@batch(memory=sizes.memory)``) is
planned, routed and refused exactly like the same literal, with the value of the run's
configs: from the declaration, ``--config-value`` or the environment variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchwright.configs import VALUES_VARIABLE
from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.plan import make_plan

from .conftest import STACK, decorators_of, isolate_from_aws, run_flow_cli, write_outputs_file

CONFIG_MEMORY_FLOW = '''
from batchwright import Config, FlowSpec, batch, step


class ConfigMemoryFlow(FlowSpec):
    """The request of step big comes from the config."""

    sizes = Config("sizes", default_value={"memory": 8192, "queue": "small"})

    @step
    def start(self):
        self.next(self.big)

    @batch(memory=sizes.memory, queue=sizes.queue)
    @step
    def big(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfigMemoryFlow()
'''

FITS = json.dumps({"memory": 1024, "queue": "small"})


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "config_memory_flow.py"
    path.write_text(CONFIG_MEMORY_FLOW)
    return path


def test_a_config_memory_too_large_for_the_queue_is_refused_like_a_literal(
    flow_file: Path, sample_env: EnvironmentDescriptor
) -> None:
    name, decorators = decorators_of(flow_file)
    plan = make_plan(name, decorators, sample_env)
    assert not plan.ok and [s.step for s in plan.steps if not s.ok] == ["big"]
    message = plan.step("big").verdict
    # The words of tests/pairing/flows/memory_flow.py's literal @batch(memory=8192, ...).
    assert "step 'big', @batch: queue='small'" in message
    assert "8192 MiB" in message and "c5.xlarge" in message


def test_the_plan_command_uses_the_config_values_given(
    flow_file: Path, cdk_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    static = ["--static", "--cdk-out", str(cdk_out)]
    code, out, _ = run_flow_cli(flow_file, ["plan", "--json", *static])
    assert code == 2
    assert {r["step"]: r["verdict"] == "ok" for r in json.loads(out)}["big"] is False
    code, out, err = run_flow_cli(
        flow_file, ["plan", "--json", *static, "--config-value", "sizes", FITS]
    )
    assert code == 0, err
    big = next(r for r in json.loads(out) if r["step"] == "big")
    assert big["verdict"] == "ok" and big["queue"] is not None
    # The variable gives it too (and the command line still wins over it).
    monkeypatch.setenv(VALUES_VARIABLE, json.dumps({"sizes": json.loads(FITS)}))
    code, _, err = run_flow_cli(flow_file, ["plan", "--json", *static])
    assert code == 0, err
    code, _, _ = run_flow_cli(
        flow_file,
        [
            "plan",
            "--json",
            *static,
            "--config-value",
            "sizes",
            '{"memory": 8192, "queue": "small"}',
        ],
    )
    assert code == 2


def test_run_refuses_a_config_request_before_anything_runs(
    flow_file: Path,
    tmp_path: Path,
    sample_env: EnvironmentDescriptor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate_from_aws(monkeypatch, tmp_path)
    store = tmp_path / "store"
    outputs = write_outputs_file(tmp_path / "outputs.json", sample_env)
    code, out, err = run_flow_cli(
        flow_file,
        [
            "run",
            "--environment",
            STACK,
            "--outputs-file",
            str(outputs),
            "--datastore-root",
            str(store),
        ],
    )
    assert code == 2
    assert "error: step 'big', @batch: queue='small' can never run it" in err
    assert "Traceback" not in err and "started" not in out
    assert not store.exists()  # no run was recorded, no task ran
