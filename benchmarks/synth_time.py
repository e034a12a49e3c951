"""How long synthesizing the sample app takes, against a one-queue baseline.

Each app runs in a fresh Python process, the way ``cdk synth`` runs it (the jsii runtime's
start-up is part of the cost). The baseline is the smallest useful environment (one
Fargate queue) measured in the same run, so the ratio says what the sample's nine queues
add on this machine. Goal: the sample app under 15 s.

Usage: ``.venv/bin/python benchmarks/synth_time.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 15.0

BASELINE_APP = """
import aws_cdk as cdk
from batchwright_cdk import BatchEnvironmentStack, QueueSpec
app = cdk.App()
BatchEnvironmentStack(app, "Baseline", queues=[QueueSpec.fargate("f")],
                      env=cdk.Environment(region="us-east-1"))
app.synth()
"""


def _environment(outdir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    env["JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION"] = "1"
    env["CDK_OUTDIR"] = outdir  # where App() writes when the CDK CLI is not driving it
    return env


def _time(command: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="batchwright-synth-") as outdir:
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=_environment(outdir), check=True)
        elapsed = time.perf_counter() - started
        if not any(Path(outdir).glob("*.template.json")):
            raise SystemExit(f"{command} wrote no template to {outdir}")
        return elapsed


def main() -> None:
    """Measures and prints the times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per app (median is shown)")
    args = parser.parse_args()
    python = sys.executable
    baseline = [_time([python, "-c", BASELINE_APP]) for _ in range(args.repeat)]
    sample = [_time([python, "sample_app/app.py"]) for _ in range(args.repeat)]
    base, full = statistics.median(baseline), statistics.median(sample)
    print(f"baseline (1 Fargate queue): {base:6.2f} s  (median of {args.repeat})")
    print(f"sample app (9 queues):      {full:6.2f} s  (median of {args.repeat})")
    print(f"ratio sample / baseline:    {full / base:6.2f}x")
    verdict = "meets" if full < GOAL_SECONDS else "MISSES"
    print(f"goal < {GOAL_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
