"""A warm parent for local tasks: a process that has imported the task runner and the flow
module once, and forks one child per task attempt.

Starting ``python -m batchwright.task`` costs an interpreter start and its imports for
every attempt; forking a parent that has already done both costs about a millisecond.
Each child is still a process of its own, with a fresh copy of the parent's state, so
nothing one task does reaches the next.

The parent (the *server*) is a fresh interpreter, ``python -m batchwright.backends.forkserver``,
never a fork of the orchestrator (which has threads and a run's state), and it never runs
step code. It imports the entrypoint module by its name
(:data:`~batchwright.entrypoint.ENTRYPOINT_MODULE`, as ``python -m`` does, so no backend
imports the task runner), calls its ``preload(flow_file, datastore_root)`` once, and in
each child its ``main(argv)`` with the arguments of contract 3, unchanged. The child's
stdout and stderr are the pipes the backend reads, its environment and working directory
those the orchestrator has when it starts the task, and its signal handlers those of a
fresh interpreter. It exits as an interpreter does (non-daemon threads joined, ``atexit``
handlers run, stdio flushed) except for the teardown of every module, which would copy
each page it shares with the parent and take longer than a small task.

The server runs in a session of its own, with no controlling terminal, so Ctrl-C reaches
only the orchestrator; each child is the leader of its own process group (set by the
server and by the child, so the group exists as soon as its pid is known), which is what
:meth:`LocalBackend.terminate <batchwright.backends.local.LocalBackend.terminate>` signals.

Protocol over a Unix socket pair, one JSON object per line:

- server to client, once: ``{"ready": true}``, or ``{"unavailable": REASON}`` when the
  flow module failed to import or started threads (the server then exits; the client's
  caller starts plain subprocesses instead, and each task reports an import error as
  usual);
- client to server: ``{"id": N, "argv": [...], "env": {...}, "cwd": DIR}``, the task's
  stdout and stderr pipes attached (``SCM_RIGHTS``);
- server to client: ``{"id": N, "started": PID}`` in reply (or ``{"id": N, "refused":
  REASON}`` when fork failed), later ``{"exited": PID, "code": CODE}``, CODE as
  :attr:`subprocess.Popen.returncode` has it (a signal as its negative number).

The server exits when its socket reaches end of file: :meth:`ForkServer.close`, or the
orchestrator's death. On Linux it also asks the kernel to kill it when the orchestrator
dies, in case that happens while the flow module is still importing. Tasks it started
keep running, as plain subprocesses would; stopping them is ``terminate``'s job.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from types import FrameType, ModuleType
from typing import IO, Any, NamedTuple, NoReturn

from batchwright.entrypoint import ENTRYPOINT_MODULE

#: The module run with ``python -m`` to start a server.
SERVER_MODULE = "batchwright.backends.forkserver"
#: Seconds a new server may take to import the flow module before plain subprocesses are
#: used instead (a flow importing a large library may legitimately take a while).
READY_TIMEOUT = 120.0
#: Seconds :meth:`ForkServer.close` waits for the server to exit before killing it.
CLOSE_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1
_CHUNK = 65536


class ForkServerLost(Exception):
    """The server went away (or refused to fork): start tasks another way."""


def fork_available() -> bool:
    """Whether this platform can run a server: Linux (``fork`` and descriptor passing;
    on macOS forking after some system frameworks loaded is unsafe)."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


