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


#: Seconds each metadata request may take: the answer is a nicety, never worth a delay.
METADATA_TIMEOUT = 0.5
#: Where EC2's instance metadata service answers (botocore honours the same variable).
IMDS_ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
IMDS_ENDPOINT = "http://169.254.169.254"


def _fetch(url: str, method: str = "GET", headers: Mapping[str, str] | None = None) -> str | None:
    import urllib.request

    request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    # Link-local endpoints are never reached through a proxy the job's environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=METADATA_TIMEOUT) as answer:
            return str(answer.read().decode())
    except Exception:
        return None


def host_facts(environ: Mapping[str, str]) -> dict[str, str]:
    """The capacity a Batch job runs on, as AWS tells the container: ``capacity``
    (``fargate``, ``spot`` or ``on-demand``) and, on EC2, ``instance_type``.

    Asked only inside an ECS task (``ECS_CONTAINER_METADATA_URI_V4`` set, as on every
    Batch job on ECS): the task metadata endpoint says Fargate or EC2, and on EC2 the
    instance metadata service (IMDSv2) gives the type and the Spot/On-Demand life cycle.
    Anything unanswered (an emulator, a hop limit of 1 under bridge networking) is left
    out; the run's report then labels the plan's estimate as such.
    """
    import json

    task_endpoint = environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not task_endpoint:
        return {}
    facts: dict[str, str] = {}
    task = _fetch(f"{task_endpoint.rstrip('/')}/task")
    try:
        launch_type = json.loads(task).get("LaunchType", "") if task else ""
    except (ValueError, AttributeError):
        launch_type = ""
    if launch_type == "FARGATE":
        return {"capacity": "fargate"}
    imds = environ.get(IMDS_ENDPOINT_VARIABLE, IMDS_ENDPOINT).rstrip("/")
    token = _fetch(
        f"{imds}/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    if token is None:
        return facts
    headers = {"X-aws-ec2-metadata-token": token}
    instance_type = _fetch(f"{imds}/latest/meta-data/instance-type", headers=headers)
    if instance_type:
        facts["instance_type"] = instance_type.strip()
    life_cycle = _fetch(f"{imds}/latest/meta-data/instance-life-cycle", headers=headers)
    if life_cycle and life_cycle.strip() in ("spot", "on-demand"):
        facts["capacity"] = life_cycle.strip()
    return facts


def placement(environ: Mapping[str, str]) -> dict[str, str] | None:
    """Where this Batch job runs (its job id, compute environment, queue, capacity and
    instance type), for the attempt's metadata; ``None`` outside a Batch job."""
    info = BatchJobInfo.from_environ(environ)
    if info is None:
        return None
    where = {
        "job_id": info.job_id,
        "compute_environment": info.compute_environment,
        "queue": info.queue,
    }
    return {**{k: v for k, v in where.items() if v}, **host_facts(environ)}
