"""The construct library on a platform team's terms: grants on any grantee, per-queue
grants, importers from another stack and another app, isolated networks with their VPC
endpoints, assignPublicIp per subnet kind, bring-your-own roles, groups and subnets,
secrets, the scoped submitter policy, lifecycle, tokens and the L2's instance types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from aws_cdk.assertions import Annotations, Match, Template

from batchwright.batch.definition import build_job_definition
from batchwright.batch.options import BatchOptions
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY, EnvironmentDescriptor
from batchwright.environment.sources import render_intrinsics
from batchwright.plan import environment_target
from batchwright_cdk import (
    BatchEnvironment,
    BatchEnvironmentStack,
    ComputeEnvironmentSpec,
    DatastoreLifecycle,
    EnvironmentConfigError,
    ImportedBatchEnvironment,
    QueueSpec,
)
from batchwright_cdk.iam import WILDCARD_REASONS
from batchwright_cdk.network import INTERFACE_ENDPOINTS, SECRET_ENDPOINTS

pytestmark = pytest.mark.cdk

ACCOUNT = "123456789012"
REGION = "eu-west-1"
CPU = QueueSpec.on_demand("cpu", instance_types=["c5.large"])
GPU = QueueSpec.gpu("gpu", instance_types=["g5.xlarge"])
FARGATE = QueueSpec.fargate("fargate")


def _stack(name: str = "Team", app: cdk.App | None = None) -> cdk.Stack:
    return cdk.Stack(app or cdk.App(), name, env=cdk.Environment(account=ACCOUNT, region=REGION))


def _descriptor(stack: cdk.Stack) -> EnvironmentDescriptor:
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    return EnvironmentDescriptor.from_json(
        render_intrinsics(outputs[DESCRIPTOR_OUTPUT_KEY]["Value"])
    )


def _statements(stack: cdk.Stack, resource_type: str = "AWS::IAM::Policy") -> list[dict[str, Any]]:
    """Every statement of every policy of ``resource_type`` in the stack, each with the
    policy's attachments under ``_to``."""
    template = Template.from_stack(stack).to_json()
    out = []
    for resource in template["Resources"].values():
        if resource["Type"] != resource_type:
            continue
        props = resource["Properties"]
        to = [
            r["Ref"] if isinstance(r, dict) else r  # a role imported by name is a string
            for key in ("Roles", "Users", "Groups")
            for r in props.get(key, [])
        ]
        for statement in props["PolicyDocument"]["Statement"]:
            out.append({**statement, "_to": to})
    return out


def _logical(stack: cdk.Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def _queue_refs(resource: Any) -> set[str]:
    resources = resource if isinstance(resource, list) else [resource]
    return {r["Fn::GetAtt"][0] for r in resources if isinstance(r, dict) and "Fn::GetAtt" in r}


# --- grants on any grantee -----------------------------------------------------------------


def test_grant_submit_takes_every_kind_of_grantee_and_returns_a_grant() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU, GPU])
    function = lambda_.Function(
        stack,
        "Trigger",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    grantees: dict[str, iam.IGrantable] = {
        "role": iam.Role(stack, "Ci", assumed_by=iam.AccountRootPrincipal()),
        "user": iam.User(stack, "Person"),
        "group": iam.Group(stack, "Team"),
        "function": function,
        "imported role": iam.Role.from_role_arn(stack, "Other", f"arn:aws:iam::{ACCOUNT}:role/x"),
    }
    for grantee in grantees.values():
        grant = env.grant_submit(grantee)
        assert isinstance(grant, iam.Grant) and grant.success
    queue_ids = {_logical(stack, q) for q in env.job_queues.values()}
    submit = [s for s in _statements(stack) if s["Action"] == "batch:SubmitJob"]
    by_principal: dict[str, set[str]] = {}
    for statement in submit:
        for principal in statement["_to"]:
            by_principal.setdefault(principal, set()).update(_queue_refs(statement["Resource"]))
    expected = {
        _logical(stack, grantees["role"]),
        _logical(stack, grantees["user"]),
        _logical(stack, grantees["group"]),
        _logical(stack, function.role),
    }
    assert expected <= set(by_principal)
    assert all(by_principal[p] == queue_ids for p in expected)
    # The imported (mutable) role gets a policy of its own, attached by name.
    assert by_principal["x"] == queue_ids
    assert not Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("cannot"))