class _Channel:
    """One end of the socket pair: JSON lines out, JSON lines (and passed descriptors) in."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        # poll, not select: the orchestrator may hold more than FD_SETSIZE descriptors.
        self._poller = select.poll()
        self._poller.register(connection, select.POLLIN)
        self._buffer = b""
        #: Descriptors received, in the order their messages were sent.
        self.descriptors: deque[int] = deque()

    def send(self, message: Mapping[str, Any], descriptors: Sequence[int] = ()) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        sent = socket.send_fds(self.connection, [data], list(descriptors)) if descriptors else 0
        self.connection.sendall(data[sent:])

    def receive(self, timeout: float | None) -> list[dict[str, Any]] | None:
        """The messages that arrived within ``timeout`` seconds (``[]``: none yet), or
        ``None`` once the other end closed."""
        if not self._poller.poll(None if timeout is None else timeout * 1000):
            return []
        # A read returns the descriptors of at most one message; a request carries two.
        data, descriptors, _, _ = socket.recv_fds(self.connection, _CHUNK, 4)
        self.descriptors.extend(descriptors)
        if not data:
            return None
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        return [json.loads(line) for line in lines]

    def close(self) -> None:
        self.connection.close()
        for descriptor in self.descriptors:
            os.close(descriptor)
        self.descriptors.clear()


# --- the client, in the orchestrator ----------------------------------------------------


class ForkServer:
    """The orchestrator's side of one server: forks tasks there and learns how they exit."""

    def __init__(self, process: subprocess.Popen[bytes], connection: socket.socket) -> None:
        self.process = process
        self._channel = _Channel(connection)
        self._requests = 0
        #: The request whose reply :meth:`spawn` waits for.
        self._awaiting: int | None = None
        self._replies: dict[int, dict[str, Any]] = {}
        #: Exit codes the server reported and nobody asked for yet, by pid.
        self._exits: dict[int, int] = {}
        self._lost = False

    @classmethod
    def start(
        cls, flow_file: str, datastore_root: str, environment: Mapping[str, str]
    ) -> ForkServer | None:
        """A server warmed up for tasks of ``flow_file``, started with ``environment``;
        ``None`` when tasks cannot start this way (no ``fork`` here; the flow module failed
        to import, started threads, or took longer than :data:`READY_TIMEOUT`)."""
        if not fork_available():
            return None
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    SERVER_MODULE,
                    str(theirs.fileno()),
                    str(os.getpid()),
                    flow_file,
                    datastore_root,
                ],
                stdin=subprocess.DEVNULL,
                # The flow module's import-time output would otherwise reach the terminal
                # once, out of any task; the tasks' own output goes to their pipes.
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=dict(environment),
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        server = cls(process, ours)
        try:
            ready = server._wait_ready()
        except BaseException:
            server.close()
            raise
        if not ready:
            server.close()
            return None
        return server

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            messages = self._channel.receive(remaining)
            if messages is None:
                return False
            if messages:
                return bool(messages[0].get("ready"))
        return False

    def spawn(self, argv: Sequence[str], environment: Mapping[str, str]) -> ForkedProcess:
        """Start a task running the entrypoint with ``argv``, its output on new pipes.

        Raises:
            ForkServerLost: the server is gone or could not fork.
        """
        self._requests += 1
        request_id = self._requests
        request = {
            "id": request_id,
            "argv": list(argv),
            "env": dict(environment),
            "cwd": os.getcwd(),
        }
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            try:
                self._send(request, (stdout_write, stderr_write))
            finally:
                # The server holds its own copies now; ours would keep the pipes open.
                os.close(stdout_write)
                os.close(stderr_write)
            reply = self._reply(request_id)
            if "started" not in reply:
                raise ForkServerLost(f"the fork server could not fork: {reply.get('refused')}")
        except BaseException:
            os.close(stdout_read)
            os.close(stderr_read)
            raise
        pipes = []
        for descriptor in (stdout_read, stderr_read):
            os.set_blocking(descriptor, False)
            pipes.append(open(descriptor, "rb", buffering=0))  # noqa: SIM115 - the backend closes it
        return ForkedProcess(self, int(reply["started"]), pipes[0], pipes[1])

    def _send(self, message: Mapping[str, Any], descriptors: Sequence[int]) -> None:
        if self._lost:
            raise ForkServerLost("the fork server is gone")
        try:
            self._channel.send(message, descriptors)
        except OSError as error:
            self._lost = True
            raise ForkServerLost(f"the fork server is gone ({error})") from None

    def _reply(self, request_id: int) -> dict[str, Any]:
        self._awaiting = request_id
        try:
            while request_id not in self._replies:
                self._receive(None)
        finally:
            self._awaiting = None
        return self._replies.pop(request_id)

    def _receive(self, timeout: float | None) -> None:
        if self._lost:
            raise ForkServerLost("the fork server is gone")
        messages = self._channel.receive(timeout)
        if messages is None:
            self._lost = True
            raise ForkServerLost("the fork server exited")
        for message in messages:
            if "exited" in message:
                self._exits[int(message["exited"])] = int(message["code"])
            elif message.get("id") == self._awaiting:
                self._replies[int(message["id"])] = message
            elif "started" in message:
                # Its caller stopped waiting (an interrupt): nobody would follow the task.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(message["started"]), signal.SIGKILL)

    def exit_code(self, pid: int, timeout: float | None = 0.0) -> int | None:
        """The exit code of task ``pid`` once it exited (waiting up to ``timeout`` seconds,
        ``None``: as long as it takes), else ``None``.

        Raises:
            ForkServerLost: the server went away before reporting it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self._exits:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._receive(remaining)
            if remaining == 0.0:
                break
        return self._exits.pop(pid, None)

    @property
    def usable(self) -> bool:
        """False once the server went away."""
        return not self._lost

    def close(self) -> None:
        """Stop the server (its end-of-file); the tasks it started keep running."""
        self._lost = True
        self._channel.close()
        try:
            self.process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkedProcess:
    """A task the server forked, with the part of :class:`subprocess.Popen`'s interface
    the local backend uses (``pid``, ``stdout``, ``stderr``, ``poll``, ``wait``)."""

    def __init__(self, server: ForkServer, pid: int, stdout: IO[bytes], stderr: IO[bytes]):
        self.server = server
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code, or ``None`` while the task runs."""
        return self._exit_code(0.0)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, waiting up to ``timeout`` seconds.

        Raises:
            subprocess.TimeoutExpired: the task still runs after ``timeout``.
        """
        code = self._exit_code(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(ENTRYPOINT_MODULE, timeout or 0.0)
        return code

    def _exit_code(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.server.exit_code(self.pid, timeout)
            except ForkServerLost:
                # Nobody can report how it ends any more: stop it rather than wait forever
                # (the server never goes away while a run uses it, short of being killed).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.returncode = -signal.SIGKILL
        return self.returncode


# --- the server, in its own process --------------------------------------------------------


class _Request(NamedTuple):
    id: int
    argv: list[str]
    environment: dict[str, str]
    cwd: str
    stdout: int
    stderr: int


def main(argv: Sequence[str] | None = None) -> int:
    """The server: ``SOCKET_FD PARENT_PID FLOW_FILE DATASTORE_ROOT``. Returns its exit
    code, or in a forked child the task's."""
    socket_fd, parent_pid, flow_file, datastore_root = sys.argv[1:] if argv is None else argv
    _die_with(int(parent_pid))
    channel = _Channel(socket.socket(fileno=int(socket_fd)))
    entrypoint = importlib.import_module(ENTRYPOINT_MODULE)
    try:
        entrypoint.preload(flow_file, datastore_root)
    except BaseException as error:  # the flow's own code may raise anything, SystemExit too
        channel.send({"unavailable": f"{type(error).__name__}: {error}"})
        return 0
    if threading.active_count() > 1:
        # A fork copies only the forking thread, and the locks others may hold.
        channel.send({"unavailable": "the flow module starts threads when imported"})
        return 0
    # What the parent holds is never garbage in a child: a collection there would write to
    # (and so copy) every page of it.
    gc.freeze()
    try:
        channel.send({"ready": True})
        request = _serve(channel)
    except OSError:  # the orchestrator went away
        return 0
    if request is None:
        return 0
    _run_task(entrypoint, request)


