"""The local AWS has compute capacity: at most N job containers run at once, the rest
wait in RUNNABLE, as on Batch when a compute environment is full."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from tests.localaws.test_smoke import _queue

from batchwright_localaws import LocalAws
from batchwright_localaws.motoserver import SLOTS_VARIABLE, default_slots

pytestmark = pytest.mark.localaws

SECONDS = 4


def _children(batch: Any, parent: str, size: int) -> list[dict[str, Any]]:
    ids = [f"{parent}:{i}" for i in range(size)]
    return [job for start in range(0, size, 100) for job in batch.describe_jobs(
        jobs=ids[start : start + 100])["jobs"]]  # fmt: skip


def test_jobs_beyond_the_slots_wait_in_runnable_and_start_as_others_end(
    local_aws: LocalAws,
) -> None:
    slots = int(os.environ.get(SLOTS_VARIABLE) or default_slots())
    size = slots + 3
    name = f"capacity-{uuid.uuid4().hex[:8]}"
    batch = local_aws.client("batch")
    queue = _queue(local_aws, name)
    definition = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": local_aws.image,
            "command": ["python3", "-c", f"import time; time.sleep({SECONDS})"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )["jobDefinitionArn"]
    parent = batch.submit_job(
        jobName=name, jobQueue=queue, jobDefinition=definition, arrayProperties={"size": size}
    )["jobId"]

    most_running = 0
    seen_waiting_while_full = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        children = _children(batch, parent, size)
        states = [child["status"] for child in children]
        running = states.count("RUNNING")
        most_running = max(most_running, running)
        seen_waiting_while_full |= running == slots and "RUNNABLE" in states
        if all(state in ("SUCCEEDED", "FAILED") for state in states):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the children did not end: {states}")

    assert states == ["SUCCEEDED"] * size, [c.get("statusReason") for c in children]
    assert most_running <= slots
    assert seen_waiting_while_full
    # A child that waited started when it got a slot, after the first ones had ended.
    started = sorted(child["startedAt"] for child in children)
    stopped = sorted(child["stoppedAt"] for child in children)
    assert started[-1] >= stopped[0]
