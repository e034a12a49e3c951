"""Multi-node parallel (MNP) Batch jobs in the moto server, run as AWS Batch runs them.

moto 5.2 runs a ``multinode`` job as one container per node, but: it ignores SubmitJob's
``nodeOverrides``; it sets no per-node ``AWS_BATCH_*`` variables (and under host
networking the main node's address comes out empty); it writes every node's output to one
log stream; it does not know node ids (``<jobId>#<i>``); and it waits for the nodes one
after the other, so the job ends only when every node has, and fails when any node does.
:func:`install` (called by :mod:`batchwright_localaws.motoserver`) replaces how such a job
runs and is described, and leaves every other job to moto:

- **Overrides.** ``nodeOverrides.numNodes`` replaces the definition's ``numNodes`` (as on
  AWS, the definition then needs a node range open at the top, ``n:``), and each
  ``nodePropertyOverrides[]`` applies its ``containerOverrides`` to the nodes its
  ``targetNodes`` names (``"2"``, ``"0:2"``, ``":3"``, ``"1:"``): ``command`` replaces,
  ``environment`` merges by name over the node range's, ``resourceRequirements`` merges by
  type (an override of MEMORY alone keeps the VCPU of the definition, as on AWS),
  ``vcpus``/``memory``/``instanceType`` replace. A bad range is refused at SubmitJob.
- **Environment of node i** (of N, main node m): the merged environment plus
  ``AWS_BATCH_JOB_ID=<jobId>#<i>``, ``AWS_BATCH_JOB_NODE_INDEX=i``,
  ``AWS_BATCH_JOB_NUM_NODES=N``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX=m`` and, on child nodes
  only, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``. *Emulator adaptation:* under
  ``MOTO_DOCKER_NETWORK_MODE=host`` (the local AWS) every node shares the host's network
  namespace, so that address is ``127.0.0.1`` (:data:`LOOPBACK`); nodes listen on distinct
  ports. With another network mode it is the main container's address, as moto reads it.
- **Lifecycle** (AWS's "job lifecycle for MNP jobs"): the main node starts first, then the
  children. Each node is SUCCEEDED or FAILED by its own exit code. When the main node
  exits, the job ends with the main node's status and exit code, and the children still
  running are stopped. A child that exits changes nothing else. TerminateJob, or the
  attempt's timeout, stops every node. Stopping is SIGTERM, then SIGKILL after
  :data:`STOP_GRACE_SECONDS` (ECS waits 30 s; kept short here).
- **Node records.** DescribeJobs answers ``<jobId>#<i>`` (and ``<jobArn>#<i>``) with that
  node's own JobDetail: ``jobId``/``jobArn`` with ``#<i>``, its status, ``statusReason``,
  ``startedAt``/``stoppedAt``, ``nodeDetails {nodeIndex, isMainNode}``, ``container``
  (the node's effective image, command, environment, resourceRequirements,
  linuxParameters, and ``exitCode``, ``reason``, ``logStreamName``) and one attempt.
  Before its container starts a node shows its parent's status (STARTING once the parent
  is RUNNING). ListJobs with ``multiNodeJobId`` lists the nodes (JobSummary with
  ``nodeProperties {isMainNode, nodeIndex}``).
- **Log streams.** Each node writes to its own stream in ``/aws/batch/job``,
  ``<job definition name>/default/<jobId>-node-<i>`` (:func:`node_log_stream`), created
  when the node starts; its lines are put there when the node's container ends (as moto
  does for every job).
- **The parent's record** keeps moto's and adds: ``nodeProperties`` with ``numNodes`` as
  submitted (overridden), ``mainNode`` and the definition's ``nodeRangeProperties``
  (the per-node effective containers are in the node records); ``container`` carries the
  main node's ``exitCode``, ``reason`` and ``logStreamName``; ``startedAt`` is when the
  main node started. ListJobs summaries of the parent carry ``nodeProperties {numNodes}``.
- **Capacity.** A multi-node job takes one slot of
  :data:`batchwright_localaws.motoserver.SLOTS_VARIABLE` whatever its node count: it
  needs all its containers at once, and one slot per job can never leave two jobs each
  holding part of what they need. The slots bound jobs, not containers, here.
- **Container execution off** (moto's ``{"batch": {"use_docker": false}}``): the job
  succeeds at once as moto makes it; ``nodeProperties`` shows the submitted ``numNodes``
  and the node records mirror the parent (no log streams).

Container names stay moto's, ``<jobName>-<jobId>-<i>`` (the fault proxy's reclaims find
them so).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

log = logging.getLogger(__name__)

#: The main node's address as child nodes see it under host networking (every node
#: shares the host's network namespace; no private-range addresses on these machines).
LOOPBACK: Final = "127.0.0.1"
#: The log group of Batch jobs.
LOG_GROUP: Final = "/aws/batch/job"
#: How long a stopped node gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS: Final = 2.0
#: How often the nodes' containers are looked at.
POLL_SECONDS: Final = 0.25
#: Reason of a node whose container exited by itself (AWS's wording).
EXITED_REASON: Final = "Essential container in task exited"
#: Reason of a child node stopped because the main node exited.
MAIN_EXITED_REASON: Final = "Stopped: the main node exited"
#: Reason of nodes stopped by the attempt's timeout (AWS's wording).
TIMEOUT_REASON: Final = "Job attempt duration exceeded timeout"

_NODE_ID = re.compile(r"^(?P<parent>.+)#(?P<index>\d+)$")
_MARK = "_batchwright_multinode"
_STATE = "_batchwright_nodes"
_DONE = ("SUCCEEDED", "FAILED")


class NodeRangeError(ValueError):
    """A ``targetNodes`` range, or node properties, that AWS would refuse."""


# --- the pure parts: ranges and overrides ----------------------------------------------


def node_indices(target_nodes: str, num_nodes: int) -> range:
    """The node indices ``target_nodes`` names among ``num_nodes`` nodes: ``"i"`` one
    node, ``"i:j"`` i through j, ``":j"`` 0 through j, ``"i:"`` i through the last."""
    text = str(target_nodes).strip()
    start_text, colon, end_text = text.partition(":")
    try:
        start = int(start_text) if start_text.strip() else (0 if colon else -1)
        end = (int(end_text) if end_text.strip() else num_nodes - 1) if colon else start
    except ValueError:
        raise NodeRangeError(f"targetNodes {target_nodes!r} is not a node range") from None
    if start < 0 or end < start or end >= num_nodes:
        raise NodeRangeError(f"targetNodes {target_nodes!r} is outside nodes 0..{num_nodes - 1}")
    return range(start, end + 1)


def _merge_by(
    key: str, base: Iterable[Mapping[str, Any]], override: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``base`` with each entry of ``override`` replacing the one of the same ``key``
    (in place) or appended."""
    merged = {str(entry[key]): dict(entry) for entry in base}
    for entry in override:
        merged[str(entry[key])] = dict(entry)
    return list(merged.values())


