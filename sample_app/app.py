"""The sample CDK app: one batchwright environment with a queue of every kind.

``cdk synth`` from the repository root runs it (see ``cdk.json``); it needs no AWS account
and no network: the stack is account-agnostic and its region comes from
``CDK_DEFAULT_REGION`` (default ``us-east-1``).
"""

from __future__ import annotations

import os

import aws_cdk as cdk

from batchwright_cdk import BatchEnvironmentStack, QueueSpec

#: The stack name; cdk.json's ``batchwright:defaultEnvironment`` names the same stack.
STACK_NAME = "BatchwrightSample"

#: One queue of every kind the construct library offers.
SAMPLE_QUEUES = [
    QueueSpec.on_demand("cpu", instance_types=["c5", "m5"], max_vcpus=256),
    QueueSpec.on_demand("small", instance_types=["c5.xlarge"], max_vcpus=16),
    QueueSpec.spot("spot", instance_types=["c5", "m5"], max_vcpus=256),
    QueueSpec.spot_with_fallback(
        "spot-fallback", instance_types=["m6i.large", "m6i.xlarge", "m6i.2xlarge", "m6i.4xlarge"]
    ),
    QueueSpec.fargate("fargate", max_vcpus=64),
    QueueSpec.fargate_spot("fargate-spot", max_vcpus=64),
    # GPU capacity can be scarce: give up on jobs no environment can place within an hour.
    QueueSpec.gpu(
        "gpu", instance_types=["g5.xlarge", "g5.2xlarge", "g5.12xlarge"], max_vcpus=96
    ).with_runnable_timeout(3600),
    QueueSpec.neuron("neuron", instance_types=["inf2.xlarge", "inf2.8xlarge"], max_vcpus=64),
    QueueSpec.efa("efa", instance_types=["c5n.18xlarge"], max_vcpus=288),
]


def build_app(app: cdk.App | None = None) -> cdk.App:
    """The sample app with its one stack (tests synthesize it through this function)."""
    app = app or cdk.App()
    region = os.environ.get("CDK_DEFAULT_REGION") or "us-east-1"
    BatchEnvironmentStack(
        app,
        STACK_NAME,
        queues=SAMPLE_QUEUES,
        env=cdk.Environment(region=region),
    )
    return app


if __name__ == "__main__":
    build_app().synth()