def test_a_per_queue_grant_names_only_that_queue_and_later_queues_join_the_full_grant() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU, GPU])
    gpu_team = iam.Role(stack, "GpuTeam", assumed_by=iam.AccountRootPrincipal())
    everyone = iam.Role(stack, "Everyone", assumed_by=iam.AccountRootPrincipal())
    env.grant_submit_job(gpu_team, "gpu")
    env.grant_submit(everyone)
    late = env.add_queue(FARGATE)
    queues = {s["_to"][0]: s for s in _statements(stack) if s["Action"] == "batch:SubmitJob"}
    queue_statements = {
        principal: _queue_refs(s["Resource"])
        for s in _statements(stack)
        if s["Action"] == "batch:SubmitJob" and _queue_refs(s["Resource"])
        for principal in s["_to"]
    }
    assert queues
    assert queue_statements[_logical(stack, gpu_team)] == {_logical(stack, env.job_queues["gpu"])}
    assert queue_statements[_logical(stack, everyone)] == {
        _logical(stack, q) for q in (env.job_queues["cpu"], env.job_queues["gpu"], late)
    }
    # The managed policy follows later queues too.
    managed = _statements(stack, "AWS::IAM::ManagedPolicy")
    managed_queues = set().union(
        *(_queue_refs(s["Resource"]) for s in managed if s["Action"] == "batch:SubmitJob")
    )
    assert _logical(stack, late) in managed_queues
    with pytest.raises(EnvironmentConfigError, match="names no queue"):
        env.grant_submit_job(gpu_team, "tpu")


def test_an_immutable_grantee_gets_a_warning_and_an_output_instead_of_a_silent_loss() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU])
    locked = iam.Role.from_role_arn(
        stack, "Locked", f"arn:aws:iam::{ACCOUNT}:role/ci", mutable=False
    )
    env.grant_submit(locked)
    warnings = Annotations.from_stack(stack).find_warning("/Team/Locked", Match.any_value())
    assert warnings and "BatchwrightSubmitterPolicyForLocked" in str(warnings[0].entry.data)
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    document = json.loads(
        render_intrinsics(outputs["BatchwrightSubmitterPolicyForLocked"]["Value"])
    )
    actions = {a for s in document["Statement"] for a in _list(s["Action"])}
    assert {"batch:SubmitJob", "batch:RegisterJobDefinition", "iam:PassRole"} <= actions


def test_the_policy_output_of_an_immutable_grantee_names_queues_added_later() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU])
    locked = iam.Role.from_role_arn(
        stack, "Locked", f"arn:aws:iam::{ACCOUNT}:role/ci", mutable=False
    )
    env.grant_submit(locked)
    late = env.add_queue(GPU)
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    value = outputs["BatchwrightSubmitterPolicyForLocked"]["Value"]
    assert _logical(stack, late) in json.dumps(value)


def test_a_function_with_a_brought_role_is_granted_without_a_warning() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU])
    role = iam.Role(stack, "FnRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    function = lambda_.Function(
        stack,
        "Fn",
        role=role,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    env.grant_submit(function)
    assert not Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("cannot"))
    submit = [s for s in _statements(stack) if s["Action"] == "batch:SubmitJob"]
    assert any(_logical(stack, role) in s["_to"] for s in submit)


