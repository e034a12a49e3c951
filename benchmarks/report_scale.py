"""Benchmark: what timing every attempt costs a run, and what a report of a wide run costs.

Three questions, each answered with a ratio from the same run:

1. **Recording.** The scheduler keeps a record per attempt and writes them in chunks
   (:class:`batchwright.timings.TimingRecorder`). Baseline: the one metadata write every
   task already makes at its end (``FlowDatastore.write_metadata``), on the same storage.
   The ratio is the recorder's cost per attempt over that write's.
2. **Reading.** ``read_timeline`` of a run whose array children were never described
   (half the attempts lack a start, so their task metadata is read), 10,000 attempts
   against 1,000: a ratio near 10 means it grows linearly.
3. **Rendering.** ``render_report`` at 10,000 attempts (aggregated timeline) against
   1,000 (one bar per attempt): time, page size and peak Python memory (tracemalloc).

A local datastore in a temporary folder: S3 adds a round trip per chunk and per metadata
read, which the chunking and the thread pool of ``read_timeline`` are there to bound.

    .venv/bin/python benchmarks/report_scale.py [--sizes 1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "runtime")]

from batchwright.datastore import open_datastore  # noqa: E402
from batchwright.datastore.store import FlowDatastore  # noqa: E402
from batchwright.report import render_report  # noqa: E402
from batchwright.timings import AttemptTiming, TimingRecorder, read_timeline  # noqa: E402

FLOW = "ScaleFlow"


def _attempt(i: int, described: bool) -> AttemptTiming:
    submitted = 1_000.0 + (i % 100)
    return AttemptTiming(
        "work",
        str(i + 2),
        0,
        submitted_at=submitted,
        stopped_at=submitted + 400.0,
        state="succeeded",
        backend="batch",
        started_at=submitted + 30.0 if described else None,
        queue="cpu-spot",
        platform="SPOT",
        region="us-east-1",
        instance_type="m5.large",
        instance_type_source="plan",
        vcpus=1.0,
        memory_mib=2048,
    )


def _metadata(i: int) -> dict[str, Any]:
    return {"attempt": 0, "started_at": 1_030.0 + (i % 100), "finished_at": 1_390.0 + (i % 100)}


def _seed(root: str, run_id: str, count: int) -> FlowDatastore:
    store = open_datastore(FLOW, root)
    store.write_run(run_id, {"status": "succeeded", "started_at": 1_000.0, "finished_at": 2_000.0})
    recorder = TimingRecorder(store, run_id)
    for i in range(count):
        described = i % 2 == 0
        recorder.record(_attempt(i, described))
        if not described:
            store.write_metadata(run_id, "work", str(i + 2), 0, _metadata(i))
    recorder.flush()
    return store


def _median(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _recording(root: str, count: int, repeat: int) -> tuple[float, float]:
    """Seconds per attempt: the recorder (record + its flushes), and one metadata write."""
    store = open_datastore(FLOW, root)
    timings = [_attempt(i, True) for i in range(count)]

    def record() -> None:
        recorder = TimingRecorder(store, f"rec-{time.perf_counter_ns()}")
        for timing in timings:
            recorder.record(timing)
        recorder.flush()

    def metadata() -> None:
        run = f"meta-{time.perf_counter_ns()}"
        for i in range(count):
            store.write_metadata(run, "work", str(i), 0, _metadata(i))

    return _median(record, repeat) / count, _median(metadata, repeat) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="attempts: baseline,wide")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    small, wide = (int(x) for x in args.sizes.split(","))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as root:
        recorder, write = _recording(root, small, args.repeat)
        print(
            f"recording: {recorder * 1e6:.1f} us per attempt; one task metadata write "
            f"{write * 1e6:.1f} us; ratio {recorder / write:.3f}"
        )
        results = {}
        for count in (small, wide):
            run_id = str(count)
            store = _seed(root, run_id, count)
            read = _median(lambda s=store, r=run_id: read_timeline(s, r), args.repeat)
            timeline = read_timeline(store, run_id)
            assert len(timeline) == count and all(t.started_at is not None for t in timeline)
            record = store.read_run(run_id) or {}
            render = _median(
                lambda t=timeline, r=record, c=count: render_report(FLOW, str(c), r, t),
                args.repeat,
            )
            tracemalloc.start()
            page = render_report(FLOW, run_id, record, timeline)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            results[count] = (read, render, len(page), peak)
            print(
                f"{count:>6} attempts: read_timeline {read * 1000:8.1f} ms, render "
                f"{render * 1000:8.1f} ms, page {len(page) / 1e6:5.2f} MB, peak "
                f"{peak / 1e6:6.1f} MB"
            )
        (r1, g1, s1, m1), (r2, g2, s2, m2) = results[small], results[wide]
        print(
            f"ratios {wide}/{small}: read {r2 / r1:.2f}, render {g2 / g1:.2f}, page size "
            f"{s2 / s1:.2f}, peak memory {m2 / m1:.2f} (attempts x{wide / small:g})"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
