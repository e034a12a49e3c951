"""AWS Batch, the pure part: the ``@batch`` options, the job spec (contract 2), the
``current.batch`` view of a job's environment and the failure vocabulary.

Nothing in this package calls AWS; the backend that does lives elsewhere and feeds these
functions its inputs.
"""

from batchwright.batch.decorator import BatchDecorator, batch
from batchwright.batch.environment import BatchEnvironment
from batchwright.batch.failures import Diagnosis, FailureKind, classify_job
from batchwright.batch.jobspec import (
    JOB_SPEC_VERSION,
    JobDefinitionRequest,
    JobSpec,
    Notice,
    QueueTarget,
    SubmitJobRequest,
    TaskInvocation,
    build_job_definition,
    build_job_spec,
    build_submit_job,
    command_for_task,
    sanitize_job_name,
)
from batchwright.batch.options import BatchOptions

__all__ = [
    "JOB_SPEC_VERSION",
    "BatchDecorator",
    "BatchEnvironment",
    "BatchOptions",
    "Diagnosis",
    "FailureKind",
    "JobDefinitionRequest",
    "JobSpec",
    "Notice",
    "QueueTarget",
    "SubmitJobRequest",
    "TaskInvocation",
    "batch",
    "build_job_definition",
    "build_job_spec",
    "build_submit_job",
    "classify_job",
    "command_for_task",
    "sanitize_job_name",
]
