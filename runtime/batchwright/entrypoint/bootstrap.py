"""The container side of contract 3: how a Batch job's command reaches the task entrypoint.

A job image needs only ``python3`` (and boto3, or pip to install it). The job's command
is one of the two bootstraps below, passed to ``python3 -c``: they fetch what the job
needs from S3 and hand over to the task entrypoint (:mod:`batchwright.entrypoint`).
Standard library only on this side; the scripts themselves use boto3 inside the job.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from batchwright.entrypoint import ENTRYPOINT_MODULE, EXIT_INTEGRITY


def _compact_source(path: Path) -> str:
    """The code of a module without its docstrings, annotations and ``__future__``
    import: what the bootstraps embed of :mod:`batchwright.entrypoint.integrity` (the
    command counts against Batch's 8 KiB of overrides)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
            for argument in node.args.args:
                argument.annotation = None
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[:] = body[1:] or [ast.Pass()]
    tree.body = [
        n for n in tree.body if not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
    ]
    # One space per level instead of four: ast.unparse writes no multi-line strings, so
    # only indentation sits at the start of a line.
    lines = ast.unparse(tree).splitlines()
    return "".join(" " * ((len(x) - len(x.lstrip(" "))) // 4) + x.lstrip(" ") + "\n" for x in lines)


#: The checks every bootstrap runs before anything it downloaded (one source of truth:
#: the module the unit tests exercise).
_INTEGRITY = _compact_source(Path(__file__).with_name("integrity.py"))

# Shared head of the bootstraps: needs only python3. The environment's job image has boto3
# pinned; installing it into a private directory is the fallback for user images that lack
# it (slower, unpinned, needs internet; ``plan`` warns of such images). ``--target`` also
# sidesteps PEP 668 images.
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
INTEGRITY_CHECKS
def refuse(error):
    print(f"batchwright: {error}", file=sys.stderr, flush=True)
    sys.exit(EXIT_INTEGRITY)
def fetch(url, sha256, what):
    try:
        data = s3_object(url)
    except Exception as error:
        if "NoSuchKey" not in repr(error):
            raise
        refuse(f"{what} {url} does not exist: it was removed after upload, so nothing runs.")
    try:
        check_digest(data, sha256, f"{what} {url}")
    except IntegrityError as error:
        refuse(error)
    return data
def s3_object(url):
    bucket, _, key = url[len("s3://"):].partition("/")
    # Old boto3 (e.g. Debian's 1.26) ignores AWS_ENDPOINT_URL: pass it explicitly.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    s3 = boto3.client("s3", endpoint_url=endpoint or None)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
""".replace("EXIT_INTEGRITY", str(EXIT_INTEGRITY)).replace("INTEGRITY_CHECKS", _INTEGRITY)

#: Runs ``python -m batchwright.task ARGS`` from a code package: argv is the package's
#: ``s3://`` URL, its SHA-256, then the entrypoint's arguments. The package is a tar
#: archive (any compression) whose root goes on ``PYTHONPATH`` and becomes the working
#: directory; it is checked (digest, then every member) before anything is unpacked.
CODE_PACKAGE_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
code = os.path.join(work, "code")
os.makedirs(code, exist_ok=True)
archive = os.path.join(work, "code.tar")
with open(archive, "wb") as f:
    f.write(fetch(sys.argv[1], sys.argv[2], "code package"))
try:
    safe_extract(archive, code, f"code package {sys.argv[1]}")
except IntegrityError as error:
    refuse(error)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
os.chdir(code)
os.execv(sys.executable, [sys.executable, "-m", "ENTRYPOINT_MODULE", *sys.argv[3:]])
""".replace("ENTRYPOINT_MODULE", ENTRYPOINT_MODULE)
)

#: Runs an offloaded command: argv is the payload's ``s3://`` URL and its SHA-256; the
#: payload is JSON ``{"command": [...], "environment": {...}}``, checked before it is read.
OFFLOAD_BOOTSTRAP = (
    _BOOTSTRAP_HEAD
    + """\
payload = json.loads(fetch(sys.argv[1], sys.argv[2], "command payload"))
os.environ.update(payload["environment"])
os.execvp(payload["command"][0], payload["command"])
"""
)


def _check_url_and_digest(url: str, sha256: str) -> None:
    if not url.startswith("s3://") or "/" not in url[len("s3://") :]:
        raise ValueError(f"the URL must be s3://bucket/key, got {url!r}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"the SHA-256 must be 64 lowercase hex digits, got {sha256!r}")


def container_command(
    code_package_url: str, sha256: str, entrypoint_args: Sequence[str]
) -> tuple[str, ...]:
    """The container command of a task: fetch the code package from ``code_package_url``
    (``s3://bucket/key``), check that it has the SHA-256 ``sha256`` and that every member
    unpacks inside the code folder, unpack it, make sure boto3 is importable, and run
    ``python -m batchwright.task`` with ``entrypoint_args``.

    The image needs only ``python3`` (and boto3 or pip).
    """
    _check_url_and_digest(code_package_url, sha256)
    return ("python3", "-c", CODE_PACKAGE_BOOTSTRAP, code_package_url, sha256, *entrypoint_args)


def offload_command(payload_url: str, sha256: str) -> list[str]:
    """The container command that runs an offloaded command: fetch the payload from
    ``payload_url``, check its SHA-256, then run its command with its environment."""
    _check_url_and_digest(payload_url, sha256)
    return ["python3", "-c", OFFLOAD_BOOTSTRAP, payload_url, sha256]
