"""Multi-node parallel jobs on the local AWS behave as on AWS Batch
(:mod:`batchwright_localaws.multinode`): SubmitJob's ``nodeOverrides`` apply, each node
gets Batch's ``AWS_BATCH_*`` variables (the main node's address is loopback: every node
shares the host's network), DescribeJobs answers ``<jobId>#<i>`` with the node's own
record and log stream, and the main node decides the job's outcome.

The first tests need no Docker: the range parsing and override merging, and the API in
moto in-process with container execution off. The others run real containers: the nodes
of a job talk over TCP."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.localaws.test_smoke import _queue

from batchwright_localaws import LocalAws
from batchwright_localaws import multinode as mn

# --- the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "nodes", "expected"),
    [
        ("0:", 3, [0, 1, 2]),
        ("1:", 3, [1, 2]),
        ("1", 3, [1]),
        ("0:2", 5, [0, 1, 2]),
        (":3", 5, [0, 1, 2, 3]),
        (":", 2, [0, 1]),
        (" 2 ", 3, [2]),
    ],
)
def test_target_nodes_name_ranges_as_aws_defines_them(
    target: str, nodes: int, expected: list[int]
) -> None:
    assert list(mn.node_indices(target, nodes)) == expected


@pytest.mark.parametrize("target", ["3", "0:3", "2:1", "x", "", "1:x", "-1", "4:"])
def test_target_nodes_outside_the_job_are_refused(target: str) -> None:
    with pytest.raises(mn.NodeRangeError):
        mn.node_indices(target, 3)


def test_container_overrides_replace_the_command_and_merge_environment_and_resources() -> None:
    base = {
        "image": "img",
        "command": ["old"],
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "256"},
            {"type": "GPU", "value": "1"},
        ],
        "linuxParameters": {"devices": [{"hostPath": "/dev/infiniband/uverbs0"}]},
    }
    merged = mn.apply_container_overrides(
        base,
        {
            "command": ["new", "cmd"],
            "environment": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
            "resourceRequirements": [{"type": "MEMORY", "value": "512"}],
        },
    )
    assert merged["command"] == ["new", "cmd"]
    assert merged["environment"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert merged["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "512"},
        {"type": "GPU", "value": "1"},
    ]
    assert merged["linuxParameters"] == base["linuxParameters"]
    assert base["command"] == ["old"]  # the definition is left alone
    assert mn.apply_container_overrides(base, {}) == base


X_VARIABLE = {"name": "X", "value": "x"}


def test_a_plan_applies_num_nodes_and_each_override_to_its_range() -> None:
    properties = {
        "numNodes": 2,  # a placeholder, overridden per submission
        "mainNode": 0,
        "nodeRangeProperties": [
            {"targetNodes": "0", "container": {"image": "main", "command": ["m"]}},
            {"targetNodes": "1:", "container": {"image": "worker", "command": ["w"]}},
        ],
    }
    plan = mn.plan_nodes(
        properties,
        {
            "numNodes": 4,
            "nodePropertyOverrides": [
                {"targetNodes": "0:", "containerOverrides": {"environment": [X_VARIABLE]}},
                {"targetNodes": "2:3", "containerOverrides": {"command": ["late"]}},
            ],
        },
    )  # fmt: skip
    assert (plan.num_nodes, plan.main_node) == (4, 0)
    assert [c["image"] for c in plan.containers] == ["main", "worker", "worker", "worker"]
    assert [c["command"] for c in plan.containers] == [["m"], ["w"], ["late"], ["late"]]
    assert all(c["environment"] == [X_VARIABLE] for c in plan.containers)
    assert mn.plan_nodes(properties).num_nodes == 2
    with pytest.raises(mn.NodeRangeError, match="outside"):  # "1:" starts past the last node
        mn.plan_nodes(properties, {"numNodes": 1})
    assert properties["nodeRangeProperties"][1]["container"] == {
        "image": "worker",
        "command": ["w"],
    }


def test_a_plan_refuses_what_aws_refuses() -> None:
    closed = {"numNodes": 2, "nodeRangeProperties": [{"targetNodes": "0:1", "container": {}}]}
    with pytest.raises(mn.NodeRangeError, match="open upper bound"):
        mn.plan_nodes(closed, {"numNodes": 3})
    gap = {"numNodes": 3, "nodeRangeProperties": [{"targetNodes": "0", "container": {}}]}
    with pytest.raises(mn.NodeRangeError, match="no node range covers nodes"):
        mn.plan_nodes(gap)
    main = {"numNodes": 2, "mainNode": 2, "nodeRangeProperties": [{"targetNodes": "0:"}]}
    with pytest.raises(mn.NodeRangeError, match="mainNode"):
        mn.plan_nodes(main)
    open_ = {"numNodes": 2, "nodeRangeProperties": [{"targetNodes": "0:", "container": {}}]}
    with pytest.raises(mn.NodeRangeError):
        mn.plan_nodes(open_, {"nodePropertyOverrides": [{"targetNodes": "5"}]})


def test_node_environment_is_batchs_and_only_children_get_the_main_address() -> None:
    container = {"environment": [{"name": "A", "value": "1"}]}
    main = mn.node_environment("job", container, 0, 3, 0, "127.0.0.1")
    child = mn.node_environment("job", container, 2, 3, 0, "127.0.0.1")
    assert main == {
        "A": "1",
        "AWS_BATCH_JOB_ID": "job#0",
        "AWS_BATCH_JOB_NODE_INDEX": "0",
        "AWS_BATCH_JOB_NUM_NODES": "3",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
    }
    assert child["AWS_BATCH_JOB_ID"] == "job#2"
    assert child["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"
    assert mn.node_log_stream("def", "job", 2) == "def/default/job-node-2"


def test_docker_log_lines_become_ordered_events() -> None:
    raw = (
        b"2024-05-01T10:00:01.5Z second\n"
        b"2024-05-01T10:00:00.123456789Z first  \n"
        b"2024-05-01T10:00:02Z \n"
        b"not a stamp\n"
    )
    events = mn.log_events(raw, now_ms=42)
    assert events == [
        {"timestamp": 42, "message": "not a stamp"},
        {"timestamp": 1714557600123, "message": "first  "},
        {"timestamp": 1714557601500, "message": "second"},
    ]


# --- the API, in-process, with container execution off ----------------------------------


@pytest.fixture
def patched_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process with the multi-node patches, which are undone afterwards."""
    moto = pytest.importorskip("moto")
    from moto.batch import models, responses

    for owner, name in [
        (models.Job, "__init__"),
        (models.Job, "run"),
        (models.Job, "describe"),
        (models.Job, "describe_short"),
        (models.BatchBackend, "describe_jobs"),
        (responses.BatchResponse, "submitjob"),
        (responses.BatchResponse, "listjobs"),
    ]:
        monkeypatch.setattr(owner, name, getattr(owner, name))
    mn.install()
    mn.install()  # idempotent
    assert getattr(models.Job.run, "_batchwright_multinode", False)
    with moto.mock_aws(config={"batch": {"use_docker": False}}):
        import boto3

        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        yield session


