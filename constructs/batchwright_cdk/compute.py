"""Compute environments from specs, on the ``aws_batch`` L2, with its gaps patched.

Gaps of aws-cdk-lib 2.27x covered here through ``node.default_child`` (see
``reference/aws-batch-facts.md``):

- a launch template is rendered without a version: we pin ``LatestVersionNumber`` so a
  template change updates the compute environment;
- ``security_groups=[]`` renders ``SecurityGroupIds: []``: we delete the key for EFA
  environments, whose groups live on the launch template's interfaces;
- ``optimal`` is appended unless ``use_optimal_instance_classes=False``: always off;
- instance classes the L2's enum lacks cannot be passed: only those are set by an
  override (sizes, known classes and the ``default_*`` keywords go through the L2, so
  its ``instance_types`` and a later ``add_instance_type()`` stay true);
- nothing first-class for EFA or Neuron: network interfaces and the Neuron AMI are set
  here (EFA on its own, or with the NVIDIA or Neuron image: ``ComputeEnvironmentSpec.efa``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from batchwright.environment.instances import InstanceCapacity
from batchwright_cdk.network import SubnetKind, efa_subnets, select
from batchwright_cdk.queues import ComputeEnvironmentSpec

#: Public SSM parameter of the ECS-optimized Amazon Linux 2023 Neuron AMI.
NEURON_AMI_PARAMETER = (
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"
)
#: Root device of the ECS-optimized AL2023 AMIs.
ROOT_DEVICE = "/dev/xvda"


#: What :func:`create_compute_environment` builds.
ComputeEnvironment = batch.ManagedEc2EcsComputeEnvironment | batch.FargateComputeEnvironment


@dataclass(frozen=True, kw_only=True)
class SharedCompute:
    """What all compute environments of one environment share: the network (subnets and
    what kind they are, security groups) and the EC2 instance role."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    subnet_kind: SubnetKind
    security_groups: tuple[ec2.ISecurityGroup, ...]
    instance_role: iam.IRole


#: Batch's instance-type keywords and the L2's members for them.
_DEFAULT_CLASSES = {
    "default_x86_64": batch.DefaultInstanceClass.X86_64,
    "default_arm64": batch.DefaultInstanceClass.ARM64,
}


@dataclass(frozen=True)
class _InstanceChoice:
    """A spec's instance types as the L2 takes them, and those it cannot take."""

    types: list[ec2.InstanceType]
    classes: list[ec2.InstanceClass]
    defaults: list[batch.DefaultInstanceClass]
    others: list[str]


def _instance_choice(names: tuple[str, ...]) -> _InstanceChoice:
    choice = _InstanceChoice([], [], [], [])
    for name in names:
        member = getattr(ec2.InstanceClass, name.upper(), None) if "." not in name else None
        if "." in name:
            choice.types.append(ec2.InstanceType(name))
        elif name in _DEFAULT_CLASSES:
            choice.defaults.append(_DEFAULT_CLASSES[name])
        elif member is not None:
            choice.classes.append(member)
        else:
            choice.others.append(name)
    return choice


def _launch_template(scope: Construct, construct_id: str, root_gib: int) -> ec2.LaunchTemplate:
    """IMDSv2 required and an encrypted gp3 root volume, for every EC2 environment."""
    return ec2.LaunchTemplate(
        scope,
        construct_id,
        require_imdsv2=True,
        http_put_response_hop_limit=2,  # containers sit one hop behind the host
        block_devices=[
            ec2.BlockDevice(
                device_name=ROOT_DEVICE,
                volume=ec2.BlockDeviceVolume.ebs(
                    root_gib,
                    encrypted=True,
                    volume_type=ec2.EbsDeviceVolumeType.GP3,
                    delete_on_termination=True,
                ),
            )
        ],
    )


def _images(spec: ComputeEnvironmentSpec) -> list[batch.EcsMachineImage]:
    """AL2023 image types; the NVIDIA one too, so mixed CPU/GPU lists boot the right AMI.
    Neuron has no image type: the Neuron AMI is passed as an image override."""
    if spec.accelerator == "neuron":
        neuron = ec2.MachineImage.from_ssm_parameter(NEURON_AMI_PARAMETER)
        return [
            batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023, image=neuron)
        ]
    return [
        batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023),
        batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA),
    ]


