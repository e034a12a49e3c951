"""Run timings, the report and job-definition cleanup on the local AWS: the attempts ran
as real containers on the emulated Batch of the deployed sample environment."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.e2e.conftest import Deployed

from batchwright.batch.definition import CONTENT_HASH_TAG, LAST_USED_TAG
from batchwright.client import Flow
from batchwright.environment.instances import expand
from batchwright.report import price_attempts

pytestmark = pytest.mark.localaws


def _run_id(output: str) -> str:
    match = re.search(r"Run \w+/(\d+) started", output)
    assert match, output
    return match.group(1)


def test_a_batch_runs_attempts_are_timed_priced_and_reported(
    deployed: Deployed, tmp_path: Path
) -> None:
    done = deployed.run("retry_flow.py", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = _run_id(done.stdout)
    env = deployed.descriptor()
    run = Flow("RetryFlow", datastore_root=env.datastore_root)[run_id]
    flaky = run["flaky"].task.timings
    # The failed first attempt and the retry that succeeded are two records.
    assert [(t.attempt, t.state) for t in flaky] == [(0, "failed"), (1, "succeeded")]
    assert flaky[0].failure == "user-error" and flaky[0].exit_code == 1
    # Each is its own Batch job.
    assert flaky[0].job_id and flaky[1].job_id and flaky[0].job_id != flaky[1].job_id
    spot_queues = {q.key for q in env.queues if q.is_spot and not q.is_fargate}
    for attempt in flaky:
        assert attempt.backend == "batch" and attempt.platform == "SPOT"
        assert attempt.queue in spot_queues
        # The emulator reported when the container started and stopped.
        assert attempt.started_at is not None
        assert attempt.submitted_at <= attempt.started_at <= attempt.stopped_at
        # It does not report the instance: the plan's smallest fitting type stands in,
        # labelled as such.
        assert attempt.instance_type_source == "plan"
        queue = env.queue(attempt.queue or "")
        assert queue is not None
        offered = expand(t for ce in queue.compute_environments for t in ce.instance_types)
        assert attempt.instance_type in offered
        assert (attempt.vcpus, attempt.memory_mib) == (1.0, 4096)
    # The local steps are there too, without a price.
    assert {t.step: t.backend for t in run.timeline()} == {
        "start": "local",
        "flaky": "batch",
        "end": "local",
    }
    # Spot attempts are priced as estimates and labelled so.
    priced = [p for p in price_attempts(run.timeline()) if p.timing.step == "flaky"]
    assert all(p.estimate is not None and p.estimate.spot for p in priced)
    page = tmp_path / "report.html"
    report = subprocess.run(
        [sys.executable, "-m", "batchwright", "report", f"RetryFlow/{run_id}", "-o", str(page)],
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    text = page.read_text()
    steps = text.split('id="steps"', 1)[1]
    assert "<td>flaky</td>" in steps and "Spot est." in steps
    # The run stamped today's date on the definition it used.
    definitions = subprocess.run(
        [sys.executable, "-m", "batchwright", "jobdefs", "list"],
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert definitions.returncode == 0, definitions.stderr
    today = datetime.now(UTC).date().isoformat()
    assert re.search(rf"batchwright-[0-9a-f]{{32}}:\d+\s+{today}", definitions.stdout)


def _register(batch: object, name: str, tags: dict[str, str]) -> str:
    answer = batch.register_job_definition(  # type: ignore[attr-defined]
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
        tags=tags,
    )
    return str(answer["jobDefinitionArn"])


def test_jobdefs_prune_removes_only_unused_batchwright_definitions(deployed: Deployed) -> None:
    batch = deployed.local.client("batch")
    old, recent, impostor = (uuid.uuid4().hex for _ in range(3))
    today = datetime.now(UTC).date().isoformat()
    arns = {
        "old": _register(
            batch, f"batchwright-{old}", {CONTENT_HASH_TAG: old, LAST_USED_TAG: "2020-01-31"}
        ),
        "recent": _register(
            batch, f"batchwright-{recent}", {CONTENT_HASH_TAG: recent, LAST_USED_TAG: today}
        ),
        # Named like ours, but its tag does not say it is: someone else's.
        "impostor": _register(
            batch, f"batchwright-{impostor}", {CONTENT_HASH_TAG: "x", LAST_USED_TAG: "2020-01-31"}
        ),
        "foreign": _register(batch, f"team-training-{old[:8]}", {}),
    }

    def active() -> set[str]:
        found = set()
        for page in batch.get_paginator("describe_job_definitions").paginate(status="ACTIVE"):
            found.update(d["jobDefinitionArn"] for d in page["jobDefinitions"])
        return {key for key, arn in arns.items() if arn in found}

    command = [sys.executable, "-m", "batchwright", "jobdefs", "prune"]
    dry = subprocess.run(command, env=deployed.env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert re.search(rf"batchwright-{old}:1\s+2020-01-31\s+prune: last used 2020-01-31", dry.stdout)
    assert f"batchwright-{impostor}" not in dry.stdout and "team-training" not in dry.stdout
    assert "dry run:" in dry.stdout
    assert active() == set(arns)  # nothing deregistered without --yes

    pruned = subprocess.run(
        [*command, "--older-than", "30d", "--yes"],
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0, pruned.stderr
    assert active() == {"recent", "impostor", "foreign"}

    refused = subprocess.run(
        [*command, "--older-than", "soon"], env=deployed.env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "--older-than" in refused.stderr and "30d" in refused.stderr
    assert "Traceback" not in refused.stderr
