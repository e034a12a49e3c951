"""A second, independent AWS Batch emulator for the tests: localbatch (PyPI).

moto is one reading of the Batch API; localbatch is another, written separately, and
Metaflow's own tests run on it. It serves the Batch API only (S3 and CloudWatch Logs stay
on moto) and differs from AWS in ways real APIs also can: no array jobs (a parent runs as
one plain job), no log delivery to CloudWatch, no ``arrayProperties``, ``attempts`` or log
configuration in DescribeJobs, ``null`` timestamps. The runtime must cope with all of it.

:func:`start` runs it on a free loopback port, in its own process, through :func:`serve`,
which adapts one thing to this machine, and says so: job containers use the host's
network (the Docker engine here runs without a bridge, and the containers reach moto on
127.0.0.1), where localbatch would use Docker's default network and
``host.docker.internal``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchwright.errors import LocalAwsError

#: The queue localbatch creates at start (an ENABLED/VALID queue on one EC2 environment).
DEFAULT_QUEUE = "localbatch-default"
#: Seconds to wait for localbatch to answer its health check.
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class LocalBatch:
    """A running localbatch: where it answers, and its process."""

    endpoint: str
    pid: int
    log: Path

    def queue_arn(self, name: str = DEFAULT_QUEUE) -> str:
        """The ARN localbatch gives a queue of that name."""
        return f"arn:aws:batch:us-east-1:123456789012:job-queue/{name}"

    def stop(self) -> None:
        """Stops the server (its job containers end with their jobs)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(directory: Path) -> LocalBatch:
    """Starts localbatch on a free loopback port; its log goes to ``directory``.

    Raises:
        LocalAwsError: localbatch is not installed, or did not answer in time.
    """
    try:
        import localbatch  # noqa: F401
    except ImportError as error:
        raise LocalAwsError(
            f"localbatch is not installed ({error}); install batchwright's dev extra."
        ) from error
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = directory / f"localbatch-{port}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchwright_localaws.localbatch", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise LocalAwsError(
                f"localbatch did not start on {endpoint}; see {log}:\n"
                + log.read_text(errors="replace")[-2000:]
            )
        time.sleep(0.2)
    return LocalBatch(endpoint, process.pid, log)


def serve(port: int) -> None:
    """Runs localbatch in this process on 127.0.0.1:``port``, its containers on the
    host's network."""
    import docker.models.containers
    import uvicorn
    from localbatch.runner import DockerRunner
    from localbatch.server import create_app
    from localbatch.store import Store

    original = docker.models.containers.ContainerCollection.run

    def on_host_network(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("extra_hosts", None)
        kwargs["network_mode"] = "host"
        return original(self, *args, **kwargs)

    docker.models.containers.ContainerCollection.run = on_host_network
    store = Store(queue_name=DEFAULT_QUEUE)
    runner = DockerRunner(store, host_addr="127.0.0.1", port=port)
    uvicorn.run(create_app(store, runner), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
