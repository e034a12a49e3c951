"""Least-privilege IAM for a batchwright environment.

- job role: the only credentials step code gets; S3 on the datastore bucket/prefix only;
- execution role: what ECS needs to start a Fargate task (ECR pull, write logs);
- instance role: what the ECS agent on an EC2 instance needs (the AWS-managed policy);
- submitter statements: what people and CI need to run flows on the environment.

The Batch service itself uses its service-linked role (no ``serviceRole``): in-place
compute environment updates require it.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

ECS_TASKS = "ecs-tasks.amazonaws.com"


def datastore_statements(bucket: s3.IBucket, prefix: str) -> list[iam.PolicyStatement]:
    """Read, write and list under ``prefix`` of the datastore bucket, and nothing else."""
    objects = bucket.arn_for_objects(f"{prefix}/*" if prefix else "*")
    listing = iam.PolicyStatement(
        sid="ListDatastorePrefix",
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
    )
    if prefix:
        listing.add_condition("StringLike", {"s3:prefix": [prefix, f"{prefix}/*"]})
    statements = [
        listing,
        iam.PolicyStatement(
            sid="ReadWriteDatastoreObjects",
            actions=[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            resources=[objects],
        ),
    ]
    if bucket.encryption_key is not None:
        statements.append(
            iam.PolicyStatement(
                sid="UseDatastoreKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[bucket.encryption_key.key_arn],
            )
        )
    return statements


def wildcard_findings(bucket: s3.IBucket, prefix: str) -> list[str]:
    """The cdk-nag IAM5 finding ids the datastore statements trigger (the object wildcard)."""
    stack = cdk.Stack.of(bucket)
    arn = stack.resolve(bucket.bucket_arn)
    logical = arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else None
    pattern = f"{prefix}/*" if prefix else "*"
    if logical is None:
        return [f"AwsSolutions-IAM5[Resource::{arn}/{pattern}]"] if isinstance(arn, str) else []
    return [f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{pattern}]"]


def create_job_role(scope: Construct, construct_id: str) -> iam.Role:
    """The role step code runs with (trusted by ECS tasks); permissions are added by
    :func:`datastore_statements` so that a brought bucket gets the same scoping."""
    return iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal(ECS_TASKS),
        description="batchwright job role: what step code may do (datastore access)",
    )


def create_execution_role(scope: Construct, construct_id: str, log_group: logs.ILogGroup) -> iam.Role:
    """The Fargate execution role: pull images from ECR and write to the job log group."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal(ECS_TASKS),
        description="batchwright execution role: ECR pull and job logs for Fargate tasks",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="EcrAuthorization",
            actions=["ecr:GetAuthorizationToken"],
            resources=["*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="EcrPull",
            actions=[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            resources=[
                cdk.Stack.of(scope).format_arn(
                    service="ecr", resource="repository", resource_name="*"
                )
            ],
        )
    )
    log_group.grant_write(role)
    return role


def create_instance_role(scope: Construct, construct_id: str) -> iam.Role:
    """The EC2 instance role of the compute environments (the ECS agent's permissions)."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description="batchwright container instances (ECS agent)",
        managed_policies=[
            iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AmazonEC2ContainerServiceforEC2Role"
            )
        ],
    )
    cdk.Validations.of(role).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonEC2ContainerServiceforEC2Role]",
            reason="The AWS-maintained policy AWS Batch documents for container instances; "
            "it tracks the ECS agent's needs as they change.",
        )
    )
    return role


def submitter_statements(
    *,
    queue_arns: Sequence[str],
    job_role: iam.IRole,
    execution_role: iam.IRole,
    log_group: logs.ILogGroup,
    bucket: s3.IBucket,
    prefix: str,
    parameter_arn: str | None,
    scope: Construct,
) -> list[iam.PolicyStatement]:
    """What a person or CI pipeline needs to run flows on this environment."""
    stack = cdk.Stack.of(scope)
    job_definitions = stack.format_arn(
        service="batch", resource="job-definition", resource_name="*"
    )
    jobs = stack.format_arn(service="batch", resource="job", resource_name="*")
    statements = [
        iam.PolicyStatement(
            sid="SubmitToTheseQueues",
            actions=["batch:SubmitJob"],
            resources=[*queue_arns, job_definitions],
        ),
        iam.PolicyStatement(
            sid="ManageJobDefinitions",
            actions=["batch:RegisterJobDefinition", "batch:DeregisterJobDefinition"],
            resources=[job_definitions],
        ),
        iam.PolicyStatement(
            sid="ControlJobs",
            actions=["batch:TerminateJob", "batch:CancelJob"],
            resources=[jobs],
        ),
        iam.PolicyStatement(
            sid="TagBatchResources",
            actions=["batch:TagResource"],
            resources=[job_definitions, jobs],
        ),
        iam.PolicyStatement(
            # These Describe/List actions support no resource-level permissions.
            sid="DescribeBatch",
            actions=[
                "batch:DescribeJobs",
                "batch:ListJobs",
                "batch:DescribeJobDefinitions",
                "batch:DescribeJobQueues",
                "batch:DescribeComputeEnvironments",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="PassOnlyTheJobRoles",
            actions=["iam:PassRole"],
            resources=[job_role.role_arn, execution_role.role_arn],
        ),
        iam.PolicyStatement(
            sid="ReadJobLogs",
            actions=["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"],
            resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:log-stream:*"],
        ),
        *datastore_statements(bucket, prefix),
    ]
    if parameter_arn is not None:
        statements.append(
            iam.PolicyStatement(
                sid="ReadEnvironmentDescriptor",
                actions=["ssm:GetParameter"],
                resources=[parameter_arn],
            )
        )
    return statements


def grant_statements(
    grantee: iam.IGrantable, statements: Sequence[iam.PolicyStatement]
) -> iam.Grant:
    """Adds each statement to the grantee's policy and returns the combined grant."""
    grant: iam.Grant | None = None
    for statement in statements:
        one = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=statement.actions,
            resource_arns=statement.resources,
            conditions=statement.conditions or None,
        )
        grant = one if grant is None else grant.combine(one)
    if grant is None:
        return iam.Grant.drop(grantee, "no statements")
    return grant
