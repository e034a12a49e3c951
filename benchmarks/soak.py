"""Soak: 100 @batch tasks on the local AWS with every fault of real AWS injected at random.

One run of this script:

1. starts a local AWS of its own (a dedicated moto server on the machine's Docker engine)
   and deploys the sample environment into it;
2. runs a flow of ``--width`` (100) foreach members, each a ``@retry(times=2)`` ``@batch``
   step (so it lands on a Spot queue), once without faults: the baseline;
3. runs it again with the orchestrator behind a fault proxy
   (:class:`batchwright_localaws.faults.FaultProxy`) that, at random: answers a share of
   calls with throttling, 500, 503 or a reset; hides new jobs from DescribeJobs for a
   while; shows a capacity shortage on waiting jobs (which moto's state manager keeps
   waiting); reclaims Spot capacity under running jobs; cuts the orchestrator off from
   every endpoint for a window; and SIGKILLs the orchestrator once, after which the run
   is resumed (under the same faults);
4. prints the faults injected, the tasks lost, the duplicate jobs, the user retries used
   by infrastructure faults (each must be 0) and the wall times with their ratio.

    .venv/bin/python benchmarks/soak.py [--width 100] [--seed N] [--skip-baseline]

The exit code is 1 when a figure that must be 0 is not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
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
from batchwright.batch.jobenv import JOB_ENDPOINT_VARIABLE  # noqa: E402
from batchwright.batch.options import BatchOptions  # noqa: E402
from batchwright.client import Flow  # noqa: E402
from batchwright.environment.descriptor import EnvironmentDescriptor  # noqa: E402
from batchwright.environment.routing import route  # noqa: E402
from batchwright_localaws import services  # noqa: E402
from batchwright_localaws.faults import FaultProxy  # noqa: E402

STACK = "BatchwrightSample"
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "batchwright-soak-localaws"
CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [c5.xlarge]"
)

FLOW = """
import random
import time

from batchwright import FlowSpec, Parameter, batch, current, retry, step


