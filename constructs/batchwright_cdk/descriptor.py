"""Publishing contract 1: the environment descriptor, built with deploy-time tokens.

The document is an :class:`~batchwright.environment.descriptor.EnvironmentDescriptor`
whose ARNs and names are CDK tokens; ``Stack.to_json_string`` turns it into an
``Fn::Join`` that CloudFormation resolves at deploy time. It is published three ways:
the stack output ``BatchwrightEnvironment``, an SSM parameter (its name in the output
``BatchwrightEnvironmentParameter``) and a Metaflow profile in ``BatchwrightMetaflowProfile``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import aws_cdk as cdk
import jsii
from constructs import Construct

from batchwright.environment.descriptor import (
    DESCRIPTOR_OUTPUT_KEY,
    DESCRIPTOR_PARAMETER_OUTPUT_KEY,
    METAFLOW_PROFILE_OUTPUT_KEY,
    EnvironmentDescriptor,
)

#: Largest value an SSM parameter holds (Advanced tier, which Intelligent-Tiering picks
#: for values over 4 KB).
SSM_PARAMETER_MAX_BYTES = 8192
#: Length assumed for each deploy-time value (ARN, name) when estimating the deployed
#: size: ARNs with CloudFormation-generated names run to about 120 characters; names and
#: bucket names are shorter, so the estimate errs on the safe side.
DEPLOYED_VALUE_CHARS = 128
_TOKEN = re.compile(r"\$\{Token\[[^\]]*\]\}")


def estimated_deployed_bytes(descriptor: EnvironmentDescriptor) -> int:
    """The size the descriptor will have once CloudFormation has resolved its tokens."""
    text = _TOKEN.sub("x" * DEPLOYED_VALUE_CHARS, descriptor.to_json())
    return len(text.encode())


@jsii.implements(cdk.IStableStringProducer)
class _Rendered:
    """A string rendered at synthesis."""

    def __init__(self, render: Callable[[], str]):
        self._render = render

    def produce(self) -> str:
        """The rendered string."""
        return self._render()


def lazy_string(render: Callable[[], str]) -> str:
    """A string ``render`` produces at synthesis (``cdk.Lazy``), when everything that is
    added after construction (queues, grants) is known."""
    return cdk.Lazy.string(_Rendered(render))


def add_output(scope: Construct, key: str, value: str, description: str) -> cdk.CfnOutput:
    """A stack output whose logical id is exactly ``key`` (readers look it up by name)."""
    output = cdk.CfnOutput(scope, key, value=value, description=description)
    output.override_logical_id(key)
    return output


__all__ = [
    "DESCRIPTOR_OUTPUT_KEY",
    "DESCRIPTOR_PARAMETER_OUTPUT_KEY",
    "METAFLOW_PROFILE_OUTPUT_KEY",
    "SSM_PARAMETER_MAX_BYTES",
    "add_output",
    "estimated_deployed_bytes",
    "lazy_string",
]
