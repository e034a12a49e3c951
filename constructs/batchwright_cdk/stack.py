"""``BatchEnvironmentStack``: a ready stack holding one :class:`BatchEnvironment`."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batchwright.environment.instances import InstanceCapacity
from batchwright_cdk.aspects import BatchChecks
from batchwright_cdk.environment import (
    DEFAULT_DATASTORE_PREFIX,
    BatchEnvironment,
    JobSecret,
)
from batchwright_cdk.job_image import JobImage
from batchwright_cdk.network import SubnetKind
from batchwright_cdk.queues import QueueSpec
from batchwright_cdk.storage import DEFAULT_LOG_RETENTION, DatastoreLifecycle

#: The stack parameter holding the default image (see :class:`BatchEnvironmentStack`).
DEFAULT_IMAGE_PARAMETER = "DefaultImage"


class BatchEnvironmentStack(cdk.Stack):
    """A stack with one :class:`BatchEnvironment` (construct id ``Environment``) and the
    :class:`~batchwright_cdk.aspects.BatchChecks` aspect applied.

    The stack name is what the runtime looks the environment up by (``cdk.json`` context
    ``batchwright:defaultEnvironment``). Every setting of :class:`BatchEnvironment`,
    bring-your-own resources included, is passed through; see there.

    The default image is the stack parameter ``DefaultImage`` (default: ``default_image``,
    or empty for the batchwright job image the stack builds), so
    ``cdk deploy --parameters DefaultImage=...`` picks another one at deploy time.

    Attributes:
        batch_environment: The environment construct (``Stack.environment`` is CDK's
            own attribute).
        default_image_parameter: The ``DefaultImage`` parameter.
        job_image: The job image the stack builds (None when ``default_image`` is given).
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
        isolated_subnets: bool = False,
        subnets: ec2.SubnetSelection | None = None,
        subnet_kind: SubnetKind | None = None,
        vpc_endpoints: bool | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        bucket: s3.IBucket | None = None,
        datastore_prefix: str = DEFAULT_DATASTORE_PREFIX,
        datastore_lifecycle: DatastoreLifecycle | None = None,
        auto_delete_datastore: bool = False,
        job_role: iam.IRole | None = None,
        execution_role: iam.IRole | None = None,
        instance_role: iam.IRole | None = None,
        secrets: Sequence[JobSecret] = (),
        log_group: logs.ILogGroup | None = None,
        log_retention: logs.RetentionDays = DEFAULT_LOG_RETENTION,
        default_image: str | None = None,
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
        # offline-built job image in place. Empty (the default without default_image):
        # the job image this stack builds.
        self.default_image_parameter = cdk.CfnParameter(
            self,
            DEFAULT_IMAGE_PARAMETER,
            type="String",
            default=default_image or "",
            description="Container image of @batch steps that name none (empty: the "
            "batchwright job image this stack builds)",
        )
        chosen = self.default_image_parameter.value_as_string
        self.job_image = JobImage(self, "JobImage") if default_image is None else None
        if self.job_image is not None:
            use_job_image = cdk.CfnCondition(
                self, "UseJobImage", expression=cdk.Fn.condition_equals(chosen, "")
            )
            chosen = cdk.Token.as_string(
                cdk.Fn.condition_if(use_job_image.logical_id, self.job_image.image_uri, chosen)
            )
        self.batch_environment = BatchEnvironment(
            self,
            "Environment",
            queues=queues,
            vpc=vpc,
            private_subnets=private_subnets,
            isolated_subnets=isolated_subnets,
            subnets=subnets,
            subnet_kind=subnet_kind,
            vpc_endpoints=vpc_endpoints,
            security_groups=security_groups,
            bucket=bucket,
            datastore_prefix=datastore_prefix,
            datastore_lifecycle=datastore_lifecycle,
            auto_delete_datastore=auto_delete_datastore,
            job_role=job_role,
            execution_role=execution_role,
            instance_role=instance_role,
            secrets=secrets,
            log_group=log_group,
            log_retention=log_retention,
            default_image=chosen,
            job_image=self.job_image,
            instance_capacities=instance_capacities,
            metaflow_queue=metaflow_queue,
        )
        cdk.Aspects.of(self).add(BatchChecks())
