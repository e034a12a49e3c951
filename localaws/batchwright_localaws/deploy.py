"""Brings a synthesized CloudFormation template up in the local AWS.

moto's CloudFormation cannot create the ``AWS::Batch::*`` resources a CDK synth
produces, so this module plays CloudFormation's part for the resource types a batchwright
environment uses: it orders resources by their references, resolves intrinsic functions
(``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::If``, …) with
the runtime's evaluator (:mod:`batchwright.environment.assembly`, which also reads the
template out of ``cdk.out``) against the emulator's values,
creates each resource through the emulator's own API with a generated physical name, and
finally evaluates the stack's outputs and writes them in the format of
``cdk deploy --outputs-file``. The runtime then reads that file through the same code path
it uses after a real deployment.

A second deployment of the same stack changes what the first made as CloudFormation
would (:mod:`batchwright_localaws.changes`): unchanged resources are kept with their
physical ids, changed ones are updated in place or replaced by their type's rules,
resources gone from the template are deleted unless retained; :func:`destroy` deletes a
stack, keeping what its deletion policy retains.

Before it creates anything, a deployment given the cloud assembly (``cdk_out``, as
``batchwright localaws deploy`` does) publishes the stack's file assets itself, as
``cdk deploy`` does through cdk-assets: each file of the stack's asset manifest
(``<Stack>.assets.json``) goes to the emulator's S3 at its destination's bucket (the
bootstrap bucket ``cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}``, created when
missing, as ``cdk bootstrap`` would have) and object key, with the pseudo parameters
resolved as the template's ``Fn::Sub`` resolves them, so that what the template references
(a code package, a state machine's definition) is really there. A directory asset is
zipped first; an object already there with the same bytes is not sent again. Docker image
assets are not published (the emulator has no registry; the offline-built job image
stands in) and are listed in the notes.

Resource properties are translated to API requests with botocore's service model, so a
property the API does not know is dropped (and reported) rather than guessed. Where the
emulator needs something AWS does not (a service role on compute environments, security
groups on the compute environment when they sit on an EFA launch template, instance types
it knows), the deployment adapts and says so in :attr:`Deployment.notes`. Resources it
cannot hold (Lambda-backed custom resources, CDK metadata) are skipped and listed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchwright.environment import instances
from batchwright.environment.assembly import (
    FUNCTIONS,
    NO_VALUE,
    CloudAssembly,
    References,
    evaluate,
)
from batchwright.errors import LocalAwsError
from batchwright_localaws import changes
from batchwright_localaws.changes import Record, StackState
from batchwright_localaws.services import LocalAws

ACCOUNT_ID = "123456789012"  # moto's default account
#: The manifest's artifact type of a stack's asset manifest (``<Stack>.assets.json``).
ASSET_MANIFEST_TYPE = "cdk:asset-manifest"


@dataclass
class Deployment:
    """What a local deployment created, kept, updated, replaced, deleted, skipped and
    adapted, and the stack's outputs."""

    stack_name: str
    outputs: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Logical ids, by what happened to them.
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: Kept by a Retain policy although gone from the template (or replaced).
    retained: list[str] = field(default_factory=list)
    #: Resources that could not be deleted, with the emulator's reason.
    failed: dict[str, str] = field(default_factory=dict)
    #: The file assets published before the resources were made, as ``s3://`` URLs.
    assets: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``3 created, 20 unchanged, 1 updated, ...`` (the non-empty counts)."""
        counts = [
            (len(self.created), "created"),
            (len(self.unchanged), "unchanged"),
            (len(self.updated), "updated in place"),
            (len(self.replaced), "replaced"),
            (len(self.deleted), "deleted"),
            (len(self.retained), "retained"),
            (len(self.failed), "failed to delete"),
            (len(self.skipped), "skipped"),
        ]
        return ", ".join(f"{n} {what}" for n, what in counts if n) or "nothing to do"

    def outputs_file_document(self) -> dict[str, dict[str, str]]:
        """The document ``cdk deploy --outputs-file`` writes for this stack."""
        return {self.stack_name: dict(self.outputs)}


def deploy(
    local: LocalAws,
    template: Mapping[str, Any],
    stack_name: str,
    *,
    parameters: Mapping[str, str] | None = None,
    cdk_out: str | Path | None = None,
) -> Deployment:
    """Creates the template's resources in the local AWS and returns the deployment.

    With ``cdk_out``, the cloud assembly the template comes from, the stack's file assets
    are published to the emulator's S3 first (:func:`asset_manifest`), as ``cdk deploy``
    publishes them before it deploys the template.
    """
    manifest = asset_manifest(cdk_out, stack_name) if cdk_out is not None else None
    return _Deployer(local, template, stack_name, dict(parameters or {})).run(manifest)


def asset_manifest(cdk_out: str | Path, stack_name: str) -> Path | None:
    """The asset manifest (``<Stack>.assets.json``) of the stack in the cloud assembly, as
    its ``manifest.json`` names it among the stack's dependencies; None when it has none.

    Raises:
        EnvironmentNotFound: no manifest there, or no such stack.
    """
    assembly = CloudAssembly.read(cdk_out)
    stack = assembly.stack(stack_name)
    artifacts = json.loads(assembly.manifest_path.read_text()).get("artifacts") or {}
    for dependency in artifacts.get(stack.artifact_id, {}).get("dependencies", []):
        artifact = artifacts.get(dependency) or {}
        file = (artifact.get("properties") or {}).get("file")
        if artifact.get("type") == ASSET_MANIFEST_TYPE and file:
            return assembly.directory / str(file)
    return None


def destroy(local: LocalAws, stack_name: str) -> Deployment:
    """Deletes what the stack's local deployments made, in reverse order of creation, as
    ``cdk destroy`` does: resources whose ``DeletionPolicy`` is ``Retain`` (the datastore
    bucket) stay. The stack's record in CloudFormation goes too.

    Raises:
        LocalAwsError: the emulator holds no deployment of the stack.
    """
    s3 = local.client("s3")
    state = changes.load_state(s3, stack_name)
    if state is None:
        raise LocalAwsError(
            f"the local AWS at {local.endpoint} holds no deployment of stack {stack_name!r}"
        )
    deployer = _Deployer(local, {}, stack_name, {})
    for logical_id in reversed(list(state.resources)):
        deployer.remove(
            logical_id, state.resources[logical_id], state.resources[logical_id].deletion_policy
        )
    if state.service_role and not deployer.result.failed:
        # The role only the emulator needs (see _Deployer.service_role).
        role = Record("AWS::IAM::Role", {}, state.service_role.rsplit("/", 1)[-1])
        deployer.remove("LocalBatchServiceRole", role, "Delete")
    if deployer.result.failed:
        # What could not be deleted stays on record, so that a later destroy can retry it.
        kept = {k: v for k, v in state.resources.items() if k in deployer.result.failed}
        changes.save_state(s3, stack_name, StackState(kept, state.service_role))
    else:
        changes.forget_state(s3, stack_name)
    cloudformation = local.client("cloudformation")
    if _recorded_outputs(cloudformation, stack_name) is not None:
        cloudformation.delete_stack(StackName=stack_name)
    return deployer.result


def _recorded_outputs(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    """The outputs of the stack's record, or None when there is none."""
    existing = cloudformation.list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])[
        "StackSummaries"
    ]
    if not any(s["StackName"] == stack_name for s in existing):
        return None
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}


