"""Fixtures of the runtime tests: run a flow file as ``python flow.py ...`` in a tmp dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import FlowRun, RunFlow


@pytest.fixture
def datastore(tmp_path: Path) -> Path:
    """A private datastore root."""
    return tmp_path / "store"


@pytest.fixture
def run_flow(tmp_path: Path, datastore: Path) -> RunFlow:
    """Run a flow file's command line with the private datastore; returns a FlowRun (its
    run id read from a ``--run-id-file`` of its own, unless the test passes one)."""

    def run(flow_file: Path, *args: str, timeout: float = 60) -> FlowRun:
        run_id_file = tmp_path / f"run-id-{os.getpid()}-{len(list(tmp_path.iterdir()))}"
        command = [sys.executable, str(flow_file), *args]
        if args and args[0] in ("run", "resume") and "--run-id-file" not in args:
            command += ["--run-id-file", str(run_id_file)]
        env = {**os.environ, "BATCHWRIGHT_DATASTORE_ROOT": str(datastore), "NO_COLOR": "1"}
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )
        run_id = run_id_file.read_text() if run_id_file.exists() else None
        return FlowRun(done.returncode, done.stdout, done.stderr, run_id)

    return run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server in this process, with bucket 'runs'; AWS_* point at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket="runs")
    try:
        yield endpoint
    finally:
        server.stop()
