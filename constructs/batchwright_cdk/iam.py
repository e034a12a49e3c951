"""Least-privilege IAM for a batchwright environment.

- job role: the only credentials step code gets; S3 on the datastore bucket/prefix only,
  and never a write under its ``code/`` (what jobs run: only the submitter writes it);
- execution role: what ECS needs to start a Fargate task (ECR pull, write logs);
- instance role: what the ECS agent on an EC2 instance needs (the AWS-managed policy);
- submitter statements: what people and CI need to run flows on the environment.

The Batch service itself uses its service-linked role (no ``serviceRole``): in-place
compute environment updates require it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from batchwright.codepackage import CODE_FOLDER
from batchwright.environment.assembly import References, evaluate
from batchwright.environment.descriptor import DESCRIPTOR_PARAMETER_PATH

ECS_TASKS = "ecs-tasks.amazonaws.com"


#: The writes denied under the datastore's ``code/`` to everyone but the submitter.
CODE_WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")


def datastore_statements(
    bucket: s3.IBucket, prefix: str, *, write_code: bool = False
) -> list[iam.PolicyStatement]:
    """Read, write and list under ``prefix`` of the datastore bucket, and nothing else.

    Unless ``write_code``, an explicit deny keeps every write off ``<prefix>/code/``: the
    code packages and command payloads jobs run. A deny wins over any allow the same
    principal holds elsewhere, so step code cannot swap another flow's code whatever
    else its role is given. Only the submitter statements write code.
    """
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
    if not write_code:
        code = f"{prefix}/{CODE_FOLDER}/*" if prefix else f"{CODE_FOLDER}/*"
        statements.append(
            iam.PolicyStatement(
                sid="NeverWriteCode",
                effect=iam.Effect.DENY,
                actions=list(CODE_WRITES),
                resources=[bucket.arn_for_objects(code)],
            )
        )
    if bucket.encryption_key is not None:
        statements.append(
            iam.PolicyStatement(
                sid="UseDatastoreKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[bucket.encryption_key.key_arn],
            )
        )
    return statements


#: Why each wildcard resource of our statements is needed (keyed by statement id); the
#: reasons become cdk-nag acknowledgments, so every suppression says why.
WILDCARD_REASONS: dict[str, str] = {
    "ReadWriteDatastoreObjects": "Objects under the datastore prefix only: run artifacts get "
    "content-addressed keys at run time, so they cannot be listed in advance.",
    "NeverWriteCode": "A deny, not a grant: it keeps every object under the datastore's code/ "
    "prefix (the code packages and command payloads jobs run) read-only to this principal.",
    "EcrAuthorization": "ecr:GetAuthorizationToken supports no resource-level permissions.",
    "EcrPull": "Steps name their image at run time; pulls are limited to this account's ECR "
    "repositories in this region.",
    "SubmitToTheseQueues": "SubmitJob needs the job definition too; the runtime registers "
    "definitions at run time under content-hash names.",
    "ManageJobDefinitions": "The runtime registers job definitions at run time under "
    "content-hash names.",
    "ControlJobs": "Job ids are assigned by Batch at submission; the action is limited to jobs "
    "of this account and region.",
    "TagBatchResources": "Tags go on job definitions and jobs created at run time.",
    "DescribeBatch": "Batch Describe*/List* actions support no resource-level permissions.",
    "ReadJobLogs": "Batch names one log stream per job attempt at run time; access is limited "
    "to the environment's log group.",
}


class _NagNotation(References):
    """References as cdk-nag writes them in finding ids: ``<Logical.Attr>``, ``<Logical>``,
    ``<AWS::Partition>``; joins are joined, and anything else is its JSON, so that an
    acknowledgment's id is the id of the finding it answers."""

    functions = frozenset({"Fn::Join"})

    def ref(self, name: str) -> str:
        return f"<{name}>"

    def get_att(self, logical_id: str, attribute: str) -> str:
        return f"<{logical_id}.{attribute}>"

    def condition(self, name: str) -> str:
        return json.dumps({"Condition": name})

    def unevaluated(self, function: str, argument: Any) -> str:
        return json.dumps({function: argument})


def _nag_text(value: Any) -> str:
    """A resolved value in cdk-nag's notation (``<Logical.Attr>``, ``<AWS::Partition>``)."""
    text = evaluate(value, _NagNotation())
    return text if isinstance(text, str) else json.dumps(value)


