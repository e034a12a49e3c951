"""The VPC and security groups: created only when the user brings no VPC, and cheap when
they are (no NAT gateway unless a queue needs private subnets)."""

from __future__ import annotations

from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from batchwright_cdk.validation import fail

#: Availability zones of a created VPC.
DEFAULT_MAX_AZS = 2


def create_vpc(
    scope: Construct, construct_id: str, *, private_subnets: bool, isolated: bool = False
) -> ec2.Vpc:
    """A VPC for Batch, with an S3 gateway endpoint so that datastore traffic neither pays
    for NAT nor leaves the AWS network.

    - default: public subnets only, no NAT gateway (instances get public IPs);
    - ``private_subnets``: private subnets behind one NAT gateway as well (EFA, multi-node);
    - ``isolated``: isolated subnets only, no NAT and no internet gateway; AWS is reached
      through VPC endpoints (:func:`add_endpoints`).
    """
    if isolated:
        subnets = [
            ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ]
    else:
        subnets = [ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)]
        if private_subnets:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                )
            )
    vpc = ec2.Vpc(
        scope,
        construct_id,
        max_azs=DEFAULT_MAX_AZS,
        nat_gateways=1 if private_subnets and not isolated else 0,
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


#: What the subnets of a compute environment are: public (instances and Fargate tasks
#: take public IPs), private (egress through NAT) or isolated (VPC endpoints only).
SubnetKind = Literal["public", "private", "isolated"]
SUBNET_KINDS: tuple[SubnetKind, ...] = ("public", "private", "isolated")

#: The interface endpoints jobs in isolated subnets need, and why. ECS for the container
#: agent on EC2 instances, ECR to pull images, CloudWatch Logs for the awslogs driver,
#: Batch and STS for step code that calls them (and the runtime's own calls from inside
#: the VPC); S3 is a gateway endpoint (image layers and the datastore).
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
    "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
    "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Batch": ec2.InterfaceVpcEndpointAwsService.BATCH,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
}
#: Interface endpoints added when the environment's jobs read secrets.
SECRET_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
}


def select(vpc: ec2.IVpc, selection: ec2.SubnetSelection) -> ec2.SelectedSubnets:
    """The subnets of ``vpc`` that ``selection`` selects."""
    return vpc.select_subnets(
        subnet_type=selection.subnet_type,
        subnet_group_name=selection.subnet_group_name,
        subnets=selection.subnets,
        one_per_az=selection.one_per_az,
        availability_zones=selection.availability_zones,
    )


def select_compute_subnets(
    vpc: ec2.IVpc,
    selection: ec2.SubnetSelection | None,
    where: str,
    *,
    kind: SubnetKind | None = None,
) -> tuple[ec2.SubnetSelection, SubnetKind]:
    """The subnets of ordinary compute environments and what kind they are (``kind`` when
    the caller says so).

    Without a ``selection``: private ones when the VPC has them (the safer default), else
    public ones, else isolated ones. A selection the VPC cannot satisfy is refused here
    with the subnets it does have, rather than with CDK's error at synthesis; so are
    subnets whose kind the VPC cannot tell (imported by id) when ``kind`` is not given.
    """
    if kind is not None and kind not in SUBNET_KINDS:
        raise fail(
            where,
            "subnet_kind",
            kind,
            "is not a kind of subnet",
            f"Use one of {', '.join(repr(k) for k in SUBNET_KINDS)}",
        )
    if selection is None:
        if vpc.private_subnets:
            chosen = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            return chosen, kind or "private"
        if vpc.public_subnets:
            return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC), kind or "public"
        if vpc.isolated_subnets:
            chosen = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
            return chosen, kind or "isolated"
        raise fail(where, "vpc", vpc.node.path, "has no subnets", "Bring a VPC with subnets")
    try:
        selected = select(vpc, selection)
    except RuntimeError as e:  # jsii raises CDK's own error as a RuntimeError
        raise fail(
            where,
            "subnets",
            _describe(selection),
            f"selects nothing in this VPC ({e})",
            f"Select among the VPC's {_kinds(vpc)}",
        ) from e
    if not selected.subnet_ids:
        raise fail(
            where, "subnets", _describe(selection), "selects no subnet", f"VPC has {_kinds(vpc)}"
        )
    found = kind or _kind_of(vpc, selected.subnet_ids)
    if found is None:
        raise fail(
            where,
            "subnet_kind",
            None,
            "must be given: the VPC does not list the selected subnets, so it cannot tell "
            "whether they are public, private (NAT) or isolated",
            "Pass subnet_kind='public', 'private' or 'isolated'",
        )
    return selection, found


def _kind_of(vpc: ec2.IVpc, subnet_ids: list[str]) -> SubnetKind | None:
    """The kind of the selected subnets (the least connected, when they are mixed); None
    when the VPC lists some of them under no kind."""
    public = {s.subnet_id for s in vpc.public_subnets}
    private = {s.subnet_id for s in vpc.private_subnets}
    isolated = {s.subnet_id for s in vpc.isolated_subnets}
    if not all(i in public | private | isolated for i in subnet_ids):
        return None
    if all(i in public for i in subnet_ids):
        return "public"
    if all(i in public or i in private for i in subnet_ids):
        return "private"
    return "isolated"


