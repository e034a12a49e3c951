"""Batch checks that cdk-nag's packs lack, as a CDK Aspect.

``Aspects.of(scope).add(BatchChecks())`` visits every AWS Batch resource under ``scope``
and adds an error annotation (which fails ``cdk synth``) for:

- a job definition whose container runs privileged;
- a job definition environment variable that looks like a secret (by a whole word of its
  name such as ``TOKEN`` or ``PASSWORD``, unless it names a reference like ``*_ARN``; or
  by its value: AWS access key ids, private keys, GitHub and Slack tokens):
  such values end up in plain text in the job definition and in ``DescribeJobs``; use
  ``@batch(secrets=...)`` (Secrets Manager / SSM, read by the execution role) instead;
- a job queue with more than three compute environments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_batch as batch
from constructs import IConstruct

from batchwright_cdk.validation import MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE

#: Words of an environment variable name (split at ``_``, ``-``, ``.``) that suggest a
#: credential; whole words only, so ``TOKENIZERS_PARALLELISM`` is not one.
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PWD", "SECRET", "TOKEN", "CREDENTIAL", "CREDENTIALS", "APIKEY"}
)
#: Word pairs that suggest a credential (``API_KEY``, ``AWS_SECRET_ACCESS_KEY`` ...).
SECRET_PAIRS = frozenset({("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY")})
#: Last words that make the variable a *reference* to a secret, which is fine to pass.
REFERENCE_WORDS = frozenset({"ARN", "NAME", "ID", "PATH", "FILE", "URL", "PARAMETER"})
#: Values that are credentials whatever their name (AWS access key ids, private keys,
#: GitHub and Slack tokens).
SECRET_VALUE = re.compile(
    r"(^(AKIA|ASIA)[0-9A-Z]{16}$|-----BEGIN [A-Z ]*PRIVATE KEY-----|^gh[pousr]_[A-Za-z0-9]{30,}"
    r"|^xox[abpr]-)"
)


def _get(mapping: Any, key: str) -> Any:
    """``mapping[key]`` ignoring the case of the first letter: resolved L1 props are
    camelCase, templates PascalCase; the checks accept both."""
    if not isinstance(mapping, dict):
        return None
    value = mapping.get(key)
    return value if value is not None else mapping.get(key[0].lower() + key[1:])


def _containers(props: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container definition of a job definition, with where it sits."""
    container = _get(props, "ContainerProperties")
    if isinstance(container, dict):
        yield "ContainerProperties", container
    for i, group in enumerate(_get(_get(props, "NodeProperties"), "NodeRangeProperties") or []):
        container = _get(group, "Container")
        if isinstance(container, dict):
            yield f"NodeProperties.NodeRangeProperties[{i}].Container", container
    for i, task in enumerate(_get(_get(props, "EcsProperties"), "TaskProperties") or []):
        for j, container in enumerate(_get(task, "Containers") or []):
            if isinstance(container, dict):
                yield f"EcsProperties.TaskProperties[{i}].Containers[{j}]", container


def secret_like_name(name: str) -> bool:
    """Whether an environment variable name suggests its value is a credential."""
    words = [w for w in re.split(r"[_\-.]", name.upper()) if w]
    if not words or words[-1] in REFERENCE_WORDS:
        return False
    return bool(SECRET_WORDS.intersection(words)) or any(
        pair in SECRET_PAIRS for pair in pairwise(words)
    )


def job_definition_problems(props: dict[str, Any]) -> list[str]:
    """What is wrong with a job definition's properties (pure; the aspect and tests use
    it; keys may be CloudFormation's PascalCase or the L1's camelCase)."""
    problems: list[str] = []
    for where, container in _containers(props):
        if _get(container, "Privileged") is True:
            problems.append(
                f"{where}.Privileged is true: the container gets root on the host. Grant the "
                "devices it needs through LinuxParameters instead."
            )
        for variable in _get(container, "Environment") or []:
            name = str(_get(variable, "Name") or "")
            value = _get(variable, "Value")
            if not isinstance(value, str) or not value:
                continue
            if SECRET_VALUE.search(value) or (
                secret_like_name(name) and not value.startswith("arn:")
            ):
                problems.append(
                    f"{where}.Environment {name!r} looks like a secret in plain text (it is "
                    "visible in the job definition and DescribeJobs). Keep it in Secrets "
                    "Manager or SSM Parameter Store and pass it as a secret instead: "
                    f"@batch(secrets={{{name!r}: '<secret or parameter ARN>'}}) in a flow, "
                    "'Secrets' in a job definition of your own, and give the environment "
                    "construct the secret (BatchEnvironment(secrets=[...])) so that the "
                    "execution role may read it."
                )
    return problems


@jsii.implements(cdk.IAspect)
class BatchChecks:
    """Adds error annotations for Batch misconfigurations cdk-nag does not look for."""

    def visit(self, node: IConstruct) -> None:
        """Checks one construct (only Batch L1 resources are of interest)."""
        if isinstance(node, batch.CfnJobDefinition):
            stack = cdk.Stack.of(node)
            props = {
                "ContainerProperties": stack.resolve(node.container_properties),
                "NodeProperties": stack.resolve(node.node_properties),
                "EcsProperties": stack.resolve(node.ecs_properties),
            }
            for problem in job_definition_problems(props):
                cdk.Annotations.of(node).add_error(f"[BatchChecks] {problem}")
        elif isinstance(node, batch.CfnJobQueue):
            order = cdk.Stack.of(node).resolve(node.compute_environment_order) or []
            if isinstance(order, list) and len(order) > MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE:
                cdk.Annotations.of(node).add_error(
                    f"[BatchChecks] ComputeEnvironmentOrder has {len(order)} entries; AWS Batch "
                    f"allows {MAX_COMPUTE_ENVIRONMENTS_PER_QUEUE} per queue. Split the queue."
                )
