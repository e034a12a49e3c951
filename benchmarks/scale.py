"""Scale: a 1,000- and a 10,000-way foreach of @batch steps, and what orchestrating it costs.

For each width N, one run of this script:

1. starts a local AWS of its own (a dedicated moto server) and deploys the sample
   environment into it, then switches the emulator's container execution off (moto's
   config API): a Batch job then succeeds the moment it is submitted;
2. runs a flow (start -> foreach over N items with ``@batch(cpu=1, memory=512)`` -> join
   -> end) with ``python flow.py run`` against it, through a proxy on loopback that
   counts every request by operation;
3. because the emulator runs nothing, the children's outputs are made the honest way:
   when a SubmitJob answer passes the proxy, the benchmark starts the real task
   entrypoint (``batchwright.task.main``) for every child of that array job, with the
   child's own arguments and ``AWS_BATCH_JOB_ARRAY_INDEX``, in a pool of forked worker
   processes, and until they have all ended the proxy reports the array RUNNING (its
   summary counting the children done), as Batch would. The orchestrator polls all along;
4. prints, measured: Batch API calls by kind (counted at the proxy), polls (DescribeJobs
   rounds) and Batch calls per poll, the orchestrator's CPU seconds per task and peak RSS
   (``wait4`` and ``/proc`` on its process), console lines printed, and the wall time, with the
   issue's targets for N = 10,000 beside them.

    .venv/bin/python benchmarks/scale.py [--widths 1000 10000] [--workers 2]
    .venv/bin/python benchmarks/batch_foreach.py --width 200   # real containers, vs Metaflow

The exit code is 1 when a target for the widest run is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "runtime"), str(REPO / "localaws")]

from batch_foreach import (  # noqa: E402
    clean_environment,
    dedicated_local_aws,
    say,
    synthesize_and_deploy,
)
from batchwright.entrypoint import ARRAY_INDEX_VARIABLE  # noqa: E402
from batchwright.entrypoint.bootstrap import OFFLOAD_BOOTSTRAP  # noqa: E402
from batchwright_localaws import services  # noqa: E402
from batchwright_localaws.faults import FaultProxy  # noqa: E402

STACK = "BatchwrightSample"
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "batchwright-scale-localaws"
#: Targets at N = 10,000 (the issue's).
TARGETS = {"submits": 1, "batch_calls": 500, "rss_mib": 300.0, "cpu_ms_per_task": 2.0}

FLOW = """
from batchwright import FlowSpec, Parameter, batch, step


class ScaleFlow(FlowSpec):
    width = Parameter("width", default=1000)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @batch(cpu=1, memory=512)
    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    ScaleFlow()
"""


@dataclass
class Measure:
    """One width's figures."""

    width: int
    wall: float = 0.0
    simulated: float = 0.0
    cpu: float = 0.0
    local_cpu: float = 0.0
    rss_mib: float = 0.0
    lines: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    ok: bool = False

    @property
    def batch_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def polls(self) -> int:
        return self.calls["DescribeJobs"]


def _run_child(job: tuple[list[str], int | None, str, dict[str, str]]) -> tuple[int | None, int]:
    """One job (or array child), as its container would run it: the task entrypoint's code."""
    arguments, index, folder, env = job
    os.chdir(folder)
    os.environ.update(env)
    if index is not None:
        os.environ[ARRAY_INDEX_VARIABLE] = str(index)
    from batchwright import task

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1), os.dup(2)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        return index, task.main(arguments)
    except SystemExit as exit_:  # a usage error: the worker must live on
        return index, exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(devnull)


def _entrypoint_arguments(command: list[str]) -> list[str]:
    """The task entrypoint's arguments in a job's command (``python3 -c BOOTSTRAP URL
    SHA256 ARGS...``), fetched from S3 when the command was offloaded there."""
    if command[2] == OFFLOAD_BOOTSTRAP:
        import boto3

        bucket, _, key = command[3][len("s3://") :].partition("/")
        payload = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        command = json.loads(payload)["command"]
    return command[5:]


@dataclass
class _Job:
    """A submitted job whose tasks the benchmark runs."""

    size: int
    done: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    finished: bool = False


