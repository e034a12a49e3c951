"""The sample environment, read from cdk.out as the runtime reads it, says which compute
environments have EFA and which queues can run multi-node parallel jobs (contract 1)."""

from __future__ import annotations

import json
from pathlib import Path

from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.environment.sources import from_outputs_file

from .conftest import STACK, deployed, write_outputs_file


def test_the_static_read_carries_efa_and_multi_node(sample_env: EnvironmentDescriptor) -> None:
    efa = {q.key: [ce.efa for ce in q.compute_environments] for q in sample_env.queues}
    assert efa["efa"] == [True]
    assert all(not any(flags) for key, flags in efa.items() if key != "efa")
    # Private compute subnets: every all-on-demand EC2 queue can; Spot and Fargate cannot.
    multi_node = {q.key for q in sample_env.queues if q.multi_node}
    assert multi_node == {"cpu", "small", "gpu", "neuron", "efa"}


def test_a_deployed_document_keeps_them(tmp_path: Path, sample_env: EnvironmentDescriptor) -> None:
    env = deployed(sample_env)
    path = write_outputs_file(tmp_path / "outputs.json", env)
    read = from_outputs_file(path, STACK)
    assert read == env
    document = json.loads(env.to_json())
    assert {ce["efa"] for q in document["queues"] for ce in q["compute_environments"]} == {
        True,
        False,
    }