def record_stack(local: LocalAws, deployment: Deployment) -> None:
    """Records the deployment's outputs as a CloudFormation stack in the emulator, so that
    DescribeStacks answers for it as it would after ``cdk deploy``. The stack holds one
    placeholder resource: the real resources were created through their own APIs. An
    existing record is updated when the outputs changed, and left alone otherwise."""
    cloudformation = local.client("cloudformation")
    body = json.dumps(
        {
            "Description": f"Outputs of {deployment.stack_name}, deployed locally by batchwright",
            "Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {k: {"Value": v} for k, v in deployment.outputs.items()},
        }
    )
    recorded = _recorded_outputs(cloudformation, deployment.stack_name)
    if recorded is None:
        cloudformation.create_stack(StackName=deployment.stack_name, TemplateBody=body)
    elif recorded != deployment.outputs:
        cloudformation.update_stack(StackName=deployment.stack_name, TemplateBody=body)


def write_outputs_file(deployment: Deployment, path: Path) -> None:
    """Writes (or merges into) an outputs file in the ``cdk deploy --outputs-file`` format."""
    document: dict[str, Any] = {}
    if path.exists():
        document = json.loads(path.read_text())
    document.update(deployment.outputs_file_document())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# --- the deployer ------------------------------------------------------------------------


class _Deployer(References):
    """One deployment: creates the resources in order and answers for the references
    between them (emulator values, generated names, ``<skipped:...>`` stand-ins)."""

    functions = FUNCTIONS

    def __init__(
        self,
        local: LocalAws,
        template: Mapping[str, Any],
        stack_name: str,
        parameters: dict[str, str],
    ):
        self.local = local
        self.template = template
        self.stack = stack_name
        self.result = Deployment(stack_name)
        self.refs: dict[str, Any] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self._clients: dict[str, Any] = {}
        self.parameters = self._resolve_parameters(parameters)
        self.conditions: dict[str, bool] = {}
        self._service_role: str | None = None
        #: LaunchTemplateData of the templates created, by launch template id.
        self.launch_templates: dict[str, dict[str, Any]] = {}
        #: What this deployment made or kept, in order (stored for the next one).
        self.records: dict[str, Record] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.local.client(service)
        return self._clients[service]

    # -- parameters, conditions, ordering

    def _resolve_parameters(self, given: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.get("Parameters", {}).items():
            if name in given:
                values[name] = given[name]
                continue
            default = spec.get("Default")
            if spec.get("Type", "").startswith("AWS::SSM::Parameter::Value<") and default:
                values[name] = self._public_parameter(name, str(default))
            else:
                values[name] = default
        unknown = set(given) - set(values)
        if unknown:
            raise LocalAwsError(
                f"parameters {sorted(unknown)} are not parameters of the template "
                f"(it has {sorted(values) or 'none'})"
            )
        return values

    def _public_parameter(self, name: str, path: str) -> str:
        ssm = self.client("ssm")
        try:
            return str(ssm.get_parameter(Name=path)["Parameter"]["Value"])
        except Exception:
            # Public parameters (e.g. the Neuron AMI id) are absent from the emulator; a
            # placeholder stands in (the emulator never boots an AMI).
            kind = str(self.template["Parameters"][name].get("Type", ""))
            value = "ami-00000000local" if "Image::Id" in kind else f"<unresolved {path}>"
            self.note(f"parameter {name}: SSM {path} is not in the emulator; using {value}")
            return value

    def _order(self) -> list[str]:
        resources = self.template.get("Resources", {})
        deps: dict[str, set[str]] = {}
        for logical_id, resource in resources.items():
            found: set[str] = set()
            _references(resource, found)
            depends = resource.get("DependsOn", [])
            found.update([depends] if isinstance(depends, str) else depends)
            deps[logical_id] = {d for d in found if d in resources and d != logical_id}
        ordered: list[str] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(node: str) -> None:
            if node in done:
                return
            if node in visiting:
                raise LocalAwsError(f"circular reference through {node}")
            visiting.add(node)
            for dep in sorted(deps[node]):
                visit(dep)
            visiting.discard(node)
            done.add(node)
            ordered.append(node)

        for node in resources:
            visit(node)
        return ordered

    # -- intrinsic functions: the evaluator is batchwright's; the values are the emulator's

    def resolve(self, value: Any) -> Any:
        """``value`` with its intrinsic functions evaluated against this deployment."""
        return evaluate(value, self)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.local.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack,
            "AWS::StackId": f"arn:aws:cloudformation:{self.local.region}:{ACCOUNT_ID}:stack/"
            f"{self.stack}/local",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.result.skipped:
            return f"<skipped:{name}>"
        raise LocalAwsError(f"Ref to {name}, which is neither created nor a parameter")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id in self.result.skipped:
            return f"<skipped:{logical_id}.{attribute}>"
        try:
            return self.attrs[logical_id][attribute]
        except KeyError:
            raise LocalAwsError(
                f"Fn::GetAtt {logical_id}.{attribute} is not available in the local AWS"
            ) from None

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            expression = self.template.get("Conditions", {})[name]
            self.conditions[name] = bool(self.resolve(expression))
        return self.conditions[name]

    def find_in_map(self, map_name: Any, top_level_key: Any, second_level_key: Any) -> Any:
        return self.template["Mappings"][map_name][top_level_key][second_level_key]

    def availability_zones(self, region: str) -> list[str]:
        return [f"{region}{zone}" for zone in "abc"]

    def unevaluated(self, function: str, argument: Any) -> Any:
        if function == "Fn::ImportValue":
            raise LocalAwsError(
                f"Fn::ImportValue {argument!r}: cross-stack imports are not supported locally"
            )
        if function in self.functions:
            raise LocalAwsError(f"{function} {argument!r} cannot be evaluated with these arguments")
        # A function batchwright does not evaluate goes to the emulator's API as written.
        return {function: self.resolve(argument)}

    # -- main loop

    def run(self, assets: Path | None = None) -> Deployment:
        s3 = self.client("s3")
        if assets is not None:
            self.publish_assets(assets)
        previous = changes.load_state(s3, self.stack) or StackState()
        self._service_role = previous.service_role
        superseded: dict[str, Record] = {}  # replaced: deleted once the new one stands
        try:
            self._apply(previous, superseded)
        except BaseException:
            # Record what exists now, so that the next deploy or a destroy finds it.
            self._save(s3, previous, superseded, failed_only=False)
            raise
        # What the template no longer has, and what was replaced, goes last, newest first.
        for logical_id in reversed(list(previous.resources)):
            old = previous.resources[logical_id]
            if logical_id in superseded:
                self.remove(logical_id, superseded[logical_id], old.update_replace_policy)
            elif logical_id not in self.records:
                self.remove(logical_id, old, old.deletion_policy)
        for key, output in self.template.get("Outputs", {}).items():
            condition = output.get("Condition")
            if condition and not self.condition(condition):
                continue
            value = self.resolve(output["Value"])
            self.result.outputs[key] = value if isinstance(value, str) else json.dumps(value)
        self._save(s3, previous, superseded, failed_only=True)
        return self.result

    def _save(
        self, s3: Any, previous: StackState, superseded: dict[str, Record], *, failed_only: bool
    ) -> None:
        """Stores what this deployment made or kept, and what it could not delete (all of
        the earlier resources, after a failure), so that nothing is lost track of: an old
        resource whose logical id has a new one is kept as ``<id>/replaced``."""
        resources = dict(self.records)
        for logical_id, old in previous.resources.items():
            if failed_only and logical_id not in self.result.failed:
                continue
            if logical_id not in self.records:
                resources[logical_id] = old  # not reached yet, or gone and not deleted
            elif logical_id in superseded:
                resources[f"{logical_id}/replaced"] = superseded[logical_id]
        changes.save_state(s3, self.stack, StackState(resources, self._service_role))

    def _apply(self, previous: StackState, superseded: dict[str, Record]) -> None:
        """Creates, keeps, updates or replaces each resource of the template, in order."""
        resources = self.template.get("Resources", {})
        for logical_id in self._order():
            resource = resources[logical_id]
            kind = resource["Type"]
            condition = resource.get("Condition")
            if condition and not self.condition(condition):
                continue
            creator = _CREATORS.get(kind)
            if creator is None:
                self.result.skipped[logical_id] = kind
                continue
            properties = changes.normal(self.resolve(resource.get("Properties", {})))
            old = previous.resources.get(logical_id)
            if old is not None and old.type != kind:
                superseded[logical_id], old = old, None
            try:
                if old is not None and old.properties == properties:
                    self._keep(logical_id, old)
                    self.result.unchanged.append(logical_id)
                elif old is not None and changes.updates_in_place(kind, old.properties, properties):
                    changes.UPDATERS[kind](self, old, properties)
                    self._keep(logical_id, old)
                    self.result.updated.append(logical_id)
                else:
                    if old is not None:
                        self._check_replaceable(logical_id, kind, old.properties, properties)
                        superseded[logical_id] = old
                    creator(self, logical_id, properties)
                    (self.result.replaced if old is not None else self.result.created).append(
                        logical_id
                    )
            except LocalAwsError:
                raise
            except Exception as error:  # botocore's ClientError and parameter errors
                raise LocalAwsError(
                    f"deploying {logical_id} ({kind}) in the local AWS failed: {error}"
                ) from error
            self.records[logical_id] = Record(
                kind,
                properties,
                self.refs[logical_id],
                changes.normal(self.attrs[logical_id]),
                str(resource.get("DeletionPolicy", "Delete")),
                str(resource.get("UpdateReplacePolicy", "Delete")),
            )

    # -- file assets, published as cdk-assets publishes them

    def publish_assets(self, manifest_path: Path) -> None:
        """Puts each file asset of the asset manifest at its destinations in the emulator's
        S3 (see the module's docstring)."""
        manifest = json.loads(manifest_path.read_text())
        s3 = self.client("s3")
        for asset_id, asset in (manifest.get("files") or {}).items():
            source = asset.get("source") or {}
            if "path" not in source:  # an executable's output: nothing to read here
                self.note(f"file asset {asset_id}: not published (built by a command)")
                continue
            path = manifest_path.parent / str(source["path"])
            if not path.exists():
                raise LocalAwsError(
                    f"file asset {asset_id}: {path} (named by {manifest_path}) does not "
                    "exist; run `cdk synth` again"
                )
            # A directory is zipped whatever its packaging says; a file goes as it is.
            body = _zip_directory(path) if path.is_dir() else path.read_bytes()
            for destination in (asset.get("destinations") or {}).values():
                bucket = self._pseudo(str(destination["bucketName"]))
                key = self._pseudo(str(destination["objectKey"]))
                try:
                    self._ensure_bucket(s3, bucket)
                    if not _holds(s3, bucket, key, body):
                        s3.put_object(Bucket=bucket, Key=key, Body=body)
                except Exception as error:  # botocore's ClientError
                    raise LocalAwsError(
                        f"publishing file asset {asset_id} to s3://{bucket}/{key} in the "
                        f"local AWS failed: {error}"
                    ) from error
                self.result.assets.append(f"s3://{bucket}/{key}")
        for asset_id in manifest.get("dockerImages") or {}:
            self.note(
                f"Docker image asset {asset_id}: not published (the emulator has no "
                "registry; the local AWS's job image stands in)"
            )

    def _pseudo(self, text: str) -> str:
        """``${AWS::AccountId}``, ``${AWS::Region}``, ... of an asset manifest, as the
        template's ``Fn::Sub`` resolves them."""
        return re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: str(self.ref(m.group(1))), text)

    def _ensure_bucket(self, s3: Any, bucket: str) -> None:
        """Creates an asset bucket that ``cdk bootstrap`` would have made."""
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except Exception as error:
            if "404" not in str(error) and "NoSuchBucket" not in str(error):
                raise
        where = self.local.region
        s3.create_bucket(
            Bucket=bucket,
            **(
                {}
                if where == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": where}}
            ),
        )
        self.note(f"asset bucket {bucket}: created (`cdk bootstrap` makes it on AWS)")

    def _keep(self, logical_id: str, record: Record) -> None:
        """Takes over a resource an earlier deployment made."""
        self.created(logical_id, record.ref, **record.attributes)
        if record.type == "AWS::EC2::LaunchTemplate":
            data = record.properties.get("LaunchTemplateData", {})
            self.launch_templates[str(record.ref)] = data

    def _check_replaceable(
        self, logical_id: str, kind: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """CloudFormation cannot replace a resource whose name the template fixes: the new
        one would need the name the old one still holds."""
        names = [k for k in _NAME_PROPERTIES.get(kind, ()) if k in new and old.get(k) == new[k]]
        if names:
            changed = ", ".join(sorted(changes.changed_paths(old, new)))
            raise LocalAwsError(
                f"{logical_id} ({kind}) must be replaced to change {changed}, but its "
                f"{names[0]} {new[names[0]]!r} is fixed by the template, and the old "
                "resource holds it. Change the name too, or destroy the stack first "
                "(as CloudFormation would refuse the update)."
            )

    def remove(self, logical_id: str, record: Record, policy: str) -> None:
        """Deletes a resource an earlier deployment made, unless ``policy`` retains it."""
        if policy in changes.RETAIN:
            self.result.retained.append(logical_id)
            return
        problem = changes.delete(self, logical_id, record)
        if problem:
            self.result.failed[logical_id] = problem
        else:
            self.result.deleted.append(logical_id)

    def note(self, text: str) -> None:
        """Records an adaptation once."""
        if text not in self.result.notes:
            self.result.notes.append(text)

    def name_for(self, logical_id: str, *, max_length: int = 128, lower: bool = False) -> str:
        """A CloudFormation-style generated physical name."""
        suffix = secrets.token_hex(6).upper()
        stem = re.sub(r"[^A-Za-z0-9-]", "", f"{self.stack}-{logical_id}")
        name = f"{stem[: max_length - len(suffix) - 1]}-{suffix}"
        return name.lower() if lower else name

    def created(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        self.refs[logical_id] = ref
        self.attrs[logical_id] = attributes
        self.result.physical_ids[logical_id] = str(ref)

    def request(
        self, service: str, operation: str, properties: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``properties`` shaped as the operation's request, per botocore's model."""
        model = self.client(service).meta.service_model.operation_model(operation)
        dropped: list[str] = []
        shaped = _shape(properties, model.input_shape, "", dropped)
        if dropped:
            self.note(f"{operation}: dropped {', '.join(sorted(dropped))}")
        return dict(shaped)

    def service_role(self) -> str:
        """A Batch service role for the emulator, which (unlike AWS) requires one."""
        if self._service_role is None:
            iam = self.client("iam")
            name = self.name_for("LocalBatchServiceRole", max_length=64)
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
            self._service_role = str(role["Role"]["Arn"])
            self.note(
                "compute environments: the emulator requires a service role; created "
                f"{name} (AWS uses the service-linked role)"
            )
        return self._service_role


def _zip_directory(folder: Path) -> bytes:
    """A directory asset as cdk-assets uploads it: a zip of its files, by relative path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _holds(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Whether the object is already there with these bytes (its ETag is their MD5)."""
    try:
        etag = str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    except Exception:
        return False
    return etag == hashlib.md5(body, usedforsecurity=False).hexdigest()


def _references(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            text = text[0] if isinstance(text, list) else text
            found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
        for v in value.values():
            _references(v, found)
    elif isinstance(value, list):
        for v in value:
            _references(v, found)


def _shape(value: Any, shape: Any, path: str, dropped: list[str]) -> Any:
    """Renames keys to the model's member names (case-insensitively) and drops unknowns."""
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        members = {name.lower(): name for name in shape.members}
        out: dict[str, Any] = {}
        for key, item in value.items():
            member = members.get(key.lower())
            if member is None:
                dropped.append(f"{path}{key}")
                continue
            out[member] = _shape(item, shape.members[member], f"{path}{key}.", dropped)
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [_shape(v, shape.member, path, dropped) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _shape(v, shape.value, path, dropped) for k, v in value.items()}
    if shape.type_name == "integer" and isinstance(value, str) and value.isdigit():
        return int(value)
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    enum = getattr(shape, "enum", None)
    if shape.type_name == "string" and enum and isinstance(value, str) and value not in enum:
        # CloudFormation accepts enum values in any case (CDK writes "managed").
        return next((e for e in enum if e.lower() == value.lower()), value)
    if shape.type_name == "string" and isinstance(value, (dict, list)):
        return json.dumps(value)
    if shape.type_name == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


# --- resource creators -------------------------------------------------------------------


def _iam_role(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    iam = d.client("iam")
    name = p.get("RoleName") or d.name_for(logical_id, max_length=64)
    request = d.request(
        "iam",
        "CreateRole",
        {k: v for k, v in p.items() if k not in ("ManagedPolicyArns", "Policies")}
        | {"RoleName": name},
    )
    role = iam.create_role(**request)["Role"]
    for arn in p.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    for policy in p.get("Policies", []):
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    d.created(logical_id, name, Arn=role["Arn"], RoleId=role["RoleId"])


def _iam_policy(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    iam = d.client("iam")
    document = json.dumps(p["PolicyDocument"])
    for role in p.get("Roles", []):
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=document)
    for user in p.get("Users", []):
        iam.put_user_policy(UserName=user, PolicyName=p["PolicyName"], PolicyDocument=document)
    for group in p.get("Groups", []):
        iam.put_group_policy(GroupName=group, PolicyName=p["PolicyName"], PolicyDocument=document)
    d.created(logical_id, p["PolicyName"])


def _iam_managed_policy(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    iam = d.client("iam")
    name = p.get("ManagedPolicyName") or d.name_for(logical_id, max_length=128)
    arn = iam.create_policy(
        PolicyName=name,
        PolicyDocument=json.dumps(p["PolicyDocument"]),
        Description=p.get("Description", ""),
        Path=p.get("Path", "/"),
    )["Policy"]["Arn"]
    for role in p.get("Roles", []):
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    for user in p.get("Users", []):
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    for group in p.get("Groups", []):
        iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    d.created(logical_id, arn, PolicyArn=arn)


def _iam_instance_profile(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    iam = d.client("iam")
    name = p.get("InstanceProfileName") or d.name_for(logical_id, max_length=128)
    profile = iam.create_instance_profile(InstanceProfileName=name, Path=p.get("Path", "/"))
    for role in p.get("Roles", []):
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    d.created(logical_id, name, Arn=profile["InstanceProfile"]["Arn"])


def _s3_bucket(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    s3 = d.client("s3")
    name = p.get("BucketName") or d.name_for(logical_id, max_length=63, lower=True)
    s3.create_bucket(Bucket=name)
    changes.configure_bucket(d, name, p)
    region = d.local.region
    d.created(
        logical_id,
        name,
        Arn=f"arn:aws:s3:::{name}",
        DomainName=f"{name}.s3.amazonaws.com",
        RegionalDomainName=f"{name}.s3.{region}.amazonaws.com",
    )


def _s3_bucket_policy(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    changes.bucket_policy(d, logical_id, p)
    d.created(logical_id, p["Bucket"])


def _log_group(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    logs = d.client("logs")
    name = p.get("LogGroupName") or d.name_for(logical_id, max_length=512)
    logs.create_log_group(logGroupName=name)
    if "RetentionInDays" in p:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    arn = f"arn:aws:logs:{d.local.region}:{ACCOUNT_ID}:log-group:{name}:*"
    d.created(logical_id, name, Arn=arn)


def _ssm_parameter(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("Name") or "CFN-" + d.name_for(logical_id, max_length=1000)
    request = d.request("ssm", "PutParameter", p | {"Name": name})
    request.pop("Tags", None)
    d.client("ssm").put_parameter(**request)
    d.created(logical_id, name, Type=p.get("Type"), Value=p.get("Value"))


def _vpc(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    ec2 = d.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=p["CidrBlock"])["Vpc"]
    vpc_id = vpc["VpcId"]
    for attribute in ("EnableDnsHostnames", "EnableDnsSupport"):
        if attribute in p:
            ec2.modify_vpc_attribute(VpcId=vpc_id, **{attribute: {"Value": bool(p[attribute])}})
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    d.created(
        logical_id,
        vpc_id,
        VpcId=vpc_id,
        CidrBlock=p["CidrBlock"],
        DefaultSecurityGroup=groups[0]["GroupId"] if groups else "",
    )


def _subnet(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"VpcId": p["VpcId"], "CidrBlock": p["CidrBlock"]}
    if p.get("AvailabilityZone"):
        kwargs["AvailabilityZone"] = p["AvailabilityZone"]
    subnet = d.client("ec2").create_subnet(**kwargs)["Subnet"]
    d.created(
        logical_id,
        subnet["SubnetId"],
        SubnetId=subnet["SubnetId"],
        AvailabilityZone=subnet["AvailabilityZone"],
        VpcId=p["VpcId"],
    )


def _security_group(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    ec2 = d.client("ec2")
    name = p.get("GroupName") or d.name_for(logical_id, max_length=255)
    kwargs = {"GroupName": name, "Description": p.get("GroupDescription", logical_id)}
    if p.get("VpcId"):
        kwargs["VpcId"] = p["VpcId"]
    group_id = ec2.create_security_group(**kwargs)["GroupId"]
    for rule in p.get("SecurityGroupIngress", []):
        _authorize(d, "ingress", group_id, rule)
    for rule in p.get("SecurityGroupEgress", []):
        _authorize(d, "egress", group_id, rule)
    d.created(logical_id, group_id, GroupId=group_id, VpcId=p.get("VpcId", ""))


def _authorize(d: _Deployer, direction: str, group_id: str, rule: dict[str, Any]) -> None:
    ec2 = d.client("ec2")
    permission = changes.permission(rule)
    if direction == "ingress":
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])
    else:
        try:
            ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[permission])
        except Exception as error:  # the default allow-all egress rule already exists
            if "Duplicate" not in str(error):
                raise


def _security_group_rule(direction: str) -> Callable[[_Deployer, str, dict[str, Any]], None]:
    def create(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
        _authorize(d, direction, p["GroupId"], p)
        d.created(logical_id, f"{p['GroupId']}-{direction}-{logical_id}")

    return create


def _launch_template(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("LaunchTemplateName") or d.name_for(logical_id, max_length=128)
    request = d.request("ec2", "CreateLaunchTemplate", p | {"LaunchTemplateName": name})
    request.pop("TagSpecifications", None)
    template = d.client("ec2").create_launch_template(**request)["LaunchTemplate"]
    version = str(template["LatestVersionNumber"])
    d.created(
        logical_id,
        template["LaunchTemplateId"],
        LaunchTemplateId=template["LaunchTemplateId"],
        LatestVersionNumber=version,
        DefaultVersionNumber=str(template["DefaultVersionNumber"]),
    )
    d.launch_templates[template["LaunchTemplateId"]] = p.get("LaunchTemplateData", {})


def _placement_group(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    # moto implements no placement groups: the name is generated and referenced as on AWS,
    # and nothing is created (the emulator never places instances).
    name = d.name_for(logical_id, max_length=255)
    d.created(logical_id, name, GroupId=name, GroupName=name)
    d.note(
        f"{logical_id}: placement group {name} ({p.get('Strategy', 'cluster')}) recorded, "
        "not created (the emulator has no placement groups)"
    )


def _known_to_emulator(names: list[str]) -> list[str]:
    """The instance types and families of ``names`` moto accepts; keywords other than
    ``optimal`` become the families they stand for."""
    from moto.ec2.models.instance_types import INSTANCE_FAMILIES, INSTANCE_TYPES

    known: list[str] = []
    for name in names:
        candidates = instances.KEYWORD_FAMILIES.get(name, (name,)) if name != "optimal" else ()
        for candidate in (name,) if name == "optimal" else candidates:
            if (
                candidate == "optimal"
                or candidate in INSTANCE_TYPES
                or candidate in (INSTANCE_FAMILIES)
            ):
                known.append(candidate)
    return list(dict.fromkeys(known))


def _compute_environment(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("ComputeEnvironmentName") or d.name_for(logical_id, max_length=128)
    request = d.request("batch", "CreateComputeEnvironment", p | {"ComputeEnvironmentName": name})
    request.setdefault("serviceRole", d.service_role())
    resources = request.get("computeResources")
    if resources is not None:
        if resources.get("type") in ("EC2", "SPOT"):
            wanted = list(resources.get("instanceTypes", []))
            known = _known_to_emulator(wanted)
            if known != wanted:
                d.note(
                    f"{logical_id}: instance types {wanted} given to the emulator as "
                    f"{known or ['optimal']} (it knows only some types and no keywords "
                    "but 'optimal')"
                )
            resources["instanceTypes"] = known or ["optimal"]
        if not resources.get("securityGroupIds"):
            groups = _launch_template_groups(d, resources.get("launchTemplate", {}))
            if groups:
                d.note(
                    f"{logical_id}: security groups sit on the launch template's EFA "
                    "interfaces; the emulator needs them on the compute environment too"
                )
            resources["securityGroupIds"] = groups
    arn = d.client("batch").create_compute_environment(**request)["computeEnvironmentArn"]
    d.created(logical_id, arn, ComputeEnvironmentArn=arn)


def _launch_template_groups(d: _Deployer, launch_template: dict[str, Any]) -> list[str]:
    data = d.launch_templates.get(launch_template.get("launchTemplateId", ""), {})
    groups: list[str] = []
    for interface in data.get("NetworkInterfaces", []):
        groups.extend(interface.get("Groups", []))
    return list(dict.fromkeys(groups))


def _job_queue(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("JobQueueName") or d.name_for(logical_id, max_length=128)
    request = d.request("batch", "CreateJobQueue", p | {"JobQueueName": name})
    arn = d.client("batch").create_job_queue(**request)["jobQueueArn"]
    d.created(logical_id, arn, JobQueueArn=arn)


def _job_definition(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("JobDefinitionName") or d.name_for(logical_id, max_length=128)
    request = d.request("batch", "RegisterJobDefinition", p | {"JobDefinitionName": name})
    arn = d.client("batch").register_job_definition(**request)["jobDefinitionArn"]
    d.created(logical_id, arn)


def _state_machine(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("StateMachineName") or d.name_for(logical_id, max_length=80)
    request = changes.state_machine_request(d, name, p)
    arn = d.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    d.created(logical_id, arn, Arn=arn, Name=name)


def _schedule(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("Name") or d.name_for(logical_id, max_length=64)
    request = d.request("scheduler", "CreateSchedule", p | {"Name": name})
    arn = d.client("scheduler").create_schedule(**request)["ScheduleArn"]
    d.created(logical_id, name, Arn=arn)


def _schedule_group(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    name = p.get("Name") or d.name_for(logical_id, max_length=64)
    request = d.request("scheduler", "CreateScheduleGroup", p | {"Name": name})
    arn = d.client("scheduler").create_schedule_group(**request)["ScheduleGroupArn"]
    d.created(logical_id, name, Arn=arn, State="ACTIVE")


def _eip(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    address = d.client("ec2").allocate_address(Domain=p.get("Domain", "vpc"))
    d.created(
        logical_id,
        address["PublicIp"],
        AllocationId=address["AllocationId"],
        PublicIp=address["PublicIp"],
    )


def _nat_gateway(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    gateway = d.client("ec2").create_nat_gateway(
        SubnetId=p["SubnetId"], AllocationId=p["AllocationId"]
    )["NatGateway"]["NatGatewayId"]
    d.created(logical_id, gateway, NatGatewayId=gateway)


def _route(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    request = d.request("ec2", "CreateRoute", p)
    d.client("ec2").create_route(**request)
    d.created(logical_id, f"{p['RouteTableId']}|{p.get('DestinationCidrBlock', '')}")


def _internet_gateway(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    gateway = d.client("ec2").create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    d.created(logical_id, gateway, InternetGatewayId=gateway)


def _gateway_attachment(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    if p.get("InternetGatewayId"):
        d.client("ec2").attach_internet_gateway(
            InternetGatewayId=p["InternetGatewayId"], VpcId=p["VpcId"]
        )
    d.created(logical_id, f"{p['VpcId']}-attachment")


def _route_table(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    table = d.client("ec2").create_route_table(VpcId=p["VpcId"])["RouteTable"]["RouteTableId"]
    d.created(logical_id, table, RouteTableId=table)


def _route_table_association(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    association = d.client("ec2").associate_route_table(
        RouteTableId=p["RouteTableId"], SubnetId=p["SubnetId"]
    )["AssociationId"]
    d.created(logical_id, association)


def _vpc_endpoint(d: _Deployer, logical_id: str, p: dict[str, Any]) -> None:
    request = d.request("ec2", "CreateVpcEndpoint", p)
    endpoint = d.client("ec2").create_vpc_endpoint(**request)["VpcEndpoint"]["VpcEndpointId"]
    d.created(logical_id, endpoint)


#: The properties that fix a resource's name in the template.
_NAME_PROPERTIES: dict[str, tuple[str, ...]] = {
    "AWS::IAM::Role": ("RoleName",),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName",),
    "AWS::IAM::InstanceProfile": ("InstanceProfileName",),
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::SSM::Parameter": ("Name",),
    "AWS::EC2::SecurityGroup": ("GroupName",),
    "AWS::EC2::LaunchTemplate": ("LaunchTemplateName",),
    "AWS::Batch::ComputeEnvironment": ("ComputeEnvironmentName",),
    "AWS::Batch::JobQueue": ("JobQueueName",),
    "AWS::StepFunctions::StateMachine": ("StateMachineName",),
    "AWS::Scheduler::ScheduleGroup": ("Name",),
}

_CREATORS: dict[str, Callable[[_Deployer, str, dict[str, Any]], None]] = {
    "AWS::IAM::Role": _iam_role,
    "AWS::IAM::Policy": _iam_policy,
    "AWS::IAM::ManagedPolicy": _iam_managed_policy,
    "AWS::IAM::InstanceProfile": _iam_instance_profile,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::S3::BucketPolicy": _s3_bucket_policy,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::SSM::Parameter": _ssm_parameter,
    "AWS::EC2::VPC": _vpc,
    "AWS::EC2::Subnet": _subnet,
    "AWS::EC2::SecurityGroup": _security_group,
    "AWS::EC2::SecurityGroupIngress": _security_group_rule("ingress"),
    "AWS::EC2::SecurityGroupEgress": _security_group_rule("egress"),
    "AWS::EC2::LaunchTemplate": _launch_template,
    "AWS::EC2::PlacementGroup": _placement_group,
    "AWS::EC2::InternetGateway": _internet_gateway,
    "AWS::EC2::VPCGatewayAttachment": _gateway_attachment,
    "AWS::EC2::RouteTable": _route_table,
    "AWS::EC2::SubnetRouteTableAssociation": _route_table_association,
    "AWS::EC2::Route": _route,
    "AWS::EC2::EIP": _eip,
    "AWS::EC2::NatGateway": _nat_gateway,
    "AWS::EC2::VPCEndpoint": _vpc_endpoint,
    "AWS::Batch::ComputeEnvironment": _compute_environment,
    "AWS::Batch::JobQueue": _job_queue,
    "AWS::Batch::JobDefinition": _job_definition,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Scheduler::ScheduleGroup": _schedule_group,
}
