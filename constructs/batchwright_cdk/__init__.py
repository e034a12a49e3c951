"""batchwright_cdk: CDK constructs for a complete AWS Batch environment that publishes a
machine-readable description of itself for the batchwright runtime."""

from __future__ import annotations

from batchwright.environment.instances import InstanceCapacity
from batchwright_cdk.aspects import BatchChecks
from batchwright_cdk.environment import DEFAULT_IMAGE, BatchEnvironment
from batchwright_cdk.flow import FlowStateMachine
from batchwright_cdk.imported import ImportedBatchEnvironment
from batchwright_cdk.queues import ComputeEnvironmentSpec, QueueSpec
from batchwright_cdk.stack import BatchEnvironmentStack
from batchwright_cdk.storage import DatastoreLifecycle
from batchwright_cdk.validation import EnvironmentConfigError

__all__ = [
    "DEFAULT_IMAGE",
    "BatchChecks",
    "BatchEnvironment",
    "BatchEnvironmentStack",
    "ComputeEnvironmentSpec",
    "DatastoreLifecycle",
    "EnvironmentConfigError",
    "FlowStateMachine",
    "ImportedBatchEnvironment",
    "InstanceCapacity",
    "QueueSpec",
]
