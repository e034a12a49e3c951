"""Benchmark: a 16-way foreach of @batch steps on the local AWS, batchwright vs Metaflow 2.19.

One run of this script:

1. starts its own moto server (a dedicated local AWS, so that other users of the shared
   one cannot add requests to the counts) on the machine's Docker engine and job image;
2. synthesizes the sample CDK app (``cdk synth``) and deploys it into that emulator;
3. runs the same flow (start -> foreach over 16 items with ``@batch(cpu=1, memory=1024)``
   -> join -> end) with batchwright and with Metaflow, on the same queue (the sample's
   ``cpu`` queue) and the same job image;
4. prints each tool's wall time and its Batch API calls by operation, counted at the
   emulator from the request lines of the moto server's log between the start and the
   end of that tool's run, and the ratios.

Metaflow is installed from PyPI into its own virtual environment (default
``/tmp/batchwright-bench-metaflow``; set ``BENCH_METAFLOW_VENV`` to change it) on first
use; it is never a dependency of the project.

    .venv/bin/python benchmarks/batch_foreach.py [--width 16] [--timeout 900] [--skip-metaflow]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The local AWS lives in its own source root, beside the runtime it imports.
sys.path[:0] = [str(REPO / "runtime"), str(REPO / "localaws")]

from batchwright.environment.assembly import stack_template  # noqa: E402
from batchwright_localaws import deploy as local_deploy  # noqa: E402
from batchwright_localaws import services  # noqa: E402

STACK = "BatchwrightSample"
METAFLOW_REQUIREMENTS = ("metaflow==2.19.*", "boto3")
#: A state directory of its own: the benchmark's moto server, its log and its state file.
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "batchwright-bench-localaws"

BATCHWRIGHT_FLOW = """
from batchwright import FlowSpec, batch, step


class BatchForeach(FlowSpec):
    @step
    def start(self):
        self.items = list(range({width}))
        self.next(self.work, foreach="items")

    @batch(cpu=1, memory=1024, queue={queue!r})
    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    BatchForeach()
"""

# The emulator sets only AWS_BATCH_JOB_ID in a job; Metaflow's @batch reads the attempt,
# the compute environment and queue names and the execution environment unconditionally,
# and its task needs the emulator's test credentials to reach S3. They are given through
# Metaflow's own @environment decorator. The queue is the one in METAFLOW_BATCH_JOB_QUEUE.
METAFLOW_FLOW = """
from metaflow import FlowSpec, batch, environment, step


class BatchForeach(FlowSpec):
    @step
    def start(self):
        self.items = list(range({width}))
        self.next(self.work, foreach="items")

    @environment(vars={job_vars!r})
    @batch(cpu=1, memory=1024)
    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    BatchForeach()
"""

# moto's server logs one werkzeug line per request; Batch is the only REST API under /v1/
# among the services used here (S3 paths start with a bucket name, CloudWatch Logs posts
# to / with an X-Amz-Target header).
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)?([A-Z]+) (/[^ ]*) HTTP/[0-9.]+')
BATCH_OPERATIONS = {
    name.lower(): name
    for name in (
        "SubmitJob",
        "DescribeJobs",
        "ListJobs",
        "TerminateJob",
        "CancelJob",
        "RegisterJobDefinition",
        "DescribeJobDefinitions",
        "DeregisterJobDefinition",
        "DescribeJobQueues",
        "DescribeComputeEnvironments",
        "TagResource",
        "ListTagsForResource",
    )
}


@dataclass
class Calls:
    """Requests the emulator answered during one tool's run."""

    batch: Counter[str] = field(default_factory=Counter)
    other: int = 0

    @property
    def batch_total(self) -> int:
        """Every Batch API call, whatever the operation."""
        return sum(self.batch.values())


