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

from batchwright.batch.definition import DEFINITION_NAME_PREFIX
from batchwright.batch.options import TAG_PREFIX
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
    "SubmitOwnJobs": "SubmitJob authorizes the job it creates, whose id Batch assigns at "
    "submission; the condition allows only submissions carrying the runtime's run tag.",
    "SubmitWithOwnDefinitions": "The runtime's own job definitions only (the "
    "batchwright- name prefix): it registers them at run time under content-hash names, "
    "and their revisions are numbered by Batch.",
    "ManageOwnDefinitions": "The runtime's own job definitions only (the batchwright- name "
    "prefix): it registers them at run time under content-hash names and deregisters its "
    "unused ones (batchwright jobdefs prune).",
    "TagOwnDefinitions": "The runtime's own job definitions only (the batchwright- name "
    "prefix): tags go on at registration and record when a definition was last used.",
    "ControlOwnJobs": "Job ids are assigned by Batch at submission, so no ARN can be named in "
    "advance; the condition limits the action to jobs the runtime tagged with a run id.",
    "ControlArrayChildren": "Array children (job/<parent>:<index>) carry no tags of their "
    "own, and the runtime stops single children (a Spot reclaim's escalation, --max-wait); "
    "only child ids match, never a plain job.",
    "TagOwnJobs": "Job ids are assigned by Batch at submission; tagging at submission is "
    "allowed only for requests that carry the runtime's run tag.",
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
    stack_arn: str,
    scope: Construct,
) -> list[iam.PolicyStatement]:
    """What a person or CI pipeline needs to run flows on this environment: nothing on
    job definitions but the runtime's own (``batchwright-*``), nothing on jobs but those
    carrying its run tag, and the first statement (``SubmitToTheseQueues``) names every
    queue it may use."""
    stack = cdk.Stack.of(scope)
    own_definitions = stack.format_arn(
        service="batch", resource="job-definition", resource_name=f"{DEFINITION_NAME_PREFIX}*"
    )
    jobs = stack.format_arn(service="batch", resource="job", resource_name="*")
    run_tag = f"{TAG_PREFIX}run"
    statements = [
        iam.PolicyStatement(
            sid="SubmitToTheseQueues",
            actions=["batch:SubmitJob"],
            resources=list(queue_arns),
        ),
        iam.PolicyStatement(
            # SubmitJob authorizes the job it creates too; only with the runtime's run tag.
            sid="SubmitOwnJobs",
            actions=["batch:SubmitJob"],
            resources=[jobs],
            conditions={"Null": {f"aws:RequestTag/{run_tag}": "false"}},
        ),
        iam.PolicyStatement(
            sid="SubmitWithOwnDefinitions",
            actions=["batch:SubmitJob"],
            resources=[own_definitions],
        ),
        iam.PolicyStatement(
            sid="ManageOwnDefinitions",
            actions=["batch:RegisterJobDefinition", "batch:DeregisterJobDefinition"],
            resources=[own_definitions],
        ),
        iam.PolicyStatement(
            sid="TagOwnDefinitions",
            actions=["batch:TagResource"],
            resources=[own_definitions],
        ),
        iam.PolicyStatement(
            sid="ControlOwnJobs",
            actions=["batch:TerminateJob", "batch:CancelJob"],
            resources=[jobs],
            conditions={"Null": {f"aws:ResourceTag/{run_tag}": "false"}},
        ),
        iam.PolicyStatement(
            sid="ControlArrayChildren",
            actions=["batch:TerminateJob", "batch:CancelJob"],
            resources=[stack.format_arn(service="batch", resource="job", resource_name="*:*")],
        ),
        iam.PolicyStatement(
            sid="TagOwnJobs",
            actions=["batch:TagResource"],
            resources=[jobs],
            conditions={"Null": {f"aws:RequestTag/{run_tag}": "false"}},
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
            resources=[stack_arn],
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


def policy_owner(grantee: iam.IGrantable) -> IConstruct | None:
    """The construct whose policy a grant to ``grantee`` changes: its principal (a
    function's role, say) when that is a construct, else the grantee; None for a bare
    principal."""
    for candidate in (grantee.grant_principal, grantee):
        if getattr(candidate, "node", None) is not None:
            return cast(IConstruct, candidate)
    return None


def policy_held(grantee: iam.IGrantable) -> bool:
    """Whether ``grantee``'s principal has a policy construct to hold what was granted (an
    immutable role answers "added" and has none)."""
    owner = policy_owner(grantee)
    return owner is None or any(isinstance(c, iam.Policy) for c in owner.node.find_all())


def grant_statements(
    grantee: iam.IGrantable, statements: Sequence[iam.PolicyStatement]
) -> tuple[iam.Grant, bool]:
    """Adds each statement to the grantee's policy; returns the combined grant of the
    allows and whether the principal's policy really holds them.

    A deny goes into the same policy as it is (a grant only ever allows). An immutable
    role (imported with ``mutable=False``, or ``without_policy_updates()``) answers
    "added" and adds nothing, so "held" is judged by the policy construct it should now
    have: false there, and for a principal that has no policy at all.
    """
    grant: iam.Grant | None = None
    added_all = True
    for statement in statements:
        if statement.effect == iam.Effect.DENY:
            added_all &= grantee.grant_principal.add_to_principal_policy(statement).statement_added
            continue
        one = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=statement.actions,
            resource_arns=statement.resources,
            conditions=statement.conditions or None,
        )
        added_all &= one.success
        grant = one if grant is None else grant.combine(one)
    held = added_all and policy_held(grantee)
    if grant is None:
        grant = iam.Grant.drop(grantee, "no statements")
    return grant, held