def test_without_containers_a_multinode_job_succeeds_and_has_node_records(
    patched_moto: Any,
) -> None:
    from botocore.exceptions import ClientError

    role = patched_moto.client("iam").create_role(RoleName="mnp", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    batch = patched_moto.client("batch")
    ce = batch.create_compute_environment(
        computeEnvironmentName="mnp", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName="mnp",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="mnp", type="multinode", nodeProperties=_node_properties("img")
    )["jobDefinitionArn"]
    job = batch.submit_job(
        jobName="mnp",
        jobQueue=queue,
        jobDefinition=definition,
        nodeOverrides=_overrides(3, ["true"], {}),
    )["jobId"]

    (parent,) = batch.describe_jobs(jobs=[job])["jobs"]
    assert parent["status"] == "SUCCEEDED"
    assert parent["nodeProperties"]["numNodes"] == 3
    nodes = batch.describe_jobs(jobs=[f"{job}#{i}" for i in range(3)])["jobs"]
    assert [n["jobId"] for n in nodes] == [f"{job}#{i}" for i in range(3)]
    assert [n["status"] for n in nodes] == ["SUCCEEDED"] * 3
    assert [n["nodeDetails"] for n in nodes] == [
        {"nodeIndex": 0, "isMainNode": True},
        {"nodeIndex": 1, "isMainNode": False},
        {"nodeIndex": 2, "isMainNode": False},
    ]
    assert nodes[1]["container"]["command"] == ["true"]
    assert batch.describe_jobs(jobs=[f"{job}#3"])["jobs"] == []
    listed = batch.list_jobs(multiNodeJobId=job)["jobSummaryList"]
    assert [s["nodeProperties"] for s in listed] == [
        {"isMainNode": i == 0, "nodeIndex": i} for i in range(3)
    ]

    with pytest.raises(ClientError, match="outside nodes"):
        batch.submit_job(
            jobName="bad",
            jobQueue=queue,
            jobDefinition=definition,
            nodeOverrides={
                "numNodes": 2,
                "nodePropertyOverrides": [{"targetNodes": "5", "containerOverrides": {}}],
            },
        )


# --- real containers --------------------------------------------------------------------

# Every node prints its Batch variables. The main node listens on MNP_PORT (all nodes
# share the host's network, so each job gets its own port) and sums the indices the
# children send; MNP_MODE makes nodes fail or linger for the other tests.
SCRIPT = r"""
import os, socket, sys, time
for key, value in sorted(os.environ.items()):
    if key.startswith(("AWS_BATCH_", "MNP_")):
        print(f"env {key}={value}", flush=True)
index = int(os.environ["AWS_BATCH_JOB_NODE_INDEX"])
main = index == int(os.environ["AWS_BATCH_JOB_MAIN_NODE_INDEX"])
mode = os.environ["MNP_MODE"]
if mode == "linger" or (mode == "main-fails" and not main):
    time.sleep(120)
elif mode == "main-fails":
    time.sleep(1)
    sys.exit(1)
elif mode == "child-fails":
    if main:
        time.sleep(4)
    else:
        time.sleep(0.5 * index)
        sys.exit(1 if index == int(os.environ["MNP_FAIL_NODE"]) else 0)
elif main:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(os.environ["MNP_PORT"])))
    server.listen()
    server.settimeout(60)
    total = 0
    for _ in range(int(os.environ["AWS_BATCH_JOB_NUM_NODES"]) - 1):
        connection, _ = server.accept()
        with connection:
            line = connection.makefile().readline().strip()
        print(f"received {line}", flush=True)
        total += int(line)
    print(f"sum {total}", flush=True)
else:
    address = os.environ["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
    deadline = time.time() + 60
    while True:
        try:
            connection = socket.create_connection((address, int(os.environ["MNP_PORT"])), 2)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    with connection:
        connection.sendall(f"{index}\n".encode())
    print(f"sent {index}", flush=True)
"""

EFA_DEVICE = {
    "hostPath": "/dev/infiniband/uverbs0",
    "containerPath": "/dev/infiniband/uverbs0",
    "permissions": ["READ", "WRITE", "MKNOD"],
}


def _node_properties(image: str) -> dict[str, Any]:
    """One node range for every node, with a placeholder node count and command."""
    return {
        "numNodes": 1,
        "mainNode": 0,
        "nodeRangeProperties": [
            {
                "targetNodes": "0:",
                "container": {
                    "image": image,
                    "command": ["python3", "-c", "raise SystemExit(3)"],
                    "environment": [
                        {"name": "MNP_FROM_DEFINITION", "value": "kept"},
                        {"name": "MNP_SHARED", "value": "definition"},
                    ],
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "1"},
                        {"type": "MEMORY", "value": "256"},
                    ],
                    "linuxParameters": {"devices": [EFA_DEVICE]},
                },
            }
        ],
    }