def _die_with(parent_pid: int) -> None:
    """Ask Linux to kill this process when the orchestrator dies (it could be importing the
    flow module then, and not reading the socket); exit if it already died."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def _serve(channel: _Channel) -> _Request | None:
    """Fork a child per request until the socket closes (then ``None``); returns, in a
    child, that child's request. Nothing here may outlive a return in the child that it
    should not: every resource of the server is closed there explicitly."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    # A Python-level handler, so that SIGCHLD writes to the wakeup descriptor.
    signal.signal(signal.SIGCHLD, _ignore)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    poller = select.poll()
    for descriptor in (channel.connection.fileno(), wake_read):
        poller.register(descriptor, select.POLLIN)
    pending: deque[_Request] = deque()
    while True:
        readable = {descriptor for descriptor, _ in poller.poll()}
        if wake_read in readable:
            os.read(wake_read, _CHUNK)
            _report_exits(channel)
        if channel.connection.fileno() in readable:
            messages = channel.receive(0)
            if messages is None:
                return None
            for message in messages:
                stdout, stderr = channel.descriptors.popleft(), channel.descriptors.popleft()
                pending.append(
                    _Request(
                        message["id"],
                        message["argv"],
                        message["env"],
                        message["cwd"],
                        stdout,
                        stderr,
                    )
                )
        while pending:
            request = pending.popleft()
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as error:
                pid = -1
                channel.send({"id": request.id, "refused": str(error)})
            if pid == 0:
                others = [d for r in pending for d in (r.stdout, r.stderr)]
                _leave_server(channel, (wake_read, wake_write, *others))
                return request
            os.close(request.stdout)
            os.close(request.stderr)
            if pid > 0:
                # Also here, so that the group exists before the orchestrator knows the pid.
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)
                channel.send({"id": request.id, "started": pid})


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Does nothing: its being set makes the signal write to the wakeup descriptor."""


def _report_exits(channel: _Channel) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel.send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _leave_server(channel: _Channel, descriptors: Sequence[int]) -> None:
    """In a forked child: drop everything of the server's before the task runs."""
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)
    # As a fresh interpreter has them (the task runner sets its own, e.g. for @timeout).
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    channel.close()
    for descriptor in descriptors:
        os.close(descriptor)
    # Python reseeds ``random`` at fork; numpy's global generator (if the flow module
    # imported it) would give every task the same stream, as no fresh process would.
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):
            numpy_random.seed()