def test_secrets_on_an_immutable_execution_role_are_warned_about() -> None:
    stack = _stack()
    execution = iam.Role.from_role_arn(
        stack, "Exec", f"arn:aws:iam::{ACCOUNT}:role/exec", mutable=False
    )
    BatchEnvironment(stack, "Env", queues=[CPU], execution_role=execution, secrets=[_secret(stack)])
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("not given read access to the secrets")
    )
    assert len(warnings) == 1 and "team/db-password" in str(warnings[0].entry.data)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- importers ------------------------------------------------------------------------------


def test_a_second_stack_of_the_same_app_grants_a_lambda_through_cross_stack_references() -> None:
    app = cdk.App()
    environment = BatchEnvironmentStack(
        app, "Platform", queues=[CPU, GPU], env=cdk.Environment(account=ACCOUNT, region=REGION)
    )
    consumers = _stack("Consumers", app)
    function = lambda_.Function(
        consumers,
        "Nightly",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    grant = environment.batch_environment.grant_submit_job(function, "gpu")
    assert grant.success
    assembly = app.synth()
    template = assembly.get_stack_by_name("Consumers").template
    text = json.dumps(template)
    assert "Fn::ImportValue" in text and "batch:SubmitJob" in text
    exports = assembly.get_stack_by_name("Platform").template["Outputs"]
    assert any("Export" in o for o in exports.values())


def _deployed_descriptor() -> str:
    """A descriptor as a deployed environment publishes it (values resolved)."""
    queue = "arn:aws:batch:eu-west-1:123456789012:job-queue/{}"
    return json.dumps(
        {
            "version": 1,
            "name": "Platform",
            "region": REGION,
            "datastore": {"bucket": "platform-datastore", "prefix": "batchwright"},
            "job_role_arn": f"arn:aws:iam::{ACCOUNT}:role/platform-job",
            "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/platform-exec",
            "log_group": "platform-jobs",
            "default_image": "public.ecr.aws/docker/library/python:3.11-slim",
            "queues": [
                {
                    "key": key,
                    "name": f"q-{key}",
                    "arn": queue.format(f"q-{key}"),
                    "platform": "EC2",
                    "compute_environments": [
                        {
                            "arn": f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/{key}",
                            "platform": "EC2",
                            "order": 1,
                            "max_vcpus": 16,
                        }
                    ],
                }
                for key in ("cpu", "gpu")
            ],
        }
    )


def test_another_app_imports_the_environment_from_its_descriptor_parameter() -> None:
    parameter = "/batchwright/environments/Platform"
    key = f"ssm:account={ACCOUNT}:parameterName={parameter}:region={REGION}"
    app = cdk.App(context={key: _deployed_descriptor()})
    stack = _stack("OtherApp", app)
    imported = BatchEnvironment.from_descriptor_parameter(stack, "Platform", parameter)
    assert isinstance(imported, ImportedBatchEnvironment)
    assert sorted(imported.job_queues) == ["cpu", "gpu"]
    ci = iam.Role(stack, "Ci", assumed_by=iam.AccountRootPrincipal())
    assert imported.grant_submit_job(ci, "cpu").success
    statements = _statements(stack)
    submit = next(
        s for s in statements if s["Resource"] == imported.job_queues["cpu"].job_queue_arn
    )
    assert submit["Action"] == "batch:SubmitJob"
    text = json.dumps(statements)
    assert "q-gpu" not in text  # the per-queue grant names only its queue
    assert "arn:aws:iam::123456789012:role/platform-job" in text  # PassRole on the real roles
    assert "platform-datastore" in text and "platform-jobs" in text
    assert parameter.lstrip("/") in text  # reading the descriptor


def test_the_first_lookup_pass_synthesizes_and_asks_cdk_for_the_parameter() -> None:
    app = cdk.App()
    stack = _stack("Fresh", app)
    imported = ImportedBatchEnvironment.from_descriptor_parameter(
        stack, "Platform", "/batchwright/environments/Platform"
    )
    assert imported.job_queues == {}
    # Grants made before CDK knows the queues still synthesize (the template is discarded).
    ci = iam.Role(stack, "Ci", assumed_by=iam.AccountRootPrincipal())
    assert imported.grant_submit_job(ci, "gpu").success and imported.grant_submit(ci).success
    directory = Path(app.synth().directory)
    missing = json.loads((directory / "manifest.json").read_text()).get("missing", [])
    assert [m["key"] for m in missing] == [
        f"ssm:account={ACCOUNT}:parameterName=/batchwright/environments/Platform:region={REGION}"
    ]


def test_a_parameter_that_holds_no_descriptor_is_a_clear_error() -> None:
    parameter = "/batchwright/environments/Nope"
    key = f"ssm:account={ACCOUNT}:parameterName={parameter}:region={REGION}"
    stack = _stack("Bad", cdk.App(context={key: "{}"}))
    with pytest.raises(EnvironmentConfigError, match="holds no batchwright descriptor"):
        BatchEnvironment.from_descriptor_parameter(stack, "Platform", parameter)


def test_attributes_import_invents_nothing() -> None:
    stack = _stack()
    imported = BatchEnvironment.from_environment_attributes(
        stack,
        "Platform",
        environment_name="Platform",
        bucket_name="platform-datastore",
        job_role_arn=f"arn:aws:iam::{ACCOUNT}:role/platform-job",
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/platform-exec",
        log_group_name="platform-jobs",
        queue_arns={"cpu": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/q-cpu"},
    )
    assert imported.bucket.bucket_name == "platform-datastore"
    assert imported.job_queues["cpu"].job_queue_arn.endswith("job-queue/q-cpu")
    reader = iam.Role(stack, "Reader", assumed_by=iam.AccountRootPrincipal())
    assert imported.grant_datastore(reader).success
    resources = json.dumps([s["Resource"] for s in _statements(stack)])
    assert "platform-datastore/batchwright/*" in resources


# --- networks ----------------------------------------------------------------------------


def _types(stack: cdk.Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in Template.from_stack(stack).to_json()["Resources"].values():
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    return counts


def test_a_created_isolated_vpc_has_the_endpoints_and_no_route_to_the_internet() -> None:
    stack = _stack()
    env = BatchEnvironment(
        stack, "Env", isolated_subnets=True, queues=[CPU, FARGATE, QueueSpec.efa("efa")]
    )
    counts = _types(stack)
    assert "AWS::EC2::NatGateway" not in counts and "AWS::EC2::InternetGateway" not in counts
    assert counts["AWS::EC2::VPCEndpoint"] == len(INTERFACE_ENDPOINTS) + 1  # + S3 gateway
    assert set(env.endpoints) == set(INTERFACE_ENDPOINTS)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface", "PrivateDnsEnabled": True}
    )
    # Endpoints answer HTTPS from the compute security group only.
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "FromPort": 443,
            "ToPort": 443,
            "SourceSecurityGroupId": {
                "Fn::GetAtt": [_logical(stack, env.security_groups[0]), "GroupId"]
            },
        },
    )
    # Compute environments wait for the endpoints (else Batch marks them INVALID).
    resources = template.to_json()["Resources"]
    ce = resources[_logical(stack, env.compute_environments["cpu"][0])]
    endpoint_ids = {_logical(stack, e) for e in env.endpoints.values()}
    assert endpoint_ids <= set(ce.get("DependsOn", []))
    descriptor = _descriptor(stack)
    assert descriptor.queue("fargate").compute_environments[0].assign_public_ip is False  # type: ignore[union-attr]
    # EFA nodes carry their own group; it reaches the endpoints too.
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "FromPort": 443,
            "SourceSecurityGroupId": {"Fn::GetAtt": [_logical(stack, env._efa_group()), "GroupId"]},
        },
    )