def _overrides(nodes: int, command: list[str], environment: dict[str, str]) -> dict[str, Any]:
    """The batchwright runtime's submission: one override for every node."""
    return {
        "numNodes": nodes,
        "nodePropertyOverrides": [
            {
                "targetNodes": "0:",
                "containerOverrides": {
                    "command": command,
                    "environment": [
                        {"name": "MNP_SHARED", "value": "submission"},
                        *({"name": k, "value": v} for k, v in environment.items()),
                    ],
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "1"},
                        {"type": "MEMORY", "value": "512"},
                    ],
                },
            }
        ],
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _poll(what: str, probe: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


class MultiNode:
    """A queue and a multi-node job definition in the local AWS."""

    def __init__(self, local: LocalAws) -> None:
        self.local = local
        self.name = f"mnp-{uuid.uuid4().hex[:8]}"
        self.batch = local.client("batch")
        self.logs = local.client("logs")
        self.queue = _queue(local, self.name)
        self.definition = self.batch.register_job_definition(
            jobDefinitionName=self.name,
            type="multinode",
            nodeProperties=_node_properties(local.image),
        )["jobDefinitionArn"]

    def submit(
        self, mode: str, nodes: int = 3, timeout: dict[str, int] | None = None, **environment: str
    ) -> str:
        variables = {"MNP_MODE": mode, "MNP_PORT": str(_free_port()), **environment}
        return str(
            self.batch.submit_job(
                jobName=f"{self.name}-{mode}",
                jobQueue=self.queue,
                jobDefinition=self.definition,
                nodeOverrides=_overrides(nodes, ["python3", "-c", SCRIPT], variables),
                **({"timeout": timeout} if timeout else {}),
            )["jobId"]
        )

    def job(self, job_id: str) -> dict[str, Any]:
        (record,) = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        return dict(record)

    def nodes(self, job_id: str, count: int = 3) -> list[dict[str, Any]]:
        ids = [f"{job_id}#{i}" for i in range(count)]
        records = {job["jobId"]: job for job in self.batch.describe_jobs(jobs=ids)["jobs"]}
        return [records[i] for i in ids]

    def finished(self, job_id: str, count: int = 3) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The job and its nodes once all have ended."""

        def done() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            job, nodes = self.job(job_id), self.nodes(job_id, count)
            ended = [job, *nodes]
            return (
                (job, nodes) if all(r["status"] in ("SUCCEEDED", "FAILED") for r in ended) else None
            )

        result: tuple[dict[str, Any], list[dict[str, Any]]] = _poll(f"{job_id} ends", done)
        return result

    def lines(self, stream: str) -> list[str]:
        events = self.logs.get_log_events(
            logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
        )["events"]
        return [event["message"] for event in events]

    def containers(self, job_id: str) -> list[str]:
        """The states of the job's node containers (one listing call: no race with their
        removal)."""
        import docker

        client = docker.from_env(timeout=10)
        try:
            return [c["State"] for c in client.api.containers(all=True, filters={"name": job_id})]
        finally:
            client.close()


@pytest.fixture(scope="module")
def multinode(local_aws: LocalAws) -> MultiNode:
    return MultiNode(local_aws)


@pytest.mark.localaws
def test_nodes_talk_over_loopback_and_each_has_its_record_and_log_stream(
    multinode: MultiNode,
) -> None:
    job_id = multinode.submit("sum")
    job, nodes = multinode.finished(job_id)

    assert job["status"] == "SUCCEEDED", [n.get("statusReason") for n in nodes]
    assert job["nodeProperties"]["numNodes"] == 3
    assert job["nodeProperties"]["mainNode"] == 0
    (node_range,) = job["nodeProperties"]["nodeRangeProperties"]
    assert node_range["container"]["linuxParameters"]["devices"] == [EFA_DEVICE]
    assert job["container"]["exitCode"] == 0

    assert [n["jobId"] for n in nodes] == [f"{job_id}#{i}" for i in range(3)]
    assert [n["status"] for n in nodes] == ["SUCCEEDED"] * 3
    assert [n["container"]["exitCode"] for n in nodes] == [0, 0, 0]
    assert [n["nodeDetails"] for n in nodes] == [
        {"nodeIndex": i, "isMainNode": i == 0} for i in range(3)
    ]
    assert all(n["startedAt"] <= n["stoppedAt"] for n in nodes)
    streams = [n["container"]["logStreamName"] for n in nodes]
    assert streams == [f"{multinode.name}/default/{job_id}-node-{i}" for i in range(3)]
    assert job["container"]["logStreamName"] == streams[0]
    for node in nodes:  # the submission's overrides, merged over the definition
        container = node["container"]
        assert container["command"] == ["python3", "-c", SCRIPT]
        environment = {e["name"]: e["value"] for e in container["environment"]}
        assert environment["MNP_SHARED"] == "submission"
        assert environment["MNP_FROM_DEFINITION"] == "kept"
        assert {"type": "MEMORY", "value": "512"} in container["resourceRequirements"]
        assert container["linuxParameters"]["devices"] == [EFA_DEVICE]

    for index, stream in enumerate(streams):
        lines = multinode.lines(stream)
        assert f"env AWS_BATCH_JOB_ID={job_id}#{index}" in lines
        assert f"env AWS_BATCH_JOB_NODE_INDEX={index}" in lines
        assert "env AWS_BATCH_JOB_NUM_NODES=3" in lines
        assert "env AWS_BATCH_JOB_MAIN_NODE_INDEX=0" in lines
        assert "env MNP_SHARED=submission" in lines
        assert "env MNP_FROM_DEFINITION=kept" in lines
        address = "env AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS=127.0.0.1"
        if index == 0:
            assert address not in lines
            assert "sum 3" in lines
            assert sorted(line for line in lines if line.startswith("received")) == [
                "received 1",
                "received 2",
            ]
        else:
            assert address in lines
            assert f"sent {index}" in lines
            assert not [line for line in lines if line.startswith(("sum", "sent 0"))]

    summaries = multinode.batch.list_jobs(multiNodeJobId=job_id)["jobSummaryList"]
    assert [s["jobId"] for s in summaries] == [f"{job_id}#{i}" for i in range(3)]
    assert _poll("containers removed", lambda: not multinode.containers(job_id), 20)


@pytest.mark.localaws
def test_a_failing_child_changes_nothing_for_the_others(multinode: MultiNode) -> None:
    job_id = multinode.submit("child-fails", MNP_FAIL_NODE="1")
    job, nodes = multinode.finished(job_id)

    assert job["status"] == "SUCCEEDED"
    assert [n["status"] for n in nodes] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert [n["container"]["exitCode"] for n in nodes] == [0, 1, 0]
    # Node 1 failed while the main node (and node 2) went on running.
    assert nodes[1]["stoppedAt"] < nodes[2]["stoppedAt"] <= nodes[0]["stoppedAt"]
    assert nodes[1]["statusReason"] == mn.EXITED_REASON


@pytest.mark.localaws
def test_the_main_node_decides_and_its_exit_stops_the_children(multinode: MultiNode) -> None:
    job_id = multinode.submit("main-fails")
    job, nodes = multinode.finished(job_id)

    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 1
    assert nodes[0]["status"] == "FAILED"
    assert nodes[0]["container"]["exitCode"] == 1
    for child in nodes[1:]:  # they would have slept two minutes
        assert child["status"] == "FAILED"
        assert child["statusReason"] == mn.MAIN_EXITED_REASON
        assert child["stoppedAt"] - nodes[0]["stoppedAt"] < 15_000
    assert _poll("containers removed", lambda: not multinode.containers(job_id), 20)


@pytest.mark.localaws
def test_terminating_the_job_stops_every_node(multinode: MultiNode) -> None:
    job_id = multinode.submit("linger")
    _poll(
        "every node runs",
        lambda: [n["status"] for n in multinode.nodes(job_id)] == ["RUNNING"] * 3,
    )
    assert multinode.containers(job_id) == ["running"] * 3

    multinode.batch.terminate_job(jobId=job_id, reason="stopped by the test")
    job, nodes = multinode.finished(job_id, count=3)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "stopped by the test"
    assert [n["status"] for n in nodes] == ["FAILED"] * 3
    assert {n["statusReason"] for n in nodes} == {"stopped by the test"}
    assert _poll("containers removed", lambda: not multinode.containers(job_id), 20)


@pytest.mark.localaws
def test_the_attempt_timeout_applies_to_the_whole_job(multinode: MultiNode) -> None:
    job_id = multinode.submit("linger", nodes=2, timeout={"attemptDurationSeconds": 3})
    job, nodes = multinode.finished(job_id, count=2)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == mn.TIMEOUT_REASON
    assert [n["status"] for n in nodes] == ["FAILED"] * 2
    assert {n["statusReason"] for n in nodes} == {mn.TIMEOUT_REASON}
    assert job["stoppedAt"] - job["startedAt"] < 15_000
