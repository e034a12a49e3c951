"""The pairing end to end: the sample flow runs on the deployed sample environment with
nothing configured by hand, each job lands on the queue ``plan`` chose, and artifacts flow
(issue: the pairing)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import REPO, Deployed

from batchwright.client import Flow

pytestmark = pytest.mark.localaws

PAIRING_FLOW = str(REPO / "sample_app" / "flows" / "pairing_flow.py")


def _emulator_jobs(deployed: Deployed) -> list[dict[str, Any]]:
    """The emulator's own job records (they keep each job's container overrides)."""
    url = f"{deployed.local.endpoint}/moto-api/data.json"
    with urllib.request.urlopen(url, timeout=60) as response:
        return list(json.load(response)["batch"]["Job"])


def test_sample_flow_runs_on_the_queues_plan_chose(deployed: Deployed) -> None:
    planned = deployed.run(PAIRING_FLOW, "plan", "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = {entry["step"]: entry for entry in json.loads(planned.stdout)}
    batch_steps = {s for s, e in plan.items() if e["backend"] == "batch"}
    assert batch_steps == {"featurize", "train", "export", "score"}
    assert all(plan[s]["verdict"] == "ok" for s in plan)

    done = deployed.run(PAIRING_FLOW, "run", timeout=400)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    run_id = re.search(r"Run PairingFlow/(\d+) started", output).group(1)  # type: ignore[union-attr]

    records = [
        job
        for job in _emulator_jobs(deployed)
        if "PairingFlow" in job["job_name"] and run_id in json.dumps(job["container_overrides"])
    ]
    by_step = {job["job_name"].split("-")[1]: job for job in records}
    assert set(by_step) == batch_steps, sorted(by_step)
    batch = deployed.local.client("batch")
    for step, record in by_step.items():
        described = batch.describe_jobs(jobs=[record["job_id"]])["jobs"][0]
        assert described["jobQueue"] == plan[step]["queue"], step
        assert described["status"] == "SUCCEEDED", step
    kinds = {step: plan[step]["platform"] for step in batch_steps}
    assert kinds == {"featurize": "EC2", "train": "SPOT", "export": "FARGATE", "score": "EC2"}
    gpu = {
        r["type"]: r["value"]
        for r in by_step["score"]["container_overrides"]["resourceRequirements"]
    }
    assert gpu["GPU"] == "1"

    run = Flow("PairingFlow", datastore_root=deployed.descriptor().datastore_root)[run_id]
    assert run.successful
    end = run["end"].task.data
    assert end.scores == [end.weight * r for r in range(1, 11)]
    assert end.model_bytes > 0


def test_an_environment_nothing_names_is_found_in_the_account(
    deployed: Deployed, tmp_path: Path
) -> None:
    # No --environment, no variable, no cdk.json, no outputs file: the deployed sample is
    # the only descriptor under the SSM path the construct library publishes it on.
    env = {
        k: v
        for k, v in deployed.env.items()
        if k not in ("BATCHWRIGHT_ENVIRONMENT", "BATCHWRIGHT_OUTPUTS_FILE")
    }
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("batchwright")), "env", "show"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = [line.strip() for line in shown.stdout.splitlines()]
    assert lines[0] == "Environment BatchwrightSample"
    assert lines[1] == (
        "named by:       the only batchwright environment listed in SSM in us-east-1 "
        "(parameters under /batchwright/environments)"
    )
    assert lines[2] == (
        "source:         CloudFormation stack BatchwrightSample (output BatchwrightEnvironment)"
    )