def _kinds(vpc: ec2.IVpc) -> str:
    counts = {
        "public": len(vpc.public_subnets),
        "private": len(vpc.private_subnets),
        "isolated": len(vpc.isolated_subnets),
    }
    listed = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    return f"{listed} subnets" if listed else "subnets (it lists none by kind)"


def _describe(selection: ec2.SubnetSelection) -> str:
    if selection.subnet_type is not None:
        return f"subnet_type={selection.subnet_type.name}"
    if selection.subnet_group_name is not None:
        return f"subnet_group_name={selection.subnet_group_name!r}"
    return f"{len(selection.subnets or [])} subnets"


def non_public_subnets(vpc: ec2.IVpc, selection: ec2.SubnetSelection) -> list[ec2.ISubnet]:
    """The selected subnets that the VPC does not list as public."""
    public = {s.subnet_id for s in vpc.public_subnets}
    return [s for s in select(vpc, selection).subnets if s.subnet_id not in public]


def all_non_public(vpc: ec2.IVpc, selection: ec2.SubnetSelection, kind: SubnetKind) -> bool:
    """Whether every compute subnet is private or isolated, as multi-node parallel jobs
    need (their network interfaces get no public IP): ``kind`` is not public and the VPC
    lists none of the selected subnets as public (a selection mixing public and private
    subnets is of kind ``private``)."""
    if kind == "public":
        return False
    return len(non_public_subnets(vpc, selection)) == len(select(vpc, selection).subnet_ids)


def efa_subnets(
    vpc: ec2.IVpc, selection: ec2.SubnetSelection, kind: SubnetKind, where: str
) -> ec2.SubnetSelection:
    """One non-public subnet of the compute subnets: a cluster placement group lives in
    one availability zone, and EFA interfaces cannot take public IPs."""
    candidates = [] if kind == "public" else non_public_subnets(vpc, selection)
    if not candidates:
        raise fail(
            where,
            "vpc",
            vpc.node.path,
            "gives compute environments public subnets, and EFA ones need a private or "
            "isolated subnet",
            "Bring a VPC with private subnets (with NAT or VPC endpoints) or select them "
            "with subnets=, or let BatchEnvironment create one with private_subnets=True",
        )
    return ec2.SubnetSelection(subnets=[candidates[0]])


def add_endpoints(
    scope: Construct,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    groups: list[ec2.ISecurityGroup],
    *,
    secrets: bool,
    gateway: bool,
) -> dict[str, ec2.IVpcEndpoint]:
    """The VPC endpoints jobs in isolated subnets need (:data:`INTERFACE_ENDPOINTS`, and
    :data:`SECRET_ENDPOINTS` when jobs read secrets), in ``subnets``, reachable on 443
    from the compute security groups only; the S3 gateway endpoint too when ``gateway``
    (a VPC this construct created has one already)."""
    wanted = {**INTERFACE_ENDPOINTS, **(SECRET_ENDPOINTS if secrets else {})}
    group = ec2.SecurityGroup(
        scope,
        "EndpointSecurityGroup",
        vpc=vpc,
        allow_all_outbound=False,
        description="batchwright VPC endpoints (HTTPS from the compute environments)",
    )
    for source in groups:
        group.add_ingress_rule(source, ec2.Port.tcp(443), "HTTPS from batchwright compute")
    endpoints: dict[str, ec2.IVpcEndpoint] = {}
    for name, service in wanted.items():
        endpoints[name] = ec2.InterfaceVpcEndpoint(
            scope,
            f"{name}Endpoint",
            vpc=vpc,
            service=service,
            subnets=subnets,
            security_groups=[group],
            private_dns_enabled=True,
            open=False,
        )
    if gateway:
        endpoints["S3"] = ec2.GatewayVpcEndpoint(
            scope,
            "S3Endpoint",
            vpc=vpc,
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[subnets],
        )
    return endpoints


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
    """The EFA security group: all traffic to and from itself, as AWS's EFA setup asks
    (EFA's OS-bypass traffic must be allowed both ways between the nodes, by rules that
    name the group itself), and all egress to reach AWS."""
    group = ec2.SecurityGroup(
        scope,
        construct_id,
        vpc=vpc,
        allow_all_outbound=True,
        description="batchwright EFA nodes (all traffic between members)",
    )
    group.add_ingress_rule(group, ec2.Port.all_traffic(), "EFA traffic between nodes")
    # With allow_all_outbound, CDK drops add_egress_rule() rules, and without it CDK refuses
    # an all-traffic rule to anywhere: the rule to the group itself is written directly.
    ec2.CfnSecurityGroupEgress(
        scope,
        f"{construct_id}EgressToItself",
        group_id=group.security_group_id,
        ip_protocol="-1",
        destination_security_group_id=group.security_group_id,
        description="EFA traffic between nodes",
    )
    return group