def _isolated_vpc(stack: cdk.Stack) -> ec2.Vpc:
    """A brought VPC with isolated subnets only (no NAT, no internet gateway)."""
    return ec2.Vpc(
        stack,
        "Locked",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Iso", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )


def test_a_brought_isolated_vpc_must_choose_its_endpoints() -> None:
    stack = _stack()
    vpc = _isolated_vpc(stack)
    with pytest.raises(EnvironmentConfigError, match="vpc_endpoints=True") as caught:
        BatchEnvironment(stack, "Env", vpc=vpc, queues=[CPU])
    assert "vpc_endpoints" in str(caught.value) and "isolated" in str(caught.value)
    env = BatchEnvironment(
        stack, "Env2", vpc=vpc, vpc_endpoints=True, secrets=[_secret(stack)], queues=[CPU]
    )
    assert set(env.endpoints) == {*INTERFACE_ENDPOINTS, *SECRET_ENDPOINTS, "S3"}


def test_a_subnet_selection_the_vpc_cannot_satisfy_is_a_clear_error() -> None:
    stack = _stack()
    vpc = _isolated_vpc(stack)
    with pytest.raises(EnvironmentConfigError) as caught:
        BatchEnvironment(
            stack,
            "Env",
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            queues=[CPU],
        )
    message = str(caught.value)
    assert "subnets" in message and "2 isolated subnets" in message


def test_subnets_imported_by_id_need_their_kind_said() -> None:
    stack = _stack()
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Theirs", vpc_id="vpc-1234", availability_zones=["eu-west-1a", "eu-west-1b"]
    )
    subnets = ec2.SubnetSelection(
        subnets=[
            ec2.Subnet.from_subnet_attributes(
                stack, f"S{i}", subnet_id=f"subnet-{i}", availability_zone=f"eu-west-1{zone}"
            )
            for i, zone in enumerate("ab")
        ]
    )
    with pytest.raises(EnvironmentConfigError, match="subnet_kind='public'"):
        BatchEnvironment(stack, "Env", vpc=vpc, subnets=subnets, queues=[FARGATE])
    with pytest.raises(EnvironmentConfigError, match="subnet_kind='Public' is not a kind"):
        BatchEnvironment(
            stack,
            "Bad",
            vpc=vpc,
            subnets=subnets,
            subnet_kind="Public",
            queues=[FARGATE],  # type: ignore[arg-type]
        )
    BatchEnvironment(
        stack, "Env2", vpc=vpc, subnets=subnets, subnet_kind="public", queues=[FARGATE]
    )
    fargate = _descriptor(stack).queue("fargate")
    assert fargate is not None and fargate.compute_environments[0].assign_public_ip is True


