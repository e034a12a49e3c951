"""The cloud assembly (``cdk.out``) as data: its stacks, their templates, and the one
evaluator of CloudFormation's intrinsic functions.

Three readers need a synthesized template, each for its own reason: the runtime plans from
the static part of the environment descriptor before anything is deployed, the local AWS
deploys the template into the emulator, and the construct library names resources in
cdk-nag's notation. They share :class:`CloudAssembly` to find a stack's template, and
:func:`evaluate` to compute intrinsic functions; each brings only a :class:`References`:
what a ``Ref``, a ``Fn::GetAtt`` and a condition stand for where it works, and which
functions it computes at all.

Only the standard library is used: this module runs in job containers and wherever
aws-cdk-lib is not installed (the construct library may import it, never the reverse).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwright.errors import EnvironmentNotFound

#: The manifest's artifact type of a CloudFormation stack.
STACK_ARTIFACT_TYPE = "aws:cloudformation:stack"
#: The manifest of a cloud assembly, in its directory.
MANIFEST_FILE = "manifest.json"
#: A variable of a ``Fn::Sub`` string: ``${Name}``, ``${Logical.Attribute}``, ``${!Literal}``.
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StackArtifact:
    """One stack of a cloud assembly, as its manifest names it.

    A stack is asked for by any of three names: the artifact id (what ``cdk synth``
    prints), the display name (its construct path) and the CloudFormation stack name.
    """

    artifact_id: str
    stack_name: str
    display_name: str | None
    #: The template's path relative to the assembly directory; ``None`` when the manifest
    #: names none (such a stack cannot be read).
    template_file: str | None

    def answers_to(self, name: str) -> bool:
        """Whether ``name`` is one of the three names of this stack."""
        return name in (self.artifact_id, self.display_name, self.stack_name)


@dataclass(frozen=True)
class CloudAssembly:
    """A synthesized cloud assembly directory and the stacks its manifest lists."""

    directory: Path
    stacks: tuple[StackArtifact, ...]

    @property
    def manifest_path(self) -> Path:
        """Where the manifest of this assembly is."""
        return self.directory / MANIFEST_FILE

    @classmethod
    def read(cls, directory: str | Path) -> CloudAssembly:
        """Reads the manifest of the assembly in ``directory``.

        Raises:
            EnvironmentNotFound: there is no manifest (nothing was synthesized there) or
                it is not JSON.
        """
        folder = Path(directory)
        manifest_path = folder / MANIFEST_FILE
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError as e:
            raise EnvironmentNotFound(
                f"{manifest_path} does not exist. Run 'cdk synth' in the CDK app's directory, "
                "or pass the cdk.out directory that holds the synthesized app."
            ) from e
        except json.JSONDecodeError as e:
            raise EnvironmentNotFound(
                f"{manifest_path} is not valid JSON ({e}). Run 'cdk synth' again."
            ) from e
        artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
        stacks = []
        for artifact_id, artifact in (artifacts or {}).items():
            if artifact.get("type") != STACK_ARTIFACT_TYPE:
                continue
            properties = artifact.get("properties") or {}
            template_file = properties.get("templateFile")
            stacks.append(
                StackArtifact(
                    artifact_id=artifact_id,
                    stack_name=str(properties.get("stackName") or artifact_id),
                    display_name=artifact.get("displayName"),
                    template_file=str(template_file) if template_file else None,
                )
            )
        return cls(folder, tuple(stacks))

    def stack(self, name: str) -> StackArtifact:
        """The readable stack that answers to ``name``.

        Raises:
            EnvironmentNotFound: no stack with a template answers to ``name``; the message
                lists the stacks there are.
        """
        for stack in self.stacks:
            if stack.answers_to(name) and stack.template_file:
                return stack
        names = sorted(stack.stack_name for stack in self.stacks)
        raise EnvironmentNotFound(
            f"{self.manifest_path} has no stack named {name!r}; it has "
            f"{names or 'no stacks'}. Pass one of those names."
        )

    def template_path(self, name: str) -> Path:
        """The template file of the stack that answers to ``name``."""
        return self.directory / str(self.stack(name).template_file)

    def template(self, name: str) -> dict[str, Any]:
        """The synthesized template of the stack that answers to ``name``.

        Raises:
            EnvironmentNotFound: no such stack, or its template is not a JSON object.
        """
        path = self.template_path(name)
        template = json.loads(path.read_text())
        if not isinstance(template, dict):
            raise EnvironmentNotFound(
                f"{path} is not a CloudFormation template (not a JSON object). Run "
                "'cdk synth' again."
            )
        return template


def stack_template(directory: str | Path, name: str) -> dict[str, Any]:
    """The synthesized template of stack ``name`` in the cloud assembly ``directory``.

    Raises:
        EnvironmentNotFound: no manifest there, or no such stack.
    """
    return CloudAssembly.read(directory).template(name)


# --- intrinsic functions -------------------------------------------------------------------


class _NoValue:
    """The type of :data:`NO_VALUE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


#: What ``{"Ref": "AWS::NoValue"}`` stands for where a resolver removes it: a list item
#: or a property with this value is left out, as CloudFormation leaves it out.
NO_VALUE: Any = _NoValue()


class Unresolved(str):
    """A value only a deployment knows, written as a placeholder such as ``<Ref:Bucket>``.

    :func:`evaluate` keeps such a value recognizable through the functions that take it
    apart: a ``Fn::Split`` of it stays the whole placeholder, a ``Fn::Select`` of it
    becomes one ``<part-of:...>`` placeholder, so a queue name cut out of its ARN still
    reads as what it is.
    """

    __slots__ = ()

    @classmethod
    def named(cls, text: str) -> Unresolved:
        """The placeholder ``<text>``."""
        return cls(f"<{text}>")

    def part(self) -> Unresolved:
        """A part of this value (parts of parts stay one ``part-of`` placeholder)."""
        if self.startswith("<part-of:"):
            return self
        return Unresolved.named(f"part-of:{self[1:-1]}")


class References:
    """What the names inside intrinsic functions stand for, in one setting.

    :func:`evaluate` does the computing; a subclass answers only for the references
    (``ref``, ``get_att``, ``condition``) and says which functions it computes at all
    (:attr:`functions`). A function it does not compute, or cannot compute from its
    arguments, goes to :meth:`unevaluated`.
    """

    #: The ``Fn::*`` functions this setting computes; the others go to :meth:`unevaluated`.
    #: ``Ref``, ``Fn::GetAtt`` and ``Condition`` always go to their methods.
    functions: Collection[str] = frozenset()

    def ref(self, name: str) -> Any:
        """The value of ``{"Ref": name}``: a parameter, a pseudo parameter or a resource;
        :data:`NO_VALUE` for ``AWS::NoValue`` where it is to be left out."""
        raise NotImplementedError

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """The value of ``{"Fn::GetAtt": [logical_id, attribute]}``."""
        raise NotImplementedError

    def condition(self, name: str) -> Any:
        """The truth of the template condition ``name`` (``Fn::If``, ``Condition``)."""
        raise NotImplementedError

    def find_in_map(self, map_name: Any, top_level_key: Any, second_level_key: Any) -> Any:
        """The value ``Fn::FindInMap`` finds in the template's ``Mappings`` (asked only
        where :attr:`functions` has ``Fn::FindInMap``)."""
        raise NotImplementedError

    def availability_zones(self, region: str) -> list[str]:
        """The availability zones ``Fn::GetAZs`` lists for ``region`` (asked only where
        :attr:`functions` has ``Fn::GetAZs``)."""
        raise NotImplementedError

    def unevaluated(self, function: str, argument: Any) -> Any:
        """The value of a function this setting does not compute (or whose arguments do not
        allow computing it, like ``Fn::Select`` past the end of its list); by default the
        function itself, unchanged."""
        return {function: argument}


def evaluate(value: Any, references: References) -> Any:
    """``value`` from a template, with its intrinsic functions computed as ``references``
    resolves their names; list items and properties that come out as :data:`NO_VALUE`
    are left out."""
    if isinstance(value, list):
        return [item for v in value if (item := evaluate(v, references)) is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return references.ref(str(argument))
        if name == "Condition":
            return references.condition(str(argument))
        if name == "Fn::GetAtt":
            return _get_att(argument, references)
        if name.startswith("Fn::"):
            function = _FUNCTIONS.get(name)
            if function is None or name not in references.functions:
                return references.unevaluated(name, argument)
            return function(argument, references)
    return {
        key: item for key, v in value.items() if (item := evaluate(v, references)) is not NO_VALUE
    }


def _get_att(argument: Any, references: References) -> Any:
    if isinstance(argument, list):
        logical_id, attribute = argument
    else:
        logical_id, _, attribute = str(argument).partition(".")
    return references.get_att(str(logical_id), str(evaluate(attribute, references)))


def _join(argument: Any, references: References) -> str:
    separator, parts = argument
    items = evaluate(parts, references)
    if not isinstance(items, list):
        items = [items]  # a single value that stands for the list (an unresolved Fn::Split)
    return str(separator).join(str(item) for item in items)


def _split(argument: Any, references: References) -> Any:
    separator, source = argument
    text = evaluate(source, references)
    if isinstance(text, Unresolved):
        return text  # its parts are unknown; a later Fn::Select names it "part-of"
    return str(text).split(str(separator))


def _select(argument: Any, references: References) -> Any:
    index, items = evaluate(argument[0], references), evaluate(argument[1], references)
    if isinstance(items, Unresolved):
        return items.part()
    try:
        return items[int(index)]
    except (IndexError, TypeError, ValueError):
        return references.unevaluated("Fn::Select", argument)


def _sub(argument: Any, references: References) -> str:
    text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} writes ${Literal}
        if name in variables:
            return str(evaluate(variables[name], references))
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return str(references.get_att(logical_id, attribute))
        return str(references.ref(name))

    return _SUB_VARIABLE.sub(replace, str(text))


def _if(argument: Any, references: References) -> Any:
    name, when_true, when_false = argument
    return evaluate(when_true if references.condition(str(name)) else when_false, references)


def _equals(argument: Any, references: References) -> bool:
    left, right = (evaluate(v, references) for v in argument)
    return bool(left == right)


def _find_in_map(argument: Any, references: References) -> Any:
    return references.find_in_map(*(evaluate(v, references) for v in argument))


def _get_azs(argument: Any, references: References) -> list[str]:
    region = evaluate(argument, references) or references.ref("AWS::Region")
    return references.availability_zones(str(region))


def _base64(argument: Any, references: References) -> str:
    return base64.b64encode(str(evaluate(argument, references)).encode()).decode()


_FUNCTIONS: Mapping[str, Callable[[Any, References], Any]] = {
    "Fn::Join": _join,
    "Fn::Split": _split,
    "Fn::Select": _select,
    "Fn::Sub": _sub,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": lambda argument, references: not evaluate(argument[0], references),
    "Fn::And": lambda argument, references: all(evaluate(v, references) for v in argument),
    "Fn::Or": lambda argument, references: any(evaluate(v, references) for v in argument),
    "Fn::Base64": _base64,
    "Fn::FindInMap": _find_in_map,
    "Fn::GetAZs": _get_azs,
}

#: Every ``Fn::*`` function :func:`evaluate` can compute (``Fn::GetAtt`` aside, which always
#: goes to :meth:`References.get_att`).
FUNCTIONS: frozenset[str] = frozenset(_FUNCTIONS)