def apply_container_overrides(
    container: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """A node's container properties with a ``containerOverrides`` applied, as Batch
    applies it: ``command`` replaces, ``environment`` merges by name,
    ``resourceRequirements`` merges by type, ``vcpus``/``memory``/``instanceType``
    replace."""
    result = copy.deepcopy(dict(container))
    if "command" in overrides:
        result["command"] = list(overrides["command"])
    if overrides.get("environment"):
        result["environment"] = _merge_by(
            "name", result.get("environment") or [], overrides["environment"]
        )
    if overrides.get("resourceRequirements"):
        result["resourceRequirements"] = _merge_by(
            "type", result.get("resourceRequirements") or [], overrides["resourceRequirements"]
        )
    for key in ("vcpus", "memory", "instanceType"):
        if key in overrides:
            result[key] = overrides[key]
    return result


@dataclass(frozen=True)
class NodePlan:
    """What a submission runs: the node count, the main node and each node's effective
    container properties (by index)."""

    num_nodes: int
    main_node: int
    containers: tuple[dict[str, Any], ...]


def plan_nodes(
    node_properties: Mapping[str, Any], node_overrides: Mapping[str, Any] | None = None
) -> NodePlan:
    """The nodes a job definition's ``nodeProperties`` runs under SubmitJob's
    ``nodeOverrides``; raises :class:`NodeRangeError` where AWS would refuse them."""
    overrides = node_overrides or {}
    ranges: Sequence[Mapping[str, Any]] = node_properties.get("nodeRangeProperties") or []
    num_nodes = int(overrides.get("numNodes") or node_properties.get("numNodes") or 0)
    main_node = int(node_properties.get("mainNode") or 0)
    if num_nodes < 1:
        raise NodeRangeError("numNodes must be at least 1")
    if not 0 <= main_node < num_nodes:
        raise NodeRangeError(f"mainNode {main_node} is not fewer than numNodes {num_nodes}")
    if overrides.get("numNodes") and not any(
        str(r.get("targetNodes", "")).strip().endswith(":") for r in ranges
    ):
        raise NodeRangeError("overriding numNodes needs a node range with an open upper bound (n:)")
    containers: list[dict[str, Any] | None] = [None] * num_nodes
    for node_range in ranges:
        for index in node_indices(node_range.get("targetNodes", ""), num_nodes):
            containers[index] = copy.deepcopy(dict(node_range.get("container") or {}))
    missing = [index for index, container in enumerate(containers) if container is None]
    if missing:
        raise NodeRangeError(f"no node range covers nodes {missing}")
    for override in overrides.get("nodePropertyOverrides") or []:
        for index in node_indices(override.get("targetNodes", ""), num_nodes):
            container = containers[index]
            assert container is not None
            containers[index] = apply_container_overrides(
                container, override.get("containerOverrides") or {}
            )
    return NodePlan(num_nodes, main_node, tuple(c for c in containers if c is not None))


def node_environment(
    job_id: str,
    container: Mapping[str, Any],
    index: int,
    num_nodes: int,
    main_node: int,
    main_address: str,
) -> dict[str, str]:
    """The environment node ``index`` runs with: its container's, plus the variables
    Batch sets on a node (the main node's address on child nodes only)."""
    environment = {str(e["name"]): str(e["value"]) for e in container.get("environment") or []}
    environment.update(
        AWS_BATCH_JOB_ID=f"{job_id}#{index}",
        AWS_BATCH_JOB_NODE_INDEX=str(index),
        AWS_BATCH_JOB_NUM_NODES=str(num_nodes),
        AWS_BATCH_JOB_MAIN_NODE_INDEX=str(main_node),
    )
    if index != main_node:
        environment["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = main_address
    return environment


def node_log_stream(definition_name: str, job_id: str, index: int) -> str:
    """The CloudWatch Logs stream (group ``/aws/batch/job``) of node ``index``."""
    return f"{definition_name}/default/{job_id}-node-{index}"


def log_events(raw: bytes, now_ms: int | None = None) -> list[dict[str, Any]]:
    """CloudWatch Logs events of a container's output read with docker's timestamps
    (``<RFC 3339 time> <line>`` per line), oldest first; blank lines are dropped."""
    events: list[dict[str, Any]] = []
    for line in raw.decode(errors="replace").split("\n"):
        stamp, _, message = line.partition(" ")
        message = message.rstrip("\r")
        if not message.strip():
            continue
        base, _, fraction = stamp.rstrip("Z").partition(".")
        try:
            moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            micros = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
            timestamp = int((moment + timedelta(microseconds=micros)).timestamp() * 1000)
        except ValueError:
            timestamp = now_ms if now_ms is not None else int(time.time() * 1000)
            message = line.rstrip("\r")
        events.append({"timestamp": timestamp, "message": message})
    events.sort(key=lambda event: int(event["timestamp"]))
    return events


# --- a job's nodes at run time -----------------------------------------------------------


@dataclass
class Node:
    """One node of a running multi-node job."""

    index: int
    main: bool
    container: dict[str, Any]
    log_stream: str
    status: str | None = None  # None until its container runs
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    stream_ready: bool = False
    handle: Any = field(default=None, repr=False)  # the docker container


@dataclass
class Nodes:
    """The nodes of one multi-node job."""

    plan: NodePlan
    nodes: list[Node]

    @property
    def main(self) -> Node:
        return self.nodes[self.plan.main_node]


def _nodes_for(job: Any, plan: NodePlan) -> Nodes:
    return Nodes(
        plan,
        [
            Node(
                index,
                index == plan.main_node,
                copy.deepcopy(container),
                node_log_stream(job.job_definition.name, job.job_id, index),
            )
            for index, container in enumerate(plan.containers)
        ],
    )


def _millis(moment: datetime) -> int:
    from moto.batch.models import datetime2int_milliseconds

    return int(datetime2int_milliseconds(moment))


def node_status(job: Any, node: Node) -> str:
    """A node's status: its own once its container runs, else its parent's (STARTING
    while the parent is RUNNING)."""
    if node.status is not None:
        return node.status
    status = job.status
    parent = str(getattr(status, "value", status))  # moto mixes JobStatus members and str
    return "STARTING" if parent == "RUNNING" else parent


def describe_node(job: Any, node: Node) -> dict[str, Any]:
    """The JobDetail of one node, as DescribeJobs answers ``<jobId>#<i>``."""
    status = node_status(job, node)
    mirrored = node.status is None and status in _DONE  # never ran: the parent's outcome
    reason = node.reason or (job.job_stopped_reason if mirrored else None)
    started = node.started_at or (job.job_started_at if mirrored else None)
    stopped = node.stopped_at or (job.job_stopped_at if mirrored else None)
    container: dict[str, Any] = {
        key: copy.deepcopy(node.container[key])
        for key in (
            "image",
            "command",
            "environment",
            "resourceRequirements",
            "linuxParameters",
            "vcpus",
            "memory",
            "instanceType",
            "privileged",
            "volumes",
            "mountPoints",
            "jobRoleArn",
            "executionRoleArn",
        )
        if key in node.container
    }
    attempt_container: dict[str, Any] = {}
    if node.stream_ready:
        container["logStreamName"] = attempt_container["logStreamName"] = node.log_stream
    if node.exit_code is not None:
        container["exitCode"] = attempt_container["exitCode"] = node.exit_code
    if reason:
        container["reason"] = attempt_container["reason"] = reason
    record: dict[str, Any] = {
        "jobArn": f"{job.arn}#{node.index}",
        "jobName": job.job_name,
        "jobId": f"{job.job_id}#{node.index}",
        "jobQueue": job.job_queue.arn,
        "status": status,
        "createdAt": _millis(job.job_created_at),
        "dependsOn": [],
        "jobDefinition": job.job_definition.arn,
        "parameters": dict(job.parameters),
        "container": container,
        "nodeDetails": {"nodeIndex": node.index, "isMainNode": node.main},
        "attempts": [],
        "tags": {},
    }
    if reason:
        record["statusReason"] = reason
    if started is not None:
        record["startedAt"] = _millis(started)
    if stopped is not None:
        record["stoppedAt"] = _millis(stopped)
    if started is not None and stopped is not None and status in _DONE:
        record["attempts"] = [
            {
                "container": attempt_container,
                "startedAt": _millis(started),
                "stoppedAt": _millis(stopped),
                **({"statusReason": reason} if reason else {}),
            }
        ]
    if job.timeout:
        record["timeout"] = job.timeout
    return record


def summarize_node(job: Any, node: Node) -> dict[str, Any]:
    """The JobSummary of one node, as ListJobs with ``multiNodeJobId`` lists it."""
    record = describe_node(job, node)
    summary: dict[str, Any] = {
        key: record[key]
        for key in (
            "jobArn",
            "jobId",
            "jobName",
            "createdAt",
            "status",
            "statusReason",
            "startedAt",
            "stoppedAt",
            "jobDefinition",
        )
        if key in record
    }
    container = {k: v for k, v in record["container"].items() if k in ("exitCode", "reason")}
    if container:
        summary["container"] = container
    summary["nodeProperties"] = {"isMainNode": node.main, "nodeIndex": node.index}
    return summary


# --- running a job's nodes ---------------------------------------------------------------


def _wait_while(job: Any, status: str) -> None:
    job.advance()
    while job.status == status:
        time.sleep(0.5)


def _ensure_stream(job: Any, node: Node) -> None:
    job._log_backend.ensure_log_group(LOG_GROUP)
    job._log_backend.ensure_log_stream(LOG_GROUP, node.log_stream)
    node.stream_ready = True


def _finish(job: Any, node: Node, reason: str) -> None:
    """Records a node whose container has ended: exit code, logs, status."""
    if node.status in _DONE:
        return
    exit_code: int | None = None
    try:
        exit_code = int((node.handle.wait(timeout=30) or {}).get("StatusCode", 0))
        raw = node.handle.logs(stdout=True, stderr=True, timestamps=True)
        events = log_events(raw)
        if not node.stream_ready:
            _ensure_stream(job, node)
        if events:
            job._log_backend.put_log_events(LOG_GROUP, node.log_stream, events)
    except Exception as error:
        log.error("multi-node job %s node %d: %s", job.job_id, node.index, error)
    node.exit_code = exit_code
    node.reason = reason
    node.stopped_at = datetime.now()
    node.status = "SUCCEEDED" if exit_code == 0 else "FAILED"


def _running(nodes: Iterable[Node]) -> list[Node]:
    return [n for n in nodes if n.handle is not None and n.status not in _DONE]


def _stop(job: Any, nodes: list[Node], reason: str) -> None:
    """Stops nodes as ECS stops a task: SIGTERM, SIGKILL after a grace period."""
    for node in nodes:
        try:
            node.handle.kill(signal="SIGTERM")
        except Exception as error:  # it ended meanwhile
            log.debug("SIGTERM to node %d: %s", node.index, error)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    waiting = list(nodes)
    while waiting and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        waiting = [node for node in waiting if _still_running(node)]
    for node in waiting:
        try:
            node.handle.kill()
        except Exception as error:
            log.debug("SIGKILL to node %d: %s", node.index, error)
    for node in nodes:
        _finish(job, node, reason)


def _still_running(node: Node) -> bool:
    try:
        node.handle.reload()
    except Exception:
        return False
    return node.handle.status not in ("exited", "dead")


def _main_address(main: Any, network_mode: str | None, network_name: str | None) -> str:
    if network_mode == "host" and not network_name:
        return LOOPBACK
    settings = main.attrs.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    for name in (network_name, "bridge"):
        if name and name in networks:
            return str(networks[name].get("IPAddress") or "")
    return str(settings.get("IPAddress") or "")


def _launch(job: Any, nodes: Nodes) -> None:
    """Starts the main node's container, then the children's."""
    import docker
    from moto import settings

    network_mode = settings.moto_network_mode()
    network_name = settings.moto_network_name()
    common: dict[str, Any] = {
        "detach": True,
        "log_config": docker.types.LogConfig(type=docker.types.LogConfig.types.JSON),
        "extra_hosts": {"host.docker.internal": "host-gateway"},
    }
    if network_name:
        common["network"] = network_name
    elif network_mode:
        common["network_mode"] = network_mode
    moto_host, moto_port = settings.moto_server_host(), settings.moto_server_port()
    address = ""
    order = [nodes.main] + [node for node in nodes.nodes if not node.main]
    for node in order:
        if job.stop:
            return
        spec = node.container
        volumes = {v["name"]: v.get("host") or {} for v in spec.get("volumes") or []}
        environment = node_environment(
            job.job_id, spec, node.index, nodes.plan.num_nodes, nodes.plan.main_node, address
        )
        environment.update(
            MOTO_HOST=moto_host, MOTO_PORT=moto_port, MOTO_HTTP_ENDPOINT=f"{moto_host}:{moto_port}"
        )
        kwargs: dict[str, Any] = {
            **common,
            "image": spec.get("image", "alpine:latest"),
            "privileged": bool(spec.get("privileged", False)),
            "environment": environment,
            "mounts": [
                docker.types.Mount(
                    m["containerPath"],
                    volumes[m["sourceVolume"]].get("sourcePath"),
                    type="bind",
                    read_only=bool(m.get("readOnly", False)),
                )
                for m in spec.get("mountPoints") or []
            ],
            "name": f"{job.job_name}-{job.job_id}-{node.index}",
        }
        if spec.get("command"):
            kwargs["command"] = job._add_parameters_to_command(spec["command"])
        _ensure_stream(job, node)
        node.handle = job.docker_client.containers.run(**kwargs)
        node.started_at = datetime.now()
        node.status = "RUNNING"
        if node.main:
            node.handle.reload()
            address = _main_address(node.handle, network_mode, network_name)
            job.job_started_at = node.started_at  # the job's times are its main node's
            if job.latest_attempt:
                job.latest_attempt["startedAt"] = _millis(node.started_at)


def _supervise(job: Any, nodes: Nodes) -> bool:
    """Watches the nodes until the main node ends (stopping the children then) or the
    job is terminated or times out (stopping every node); whether the job succeeded."""
    duration = job._get_attempt_duration()
    deadline = job.job_started_at + timedelta(seconds=duration) if duration else None
    while True:
        for node in _running(nodes.nodes):
            if not _still_running(node):
                _finish(job, node, EXITED_REASON)
        main = nodes.main
        if main.status in _DONE:
            succeeded = main.exit_code == 0
            _end(job, nodes, succeeded)
            _stop(job, _running(nodes.nodes), MAIN_EXITED_REASON)
            return succeeded
        if job.stop or (deadline is not None and datetime.now() > deadline):
            if not job.stop:
                job.job_stopped_reason = TIMEOUT_REASON
            _stop(job, _running(nodes.nodes), str(job.job_stopped_reason or TIMEOUT_REASON))
            _end(job, nodes, False)
            return False
        time.sleep(POLL_SECONDS)


def _end(job: Any, nodes: Nodes, succeeded: bool) -> None:
    """Ends the job (its outcome is the main node's)."""
    main = nodes.main
    job.exit_code = main.exit_code
    if main.stream_ready:
        job.log_stream_name = main.log_stream
    job._mark_stopped(success=succeeded)
    if job.latest_attempt is not None and main.exit_code is not None:
        job.latest_attempt["container"]["exitCode"] = main.exit_code


def run(job: Any) -> None:
    """Runs a multi-node job (``Job.run`` for jobs with node state)."""
    nodes: Nodes = getattr(job, _STATE)
    try:
        import docker  # noqa: F401  (moto's own check: no docker, no job)
    except ImportError as error:
        log.error("cannot run multi-node job %s: %s", job.job_id, error)
        job._mark_stopped(success=False)
        return
    try:
        _wait_while(job, "SUBMITTED")
        if job.depends_on and not job._wait_for_dependencies():
            return
        _wait_while(job, "PENDING")
        job.job_started_at = datetime.now()
        job._start_attempt()  # the capacity gate (motoserver.install): one slot per job
        _wait_while(job, "RUNNABLE")
        _wait_while(job, "STARTING")
        if not job.stop:
            _launch(job, nodes)
        _supervise(job, nodes)
    except Exception as error:
        log.error("multi-node job %s failed to run: %s", job.job_id, error)
        job.job_stopped_reason = job.job_stopped_reason or str(error)[:255]
        for node in nodes.nodes:
            if node.status not in _DONE and node.handle is not None:
                _stop(job, [node], str(job.job_stopped_reason))
        job._mark_stopped(success=False)
    finally:
        for node in nodes.nodes:
            if node.handle is None:
                continue
            try:
                node.handle.remove(force=True)
            except Exception as error:
                log.debug("removing node %d of %s: %s", node.index, job.job_id, error)


# --- the patches ------------------------------------------------------------------------

_submission = threading.local()


def install() -> None:
    """Makes moto's Batch run and describe multi-node jobs as AWS Batch does (patches
    ``moto.batch.models.Job``, ``BatchBackend.describe_jobs`` and ``BatchResponse``'s
    SubmitJob and ListJobs). Idempotent."""
    from moto.batch import models, responses
    from moto.batch.exceptions import ClientException

    job_class: Any = models.Job
    if getattr(job_class.run, _MARK, False):
        return
    backend_class: Any = models.BatchBackend
    response_class: Any = responses.BatchResponse
    original_init = job_class.__init__
    original_run = job_class.run
    original_describe = job_class.describe
    original_describe_short = job_class.describe_short
    original_describe_jobs = backend_class.describe_jobs
    original_submit = response_class.submitjob
    original_list = response_class.listjobs

    def submitjob(self: Any) -> str:
        definition = self.batch_backend.get_job_definition(self._get_param("jobDefinition"))
        plan = None
        if definition is not None and definition.type == "multinode":
            try:
                plan = plan_nodes(
                    definition.node_properties or {}, self._get_param("nodeOverrides")
                )
            except NodeRangeError as error:
                raise ClientException(str(error)) from None
        _submission.plan = plan
        try:
            return str(original_submit(self))
        finally:
            _submission.plan = None

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        plan = getattr(_submission, "plan", None)
        definition = self.job_definition
        if plan is None and definition.type == "multinode" and definition.node_properties:
            try:
                plan = plan_nodes(definition.node_properties)
            except NodeRangeError:
                plan = None  # moto's own way, then
        setattr(self, _STATE, _nodes_for(self, plan) if plan is not None else None)

    def run_job(self: Any) -> None:
        if getattr(self, _STATE, None) is not None:
            run(self)
        else:
            original_run(self)

    def describe_short(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_describe_short(self)
        nodes: Nodes | None = getattr(self, _STATE, None)
        if nodes is not None:
            result["nodeProperties"] = {"numNodes": nodes.plan.num_nodes}
        return result

    def describe(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_describe(self)
        nodes: Nodes | None = getattr(self, _STATE, None)
        if nodes is None:
            return result
        properties = self.job_definition.node_properties or {}
        result["nodeProperties"] = {
            "numNodes": nodes.plan.num_nodes,
            "mainNode": nodes.plan.main_node,
            "nodeRangeProperties": copy.deepcopy(properties.get("nodeRangeProperties") or []),
        }
        main = nodes.main
        container = {k: v for k, v in (result.get("container") or {}).items() if v is not None}
        if main.stream_ready:
            container["logStreamName"] = main.log_stream
        if main.exit_code is not None:
            container["exitCode"] = main.exit_code
        if main.reason:
            container["reason"] = main.reason
        result["container"] = container
        return result

    def describe_jobs(self: Any, jobs: list[str] | None) -> list[dict[str, Any]]:
        if not jobs:
            return list(original_describe_jobs(self, jobs))
        wanted = [(job_id, _NODE_ID.match(job_id)) for job_id in jobs]
        plain = [job_id for job_id, node in wanted if node is None]
        result = list(original_describe_jobs(self, plain)) if plain else []
        for _, node_id in wanted:
            if node_id is None:
                continue
            parent = _find_job(self, node_id["parent"])
            nodes: Nodes | None = getattr(parent, _STATE, None)
            index = int(node_id["index"])
            if nodes is not None and index < len(nodes.nodes):
                result.append(describe_node(parent, nodes.nodes[index]))
        return result

    def listjobs(self: Any) -> str:
        multinode_id = self._get_param("multiNodeJobId")
        if not multinode_id:
            return str(original_list(self))
        parent = _find_job(self.batch_backend, multinode_id)
        nodes: Nodes | None = getattr(parent, _STATE, None)
        status = self._get_param("jobStatus")
        summaries = [
            summarize_node(parent, node)
            for node in (nodes.nodes if nodes is not None else [])
            if status is None or node_status(parent, node) == status
        ]
        return json.dumps({"jobSummaryList": summaries})

    patches: list[tuple[Any, str, Any]] = [
        (job_class, "__init__", init),
        (job_class, "describe_short", describe_short),
        (job_class, "describe", describe),
        (backend_class, "describe_jobs", describe_jobs),
        (response_class, "submitjob", submitjob),
        (response_class, "listjobs", listjobs),
        (job_class, "run", run_job),  # last: its mark says all are in place
    ]
    for owner, name, function in patches:
        setattr(function, _MARK, True)
        setattr(owner, name, function)


def _find_job(backend: Any, identifier: str) -> Any:
    """A job by id or ARN (None when unknown)."""
    job = backend.get_job_by_id(identifier)
    if job is not None:
        return job
    for candidate in list(backend._jobs.values()):
        if candidate.arn == identifier:
            return candidate
    return None
