"""EFA on GPU and Trainium environments (``QueueSpec.gpu_efa``, ``.trainium_efa``,
``ComputeEnvironmentSpec(efa=True)``), the descriptor's ``efa`` per compute environment
and ``multi_node`` per queue (on-demand EC2 in non-public subnets), and the refusals."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor
from batchwright.environment.instances import lookup
from batchwright.environment.sources import render_intrinsics
from batchwright_cdk import (
    BatchEnvironment,
    ComputeEnvironmentSpec,
    EnvironmentConfigError,
    QueueSpec,
)
from batchwright_cdk.compute import NEURON_AMI_PARAMETER

pytestmark = pytest.mark.cdk

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Efa", env=cdk.Environment(account=ACCOUNT, region=REGION))


def _descriptor(stack: cdk.Stack) -> EnvironmentDescriptor:
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    return EnvironmentDescriptor.from_json(
        render_intrinsics(outputs[DESCRIPTOR_OUTPUT_KEY]["Value"])
    )


def _logical(stack: cdk.Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def _wiring(stack: cdk.Stack, env: BatchEnvironment, key: str) -> dict[str, Any]:
    """The compute resources of the queue's first environment, its launch template's
    interfaces and the resources of the template."""
    resources = Template.from_stack(stack).to_json()["Resources"]
    compute = resources[_logical(stack, env.compute_environments[key][0])]["Properties"][
        "ComputeResources"
    ]
    template_id = compute["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
    data = resources[template_id]["Properties"]["LaunchTemplateData"]
    return {"compute": compute, "interfaces": data.get("NetworkInterfaces"), "all": resources}


@pytest.fixture(scope="module")
def presets() -> dict[str, Any]:
    """One environment (created VPC, so private subnets for EFA) with both presets at
    their defaults and at their largest sizes, and a plain GPU queue."""
    stack = _stack()
    env = BatchEnvironment(
        stack,
        "Env",
        queues=[
            QueueSpec.trainium_efa("trn"),
            QueueSpec.trainium_efa("trn1n", instance_types=["trn1n.32xlarge"], max_vcpus=512),
            QueueSpec.gpu_efa("p4d"),
            QueueSpec.gpu_efa("p5", instance_types=["p5.48xlarge"], max_vcpus=384),
            QueueSpec.gpu("gpu", instance_types=["g5.xlarge"]),
        ],
    )
    return {"stack": stack, "env": env, "descriptor": _descriptor(stack)}


def test_the_catalog_knows_the_preset_types_and_their_network_cards() -> None:
    cards = {
        name: (capacity.efa_interfaces, capacity.vcpus)
        for name in ("trn1.32xlarge", "trn1n.32xlarge", "p4d.24xlarge", "p5.48xlarge")
        if (capacity := lookup(name)) is not None
    }
    assert cards == {
        "trn1.32xlarge": (8, 128),
        "trn1n.32xlarge": (16, 128),
        "p4d.24xlarge": (4, 96),
        "p5.48xlarge": (32, 192),
    }


def test_preset_defaults_fit_two_nodes() -> None:
    for spec, node in ((QueueSpec.trainium_efa("t"), 128), (QueueSpec.gpu_efa("g"), 96)):
        (ce,) = spec.compute_environments
        assert ce.platform == "EC2" and ce.efa
        assert ce.max_vcpus >= 2 * node
        assert spec.multi_node and spec.has_efa
    trn = QueueSpec.trainium_efa("t").compute_environments[0]
    gpu = QueueSpec.gpu_efa("g").compute_environments[0]
    assert (trn.accelerator, trn.instance_types) == ("neuron", ("trn1.32xlarge",))
    assert (gpu.accelerator, gpu.instance_types) == ("gpu", ("p4d.24xlarge",))
    assert trn.effective_root_volume_gib == gpu.effective_root_volume_gib == 100


@pytest.mark.parametrize(("key", "cards"), [("trn", 8), ("trn1n", 16), ("p4d", 4), ("p5", 32)])
def test_every_network_card_gets_an_efa_interface(
    presets: dict[str, Any], key: str, cards: int
) -> None:
    wiring = _wiring(presets["stack"], presets["env"], key)
    interfaces = wiring["interfaces"]
    assert [(i["NetworkCardIndex"], i["DeviceIndex"]) for i in interfaces] == [
        (card, 0 if card == 0 else 1) for card in range(cards)
    ]
    assert {i["InterfaceType"] for i in interfaces} == {"efa"}
    group = _logical(presets["stack"], presets["env"]._efa_group())
    assert all(i["Groups"] == [{"Fn::GetAtt": [group, "GroupId"]}] for i in interfaces)
    compute = wiring["compute"]
    assert compute["Type"] == "EC2"
    assert "SecurityGroupIds" not in compute, "groups live on the EFA interfaces"
    placement = wiring["all"][compute["PlacementGroup"]["Fn::GetAtt"][0]]
    assert placement["Properties"]["Strategy"] == "cluster"
    assert len(compute["Subnets"]) == 1, "a cluster placement group is one AZ"
    subnet = wiring["all"][compute["Subnets"][0]["Ref"]]["Properties"]
    assert subnet["MapPublicIpOnLaunch"] is False


def test_trainium_efa_boots_the_neuron_ami(presets: dict[str, Any]) -> None:
    compute = _wiring(presets["stack"], presets["env"], "trn")["compute"]
    (image,) = compute["Ec2Configuration"]
    assert image["ImageType"] == "ECS_AL2023"
    parameters = Template.from_stack(presets["stack"]).to_json()["Parameters"]
    override = image["ImageIdOverride"]["Ref"]
    assert parameters[override]["Default"] == NEURON_AMI_PARAMETER


def test_gpu_efa_boots_the_nvidia_image(presets: dict[str, Any]) -> None:
    compute = _wiring(presets["stack"], presets["env"], "p4d")["compute"]
    assert {c["ImageType"] for c in compute["Ec2Configuration"]} == {
        "ECS_AL2023",
        "ECS_AL2023_NVIDIA",
    }
    assert all("ImageIdOverride" not in c for c in compute["Ec2Configuration"])
    assert compute["InstanceTypes"] == ["p4d.24xlarge"]


def test_a_gpu_queue_without_efa_keeps_its_security_group(presets: dict[str, Any]) -> None:
    wiring = _wiring(presets["stack"], presets["env"], "gpu")
    assert wiring["interfaces"] is None
    assert wiring["compute"]["SecurityGroupIds"]
    assert "PlacementGroup" not in wiring["compute"]


def test_efa_nodes_of_the_presets_talk_to_each_other(presets: dict[str, Any]) -> None:
    stack, env = presets["stack"], presets["env"]
    ref = {"Fn::GetAtt": [_logical(stack, env._efa_group()), "GroupId"]}
    template = Template.from_stack(stack)
    template.resource_properties_count_is(
        "AWS::EC2::SecurityGroupIngress",
        {"IpProtocol": "-1", "GroupId": ref, "SourceSecurityGroupId": ref},
        1,
    )
    template.resource_properties_count_is(
        "AWS::EC2::SecurityGroupEgress",
        {"IpProtocol": "-1", "GroupId": ref, "DestinationSecurityGroupId": ref},
        1,
    )


def test_the_descriptor_carries_efa_per_compute_environment(presets: dict[str, Any]) -> None:
    descriptor: EnvironmentDescriptor = presets["descriptor"]
    described = {
        q.key: (q.accelerator, q.compute_environments[0].efa, q.efa, q.multi_node)
        for q in descriptor.queues
    }
    assert described == {
        "trn": ("neuron", True, True, True),
        "trn1n": ("neuron", True, True, True),
        "p4d": ("gpu", True, True, True),
        "p5": ("gpu", True, True, True),
        # The created VPC has private subnets (for the EFA queues): on-demand, so multi-node.
        "gpu": ("gpu", False, False, True),
    }


# --- multi_node: what the queue really supports ---------------------------------------------


def _vpc(stack: cdk.Stack) -> ec2.Vpc:
    return ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="Iso", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
    )


KINDS = [
    QueueSpec.on_demand("cpu", instance_types=["c5.large"]),
    QueueSpec.spot("spot", instance_types=["c5.large"]),
    QueueSpec.spot_with_fallback("fallback", instance_types=["c5.large"]),
    QueueSpec.fargate("fargate"),
    QueueSpec.fargate_spot("fargate-spot"),
    QueueSpec.gpu("gpu", instance_types=["g5.xlarge"]),
    QueueSpec.gpu("gpu-spot", instance_types=["g5.xlarge"], spot=True),
]


@pytest.mark.parametrize(
    ("subnet_type", "on_demand"),
    [
        (ec2.SubnetType.PRIVATE_WITH_EGRESS, True),
        (ec2.SubnetType.PRIVATE_ISOLATED, True),
        (ec2.SubnetType.PUBLIC, False),
    ],
    ids=["private", "isolated", "public"],
)
def test_multi_node_is_on_demand_ec2_in_non_public_subnets(
    subnet_type: ec2.SubnetType, on_demand: bool
) -> None:
    stack = _stack()
    env = BatchEnvironment(
        stack,
        "Env",
        vpc=_vpc(stack),
        subnets=ec2.SubnetSelection(subnet_type=subnet_type),
        vpc_endpoints=False,
        queues=KINDS,
    )
    expected = {
        "cpu": on_demand,
        "spot": False,
        "fallback": False,  # a job may land in the Spot environment
        "fargate": False,
        "fargate-spot": False,
        "gpu": on_demand,
        "gpu-spot": False,
    }
    assert {q.key: q.multi_node for q in _descriptor(stack).queues} == expected
    assert {key: env.supports_multi_node(key) for key in env.job_queues} == expected


def test_a_selection_mixing_public_and_private_subnets_is_not_multi_node() -> None:
    stack = _stack()
    vpc = _vpc(stack)
    subnets = ec2.SubnetSelection(subnets=[vpc.public_subnets[0], *vpc.private_subnets])
    env = BatchEnvironment(
        stack,
        "Env",
        vpc=vpc,
        subnets=subnets,
        queues=[QueueSpec.on_demand("cpu", instance_types=["c5.large"]), QueueSpec.gpu_efa("efa")],
    )
    assert {q.key: q.multi_node for q in _descriptor(stack).queues} == {
        "cpu": False,
        "efa": True,
    }
    # The EFA environment takes a private subnet of the selection, never the public one.
    compute = _wiring(stack, env, "efa")["compute"]
    assert compute["Subnets"] == [{"Ref": _logical(stack, vpc.private_subnets[0])}]


def test_efa_in_public_subnets_is_refused() -> None:
    stack = _stack()
    with pytest.raises(EnvironmentConfigError, match="EFA ones need a private or isolated"):
        BatchEnvironment(
            stack, "Env", private_subnets=False, queues=[QueueSpec.trainium_efa("trn")]
        )


# --- the spec -------------------------------------------------------------------------------


def test_accelerator_efa_and_the_flag_are_one_meaning() -> None:
    by_accelerator = ComputeEnvironmentSpec(accelerator="efa", instance_types=("c5n.18xlarge",))
    by_flag = ComputeEnvironmentSpec(efa=True, instance_types=("c5n.18xlarge",))
    assert by_accelerator == by_flag
    assert by_flag.accelerator == "efa" and by_accelerator.efa
    with_gpu = ComputeEnvironmentSpec(accelerator="gpu", efa=True, instance_types=("p5",))
    assert (with_gpu.accelerator, with_gpu.efa) == ("gpu", True)
    assert QueueSpec.efa("e").has_efa and not QueueSpec.gpu("g").has_efa


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: ComputeEnvironmentSpec(
                platform="SPOT", accelerator="gpu", efa=True, instance_types=("p4d.24xlarge",)
            ),
            "ComputeEnvironmentSpec(SPOT): platform='SPOT' is not allowed for an EFA compute "
            "environment. EFA (multi-node) jobs need on-demand capacity: use platform 'EC2', or "
            "leave EFA out of this environment",
            id="gpu-efa-on-spot",
        ),
        pytest.param(
            lambda: ComputeEnvironmentSpec(platform="FARGATE", efa=True),
            "ComputeEnvironmentSpec(FARGATE): platform='FARGATE' is not allowed for an EFA "
            "compute environment",
            id="efa-on-fargate",
        ),
        pytest.param(
            lambda: QueueSpec(
                key="mix",
                compute_environments=(
                    ComputeEnvironmentSpec(
                        accelerator="gpu", efa=True, instance_types=("p4d.24xlarge",)
                    ),
                    ComputeEnvironmentSpec(accelerator="gpu", instance_types=("g5.xlarge",)),
                ),
            ),
            "QueueSpec 'mix': compute_environments=['gpu+efa', 'gpu'] mixes EFA and non-EFA "
            "environments",
            id="gpu-efa-mixed-with-gpu",
        ),
    ],
)
def test_refusals_of_the_spec(build: Any, message: str) -> None:
    with pytest.raises(EnvironmentConfigError) as caught:
        build()
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            QueueSpec.trainium_efa("trn", instance_types=["trn1.2xlarge"]),
            "QueueSpec 'trn', compute_environments[0]: instance_types=['trn1.2xlarge'] do not "
            "support EFA. Use EFA-capable sizes such as 'trn1.32xlarge'",
        ),
        (
            QueueSpec.gpu_efa("gpu", instance_types=["p4d.24xlarge", "g5.xlarge"]),
            "QueueSpec 'gpu', compute_environments[0]: instance_types=['g5.xlarge'] do not "
            "support EFA. Use EFA-capable sizes such as 'p4d.24xlarge'",
        ),
    ],
    ids=["trn1-2xlarge", "g5-xlarge"],
)
def test_types_without_efa_are_refused(spec: QueueSpec, message: str) -> None:
    stack = _stack()
    with pytest.raises(EnvironmentConfigError) as caught:
        BatchEnvironment(stack, "Env", private_subnets=True, queues=[spec])
    assert str(caught.value).startswith(message), str(caught.value)
