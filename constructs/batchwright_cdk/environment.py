"""``BatchEnvironment``: job queues, compute, IAM, datastore, logs and the descriptor.

Usable in any stack. It creates only what the user does not bring (VPC, bucket, job role,
log group), builds one job queue per :class:`~batchwright_cdk.queues.QueueSpec`, and
publishes the environment descriptor (contract 1) for the batchwright runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
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
    lazy_string,
)
from batchwright_cdk.grants import EnvironmentGrants
from batchwright_cdk.imported import ImportedBatchEnvironment
from batchwright_cdk.job_image import JobImage
from batchwright_cdk.network import (
    SubnetKind,
    add_endpoints,
    all_non_public,
    create_compute_security_group,
    create_efa_security_group,
    create_vpc,
    select_compute_subnets,
)
from batchwright_cdk.queues import QueueSpec
from batchwright_cdk.storage import (
    DEFAULT_LOG_RETENTION,
    Datastore,
    DatastoreLifecycle,
    create_log_group,
    normalize_prefix,
)
from batchwright_cdk.validation import (
    check_accelerator_types,
    check_queue_architectures,
    fail,
    resolve_capacities,
)

#: A secret jobs may read: a Secrets Manager secret or an SSM parameter.
JobSecret = secretsmanager.ISecret | ssm.IParameter

#: A stock image for steps that need nothing but Python: the slim official Python image on
#: ECR Public (no Docker Hub rate limits, no registry credentials). It lacks boto3, so each
#: job pip-installs it at start; the default is the job image, which has it.
DEFAULT_IMAGE = "public.ecr.aws/docker/library/python:3.11-slim"
#: Datastore prefix when none is given.
DEFAULT_DATASTORE_PREFIX = "batchwright"


class BatchEnvironment(EnvironmentGrants, Construct):
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
            Omitted: only when an initial queue is an EFA queue. On-demand EC2 queues can
            run multi-node parallel jobs only in private or isolated subnets.
        isolated_subnets: Create a VPC with isolated subnets only (no NAT gateway, no
            internet gateway); jobs reach AWS through the VPC endpoints this construct
            adds (see ``vpc_endpoints``).
        subnets: The subnets of the compute environments in ``vpc``. Omitted: private
            ones when the VPC has them, else public ones, else isolated ones. EFA
            environments take one non-public subnet of these.
        subnet_kind: What the selected subnets are (``"public"``: no NAT, instances and
            Fargate tasks take public IPs; ``"private"``: NAT; ``"isolated"``: VPC endpoints
            only), when the VPC cannot tell (subnets imported by id). Omitted: from the
            VPC's own subnet lists.
        vpc_endpoints: Add the interface endpoints jobs in isolated subnets need (ECS,
            ECR, CloudWatch Logs, Batch, STS; Secrets Manager and SSM with ``secrets``)
            and an S3 gateway endpoint to a brought VPC. Omitted: added for a created
            isolated VPC; a brought VPC whose compute subnets are isolated must say True
            or False (False: the VPC has its own endpoints).
        security_groups: Security groups of the (non-EFA) compute environments. Omitted:
            one with no ingress and all egress is created.
        bucket: An existing datastore bucket. Omitted: a private, encrypted, TLS-only
            bucket retained on stack deletion is created.
        datastore_prefix: Key prefix of the datastore inside the bucket; job and submitter
            permissions are scoped to it. Defaults to ``"batchwright"``.
        datastore_lifecycle: Expiry and tiering of run artifacts in a created bucket
            (:class:`~batchwright_cdk.storage.DatastoreLifecycle`). Omitted: kept forever.
        auto_delete_datastore: Delete the created bucket and its objects with the stack
            (sandboxes). Defaults to false (the bucket is retained).
        job_role: An existing role for step code (trusted by ``ecs-tasks.amazonaws.com``);
            datastore access is granted to it. Omitted: one is created.
        execution_role: An existing ECS task execution role (Fargate image pulls and logs,
            secrets). Omitted: one is created.
        instance_role: An existing EC2 instance role for the container instances (it needs
            ``AmazonEC2ContainerServiceforEC2Role``). Omitted: one is created.
        secrets: Secrets Manager secrets and SSM parameters jobs may read through
            ``@batch(secrets=...)``; read access goes to the execution role only.
        log_group: An existing log group for job logs. Omitted: one is created with
            ``log_retention``.
        log_retention: Retention of a created log group; defaults to one month.
        default_image: Container image of steps that name none. Omitted: the batchwright
            job image (:class:`~batchwright_cdk.job_image.JobImage`: Python and pinned
            boto3), built and pushed by ``cdk deploy``.
        job_image: The job image ``default_image`` refers to when the caller built it
            (``BatchEnvironmentStack`` does), so that arm64 queues are warned about.
        instance_capacities: Capacities of instance types missing from batchwright's
            shipped table; a queue naming such a type without a declaration is refused.
        metaflow_queue: Key of the queue the Metaflow profile points at; defaults to the
            first queue.

    Attributes:
        vpc, bucket, log_group, job_role, execution_role, instance_role: the resources
            used (created or brought).
        job_image: The job image built for ``default_image``, if none was given.
        security_groups: The security groups of the (non-EFA) compute environments.
        endpoints: The VPC endpoints added (by name), if any.
        job_queues: The created ``batch.JobQueue`` per queue key.
        compute_environments: The compute environments per queue key, in order.
        submitter_policy: Managed policy for people and CI that run flows here (what
            :meth:`grant_submit` grants, for attaching outside CDK).
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
        job_image: JobImage | None = None,
        instance_capacities: Sequence[InstanceCapacity] = (),
        metaflow_queue: str | None = None,
    ):
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        where = f"BatchEnvironment {construct_id!r}"
        if stack.node.try_find_child(DESCRIPTOR_OUTPUT_KEY) is not None:
            raise fail(
                where,
                "scope",
                stack.stack_name,
                "already holds a BatchEnvironment (its outputs have fixed names)",
                "Put each environment in its own stack",
            )
        if default_image is not None and not default_image.strip():
            raise fail(
                where,
                "default_image",
                default_image,
                "is empty",
                "Name an image, or leave default_image out to build the batchwright job image",
            )
        self.job_image: JobImage | None = job_image
        if default_image is None:
            self.job_image = JobImage(self, "JobImage")
            default_image = self.job_image.image_uri
        self.default_image: str = default_image
        self.datastore_prefix = normalize_prefix(datastore_prefix)
        self.metaflow_queue = metaflow_queue
        self._declared = {c.name: c for c in instance_capacities}
        #: Flows deployed in this stack (FlowStateMachine): flow name -> state machine ARN.
        self._flows: dict[str, str] = {}
        self._specs: dict[str, QueueSpec] = {}
        self._capacities: dict[str, dict[int, list[InstanceCapacity]]] = {}
        self.job_queues: dict[str, batch.JobQueue] = {}
        self.compute_environments: dict[str, list[ComputeEnvironment]] = {}
        # Statements that name every queue: later queues are added to them.
        self._all_queue_statements: list[iam.PolicyStatement] = []

        # --- network --------------------------------------------------------------------
        self.vpc: ec2.IVpc = vpc or self._create_vpc(
            where, queues, private_subnets, isolated_subnets
        )
        selection, kind = select_compute_subnets(self.vpc, subnets, where, kind=subnet_kind)
        self.security_groups: tuple[ec2.ISecurityGroup, ...] = tuple(
            security_groups
            if security_groups
            else [create_compute_security_group(self, "ComputeSecurityGroup", self.vpc)]
        )
        self._efa_security_group: ec2.SecurityGroup | None = None
        self.endpoints: dict[str, ec2.IVpcEndpoint] = {}
        if self._wants_endpoints(where, vpc, kind, vpc_endpoints):
            self.endpoints = add_endpoints(
                self,
                self.vpc,
                selection,
                list(self.security_groups),
                secrets=bool(secrets),
                gateway=vpc is not None,
            )

        # --- storage and logs -----------------------------------------------------------
        if bucket is None:
            bucket = Datastore(
                self,
                "Datastore",
                auto_delete=auto_delete_datastore,
                lifecycle=datastore_lifecycle,
                prefix=self.datastore_prefix,
            ).bucket
        elif datastore_lifecycle is not None:
            raise fail(
                where,
                "datastore_lifecycle",
                datastore_lifecycle,
                "applies only to a bucket this construct creates",
                "Set lifecycle rules on your own bucket, or leave bucket= out",
            )
        self.bucket: s3.IBucket = bucket
        self.log_group: logs.ILogGroup = log_group or create_log_group(
            self, "JobLogs", retention=log_retention
        )

        # --- IAM ------------------------------------------------------------------------
        self.job_role: iam.IRole = job_role or iam_parts.create_job_role(self, "JobRole")
        self.grant_datastore(self.job_role)
        self.execution_role: iam.IRole = execution_role or iam_parts.create_execution_role(
            self, "ExecutionRole", self.log_group
        )
        self.instance_role: iam.IRole = instance_role or iam_parts.create_instance_role(
            self, "InstanceRole"
        )
        self.secrets = tuple(secrets)
        for secret in self.secrets:
            secret.grant_read(self.execution_role)
        if self.secrets and not iam_parts.policy_held(self.execution_role):
            cdk.Annotations.of(self).add_warning_v2(
                "batchwright:secretsNotGranted",
                "The execution role's policy cannot be changed here (an immutable or imported "
                "role), so it was not given read access to the secrets; ECS would fail to "
                "start jobs that use them. Grant it secretsmanager:GetSecretValue / "
                "ssm:GetParameters (and kms:Decrypt for a customer key) on: "
                + ", ".join(_secret_arn(secret) for secret in self.secrets),
            )
        self._shared = SharedCompute(
            vpc=self.vpc,
            subnets=selection,
            subnet_kind=kind,
            security_groups=self.security_groups,
            instance_role=self.instance_role,
        )
        self._non_public_compute = all_non_public(self.vpc, selection, kind)

        # --- descriptor and its publications ---------------------------------------------
        # Rendered lazily, at synthesis: queues added later are in every publication.
        # A fixed name under one path: the runtime lists an account's environments with
        # one GetParametersByPath when nothing names the one to use.
        document = lazy_string(lambda: stack.to_json_string(self.descriptor().to_dict()))
        self.descriptor_parameter = ssm.StringParameter(
            self,
            "DescriptorParameter",
            parameter_name=descriptor_parameter_name(stack.stack_name),
            string_value=document,
            tier=ssm.ParameterTier.INTELLIGENT_TIERING,
            description=f"batchwright environment descriptor of stack {stack.stack_name}",
        )
        submitter_statements = self._submitter_statements([])
        self._all_queue_statements.append(submitter_statements[0])
        self.submitter_policy = iam.ManagedPolicy(
            self,
            "SubmitterPolicy",
            description="Run batchwright flows on this environment (people and CI)",
            document=iam.PolicyDocument(statements=submitter_statements),
        )
        iam_parts.acknowledge_wildcards(self.submitter_policy, submitter_statements)
        add_output(stack, DESCRIPTOR_OUTPUT_KEY, document, "batchwright environment descriptor")
        add_output(
            stack,
            DESCRIPTOR_PARAMETER_OUTPUT_KEY,
            self.descriptor_parameter.parameter_name,
            "SSM parameter holding the batchwright environment descriptor",
        )
        add_output(
            stack,
            METAFLOW_PROFILE_OUTPUT_KEY,
            lazy_string(lambda: stack.to_json_string(self._metaflow_profile(self.descriptor()))),
            "Metaflow profile for this environment (metaflow configure import)",
        )
        add_output(
            stack,
            "BatchwrightSubmitterPolicy",
            self.submitter_policy.managed_policy_arn,
            "Managed policy to attach to people and CI that run flows here",
        )

        # --- queues ---------------------------------------------------------------------
        for spec in queues:
            self.add_queue(spec)
        self.node.add_validation(_LazyChecks(self))

    # --- importers --------------------------------------------------------------------------

    @staticmethod
    def from_descriptor_parameter(
        scope: Construct, construct_id: str, parameter_name: str
    ) -> ImportedBatchEnvironment:
        """An environment deployed by another stack or app, read from the descriptor it
        published in SSM; see
        :meth:`~batchwright_cdk.imported.ImportedBatchEnvironment.from_descriptor_parameter`."""
        return ImportedBatchEnvironment.from_descriptor_parameter(
            scope, construct_id, parameter_name
        )

    @staticmethod
    def from_environment_attributes(
        scope: Construct, construct_id: str, **attributes: Any
    ) -> ImportedBatchEnvironment:
        """An environment deployed elsewhere, from its attributes; see
        :meth:`~batchwright_cdk.imported.ImportedBatchEnvironment.from_environment_attributes`."""
        return ImportedBatchEnvironment.from_environment_attributes(
            scope, construct_id, **attributes
        )

    def _create_vpc(
        self,
        where: str,
        queues: Sequence[QueueSpec],
        private_subnets: bool | None,
        isolated: bool,
    ) -> ec2.Vpc:
        if isolated and private_subnets:
            raise fail(
                where,
                "private_subnets",
                private_subnets,
                "asks for NAT-backed private subnets in a VPC with isolated_subnets=True",
                "Choose one: isolated_subnets=True (VPC endpoints, no NAT) or "
                "private_subnets=True (a NAT gateway)",
            )
        needs_private = private_subnets
        if needs_private is None:
            needs_private = any(q.has_efa for q in queues)
        return create_vpc(self, "Vpc", private_subnets=needs_private, isolated=isolated)

    @staticmethod
    def _wants_endpoints(
        where: str, brought: ec2.IVpc | None, kind: str, asked: bool | None
    ) -> bool:
        if asked is not None:
            return asked
        if kind != "isolated":
            return False
        if brought is None:
            return True
        raise fail(
            where,
            "vpc_endpoints",
            None,
            "must be chosen: the compute subnets of the brought VPC are isolated (no route "
            "to the internet), so jobs reach ECS, ECR, CloudWatch Logs and S3 only through "
            "VPC endpoints",
            "Pass vpc_endpoints=True to add them here, or vpc_endpoints=False if the VPC "
            "already has them",
        )

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
        if self.job_image is not None and any(
            c.architecture == "arm64" for found in capacities.values() for c in found
        ):
            cdk.Annotations.of(self).add_warning_v2(
                "batchwright:jobImageArchitecture",
                f"Queue {spec.key!r} runs arm64 instances, and the default job image is "
                "built for x86_64: give its steps an arm64 image (@batch(image=...)) or "
                "pass default_image= a multi-architecture image.",
            )

        scope = Construct(self, spec.key)
        environments: list[ComputeEnvironment] = []
        for index, ce in enumerate(spec.compute_environments):
            efa_group = self._efa_group() if ce.efa else None
            environment = create_compute_environment(
                scope,
                f"ComputeEnvironment{index + 1}",
                ce,
                shared=self._shared,
                capacities=capacities[index],
                efa_security_group=efa_group,
            )
            for endpoint in self.endpoints.values():
                environment.node.add_dependency(endpoint)
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
        for statement in self._all_queue_statements:
            statement.add_resources(queue.job_queue_arn)
        return queue

    def supports_multi_node(self, key: str) -> bool:
        """Whether the queue ``key`` can run multi-node parallel jobs (the descriptor's
        ``multi_node``): every compute environment is EC2 on-demand (never Spot or
        Fargate) and sits in private or isolated subnets (the jobs' network interfaces
        get no public IP). EFA environments always do: they take one non-public subnet or
        are refused.

        Raises:
            KeyError: if the environment has no queue ``key``.
        """
        spec = self._specs[key]
        return spec.multi_node and (spec.has_efa or self._non_public_compute)

    def _efa_group(self) -> ec2.SecurityGroup:
        if self._efa_security_group is None:
            group = create_efa_security_group(self, "EfaSecurityGroup", self.vpc)
            for endpoint in self.endpoints.values():
                if isinstance(endpoint, ec2.InterfaceVpcEndpoint):  # EFA nodes reach AWS too
                    endpoint.connections.allow_from(group, ec2.Port.tcp(443), "EFA nodes")
            self._efa_security_group = group
        return self._efa_security_group

    # --- grants (see EnvironmentGrants) ---------------------------------------------------

    def _stack_arn(self) -> str:
        return cdk.Stack.of(self).stack_id

    def _descriptor_parameter_arn(self) -> str | None:
        return self.descriptor_parameter.parameter_arn

    def _follow_new_queues(self, statements: Sequence[iam.PolicyStatement]) -> None:
        self._all_queue_statements.extend(statements)

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
                        efa=ce.efa,
                        instance_types=names,
                        # Fargate tasks reach AWS with a public IP only in public subnets.
                        assign_public_ip=ce.is_fargate and self._shared.subnet_kind == "public",
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
                    multi_node=self.supports_multi_node(key),
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
            flows=dict(self._flows),
        )

    def add_flow(self, flow_name: str, state_machine_arn: str) -> None:
        """Publish a flow deployed next to the environment in its descriptor (``flows``),
        where ``step-functions trigger`` and ``list-runs`` find its state machine.

        Raises:
            EnvironmentConfigError: the environment already publishes a flow of that name.
        """
        if flow_name in self._flows:
            raise fail(
                f"BatchEnvironment {self.node.path!r}",
                "flow",
                flow_name,
                "is deployed twice next to this environment (one state machine per flow)",
                "Deploy the second one next to another environment",
            )
        self._flows[flow_name] = state_machine_arn

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


def _secret_arn(secret: JobSecret) -> str:
    """The ARN of a secret or parameter (for messages)."""
    arn = getattr(secret, "parameter_arn", None) or getattr(secret, "secret_arn", "")
    return str(arn)


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
