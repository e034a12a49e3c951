"""``current.batch``: what AWS Batch tells a job about itself through ``AWS_BATCH_*``.

Read defensively: emulators set only some of the variables (moto sets
``AWS_BATCH_JOB_ID`` alone), so every field but the job id may be ``None``, and the
array index falls back to the ``<parent>:<index>`` suffix of an array child's job id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_ARRAY_CHILD = re.compile(r"^(?P<parent>.+):(?P<index>\d+)$")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _name(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


@dataclass(frozen=True)
class BatchJobInfo:
    """The Batch job a step runs in; ``None`` fields were not provided by Batch."""

    job_id: str
    #: 1-based attempt of this job (Batch's infrastructure retries), if set.
    attempt: int | None = None
    compute_environment: str | None = None
    queue: str | None = None
    #: Index of an array child (0-based), ``None`` for a job that is not one.
    array_index: int | None = None
    #: Node index of a multi-node job, if set.
    node_index: int | None = None
    #: Node count of a multi-node job, if set.
    num_nodes: int | None = None

    @property
    def parent_job_id(self) -> str | None:
        """The array parent's job id for an array child, else ``None``."""
        match = _ARRAY_CHILD.match(self.job_id)
        return match["parent"] if match else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BatchJobInfo | None:
        """The job's view of itself, or ``None`` outside a Batch job (no ``AWS_BATCH_JOB_ID``)."""
        job_id = _name(environ.get("AWS_BATCH_JOB_ID"))
        if job_id is None:
            return None
        array_index = _int(environ.get("AWS_BATCH_JOB_ARRAY_INDEX"))
        if array_index is None:
            match = _ARRAY_CHILD.match(job_id)
            array_index = int(match["index"]) if match else None
        return cls(
            job_id=job_id,
            attempt=_int(environ.get("AWS_BATCH_JOB_ATTEMPT")),
            compute_environment=_name(environ.get("AWS_BATCH_CE_NAME")),
            queue=_name(environ.get("AWS_BATCH_JQ_NAME")),
            array_index=array_index,
            node_index=_int(environ.get("AWS_BATCH_JOB_NODE_INDEX")),
            num_nodes=_int(environ.get("AWS_BATCH_JOB_NUM_NODES")),
        )
