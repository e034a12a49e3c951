"""``BatchEnvironmentStack``: a ready stack holding one :class:`BatchEnvironment`."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from batchwright.environment.instances import InstanceCapacity
from batchwright_cdk.aspects import BatchChecks
from batchwright_cdk.environment import (
    DEFAULT_DATASTORE_PREFIX,
    DEFAULT_IMAGE,
    BatchEnvironment,
)
from batchwright_cdk.queues import QueueSpec
from batchwright_cdk.storage import DEFAULT_LOG_RETENTION

#: The stack parameter holding the default image (see :class:`BatchEnvironmentStack`).
DEFAULT_IMAGE_PARAMETER = "DefaultImage"


class BatchEnvironmentStack(cdk.Stack):
    """A stack with one :class:`BatchEnvironment` (construct id ``Environment``) and the
    :class:`~batchwright_cdk.aspects.BatchChecks` aspect applied.

    The stack name is what the runtime looks the environment up by (``cdk.json`` context
    ``batchwright:defaultEnvironment``). The settings are those of
    :class:`BatchEnvironment`; see there.

    The default image is the stack parameter ``DefaultImage`` (default: ``default_image``),
    so ``cdk deploy --parameters DefaultImage=...`` picks another one at deploy time.

    Attributes:
        batch_environment: The environment construct (``Stack.environment`` is CDK's
            own attribute).
        default_image_parameter: The ``DefaultImage`` parameter.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queues: Sequence[QueueSpec],
        env: cdk.Environment | None = None,
        description: str | None = None,
        vpc: ec2.IVpc | None = None,
        private_subnets: bool | None = None,
        datastore_prefix: str = DEFAULT_DATASTORE_PREFIX,
        auto_delete_datastore: bool = False,
        log_retention: logs.RetentionDays = DEFAULT_LOG_RETENTION,
        default_image: str = DEFAULT_IMAGE,
        instance_capacities: Sequence[InstanceCapacity] = (),
        metaflow_queue: str | None = None,
    ):
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=description or "batchwright: an AWS Batch environment for flows",
        )
        # A parameter, so the image can be chosen at deploy time
        # (`cdk deploy --parameters DefaultImage=...`); the local AWS uses it to put its
        # offline-built job image in place.
        self.default_image_parameter = cdk.CfnParameter(
            self,
            DEFAULT_IMAGE_PARAMETER,
            type="String",
            default=default_image,
            description="Container image of @batch steps that name none",
        )
        self.batch_environment = BatchEnvironment(
            self,
            "Environment",
            queues=queues,
            vpc=vpc,
            private_subnets=private_subnets,
            datastore_prefix=datastore_prefix,
            auto_delete_datastore=auto_delete_datastore,
            log_retention=log_retention,
            default_image=self.default_image_parameter.value_as_string,
            instance_capacities=instance_capacities,
            metaflow_queue=metaflow_queue,
        )
        cdk.Aspects.of(self).add(BatchChecks())
