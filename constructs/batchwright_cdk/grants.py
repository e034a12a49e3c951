"""Grants on a batchwright environment, for any grantee, the CDK way.

:class:`EnvironmentGrants` is what a :class:`~batchwright_cdk.environment.BatchEnvironment`
and an imported environment (:mod:`batchwright_cdk.imported`) share: each grant takes any
``iam.IGrantable`` (a role, user, group, Lambda function, CodeBuild project ...), adds
statements to the grantee's own policy and returns an ``iam.Grant``, like ``Bucket.grant_read``.

A principal whose policy cannot be changed (an imported role with ``mutable=False``) gets
nothing from a grant: CDK says the statement was added and drops it. Such a grant leaves
a warning on the principal that names the policy to attach, and a stack output holding
that policy's document, so the loss is never silent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from batchwright_cdk import iam as iam_parts
from batchwright_cdk.descriptor import lazy_string
from batchwright_cdk.validation import fail


class EnvironmentGrants:
    """The grants of a batchwright environment (mixed into the environment constructs).

    Subclasses provide the resources and queues below, :meth:`_stack_arn` and
    :meth:`_descriptor_parameter_arn`.
    """

    bucket: s3.IBucket
    datastore_prefix: str
    job_role: iam.IRole
    execution_role: iam.IRole
    log_group: logs.ILogGroup
    job_queues: Mapping[str, batch.IJobQueue]

    # --- what subclasses provide --------------------------------------------------------

    def _queue_arns(self) -> dict[str, str]:
        """The ARN of each queue, by key."""
        return {key: queue.job_queue_arn for key, queue in self.job_queues.items()}

    def _stack_arn(self) -> str:
        """The ARN of the environment's stack (the runtime reads its outputs)."""
        raise NotImplementedError

    def _descriptor_parameter_arn(self) -> str | None:
        """The ARN of the SSM parameter holding the descriptor, if there is one."""
        raise NotImplementedError

    def _scope(self) -> Construct:
        """Where warnings and outputs about grants go."""
        assert isinstance(self, Construct)
        return self

    # --- grants ---------------------------------------------------------------------------

    def grant_datastore(self, grantee: iam.IGrantable) -> iam.Grant:
        """Lets ``grantee`` read, write and list the datastore prefix (nothing else), except
        that it may never write under the prefix's ``code/``: an explicit deny keeps the
        code packages and command payloads that jobs run read-only to it. The job role
        gets this grant; :meth:`grant_submit` writes code (so do not give one principal
        both)."""
        statements = iam_parts.datastore_statements(self.bucket, self.datastore_prefix)
        return self._grant(grantee, statements, "BatchwrightDatastore")

    def grant_submit(
        self, grantee: iam.IGrantable, *, queues: Sequence[str] | None = None
    ) -> iam.Grant:
        """Lets a person, CI role or service (``grantee``) run flows here: submit to the
        queues (all of them, later ones included, unless ``queues`` names some), register
        and use the runtime's own job definitions, control the runtime's jobs, pass only the
        job and execution roles, read the job logs and the descriptor, use the datastore.

        Raises:
            EnvironmentConfigError: ``queues`` names a queue the environment lacks.
        """
        arns = self._queue_arns()
        keys = list(arns) if queues is None else list(queues)
        for key in keys:
            if key not in arns and not self._looking_up():
                raise fail(
                    f"{type(self).__name__} {self._scope().node.id!r}",
                    "queue",
                    key,
                    "names no queue of this environment",
                    f"Use one of {sorted(arns)}",
                )
        if self._looking_up():  # CDK synthesizes again once it knows the queues
            resources = [self._placeholder_queue_arn(key) for key in keys or ["all"]]
        else:
            resources = [arns[key] for key in keys]
        statements = self._submitter_statements(resources)
        grant = self._grant(grantee, statements, "BatchwrightSubmitter")
        if queues is None:
            self._follow_new_queues([*grant.principal_statements[:1], statements[0]])
        return grant

    def grant_submit_job(self, grantee: iam.IGrantable, queue: str) -> iam.Grant:
        """:meth:`grant_submit` limited to one queue (by key), for teams that may use only
        some queues. The runtime still routes by the whole descriptor: a step sent to
        another queue is refused by AWS at submission."""
        return self.grant_submit(grantee, queues=[queue])

    def _follow_new_queues(self, statements: Sequence[iam.PolicyStatement]) -> None:
        """Queues added later join ``statements`` (the queue statements of a grant of all
        queues); environments that can add queues override this."""

    def _looking_up(self) -> bool:
        """Whether CDK is still looking the environment up (its queues are unknown)."""
        return False

    def _placeholder_queue_arn(self, key: str) -> str:
        """A queue ARN for the lookup pass only (that template is discarded)."""
        return cdk.Stack.of(self._scope()).format_arn(
            service="batch", resource="job-queue", resource_name=f"dummy-value-for-{key}"
        )

    def _submitter_statements(self, queue_arns: Sequence[str]) -> list[iam.PolicyStatement]:
        return iam_parts.submitter_statements(
            queue_arns=queue_arns,
            job_role=self.job_role,
            execution_role=self.execution_role,
            log_group=self.log_group,
            bucket=self.bucket,
            prefix=self.datastore_prefix,
            parameter_arn=self._descriptor_parameter_arn(),
            stack_arn=self._stack_arn(),
            scope=self._scope(),
        )

    def _grant(
        self, grantee: iam.IGrantable, statements: Sequence[iam.PolicyStatement], policy: str
    ) -> iam.Grant:
        grant, held = iam_parts.grant_statements(grantee, statements)
        owner = iam_parts.policy_owner(grantee)
        if owner is not None:
            iam_parts.acknowledge_wildcards(owner, statements)
        if not held:
            self._report_unheld(grantee, statements, policy)
        return grant

    def _report_unheld(
        self, grantee: iam.IGrantable, statements: Sequence[iam.PolicyStatement], policy: str
    ) -> None:
        """A warning on the grantee naming the policy to attach, and an output with it."""
        scope = self._scope()
        stack = cdk.Stack.of(scope)
        node = getattr(grantee, "node", None)
        name = node.id if node is not None else "Principal"
        key = _output_key(f"{policy}PolicyFor{name}")
        if stack.node.try_find_child(key) is None:
            document = iam.PolicyDocument(statements=list(statements))
            output = cdk.CfnOutput(
                stack,
                key,
                # Rendered at synthesis: queues added later are in it.
                value=lazy_string(lambda: stack.to_json_string(document.to_json())),
                description=f"IAM policy to attach to {name} yourself (batchwright could "
                "not change its policy)",
            )
            output.override_logical_id(key)
        target = cast(IConstruct, grantee) if node is not None else scope
        cdk.Annotations.of(target).add_warning_v2(
            "batchwright:grantNotHeld",
            f"{name}'s policy cannot be changed here (an immutable or imported principal): "
            f"it does not get the {policy} permissions. Attach the policy document in stack "
            f"output {key} to it yourself, e.g. as an inline or managed policy.",
        )


def _output_key(text: str) -> str:
    """A valid output logical id (alphanumeric, at most 255 characters)."""
    return re.sub(r"[^A-Za-z0-9]", "", text)[:255]
