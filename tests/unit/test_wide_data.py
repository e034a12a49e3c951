"""Data at width: each foreach child reads only its own item; a join over many inputs
reads ahead in parallel and keeps no view it does not need."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from batchwright.datastore import FlowDatastore, LocalStorage
from batchwright.datastore.s3 import S3Storage
from batchwright.flowspec import Inputs


class CountingStorage(LocalStorage):
    """A local folder that counts reads and the bytes they return."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0
        self.bytes = 0

    def read_range(self, key: str, start: int, end: int) -> bytes:
        data = super().read_range(key, start, end)
        self.reads += 1
        self.bytes += len(data)
        return data


def test_a_child_reads_its_own_item_in_two_small_reads(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    store = FlowDatastore(storage, "F")
    items = [{"shard": i, "payload": "x" * 100} for i in range(10_000)]
    key = store.save_split(items)
    assert store.save_split(items) == key  # content-addressed: stored once
    assert store.load_item(key, 1234) == items[1234]
    assert store.load_item(key, 0) == items[0] and store.load_item(key, 9999) == items[9999]
    assert storage.reads == 6  # two per item
    assert storage.bytes < 3 * 400  # not the 10,000 items


def test_ranged_reads_from_s3() -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="split-items")
        store = FlowDatastore(
            S3Storage("s3://split-items/p", client=boto3.client("s3", region_name="us-east-1")), "F"
        )
        key = store.save_split(list(range(500)))
        assert [store.load_item(key, i) for i in (0, 7, 499)] == [0, 7, 499]


class Loader:
    """Artifacts by key; records which thread loaded each."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def load(self, key: str, what: str = "") -> Any:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        return self.values[key]

    def load_item(self, split_key: str, index: int) -> Any:
        raise AssertionError("not used here")


def test_iterating_a_join_reads_ahead_in_parallel() -> None:
    count = 200
    loader = Loader({f"k{i}": i * i for i in range(count)})
    metadata = [
        {"step": "work", "task_id": str(i), "artifacts": {"square": f"k{i}"}} for i in range(count)
    ]
    inputs = Inputs(metadata, loader)
    assert [i.square for i in inputs] == [i * i for i in range(count)]
    assert len(loader.threads) == count  # each input's artifact read once
    # After the first input showed which artifact the join reads, the rest were read
    # ahead by the pool.
    assert sum(name != threading.main_thread().name for name in loader.threads) > count / 2
    assert not hasattr(inputs, "_views")  # views are made on demand, not kept
    assert inputs.work.square == 0 and inputs[-1].square == (count - 1) ** 2