@dataclass
class Result:
    """One tool's measurement, or why it was not measured."""

    name: str
    seconds: float = 0.0
    calls: Calls = field(default_factory=Calls)
    not_measured: str | None = None
    #: The machine's 1-minute load average when the run started and ended (a caveat for
    #: the wall time: the machine may be shared).
    load: tuple[float, float] = (0.0, 0.0)


class RequestLog:
    """The moto server's request log, read by byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        """The current end of the log."""
        return self.path.stat().st_size if self.path.exists() else 0

    def calls_between(self, start: int, end: int) -> Calls:
        """The requests logged between two offsets, Batch ones by operation."""
        calls = Calls()
        with self.path.open("rb") as log:
            log.seek(start)
            text = log.read(end - start).decode(errors="replace")
        for match in REQUEST_LINE.finditer(text):
            path = match.group(2).split("?", 1)[0]
            if path.startswith("/v1/"):
                operation = path[len("/v1/") :].strip("/")
                calls.batch[BATCH_OPERATIONS.get(operation, operation)] += 1
            elif not path.startswith("/moto-api"):
                calls.other += 1
        return calls


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the result table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def dedicated_local_aws(directory: Path, *, keep: bool) -> Iterator[services.LocalAws]:
    """A moto server of the benchmark's own (on the shared Docker engine and job image),
    stopped afterwards by its pid when this block started it (unless ``keep``)."""
    os.environ["BATCHWRIGHT_LOCALAWS_DIR"] = str(directory)
    local, started = services.up(say)
    if not started:
        services.reset(local)  # a leftover of an earlier run: start from a clean slate
    try:
        yield local
    finally:
        if started and not keep:
            # Not services.down(): it also removes every container of the job image, which
            # may belong to other users of the Docker engine. Only our moto server goes.
            with contextlib.suppress(ProcessLookupError):
                os.kill(local.moto_pid, signal.SIGTERM)
            (directory / "state.json").unlink(missing_ok=True)


def synthesize_and_deploy(local: services.LocalAws, work: Path) -> dict[str, str]:
    """``cdk synth`` of the sample app, deployed into ``local``; the stack's outputs."""
    cdk_out = work / "cdk.out"
    env = {
        **os.environ,
        "PATH": f"{REPO / 'node_modules' / '.bin'}{os.pathsep}{REPO / '.venv' / 'bin'}"
        f"{os.pathsep}{os.environ.get('PATH', '')}",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    }
    say("synthesizing the sample app (cdk synth)")
    subprocess.run(
        ["cdk", "synth", "--quiet", "-o", str(cdk_out)],
        cwd=REPO,
        env=env,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )
    say("deploying it into the local AWS")
    template = stack_template(cdk_out, STACK)
    deployment = local_deploy.deploy(
        local, template, STACK, parameters={"DefaultImage": local.image}
    )
    local_deploy.record_stack(local, deployment)
    local_deploy.write_outputs_file(deployment, work / "cdk-outputs.json")
    return dict(deployment.outputs)


def metaflow_python() -> str:
    """The Python of the Metaflow venv, created on first use."""
    venv = Path(os.environ.get("BENCH_METAFLOW_VENV", "/tmp/batchwright-bench-metaflow"))
    python = venv / "bin" / "python"
    probe = (
        subprocess.run([str(python), "-c", "import metaflow, boto3"], capture_output=True)
        if python.exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        say(f"installing {' '.join(METAFLOW_REQUIREMENTS)} into {venv}")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *METAFLOW_REQUIREMENTS],
            check=True,
            timeout=600,
        )
    return str(python)


def timed_run(
    name: str,
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    log: RequestLog,
    timeout: float,
) -> Result:
    """Runs one tool's flow; its wall time and the emulator's requests meanwhile."""
    say(f"running the flow with {name}")
    start = log.offset()
    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    output = cwd / "output.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT first: both tools terminate the jobs they submitted on an interrupt.
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return Result(name, not_measured=f"did not finish within {timeout:.0f} s")
    seconds = time.perf_counter() - started
    load = (load_at_start, os.getloadavg()[0])
    time.sleep(1.0)  # let the server flush the log lines of the last requests
    calls = log.calls_between(start, log.offset())
    if code != 0:
        tail = output.read_text(errors="replace")[-3000:]
        say(f"{name} failed with exit code {code}:\n{tail}")
        return Result(name, not_measured=f"the run failed with exit code {code}")
    return Result(name, seconds, calls, load=load)


