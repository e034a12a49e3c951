"""An environment deployed elsewhere (another stack, another CDK app), for its grants and
queue references.

Two ways in, as CDK's own ``from_*`` importers go:

- :meth:`ImportedBatchEnvironment.from_descriptor_parameter` reads the environment's
  published descriptor from its SSM parameter at synthesis (a context lookup, cached in
  ``cdk.context.json`` like ``Vpc.from_lookup``; the stack needs an explicit account and
  region);
- :meth:`ImportedBatchEnvironment.from_environment_attributes` takes the names and ARNs
  themselves.

Either returns an :class:`ImportedBatchEnvironment` that offers the same grants as
:class:`~batchwright_cdk.environment.BatchEnvironment` and the queues as
``batch.IJobQueue``. Nothing is invented: what the object holds comes from the descriptor
or from the caller. (During the first synthesis of a lookup, before CDK has fetched the
value, the object has no queues and grants name placeholder queues; CDK then synthesizes
again, and that first template is discarded.)
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from batchwright.environment.descriptor import EnvironmentDescriptor, descriptor_parameter_name
from batchwright.errors import DescriptorError
from batchwright_cdk.grants import EnvironmentGrants
from batchwright_cdk.validation import fail

#: What ``value_from_lookup`` answers before CDK has looked the parameter up.
_DUMMY_PREFIX = "dummy-value-for-"


class ImportedBatchEnvironment(EnvironmentGrants, Construct):
    """A batchwright environment that this app did not create. Build it with
    :meth:`from_descriptor_parameter` or :meth:`from_environment_attributes`.

    Attributes:
        environment_name: The environment's stack name (what the runtime looks it up by).
        bucket, log_group, job_role, execution_role: The environment's resources, imported
            (the roles immutable: grants never change another stack's roles).
        datastore_prefix: The datastore prefix inside the bucket.
        job_queues: The queues by key, as ``batch.IJobQueue``.
        descriptor_parameter_name: The SSM parameter holding the descriptor.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        bucket_name: str,
        datastore_prefix: str,
        job_role_arn: str,
        execution_role_arn: str,
        log_group_name: str,
        queue_arns: Mapping[str, str],
        parameter_name: str | None = None,
        looking_up: bool = False,
    ):
        super().__init__(scope, construct_id)
        self._pending = looking_up
        self.environment_name = environment_name
        self.datastore_prefix = datastore_prefix.strip("/")
        self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Bucket", bucket_name)
        self.log_group: logs.ILogGroup = logs.LogGroup.from_log_group_name(
            self, "JobLogs", log_group_name
        )
        self.job_role: iam.IRole = iam.Role.from_role_arn(
            self, "JobRole", job_role_arn, mutable=False
        )
        self.execution_role: iam.IRole = iam.Role.from_role_arn(
            self, "ExecutionRole", execution_role_arn, mutable=False
        )
        self.job_queues: dict[str, batch.IJobQueue] = {
            key: batch.JobQueue.from_job_queue_arn(self, f"Queue{index}", arn)
            for index, (key, arn) in enumerate(queue_arns.items())
        }
        self.descriptor_parameter_name = parameter_name or descriptor_parameter_name(
            environment_name
        )

    @classmethod
    def from_environment_attributes(
        cls,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        bucket_name: str,
        job_role_arn: str,
        execution_role_arn: str,
        log_group_name: str,
        queue_arns: Mapping[str, str],
        datastore_prefix: str = "batchwright",
        parameter_name: str | None = None,
    ) -> ImportedBatchEnvironment:
        """An environment from its attributes: the stack name, the datastore bucket and
        prefix, the job and execution role ARNs, the log group name and the queue ARNs by
        key (the descriptor's ``queues[].key`` and ``arn``)."""
        return cls(
            scope,
            construct_id,
            environment_name=environment_name,
            bucket_name=bucket_name,
            datastore_prefix=datastore_prefix,
            job_role_arn=job_role_arn,
            execution_role_arn=execution_role_arn,
            log_group_name=log_group_name,
            queue_arns=queue_arns,
            parameter_name=parameter_name,
        )

    @classmethod
    def from_descriptor(
        cls,
        scope: Construct,
        construct_id: str,
        descriptor: EnvironmentDescriptor,
        *,
        parameter_name: str | None = None,
    ) -> ImportedBatchEnvironment:
        """An environment from its (deployed) descriptor."""
        return cls(
            scope,
            construct_id,
            environment_name=descriptor.name,
            bucket_name=descriptor.bucket,
            datastore_prefix=descriptor.prefix,
            job_role_arn=descriptor.job_role_arn,
            execution_role_arn=descriptor.execution_role_arn,
            log_group_name=descriptor.log_group,
            queue_arns={q.key: q.arn for q in descriptor.queues},
            parameter_name=parameter_name,
        )

    @classmethod
    def from_descriptor_parameter(
        cls, scope: Construct, construct_id: str, parameter_name: str
    ) -> ImportedBatchEnvironment:
        """An environment from the descriptor its stack published in SSM
        (``/batchwright/environments/<stack>``; the stack output
        ``BatchwrightEnvironmentParameter`` names it), read at synthesis.

        Raises:
            EnvironmentConfigError: the parameter holds no valid descriptor.
        """
        text = ssm.StringParameter.value_from_lookup(scope, parameter_name)
        if text.startswith(_DUMMY_PREFIX):
            # CDK answers a placeholder until it has looked the parameter up, then
            # synthesizes again; this first template is discarded.
            stack = cdk.Stack.of(scope)
            placeholder = _DUMMY_PREFIX.rstrip("-")
            role = stack.format_arn(
                service="iam", region="", resource="role", resource_name=placeholder
            )
            return cls(
                scope,
                construct_id,
                environment_name=parameter_name.rstrip("/").rsplit("/", 1)[-1],
                bucket_name=placeholder,
                datastore_prefix="",
                job_role_arn=role,
                execution_role_arn=role,
                log_group_name=placeholder,
                queue_arns={},
                parameter_name=parameter_name,
                looking_up=True,
            )
        try:
            descriptor = EnvironmentDescriptor.from_json(
                text, source=f"SSM parameter {parameter_name}"
            )
        except DescriptorError as e:
            raise fail(
                f"ImportedBatchEnvironment {construct_id!r}",
                "parameter_name",
                parameter_name,
                f"holds no batchwright descriptor ({e})",
                "Name the parameter in the environment stack's BatchwrightEnvironmentParameter "
                "output, and clear a stale value with `cdk context --reset`",
            ) from e
        return cls.from_descriptor(scope, construct_id, descriptor, parameter_name=parameter_name)

    # --- EnvironmentGrants ---------------------------------------------------------------

    def _looking_up(self) -> bool:
        return self._pending

    def _stack_arn(self) -> str:
        return cdk.Stack.of(self).format_arn(
            service="cloudformation", resource="stack", resource_name=f"{self.environment_name}/*"
        )

    def _descriptor_parameter_arn(self) -> str | None:
        return cdk.Stack.of(self).format_arn(
            service="ssm",
            resource="parameter",
            resource_name=self.descriptor_parameter_name.lstrip("/"),
        )