class SoakFlow(FlowSpec):
    width = Parameter("width", default=100)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @retry(times=2, minutes_between_retries=0)
    @batch(cpu=1, memory=512)
    @step
    def work(self):
        time.sleep(random.Random(self.input).uniform(2, 8))
        self.square = self.input * self.input
        self.retry_count = current.retry_count
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.retries = sum(i.retry_count for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("done", len(self.squares))


if __name__ == "__main__":
    SoakFlow()
"""


@dataclass
class Outcome:
    """One run of the flow (with its resume, when it was killed)."""

    seconds: float
    run_ids: list[str]
    final_run: str | None
    faults: Counter[str] = field(default_factory=Counter)
    output: str = ""


def _run_ids(text: str) -> list[str]:
    return re.findall(r"Run \w+/(\d+) started", text)


def _start(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_flow(
    folder: Path,
    env: dict[str, str],
    width: int,
    *,
    kill_after: float | None,
    timeout: float,
) -> Outcome:
    """Runs the flow; SIGKILLs it after ``kill_after`` seconds (then resumes it)."""
    started = time.perf_counter()
    command = [sys.executable, "flow.py"]
    process = _start([*command, "run", "--width", str(width)], folder, env)
    faults: Counter[str] = Counter()
    output = ""
    if kill_after is not None:
        try:
            output, _ = process.communicate(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            output, _ = process.communicate()
            faults["orchestrator killed"] += 1
            say(f"killed the orchestrator after {kill_after:.0f} s; resuming")
            origin = _run_ids(output)[-1]
            process = _start([*command, "resume", origin], folder, env)
    rest, _ = process.communicate(timeout=timeout)
    output += rest
    seconds = time.perf_counter() - started
    ids = _run_ids(output)
    final = ids[-1] if ids and process.returncode == 0 else None
    if process.returncode != 0:
        say(f"the run failed with exit code {process.returncode}:\n{output[-4000:]}")
    return Outcome(seconds, ids, final, faults, output)


def _jobs(local: services.LocalAws, run_ids: set[str]) -> list[dict[str, Any]]:
    """The emulator's own records of every job of these runs (array children included)."""
    jobs = local.job_records()
    runs = {j["jobId"]: (j.get("tags") or {}).get("batchwright:run") for j in jobs}
    return [j for j in jobs if runs.get(j["jobId"].split(":")[0]) in run_ids]


def faulty_run(
    local: services.LocalAws,
    folder: Path,
    env: dict[str, str],
    descriptor: EnvironmentDescriptor,
    width: int,
    seed: int,
    timeout: float,
) -> tuple[Outcome, Counter[str]]:
    """The flow under random faults; the outcome and the proxy's injected faults."""
    rng = random.Random(seed)
    options = BatchOptions.from_attributes("work", {"cpu": 1, "memory": 512})
    spot = route(options, descriptor, has_retry=True).queue
    assert spot is not None
    with FaultProxy(local.endpoint, seed=seed) as proxy:
        proxy.set_error_rate(rng.uniform(0.03, 0.08))
        proxy.hide_new_jobs(rng.uniform(5, 15))
        proxy.waiting_reason(CAPACITY)
        proxy.reclaim(spot.name, count=rng.randint(3, 8))
        outage_at, outage_for = rng.uniform(20, 60), rng.uniform(15, 40)
        timer = threading.Timer(outage_at, proxy.outage, [outage_for])
        timer.start()
        faulty_env = {
            **env,
            "AWS_ENDPOINT_URL": proxy.endpoint,
            JOB_ENDPOINT_VARIABLE: local.endpoint,
        }
        services.moto_api(
            local,
            "state-manager/set-transition",
            {"model_name": "batch::job", "transition": {"progression": "time", "seconds": 2}},
        )
        try:
            outcome = run_flow(
                folder, faulty_env, width, kill_after=rng.uniform(30, 90), timeout=timeout
            )
        finally:
            timer.cancel()
            services.moto_api(local, "state-manager/unset-transition", {"model_name": "batch::job"})
        stats = proxy.stats
        injected = Counter(stats.injected)
        injected["spot reclaim"] += len(stats.reclaimed)
        injected["job record hidden after submit"] += stats.hidden
        injected["capacity reason shown"] += stats.waiting_reasons
        injected.update(outcome.faults)
    return outcome, injected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args()
    say(f"seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="batchwright-soak-") as scratch:
        work = Path(scratch)
        with dedicated_local_aws(args.state_dir, keep=False) as local:
            synthesize_and_deploy(local, work)
            outputs = json.loads((work / "cdk-outputs.json").read_text())[STACK]
            descriptor = EnvironmentDescriptor.from_json(outputs["BatchwrightEnvironment"])
            env = {
                **clean_environment(local),
                "BATCHWRIGHT_ENVIRONMENT": STACK,
                "BATCHWRIGHT_OUTPUTS_FILE": str(work / "cdk-outputs.json"),
            }
            baseline = None
            if not args.skip_baseline:
                folder = work / "baseline"
                folder.mkdir()
                (folder / "flow.py").write_text(FLOW)
                say(f"baseline: {args.width} tasks, no faults")
                baseline = run_flow(folder, env, args.width, kill_after=None, timeout=args.timeout)
            folder = work / "faults"
            folder.mkdir()
            (folder / "flow.py").write_text(FLOW)
            say(f"soak: {args.width} tasks under random faults")
            load = os.getloadavg()[0]
            outcome, injected = faulty_run(
                local, folder, env, descriptor, args.width, args.seed, args.timeout
            )
            jobs = _jobs(local, set(outcome.run_ids))
            # The client reads the emulator's S3 like the runs did.
            os.environ.update(local.environment())
            return report(args, baseline, outcome, injected, jobs, descriptor, load)


def report(
    args: argparse.Namespace,
    baseline: Outcome | None,
    outcome: Outcome,
    injected: Counter[str],
    jobs: list[dict[str, Any]],
    descriptor: EnvironmentDescriptor,
    load: float,
) -> int:
    """Prints the figures; 1 when one that must be 0 is not."""
    done: list[Any] = []
    user_retries = 0
    if outcome.final_run is not None:
        run = Flow("SoakFlow", datastore_root=descriptor.datastore_root)[outcome.final_run]
        done = [t for t in run["work"] if t.successful]
        user_retries = int(run["join"].task.data.retries)
    lost = args.width - len(done)
    # Each job that ran one task: an array child ("<parent>:<i>"), or a single job of the
    # step (a member submitted again alone after a reclaim).
    children = [j for j in jobs if ":" in j["jobId"]]
    singles = [
        j
        for j in jobs
        if ":" not in j["jobId"]
        and not j.get("arrayProperties")
        and j.get("tags", {}).get("batchwright:step") == "work"
    ]
    succeeded = [j for j in children + singles if j["status"] == "SUCCEEDED"]
    duplicates = max(0, len(succeeded) - len(done))
    print(f"seed {args.seed}; load average at the start {load:.2f}; width {args.width}")
    print("faults injected:")
    for kind, count in sorted(injected.items()):
        print(f"  {kind:22} {count}")
    print(f"tasks lost (must be 0):                        {lost}")
    print(f"duplicate jobs (must be 0):                    {duplicates}")
    print(f"user retries used by infrastructure faults (0): {user_retries}")
    print(f"jobs in the emulator: {len(singles) + len(children)} ({len(succeeded)} succeeded)")
    print(f"wall time with faults: {outcome.seconds:.1f} s")
    if outcome.final_run is None:
        print("the run under faults did not finish: see its output above")
        print(outcome.output[-3000:])
    if baseline is not None and baseline.final_run is not None:
        print(f"wall time without faults (baseline): {baseline.seconds:.1f} s")
        print(f"ratio with/without faults: {outcome.seconds / baseline.seconds:.2f}x")
    return 0 if (lost, duplicates, user_retries) == (0, 0, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