@pytest.mark.parametrize(
    ("kind", "public_ip"),
    [("public", True), ("private", False), ("isolated", False)],
)
def test_fargate_takes_a_public_ip_only_in_public_subnets(kind: str, public_ip: bool) -> None:
    stack = _stack()
    subnet_type = {
        "public": ec2.SubnetType.PUBLIC,
        "private": ec2.SubnetType.PRIVATE_WITH_EGRESS,
        "isolated": ec2.SubnetType.PRIVATE_ISOLATED,
    }[kind]
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=1 if kind == "private" else 0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="Iso", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
    )
    BatchEnvironment(
        stack,
        "Env",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=subnet_type),
        vpc_endpoints=False,
        queues=[FARGATE, CPU],
    )
    descriptor = _descriptor(stack)
    fargate = descriptor.queue("fargate")
    assert fargate is not None and fargate.compute_environments[0].assign_public_ip is public_ip
    # The runtime's job definition for that queue follows the descriptor.
    options = BatchOptions.from_attributes("train", {"cpu": 1, "memory": 2048})
    body = build_job_definition(options, environment_target(descriptor, fargate)).body
    assign = body["containerProperties"]["networkConfiguration"]["assignPublicIp"]
    assert assign == ("ENABLED" if public_ip else "DISABLED")


# --- bring your own ------------------------------------------------------------------------


