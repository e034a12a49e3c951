"""Every validation error: constructor-time ones without synthesis, lazy ones with one."""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2

from batchwright.errors import BatchwrightError
from batchwright_cdk import (
    BatchEnvironment,
    ComputeEnvironmentSpec,
    EnvironmentConfigError,
    QueueSpec,
)

pytestmark = pytest.mark.cdk

SPOT = ComputeEnvironmentSpec(platform="SPOT")
EC2 = ComputeEnvironmentSpec(platform="EC2")
FARGATE = ComputeEnvironmentSpec(platform="FARGATE")


@pytest.mark.parametrize(
    ("build", "prop", "value_text"),
    [
        pytest.param(
            lambda: QueueSpec(key="big", compute_environments=(EC2, SPOT, EC2, SPOT)),
            "compute_environments",
            "4 environments",
            id="more-than-three-compute-environments",
        ),
        pytest.param(
            lambda: QueueSpec(key="mixed", compute_environments=(EC2, FARGATE)),
            "compute_environments",
            "'FARGATE'",
            id="ec2-and-fargate-mixed",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="EC2", min_vcpus=64, max_vcpus=16),
            "min_vcpus",
            "64",
            id="min-above-max",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="EC2", max_vcpus=0),
            "max_vcpus",
            "0",
            id="max-not-positive",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(
                platform="SPOT", accelerator="efa", instance_types=("c5n.18xlarge",)
            ),
            "platform",
            "'SPOT'",
            id="efa-on-spot",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="FARGATE", instance_types=("c5.large",)),
            "instance_types",
            "c5.large",
            id="fargate-with-instance-types",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="FARGATE", accelerator="gpu"),
            "accelerator",
            "'gpu'",
            id="fargate-with-gpu",
        ),
        pytest.param(
            lambda: QueueSpec(key="has space", compute_environments=(EC2,)),
            "key",
            "'has space'",
            id="bad-queue-key",
        ),
        pytest.param(
            lambda: QueueSpec(
                key="efa-mix",
                compute_environments=(
                    ComputeEnvironmentSpec(
                        platform="EC2", accelerator="efa", instance_types=("c5n.18xlarge",)
                    ),
                    EC2,
                ),
            ),
            "compute_environments",
            "'efa'",
            id="efa-mixed-with-plain",
        ),
        pytest.param(
            lambda: QueueSpec(
                key="accel",
                compute_environments=(
                    ComputeEnvironmentSpec(
                        platform="EC2", accelerator="gpu", instance_types=("g5",)
                    ),
                    ComputeEnvironmentSpec(
                        platform="EC2", accelerator="neuron", instance_types=("inf2",)
                    ),
                ),
            ),
            "compute_environments",
            "'neuron'",
            id="gpu-and-neuron-mixed",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="EC2", root_volume_gib=8),
            "root_volume_gib",
            "8",
            id="root-volume-below-the-ami",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="FARGATE", root_volume_gib=50),
            "root_volume_gib",
            "50",
            id="fargate-with-root-volume",
        ),
        pytest.param(
            lambda: QueueSpec.fargate("f").with_runnable_timeout(30),
            "runnable_timeout_seconds",
            "30",
            id="runnable-timeout-too-short",
        ),
    ],
)
def test_spec_errors_name_prop_value_and_fix(
    build: Callable[[], object], prop: str, value_text: str
) -> None:
    with pytest.raises(EnvironmentConfigError) as caught:
        build()
    message = str(caught.value)
    assert f"{prop}=" in message and value_text in message
    assert isinstance(caught.value, BatchwrightError)
    assert caught.value.fix, "every error says what to do"


@pytest.fixture
def stack() -> cdk.Stack:
    """A fresh stack with a bring-your-own VPC (cheaper to build than a created one)."""
    stack = cdk.Stack(cdk.App(), "Validation", env=cdk.Environment(region="us-east-1"))
    return stack


def _vpc(stack: cdk.Stack, private: bool = True) -> ec2.IVpc:
    subnets = [ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)]
    if private:
        subnets.append(
            ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        )
    return ec2.Vpc(stack, "Vpc", max_azs=2, subnet_configuration=subnets)


