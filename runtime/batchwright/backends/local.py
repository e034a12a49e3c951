"""The local backend: one process per task attempt, running the task entrypoint.

Each attempt is forked from a warm parent that has already imported the task runner and
the flow module (:mod:`batchwright.backends.forkserver`, one per flow file, started on
the first submit), and runs the entrypoint's ``main`` with the arguments of
``python -m batchwright.task``. Where that is not possible (no ``fork`` on the platform,
or the flow module fails to import in the parent, or starts threads there) each attempt
is that command in a fresh subprocess, so a task reports an import error itself.

Output is read from non-blocking pipes during :meth:`LocalBackend.poll` and handed to the
event sink line by line (the CLI echoes it prefixed by the task's pathspec); the task
itself stores its logs in the datastore. Attempts run in their own process group, in a
session without the orchestrator's terminal, so a Ctrl-C reaches only the scheduler,
which then terminates them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import IO

from batchwright.backends.base import (
    AttemptFacts,
    Backend,
    BackendOptions,
    TaskHandle,
    TaskSpec,
    TaskStatus,
)
from batchwright.backends.forkserver import ForkedProcess, ForkServer, ForkServerLost
from batchwright.entrypoint import ENTRYPOINT_MODULE, FINAL_EXIT_CODES, TaskArguments
from batchwright.events import TaskOutput
from batchwright.multinode import local_node_environment, try_token

#: Seconds between SIGTERM and SIGKILL when terminating.
TERMINATE_GRACE = 5.0


#: How much of an attempt's output the backend keeps, per stream, for a failed attempt
#: that dies before storing its logs (a signal, an out-of-memory kill).
OUTPUT_TAIL_BYTES = 1024 * 1024


@dataclass
class _Attempt:
    process: subprocess.Popen[bytes] | ForkedProcess
    pathspec: str
    #: Its node index, for a node of a parallel step.
    node: int | None = None
    #: A subprocess starts running when it is started (seconds since the epoch).
    started_at: float = field(default_factory=time.time)
    partial: dict[str, bytes] = field(default_factory=lambda: {"stdout": b"", "stderr": b""})
    #: The end of what it printed (at most :data:`OUTPUT_TAIL_BYTES` per stream).
    tail: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()}
    )


class LocalBackend(Backend):
    """Runs the task entrypoint (``python -m batchwright.task``) in a process per attempt,
    forked from a warm parent where possible."""

    name = "local"
    poll_interval = 0.01
    #: Fork attempts from a warm parent; False: a fresh interpreter for every attempt.
    fork_server = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self._attempts: dict[str, _Attempt] = {}
        self._counter = 0
        #: Each flow file's warm parent (``None``: its tasks start as plain subprocesses).
        self._servers: dict[str, ForkServer | None] = {}

    def submit(self, tasks: Sequence[TaskSpec]) -> list[TaskHandle]:
        """Start one process per task; the nodes of a parallel step side by side, each
        with the variables AWS Batch sets in a multi-node job (node index, node count,
        main node index, the main node's address: this machine's loopback)."""
        handles = []
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        group = tasks[0].group
        node_ids = [t.task_id for t in tasks] if group is not None and group.parallel else []
        token = try_token(tasks[0].attempt, tasks[0].resubmission)
        for index, task in enumerate(tasks):
            own = (
                {**environment, **local_node_environment(index, node_ids, token)}
                if node_ids
                else None
            )
            process = self._start(task.arguments, own or environment)
            self._counter += 1
            handle_id = f"{process.pid}-{self._counter}"
            self._attempts[handle_id] = _Attempt(
                process, task.pathspec, index if node_ids else None
            )
            handles.append(TaskHandle(self.name, handle_id, task))
        return handles

    def _start(
        self, arguments: TaskArguments, environment: dict[str, str]
    ) -> subprocess.Popen[bytes] | ForkedProcess:
        argv = arguments.to_argv()
        server = self._server(arguments, environment)
        if server is not None:
            try:
                return server.spawn(argv, environment)
            except ForkServerLost:
                # It could not fork (this attempt starts as a subprocess), or it is gone
                # (every later one does too).
                if not server.usable:
                    self._servers[arguments.flow_file] = None
                    server.close()
        process = subprocess.Popen(
            [sys.executable, "-m", ENTRYPOINT_MODULE, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        for pipe in (process.stdout, process.stderr):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
        return process

    def _server(self, arguments: TaskArguments, environment: dict[str, str]) -> ForkServer | None:
        """The warm parent of the flow file's tasks, started on first use."""
        if not self.fork_server:
            return None
        flow_file = arguments.flow_file
        if flow_file not in self._servers:
            self._servers[flow_file] = ForkServer.start(
                flow_file, arguments.datastore_root, environment
            )
        return self._servers[flow_file]

    def close(self) -> None:
        """Stop the warm parents; attempts they started are not stopped (``terminate``
        does that)."""
        servers = [s for s in self._servers.values() if s is not None]
        self._servers.clear()
        for server in servers:
            server.close()

    def poll(self, handles: Sequence[TaskHandle]) -> list[TaskStatus]:
        """Forward new output, then report each attempt's state."""
        statuses = []
        for handle in handles:
            attempt = self._attempts.get(handle.id)
            if attempt is None:
                statuses.append(TaskStatus.failed("unknown to the local backend"))
                continue
            self._drain(attempt, final=False)
            code = attempt.process.poll()
            if code is None:
                statuses.append(TaskStatus.running(attempt.started_at))
                continue
            self._drain(attempt, final=True)
            self._close(handle.id)
            status = _status_of(code)
            output = (
                {name: bytes(data) for name, data in attempt.tail.items()}
                if status.state == "failed"
                else None
            )
            facts = AttemptFacts(started_at=attempt.started_at, output=output)
            statuses.append(replace(status, facts=facts))
        return statuses

    def terminate(self, handles: Sequence[TaskHandle]) -> None:
        """SIGTERM each attempt's process group, then SIGKILL what is left after a grace."""
        attempts = [(h.id, self._attempts[h.id]) for h in handles if h.id in self._attempts]
        for _, attempt in attempts:
            _signal_group(attempt.process, signal.SIGTERM)
        deadline = time.monotonic() + TERMINATE_GRACE
        for handle_id, attempt in attempts:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                attempt.process.wait(remaining)
            except subprocess.TimeoutExpired:
                _signal_group(attempt.process, signal.SIGKILL)
                attempt.process.wait()
            self._drain(attempt, final=True)
            self._close(handle_id)

    def _drain(self, attempt: _Attempt, *, final: bool) -> None:
        for stream, pipe in (
            ("stdout", attempt.process.stdout),
            ("stderr", attempt.process.stderr),
        ):
            if pipe is None or pipe.closed:
                continue
            data = _read_available(pipe)
            if not data and not final:
                continue
            buffered = attempt.partial[stream] + data
            if final:
                complete, attempt.partial[stream] = buffered, b""
            else:
                cut = buffered.rfind(b"\n") + 1
                complete, attempt.partial[stream] = buffered[:cut], buffered[cut:]
            if complete:
                tail = attempt.tail[stream]
                tail += complete
                del tail[:-OUTPUT_TAIL_BYTES]
                text = complete.decode("utf-8", "replace")
                self.options.on_event(TaskOutput(attempt.pathspec, stream, text, attempt.node))

    def _close(self, handle_id: str) -> None:
        attempt = self._attempts.pop(handle_id, None)
        if attempt is not None:
            for pipe in (attempt.process.stdout, attempt.process.stderr):
                if pipe is not None:
                    pipe.close()


def _read_available(pipe: IO[bytes]) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_of(code: int) -> TaskStatus:
    if code == 0:
        return TaskStatus.succeeded()
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        return TaskStatus.failed(f"killed by signal {name}", code)
    if code in FINAL_EXIT_CODES:
        return TaskStatus.failed(
            "the task failed in a way a retry cannot fix", code, retryable=False
        )
    return TaskStatus.failed("the step raised an exception", code)


def _signal_group(process: subprocess.Popen[bytes] | ForkedProcess, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
