"""What a Batch job learns about its own capacity: the ECS task metadata endpoint and
EC2's instance metadata service (IMDSv2), served here by a real HTTP server of ours."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from batchwright.batch.jobinfo import IMDS_ENDPOINT_VARIABLE, host_facts, placement

TOKEN = "token-123"


class _Metadata(BaseHTTPRequestHandler):
    launch_type = "EC2"

    def _answer(self, status: int, body: str) -> None:
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self) -> None:
        if self.path == "/v4/task":
            return self._answer(200, json.dumps({"LaunchType": self.launch_type}))
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self._answer(401, "")  # IMDSv2: no token, no answer
        answers = {
            "/latest/meta-data/instance-type": "c5.xlarge",
            "/latest/meta-data/instance-life-cycle": "spot",
        }
        return self._answer(200, answers[self.path]) if self.path in answers else None

    def do_PUT(self) -> None:
        assert self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self._answer(200, TOKEN)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    _Metadata.launch_type = "EC2"


def test_on_ec2_the_instance_type_and_life_cycle_come_from_imdsv2(endpoint: str) -> None:
    environ = {"ECS_CONTAINER_METADATA_URI_V4": f"{endpoint}/v4", IMDS_ENDPOINT_VARIABLE: endpoint}
    assert host_facts(environ) == {"instance_type": "c5.xlarge", "capacity": "spot"}
    job = {**environ, "AWS_BATCH_JOB_ID": "j", "AWS_BATCH_CE_NAME": "ce", "AWS_BATCH_JQ_NAME": "q"}
    assert placement(job) == {
        "job_id": "j",
        "compute_environment": "ce",
        "queue": "q",
        "instance_type": "c5.xlarge",
        "capacity": "spot",
    }


def test_on_fargate_there_is_no_instance_to_ask(endpoint: str) -> None:
    _Metadata.launch_type = "FARGATE"
    environ = {"ECS_CONTAINER_METADATA_URI_V4": f"{endpoint}/v4", IMDS_ENDPOINT_VARIABLE: endpoint}
    assert host_facts(environ) == {"capacity": "fargate"}


def test_outside_ecs_nothing_is_asked_and_outside_batch_there_is_no_placement() -> None:
    assert host_facts({}) == {}
    assert placement({"ECS_CONTAINER_METADATA_URI_V4": "http://127.0.0.1:9"}) is None


def test_an_unanswered_metadata_service_costs_little_and_yields_nothing() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    assert host_facts({"ECS_CONTAINER_METADATA_URI_V4": dead, IMDS_ENDPOINT_VARIABLE: dead}) == {}
    assert time.monotonic() - started < 3
