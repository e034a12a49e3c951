"""End to end on the local AWS: the synthesized sample environment, deployed into the
emulator, and flows whose ``@batch`` steps run in real containers there."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batchwright.environment.assembly import stack_template
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor
from batchwright_localaws import LocalAws
from batchwright_localaws import deploy as local_deploy

REPO = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().parent / "flows"
STACK = "BatchwrightSample"


def _sample_synth() -> Any:
    path = REPO / "tests" / "cdk" / "sample_synth.py"
    spec = importlib.util.spec_from_file_location("batchwright_tests_sample_synth", path)
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Deployed:
    """The sample environment as deployed into the local AWS."""

    local: LocalAws
    outputs_file: Path
    deployment: local_deploy.Deployment
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def descriptor(self) -> EnvironmentDescriptor:
        """The environment as the outputs file describes it."""
        outputs = json.loads(self.outputs_file.read_text())[STACK]
        return EnvironmentDescriptor.from_json(outputs[DESCRIPTOR_OUTPUT_KEY])

    def run(self, flow: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python FLOW run --environment ... ARGS`` against the deployed sample."""
        return subprocess.run(
            [sys.executable, str(FLOWS / flow), *args],  # an absolute path stays as is
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, flow: str, *args: str) -> subprocess.Popen[str]:
        """The same, started in the background (for interrupts)."""
        return subprocess.Popen(
            [sys.executable, str(FLOWS / flow), *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the emulator knows on the sample's queues (with their states)."""
        batch = self.local.client("batch")
        found = []
        for queue in batch.describe_job_queues()["jobQueues"]:
            if not queue["jobQueueName"].startswith(STACK):
                continue
            for state in (
                "SUBMITTED",
                "PENDING",
                "RUNNABLE",
                "STARTING",
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
            ):
                summaries = batch.list_jobs(jobQueue=queue["jobQueueArn"], jobStatus=state)
                for summary in summaries["jobSummaryList"]:
                    found.append({**summary, "jobQueue": queue["jobQueueName"]})
        return found


@pytest.fixture(scope="session")
def deployed(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Synthesizes the sample app, deploys it into the local AWS, and yields how to run
    flows against it: no queue, role, bucket or image is configured anywhere but in the
    outputs file the deployment wrote."""
    synthesis = _sample_synth().synthesize_sample()
    template = stack_template(synthesis.outdir, STACK)
    deployment = local_deploy.deploy(
        local_aws, template, STACK, parameters={"DefaultImage": local_aws.image}
    )
    local_deploy.record_stack(local_aws, deployment)
    workdir = tmp_path_factory.mktemp("e2e")
    outputs = workdir / "cdk-outputs.json"
    local_deploy.write_outputs_file(deployment, outputs)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHWRIGHT_"))},
        **local_aws.environment(),
        "BATCHWRIGHT_ENVIRONMENT": STACK,
        "BATCHWRIGHT_OUTPUTS_FILE": str(outputs),
        "PYTHONUNBUFFERED": "1",
    }
    yield Deployed(local_aws, outputs, deployment, workdir, env)


@pytest.fixture
def run_tag() -> str:
    """A value unique to one test, to tell its jobs apart."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def _aws_of_the_emulator(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process itself (the client API, job lookups) talks to the emulator."""
    for key, value in deployed.local.environment().items():
        monkeypatch.setenv(key, value)
