"""How a local deployment changes what an earlier one made, as CloudFormation would.

A deployment records, in the emulator itself, each resource it made: its type, its
resolved properties, its physical id and attributes, and its deletion policies
(:class:`Record`, stored by :func:`save_state`). The next deployment of the same stack
compares each resource with its record:

- **unchanged** (same type and properties): kept as it is, no API call;
- **updated in place**: only properties CloudFormation updates without replacement
  changed (:data:`IN_PLACE`, read from each resource type's "Update requires: No
  interruption" properties in the CloudFormation reference); the emulator's update API
  applies them and the physical id stays;
- **replaced**: anything else changed; a new resource is made, and the old one is
  deleted at the end, unless its ``UpdateReplacePolicy`` is ``Retain``;
- **deleted**: in the record, no longer in the template; deleted in reverse order of
  creation, unless its ``DeletionPolicy`` is ``Retain`` (the datastore bucket).

:func:`delete` is what ``batchwright localaws destroy`` uses for every resource, with the
same policies. A property this module does not list as updatable makes the resource be
replaced: that is CloudFormation's rule for most properties of these types, and the safe
reading for the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

#: The emulator bucket that holds the deployments' records (it lives and dies with the
#: emulator, as the resources it describes do).
STATE_BUCKET = "batchwright-localaws-deployments"
STATE_VERSION = 1
#: Deletion policies that keep a resource.
RETAIN = ("Retain", "RetainExceptOnCreate", "Snapshot")


class Deployer(Protocol):
    """What updates and deletions need of a deployment."""

    def client(self, service: str) -> Any:
        """A client of the emulator."""
        ...

    def request(
        self, service: str, operation: str, properties: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``properties`` shaped as the operation's request."""
        ...

    def note(self, text: str) -> None:
        """Records an adaptation."""
        ...


@dataclass
class Record:
    """One resource a deployment made."""

    type: str
    properties: dict[str, Any]
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    deletion_policy: str = "Delete"
    update_replace_policy: str = "Delete"


