"""A real local AWS for tests and demos: the moto server plus a Docker engine.

``up()`` makes one available and idempotently so:

1. a Docker engine (installs Debian's ``docker.io`` when missing and running as root,
   starts ``dockerd`` when no daemon answers);
2. the job image, built with ``mmdebstrap`` (Debian's Python 3, plus the boto3 this
   machine runs, from the package registry at build time) and imported into Docker,
   cached under a tag derived from its recipe so it is rebuilt only when the recipe
   changes;
3. the moto server on a free loopback port, with ``MOTO_DOCKER_NETWORK_MODE=host`` so
   that job containers reach the emulated S3 on 127.0.0.1, and with compute capacity
   (:mod:`batchwright_localaws.motoserver`): at most a few job containers at once, the
   others waiting in RUNNABLE as on Batch; and with Step Functions executing state
   machines (moto's ``execute_state_machine``, :data:`MOTO_CONFIG`, set again by
   ``reset``), their service integrations bridged to AWS's field names
   (:mod:`batchwright_localaws.stepfunctions`).

What was started is recorded in ``state.json`` of the state directory
(``$BATCHWRIGHT_LOCALAWS_DIR``, default ``~/.batchwright/localaws``) together with the
endpoint; ``down()`` stops exactly those processes by pid. The emulator's credentials
are fixed, well-known test values and the endpoint is a loopback address.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batchwright.errors import LocalAwsError

#: Region the local AWS answers for.
REGION = "us-east-1"
#: The emulator's fixed test credentials (never real ones).
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: Debian release and packages of the job image: Python 3.11, like a stock python image.
#: `requests` and `python` on PATH let Metaflow's runner work too.
IMAGE_SUITE = "bookworm"
IMAGE_PACKAGES = (
    "python3",
    "python3-requests",
    "python-is-python3",
    "ca-certificates",
)
#: Where the image's boto3 is installed: ahead of Debian's own packages on ``sys.path``.
IMAGE_SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"


def image_requirements() -> list[str]:
    """What the job image gets from the package registry while it is built: the pinned
    requirements of the construct library's job image recipe
    (:mod:`batchwright_cdk.job_image`), so the offline image matches what ``cdk deploy``
    builds. (Debian's own boto3 1.26 ignores ``AWS_ENDPOINT_URL``, so step code calling
    ``boto3.client("s3")`` would go to AWS.) Nothing is installed when a job runs."""
    from batchwright_cdk.job_image import pinned_requirements

    return pinned_requirements()


IMAGE_REPOSITORY = "batchwright/job"

Log = Callable[[str], None]
#: Every state a Batch job can be in, in the order a job goes through them.
JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class LocalAws:
    """A running local AWS: where it answers and what it runs jobs with."""

    endpoint: str
    region: str
    image: str
    moto_pid: int
    dockerd_pid: int | None
    state_dir: str

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and a flow run) at this local AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **TEST_CREDENTIALS,
        }

    def job_records(
        self, keep: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The emulator's own DescribeJobs record of every job on every queue, array
        children included (ListJobs shows only their parents). ``keep`` picks the jobs
        wanted by their parent's record (their tags, say); a kept array parent brings its
        children, and the children of the others are never described."""
        batch = self.client("batch")
        ids = [
            summary["jobId"]
            for queue in batch.describe_job_queues()["jobQueues"]
            for state in JOB_STATES
            for page in batch.get_paginator("list_jobs").paginate(
                jobQueue=queue["jobQueueArn"], jobStatus=state
            )
            for summary in page["jobSummaryList"]
        ]
        records: dict[str, dict[str, Any]] = {}
        kept: set[str] = set()  # top-level jobs (and array parents) that ``keep`` took
        while ids:
            chunk, ids = ids[:100], ids[100:]
            for job in batch.describe_jobs(jobs=chunk)["jobs"]:
                records[job["jobId"]] = job
                if ":" in job["jobId"] or not (keep is None or keep(job)):
                    continue  # a child ("<parent>:<i>") goes with its parent
                kept.add(job["jobId"])
                size = (job.get("arrayProperties") or {}).get("size")
                if size:
                    ids += [f"{job['jobId']}:{i}" for i in range(size)]
        return [job for key, job in records.items() if key.split(":")[0] in kept]

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` bound to this local AWS."""
        import boto3

        maker: Any = boto3  # the stubs type clients per literal service name only
        return maker.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


def state_dir() -> Path:
    """The directory holding the local AWS's state, logs and image cache."""
    default = Path.home() / ".batchwright" / "localaws"
    return Path(os.environ.get("BATCHWRIGHT_LOCALAWS_DIR", default))


def _state_file() -> Path:
    return state_dir() / "state.json"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def current() -> LocalAws | None:
    """The running local AWS recorded in the state file, or None when it is not up."""
    path = _state_file()
    if not path.exists():
        return None
    try:
        local = LocalAws(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if not _alive(local.moto_pid) or not _moto_answers(local.endpoint):
        return None
    if not _docker_answers():
        return None
    return local


# --- system packages ------------------------------------------------------------------


def _apt_install(packages: list[str], log: Log) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LocalAwsError(
            f"{', '.join(packages)} missing and cannot be installed here (needs root and "
            f"apt-get). Install them yourself, e.g. `sudo apt-get install -y "
            f"{' '.join(packages)}`."
        )
    log(f"installing {', '.join(packages)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalAwsError(
                f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            )


