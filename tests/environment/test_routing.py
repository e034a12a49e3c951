"""Routing and the pre-flight fit check, on a hand-written environment descriptor."""

from __future__ import annotations

from typing import Any

import pytest

from batchwright.batch.options import BatchOptions
from batchwright.environment.descriptor import (
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
)
from batchwright.environment.instances import lookup
from batchwright.environment.routing import fit, route


def _queue(
    key: str,
    platform: str,
    types: tuple[str, ...],
    accelerator: str = "none",
    max_vcpus: int = 256,
    extra: tuple[str, ...] = (),
) -> QueueDescription:
    ces = [
        ComputeEnvironmentDescription(
            arn=f"arn:aws:batch:us-east-1:123456789012:compute-environment/{key}",
            platform=platform,  # type: ignore[arg-type]
            order=1,
            max_vcpus=max_vcpus,
            instance_types=types,
            accelerator=accelerator,  # type: ignore[arg-type]
        )
    ]
    if extra:
        ces.append(
            ComputeEnvironmentDescription(
                arn=f"arn:aws:batch:us-east-1:123456789012:compute-environment/{key}-2",
                platform="EC2",
                order=2,
                max_vcpus=max_vcpus,
                instance_types=extra,
            )
        )
    return QueueDescription(
        key=key,
        name=f"q-{key}",
        arn=f"arn:aws:batch:us-east-1:123456789012:job-queue/{key}",
        platform=platform,  # type: ignore[arg-type]
        compute_environments=tuple(ces),
        accelerator=accelerator,  # type: ignore[arg-type]
    )


ENV = EnvironmentDescriptor(
    name="Test",
    region="us-east-1",
    bucket="b",
    prefix="p",
    job_role_arn="arn:job",
    execution_role_arn="arn:exec",
    log_group="lg",
    default_image="img",
    queues=(
        _queue("small", "EC2", ("c5.xlarge",)),
        _queue("cpu", "EC2", ("c5.large", "c5.xlarge", "c5.2xlarge", "m5.4xlarge")),
        _queue("spot", "SPOT", ("c5.large", "c5.xlarge", "c5.2xlarge", "m5.4xlarge")),
        _queue("fallback", "SPOT", ("m5.4xlarge",), extra=("m5.4xlarge",)),
        _queue("fargate", "FARGATE", ()),
        _queue("gpu", "EC2", ("g5.xlarge", "g5.12xlarge"), accelerator="gpu"),
        _queue("neuron", "EC2", ("inf2.xlarge", "inf2.24xlarge"), accelerator="neuron"),
        _queue("efa", "EC2", ("c6in.32xlarge",), accelerator="efa"),
    ),
)


def _options(**attributes: Any) -> BatchOptions:
    return BatchOptions.from_attributes("train", attributes)


def test_plain_step_goes_to_the_smallest_on_demand_instance() -> None:
    chosen = route(_options(cpu=2, memory=3000), ENV)
    assert chosen.ok
    assert chosen.queue is not None and chosen.queue.key == "cpu"
    assert chosen.instance_types[0] == "c5.large"
    assert "c5.large" in chosen.reason


def test_retry_prefers_spot() -> None:
    chosen = route(_options(cpu=2, memory=3000), ENV, has_retry=True)
    assert chosen.queue is not None and chosen.queue.key == "spot"
    assert "Spot" in chosen.reason


def test_ephemeral_storage_implies_fargate_and_rounds_to_a_valid_size() -> None:
    chosen = route(_options(cpu=1, memory=3000, ephemeral_storage=50), ENV)
    assert chosen.queue is not None and chosen.queue.key == "fargate"
    assert chosen.instance_types == ("fargate:1vcpu-3072mib",)


@pytest.mark.parametrize(
    ("attributes", "queue"),
    [
        ({"gpu": 1}, "gpu"),
        ({"inferentia": 1}, "neuron"),
        ({"trainium": 2}, "neuron"),
        ({"efa": 1, "cpu": 8, "memory": 16000}, "efa"),
    ],
)
def test_accelerators_go_only_to_their_queues(attributes: dict[str, Any], queue: str) -> None:
    chosen = route(_options(**attributes), ENV)
    assert chosen.ok, chosen.verdict
    assert chosen.queue is not None and chosen.queue.key == queue


def test_memory_is_checked_after_the_ecs_reserve() -> None:
    c5 = lookup("c5.xlarge")
    assert c5 is not None and c5.memory_mib == 8192
    assert c5.job_memory_mib < 8192
    refused = route(_options(memory=8192, queue="small"), ENV)
    assert not refused.ok
    assert "queue='small' can never run it (1 vCPU / 8192 MiB)" in refused.verdict
    assert "c5.xlarge" in refused.verdict
    # The queues that could take it are named.
    assert "cpu" in refused.verdict and "spot" in refused.verdict
    accepted = route(_options(memory=c5.job_memory_mib, queue="small"), ENV)
    assert accepted.ok


def test_gpu_count_no_instance_has_is_refused_with_the_largest_that_fits() -> None:
    refused = route(_options(gpu=16), ENV)
    assert not refused.ok
    assert "16 GPU" in refused.verdict
    assert "g5.12xlarge" in refused.verdict  # the largest GPU instance of the queue


def test_neuron_without_neuron_queue_is_refused() -> None:
    env = EnvironmentDescriptor(**{**ENV.__dict__, "queues": ENV.queues[:2]})
    refused = route(_options(inferentia=1), env)
    assert not refused.ok
    assert "needs a neuron queue" in refused.verdict


def test_efa_on_a_spot_queue_is_refused() -> None:
    refused = route(_options(efa=1, queue="spot"), ENV)
    assert not refused.ok
    assert "Spot queue, and EFA jobs run on on-demand EC2 only" in refused.verdict


def test_fargate_pair_beyond_the_largest_is_refused() -> None:
    result = fit(_options(cpu=16, memory=200_000), ENV.queue("fargate"), ENV)  # type: ignore[arg-type]
    assert not result.fits
    assert "122880" in result.problem


def test_queue_outside_the_environment_is_taken_as_given() -> None:
    chosen = route(_options(queue="arn:aws:batch:us-east-1:1:job-queue/other"), ENV)
    assert chosen.ok
    assert chosen.queue is None and chosen.queue_id.endswith("/other")  # type: ignore[union-attr]


def test_max_vcpus_bounds_the_fit() -> None:
    env = EnvironmentDescriptor(
        **{**ENV.__dict__, "queues": (_queue("tiny", "EC2", ("m5.4xlarge",), max_vcpus=4),)}
    )
    assert not route(_options(cpu=8, memory=1000), env).ok
    assert route(_options(cpu=4, memory=1000), env).ok
