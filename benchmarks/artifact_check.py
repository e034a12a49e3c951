"""Benchmark: what checking an artifact against its content address costs when it loads.

``FlowDatastore.load`` hashes an artifact's stored bytes (SHA-256) and compares them with
its key before unpickling, so a changed artifact is never unpickled. This script stores
artifacts of several sizes in a local datastore and loads each, interleaved, two ways:

- **checked**: ``FlowDatastore.load`` (read the bytes, hash them, rewind, unpickle);
- **baseline**: the same read and unpickle without the hash (what ``load`` did before).

It prints the median of each, per size, and the ratio checked / baseline, from the same
run. An artifact is a ``bytes`` value (unpickling costs little beyond reading it) and a
list of floats (unpickling costs more), so the ratio shows both ends. On S3 the download
dominates both, so the local datastore is the worst case for the check.

    .venv/bin/python benchmarks/artifact_check.py [--sizes 1,64,256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "runtime")]

from batchwright.datastore import LocalStorage  # noqa: E402
from batchwright.datastore.store import FlowDatastore  # noqa: E402


def _values(mib: int) -> dict[str, Any]:
    floats = mib * 1024 * 1024 // 9  # a pickled float takes 9 bytes
    return {"bytes": os.urandom(mib * 1024 * 1024), "floats": [i * 0.5 for i in range(floats)]}


def _median_seconds(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,64,256", help="artifact sizes in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'artifact':<16}{'checked (ms)':>14}{'baseline (ms)':>15}{'added (ms)':>12}{'ratio':>8}"
    )
    with tempfile.TemporaryDirectory() as folder:
        store = FlowDatastore(LocalStorage(folder), "BenchFlow")
        for mib in (int(size) for size in args.sizes.split(",")):
            for kind, value in _values(mib).items():
                key = store.save(value)
                location = store._artifact_key(key)
                del value

                def baseline(location: str = location) -> Any:
                    with store.storage.open_read(location) as stream:
                        return pickle.load(stream)

                def checked(key: str = key) -> Any:
                    return store.load(key)

                checked()  # warm the page cache for both
                pairs = [
                    (_median_seconds(checked, 1), _median_seconds(baseline, 1))
                    for _ in range(args.repeat)
                ]
                with_check = statistics.median(p[0] for p in pairs)
                without = statistics.median(p[1] for p in pairs)
                print(
                    f"{kind + f' {mib} MiB':<16}{with_check * 1000:>14.1f}{without * 1000:>15.1f}"
                    f"{(with_check - without) * 1000:>12.1f}{with_check / without:>7.2f}x"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
