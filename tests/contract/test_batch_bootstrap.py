"""The container bootstraps, run for real against an in-process S3 (moto server): the
code-package command checks and unpacks the package and runs ``python -m batchwright.task``
with the arguments; an offloaded request fetches its command and environment, checks them
and runs them. A package or payload changed after upload, or an archive with a member that
would land outside the code folder, ends the job with exit code 4 before any of it runs."""

from __future__ import annotations

import hashlib
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
from batchwright.batch.submission import SubmitJobRequest, TaskInvocation, build_submit_job
from batchwright.entrypoint import EXIT_INTEGRITY
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


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _package(files: dict[str, str], *, extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if extra is not None:
            archive.addfile(extra)
    return buffer.getvalue()


FAKE_PACKAGE = {"batchwright/__init__.py": "", "batchwright/task.py": FAKE_TASK}


def _upload_package(endpoint: str, bucket: str, data: bytes | None = None) -> tuple[str, str]:
    """Uploads a package; its URL and SHA-256."""
    data = _package(FAKE_PACKAGE) if data is None else data
    s3 = _s3(endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="code/pkg.tgz", Body=data)
    return f"s3://{bucket}/code/pkg.tgz", hashlib.sha256(data).hexdigest()


def test_code_package_bootstrap_runs_the_task_entrypoint(s3_endpoint: str, tmp_path: Path) -> None:
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-code")
    command = container_command(url, sha256, ["--flow", "F", "--step", "train", "--task-id", "3"])
    env = _environment(s3_endpoint, tmp_path)
    done = subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["argv"] == ["--flow", "F", "--step", "train", "--task-id", "3"]
    assert Path(result["cwd"]) == tmp_path / "work" / "code"


def _run(
    command: list[str] | tuple[str, ...], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=120)


def _offloaded(
    bucket: str, url: str, sha256: str, environment: dict[str, str]
) -> tuple[SubmitJobRequest, dict[str, str]]:
    """A request whose command (one 9,000-byte argument) is too big for the overrides, so
    it moves to a payload under ``s3://BUCKET/code/payloads/`` (not uploaded yet); and
    the variables the container starts with (only the request's, plus PATH)."""
    options = BatchOptions.from_attributes("train", {})
    target = QueueTarget(queue="q", platform="EC2")
    invocation = TaskInvocation(
        flow="F",
        run_id="r",
        step="train",
        task_id="1",
        command=container_command(url, sha256, ["--input", "x" * 9000]),
        environment=environment,
    )
    definition = build_job_definition(options, target)
    request, _ = build_submit_job(
        options, target, invocation, definition, offload_root=f"s3://{bucket}"
    )
    assert request.offload is not None
    overrides = request.body["containerOverrides"]
    job_env = {e["name"]: e["value"] for e in overrides["environment"]}
    return request, {**job_env, "PATH": environment["PATH"]}


def test_offloaded_request_runs_the_real_command(s3_endpoint: str, tmp_path: Path) -> None:
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-offload")
    env = _environment(s3_endpoint, tmp_path)
    request, job_env = _offloaded(
        "bootstrap-offload", url, sha256, {**env, "MARKER": "from-the-payload"}
    )
    assert request.offload is not None and "MARKER" not in job_env
    _s3(s3_endpoint).put_object(
        Bucket="bootstrap-offload", Key=request.offload.key, Body=request.offload.payload
    )
    done = _run(request.body["containerOverrides"]["command"], job_env)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["argv"] == ["--input", "x" * 9000]
    assert result["marker"] == "from-the-payload"


# --- what a job refuses to run ---------------------------------------------------------------

#: What a swapped package would do if it ran: write a marker.
SWAPPED_TASK = """\
import os
open(os.environ["BOOTSTRAP_OUT"] + ".swapped", "w").write("the swapped code ran")
"""


def test_a_package_changed_after_upload_never_runs(s3_endpoint: str, tmp_path: Path) -> None:
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-swapped")
    swapped = _package({"batchwright/__init__.py": "", "batchwright/task.py": SWAPPED_TASK})
    _s3(s3_endpoint).put_object(Bucket="bootstrap-swapped", Key="code/pkg.tgz", Body=swapped)
    env = _environment(s3_endpoint, tmp_path)
    done = _run(container_command(url, sha256, ["--step", "train"]), env)
    assert done.returncode == EXIT_INTEGRITY, done.stderr
    actual = hashlib.sha256(swapped).hexdigest()
    assert (
        f"batchwright: code package {url} has SHA-256 {actual}, but the job was given {sha256}"
        in done.stderr
    )
    assert not (tmp_path / "out.json.swapped").exists()
    assert not (tmp_path / "work" / "code" / "batchwright").exists()  # nothing unpacked


def test_a_package_with_a_member_outside_its_folder_is_not_unpacked(
    s3_endpoint: str, tmp_path: Path
) -> None:
    escape = tarfile.TarInfo("../../escaped.py")
    escape.size = 0
    data = _package(FAKE_PACKAGE, extra=escape)
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-escape", data)
    done = _run(container_command(url, sha256, []), _environment(s3_endpoint, tmp_path))
    assert done.returncode == EXIT_INTEGRITY, done.stderr
    assert f"code package {url}: member '../../escaped.py' climbs out" in done.stderr
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "out.json").exists()


def test_a_payload_changed_after_upload_never_runs(s3_endpoint: str, tmp_path: Path) -> None:
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-payload")
    request, job_env = _offloaded(
        "bootstrap-payload", url, sha256, _environment(s3_endpoint, tmp_path)
    )
    assert request.offload is not None
    changed = json.loads(request.offload.payload)
    changed["command"] = [sys.executable, "-c", SWAPPED_TASK]
    _s3(s3_endpoint).put_object(
        Bucket="bootstrap-payload", Key=request.offload.key, Body=json.dumps(changed).encode()
    )
    done = _run(request.body["containerOverrides"]["command"], job_env)
    assert done.returncode == EXIT_INTEGRITY, done.stderr
    assert f"batchwright: command payload {request.offload.url} has SHA-256" in done.stderr
    assert not (tmp_path / "out.json.swapped").exists()


def test_a_package_removed_after_upload_is_refused_not_retried(
    s3_endpoint: str, tmp_path: Path
) -> None:
    url, sha256 = _upload_package(s3_endpoint, "bootstrap-removed")
    _s3(s3_endpoint).delete_object(Bucket="bootstrap-removed", Key="code/pkg.tgz")
    done = _run(container_command(url, sha256, []), _environment(s3_endpoint, tmp_path))
    assert done.returncode == EXIT_INTEGRITY, done.stderr
    assert f"batchwright: code package {url} does not exist: it was removed" in done.stderr
