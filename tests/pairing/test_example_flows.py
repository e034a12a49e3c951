"""The @batch example flows of sample_app/flows plan as their docstrings promise, on the
sample environment (read from cdk.out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pairing.conftest import decorators_of

from batchwright.environment.descriptor import EnvironmentDescriptor
from batchwright.plan import make_plan

FLOWS = Path(__file__).resolve().parents[2] / "sample_app" / "flows"


@pytest.mark.parametrize(
    ("flow", "step", "queue"),
    [
        ("gpu_training_flow.py", "train", "gpu"),
        ("inferentia_flow.py", "infer", "neuron"),
        ("custom_image_flow.py", "crunch", "cpu"),
        ("tagged_flow.py", "aggregate", "cpu"),
    ],
)
def test_example_routes(
    sample_env: EnvironmentDescriptor, flow: str, step: str, queue: str
) -> None:
    name, decorators = decorators_of(FLOWS / flow)
    plan = make_plan(name, decorators, sample_env)
    assert plan.ok, plan.refusals
    assert plan.step(step).queue_key == queue


def test_gpu_training_gets_shared_memory_and_a_gpu(sample_env: EnvironmentDescriptor) -> None:
    name, decorators = decorators_of(FLOWS / "gpu_training_flow.py")
    train = make_plan(name, decorators, sample_env).step("train")
    definition = train.job_definition.body  # type: ignore[union-attr]
    assert definition["containerProperties"]["linuxParameters"]["sharedMemorySize"] == 8192
    assert train.options is not None and train.options.gpu == 1


def test_inferentia_maps_the_neuron_device(sample_env: EnvironmentDescriptor) -> None:
    name, decorators = decorators_of(FLOWS / "inferentia_flow.py")
    infer = make_plan(name, decorators, sample_env).step("infer")
    devices = infer.job_definition.body["containerProperties"]["linuxParameters"]["devices"]  # type: ignore[union-attr]
    assert [d["hostPath"] for d in devices] == ["/dev/neuron0"]


def test_custom_image_reaches_the_job_definition(sample_env: EnvironmentDescriptor) -> None:
    name, decorators = decorators_of(FLOWS / "custom_image_flow.py")
    crunch = make_plan(name, decorators, sample_env).step("crunch")
    image = crunch.job_definition.body["containerProperties"]["image"]  # type: ignore[union-attr]
    assert image == "public.ecr.aws/docker/library/python:3.12-slim"


def test_runtime_override_changes_only_the_keys_given(sample_env: EnvironmentDescriptor) -> None:
    name, decorators = decorators_of(FLOWS / "gpu_training_flow.py", ("batch:gpu=4,memory=180000",))
    train = make_plan(name, decorators, sample_env).step("train")
    assert train.options is not None
    assert (train.options.gpu, train.options.memory) == (4, 180000)
    assert (train.options.cpu, train.options.shared_memory) == (4, 8192)  # from the code
    assert train.queue_key == "gpu"
    assert "g5.12xlarge" in train.instance_types