def _run_task(entrypoint: ModuleType, request: _Request) -> NoReturn:
    """In a forked child: point stdout and stderr at the task's pipes, take on the
    orchestrator's environment and directory, run the entrypoint, and exit."""
    for descriptor, target in ((request.stdout, 1), (request.stderr, 2)):
        os.dup2(descriptor, target)
        os.close(descriptor)
    os.chdir(request.cwd)
    if os.environ != request.environment:
        os.environ.clear()
        os.environ.update(request.environment)
    sys.argv = [str(entrypoint.__file__), *request.argv]
    try:
        code = int(entrypoint.main(request.argv))
    except SystemExit as exit_request:  # e.g. argparse's usage error
        code = _exit_code(exit_request)
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit(code)


def _exit_code(exit_request: SystemExit) -> int:
    """The exit status ``sys.exit(value)`` gives a process."""
    if exit_request.code is None:
        return 0
    if isinstance(exit_request.code, int):
        return exit_request.code
    print(exit_request.code, file=sys.stderr)
    return 1


def _exit(code: int) -> NoReturn:
    """Leave as the interpreter does (non-daemon threads joined, ``atexit`` handlers run,
    stdio flushed), without its teardown of every module: that writes to, and so copies,
    every page shared with the server, and takes longer than a small task."""
    # The two steps CPython's own exit takes first; without them, take the whole exit.
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_handlers is None:
        sys.exit(code)
    shutdown_threads()
    run_exit_handlers()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    # Only the server returns from main: it leaves without waiting for threads the flow
    # module may have started, and with nothing of its own to flush.
    os._exit(main())
