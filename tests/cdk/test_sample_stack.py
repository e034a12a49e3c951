"""CDK assertions on the synthesized sample app: one queue of every kind."""

from __future__ import annotations

import json
import os
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    METAFLOW_PROFILE_OUTPUT_KEY,
    descriptor_parameter_name,
)
from batchwright.environment.sources import render_intrinsics, render_output

pytestmark = pytest.mark.cdk

EC2_QUEUES = ["cpu", "small", "spot", "spot-fallback", "gpu", "neuron", "efa"]
_GETATT = re.compile(r"^<GetAtt:([A-Za-z0-9]+)\.[A-Za-z]+>$")


def _static_descriptor(template: dict[str, Any]) -> dict[str, Any]:
    text = render_intrinsics(template["Outputs"][DESCRIPTOR_OUTPUT_KEY]["Value"])
    return dict(json.loads(text))


def _logical_id(placeholder: str) -> str:
    match = _GETATT.match(placeholder)
    assert match, placeholder
    return match.group(1)


@pytest.fixture(scope="module")
def queue_resources(sample: Any) -> dict[str, dict[str, Any]]:
    """Per queue key: its JobQueue and compute environment resources (found through the
    descriptor, not through hashed logical ids)."""
    resources = sample.template["Resources"]
    found = {}
    for queue in _static_descriptor(sample.template)["queues"]:
        found[queue["key"]] = {
            "queue": resources[_logical_id(queue["arn"])],
            "ces": [resources[_logical_id(ce["arn"])] for ce in queue["compute_environments"]],
        }
    return found


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    return dict(resource["Properties"])


def test_sample_has_one_queue_of_every_kind(sample_template: Template) -> None:
    sample_template.resource_count_is("AWS::Batch::JobQueue", 9)
    sample_template.resource_count_is("AWS::Batch::ComputeEnvironment", 10)