def clean_environment(local: services.LocalAws) -> dict[str, str]:
    """This process's variables without any AWS or tool settings, plus the emulator's."""
    prefixes = ("AWS_", "BATCHWRIGHT_", "METAFLOW_")
    # Bytecode caching as on a user's machine: pip compiled Metaflow's modules when it
    # installed them; PYTHONDONTWRITEBYTECODE would make only batchwright recompile.
    dropped = {"PYTHONDONTWRITEBYTECODE"}
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in dropped},
        **local.environment(),
        "PYTHONUNBUFFERED": "1",
    }


def run_batchwright(
    local: services.LocalAws, work: Path, queue: str, width: int, log: RequestLog, timeout: float
) -> Result:
    """The flow with batchwright, against the deployed sample found by its outputs file."""
    folder = work / "batchwright"
    folder.mkdir()
    (folder / "flow.py").write_text(BATCHWRIGHT_FLOW.format(width=width, queue=queue))
    command = [
        sys.executable,
        "flow.py",
        "run",
        "--environment",
        STACK,
        "--outputs-file",
        str(work / "cdk-outputs.json"),
    ]
    return timed_run("batchwright", command, folder, clean_environment(local), log, timeout)


def compute_environment_name(local: services.LocalAws, queue_arn: str) -> str:
    """The name of the first compute environment of a queue, as the emulator holds it."""
    batch = local.client("batch")
    queue = batch.describe_job_queues(jobQueues=[queue_arn])["jobQueues"][0]
    first = min(queue["computeEnvironmentOrder"], key=lambda ce: ce["order"])
    return str(first["computeEnvironment"]).rsplit("/", 1)[-1]


def run_metaflow(
    local: services.LocalAws,
    work: Path,
    profile: dict[str, str],
    width: int,
    log: RequestLog,
    timeout: float,
) -> Result:
    """The flow with Metaflow, configured from the sample's Metaflow profile output."""
    try:
        python = metaflow_python()
    except (subprocess.SubprocessError, OSError) as error:
        return Result("metaflow", not_measured=f"Metaflow could not be installed: {error}")
    folder = work / "metaflow"
    folder.mkdir()
    queue = profile["METAFLOW_BATCH_JOB_QUEUE"]
    job_vars = {
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "AWS_BATCH_CE_NAME": compute_environment_name(local, queue),
        "AWS_BATCH_JQ_NAME": queue.rsplit("/", 1)[-1],
        "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        # Read by the job's bootstrap script (Metaflow does not forward it from the
        # launching process): the image has boto3 and requests, and there is no network
        # to pip install them from.
        "METAFLOW_SKIP_INSTALL_DEPENDENCIES": "1",
        **{k: v for k, v in local.environment().items() if k != "AWS_ENDPOINT_URL"},
    }
    (folder / "flow.py").write_text(METAFLOW_FLOW.format(width=width, job_vars=job_vars))
    env = {
        **clean_environment(local),
        **profile,
        "METAFLOW_HOME": str(folder / "home"),  # no user's ~/.metaflowconfig
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_S3_ENDPOINT_URL": local.endpoint,
        "METAFLOW_BATCH_CONTAINER_IMAGE": local.image,
        # The job image already has Python, boto3 and requests; there is nothing to pip
        # install (and no network to install it from).
        "METAFLOW_SKIP_INSTALL_DEPENDENCIES": "1",
        "USERNAME": "bench",
    }
    # Metaflow refuses a foreach wider than --max-num-splits (its default is 100).
    command = [python, "flow.py", "--no-pylint", "run", "--max-workers", "16"]
    command += ["--max-num-splits", str(max(100, width))]
    return timed_run("metaflow", command, folder, env, log, timeout)


