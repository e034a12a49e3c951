"""Bring your own VPC, bucket, job role and log group; queues added after construction;
capacities declared for types the shipped table lacks; a created VPC without NAT."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template

from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor
from batchwright.environment.instances import InstanceCapacity
from batchwright.environment.sources import render_intrinsics
from batchwright_cdk import BatchEnvironment, QueueSpec

pytestmark = pytest.mark.cdk


@pytest.fixture(scope="module")
def brought() -> dict[str, Any]:
    """One stack with everything brought, synthesized once for the module."""
    app = cdk.App()
    stack = cdk.Stack(app, "Brought", env=cdk.Environment(region="eu-west-1"))
    vpc = ec2.Vpc(
        stack,
        "MyVpc",
        max_azs=2,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        ],
    )
    bucket = s3.Bucket(stack, "MyBucket", encryption=s3.BucketEncryption.KMS)
    role = iam.Role(stack, "MyJobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    log_group = logs.LogGroup(stack, "MyLogs")
    developer = iam.Role(stack, "Developer", assumed_by=iam.AccountRootPrincipal())
    env = BatchEnvironment(
        stack,
        "Env",
        vpc=vpc,
        bucket=bucket,
        job_role=role,
        log_group=log_group,
        datastore_prefix="/flows/",
        default_image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/flows:1",
        instance_capacities=[InstanceCapacity(name="x9q.large", vcpus=2, memory_mib=16384)],
        queues=[
            QueueSpec.on_demand("cpu", instance_types=["c5.large", "x9q.large"]),
            QueueSpec.efa("efa", instance_types=["p4d.24xlarge"]).with_runnable_timeout(900),
        ],
        metaflow_queue="late",
    )
    late = env.add_queue(QueueSpec.fargate_spot("late", fallback_to_fargate=True))
    env.grant_submit(developer)
    template = Template.from_stack(stack, skip_cyclical_dependencies_check=True)
    return {
        "template": template,
        "json": template.to_json(),
        "stack": stack,
        "env": env,
        "late": late,
        "bucket": bucket,
        "role": role,
        "log_group": log_group,
        "vpc": vpc,
    }


def _descriptor(template: dict[str, Any]) -> EnvironmentDescriptor:
    text = render_intrinsics(template["Outputs"][DESCRIPTOR_OUTPUT_KEY]["Value"])
    return EnvironmentDescriptor.from_json(text)


def test_only_what_is_missing_is_created(brought: dict[str, Any]) -> None:
    template: Template = brought["template"]
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::S3::Bucket", 1)
    template.resource_count_is("AWS::Logs::LogGroup", 1)
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    # job role brought; execution role, instance role and the developer role remain
    template.resource_count_is("AWS::IAM::Role", 4)


def test_brought_resources_are_the_ones_described(brought: dict[str, Any]) -> None:
    stack: cdk.Stack = brought["stack"]
    descriptor = _descriptor(brought["json"])
    bucket_id = stack.get_logical_id(brought["bucket"].node.default_child)
    role_id = stack.get_logical_id(brought["role"].node.default_child)
    logs_id = stack.get_logical_id(brought["log_group"].node.default_child)
    assert descriptor.bucket == f"<Ref:{bucket_id}>"
    assert descriptor.job_role_arn == f"<GetAtt:{role_id}.Arn>"
    assert descriptor.log_group == f"<Ref:{logs_id}>"
    assert descriptor.prefix == "flows"
    assert descriptor.region == "eu-west-1"
    assert descriptor.default_image.endswith("/flows:1")


def test_brought_job_role_gets_datastore_access_on_the_prefix(brought: dict[str, Any]) -> None:
    stack: cdk.Stack = brought["stack"]
    role_id = stack.get_logical_id(brought["role"].node.default_child)
    brought["template"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:ListBucket",
                                "Condition": {"StringLike": {"s3:prefix": ["flows", "flows/*"]}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_brought_kms_bucket_key_is_usable_by_the_job_role(brought: dict[str, Any]) -> None:
    stack: cdk.Stack = brought["stack"]
    role_id = stack.get_logical_id(brought["role"].node.default_child)
    key_id = stack.get_logical_id(brought["bucket"].encryption_key.node.default_child)
    brought["template"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                                "Resource": {"Fn::GetAtt": [key_id, "Arn"]},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_queue_added_after_construction_is_described_and_submittable(
    brought: dict[str, Any],
) -> None:
    descriptor = _descriptor(brought["json"])
    assert [q.key for q in descriptor.queues] == ["cpu", "efa", "late"]
    late = descriptor.queue("late")
    assert late is not None
    assert late.platform == "FARGATE_SPOT"
    assert [ce.platform for ce in late.compute_environments] == ["FARGATE_SPOT", "FARGATE"]
    stack: cdk.Stack = brought["stack"]
    queue_id = stack.get_logical_id(brought["late"].node.default_child)
    policies = [
        r for r in brought["json"]["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"
    ]
    assert queue_id in json.dumps(policies[0]["Properties"]["PolicyDocument"])
    profile = json.loads(
        render_intrinsics(brought["json"]["Outputs"]["BatchwrightMetaflowProfile"]["Value"])
    )
    assert profile["METAFLOW_BATCH_JOB_QUEUE"] == f"<GetAtt:{queue_id}.JobQueueArn>"
    assert "METAFLOW_BATCH_CONTAINER_REGISTRY" in profile


def test_grant_submit_gives_the_grantee_the_submitter_statements(brought: dict[str, Any]) -> None:
    stack: cdk.Stack = brought["stack"]
    developer = stack.node.find_child("Developer")
    policy = developer.node.find_child("DefaultPolicy").node.default_child
    statements = stack.resolve(policy.policy_document)["Statement"]
    submit = [s for s in statements if s["Action"] == "batch:SubmitJob"]
    queue_ids = [
        stack.get_logical_id(q.node.default_child) for q in brought["env"].job_queues.values()
    ]
    queues = next(s for s in submit if isinstance(s["Resource"], list))["Resource"]
    # Every queue, the one added after construction ("late") included.
    assert sorted(r["Fn::GetAtt"][0] for r in queues) == sorted(queue_ids)


def test_declared_capacity_travels_in_the_descriptor(brought: dict[str, Any]) -> None:
    descriptor = _descriptor(brought["json"])
    cpu = descriptor.queue("cpu")
    assert cpu is not None
    assert cpu.compute_environments[0].instance_types == ("c5.large", "x9q.large")
    assert set(descriptor.instance_types) == {"x9q.large"}
    capacity = descriptor.capacity("x9q.large")
    assert capacity is not None and capacity.memory_mib == 16384


def test_created_vpc_without_efa_has_no_nat_and_public_compute() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Cheap", env=cdk.Environment(region="us-east-1"))
    env = BatchEnvironment(
        stack,
        "Env",
        queues=[QueueSpec.spot("spot", instance_types=["c5"])],
        auto_delete_datastore=True,
    )
    template = Template.from_stack(stack, skip_cyclical_dependencies_check=True)
    # Sandboxes opt in to deleting the datastore with the stack.
    template.resource_count_is("Custom::S3AutoDeleteObjects", 1)
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 1)
    assert env.vpc.private_subnets == []
    subnets = [
        r["Properties"]
        for r in template.to_json()["Resources"].values()
        if r["Type"] == "AWS::EC2::Subnet"
    ]
    assert subnets and all(s["MapPublicIpOnLaunch"] for s in subnets)


def test_efa_launch_template_has_one_interface_per_network_card(brought: dict[str, Any]) -> None:
    templates = [
        r["Properties"]["LaunchTemplateData"]
        for r in brought["json"]["Resources"].values()
        if r["Type"] == "AWS::EC2::LaunchTemplate"
        and "NetworkInterfaces" in r["Properties"]["LaunchTemplateData"]
    ]
    (data,) = templates
    interfaces = data["NetworkInterfaces"]
    # p4d.24xlarge has four network cards; the primary interface is device 0 on card 0.
    assert [(i["NetworkCardIndex"], i["DeviceIndex"]) for i in interfaces] == [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 1),
    ]
    assert {i["InterfaceType"] for i in interfaces} == {"efa"}
    assert all(len(i["Groups"]) == 1 for i in interfaces)


def test_runnable_timeout_cancels_unplaceable_jobs(brought: dict[str, Any]) -> None:
    brought["template"].has_resource_properties(
        "AWS::Batch::JobQueue",
        {
            "JobStateTimeLimitActions": Match.array_with(
                [
                    {
                        "Action": "CANCEL",
                        "MaxTimeSeconds": 900,
                        "Reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                        "State": "RUNNABLE",
                    }
                ]
            )
        },
    )


def test_an_immutable_job_role_is_warned_about_and_given_the_policy_to_attach() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Immutable", env=cdk.Environment(region="eu-west-1"))
    role = iam.Role.from_role_arn(
        stack, "Imported", "arn:aws:iam::123456789012:role/jobs", mutable=False
    )
    mutable = iam.Role(stack, "Mutable", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    env = BatchEnvironment(
        stack,
        "Env",
        job_role=role,
        queues=[QueueSpec.on_demand("cpu", instance_types=["c5.large"])],
    )
    env.grant_datastore(mutable)
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("cannot be changed")
    )
    assert {w.id for w in warnings} == {"/Immutable/Imported"}
    message = str(warnings[0].entry.data)
    assert "BatchwrightDatastore" in message
    assert "BatchwrightDatastorePolicyForImported" in message
    # The output holds the policy to attach: the datastore grant, deny included.
    output = Template.from_stack(stack).to_json()["Outputs"][
        "BatchwrightDatastorePolicyForImported"
    ]
    document = json.loads(render_intrinsics(output["Value"]))
    sids_or_actions = json.dumps(document["Statement"])
    assert '"Effect": "Deny"' in sids_or_actions and "s3:PutObject" in sids_or_actions
    assert "s3:ListBucket" in sids_or_actions
