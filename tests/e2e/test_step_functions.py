"""A flow deployed as a Step Functions state machine and run by the local AWS: moto's Step
Functions executes it (with the local AWS's bridge for its Batch integration) and every
step runs in a real container. Started by ``step-functions trigger``, read back with the
client API like any run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Deployed

from batchwright.client import Flow, default_namespace, namespace
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor

pytestmark = pytest.mark.localaws

PRODUCTION_FLOW = (
    Path(__file__).resolve().parents[1] / "stepfunctions" / "flows" / "production_flow.py"
)
FAILING_FLOW = Path(__file__).resolve().parent / "flows" / "failing_flow.py"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
REPO = Path(__file__).resolve().parents[2]
SAMPLE_FLOW = REPO / "sample_app" / "flows" / "production_flow.py"
#: The stack of sample_app/production_app.py.
STACK = "BatchwrightProduction"


def _run_id(output: str) -> str:
    match = re.search(r"run id:? *([A-Za-z0-9_-]+)", output, re.IGNORECASE)
    assert match, output
    return match.group(1)


def _execution(
    deployed: Deployed, machine: str, run_id: str, timeout: float = 900
) -> dict[str, Any]:
    """The execution named ``run_id``, once it has ended."""
    sfn = deployed.local.client("stepfunctions")
    arn = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == machine
    )
    execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL or time.monotonic() > deadline:
            return described
        time.sleep(2)


def _history(deployed: Deployed, execution_arn: str) -> list[dict[str, Any]]:
    sfn = deployed.local.client("stepfunctions")
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def _jobs_of_run(deployed: Deployed, run_id: str) -> list[dict[str, Any]]:
    batch = deployed.local.client("batch")
    jobs = deployed.jobs()
    found = []
    for start in range(0, len(jobs), 100):
        ids = [j["jobId"] for j in jobs[start : start + 100]]
        for job in batch.describe_jobs(jobs=ids)["jobs"]:
            if (job.get("tags") or {}).get("batchwright:run") == run_id:
                found.append(job)
    return found


def test_a_deployed_flow_runs_to_the_end_and_is_an_ordinary_run(deployed: Deployed) -> None:
    machine = f"Production-{uuid.uuid4().hex[:6]}"
    created = deployed.run(str(PRODUCTION_FLOW), "step-functions", "create", "--name", machine)
    assert created.returncode == 0, created.stdout + created.stderr
    triggered = deployed.run(
        str(PRODUCTION_FLOW), "step-functions", "trigger", "--name", machine, "--scale", "2"
    )
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run_id = _run_id(triggered.stdout + triggered.stderr)

    execution = _execution(deployed, machine, run_id)
    assert execution["status"] == "SUCCEEDED", execution

    # The run reads back like any run: parameters, artifacts, lineage.
    root = deployed.descriptor().datastore_root
    run = Flow("ProductionFlow", datastore_root=root, _namespace_check=False)[run_id]
    assert run.successful
    assert run["gather"].task.data.values == [i * i * 2 for i in range(8)]
    assert run["join_sides"].task.data.sides == ["left", "right"]
    assert run["join_sides"].task.data.right_attempt == 1
    assert run.data.total == sum(i * i * 2 for i in range(8))

    # The emulator saw the foreach as one array job of 8, and the retried step twice.
    jobs = _jobs_of_run(deployed, run_id)
    arrays = [j for j in jobs if "arrayProperties" in j and j["arrayProperties"].get("size")]
    assert [(j["jobName"], j["arrayProperties"]["size"]) for j in arrays] == [
        ("ProductionFlow-square", 8)
    ]
    right = [j for j in jobs if j["jobName"] == "ProductionFlow-right"]
    assert sorted(j["status"] for j in right) == ["FAILED", "SUCCEEDED"]
    events = _history(deployed, execution["executionArn"])
    failed_tasks = [e for e in events if e["type"] == "TaskFailed"]
    assert len(failed_tasks) == 1  # the first attempt of 'right'; its retry passed

    listed = deployed.run(str(PRODUCTION_FLOW), "step-functions", "list-runs", "--name", machine)
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stdout + listed.stderr


def test_a_failing_step_fails_the_execution_with_the_steps_name(deployed: Deployed) -> None:
    machine = f"Failing-{uuid.uuid4().hex[:6]}"
    created = deployed.run(str(FAILING_FLOW), "step-functions", "create", "--name", machine)
    assert created.returncode == 0, created.stdout + created.stderr
    triggered = deployed.run(str(FAILING_FLOW), "step-functions", "trigger", "--name", machine)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run_id = _run_id(triggered.stdout + triggered.stderr)

    execution = _execution(deployed, machine, run_id)
    assert execution["status"] == "FAILED"
    assert "explode" in execution.get("error", "") + execution.get("cause", "")
    root = deployed.descriptor().datastore_root
    run = Flow("FailingFlow", datastore_root=root, _namespace_check=False)[run_id]
    assert not run.successful
    assert run["explode"].task.exception is not None


def test_the_sample_cdk_app_deploys_its_flow_and_a_trigger_runs_it(
    deployed: Deployed, tmp_path: Path
) -> None:
    """sample_app/production_app.py: an environment and a FlowStateMachine in one stack,
    synthesized with the local AWS's variables (so its jobs reach the emulator, as a
    `run` from this shell would), brought up by `batchwright localaws deploy`, and
    triggered with no --name: the environment's descriptor says where the flow went."""
    cdk_out, outputs = tmp_path / "cdk.out", tmp_path / "cdk-outputs.json"
    env = {**deployed.env, "CDK_OUTDIR": str(cdk_out), "BATCHWRIGHT_USER": "platform"}
    synth = subprocess.run(
        [sys.executable, "sample_app/production_app.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert synth.returncode == 0, synth.stdout + synth.stderr
    batchwright = [sys.executable, "-m", "batchwright"]
    up = subprocess.run(
        [
            *batchwright,
            "localaws",
            "deploy",
            "--cdk-out",
            str(cdk_out),
            "--stack",
            STACK,
            "--outputs-file",
            str(outputs),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert "file assets published" in up.stdout + up.stderr  # the code package among them
    try:
        stack_outputs = json.loads(outputs.read_text())[STACK]
        machine_arn = stack_outputs["BatchwrightFlowDailyReportFlowStateMachineArn"]
        descriptor = EnvironmentDescriptor.from_json(stack_outputs[DESCRIPTOR_OUTPUT_KEY])
        assert descriptor.flows == {"DailyReportFlow": machine_arn}

        flow_env = {
            **env,
            "BATCHWRIGHT_ENVIRONMENT": STACK,
            "BATCHWRIGHT_OUTPUTS_FILE": str(outputs),
        }
        triggered = subprocess.run(
            [sys.executable, str(SAMPLE_FLOW), "step-functions", "trigger", "--scale", "2"],
            cwd=tmp_path,
            env=flow_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run_id = _run_id(triggered.stdout + triggered.stderr)
        sfn = deployed.local.client("stepfunctions")
        execution_arn = machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
        deadline = time.monotonic() + 900
        while (described := sfn.describe_execution(executionArn=execution_arn))["status"] not in (
            TERMINAL
        ) and time.monotonic() < deadline:
            time.sleep(2)
        assert described["status"] == "SUCCEEDED", described

        # The runs belong to whoever synthesized the app (the construct's user).
        namespace("user:platform")
        try:
            run = Flow("DailyReportFlow", datastore_root=descriptor.datastore_root)[run_id]
            assert run.successful and "sample:production" in run.user_tags
            assert run["report"].task.data.totals == {"emea": 60, "amer": 120, "apac": 180}
        finally:
            default_namespace()
    finally:
        subprocess.run(
            [*batchwright, "localaws", "destroy", STACK],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
