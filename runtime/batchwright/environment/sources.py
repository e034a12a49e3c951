"""Where an environment descriptor is read from: four sources, one result type.

- :func:`from_cloud_assembly`: the synthesized template in ``cdk.out``, before anything is
  deployed. The descriptor output is an ``Fn::Join`` over deploy-time references; this
  module evaluates what it can (``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::Sub``,
  with the evaluator of :mod:`batchwright.environment.assembly`) and renders the rest as
  readable placeholders (``<Ref:LogicalId>``,
  ``<GetAtt:LogicalId.Attribute>``), so the static part (platforms, instance types, max
  vCPUs) is usable for planning.
- :func:`from_outputs_file`: the JSON written by ``cdk deploy --outputs-file``.
- :func:`from_cloudformation`: the deployed stack's outputs (``DescribeStacks``).
- :func:`from_parameter`: the SSM parameter the stack publishes.

Every function returns an :class:`EnvironmentDescriptor` whose ``source`` says where it
came from. Only the standard library and boto3 are used: this module runs where
aws-cdk-lib is not installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchwright.environment.assembly import CloudAssembly, References, Unresolved, evaluate
from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    EnvironmentDescriptor,
)
from batchwright.errors import DescriptorError, EnvironmentNotFound

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ssm import SSMClient

_PLACEHOLDER = re.compile(r"^<[^<>]*>$")
#: A placeholder anywhere in a value (``s3://<Ref:Bucket>/prefix``): the forms
#: :class:`_Placeholders` writes.
_EMBEDDED_PLACEHOLDER = re.compile(r"<(?:Ref:|GetAtt:|part-of:|Fn::|Condition)[^<>]*>")


# --- static reading of cdk.out ------------------------------------------------------------


class _Placeholders(References):
    """References as they stand before deployment: a template parameter with a default
    is that default; a condition is what those defaults make it (``Fn::If`` then takes
    its branch); everything else only CloudFormation knows, so it renders as a
    placeholder (``<Ref:Bucket>``, ``<GetAtt:Queue.JobQueueArn>``, ``<Fn::If>``)."""

    #: What needs no deployment: string surgery on what is known.
    functions = frozenset({"Fn::Join", "Fn::Split", "Fn::Select", "Fn::Sub"})

    def __init__(
        self, parameters: Mapping[str, Any], conditions: Mapping[str, Any] | None = None
    ) -> None:
        self.parameters = parameters
        self.conditions = conditions or {}

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        return Unresolved.named(f"Ref:{name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        target = f"{logical_id}.{attribute}" if attribute else logical_id
        return Unresolved.named(f"GetAtt:{target}")

    def condition(self, name: str) -> Any:
        truth = self._truth({"Condition": name})
        return Unresolved.named("Condition") if truth is None else truth

    def unevaluated(self, function: str, argument: Any) -> Any:
        if function == "Fn::Select":  # an index past the end of a known list
            return Unresolved.named(f"Fn::Select:{argument[0]}")
        if function == "Fn::If":
            name, when_true, when_false = argument
            truth = self._truth({"Condition": name})
            if truth is not None:
                return evaluate(when_true if truth else when_false, self)
        return Unresolved.named(function)

    def _truth(self, expression: Any) -> bool | None:
        """A condition's value from what is known before deployment; None if it depends
        on something only a deployment knows."""
        if not isinstance(expression, dict) or len(expression) != 1:
            return None
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self._truth(self.conditions.get(str(argument)))
        if function == "Fn::Equals":
            left, right = (evaluate(v, self) for v in argument)
            if _unknown(left) or _unknown(right):
                return None
            return bool(left == right)
        parts = [self._truth(v) for v in argument]
        if any(part is None for part in parts):
            return None
        if function == "Fn::Not":
            return not parts[0]
        if function == "Fn::And":
            return all(parts)
        if function == "Fn::Or":
            return any(parts)
        return None


def _unknown(value: Any) -> bool:
    """Whether a rendered value still holds a placeholder."""
    return isinstance(value, Unresolved) or (
        isinstance(value, str) and bool(_EMBEDDED_PLACEHOLDER.search(value))
    )


def render_intrinsics(
    value: Any,
    parameters: Mapping[str, Any] | None = None,
    conditions: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluates the intrinsic functions of a template value that need no deployment and
    renders the others as placeholders such as ``<Ref:Bucket>``. A ``Ref`` to a template
    parameter with a default (``parameters``: name -> default) renders as that default,
    and ``Fn::If`` takes the branch the template's ``conditions`` give with those."""
    return evaluate(value, _Placeholders(parameters or {}, conditions))