# --- Docker engine ----------------------------------------------------------------------


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _start_daemon(
    what: str,
    command: list[str],
    logfile: Path,
    *,
    answers: Callable[[], bool],
    env: dict[str, str] | None = None,
    hint: str = "",
    timeout: float = 60,
) -> int:
    """Starts ``command`` in its own session, logging to ``logfile``, and waits until
    ``answers()``; returns its pid. It outlives this process; ``down`` stops it by pid."""
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-800:]
            advice = f" ({hint})" if hint else ""
            raise LocalAwsError(f"{what} exited with {proc.returncode}: {tail}{advice}")
        if answers():
            return proc.pid
        time.sleep(0.3)
    _stop_pid(proc.pid)
    raise LocalAwsError(f"{what} did not answer within {timeout:.0f} s; see {logfile}")


def _ensure_docker(directory: Path, log: Log) -> int | None:
    """Makes a Docker engine answer; returns the pid of dockerd when we started it."""
    if _docker_answers():
        return None
    if not shutil.which("dockerd"):
        _apt_install(["docker.io"], log)
    log("starting dockerd")
    # No bridge and no iptables: the sandbox has neither; job containers use the host
    # network, which is also how they reach the emulator on 127.0.0.1.
    return _start_daemon(
        "dockerd",
        ["dockerd", "--iptables=false", "--bridge=none"],
        directory / "dockerd.log",
        answers=_docker_answers,
    )


# --- job image --------------------------------------------------------------------------


def image_tag() -> str:
    """The tag of the job image for the current recipe."""
    recipe = json.dumps(
        {"suite": IMAGE_SUITE, "packages": IMAGE_PACKAGES, "pip": image_requirements()},
        sort_keys=True,
    )
    return f"{IMAGE_REPOSITORY}:{IMAGE_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def _image_exists(tag: str) -> bool:
    import docker
    from docker.errors import ImageNotFound

    client = docker.from_env()
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False
    finally:
        client.close()


def _ensure_image(directory: Path, log: Log) -> str:
    tag = image_tag()
    if _image_exists(tag):
        return tag
    if not shutil.which("mmdebstrap"):
        _apt_install(["mmdebstrap"], log)
    rootfs = directory / "rootfs.tar"
    log(f"building the job image {tag} offline with mmdebstrap (about 30 s)")
    # boto3 from the package registry into the image's tree, with this machine's pip (the
    # image has none); pure-Python wheels, for the image's Python 3.11.
    install = shlex.join(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--no-deps",
            "--python-version",
            "3.11",
            "--only-binary=:all:",
            "--target",
            "TARGET",
            *image_requirements(),
        ]
    ).replace("TARGET", f'"$1{IMAGE_SITE_PACKAGES}"')
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--include=" + ",".join(IMAGE_PACKAGES),
        f"--customize-hook={install}",
        IMAGE_SUITE,
        str(rootfs),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise LocalAwsError(f"mmdebstrap failed ({done.returncode}): {done.stderr[-800:]}")
    try:
        done = subprocess.run(
            ["docker", "import", str(rootfs), tag], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise LocalAwsError(f"docker import failed: {done.stderr.strip()[-800:]}")
    finally:
        rootfs.unlink(missing_ok=True)
    return tag


# --- moto server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


#: moto.server with compute capacity (:mod:`batchwright_localaws.motoserver`).
MOTO_SERVER_MODULE = "batchwright_localaws.motoserver"
#: What the local AWS sets through moto's config API: Step Functions runs executions.
MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}}


