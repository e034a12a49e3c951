"""The container side of contract 3: how a Batch job's command reaches the task entrypoint.

A job image needs only ``python3`` (and boto3, or pip to install it). The job's command
is one of the two bootstraps below, passed to ``python3 -c``: they fetch what the job
needs from S3 and hand over to the task entrypoint (:mod:`batchwright.entrypoint`).
Standard library only on this side; the scripts themselves use boto3 inside the job.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchwright.entrypoint import ENTRYPOINT_MODULE

# Shared head of the bootstraps: needs only python3; installs boto3 into a private
# directory when the image lacks it (``--target`` also sidesteps PEP 668 images).
_BOOTSTRAP_HEAD = """\
import importlib.util, json, os, subprocess, sys, tarfile
work = os.environ.get("BATCHWRIGHT_WORKDIR") or "/tmp/batchwright"
deps = os.path.join(work, "deps")
os.makedirs(work, exist_ok=True)
if importlib.util.find_spec("boto3") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "--target", deps, "boto3"])
    sys.path.insert(0, deps)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [deps, os.environ.get("PYTHONPATH")]))
import boto3
def s3_object(url):
    bucket, _, key = url[len("s3://"):].partition("/")
    # Old boto3 (e.g. Debian's 1.26) ignores AWS_ENDPOINT_URL: pass it explicitly.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    s3 = boto3.client("s3", endpoint_url=endpoint or None)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
"""

#: Runs ``python -m batchwright.task ARGS`` from a code package: argv is the package's
#: ``s3://`` URL then the entrypoint's arguments. The package is a tar archive (any
#: compression) whose root goes on ``PYTHONPATH`` and becomes the working directory.
CODE_PACKAGE_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
code = os.path.join(work, "code")
os.makedirs(code, exist_ok=True)
archive = os.path.join(work, "code.tar")
with open(archive, "wb") as f:
    f.write(s3_object(sys.argv[1]))
with tarfile.open(archive) as t:
    t.extractall(code, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
os.chdir(code)
os.execv(sys.executable, [sys.executable, "-m", "ENTRYPOINT_MODULE", *sys.argv[2:]])
""".replace("ENTRYPOINT_MODULE", ENTRYPOINT_MODULE)
)

#: Runs an offloaded command: argv is the payload's ``s3://`` URL; the payload is JSON
#: ``{"command": [...], "environment": {...}}``.
OFFLOAD_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
payload = json.loads(s3_object(sys.argv[1]))
os.environ.update(payload["environment"])
os.execvp(payload["command"][0], payload["command"])
"""
)


def container_command(code_package_url: str, entrypoint_args: Sequence[str]) -> tuple[str, ...]:
    """The container command of a task: fetch the code package from ``code_package_url``
    (``s3://bucket/key``), unpack it, make sure boto3 is importable, and run
    ``python -m batchwright.task`` with ``entrypoint_args``.

    The image needs only ``python3`` (and boto3 or pip).
    """
    if not code_package_url.startswith("s3://") or "/" not in code_package_url[len("s3://") :]:
        raise ValueError(f"code_package_url must be s3://bucket/key, got {code_package_url!r}")
    return ("python3", "-c", CODE_PACKAGE_BOOTSTRAP, code_package_url, *entrypoint_args)