def test_every_bring_your_own_prop_is_used_and_passed_through_the_stack() -> None:
    app = cdk.App()
    shared = _stack("Shared", app)
    vpc = ec2.Vpc(shared, "Vpc", max_azs=2, nat_gateways=1)
    group = ec2.SecurityGroup(shared, "Jobs", vpc=vpc)
    execution = iam.Role(shared, "Exec", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    instance = iam.Role(shared, "Instance", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    job = iam.Role(shared, "Job", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    bucket = s3.Bucket(shared, "Data")
    secret = _secret(shared)
    stack = BatchEnvironmentStack(
        app,
        "Env",
        env=cdk.Environment(account=ACCOUNT, region=REGION),
        queues=[CPU, FARGATE],
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        security_groups=[group],
        bucket=bucket,
        job_role=job,
        execution_role=execution,
        instance_role=instance,
        secrets=[secret],
    )
    env = stack.batch_environment
    assert env.security_groups == (group,)
    assert env.execution_role is execution and env.instance_role is instance
    assert env.job_role is job and env.bucket is bucket
    counts = _types(stack)
    assert "AWS::IAM::Role" not in counts  # nothing created that was brought
    assert "AWS::S3::Bucket" not in counts and "AWS::EC2::SecurityGroup" not in counts
    template = Template.from_stack(stack).to_json()
    ces = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Batch::ComputeEnvironment"
    ]
    text = json.dumps(ces)
    assert "Shared" in text  # group and subnets are cross-stack imports
    for ce in ces:
        resources = ce["Properties"]["ComputeResources"]
        assert len(resources["SecurityGroupIds"]) == 1
    descriptor = _descriptor(stack)
    assert descriptor.queue("fargate").compute_environments[0].assign_public_ip is True  # type: ignore[union-attr]


# --- secrets -------------------------------------------------------------------------------


def _secret(stack: cdk.Stack) -> secretsmanager.ISecret:
    return secretsmanager.Secret.from_secret_name_v2(stack, "DbPassword", "team/db-password")


def test_secrets_are_readable_by_the_execution_role_only() -> None:
    stack = _stack()
    parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
        stack, "Token", parameter_name="/team/token"
    )
    env = BatchEnvironment(stack, "Env", queues=[CPU], secrets=[_secret(stack), parameter])
    statements = _statements(stack)
    execution = _logical(stack, env.execution_role)
    job = _logical(stack, env.job_role)
    reads = [
        s
        for s in statements
        if {"secretsmanager:GetSecretValue", "ssm:GetParameters"} & set(_list(s["Action"]))
    ]
    assert {a for s in reads for a in _list(s["Action"])} >= {
        "secretsmanager:GetSecretValue",
        "ssm:GetParameters",
    }
    assert all(s["_to"] == [execution] for s in reads)
    assert all(job not in s["_to"] for s in reads)


# --- the submitter policy -------------------------------------------------------------------


def test_the_submitter_policy_has_no_avoidable_wildcard_and_says_why_for_each_left() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", queues=[CPU])
    document = stack.resolve(env.submitter_policy.document.to_json())
    statements = document["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    text = json.dumps(statements)
    assert "job-definition/*" not in text  # only the runtime's own definitions
    assert "job-definition/batchwright-*" in json.dumps(by_sid["ManageOwnDefinitions"])
    for sid in ("ControlOwnJobs", "SubmitOwnJobs", "TagOwnJobs"):
        assert json.dumps(by_sid[sid]["Condition"]).count("batchwright:run") == 1, sid
    # Array children have no tags of their own: only child ids, without a condition.
    assert json.dumps(by_sid["ControlArrayChildren"]["Resource"]).endswith(':job/*:*"]]}')
    for statement in statements:
        wildcard = "*" in json.dumps(statement.get("Resource"))
        if wildcard and statement["Effect"] == "Allow":
            assert statement["Sid"] in WILDCARD_REASONS, statement["Sid"]


# --- smaller things -------------------------------------------------------------------------


def test_datastore_lifecycle_expires_and_tiers_run_artifacts_when_asked() -> None:
    stack = _stack()
    BatchEnvironment(
        stack,
        "Env",
        queues=[CPU],
        datastore_lifecycle=DatastoreLifecycle(
            expire_after_days=90, intelligent_tiering_after_days=0
        ),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Id": "BatchwrightArtifacts",
                                "Prefix": "batchwright/",
                                "ExpirationInDays": 90,
                                "Transitions": [
                                    {"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 0}
                                ],
                            }
                        )
                    ]
                )
            }
        },
    )
    with pytest.raises(EnvironmentConfigError, match="is not before expire_after_days"):
        DatastoreLifecycle(expire_after_days=30, intelligent_tiering_after_days=30)


