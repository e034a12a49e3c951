"""``BatchEnvironment``: job queues, compute, IAM, datastore, logs and the descriptor.

Usable in any stack. It creates only what the user does not bring (VPC, bucket, job role,
log group), builds one job queue per :class:`~batchwright_cdk.queues.QueueSpec`, and
publishes the environment descriptor (contract 1) for the batchwright runtime.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
import jsii
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct, IValidation

from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    METAFLOW_PROFILE_OUTPUT_KEY,
    ComputeEnvironmentDescription,
    EnvironmentDescriptor,
    QueueDescription,
    descriptor_parameter_name,
)
from batchwright.environment.instances import InstanceCapacity, catalog
from batchwright.environment.metaflow import metaflow_profile
from batchwright_cdk import iam as iam_parts
from batchwright_cdk.compute import ComputeEnvironment, SharedCompute, create_compute_environment
from batchwright_cdk.descriptor import (
    SSM_PARAMETER_MAX_BYTES,
    add_output,
    estimated_deployed_bytes,
)
from batchwright_cdk.network import (
    create_compute_security_group,
    create_efa_security_group,
    create_vpc,
)
from batchwright_cdk.queues import QueueSpec
from batchwright_cdk.storage import (
    DEFAULT_LOG_RETENTION,
    Datastore,
    create_log_group,
    normalize_prefix,
)
from batchwright_cdk.validation import (
    check_accelerator_types,
    check_queue_architectures,
    fail,
    resolve_capacities,
)

#: Image of ``@batch`` steps that name none: a slim official Python image on ECR Public
#: (no Docker Hub rate limits, no registry credentials).
DEFAULT_IMAGE = "public.ecr.aws/docker/library/python:3.11-slim"
#: Datastore prefix when none is given.
DEFAULT_DATASTORE_PREFIX = "batchwright"


class BatchEnvironment(Construct):
    """A complete AWS Batch environment for batchwright flows.

    Args:
        scope: Parent construct (any stack).
        construct_id: Construct id.
        queues: The queues to create, e.g. ``[QueueSpec.on_demand("cpu"),
            QueueSpec.gpu("gpu")]``; more can be added with :meth:`add_queue`. At least one
            is required by synthesis time.
        vpc: An existing VPC. Omitted: a VPC with public subnets, no NAT gateway and an S3
            gateway endpoint is created; private subnets and one NAT gateway are added
            only if ``private_subnets`` is true or a queue needs them (EFA).
        private_subnets: Force private subnets (and a NAT gateway) in a created VPC.
            Omitted: only when an initial queue is an EFA queue.
        bucket: An existing datastore bucket. Omitted: a private, encrypted, TLS-only
            bucket retained on stack deletion is created.
        datastore_prefix: Key prefix of the datastore inside the bucket; job and submitter
            permissions are scoped to it. Defaults to ``"batchwright"``.
        auto_delete_datastore: Delete the created bucket and its objects with the stack
            (sandboxes). Defaults to false (the bucket is retained).
        job_role: An existing role for step code (trusted by ``ecs-tasks.amazonaws.com``);
            datastore access is granted to it. Omitted: one is created.
        log_group: An existing log group for job logs. Omitted: one is created with
            ``log_retention``.
        log_retention: Retention of a created log group; defaults to one month.
        default_image: Container image of steps that name none; defaults to
            :data:`DEFAULT_IMAGE`.
        instance_capacities: Capacities of instance types missing from batchwright's
            shipped table; a queue naming such a type without a declaration is refused.
        metaflow_queue: Key of the queue the Metaflow profile points at; defaults to the
            first queue.

    Attributes:
        vpc, bucket, log_group, job_role, execution_role, instance_role: the resources
            used (created or brought).
        job_queues: The created ``batch.JobQueue`` per queue key.
        compute_environments: The compute environments per queue key, in order.
        submitter_policy: Managed policy for people and CI that run flows here.
        descriptor_parameter: The SSM parameter holding the descriptor.

    Raises:
        EnvironmentConfigError: for a setting that cannot work (see ``validation``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queues: Sequence[QueueSpec] = (),
        vpc: ec2.IVpc | None = None,
        private_subnets: bool | None = None,
        bucket: s3.IBucket | None = None,
        datastore_prefix: str = DEFAULT_DATASTORE_PREFIX,
        auto_delete_datastore: bool = False,
        job_role: iam.IRole | None = None,
        log_group: logs.ILogGroup | None = None,
        log_retention: logs.RetentionDays = DEFAULT_LOG_RETENTION,
        default_image: str = DEFAULT_IMAGE,
        instance_capacities: Sequence[InstanceCapacity] = (),
        metaflow_queue: str | None = None,
    ):
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        if stack.node.try_find_child(DESCRIPTOR_OUTPUT_KEY) is not None:
            raise fail(
                f"BatchEnvironment {construct_id!r}",
                "scope",
                stack.stack_name,
                "already holds a BatchEnvironment (its outputs have fixed names)",
                "Put each environment in its own stack",
            )
        if not default_image.strip():
            raise fail(
                f"BatchEnvironment {construct_id!r}",
                "default_image",
                default_image,
                "is empty",
                f"Name an image, e.g. {DEFAULT_IMAGE!r}",
            )
        self.default_image = default_image
        self.datastore_prefix = normalize_prefix(datastore_prefix)
        self.metaflow_queue = metaflow_queue
        self._declared = {c.name: c for c in instance_capacities}
        self._specs: dict[str, QueueSpec] = {}
        self._capacities: dict[str, dict[int, list[InstanceCapacity]]] = {}
        self._published = False
        self.job_queues: dict[str, batch.JobQueue] = {}
        self.compute_environments: dict[str, list[ComputeEnvironment]] = {}

        # --- network --------------------------------------------------------------------
        needs_private = private_subnets
        if needs_private is None:
            needs_private = any(q.accelerator == "efa" for q in queues)
        self.vpc: ec2.IVpc = vpc or create_vpc(self, "Vpc", private_subnets=needs_private)
        self.security_group = create_compute_security_group(self, "ComputeSecurityGroup", self.vpc)
        self._efa_security_group: ec2.SecurityGroup | None = None

        # --- storage and logs -----------------------------------------------------------
        if bucket is None:
            bucket = Datastore(self, "Datastore", auto_delete=auto_delete_datastore).bucket
        self.bucket: s3.IBucket = bucket
        self.log_group: logs.ILogGroup = log_group or create_log_group(
            self, "JobLogs", retention=log_retention
        )

        # --- IAM ------------------------------------------------------------------------
        self.job_role: iam.IRole = job_role or iam_parts.create_job_role(self, "JobRole")
        self.grant_datastore(self.job_role)
        self.execution_role = iam_parts.create_execution_role(self, "ExecutionRole", self.log_group)
        self.instance_role = iam_parts.create_instance_role(self, "InstanceRole")
        self._shared = SharedCompute(self.vpc, self.security_group, self.instance_role)

        # --- queues ---------------------------------------------------------------------
        for spec in queues:
            self.add_queue(spec)

        # --- descriptor and its publications ---------------------------------------------
        # Values are rendered now and re-rendered by every later add_queue (_publish).
        # A fixed name under one path: the runtime lists an account's environments with
        # one GetParametersByPath when nothing names the one to use.
        self.descriptor_parameter = ssm.StringParameter(
            self,
            "DescriptorParameter",
            parameter_name=descriptor_parameter_name(stack.stack_name),
            string_value="{}",
            tier=ssm.ParameterTier.INTELLIGENT_TIERING,
            description=f"batchwright environment descriptor of stack {stack.stack_name}",
        )
        submitter_statements = self._submitter_statements()
        self.submitter_policy = iam.ManagedPolicy(
            self,
            "SubmitterPolicy",
            description="Run batchwright flows on this environment (people and CI)",
            document=iam.PolicyDocument(statements=submitter_statements),
        )
        iam_parts.acknowledge_wildcards(self.submitter_policy, submitter_statements)
        self._descriptor_output = add_output(
            stack, DESCRIPTOR_OUTPUT_KEY, "{}", "batchwright environment descriptor"
        )
        add_output(
            stack,
            DESCRIPTOR_PARAMETER_OUTPUT_KEY,
            self.descriptor_parameter.parameter_name,
            "SSM parameter holding the batchwright environment descriptor",
        )
        self._metaflow_output = add_output(
            stack,
            METAFLOW_PROFILE_OUTPUT_KEY,
            "{}",
            "Metaflow profile for this environment (metaflow configure import)",
        )
        add_output(
            stack,
            "BatchwrightSubmitterPolicy",
            self.submitter_policy.managed_policy_arn,
            "Managed policy to attach to people and CI that run flows here",
        )
        self._published = True
        self._publish()
        self.node.add_validation(_LazyChecks(self))

    # --- queues ---------------------------------------------------------------------------

    def add_queue(self, spec: QueueSpec) -> batch.JobQueue:
        """Creates the job queue and compute environments of ``spec``.

        Raises:
            EnvironmentConfigError: if the key is taken, an instance type is unknown, the
                types contradict the accelerator or the queue mixes architectures.
        """
        where = f"QueueSpec {spec.key!r}"
        if spec.key in self._specs:
            raise fail(
                where, "key", spec.key, "is used by another queue", "Give each queue its own key"
            )
        if self.node.try_find_child(spec.key) is not None:
            raise fail(
                where,
                "key",
                spec.key,
                "is the construct id of one of the environment's own resources",
                "Pick another key (e.g. lower case, like 'cpu' or 'gpu-large')",
            )
        capacities: dict[int, list[InstanceCapacity]] = {}
        for index, ce in enumerate(spec.compute_environments):
            ce_where = f"{where}, compute_environments[{index}]"
            capacities[index] = resolve_capacities(
                ce.effective_instance_types, self._declared, ce_where
            )
            check_accelerator_types(ce, capacities[index], ce_where)
        check_queue_architectures(spec, capacities)

        scope = Construct(self, spec.key)
        environments: list[ComputeEnvironment] = []
        for index, ce in enumerate(spec.compute_environments):
            efa_group = self._efa_group() if ce.accelerator == "efa" else None
            environment = create_compute_environment(
                scope,
                f"ComputeEnvironment{index + 1}",
                ce,
                shared=self._shared,
                capacities=capacities[index],
                efa_security_group=efa_group,
            )
            environments.append(environment)
        queue = batch.JobQueue(
            scope,
            "Queue",
            priority=spec.priority,
            job_state_time_limit_actions=_runnable_timeouts(spec.runnable_timeout_seconds),
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=e, order=i + 1)
                for i, e in enumerate(environments)
            ],
        )
        self._specs[spec.key] = spec
        self._capacities[spec.key] = capacities
        self.job_queues[spec.key] = queue
        self.compute_environments[spec.key] = environments
        size = estimated_deployed_bytes(self.descriptor())
        if size > SSM_PARAMETER_MAX_BYTES:
            raise fail(
                where,
                "instance_types",
                f"{size} bytes of descriptor",
                f"would make the deployed descriptor larger than an SSM parameter holds "
                f"({SSM_PARAMETER_MAX_BYTES} bytes)",
                "Name fewer instance classes or sizes (a keyword like default_x86_64 expands "
                "to about 40 sizes), or put some queues in a second environment stack",
            )
        if self._published:
            self.submitter_policy.add_statements(
                iam.PolicyStatement(actions=["batch:SubmitJob"], resources=[queue.job_queue_arn])
            )
            self._publish()
        return queue

    def _publish(self) -> None:
        """(Re)renders the descriptor into the output, the parameter and the profile."""
        stack = cdk.Stack.of(self)
        descriptor = self.descriptor()
        document = stack.to_json_string(descriptor.to_dict())
        self._descriptor_output.value = document
        parameter = self.descriptor_parameter.node.default_child
        assert isinstance(parameter, ssm.CfnParameter)
        parameter.value = document
        self._metaflow_output.value = stack.to_json_string(self._metaflow_profile(descriptor))

    def _efa_group(self) -> ec2.SecurityGroup:
        if self._efa_security_group is None:
            self._efa_security_group = create_efa_security_group(self, "EfaSecurityGroup", self.vpc)
        return self._efa_security_group

    # --- grants ---------------------------------------------------------------------------

    def grant_datastore(self, grantee: iam.IGrantable) -> iam.Grant:
        """Lets ``grantee`` read, write and list the datastore prefix (nothing else), except
        that it may never write under the prefix's ``code/``: an explicit deny keeps the
        code packages and command payloads that jobs run read-only to it. The job role
        gets this grant; only :attr:`submitter_policy` writes code (so do not give one
        principal both)."""
        statements = iam_parts.datastore_statements(self.bucket, self.datastore_prefix)
        grant = iam_parts.grant_statements(grantee, statements)
        if isinstance(grantee, Construct):
            iam_parts.acknowledge_wildcards(grantee, statements)
        return grant

    def grant_submit(self, identity: iam.IRole | iam.IUser | iam.IGroup) -> None:
        """Lets a person, group or CI role run flows here: attaches :attr:`submitter_policy`
        (submit to these queues, manage job definitions and jobs, pass only the job and
        execution roles, read the job logs and the descriptor, use the datastore)."""
        identity.add_managed_policy(self.submitter_policy)

    def _submitter_statements(self) -> list[iam.PolicyStatement]:
        return iam_parts.submitter_statements(
            queue_arns=[q.job_queue_arn for q in self.job_queues.values()],
            job_role=self.job_role,
            execution_role=self.execution_role,
            log_group=self.log_group,
            bucket=self.bucket,
            prefix=self.datastore_prefix,
            parameter_arn=self.descriptor_parameter.parameter_arn,
            scope=self,
        )

    # --- descriptor -----------------------------------------------------------------------

    def descriptor(self) -> EnvironmentDescriptor:
        """The environment descriptor, with CDK tokens where values are known at deploy."""
        stack = cdk.Stack.of(self)
        queues: list[QueueDescription] = []
        extra: dict[str, InstanceCapacity] = {}
        table = catalog()
        for key, spec in self._specs.items():
            ces = []
            for index, (ce, environment) in enumerate(
                zip(spec.compute_environments, self.compute_environments[key], strict=True)
            ):
                names = tuple(c.name for c in self._capacities[key][index])
                for name in names:
                    if name in self._declared or name not in table:
                        extra[name] = self._declared[name]
                ces.append(
                    ComputeEnvironmentDescription(
                        arn=environment.compute_environment_arn,
                        platform=ce.platform,
                        order=index + 1,
                        max_vcpus=ce.max_vcpus,
                        min_vcpus=ce.min_vcpus,
                        accelerator=ce.accelerator,
                        instance_types=names,
                    )
                )
            queue = self.job_queues[key]
            queues.append(
                QueueDescription(
                    key=key,
                    name=queue.job_queue_name,
                    arn=queue.job_queue_arn,
                    platform=spec.platform,
                    priority=spec.priority,
                    multi_node=spec.multi_node,
                    accelerator=spec.accelerator,
                    compute_environments=tuple(ces),
                )
            )
        return EnvironmentDescriptor(
            name=stack.stack_name,
            region=stack.region,
            bucket=self.bucket.bucket_name,
            prefix=self.datastore_prefix,
            job_role_arn=self.job_role.role_arn,
            execution_role_arn=self.execution_role.role_arn,
            log_group=self.log_group.log_group_name,
            default_image=self.default_image,
            queues=tuple(queues),
            instance_types=extra,
        )

    def _metaflow_profile(self, descriptor: EnvironmentDescriptor) -> dict[str, str]:
        key = self.metaflow_queue or next(iter(self.job_queues), None)
        queue = self.job_queues.get(key) if key is not None else None
        return metaflow_profile(descriptor, queue.job_queue_arn if queue else "")


