"""A parallel step on the local AWS: the sample distributed-training flow's three nodes
run as one multi-node job on the EFA queue, one container per node, meet over TCP at
``current.parallel.main_ip`` and all-reduce a sum; the join sees one input per node."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.e2e.conftest import REPO, Deployed

from batchwright.client import Flow

pytestmark = pytest.mark.localaws

SAMPLE = str(REPO / "sample_app" / "flows" / "distributed_training_flow.py")


def _train_jobs(deployed: Deployed, run_id: str, step: str = "train") -> list[dict[str, Any]]:
    batch = deployed.local.client("batch")
    ids = [j["jobId"] for j in deployed.jobs()]
    found = []
    for start in range(0, len(ids), 100):
        for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            tags = job.get("tags") or {}
            if tags.get("batchwright:run") == run_id and tags.get("batchwright:step") == step:
                found.append(job)
    return found


def test_three_nodes_meet_over_tcp_as_one_multi_node_job_on_the_efa_queue(
    deployed: Deployed,
) -> None:
    done = deployed.run(SAMPLE, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"Run \w+/(\d+) started", done.stdout)
    assert match, done.stdout
    run_id = match.group(1)
    run = Flow("DistributedTrainingFlow", datastore_root=deployed.descriptor().datastore_root)[
        run_id
    ]
    join = run["join"].task.data
    assert join.ranks == [0, 1, 2]
    assert join.totals == [465, 465, 465]
    # Each node's output came back from its own log stream, labelled with its node.
    for node in range(3):
        assert re.search(
            rf"node {node}\] node {node} of 3: local sum \d+, all-reduced total 465", done.stdout
        ), done.stdout
    # The emulator ran one multi-node job of three nodes on the EFA queue, each node with
    # the EFA device in its container properties.
    jobs = _train_jobs(deployed, run_id)
    assert len(jobs) == 1, jobs
    job = jobs[0]
    efa = next(q for q in deployed.descriptor().queues if q.key == "efa")
    assert job["jobQueue"] == efa.arn and efa.multi_node
    assert job["nodeProperties"]["numNodes"] == 3
    container = job["nodeProperties"]["nodeRangeProperties"][0]["container"]
    devices = [d["containerPath"] for d in container["linuxParameters"]["devices"]]
    assert devices == ["/dev/infiniband/uverbs0"]
    nodes = deployed.local.client("batch").describe_jobs(
        jobs=[f"{job['jobId']}#{i}" for i in range(3)]
    )["jobs"]
    assert sorted(n["nodeDetails"]["nodeIndex"] for n in nodes) == [0, 1, 2]


def test_a_failed_node_reruns_the_whole_multi_node_job_or_fails_the_run_with_its_error(
    deployed: Deployed,
) -> None:
    done = deployed.run("broken_node_flow.py", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = re.search(r"Run \w+/(\d+) started", done.stdout).group(1)  # type: ignore[union-attr]
    root = deployed.descriptor().datastore_root
    join = Flow("BrokenNodeFlow", datastore_root=root)[run_id]["join"].task.data
    # Both nodes ran again, in one new multi-node job: node 0 had nothing wrong with it.
    assert join.ranks == [0, 1] and join.attempts == [1, 1]
    parents = {job_id.rsplit("#", 1)[0] for job_id in join.job_ids}
    assert len(parents) == 1
    assert sorted(job_id.rsplit("#", 1)[1] for job_id in join.job_ids) == ["0", "1"]
    jobs = _train_jobs(deployed, run_id, step="work")
    assert sorted(j["tags"]["batchwright:attempt"] for j in jobs) == ["0", "1"]
    assert all(j["nodeProperties"]["numNodes"] == 2 for j in jobs)
    assert "node 1: " in done.stderr + done.stdout

    failed = deployed.run("broken_node_flow.py", "run", "--always", "true")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    output = failed.stdout + failed.stderr
    assert "node 1: " in output and "node 1 breaks on attempt 1" in output
    assert "BrokenNodeFlow" in output and "/work/" in output