@pytest.mark.parametrize(
    ("queue", "needle"),
    [
        pytest.param(
            QueueSpec.gpu("gpu", instance_types=["c5.xlarge"]),
            "has no GPU instance type",
            id="gpu-without-gpu-types",
        ),
        pytest.param(
            QueueSpec.neuron("neuron", instance_types=["c5"]),
            "has no Inferentia/Trainium instance type",
            id="neuron-without-neuron-types",
        ),
        pytest.param(
            QueueSpec.neuron("neuron", instance_types=["inf2.xlarge", "g5.xlarge"]),
            "GPU types",
            id="neuron-with-gpu-types",
        ),
        pytest.param(
            QueueSpec.efa("efa", instance_types=["c5n.18xlarge", "c5.xlarge"]),
            "do not support EFA",
            id="efa-with-non-efa-type",
        ),
        pytest.param(
            QueueSpec.on_demand("mixed-arch", instance_types=["c5", "c6g"]),
            "mixes CPU architectures",
            id="mixed-architectures",
        ),
        pytest.param(
            QueueSpec.on_demand("unknown", instance_types=["x9q.large"]),
            "instance_types='x9q.large' is not in batchwright's instance table",
            id="unknown-size-without-declared-capacity",
        ),
        pytest.param(
            QueueSpec.on_demand("unknown-class", instance_types=["x9q"]),
            "instance class batchwright's instance table does not know",
            id="unknown-class",
        ),
    ],
)
def test_environment_refuses_queues_its_types_cannot_serve(
    stack: cdk.Stack, queue: QueueSpec, needle: str
) -> None:
    with pytest.raises(EnvironmentConfigError) as caught:
        BatchEnvironment(stack, "Env", vpc=_vpc(stack), queues=[queue])
    assert needle in str(caught.value)
    assert f"QueueSpec {queue.key!r}" in str(caught.value)


def test_descriptor_that_would_not_fit_an_ssm_parameter_is_refused(stack: cdk.Stack) -> None:
    wide = ComputeEnvironmentSpec(platform="EC2", instance_types=("default_x86_64",))
    queues = [QueueSpec(key=f"wide{i}", compute_environments=(wide, wide, wide)) for i in range(4)]
    with pytest.raises(EnvironmentConfigError) as caught:
        BatchEnvironment(stack, "Env", vpc=_vpc(stack), queues=queues)
    message = str(caught.value)
    assert "larger than an SSM parameter holds (8192 bytes)" in message
    assert "QueueSpec 'wide" in message


def test_duplicate_queue_keys_are_refused(stack: cdk.Stack) -> None:
    env = BatchEnvironment(stack, "Env", vpc=_vpc(stack), queues=[QueueSpec.fargate("q")])
    with pytest.raises(EnvironmentConfigError, match="key='q' is used by another queue"):
        env.add_queue(QueueSpec.on_demand("q"))


def test_queue_keys_cannot_shadow_the_environments_resources(stack: cdk.Stack) -> None:
    env = BatchEnvironment(stack, "Env", vpc=_vpc(stack), queues=[QueueSpec.fargate("q")])
    with pytest.raises(EnvironmentConfigError, match="key='JobRole' is the construct id"):
        env.add_queue(QueueSpec.fargate("JobRole"))


def test_efa_needs_private_subnets_in_a_brought_vpc(stack: cdk.Stack) -> None:
    with pytest.raises(EnvironmentConfigError, match="EFA ones need a private or isolated"):
        BatchEnvironment(
            stack, "Env", vpc=_vpc(stack, private=False), queues=[QueueSpec.efa("efa")]
        )


def test_one_environment_per_stack(stack: cdk.Stack) -> None:
    vpc = _vpc(stack)
    BatchEnvironment(stack, "First", vpc=vpc, queues=[QueueSpec.fargate("f")])
    with pytest.raises(EnvironmentConfigError, match="already holds a BatchEnvironment"):
        BatchEnvironment(stack, "Second", vpc=vpc, queues=[QueueSpec.fargate("f")])


def test_lazy_checks_fail_synthesis_when_no_queue_was_ever_added(stack: cdk.Stack) -> None:
    BatchEnvironment(stack, "Env", vpc=_vpc(stack), metaflow_queue="nope")
    with pytest.raises(RuntimeError) as caught:
        cdk.App.of(stack).synth()  # type: ignore[union-attr]
    message = str(caught.value)
    assert "queues=[] defines no job queue" in message
    assert "metaflow_queue='nope' names no queue" in message