def ratio(numerator: float, denominator: float) -> str:
    """``a/b`` as ``0.12x``, or ``-`` when it is undefined."""
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def report(width: int, results: list[Result]) -> None:
    """The result table on stdout."""
    print(f"{width}-way foreach of @batch(cpu=1, memory=1024) steps on the local AWS (moto)")
    measured = [r for r in results if r.not_measured is None]
    for result in results:
        if result.not_measured is not None:
            print(f"  {result.name:<12} not measured: {result.not_measured}")
    if not measured:
        return
    operations = sorted({op for r in measured for op in r.calls.batch})
    header = f"  {'':<28}" + "".join(f"{r.name:>14}" for r in measured)
    print(header)
    print(f"  {'wall time (s)':<28}" + "".join(f"{r.seconds:>14.1f}" for r in measured))
    print(
        f"  {'load avg at start / end':<28}"
        + "".join(f"{f'{r.load[0]:.1f} / {r.load[1]:.1f}':>14}" for r in measured)
    )
    for operation in operations:
        print(f"  {operation:<28}" + "".join(f"{r.calls.batch[operation]:>14}" for r in measured))
    print(
        f"  {'Batch API calls, total':<28}"
        + "".join(f"{r.calls.batch_total:>14}" for r in measured)
    )
    print(
        f"  {'other requests (S3, Logs)':<28}" + "".join(f"{r.calls.other:>14}" for r in measured)
    )
    by_name = {r.name: r for r in measured}
    if "batchwright" in by_name and "metaflow" in by_name:
        ours, theirs = by_name["batchwright"], by_name["metaflow"]
        print("  ratios batchwright/metaflow:")
        print(f"    wall time         {ratio(ours.seconds, theirs.seconds):>8}  (goal <= 0.50x)")
        print(
            f"    Batch API calls   "
            f"{ratio(ours.calls.batch_total, theirs.calls.batch_total):>8}  (goal <= 0.10x)"
        )
        for operation in ("SubmitJob", "DescribeJobs"):
            print(
                f"    {operation:<17} "
                f"{ratio(ours.calls.batch[operation], theirs.calls.batch[operation]):>8}"
            )


def main() -> int:
    """Bring up the emulator, deploy the sample, run both tools, print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16, help="foreach width (16)")
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds allowed per tool's run (900)"
    )
    parser.add_argument("--skip-metaflow", action="store_true", help="run batchwright only")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder and the emulator running afterwards (for debugging)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"the benchmark's own local AWS state directory ({DEFAULT_STATE_DIR})",
    )
    args = parser.parse_args()

    results: list[Result] = []
    with dedicated_local_aws(args.state_dir, keep=args.keep) as local:
        work = Path(tempfile.mkdtemp(prefix="bench-batch-foreach-"))
        outputs = synthesize_and_deploy(local, work)
        profile: dict[str, Any] = json.loads(outputs["BatchwrightMetaflowProfile"])
        queue = str(profile["METAFLOW_BATCH_JOB_QUEUE"])
        log = RequestLog(Path(local.state_dir) / "moto.log")
        results.append(run_batchwright(local, work, queue, args.width, log, args.timeout))
        if args.skip_metaflow:
            results.append(Result("metaflow", not_measured="skipped (--skip-metaflow)"))
        else:
            profile_env = {k: str(v) for k, v in profile.items()}
            results.append(run_metaflow(local, work, profile_env, args.width, log, args.timeout))
        if args.keep:
            say(f"kept the work folder {work} and the emulator at {local.endpoint}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args.width, results)
    return 0 if all(r.not_measured is None for r in results if r.name == "batchwright") else 1


if __name__ == "__main__":
    sys.exit(main())
