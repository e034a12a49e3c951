"""The container bootstraps, run for real against an in-process S3 (moto server): the
code-package command unpacks the package and runs ``python -m batchwright.task`` with the
arguments; an offloaded request fetches its command and environment and runs them."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchwright.batch.definition import build_job_definition
from batchwright.batch.options import BatchOptions
from batchwright.batch.platforms import QueueTarget
from batchwright.batch.submission import TaskInvocation, build_submit_job
from batchwright.entrypoint.bootstrap import container_command

moto_server = pytest.importorskip("moto.server")

FAKE_TASK = """\
import json, os, sys
with open(os.environ["BOOTSTRAP_OUT"], "w") as f:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("MARKER")}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _environment(endpoint: str, tmp_path: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # so "python3" is an interpreter with boto3
    return {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BATCHWRIGHT_WORKDIR": str(tmp_path / "work"),
        "BOOTSTRAP_OUT": str(tmp_path / "out.json"),
    }


def _upload_package(endpoint: str, bucket: str) -> str:
    s3: Any = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("batchwright/__init__.py", ""), ("batchwright/task.py", FAKE_TASK)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key="code/pkg.tgz", Body=buffer.getvalue())
    return f"s3://{bucket}/code/pkg.tgz"


def test_code_package_bootstrap_runs_the_task_entrypoint(s3_endpoint: str, tmp_path: Path) -> None:
    url = _upload_package(s3_endpoint, "bootstrap-code")
    command = container_command(url, ["--flow", "F", "--step", "train", "--task-id", "3"])
    env = _environment(s3_endpoint, tmp_path)
    done = subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["argv"] == ["--flow", "F", "--step", "train", "--task-id", "3"]
    assert Path(result["cwd"]) == tmp_path / "work" / "code"


def test_offloaded_request_runs_the_real_command(s3_endpoint: str, tmp_path: Path) -> None:
    url = _upload_package(s3_endpoint, "bootstrap-offload")
    env = _environment(s3_endpoint, tmp_path)
    options = BatchOptions.from_attributes("train", {})
    target = QueueTarget(queue="q", platform="EC2")
    invocation = TaskInvocation(
        flow="F",
        run_id="r",
        step="train",
        task_id="1",
        command=container_command(url, ["--input", "x" * 9000]),
        environment={**env, "MARKER": "from-the-payload"},
    )
    definition = build_job_definition(options, target)
    request, _ = build_submit_job(
        options, target, invocation, definition, offload_url="s3://bootstrap-offload/payload.json"
    )
    assert request.offload is not None
    s3: Any = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.put_object(Bucket="bootstrap-offload", Key="payload.json", Body=request.offload.payload)
    overrides = request.body["containerOverrides"]
    job_env = {e["name"]: e["value"] for e in overrides["environment"]}
    assert "MARKER" not in job_env
    # What the container would start with: only the request's variables (plus PATH).
    done = subprocess.run(
        overrides["command"],
        env={**job_env, "PATH": env["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["argv"] == ["--input", "x" * 9000]
    assert result["marker"] == "from-the-payload"
