"""The VPC and security groups: created only when the user brings no VPC, and cheap when
they are (no NAT gateway unless a queue needs private subnets)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from batchwright_cdk.validation import fail

#: Availability zones of a created VPC.
DEFAULT_MAX_AZS = 2


def create_vpc(scope: Construct, construct_id: str, *, private_subnets: bool) -> ec2.Vpc:
    """A VPC for Batch: public subnets always, private ones (behind one NAT gateway) only
    when ``private_subnets`` is needed (EFA / multi-node); an S3 gateway endpoint so that
    datastore traffic neither pays for NAT nor leaves the AWS network."""
    subnets = [ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)]
    if private_subnets:
        subnets.append(
            ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        )
    vpc = ec2.Vpc(
        scope,
        construct_id,
        max_azs=DEFAULT_MAX_AZS,
        nat_gateways=1 if private_subnets else 0,
        subnet_configuration=subnets,
        gateway_endpoints={
            "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
        },
        restrict_default_security_group=False,
    )
    cdk.Validations.of(vpc).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-VPC7",
            reason="Flow logs are left to the account's central network logging; a per-"
            "environment flow log adds cost for a VPC that only runs batch jobs.",
        )
    )
    return vpc


def compute_subnets(vpc: ec2.IVpc) -> ec2.SubnetSelection:
    """Subnets for ordinary compute environments: private ones when the VPC has them (the
    safer default), else public ones (instances get public IPs to reach ECR and ECS)."""
    if vpc.private_subnets:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
    return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)


def efa_subnets(vpc: ec2.IVpc, where: str) -> ec2.SubnetSelection:
    """One private subnet: a cluster placement group lives in one availability zone, and
    EFA interfaces cannot take public IPs."""
    if not vpc.private_subnets:
        raise fail(
            where,
            "vpc",
            vpc.node.path,
            "has no private subnets, which EFA compute environments need",
            "Bring a VPC with private subnets (with NAT or VPC endpoints), or let "
            "BatchEnvironment create one with private_subnets=True",
        )
    return ec2.SubnetSelection(subnets=[vpc.private_subnets[0]])


def create_compute_security_group(
    scope: Construct, construct_id: str, vpc: ec2.IVpc
) -> ec2.SecurityGroup:
    """The security group of ordinary compute environments: no ingress, all egress."""
    return ec2.SecurityGroup(
        scope,
        construct_id,
        vpc=vpc,
        allow_all_outbound=True,
        description="batchwright compute environments (no ingress)",
    )


def create_efa_security_group(
    scope: Construct, construct_id: str, vpc: ec2.IVpc
) -> ec2.SecurityGroup:
    """The EFA security group: all traffic to and from itself (EFA's OS-bypass traffic
    must be allowed both ways between the nodes), all egress."""
    group = ec2.SecurityGroup(
        scope,
        construct_id,
        vpc=vpc,
        allow_all_outbound=True,
        description="batchwright EFA nodes (all traffic between members)",
    )
    group.add_ingress_rule(group, ec2.Port.all_traffic(), "EFA traffic between nodes")
    return group