@dataclass
class StackState:
    """What a stack's last local deployment made, in creation order."""

    resources: dict[str, Record] = field(default_factory=dict)
    service_role: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "service_role": self.service_role,
                "resources": {k: asdict(v) for k, v in self.resources.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StackState:
        data = json.loads(text)
        return cls(
            resources={k: Record(**v) for k, v in data.get("resources", {}).items()},
            service_role=data.get("service_role"),
        )


def _key(stack: str) -> str:
    return f"stacks/{stack}.json"


def load_state(s3: Any, stack: str) -> StackState | None:
    """The record of the stack's last local deployment, if the emulator holds one."""
    try:
        body = s3.get_object(Bucket=STATE_BUCKET, Key=_key(stack))["Body"].read()
    except Exception as error:  # no bucket yet, or no such stack
        if "NoSuch" in type(error).__name__ or "NoSuch" in str(error):
            return None
        raise
    return StackState.from_json(body.decode())


def save_state(s3: Any, stack: str, state: StackState) -> None:
    """Stores the record of a deployment."""
    try:
        s3.create_bucket(Bucket=STATE_BUCKET)
    except Exception as error:
        if "BucketAlready" not in str(error):
            raise
    s3.put_object(Bucket=STATE_BUCKET, Key=_key(stack), Body=state.to_json().encode())


def forget_state(s3: Any, stack: str) -> None:
    """Removes the record of a destroyed stack."""
    s3.delete_object(Bucket=STATE_BUCKET, Key=_key(stack))


def normal(value: Any) -> Any:
    """``value`` as it reads back from a record (JSON types only)."""
    return json.loads(json.dumps(value))


# --- what changed, and whether it updates in place ------------------------------------------

_MISSING = object()


def changed_paths(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The dotted paths of the properties that differ (into nested objects, not lists)."""
    paths: set[str] = set()
    for key in set(old) | set(new):
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            paths |= changed_paths(before, after, f"{prefix}{key}.")
        else:
            paths.add(f"{prefix}{key}")
    return paths


#: The properties each type updates in place ("Update requires: No interruption" in the
#: CloudFormation reference); a path covers everything below it.
IN_PLACE: dict[str, frozenset[str]] = {
    "AWS::Batch::ComputeEnvironment": frozenset(
        {
            "ComputeResources.MaxvCpus",
            "ComputeResources.MinvCpus",
            "ComputeResources.DesiredvCpus",
            "State",
        }
    ),
    "AWS::Batch::JobQueue": frozenset({"Priority", "State", "ComputeEnvironmentOrder"}),
    # Tags of parameters and log groups are not applied in the emulator (their creators
    # leave them out too), so updating them in place changes nothing there.
    "AWS::SSM::Parameter": frozenset({"Value", "Description", "AllowedPattern", "Tier", "Tags"}),
    "AWS::Logs::LogGroup": frozenset({"RetentionInDays", "Tags"}),
    "AWS::IAM::Policy": frozenset({"PolicyDocument", "PolicyName", "Roles"}),
    "AWS::IAM::ManagedPolicy": frozenset({"PolicyDocument"}),
    "AWS::IAM::Role": frozenset(
        {"AssumeRolePolicyDocument", "ManagedPolicyArns", "Policies", "Description"}
    ),
    "AWS::S3::Bucket": frozenset(
        {"BucketEncryption", "PublicAccessBlockConfiguration", "Tags", "LifecycleConfiguration"}
    ),
    "AWS::S3::BucketPolicy": frozenset({"PolicyDocument"}),
    # A state machine keeps its ARN through changes of its definition, role, logging,
    # tracing, encryption and tags; its name and type replace it.
    "AWS::StepFunctions::StateMachine": frozenset(
        {
            "Definition",
            "DefinitionString",
            "DefinitionS3Location",
            "DefinitionSubstitutions",
            "RoleArn",
            "LoggingConfiguration",
            "TracingConfiguration",
            "EncryptionConfiguration",
            "Tags",
        }
    ),
    # UpdateSchedule rewrites all of a schedule but its name and group.
    "AWS::Scheduler::Schedule": frozenset(
        {
            "Description",
            "EndDate",
            "FlexibleTimeWindow",
            "KmsKeyArn",
            "ScheduleExpression",
            "ScheduleExpressionTimezone",
            "StartDate",
            "State",
            "Target",
        }
    ),
    "AWS::Scheduler::ScheduleGroup": frozenset({"Tags"}),
}


def updates_in_place(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether every changed property of a ``kind`` resource updates without replacement."""
    allowed = IN_PLACE.get(kind)
    if allowed is None or kind not in UPDATERS:
        return False
    return all(
        any(path == p or path.startswith(p + ".") for p in allowed)
        for path in changed_paths(old, new)
    )


# --- updates -------------------------------------------------------------------------------

Updater = Callable[[Deployer, Record, dict[str, Any]], None]


def _update_compute_environment(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    sizes = {
        api: new["ComputeResources"][cfn]
        for cfn, api in (
            ("MaxvCpus", "maxvCpus"),
            ("MinvCpus", "minvCpus"),
            ("DesiredvCpus", "desiredvCpus"),
        )
        if cfn in (new.get("ComputeResources") or {})
    }
    request: dict[str, Any] = {"computeEnvironment": record.ref}
    if sizes:
        request["computeResources"] = {k: int(v) for k, v in sizes.items()}
    if new.get("State"):
        request["state"] = new["State"]
    d.client("batch").update_compute_environment(**request)


def _update_job_queue(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    changes = {k: new[k] for k in ("Priority", "State", "ComputeEnvironmentOrder") if k in new}
    request = d.request("batch", "UpdateJobQueue", changes | {"JobQueue": record.ref})
    d.client("batch").update_job_queue(**request)


def _update_parameter(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    request = d.request("ssm", "PutParameter", new | {"Name": record.ref, "Overwrite": True})
    request.pop("Tags", None)
    d.client("ssm").put_parameter(**request)
    record.attributes["Value"] = new.get("Value")


def _update_log_group(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    logs = d.client("logs")
    if "RetentionInDays" in new:
        logs.put_retention_policy(
            logGroupName=record.ref, retentionInDays=int(new["RetentionInDays"])
        )
    else:
        logs.delete_retention_policy(logGroupName=record.ref)


def _update_policy(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    iam = d.client("iam")
    old = record.properties
    document = json.dumps(new["PolicyDocument"])
    kept = set(new.get("Roles", [])) if old["PolicyName"] == new["PolicyName"] else set()
    for role in old.get("Roles", []):
        if role not in kept:
            iam.delete_role_policy(RoleName=role, PolicyName=old["PolicyName"])
    for role in new.get("Roles", []):
        iam.put_role_policy(RoleName=role, PolicyName=new["PolicyName"], PolicyDocument=document)
    record.ref = new["PolicyName"]


def _update_managed_policy(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    iam = d.client("iam")
    versions = iam.list_policy_versions(PolicyArn=record.ref)["Versions"]
    for version in sorted(versions, key=lambda v: str(v["CreateDate"]))[:-3]:
        if not version["IsDefaultVersion"]:  # AWS keeps at most 5 versions
            iam.delete_policy_version(PolicyArn=record.ref, VersionId=version["VersionId"])
    iam.create_policy_version(
        PolicyArn=record.ref, PolicyDocument=json.dumps(new["PolicyDocument"]), SetAsDefault=True
    )


def _update_role(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    iam = d.client("iam")
    old = record.properties
    name = record.ref
    if old.get("AssumeRolePolicyDocument") != new.get("AssumeRolePolicyDocument"):
        iam.update_assume_role_policy(
            RoleName=name, PolicyDocument=json.dumps(new["AssumeRolePolicyDocument"])
        )
    before, after = set(old.get("ManagedPolicyArns", [])), set(new.get("ManagedPolicyArns", []))
    for arn in sorted(before - after):
        iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    for arn in sorted(after - before):
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    kept = {p["PolicyName"] for p in new.get("Policies", [])}
    for policy in old.get("Policies", []):
        if policy["PolicyName"] not in kept:
            iam.delete_role_policy(RoleName=name, PolicyName=policy["PolicyName"])
    for policy in new.get("Policies", []):
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    if "Description" in new:
        iam.update_role(RoleName=name, Description=new["Description"])


def configure_bucket(d: Deployer, name: str, p: Mapping[str, Any]) -> None:
    """A bucket's encryption, public access block and tags (on creation and on update)."""
    s3 = d.client("s3")
    # CloudFormation and the S3 API spell these configurations differently.
    rules = p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if rules:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                    for r in rules
                    if "ServerSideEncryptionByDefault" in r
                ]
            },
        )
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                k: bool(v) for k, v in p["PublicAccessBlockConfiguration"].items()
            },
        )
    if p.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": p["Tags"]})


def _update_bucket(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    configure_bucket(d, record.ref, new)


def bucket_policy(d: Deployer, logical_id: str, p: Mapping[str, Any]) -> None:
    """Puts a bucket policy, without the TLS-only deny the emulator's HTTP cannot meet."""
    document = dict(p["PolicyDocument"])
    statements = document.get("Statement", [])
    kept = [s for s in statements if not _tls_only(s)]
    if len(kept) != len(statements):
        # The emulator serves plain HTTP on loopback, so a TLS-only deny would refuse
        # every request; on AWS the statement stands.
        d.note(f"{logical_id}: TLS-only statement not applied (the emulator speaks HTTP)")
    if kept:
        document["Statement"] = kept
        d.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))


def _tls_only(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    return (
        statement.get("Effect") == "Deny"
        and str(condition.get("aws:SecureTransport", "")).lower() == "false"
    )


def _update_bucket_policy(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    bucket_policy(d, "bucket policy", new)


#: A state machine's properties that give its definition.
DEFINITION_PROPERTIES = ("DefinitionString", "Definition", "DefinitionS3Location")
_SUBSTITUTION = re.compile(r"\$\{([^}]+)\}")


def state_machine_definition(d: Deployer, p: Mapping[str, Any]) -> str:
    """A state machine's definition as CloudFormation computes it from the properties:
    ``DefinitionString``, ``Definition`` (an object) or ``DefinitionS3Location`` (read from
    the emulator's S3, where the deploy publishes the stack's file assets), with each
    ``${name}`` of ``DefinitionSubstitutions`` replaced by its value."""
    if "DefinitionString" in p:
        text = str(p["DefinitionString"])
    elif "Definition" in p:
        text = json.dumps(p["Definition"])
    elif "DefinitionS3Location" in p:
        location = p["DefinitionS3Location"]
        where = {"Bucket": location["Bucket"], "Key": location["Key"]}
        if location.get("Version"):
            where["VersionId"] = location["Version"]
        text = d.client("s3").get_object(**where)["Body"].read().decode()
    else:
        raise ValueError(f"a state machine needs one of {', '.join(DEFINITION_PROPERTIES)}")
    substitutions = p.get("DefinitionSubstitutions") or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in substitutions:
            return match.group(0)
        value = substitutions[match.group(1)]
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return _SUBSTITUTION.sub(substitute, text) if substitutions else text


#: What CreateStateMachine and UpdateStateMachine take from the properties as written
#: (botocore's model renames them).
_STATE_MACHINE_SETTINGS = (
    "RoleArn",
    "LoggingConfiguration",
    "TracingConfiguration",
    "EncryptionConfiguration",
)


def state_machine_request(d: Deployer, name: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateStateMachine request of a state machine's properties."""
    body = {k: p[k] for k in (*_STATE_MACHINE_SETTINGS, "Tags") if k in p}
    body |= {"name": name, "definition": state_machine_definition(d, p)}
    if "StateMachineType" in p:
        body["type"] = p["StateMachineType"]
    return d.request("stepfunctions", "CreateStateMachine", body)


def _update_state_machine(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    old = record.properties
    body = {k: new[k] for k in _STATE_MACHINE_SETTINGS if k in new}
    # Settings gone from the template go back to what a state machine has without them.
    if "LoggingConfiguration" in old and "LoggingConfiguration" not in new:
        body["LoggingConfiguration"] = {"Level": "OFF"}
    if "TracingConfiguration" in old and "TracingConfiguration" not in new:
        body["TracingConfiguration"] = {"Enabled": False}
    body |= {"stateMachineArn": record.ref, "definition": state_machine_definition(d, new)}
    stepfunctions = d.client("stepfunctions")
    stepfunctions.update_state_machine(**d.request("stepfunctions", "UpdateStateMachine", body))
    _retag(d, "stepfunctions", record.ref, old.get("Tags", []), new.get("Tags", []))


def _retag(
    d: Deployer, service: str, arn: str, old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> None:
    """Applies a change of a resource's ``[{Key, Value}]`` tags through the service's
    TagResource/UntagResource (whose names botocore's model gives)."""
    if old == new:
        return
    client = d.client(service)
    gone = sorted({t["Key"] for t in old} - {t["Key"] for t in new})
    if gone:
        untag = d.request(service, "UntagResource", {"ResourceArn": arn, "TagKeys": gone})
        client.untag_resource(**untag)
    if new:
        client.tag_resource(**d.request(service, "TagResource", {"ResourceArn": arn, "Tags": new}))


def _update_schedule(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    # UpdateSchedule is a full rewrite: what the template leaves out goes to its default.
    request = d.request("scheduler", "UpdateSchedule", new | {"Name": record.ref})
    d.client("scheduler").update_schedule(**request)


def _update_schedule_group(d: Deployer, record: Record, new: dict[str, Any]) -> None:
    arn = record.attributes["Arn"]
    _retag(d, "scheduler", arn, record.properties.get("Tags", []), new.get("Tags", []))


UPDATERS: dict[str, Updater] = {
    "AWS::Batch::ComputeEnvironment": _update_compute_environment,
    "AWS::Batch::JobQueue": _update_job_queue,
    "AWS::SSM::Parameter": _update_parameter,
    "AWS::Logs::LogGroup": _update_log_group,
    "AWS::IAM::Policy": _update_policy,
    "AWS::IAM::ManagedPolicy": _update_managed_policy,
    "AWS::IAM::Role": _update_role,
    "AWS::S3::Bucket": _update_bucket,
    "AWS::S3::BucketPolicy": _update_bucket_policy,
    "AWS::StepFunctions::StateMachine": _update_state_machine,
    "AWS::Scheduler::Schedule": _update_schedule,
    "AWS::Scheduler::ScheduleGroup": _update_schedule_group,
}


# --- deletions -----------------------------------------------------------------------------

Deleter = Callable[[Deployer, Record], None]


def _delete_role(d: Deployer, record: Record) -> None:
    iam = d.client("iam")
    name = record.ref
    for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=name
        )
    iam.delete_role(RoleName=name)


def _delete_policy(d: Deployer, record: Record) -> None:
    iam = d.client("iam")
    for role in record.properties.get("Roles", []):
        iam.delete_role_policy(RoleName=role, PolicyName=record.properties["PolicyName"])


def _delete_managed_policy(d: Deployer, record: Record) -> None:
    iam = d.client("iam")
    arn = record.ref
    for role in record.properties.get("Roles", []):
        iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    for user in record.properties.get("Users", []):
        iam.detach_user_policy(UserName=user, PolicyArn=arn)
    for group in record.properties.get("Groups", []):
        iam.detach_group_policy(GroupName=group, PolicyArn=arn)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)


def _delete_instance_profile(d: Deployer, record: Record) -> None:
    iam = d.client("iam")
    for role in record.properties.get("Roles", []):
        iam.remove_role_from_instance_profile(InstanceProfileName=record.ref, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=record.ref)


def _delete_bucket(d: Deployer, record: Record) -> None:
    s3 = d.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=record.ref):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=record.ref, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=record.ref)


def _delete_compute_environment(d: Deployer, record: Record) -> None:
    batch = d.client("batch")
    batch.update_compute_environment(computeEnvironment=record.ref, state="DISABLED")
    batch.delete_compute_environment(computeEnvironment=record.ref)


def _delete_job_queue(d: Deployer, record: Record) -> None:
    batch = d.client("batch")
    batch.update_job_queue(jobQueue=record.ref, state="DISABLED")
    batch.delete_job_queue(jobQueue=record.ref)


def permission(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A security group rule of the template as the EC2 API's ``IpPermission``."""
    shaped: dict[str, Any] = {"IpProtocol": str(rule.get("IpProtocol", "-1"))}
    for key in ("FromPort", "ToPort"):
        if key in rule:
            shaped[key] = int(rule[key])
    if "CidrIp" in rule:
        shaped["IpRanges"] = [{"CidrIp": rule["CidrIp"]}]
    peer = rule.get("SourceSecurityGroupId") or rule.get("DestinationSecurityGroupId")
    if peer:
        shaped["UserIdGroupPairs"] = [{"GroupId": peer}]
    return shaped


def _security_group_rule(direction: str) -> Deleter:
    def delete(d: Deployer, record: Record) -> None:
        p = record.properties
        ec2 = d.client("ec2")
        revoke = (
            ec2.revoke_security_group_ingress
            if direction == "ingress"
            else ec2.revoke_security_group_egress
        )
        revoke(GroupId=p["GroupId"], IpPermissions=[permission(p)])

    return delete


def _call(service: str, operation: str, **from_record: str) -> Deleter:
    """A deleter that is one call, its arguments read from the record: ``"ref"`` is the
    physical id, ``"attributes.X"`` and ``"properties.X"`` are fields."""

    def delete(d: Deployer, record: Record) -> None:
        arguments = {}
        for name, source in from_record.items():
            if source == "ref":
                arguments[name] = record.ref
            else:
                part, _, key = source.partition(".")
                arguments[name] = getattr(record, part)[key]
        getattr(d.client(service), operation)(
            **{k: ([v] if k.endswith("Ids") else v) for k, v in arguments.items()}
        )

    return delete


def _delete_schedule(d: Deployer, record: Record) -> None:
    group = record.properties.get("GroupName")
    d.client("scheduler").delete_schedule(
        Name=record.ref, **({"GroupName": group} if group else {})
    )


def _nothing(d: Deployer, record: Record) -> None:
    """Nothing was created for the resource in the emulator."""


DELETERS: dict[str, Deleter] = {
    "AWS::IAM::Role": _delete_role,
    "AWS::IAM::Policy": _delete_policy,
    "AWS::IAM::ManagedPolicy": _delete_managed_policy,
    "AWS::IAM::InstanceProfile": _delete_instance_profile,
    "AWS::S3::Bucket": _delete_bucket,
    "AWS::S3::BucketPolicy": _call("s3", "delete_bucket_policy", Bucket="properties.Bucket"),
    "AWS::Logs::LogGroup": _call("logs", "delete_log_group", logGroupName="ref"),
    "AWS::SSM::Parameter": _call("ssm", "delete_parameter", Name="ref"),
    "AWS::EC2::VPC": _call("ec2", "delete_vpc", VpcId="ref"),
    "AWS::EC2::Subnet": _call("ec2", "delete_subnet", SubnetId="ref"),
    "AWS::EC2::SecurityGroup": _call("ec2", "delete_security_group", GroupId="ref"),
    "AWS::EC2::SecurityGroupIngress": _security_group_rule("ingress"),
    "AWS::EC2::SecurityGroupEgress": _security_group_rule("egress"),
    "AWS::EC2::LaunchTemplate": _call("ec2", "delete_launch_template", LaunchTemplateId="ref"),
    "AWS::EC2::PlacementGroup": _nothing,
    "AWS::EC2::InternetGateway": _call("ec2", "delete_internet_gateway", InternetGatewayId="ref"),
    "AWS::EC2::VPCGatewayAttachment": _call(
        "ec2",
        "detach_internet_gateway",
        InternetGatewayId="properties.InternetGatewayId",
        VpcId="properties.VpcId",
    ),
    "AWS::EC2::RouteTable": _call("ec2", "delete_route_table", RouteTableId="ref"),
    "AWS::EC2::SubnetRouteTableAssociation": _call(
        "ec2", "disassociate_route_table", AssociationId="ref"
    ),
    "AWS::EC2::Route": _call(
        "ec2",
        "delete_route",
        RouteTableId="properties.RouteTableId",
        DestinationCidrBlock="properties.DestinationCidrBlock",
    ),
    "AWS::EC2::EIP": _call("ec2", "release_address", AllocationId="attributes.AllocationId"),
    "AWS::EC2::NatGateway": _call("ec2", "delete_nat_gateway", NatGatewayId="ref"),
    "AWS::EC2::VPCEndpoint": _call("ec2", "delete_vpc_endpoints", VpcEndpointIds="ref"),
    "AWS::Batch::ComputeEnvironment": _delete_compute_environment,
    "AWS::Batch::JobQueue": _delete_job_queue,
    "AWS::Batch::JobDefinition": _call("batch", "deregister_job_definition", jobDefinition="ref"),
    "AWS::StepFunctions::StateMachine": _call(
        "stepfunctions", "delete_state_machine", stateMachineArn="ref"
    ),
    "AWS::Scheduler::Schedule": _delete_schedule,
    "AWS::Scheduler::ScheduleGroup": _call("scheduler", "delete_schedule_group", Name="ref"),
}


def delete(d: Deployer, logical_id: str, record: Record) -> str:
    """Deletes one resource; ``""`` when done, else why it could not be (the emulator's
    error), as CloudFormation reports a resource it could not delete and goes on."""
    deleter = DELETERS.get(record.type)
    if deleter is None:
        return f"no way to delete a {record.type} in the local AWS"
    try:
        deleter(d, record)
    except Exception as error:  # botocore's ClientError, the emulator's quirks
        return f"{type(error).__name__}: {error}"
    return ""