@pytest.mark.parametrize("key", EC2_QUEUES)
def test_every_ec2_compute_environment_follows_the_house_rules(
    sample: Any, queue_resources: dict[str, Any], key: str
) -> None:
    resources = sample.template["Resources"]
    for ce in queue_resources[key]["ces"]:
        props = _props(ce)
        compute = props["ComputeResources"]
        assert compute["MinvCpus"] == 0
        assert "ComputeEnvironmentName" not in props, "no fixed physical names"
        assert "ServiceRole" not in props, "the Batch service-linked role is used"
        assert "optimal" not in compute["InstanceTypes"]
        image_types = [c["ImageType"] for c in compute["Ec2Configuration"]]
        if key == "neuron":
            assert image_types == ["ECS_AL2023"]
        else:
            assert image_types == ["ECS_AL2023", "ECS_AL2023_NVIDIA"]
        template_id = compute["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
        assert compute["LaunchTemplate"]["Version"] == {
            "Fn::GetAtt": [template_id, "LatestVersionNumber"]
        }
        data = resources[template_id]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert [m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"]] == [True]
        size = data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
        assert size == (100 if key in ("gpu", "neuron", "efa") else 30)


def test_no_resource_has_a_fixed_physical_name(sample: Any) -> None:
    name_keys = {
        "BucketName",
        "RoleName",
        "LogGroupName",
        "ComputeEnvironmentName",
        "JobQueueName",
        "ManagedPolicyName",
        "LaunchTemplateName",
        "GroupName",
        "InstanceProfileName",
        "Name",
    }
    named = {
        logical: sorted(name_keys & set(resource.get("Properties", {})))
        for logical, resource in sample.template["Resources"].items()
        if name_keys & set(resource.get("Properties", {}))
    }
    # One exception, named after the stack (unique in an account and region, so two
    # deployments never collide): the descriptor parameter the runtime lists by path.
    parameter = sample.template["Outputs"][DESCRIPTOR_PARAMETER_OUTPUT_KEY]["Value"]["Ref"]
    assert named == {parameter: ["Name"]}


def test_on_demand_queue_uses_best_fit_progressive_and_the_given_classes(
    queue_resources: dict[str, Any],
) -> None:
    compute = _props(queue_resources["cpu"]["ces"][0])["ComputeResources"]
    assert compute["Type"] == "EC2"
    assert compute["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE"
    assert compute["InstanceTypes"] == ["c5", "m5"]
    assert compute["SecurityGroupIds"], "ordinary environments carry the compute group"


def test_spot_queue_uses_price_capacity_optimized_without_fleet_role(
    queue_resources: dict[str, Any],
) -> None:
    compute = _props(queue_resources["spot"]["ces"][0])["ComputeResources"]
    assert compute["Type"] == "SPOT"
    assert compute["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert "SpotIamFleetRole" not in compute


def test_spot_fallback_queue_tries_spot_then_on_demand(
    sample_template: Template, queue_resources: dict[str, Any]
) -> None:
    ces = queue_resources["spot-fallback"]["ces"]
    assert [_props(ce)["ComputeResources"]["Type"] for ce in ces] == ["SPOT", "EC2"]
    order = _props(queue_resources["spot-fallback"]["queue"])["ComputeEnvironmentOrder"]
    assert [o["Order"] for o in order] == [1, 2]


@pytest.mark.parametrize(
    ("key", "kind"), [("fargate", "FARGATE"), ("fargate-spot", "FARGATE_SPOT")]
)
def test_fargate_queues_have_no_instance_settings(
    queue_resources: dict[str, Any], key: str, kind: str
) -> None:
    compute = _props(queue_resources[key]["ces"][0])["ComputeResources"]
    assert compute["Type"] == kind
    for ec2_only in ("InstanceTypes", "InstanceRole", "LaunchTemplate", "MinvCpus"):
        assert ec2_only not in compute


def test_gpu_queue_has_nvidia_types_and_image(queue_resources: dict[str, Any]) -> None:
    compute = _props(queue_resources["gpu"]["ces"][0])["ComputeResources"]
    assert all(t.startswith("g5.") for t in compute["InstanceTypes"])
    assert {"ImageType": "ECS_AL2023_NVIDIA"} in compute["Ec2Configuration"]


def test_neuron_queue_overrides_the_image_with_the_neuron_ami(
    sample: Any, queue_resources: dict[str, Any]
) -> None:
    compute = _props(queue_resources["neuron"]["ces"][0])["ComputeResources"]
    assert all(t.startswith("inf2.") for t in compute["InstanceTypes"])
    override = compute["Ec2Configuration"][0]["ImageIdOverride"]["Ref"]
    parameter = sample.template["Parameters"][override]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"] == (
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"
    )


def test_efa_queue_is_wired_for_tightly_coupled_jobs(
    sample: Any, sample_template: Template, queue_resources: dict[str, Any]
) -> None:
    resources = sample.template["Resources"]
    compute = _props(queue_resources["efa"]["ces"][0])["ComputeResources"]
    assert compute["Type"] == "EC2", "EFA is on-demand only"
    assert "SecurityGroupIds" not in compute, "groups live on the EFA interfaces"
    assert len(compute["Subnets"]) == 1, "a cluster placement group is one AZ"
    subnet = resources[compute["Subnets"][0]["Ref"]]["Properties"]
    assert subnet["MapPublicIpOnLaunch"] is False, "EFA needs private subnets"
    group_id = compute["PlacementGroup"]["Fn::GetAtt"][0]
    assert resources[group_id]["Properties"]["Strategy"] == "cluster"

    template_id = compute["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
    interfaces = resources[template_id]["Properties"]["LaunchTemplateData"]["NetworkInterfaces"]
    assert [i["InterfaceType"] for i in interfaces] == ["efa"]  # c5n.18xlarge: one card
    efa_group = interfaces[0]["Groups"][0]["Fn::GetAtt"][0]
    sample_template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": {"Fn::GetAtt": [efa_group, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [efa_group, "GroupId"]},
            "IpProtocol": "-1",
        },
    )
    queue = _static_descriptor(sample.template)["queues"]
    assert next(q for q in queue if q["key"] == "efa")["multi_node"] is True


def test_created_vpc_is_cost_aware(sample_template: Template) -> None:
    # The sample has an EFA queue, so private subnets and exactly one NAT gateway.
    sample_template.resource_count_is("AWS::EC2::NatGateway", 1)
    sample_template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": Match.any_value()},
    )


def test_datastore_bucket_is_private_encrypted_and_retained(sample_template: Template) -> None:
    sample_template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "BucketEncryption": Match.any_value(),
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {
                        "Rules": Match.array_with(
                            [
                                Match.object_like(
                                    {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
                                )
                            ]
                        )
                    },
                }
            ),
        },
    )
    sample_template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    sample_template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def _policy_statements(sample: Any, role_logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for resource in sample.template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_logical_id} in resource["Properties"].get("Roles", []):
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def test_job_role_reaches_only_the_datastore_prefix(sample: Any) -> None:
    descriptor = _static_descriptor(sample.template)
    role = _logical_id(descriptor["job_role_arn"])
    role_props = sample.template["Resources"][role]["Properties"]
    trust = role_props["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"]["Service"] for s in trust] == ["ecs-tasks.amazonaws.com"]
    assert "ManagedPolicyArns" not in role_props
    statements = _policy_statements(sample, role)
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert all(a.startswith("s3:") for a in actions)
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batchwright", "batchwright/*"]}}
    objects = next(s for s in statements if "s3:GetObject" in s["Action"])
    assert objects["Resource"]["Fn::Join"][1][-1] == "/batchwright/*"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """IAM's evaluation of identity statements: an explicit deny wins, else any allow."""

    def matches(statement: dict[str, Any]) -> bool:
        resources = [render_intrinsics(r) for r in _listed(statement["Resource"])]
        return any(fnmatchcase(action, a) for a in _listed(statement["Action"])) and any(
            fnmatchcase(resource, r) for r in resources
        )

    if any(s.get("Effect") == "Deny" and matches(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in statements)


def test_only_the_submitter_writes_the_code_jobs_run(sample: Any) -> None:
    job_role = _policy_statements(
        sample, _logical_id(_static_descriptor(sample.template)["job_role_arn"])
    )
    (submitter,) = (
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in sample.template["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
    )
    objects = next(s for s in job_role if "s3:GetObject" in s["Action"])
    bucket = render_intrinsics(objects["Resource"]).removesuffix("/batchwright/*")
    package = f"{bucket}/batchwright/code/{'0' * 64}.tar.gz"
    payload = f"{bucket}/batchwright/code/payloads/{'1' * 64}.json"
    artifact = f"{bucket}/batchwright/TrainFlow/data/ab/{'a' * 64}"
    for code in (package, payload):
        for write in ("s3:PutObject", "s3:DeleteObject"):
            assert not _allowed(job_role, write, code), (write, code)
            assert _allowed(submitter, write, code), (write, code)
        assert _allowed(job_role, "s3:GetObject", code)
    # Artifacts stay writable to jobs, as they must be.
    assert _allowed(job_role, "s3:PutObject", artifact)
    assert not _allowed(job_role, "s3:PutObject", f"{bucket}/elsewhere/code/x")
    assert [s["Effect"] for s in job_role].count("Deny") == 1


def test_execution_role_can_pull_images_and_write_logs(sample: Any) -> None:
    role = _logical_id(_static_descriptor(sample.template)["execution_role_arn"])
    statements = _policy_statements(sample, role)
    actions = json.dumps([s["Action"] for s in statements])
    for needed in ("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "logs:PutLogEvents"):
        assert needed in actions


def test_instance_role_uses_the_ecs_managed_policy(sample_template: Template) -> None:
    managed = Capture()
    sample_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {"Statement": [Match.object_like({"Principal": {"Service": "ec2.amazonaws.com"}})]}
            ),
            "ManagedPolicyArns": managed,
        },
    )
    assert "AmazonEC2ContainerServiceforEC2Role" in json.dumps(managed.as_array())


def test_submitter_policy_is_scoped_and_exposed(sample: Any, sample_template: Template) -> None:
    policies = [
        r for r in sample.template["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"
    ]
    assert len(policies) == 1
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    by_sid = {s.get("Sid"): s for s in statements}
    descriptor = _static_descriptor(sample.template)
    passed = by_sid["PassOnlyTheJobRoles"]["Resource"]
    assert {_logical_id(render_intrinsics(r)) for r in passed} == {
        _logical_id(descriptor["job_role_arn"]),
        _logical_id(descriptor["execution_role_arn"]),
    }
    submit = by_sid["SubmitToTheseQueues"]["Resource"]
    queue_ids = {_logical_id(q["arn"]) for q in descriptor["queues"]}
    assert queue_ids <= {_logical_id(render_intrinsics(r)) for r in submit if "Fn::GetAtt" in r}
    assert "ReadJobLogs" in by_sid and "ReadWriteDatastoreObjects" in by_sid
    assert by_sid["ReadEnvironmentStack"]["Resource"] == {"Ref": "AWS::StackId"}
    assert by_sid["ReadEnvironmentDescriptor"]["Action"] == "ssm:GetParameter"
    listing = by_sid["ListEnvironments"]
    assert listing["Action"] == "ssm:GetParametersByPath"
    assert render_intrinsics(listing["Resource"]).endswith(":parameter/batchwright/environments"), (
        listing
    )
    sample_template.has_output("BatchwrightSubmitterPolicy", {"Value": {"Ref": Match.any_value()}})


def test_descriptor_is_published_three_ways(sample: Any, sample_template: Template) -> None:
    outputs = sample.template["Outputs"]
    assert {
        DESCRIPTOR_OUTPUT_KEY,
        DESCRIPTOR_PARAMETER_OUTPUT_KEY,
        METAFLOW_PROFILE_OUTPUT_KEY,
    } <= set(outputs)
    parameter_id = outputs[DESCRIPTOR_PARAMETER_OUTPUT_KEY]["Value"]["Ref"]
    parameter = sample.template["Resources"][parameter_id]["Properties"]
    assert parameter["Tier"] == "Intelligent-Tiering"
    # One name per stack under one path: an account's environments are one
    # GetParametersByPath away.
    assert parameter["Name"] == descriptor_parameter_name("BatchwrightSample")
    assert parameter["Name"] == "/batchwright/environments/BatchwrightSample"
    assert parameter["Value"] == outputs[DESCRIPTOR_OUTPUT_KEY]["Value"]
    assert sample.template["Parameters"]["DefaultImage"]["Default"] == ""
    profile = json.loads(render_output(sample.template, METAFLOW_PROFILE_OUTPUT_KEY))
    assert profile["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert profile["METAFLOW_DATATOOLS_S3ROOT"].endswith("/batchwright/data")
    # The sample's image is the DefaultImage parameter (chosen at deploy time), empty by
    # default: the job image the stack builds, in the account's bootstrap repository. The
    # profile names the image, with its registry inside it, and no separate registry.
    assert "dkr.ecr" in profile["METAFLOW_BATCH_CONTAINER_IMAGE"]
    assert "container-assets" in profile["METAFLOW_BATCH_CONTAINER_IMAGE"]
    assert "METAFLOW_BATCH_CONTAINER_REGISTRY" not in profile
    for key in (
        "METAFLOW_DATASTORE_SYSROOT_S3",
        "METAFLOW_BATCH_JOB_QUEUE",
        "METAFLOW_ECS_S3_ACCESS_IAM_ROLE",
        "METAFLOW_ECS_FARGATE_EXECUTION_ROLE",
        "METAFLOW_BATCH_CONTAINER_IMAGE",
        "METAFLOW_BATCH_EMIT_TAGS",
    ):
        assert profile[key], key


def test_sample_passes_cfn_lint_without_errors(sample: Any) -> None:
    from cfnlint.api import lint  # type: ignore[import-untyped]

    matches = lint(sample.template_path.read_text(), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    warnings = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("W")]
    assert warnings == []


def test_sample_passes_cdk_nag_aws_solutions(sample: Any) -> None:
    violations = []
    for plugin in (sample.validation_report or {}).get("pluginReports", []):
        violations += [v["ruleName"] for v in plugin.get("violations", [])]
    assert sample.nag_failure is None, f"{violations}\n{sample.nag_failure}"
    assert violations == []


def test_every_nag_acknowledgment_names_its_reason(sample: Any) -> None:
    metadata = json.loads((sample.outdir / "BatchwrightSample.metadata.json").read_text())
    acknowledged: dict[str, str] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules" and "/Environment" in path:
                acknowledged.update(entry["data"])
    nag = {
        rule.removeprefix("Annotation::"): reason
        for rule, reason in acknowledged.items()
        if "AwsSolutions-" in rule
    }
    assert any(rule.startswith("AwsSolutions-IAM5[") for rule in nag)
    assert "AwsSolutions-S1" in nag
    for rule, reason in nag.items():
        assert isinstance(reason, str) and len(reason.split()) >= 6, (rule, reason)


SNAPSHOT = Path(__file__).with_name("snapshots") / "sample_descriptor.json"
_HASH = re.compile(r"([A-Za-z0-9]+?)[0-9A-F]{8}(?=[.>])")


def _masked_descriptor(template: dict[str, Any]) -> str:
    """The static descriptor (parameter defaults applied) with the hash part of logical ids
    masked, pretty-printed."""
    text = render_output(template, DESCRIPTOR_OUTPUT_KEY)
    masked = _HASH.sub(r"\1<hash>", text)
    return json.dumps(json.loads(masked), indent=2) + "\n"


def test_descriptor_matches_the_snapshot(sample: Any) -> None:
    """Contract 1 as the sample publishes it; an intended change is recorded with
    ``BATCHWRIGHT_UPDATE_SNAPSHOTS=1 pytest tests/cdk -k snapshot``."""
    current = _masked_descriptor(sample.template)
    if os.environ.get("BATCHWRIGHT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), "no snapshot yet; create it with BATCHWRIGHT_UPDATE_SNAPSHOTS=1"
    assert current == SNAPSHOT.read_text()
