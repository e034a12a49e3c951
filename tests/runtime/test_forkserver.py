"""Local tasks forked from a warm parent (the fork server): real processes throughout."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright import Flow
from batchwright.backends import BackendOptions, TaskSpec, register_backend
from batchwright.backends import local as local_module
from batchwright.backends.local import LocalBackend
from batchwright.datastore import open_datastore
from batchwright.definition import load_definition
from batchwright.entrypoint import TaskArguments
from batchwright.events import AttemptFailed, Event, TaskOutput
from batchwright.plan import make_plan
from batchwright.policy import StepPolicy
from batchwright.scheduler import RunOptions, RunResult, Scheduler
from batchwright.task import load_flow_class

from ._support import start_flow, write_flow

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads processes from /proc"
)

FORKED_FLOW = """
import os, sys
from batchwright import FlowSpec, step

with open(os.environ["IMPORT_LOG"], "a") as log:
    log.write(f"{os.getpid()}\\n")

#: Each work task adds its item; a task that starts fresh sees no one else's.
TOUCHED_BY = []

# Stands for numpy's global generator, which a fork would share: counts its reseeds.
import importlib.util, types
if importlib.util.find_spec("numpy") is None and "numpy.random" not in sys.modules:
    _GENERATOR = types.ModuleType("numpy.random")
    _GENERATOR.reseeds = 0
    def _reseed(*seed):
        _GENERATOR.reseeds += 1
    _GENERATOR.seed = _reseed
    sys.modules["numpy.random"] = _GENERATOR


class ForkedFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.seen_before = list(TOUCHED_BY)
        TOUCHED_BY.append(self.input)
        self.pid = os.getpid()
        self.parent_pid = os.getppid()
        self.group = os.getpgid(0)
        self.session = os.getsid(0)
        self.argv = sys.argv[1:]
        self.marker = os.environ.get("FORK_MARKER")
        self.unbuffered = os.environ.get("PYTHONUNBUFFERED")
        self.cwd = os.getcwd()
        self.reseeds = getattr(sys.modules["numpy.random"], "reseeds", None)
        print(f"out {self.input}")
        print(f"err {self.input}", file=sys.stderr)
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ForkedFlow()
"""

FAILING_FLOW = """
import os, signal, sys
from batchwright import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.modes = ["raise", "exit", "kill"]
        self.next(self.fail, foreach="modes")

    @step
    def fail(self):
        if self.input == "raise":
            raise ValueError("the step broke")
        if self.input == "exit":
            os._exit(7)
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
"""

SLEEPING_FLOW = """
import os, signal, subprocess, sys, time
from batchwright import FlowSpec, step


