"""Contract 2, the job spec: checked ``@batch`` options + a queue -> AWS Batch requests.

Pure functions, no I/O, no boto3 client. Given a step's
:class:`~batchwright.batch.options.BatchOptions`, the
:class:`~batchwright.batch.platforms.QueueTarget` it runs on and one
:class:`~batchwright.batch.submission.TaskInvocation`, :func:`build_job_spec` returns the
``RegisterJobDefinition`` and ``SubmitJob`` keyword arguments, valid against botocore's
Batch model. The contract's version is
:data:`~batchwright.batch.definition.JOB_SPEC_VERSION`.

The split between the two requests is the contract:

* the **job definition** (:mod:`batchwright.batch.definition`) holds what is fixed for a
  step on a platform, and is named after a hash of its content;
* the **submission** (:mod:`batchwright.batch.submission`) holds what changes per task.

A task is a single job, an array job (``array_size``) or a multi-node parallel job
(``num_nodes``: a ``multinode`` definition, and node overrides in the submission).

Everything that can be refused is refused before the first API call, with the step, key,
value and fix: options the queue's platform lacks (:mod:`batchwright.batch.platforms`,
checked once per spec), Fargate sizes beyond the largest, missing execution roles, too
short timeouts, requests over Batch's size limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchwright.batch.definition import JobDefinitionRequest, build_job_definition
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget, SpecNotice
from batchwright.batch.submission import SubmitJobRequest, TaskInvocation, build_submit_job


@dataclass(frozen=True)
class JobSpec:
    """Both requests for one task, and the notices raised while building them."""

    definition: JobDefinitionRequest
    submit: SubmitJobRequest
    notices: tuple[SpecNotice, ...] = ()


def build_job_spec(
    options: BatchOptions,
    target: QueueTarget,
    invocation: TaskInvocation,
    *,
    offload_root: str | None = None,
) -> JobSpec:
    """Both requests of one task; see :func:`build_job_definition` and
    :func:`build_submit_job` for what each holds and refuses. The platform is checked
    once, by the definition. An invocation with ``num_nodes`` is a multi-node parallel
    job: its definition is a multi-node one (EC2 on-demand queues only)."""
    definition = build_job_definition(
        options,
        target,
        timeout_seconds=invocation.timeout_seconds,
        multi_node=invocation.num_nodes is not None,
    )
    submit, notices = build_submit_job(
        options, target, invocation, definition, offload_root=offload_root
    )
    return JobSpec(definition=definition, submit=submit, notices=notices)