def acknowledge_wildcards(construct: IConstruct, statements: Sequence[iam.PolicyStatement]) -> None:
    """Acknowledges cdk-nag's IAM5 finding for each wildcard resource of ``statements``
    on ``construct``, with the reason from :data:`WILDCARD_REASONS`."""
    stack = cdk.Stack.of(construct)
    acknowledgments: dict[str, cdk.Acknowledgment] = {}
    for statement in statements:
        reason = WILDCARD_REASONS.get(statement.sid or "")
        if reason is None:
            continue
        for resource in statement.resources:
            text = _nag_text(stack.resolve(resource))
            rule = f"AwsSolutions-IAM5[Resource::{text}]"
            if "*" in text and rule not in acknowledgments:
                acknowledgments[rule] = cdk.Acknowledgment(id=rule, reason=reason)
    if acknowledgments:
        cdk.Validations.of(construct).acknowledge(*acknowledgments.values())


def create_job_role(scope: Construct, construct_id: str) -> iam.Role:
    """The role step code runs with (trusted by ECS tasks); permissions are added by
    :func:`datastore_statements` so that a brought bucket gets the same scoping."""
    return iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal(ECS_TASKS),
        description="batchwright job role: what step code may do (datastore access)",
    )


def create_execution_role(
    scope: Construct, construct_id: str, log_group: logs.ILogGroup
) -> iam.Role:
    """The Fargate execution role: pull images from ECR and write to the job log group."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal(ECS_TASKS),
        description="batchwright execution role: ECR pull and job logs for Fargate tasks",
    )
    ecr_auth = iam.PolicyStatement(
        sid="EcrAuthorization",
        actions=["ecr:GetAuthorizationToken"],
        resources=["*"],
    )
    ecr_pull = iam.PolicyStatement(
        sid="EcrPull",
        actions=[
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
        resources=[
            cdk.Stack.of(scope).format_arn(service="ecr", resource="repository", resource_name="*")
        ],
    )
    role.add_to_policy(ecr_auth)
    role.add_to_policy(ecr_pull)
    log_group.grant_write(role)
    acknowledge_wildcards(role, [ecr_auth, ecr_pull])
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
        *datastore_statements(bucket, prefix, write_code=True),
    ]
    statements.append(
        iam.PolicyStatement(
            # The runtime finds the environment by stack name (DescribeStacks outputs).
            sid="ReadEnvironmentStack",
            actions=["cloudformation:DescribeStacks"],
            resources=[stack.stack_id],
        )
    )
    if parameter_arn is not None:
        statements.append(
            iam.PolicyStatement(
                sid="ReadEnvironmentDescriptor",
                actions=["ssm:GetParameter"],
                resources=[parameter_arn],
            )
        )
        # With no environment named, the runtime lists the environments of the account
        # and region: GetParametersByPath on the path every descriptor is published under.
        path = DESCRIPTOR_PARAMETER_PATH.lstrip("/")
        statements.append(
            iam.PolicyStatement(
                sid="ListEnvironments",
                actions=["ssm:GetParametersByPath"],
                resources=[
                    stack.format_arn(service="ssm", resource="parameter", resource_name=path)
                ],
            )
        )
    return statements


def grant_statements(
    grantee: iam.IGrantable, statements: Sequence[iam.PolicyStatement]
) -> iam.Grant:
    """Adds each statement to the grantee's policy and returns the combined grant of the
    allows. A deny goes into the same policy as it is (a grant only ever allows); where the
    principal's policy cannot be changed (an immutable imported role), a warning says so.
    """
    grant: iam.Grant | None = None
    for statement in statements:
        if statement.effect == iam.Effect.DENY:
            added = grantee.grant_principal.add_to_principal_policy(statement)
            # An immutable role (imported with mutable=False, or without_policy_updates())
            # answers "added" and adds nothing: only a policy construct holds the deny.
            node = getattr(grantee, "node", None)  # an imported role is a jsii proxy
            held = added.statement_added and (
                node is None or any(isinstance(c, iam.Policy) for c in node.find_all())
            )
            if not held and node is not None:
                cdk.Annotations.of(cast(IConstruct, grantee)).add_warning_v2(
                    "batchwright:denyNotAdded",
                    f"Could not add the deny {statement.sid or ''} "
                    f"({', '.join(statement.actions)}) to this principal's policy; add it "
                    "yourself so that it cannot write the code jobs run.",
                )
            continue
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