class SleepingFlow(FlowSpec):
    @step
    def start(self):
        if os.environ.get("IGNORE_SIGTERM"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"])
        with open(os.environ["PID_FILE"] + ".tmp", "w") as out:
            out.write(f"{os.getpid()} {child.pid} {os.getppid()}")
        os.rename(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
        time.sleep(600)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SleepingFlow()
"""

EXITING_FLOW = """
import atexit, os, threading, time
from concurrent.futures import ThreadPoolExecutor
from batchwright import FlowSpec, step


def mark(name):
    with open(os.path.join(os.environ["MARKS"], name), "w"):
        pass


class ExitingFlow(FlowSpec):
    @step
    def start(self):
        atexit.register(mark, "atexit")
        threading.Thread(target=lambda: (time.sleep(0.3), mark("thread"))).start()
        ThreadPoolExecutor(2).submit(time.sleep, 0.1)  # never shut down
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SIGNALLED_FLOW = """
import os, signal, sys, time
from batchwright import FlowSpec, step


def record(signum, frame):
    with open(os.environ["SIGNALS"], "a") as out:
        out.write(signal.Signals(signum).name + "\\n")
    if signum == signal.SIGTERM:
        sys.exit(1)


class SignalledFlow(FlowSpec):
    @step
    def start(self):
        signal.signal(signal.SIGINT, record)
        signal.signal(signal.SIGTERM, record)
        print("waiting", flush=True)
        time.sleep(600)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SignalledFlow()
"""

# Imports in the orchestrator only: anywhere else its module-level code raises.
ORCHESTRATOR_ONLY_FLOW = """
import os
from batchwright import FlowSpec, step

if os.getpid() != int(os.environ["ORCHESTRATOR_PID"]):
    raise RuntimeError("this flow imports only in its orchestrator")


class PickyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


class PlainLocalBackend(LocalBackend):
    """The local backend starting a fresh interpreter for every attempt."""

    fork_server = False


def _run(
    flow_file: Path,
    flow_name: str,
    datastore: Path,
    backend_class: type[LocalBackend] = LocalBackend,
) -> tuple[RunResult, list[Event], LocalBackend]:
    """Run the flow in this process; the backend is left open (the caller closes it)."""
    definition = load_definition(load_flow_class(str(flow_file), flow_name))
    plan = make_plan(flow_name, definition.decorators, None)
    events: list[Event] = []
    backends: list[LocalBackend] = []

    def create(options: BackendOptions) -> LocalBackend:
        backends.append(backend_class(options))
        return backends[-1]

    register_backend("local", create)
    try:
        scheduler = Scheduler(
            definition,
            plan.policies,
            open_datastore(flow_name, str(datastore)),
            RunOptions(flow_file=str(flow_file), datastore_root=str(datastore), max_workers=4),
            events.append,
        )
        result = scheduler.run({})
    finally:
        register_backend("local", LocalBackend)
    return result, events, backends[0]


def _processes() -> Iterator[tuple[int, int, str, str]]:
    """(pid, parent pid, state, command line) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        yield int(entry.name), int(parent), state, command


def _servers_of(parent: int) -> list[int]:
    """The live fork servers ``parent`` started."""
    return [
        pid
        for pid, ppid, state, command in _processes()
        if ppid == parent and state != "Z" and "batchwright.backends.forkserver" in command
    ]


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` ends (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _options(datastore: Path, flow_name: str) -> BackendOptions:
    return BackendOptions(flow_name, "r", str(datastore))


@pytest.fixture(scope="module")
def forked_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, list[Event], list[str], list[int]]]:
    """One run of ForkedFlow through the fork server: (datastore, run id, events, import
    log lines, the fork servers its tasks came from)."""
    folder = tmp_path_factory.mktemp("forked")
    flow_file = write_flow(folder, "forked_flow", FORKED_FLOW)
    datastore = folder / "store"
    import_log = folder / "imports"
    saved = dict(os.environ)
    os.environ.update(IMPORT_LOG=str(import_log), FORK_MARKER="from-the-orchestrator")
    try:
        result, events, backend = _run(flow_file, "ForkedFlow", datastore)
        backend.close()  # the scheduler closed it already: closing again is harmless
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.successful, [e for e in events if isinstance(e, AttemptFailed)]
    servers = sorted({task["parent_pid"] for task in _work_tasks(datastore, result.run_id)})
    yield datastore, result.run_id, events, import_log.read_text().split(), servers


def _work_tasks(datastore: Path, run_id: str) -> list[dict[str, Any]]:
    run = Flow("ForkedFlow", str(datastore))[run_id]
    return [
        {name: task[name].data for name in task.artifacts} | {"task": task}
        for task in run["work"].tasks()
    ]


def test_tasks_fork_from_one_warm_parent_that_imported_the_flow_once(
    forked_run: tuple[Path, str, list[Event], list[str], list[int]],
) -> None:
    datastore, run_id, _, imports, servers = forked_run
    run = Flow("ForkedFlow", str(datastore))[run_id]
    assert run.successful and run["join"].task["total"].data == 30
    # Imported by this process (the orchestrator) and by the warm parent: never by a task.
    assert len(imports) == 2 and int(imports[0]) == os.getpid()
    server = int(imports[1])
    assert servers == [server]
    work = _work_tasks(datastore, run_id)
    assert sorted(t["doubled"] for t in work) == [0, 2, 4, 6, 8, 10]
    for task in work:
        assert task["parent_pid"] == server
        # Its own process group (what terminate signals), not the orchestrator's session.
        assert task["group"] == task["pid"] and task["session"] != os.getsid(0)
        # The command line, environment and directory a subprocess would have had.
        argv = task["argv"]
        assert argv[argv.index("--step") + 1] == "work"
        assert argv[argv.index("--task-id") + 1] == task["task"].id
        assert task["marker"] == "from-the-orchestrator" and task["unbuffered"] == "1"
        assert task["cwd"] == os.getcwd()
        # A generator imported by the flow module is reseeded in each task, as Python
        # reseeds ``random``: tasks do not all draw the same numbers.
        assert task["reseeds"] == 1 or importlib.util.find_spec("numpy") is not None


def test_each_attempt_is_a_fresh_process(
    forked_run: tuple[Path, str, list[Event], list[str], list[int]],
) -> None:
    datastore, run_id, *_ = forked_run
    work = _work_tasks(datastore, run_id)
    assert len({t["pid"] for t in work}) == len(work) == 6
    assert all(t["seen_before"] == [] for t in work)


def test_output_reaches_the_events_and_the_stored_logs(
    forked_run: tuple[Path, str, list[Event], list[str], list[int]],
) -> None:
    datastore, run_id, events, *_ = forked_run
    for task in _work_tasks(datastore, run_id):
        item, pathspec = task["doubled"] // 2, task["task"].pathspec
        shown = {
            (e.stream, e.text)
            for e in events
            if isinstance(e, TaskOutput) and e.pathspec == pathspec
        }
        assert ("stdout", f"out {item}\n") in shown and ("stderr", f"err {item}\n") in shown
        assert f"out {item}\n" in task["task"].stdout
        assert f"err {item}\n" in task["task"].stderr


def test_the_server_is_gone_once_the_run_ends(
    forked_run: tuple[Path, str, list[Event], list[str], list[int]],
) -> None:
    *_, servers = forked_run
    assert len(servers) == 1
    # The scheduler closes its backends when the run ends: no warm parent outlives it.
    assert _gone(servers[0], within=5) and _servers_of(os.getpid()) == []


def test_plain_subprocesses_import_the_flow_in_every_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "plain_flow", FORKED_FLOW)
    import_log = tmp_path / "imports"
    monkeypatch.setenv("IMPORT_LOG", str(import_log))
    result, _, _ = _run(flow_file, "ForkedFlow", tmp_path / "store", PlainLocalBackend)
    assert result.successful and _servers_of(os.getpid()) == []
    # This process, then each of the 9 tasks.
    assert len(set(import_log.read_text().split())) == 10


def test_a_flow_module_that_starts_threads_runs_in_plain_subprocesses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded = FORKED_FLOW.replace(
        "TOUCHED_BY = []",
        "TOUCHED_BY = []\nimport threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
    )
    flow_file = write_flow(tmp_path, "threaded_flow", threaded)
    import_log = tmp_path / "imports"
    monkeypatch.setenv("IMPORT_LOG", str(import_log))
    result, _, backend = _run(flow_file, "ForkedFlow", tmp_path / "store")
    assert _servers_of(os.getpid()) == []
    backend.close()
    # This process, the parent that gave up, then each of the 9 tasks.
    assert result.successful and len(set(import_log.read_text().split())) == 11


def test_a_failing_task_reports_its_exit_code(tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "failing_flow", FAILING_FLOW)
    result, events, backend = _run(flow_file, "FailingFlow", tmp_path / "store")
    backend.close()
    assert not result.successful
    failures = {e.pathspec.rsplit("/", 1)[1]: e for e in events if isinstance(e, AttemptFailed)}
    codes = {e.exit_code for e in failures.values()}
    assert codes == {1, 7, -signal.SIGKILL}
    killed = next(e for e in failures.values() if e.exit_code == -signal.SIGKILL)
    assert killed.reason == "killed by signal SIGKILL"
    shown = "".join(e.text for e in events if isinstance(e, TaskOutput))
    assert "ValueError: the step broke" in shown


def test_a_task_exits_as_an_interpreter_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "exiting_flow", EXITING_FLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MARKS", str(marks))
    result, _, backend = _run(flow_file, "ExitingFlow", tmp_path / "store")
    backend.close()
    # Its non-daemon threads finished, its executor shut down, its atexit handlers ran.
    assert result.successful and sorted(p.name for p in marks.iterdir()) == ["atexit", "thread"]


def _sleeping_attempt(flow_file: Path, datastore: Path) -> TaskSpec:
    arguments = TaskArguments(
        flow_file=str(flow_file),
        flow="SleepingFlow",
        step="start",
        run_id="1",
        task_id="1",
        datastore_root=str(datastore),
    )
    return TaskSpec(arguments, StepPolicy("start"))


@pytest.mark.parametrize(("ignores_sigterm", "grace"), [(False, 5.0), (True, 1.0)])
def test_terminate_stops_a_task_and_its_children_within_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ignores_sigterm: bool, grace: float
) -> None:
    flow_file = write_flow(tmp_path, "sleeping_flow", SLEEPING_FLOW)
    pid_file = tmp_path / "pids"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    if ignores_sigterm:
        monkeypatch.setenv("IGNORE_SIGTERM", "1")
    monkeypatch.setattr(local_module, "TERMINATE_GRACE", grace)
    backend = LocalBackend(_options(tmp_path / "store", "SleepingFlow"))
    try:
        (handle,) = backend.submit([_sleeping_attempt(flow_file, tmp_path / "store")])
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            assert not backend.poll([handle])[0].is_finished
            time.sleep(0.02)
        task, child, parent = map(int, pid_file.read_text().split())
        assert parent in _servers_of(os.getpid())
        started = time.monotonic()
        backend.terminate([handle])
        elapsed = time.monotonic() - started
    finally:
        backend.close()
    assert _gone(task, within=0) and _gone(child)
    if ignores_sigterm:  # SIGKILL once the grace is over
        assert grace <= elapsed < grace + 3.0
    else:  # SIGTERM
        assert elapsed < grace


def test_a_flow_that_fails_to_import_in_the_parent_falls_back_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "picky_flow", ORCHESTRATOR_ONLY_FLOW)
    monkeypatch.setenv("ORCHESTRATOR_PID", str(os.getpid()))
    result, events, backend = _run(flow_file, "PickyFlow", tmp_path / "store")
    # The parent could not import the flow, so it exited and every task was a subprocess.
    assert _servers_of(os.getpid()) == []
    backend.close()
    assert not result.successful
    (failure,) = [e for e in events if isinstance(e, AttemptFailed)]
    assert failure.exit_code == 1 and failure.pathspec.split("/")[2] == "start"
    message = "RuntimeError: this flow imports only in its orchestrator"
    assert any(
        isinstance(e, TaskOutput) and e.stream == "stderr" and message in e.text for e in events
    )
    task = Flow("PickyFlow", str(tmp_path / "store"))[result.run_id]["start"].task
    assert message in task.stderr


def test_the_server_goes_away_when_the_orchestrator_is_killed(
    tmp_path: Path, datastore: Path
) -> None:
    flow_file = write_flow(tmp_path, "sleeping_flow", SLEEPING_FLOW)
    pid_file = tmp_path / "pids"
    orchestrator = start_flow(flow_file, datastore, env={"PID_FILE": str(pid_file)})
    task = child = 0
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        task, child, server = map(int, pid_file.read_text().split())
        assert _servers_of(orchestrator.pid) == [server]
        orchestrator.kill()
        orchestrator.wait()
        assert _gone(server)
    finally:
        orchestrator.kill()
        orchestrator.wait()
        # Tasks outlive a killed orchestrator (as subprocesses did): stop this one here.
        if task:
            os.killpg(task, signal.SIGKILL)
            assert _gone(task) and _gone(child)


def test_ctrl_c_reaches_only_the_orchestrator_which_terminates_the_task(
    tmp_path: Path, datastore: Path
) -> None:
    flow_file = write_flow(tmp_path, "signalled_flow", SIGNALLED_FLOW)
    signals = tmp_path / "signals"
    # Its own process group, as a shell gives a foreground job: Ctrl-C signals the group.
    orchestrator = start_flow(
        flow_file,
        datastore,
        env={"SIGNALS": str(signals)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        assert orchestrator.stdout is not None
        for line in orchestrator.stdout:
            if "waiting" in line:
                break
        (server,) = _servers_of(orchestrator.pid)
        os.killpg(orchestrator.pid, signal.SIGINT)
        _, stderr = orchestrator.communicate(timeout=30)
    finally:
        orchestrator.kill()
        orchestrator.wait()
    assert orchestrator.returncode == 130, stderr
    # The task saw only the SIGTERM of terminate, not the Ctrl-C.
    assert signals.read_text() == "SIGTERM\n"
    assert _gone(server)


def test_preload_imports_everything_a_task_imports(tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "forked_flow", FORKED_FLOW)
    script = """
import sys
from batchwright import task

flow_file, root = sys.argv[1:]
task.preload(flow_file, root)
before = set(sys.modules)
argv = ["--flow-file", flow_file, "--flow", "ForkedFlow", "--step", "start", "--run-id", "1",
        "--task-id", "1", "--datastore-root", root]
code = task.main(argv)
print(code, *sorted(m for m in set(sys.modules) - before if m.startswith("batchwright")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(flow_file), str(tmp_path / "store")],
        env={**os.environ, "IMPORT_LOG": str(tmp_path / "imports")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0"], done.stderr