def _efa_interfaces(
    template: ec2.LaunchTemplate,
    group: ec2.ISecurityGroup,
    capacities: list[InstanceCapacity],
) -> int:
    """One EFA interface per network card that every type of the environment has; the
    security group goes on the interfaces (Batch refuses it on the CE as well)."""
    cards = max(1, min(c.efa_interfaces for c in capacities))
    interfaces = [
        {
            "NetworkCardIndex": card,
            # The primary interface is device 0 on card 0; others attach as device 1.
            "DeviceIndex": 0 if card == 0 else 1,
            "InterfaceType": "efa",
            "Groups": [group.security_group_id],
            "DeleteOnTermination": True,
        }
        for card in range(cards)
    ]
    cfn = template.node.default_child
    assert isinstance(cfn, ec2.CfnLaunchTemplate)
    cfn.add_property_override("LaunchTemplateData.NetworkInterfaces", interfaces)
    return cards


def create_compute_environment(
    scope: Construct,
    construct_id: str,
    spec: ComputeEnvironmentSpec,
    *,
    shared: SharedCompute,
    capacities: list[InstanceCapacity],
    efa_security_group: ec2.ISecurityGroup | None,
) -> ComputeEnvironment:
    """One compute environment for ``spec``; no physical name (CloudFormation replaces it)."""
    if spec.is_fargate:
        fargate = batch.FargateComputeEnvironment(
            scope,
            construct_id,
            vpc=shared.vpc,
            vpc_subnets=shared.subnets,
            security_groups=list(shared.security_groups),
            spot=spec.is_spot,
            maxv_cpus=spec.max_vcpus,
            replace_compute_environment=False,
            update_to_latest_image_version=True,
        )
        _wait_for_connectivity(fargate, shared.vpc, shared.subnets)
        return fargate

    # EFA alone (accelerator "efa") or with GPUs or Neuron devices: the same wiring.
    efa = spec.efa
    template = _launch_template(
        scope, f"{construct_id}LaunchTemplate", spec.effective_root_volume_gib
    )
    placement = (
        ec2.PlacementGroup(
            scope, f"{construct_id}PlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER
        )
        if efa
        else None
    )
    subnets = (
        efa_subnets(shared.vpc, shared.subnets, shared.subnet_kind, construct_id)
        if efa
        else shared.subnets
    )
    choice = _instance_choice(spec.effective_instance_types)
    environment = batch.ManagedEc2EcsComputeEnvironment(
        scope,
        construct_id,
        vpc=shared.vpc,
        vpc_subnets=subnets,
        # EFA: groups live on the launch template's interfaces; [] is patched away below.
        security_groups=[] if efa else list(shared.security_groups),
        instance_role=shared.instance_role,
        instance_types=choice.types,
        instance_classes=choice.classes,
        default_instance_classes=choice.defaults,
        use_optimal_instance_classes=False,
        images=_images(spec),
        launch_template=template,
        placement_group=placement,
        spot=spec.is_spot,
        allocation_strategy=(
            batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
            if spec.is_spot
            else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
        ),
        minv_cpus=spec.min_vcpus,
        maxv_cpus=spec.max_vcpus,
        replace_compute_environment=False,
        update_to_latest_image_version=True,
    )
    cfn = environment.node.default_child
    assert isinstance(cfn, batch.CfnComputeEnvironment)
    if choice.others:
        # Classes the L2 has no member for: the exact list, as the spec names it.
        cfn.add_property_override(
            "ComputeResources.InstanceTypes", list(spec.effective_instance_types)
        )
    cfn.add_property_override(
        "ComputeResources.LaunchTemplate.Version", template.latest_version_number
    )
    if efa:
        assert efa_security_group is not None
        _efa_interfaces(template, efa_security_group, capacities)
        cfn.add_property_deletion_override("ComputeResources.SecurityGroupIds")
    _wait_for_connectivity(environment, shared.vpc, subnets)
    return environment


def _wait_for_connectivity(
    environment: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection
) -> None:
    """Instances must reach ECS/ECR through the subnets' routes (and NAT) from the start,
    or Batch marks the environment INVALID; wait for those routes, not the whole VPC."""
    selected = select(vpc, subnets)
    environment.node.add_dependency(selected.internet_connectivity_established)