def test_numeric_props_accept_deploy_time_tokens() -> None:
    stack = _stack()
    limit = cdk.CfnParameter(stack, "MaxVcpus", type="Number", default=64)
    spec = QueueSpec(
        key="cpu",
        compute_environments=(
            ComputeEnvironmentSpec(
                platform="EC2", instance_types=("c5.large",), max_vcpus=limit.value_as_number
            ),
        ),
    )
    env = BatchEnvironment(stack, "Env", queues=[spec])
    resources = Template.from_stack(stack).to_json()["Resources"]
    ce = resources[_logical(stack, env.compute_environments["cpu"][0])]
    assert ce["Properties"]["ComputeResources"]["MaxvCpus"] == {"Ref": "MaxVcpus"}
    with pytest.raises(EnvironmentConfigError, match="must be positive"):
        ComputeEnvironmentSpec(platform="EC2", max_vcpus=0)


def test_instance_types_go_through_the_l2_so_it_reports_them_and_keeps_additions() -> None:
    stack = _stack()
    env = BatchEnvironment(
        stack,
        "Env",
        queues=[QueueSpec.on_demand("cpu", instance_types=["c5.large", "m5", "default_x86_64"])],
    )
    ce = env.compute_environments["cpu"][0]
    assert [t.to_string() for t in ce.instance_types] == ["c5.large"]  # type: ignore[union-attr]
    ce.add_instance_type(ec2.InstanceType("r5.large"))  # type: ignore[union-attr]
    resources = Template.from_stack(stack).to_json()["Resources"]
    types = resources[_logical(stack, ce)]["Properties"]["ComputeResources"]["InstanceTypes"]
    assert sorted(types) == ["c5.large", "default_x86_64", "m5", "r5.large"]


def test_efa_nodes_may_send_to_and_receive_from_each_other() -> None:
    stack = _stack()
    env = BatchEnvironment(stack, "Env", private_subnets=True, queues=[QueueSpec.efa("efa")])
    group = env._efa_group()  # the group the EFA interfaces carry
    group_ref = {"Fn::GetAtt": [_logical(stack, group), "GroupId"]}
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"IpProtocol": "-1", "GroupId": group_ref, "SourceSecurityGroupId": group_ref},
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {"IpProtocol": "-1", "GroupId": group_ref, "DestinationSecurityGroupId": group_ref},
    )


def test_specs_take_keywords_only() -> None:
    with pytest.raises(TypeError):
        ComputeEnvironmentSpec("EC2")  # type: ignore[misc]
    with pytest.raises(TypeError):
        QueueSpec("cpu", ())  # type: ignore[misc]


def test_an_arm64_queue_on_the_x86_job_image_is_warned_about() -> None:
    app = cdk.App()
    stack = BatchEnvironmentStack(
        app,
        "Graviton",
        env=cdk.Environment(account=ACCOUNT, region=REGION),
        queues=[CPU, QueueSpec.on_demand("arm", instance_types=["m7g.large"])],
    )
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("built for x86_64")
    )
    assert len(warnings) == 1 and "'arm'" in str(warnings[0].entry.data)
    assert stack.job_image is not None