def _runnable_timeouts(seconds: int | None) -> list[batch.JobStateTimeLimitAction] | None:
    """Cancel jobs stuck in RUNNABLE for each reason that never resolves by itself."""
    if seconds is None:
        return None
    return [
        batch.JobStateTimeLimitAction(max_time=cdk.Duration.seconds(seconds), reason=reason)
        for reason in (
            batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
            batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
            batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
        )
    ]


@jsii.implements(IValidation)
class _LazyChecks:
    """Invariants a later ``add_queue`` could still fix, checked at synthesis."""

    def __init__(self, environment: BatchEnvironment):
        self._environment = environment

    def validate(self) -> list[str]:
        """The problems found (empty when valid)."""
        env = self._environment
        problems: list[str] = []
        if not env.job_queues:
            problems.append(
                f"BatchEnvironment {env.node.id!r}: queues=[] defines no job queue. Pass "
                "queues=[QueueSpec.on_demand('cpu'), ...] or call add_queue()."
            )
        if env.metaflow_queue is not None and env.metaflow_queue not in env.job_queues:
            problems.append(
                f"BatchEnvironment {env.node.id!r}: metaflow_queue={env.metaflow_queue!r} "
                f"names no queue; known keys: {sorted(env.job_queues)}."
            )
        return problems