def render_output(template: Mapping[str, Any], key: str) -> Any:
    """The output ``key`` of a synthesized template as it stands before deployment
    (:func:`render_intrinsics` with the template's parameter defaults and conditions)."""
    output = (template.get("Outputs") or {}).get(key) or {}
    return render_intrinsics(
        output.get("Value"), template_defaults(template), template.get("Conditions") or {}
    )


def from_cloud_assembly(stack_name: str, cdk_out: str | Path = "cdk.out") -> EnvironmentDescriptor:
    """Reads the descriptor of ``stack_name`` from a synthesized cloud assembly.

    Values that exist only after deployment (ARNs, bucket and queue names) come back as
    placeholders like ``<GetAtt:Queue.JobQueueArn>``; see :func:`is_placeholder`.

    Raises:
        EnvironmentNotFound: no manifest, no such stack, or no descriptor output.
        DescriptorError: the output is not a valid descriptor.
    """
    assembly = CloudAssembly.read(cdk_out)
    template_path = assembly.template_path(stack_name)
    template = assembly.template(stack_name)
    output = (template.get("Outputs") or {}).get(DESCRIPTOR_OUTPUT_KEY)
    if output is None:
        raise EnvironmentNotFound(
            f"stack {stack_name!r} in {template_path} has no output {DESCRIPTOR_OUTPUT_KEY!r}; "
            "is it a batchwright environment (BatchEnvironment construct)?"
        )
    text = render_output(template, DESCRIPTOR_OUTPUT_KEY)
    source = f"cdk.out template {template_path} (stack {stack_name}, not deployed)"
    if not isinstance(text, str):
        raise DescriptorError(f"{source}: output {DESCRIPTOR_OUTPUT_KEY} is not a string.")
    return _parse(text, source)


def template_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template's parameters that have a default, and that default: what a ``Ref`` to
    them is before deployment. ``AWS::SSM::*`` parameters are left out (their default is
    a parameter name; the value is read at deploy time)."""
    parameters = template.get("Parameters") or {}
    return {
        name: spec["Default"]
        for name, spec in parameters.items()
        if isinstance(spec, dict)
        and "Default" in spec
        and not str(spec.get("Type", "")).startswith("AWS::SSM::")
    }


def environment_stacks(cdk_out: str | Path) -> list[str]:
    """The stacks of a cloud assembly that are batchwright environments (their template
    has the descriptor output), by stack name, sorted.

    Raises:
        EnvironmentNotFound: there is no manifest (nothing was synthesized there).
    """
    assembly = CloudAssembly.read(cdk_out)
    names = []
    for stack in assembly.stacks:
        if not stack.template_file:
            continue
        try:
            template = json.loads((assembly.directory / stack.template_file).read_text())
        except (OSError, json.JSONDecodeError):
            continue  # an unreadable template is no environment to offer
        outputs = template.get("Outputs") if isinstance(template, dict) else None
        if isinstance(outputs, dict) and DESCRIPTOR_OUTPUT_KEY in outputs:
            names.append(stack.stack_name)
    return sorted(set(names))


def outputs_file_environments(path: str | Path) -> list[str]:
    """The stacks of a ``cdk deploy --outputs-file`` JSON that are batchwright environments
    (they have the descriptor output, or the output naming its SSM parameter), sorted; an
    unreadable file has none."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(document, dict):
        return []
    keys = (DESCRIPTOR_OUTPUT_KEY, DESCRIPTOR_PARAMETER_OUTPUT_KEY)
    return sorted(
        stack
        for stack, outputs in document.items()
        if isinstance(outputs, dict) and any(isinstance(outputs.get(k), str) for k in keys)
    )


def is_placeholder(value: str) -> bool:
    """Whether a descriptor value is a stand-in for something only a deployment knows."""
    return bool(_PLACEHOLDER.match(value))


def placeholders_in(value: str) -> list[str]:
    """The placeholders anywhere in ``value`` (``['<Ref:Bucket>']`` of
    ``s3://<Ref:Bucket>/batchwright``), in order; empty when the value is fully known."""
    return _EMBEDDED_PLACEHOLDER.findall(value)


# --- deployed sources -----------------------------------------------------------------------