class Children:
    """Stands in for the containers the emulator does not run.

    When a SubmitJob answer passes the proxy, the job's tasks (every child of an array
    job) start in a pool of forked workers, and until they have all ended the job is
    reported RUNNING in DescribeJobs and ListJobs answers, its array summary counting
    the children done so far, as Batch would. Then the emulator's answer (SUCCEEDED)
    stands."""

    def __init__(self, pool: Any, folder: Path, env: dict[str, str]) -> None:
        self.pool = pool
        self.folder = folder
        self.env = env
        self.seconds = 0.0
        self.failures = 0
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def __call__(self, operation: str, asked: Any, answer: dict[str, Any]) -> bool:
        if operation == "SubmitJob":
            self._start(asked, str(answer["jobId"]))
            return False
        records = answer.get("jobs" if operation == "DescribeJobs" else "jobSummaryList")
        changed = False
        with self._lock:
            for record in records or ():
                parent, _, index = str(record.get("jobId", "")).partition(":")
                job = self._jobs.get(parent)
                if job is None or job.finished or (index and int(index) in job.done):
                    continue
                record["status"] = "RUNNING"
                record.pop("stoppedAt", None)
                summary = (record.get("arrayProperties") or {}).get("statusSummary")
                if not index and summary is not None:
                    summary.update(
                        {state: 0 for state in summary},
                        SUCCEEDED=len(job.done - job.failed),
                        FAILED=len(job.failed),
                        RUNNING=job.size - len(job.done),
                    )
                changed = True
        return changed

    def _start(self, asked: Any, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                return
            array = asked.get("arrayProperties") or {}
            job = self._jobs[job_id] = _Job(int(array.get("size", 1)))
        arguments = _entrypoint_arguments(asked["containerOverrides"]["command"])
        indexes: list[int | None] = list(range(job.size)) if array else [None]
        threading.Thread(
            target=self._run, args=(job, arguments, indexes), daemon=True, name=job_id
        ).start()

    def _run(self, job: _Job, arguments: list[str], indexes: list[int | None]) -> None:
        started = time.perf_counter()
        work = [(arguments, index, str(self.folder), self.env) for index in indexes]
        chunk = max(1, len(work) // 64)
        for index, code in self.pool.imap_unordered(_run_child, work, chunksize=chunk):
            with self._lock:
                job.done.add(index or 0)
                if code != 0:
                    job.failed.add(index or 0)
        with self._lock:
            job.finished = True
            self.seconds += time.perf_counter() - started
            self.failures += len(job.failed)


class ProcessWatch:
    """What a process used, read from ``/proc`` every 50 ms while it runs: its peak
    resident memory (``VmHWM``) and its own CPU time (``utime + stime`` of
    ``/proc/PID/stat``). ``wait4``'s figures would not do: ``ru_maxrss`` counts the
    memory of the process it was forked from before its exec, and its CPU times include
    the local steps' subprocesses (start, join, end), which are not orchestration."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.kib = 0
        self.cpu = 0.0
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @property
    def mib(self) -> float:
        return self.kib / 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
                stat = Path(f"/proc/{self.pid}/stat").read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
            self.cpu = max(self.cpu, (int(fields[11]) + int(fields[12])) / self._tick)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(local: services.LocalAws, work: Path, width: int, pool: Any) -> Measure:
    """One run of the flow at ``width``."""
    folder = work / f"width-{width}"
    folder.mkdir()
    (folder / "flow.py").write_text(FLOW)
    env = {
        **clean_environment(local),
        "BATCHWRIGHT_ENVIRONMENT": STACK,
        "BATCHWRIGHT_OUTPUTS_FILE": str(work / "cdk-outputs.json"),
    }
    result = Measure(width)
    children = Children(pool, folder, env)
    with FaultProxy(local.endpoint) as proxy:
        proxy.on_batch_answer = children
        run_env = {**env, "AWS_ENDPOINT_URL": proxy.endpoint}
        say(f"running a {width}-way foreach (emulator runs no containers)")
        started = time.perf_counter()
        with (folder / "output.log").open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "flow.py", "run", "--width", str(width)],
                cwd=folder,
                env=run_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            watch = ProcessWatch(process.pid)
            _, status, usage = os.wait4(process.pid, 0)
            watch.stop()
        result.wall = time.perf_counter() - started
        stats = proxy.stats
    result.ok = os.waitstatus_to_exitcode(status) == 0 and children.failures == 0
    result.simulated = children.seconds
    result.cpu = watch.cpu
    result.local_cpu = usage.ru_utime + usage.ru_stime - watch.cpu
    result.rss_mib = watch.mib
    output = (folder / "output.log").read_text(errors="replace")
    result.lines = len(output.splitlines())
    result.calls = Counter(
        {op: n for (service, op), n in stats.requests.items() if service == "batch"}
    )
    if not result.ok:
        say(f"the run failed ({children.failures} children failed):\n{output[-3000:]}")
    return result


def report(results: list[Measure], load: float) -> int:
    """Prints the figures and the targets; 1 when the widest run misses one."""
    print(f"load average at the start: {load:.2f}")
    print(
        "simulated: the emulator ran no container. Each child's outputs were written by the "
        "real task entrypoint (batchwright.task.main), run by this benchmark in forked "
        "workers once its array job's SubmitJob had passed the proxy; until they had all "
        "ended, the proxy reported the array RUNNING with its children counted as done so far."
    )
    for r in results:
        print(f"\nN = {r.width:,} ({'ok' if r.ok else 'FAILED'})")
        for op, n in sorted(r.calls.items()):
            print(f"  {op:28} {n}")
        per_poll = r.batch_calls / r.polls if r.polls else 0.0
        print(f"  Batch calls in all           {r.batch_calls}")
        print(f"  polls (DescribeJobs rounds)  {r.polls}; Batch calls per poll {per_poll:.2f}")
        print(
            f"  orchestrator CPU             {r.cpu:.2f} s ({1000 * r.cpu / r.width:.3f} ms/task)"
        )
        print(f"  local steps' CPU (not above) {r.local_cpu:.2f} s")
        print(f"  orchestrator peak RSS        {r.rss_mib:.0f} MiB")
        print(f"  console lines                {r.lines}")
        print(
            f"  wall time                    {r.wall:.1f} s (the tasks ran for {r.simulated:.1f} s)"
        )
    widest = max(results, key=lambda r: r.width)
    checks = {
        "SubmitJob for the fan-out": widest.calls["SubmitJob"] <= TARGETS["submits"],
        f"Batch calls < {TARGETS['batch_calls']}": widest.batch_calls < TARGETS["batch_calls"],
        f"RSS < {TARGETS['rss_mib']:.0f} MiB": widest.rss_mib < TARGETS["rss_mib"],
        f"CPU < {TARGETS['cpu_ms_per_task']} ms/task": (
            1000 * widest.cpu / widest.width < TARGETS["cpu_ms_per_task"]
        ),
    }
    if len(results) > 1:
        narrow = min(results, key=lambda r: r.width)
        ratio = (widest.batch_calls / widest.polls) / (narrow.batch_calls / narrow.polls)
        print(f"\nBatch calls per poll, N={widest.width:,} vs N={narrow.width:,}: {ratio:.2f}x")
        checks["calls per poll flat"] = ratio < 1.5
    print(f"\ntargets at N = {widest.width:,}:")
    for name, met in checks.items():
        print(f"  {'met ' if met else 'MISSED'} {name}")
    return 0 if widest.ok and all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--workers", type=int, default=2, help="processes running children")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = []
    # Forked before any thread exists (the proxy's, the tasks' feeders).
    pool = multiprocessing.get_context("fork").Pool(args.workers)
    with tempfile.TemporaryDirectory(prefix="batchwright-scale-") as scratch:
        work = Path(scratch)
        with dedicated_local_aws(args.state_dir, keep=False) as local:
            synthesize_and_deploy(local, work)
            services.moto_api(local, "config", {"batch": {"use_docker": False}})
            os.environ.update(local.environment())
            for width in args.widths:
                results.append(measure(local, work, width, pool))
    pool.close()
    return report(results, load)


if __name__ == "__main__":
    sys.exit(main())