def _start_moto(directory: Path, log: Log) -> tuple[int, str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log(f"starting the moto server on {endpoint}")
    env = {
        **os.environ,
        "MOTO_DOCKER_NETWORK_MODE": "host",
        "MOTO_PORT": str(port),
        # AWS-managed policies exist in an account; let roles attach them here too.
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        **TEST_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
    }
    env.pop("AWS_ENDPOINT_URL", None)
    pid = _start_daemon(
        "the moto server",
        [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", "127.0.0.1", "-p", str(port)],
        directory / "moto.log",
        answers=lambda: _moto_answers(endpoint),
        env=env,
        hint="is moto[server] installed? `pip install 'batchwright[dev]'`",
    )
    return pid, endpoint


def _stop_pid(pid: int | None, timeout: float = 20) -> None:
    if not pid or not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- public verbs -----------------------------------------------------------------------


def up(log: Log = _no_log) -> tuple[LocalAws, bool]:
    """Starts the local AWS unless it already runs; returns it and whether this call
    started it. Raises :class:`LocalAwsError` saying what is missing and how to fix it."""
    running = current()
    if running is not None:
        moto_api(running, "config", MOTO_CONFIG)
        return running, False
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stale = _read_state()
    if stale:  # a previous run died: do not leave its processes behind
        _stop_pid(stale.get("moto_pid"))
    dockerd_pid = _ensure_docker(directory, log)
    try:
        image = _ensure_image(directory, log)
        moto_pid, endpoint = _start_moto(directory, log)
    except BaseException:
        _stop_pid(dockerd_pid)
        raise
    local = LocalAws(
        endpoint=endpoint,
        region=REGION,
        image=image,
        moto_pid=moto_pid,
        dockerd_pid=dockerd_pid,
        state_dir=str(directory),
    )
    moto_api(local, "config", MOTO_CONFIG)
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(local), indent=2))
    tmp.replace(_state_file())
    return local, True


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_job_containers(image: str) -> None:
    """Removes containers left from jobs the emulator was running when it stopped."""
    with contextlib.suppress(Exception):
        import docker

        client = docker.from_env(timeout=10)
        try:
            for container in client.containers.list(all=True, filters={"ancestor": image}):
                container.remove(force=True)
        finally:
            client.close()


def down(log: Log = _no_log) -> bool:
    """Stops every process ``up`` started (by pid); returns whether anything was running."""
    data = _read_state()
    if data is None:
        return False
    log("stopping the moto server")
    _stop_pid(data.get("moto_pid"))
    if data.get("image"):
        _remove_job_containers(str(data["image"]))
    if data.get("dockerd_pid"):
        log("stopping dockerd")
        _stop_pid(data["dockerd_pid"], timeout=30)
    _state_file().unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def running(log: Log = _no_log) -> Iterator[LocalAws]:
    """The local AWS for the duration of a block; stops it afterwards only if this block
    started it."""
    local, started = up(log)
    try:
        yield local
    finally:
        if started:
            down(log)


def moto_api(local: LocalAws, path: str, body: dict[str, Any] | None = None) -> None:
    """POST to the moto server's own API (``/moto-api/<path>``), e.g. ``config`` or
    ``state-manager/set-transition``; ``body`` is sent as JSON."""
    request = urllib.request.Request(
        f"{local.endpoint}/moto-api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def reset(local: LocalAws) -> None:
    """Forgets every resource the emulator holds (a clean slate between test modules);
    Step Functions still executes state machines afterwards (:data:`MOTO_CONFIG`)."""
    moto_api(local, "reset")
    moto_api(local, "config", MOTO_CONFIG)