def from_outputs_file(path: str | Path, stack_name: str) -> EnvironmentDescriptor:
    """Reads the descriptor from ``cdk deploy --outputs-file`` JSON
    (``{"StackName": {"OutputKey": "value"}}``).

    Raises:
        EnvironmentNotFound: the file, the stack or the output is missing.
        DescriptorError: the value is not a valid descriptor.
    """
    file = Path(path)
    try:
        outputs = json.loads(file.read_text())
    except FileNotFoundError as e:
        raise EnvironmentNotFound(
            f"{file} does not exist. Deploy with 'cdk deploy --outputs-file {file}'."
        ) from e
    except json.JSONDecodeError as e:
        raise DescriptorError(f"{file} is not valid JSON ({e}).") from e
    stack_outputs = outputs.get(stack_name) if isinstance(outputs, dict) else None
    if not isinstance(stack_outputs, dict):
        known = sorted(outputs) if isinstance(outputs, dict) else []
        raise EnvironmentNotFound(
            f"{file} has no outputs for stack {stack_name!r} (it has {known}). Deploy that "
            "stack with --outputs-file, or pass the right stack name."
        )
    text = stack_outputs.get(DESCRIPTOR_OUTPUT_KEY)
    if not isinstance(text, str):
        raise EnvironmentNotFound(
            f"{file}: stack {stack_name!r} has no output {DESCRIPTOR_OUTPUT_KEY!r}; is it a "
            "batchwright environment?"
        )
    return _parse(text, f"outputs file {file} (stack {stack_name})")


def _stack_outputs(
    stack_name: str,
    client: CloudFormationClient | None,
    session: boto3.Session | None,
) -> dict[str, str]:
    if client is None:
        import boto3

        client = (session or boto3.Session()).client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except client.exceptions.ClientError as e:
        raise EnvironmentNotFound(
            f"CloudFormation stack {stack_name!r} could not be described "
            f"({e.response.get('Error', {}).get('Message', e)}). Check the stack name, the "
            "region and your credentials, or deploy it with 'cdk deploy'."
        ) from e
    outputs = stacks[0].get("Outputs") or [] if stacks else []
    return {o["OutputKey"]: o.get("OutputValue", "") for o in outputs if "OutputKey" in o}


def from_cloudformation(
    stack_name: str,
    *,
    client: CloudFormationClient | None = None,
    session: boto3.Session | None = None,
) -> EnvironmentDescriptor:
    """Reads the descriptor from the outputs of the deployed stack (``DescribeStacks``).

    Raises:
        EnvironmentNotFound: the stack or the output does not exist.
        DescriptorError: the value is not a valid descriptor.
    """
    outputs = _stack_outputs(stack_name, client, session)
    text = outputs.get(DESCRIPTOR_OUTPUT_KEY)
    if text is None:
        raise EnvironmentNotFound(
            f"CloudFormation stack {stack_name!r} has no output {DESCRIPTOR_OUTPUT_KEY!r}; is "
            "it a batchwright environment?"
        )
    return _parse(text, f"CloudFormation stack {stack_name} (output {DESCRIPTOR_OUTPUT_KEY})")


def from_parameter(
    name: str | None = None,
    *,
    stack_name: str | None = None,
    client: SSMClient | None = None,
    cloudformation: CloudFormationClient | None = None,
    session: boto3.Session | None = None,
) -> EnvironmentDescriptor:
    """Reads the descriptor from its SSM parameter, by ``name`` or, given ``stack_name``,
    by the name the stack publishes in its ``BatchwrightEnvironmentParameter`` output.

    Raises:
        EnvironmentNotFound: neither argument, or the parameter does not exist.
        DescriptorError: the value is not a valid descriptor.
    """
    if name is None:
        if stack_name is None:
            raise EnvironmentNotFound(
                "from_parameter needs the parameter name or the stack name; pass name=... or "
                "stack_name=..."
            )
        name = _stack_outputs(stack_name, cloudformation, session).get(
            DESCRIPTOR_PARAMETER_OUTPUT_KEY
        )
        if name is None:
            raise EnvironmentNotFound(
                f"CloudFormation stack {stack_name!r} has no output "
                f"{DESCRIPTOR_PARAMETER_OUTPUT_KEY!r}; is it a batchwright environment?"
            )
    if client is None:
        import boto3

        client = (session or boto3.Session()).client("ssm")
    try:
        value = client.get_parameter(Name=name)["Parameter"].get("Value", "")
    except client.exceptions.ParameterNotFound as e:
        raise EnvironmentNotFound(
            f"SSM parameter {name!r} does not exist in this account/region. Check the region, "
            "or deploy the environment."
        ) from e
    return _parse(value, f"SSM parameter {name}")


def _parse(text: str, source: str) -> EnvironmentDescriptor:
    return EnvironmentDescriptor.from_json(text, source=source)
