"""Routing of parallel steps and of EFA asked with GPUs or Neuron devices: multi-node
queues only, one instance per node within max vCPUs, EFA only where the compute
environments attach EFA interfaces."""

from __future__ import annotations

from typing import Any

from batchwright.batch.options import BatchOptions
from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.environment.routing import route


def _queue(
    key: str,
    types: tuple[str, ...],
    *,
    platform: str = "EC2",
    accelerator: str = "none",
    efa: bool = False,
    max_vcpus: int = 256,
    multi_node: bool = True,
) -> QueueDescription:
    ce = ComputeEnvironmentDescription(
        arn=f"arn:aws:batch:us-east-1:123456789012:compute-environment/{key}",
        platform=platform,  # type: ignore[arg-type]
        order=1,
        max_vcpus=max_vcpus,
        instance_types=types,
        accelerator=accelerator,  # type: ignore[arg-type]
        efa=efa,
    )
    return QueueDescription(
        key=key,
        name=f"q-{key}",
        arn=f"arn:aws:batch:us-east-1:123456789012:job-queue/{key}",
        platform=platform,  # type: ignore[arg-type]
        compute_environments=(ce,),
        accelerator=accelerator,  # type: ignore[arg-type]
        multi_node=multi_node,
    )


def _env(*queues: QueueDescription) -> EnvironmentDescriptor:
    return EnvironmentDescriptor(
        name="Test",
        region="us-east-1",
        bucket="b",
        prefix="p",
        job_role_arn="arn:job",
        execution_role_arn="arn:exec",
        log_group="lg",
        default_image="img",
        queues=queues,
    )


def _options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


NEURON = _queue("neuron", ("trn1.32xlarge",), accelerator="neuron")
TRAINIUM_EFA = _queue("trainium-efa", ("trn1.32xlarge",), accelerator="neuron", efa=True)
GPU = _queue("gpu", ("p4d.24xlarge",), accelerator="gpu")
GPU_EFA = _queue("gpu-efa", ("p4d.24xlarge",), accelerator="gpu", efa=True, max_vcpus=192)
SPOT = _queue("spot", ("c5.xlarge",), platform="SPOT", multi_node=False)
CPU = _queue("cpu", ("c5.xlarge", "c5.4xlarge"), max_vcpus=32)


def test_efa_with_trainium_needs_a_queue_whose_instances_have_efa_interfaces() -> None:
    # The hole: trn1.32xlarge can hold 8 EFA interfaces, but this queue attaches none.
    refused = route(_options(trainium=16, efa=8), _env(NEURON))
    assert not refused.ok
    assert "queue 'neuron' has no EFA interfaces on its instances" in refused.verdict
    chosen = route(_options(trainium=16, efa=8), _env(NEURON, TRAINIUM_EFA))
    assert chosen.ok and chosen.queue is not None and chosen.queue.key == "trainium-efa"
    # Without EFA the plain Neuron queue still serves (it is the smallest fit either way).
    plain = route(_options(trainium=16), _env(NEURON, TRAINIUM_EFA))
    assert plain.ok and plain.queue is not None


def test_gpus_with_efa_go_to_a_gpu_queue_with_efa_interfaces() -> None:
    chosen = route(_options(gpu=8, efa=4, memory=60000), _env(GPU, GPU_EFA))
    assert chosen.ok, chosen.verdict
    assert chosen.queue is not None and chosen.queue.key == "gpu-efa"
    too_many = route(_options(gpu=8, efa=5, memory=60000), _env(GPU_EFA))
    assert not too_many.ok and "4 EFA interfaces" in too_many.verdict


def test_a_parallel_step_takes_one_instance_per_node_within_max_vcpus() -> None:
    chosen = route(_options(gpu=8, efa=4, memory=60000), _env(GPU_EFA), nodes=2)
    assert chosen.ok and "2 node(s) x p4d.24xlarge" in chosen.reason
    refused = route(_options(gpu=8, efa=4, memory=60000), _env(GPU_EFA), nodes=3)
    assert not refused.ok
    assert "3 nodes of p4d.24xlarge need 288 vCPUs, and its max vCPUs of 192 hold 2" in (
        refused.verdict
    )
    # A request a smaller type holds: the nodes are sized on the smallest that fits.
    small = route(_options(cpu=2, memory=4000), _env(CPU), nodes=8)
    assert small.ok and small.instance_types[0] == "c5.xlarge"
    assert not route(_options(cpu=2, memory=4000), _env(CPU), nodes=9).ok


def test_a_parallel_step_goes_only_to_queues_that_run_multi_node_jobs() -> None:
    chosen = route(_options(cpu=2, memory=4000), _env(SPOT, CPU), nodes=2, has_retry=True)
    # @retry prefers Spot for ordinary steps; a parallel step cannot go there.
    assert chosen.ok and chosen.queue is not None and chosen.queue.key == "cpu"
    refused = route(_options(cpu=2, memory=4000), _env(SPOT), nodes=2)
    assert not refused.ok
    assert "none of the queues that fit its request (spot) can run one" in refused.verdict
    named = route(_options(cpu=2, memory=4000, queue="spot"), _env(SPOT, CPU), nodes=2)
    assert not named.ok
    assert "queue 'spot' is a Spot queue" in named.verdict
    assert "Queues that could take it: cpu" in named.verdict
    # The same step without num_parallel is welcome on Spot.
    assert route(_options(cpu=2, memory=4000, queue="spot"), _env(SPOT, CPU)).ok
