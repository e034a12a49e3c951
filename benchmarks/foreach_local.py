"""Benchmark: a 200-way foreach of trivial tasks, batchwright vs Metaflow 2.19, locally.

Both flows are the same source apart from the import line, run from a fresh temporary
folder with a local datastore and 16 workers. Prints each wall time, the ratio, and the
peak resident memory of each orchestrator process (VmHWM, sampled from /proc).

Metaflow is installed from PyPI into its own virtual environment (default
``/tmp/batchwright-bench-metaflow``; set ``BENCH_METAFLOW_VENV`` to change it) on the
first run, so it never mixes with the project's environment.

    .venv/bin/python benchmarks/foreach_local.py [--width 200] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

METAFLOW_REQUIREMENT = "metaflow==2.19.*"

FLOW_TEMPLATE = """
{import_line}


class WideForeach(FlowSpec):
    @step
    def start(self):
        self.items = list(range({width}))
        self.next(self.work, foreach="items")

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
    WideForeach()
"""


def metaflow_python() -> str:
    """The Python of the Metaflow venv, creating it on first use."""
    venv = Path(os.environ.get("BENCH_METAFLOW_VENV", "/tmp/batchwright-bench-metaflow"))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing {METAFLOW_REQUIREMENT} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", METAFLOW_REQUIREMENT], check=True
        )
    return str(python)


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process, in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed_run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    """Run ``command``; wall seconds and the orchestrator's peak RSS in KiB."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, peak_rss_kib(process.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-4000:])
        raise SystemExit(f"{command[1]} failed with exit code {process.returncode}")
    return elapsed, peak


def main() -> int:
    """Run both flows and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--skip-metaflow", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-foreach-") as folder:
        base = Path(folder)
        results: dict[str, tuple[float, int]] = {}

        bw_dir = base / "batchwright"
        bw_dir.mkdir()
        (bw_dir / "wide_flow.py").write_text(
            FLOW_TEMPLATE.format(
                import_line="from batchwright import FlowSpec, step", width=args.width
            )
        )
        # Bytecode caching as on a user's machine: pip already compiled Metaflow's modules
        # when it installed them, and PYTHONDONTWRITEBYTECODE would otherwise make every
        # batchwright task recompile its modules from source.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BATCHWRIGHT_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        results["batchwright"] = timed_run(
            [
                sys.executable,
                "wide_flow.py",
                "run",
                "--max-workers",
                str(args.workers),
                "--datastore-root",
                str(bw_dir / "store"),
            ],
            bw_dir,
            env,
        )

        if not args.skip_metaflow:
            mf_dir = base / "metaflow"
            mf_dir.mkdir()
            (mf_dir / "wide_flow.py").write_text(
                FLOW_TEMPLATE.format(
                    import_line="from metaflow import FlowSpec, step", width=args.width
                )
            )
            mf_env = {
                **env,
                "USERNAME": "bench",
                "METAFLOW_DEFAULT_DATASTORE": "local",
                "METAFLOW_DEFAULT_METADATA": "local",
                "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(mf_dir),
            }
            results["metaflow"] = timed_run(
                [
                    metaflow_python(),
                    "wide_flow.py",
                    "--no-pylint",
                    "run",
                    "--max-workers",
                    str(args.workers),
                    "--max-num-splits",
                    str(args.width + 1),
                ],
                mf_dir,
                mf_env,
            )

    print(f"{args.width}-way foreach, {args.workers} workers, local datastore")
    for name, (seconds, peak) in results.items():
        per_task = seconds / (args.width + 3) * 1000
        print(
            f"  {name:<12} {seconds:7.2f} s  ({per_task:5.1f} ms/task)  "
            f"orchestrator peak RSS {peak / 1024:6.1f} MiB"
        )
    if "metaflow" in results:
        ratio = results["batchwright"][0] / results["metaflow"][0]
        print(f"  ratio batchwright/metaflow: {ratio:.2f}x (goal <= 0.15x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
