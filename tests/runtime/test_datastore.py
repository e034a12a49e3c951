"""The datastore: content-addressed artifacts, task records, local and S3 storage."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright.datastore import FlowDatastore, LocalStorage, default_root, open_storage
from batchwright.datastore.s3 import S3Storage, split_s3_url
from batchwright.errors import UserInputError


@pytest.fixture
def s3_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Storage]:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="flows")
        yield S3Storage("s3://flows/team/datastore")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    return request.getfixturevalue("s3_storage")


def test_identical_values_are_stored_once(storage: Any) -> None:
    store = FlowDatastore(storage, "DemoFlow")
    first = store.save({"a": [1, 2, 3]})
    again = FlowDatastore(storage, "DemoFlow").save({"a": [1, 2, 3]})
    other = store.save({"a": [1, 2]})
    assert first == again != other
    assert len(first) == 64
    assert storage.list_children(f"DemoFlow/data/{first[:2]}") == [first]
    assert store.load(first) == {"a": [1, 2, 3]}


def test_large_artifacts_round_trip(storage: Any) -> None:
    store = FlowDatastore(storage, "DemoFlow")
    big = os.urandom(20 * 1024 * 1024)  # above the in-memory spool limit
    key = store.save(big)
    assert store.load(key) == big


def test_task_records_and_done_marker(storage: Any) -> None:
    store = FlowDatastore(storage, "DemoFlow")
    store.write_run("12", {"status": "running"})
    store.write_metadata("12", "start", "1", 0, {"artifacts": {"x": "k"}})
    assert store.read_metadata("12", "start", "1") is None  # not done yet
    store.write_log("12", "start", "1", 0, "stdout", io.BytesIO(b"hello\n"))
    store.mark_done("12", "start", "1", 0)
    assert store.read_metadata("12", "start", "1") == {"layout_version": 1, "artifacts": {"x": "k"}}
    assert store.read_log("12", "start", "1", 0, "stdout") == b"hello\n"
    assert store.list_runs() == ["12"]
    assert store.list_steps("12") == ["start"]
    assert store.list_tasks("12", "start") == ["1"]
    assert store.list_attempts("12", "start", "1") == [0]
    assert store.read_run("12")["status"] == "running"  # type: ignore[index]

    cloned = store.clone_task("12", "13", "start", "1", {"cloned": True})
    assert cloned["run_id"] == "13" and cloned["cloned"] is True
    assert store.read_done("13", "start", "1") == {"attempt": 0}
    assert store.read_log("13", "start", "1", 0, "stdout") == b"hello\n"


def test_finished_tasks_come_from_one_listing(storage: Any) -> None:
    store = FlowDatastore(storage, "DemoFlow")
    # Task 2 finished at once, 3 on its second attempt, 4 failed, 5 has not ended, 6
    # finished at attempt 0 after a later attempt had failed (the marker says which).
    for task_id, attempts in {"2": [0], "3": [0, 1], "4": [0], "5": [], "6": [0, 1]}.items():
        for attempt in attempts:
            ok = (task_id, attempt) in {("2", 0), ("3", 1), ("6", 0)}
            status = "succeeded" if ok else "failed"
            store.write_metadata("12", "work", task_id, attempt, {"status": status, "n": attempt})
            store.write_log("12", "work", task_id, attempt, "stdout", io.BytesIO(b"x"))
    for task_id, attempt in (("2", 0), ("3", 1), ("6", 0)):
        store.mark_done("12", "work", task_id, attempt)
    assert sorted(storage.list_keys("DemoFlow/runs/12/work/3")) == [
        "0/metadata.json", "0/stdout.log", "1/metadata.json", "1/stdout.log", "DONE",
    ]  # fmt: skip
    finished = store.finished_attempts("12", "work")
    assert finished == {"2": 0, "3": 1, "6": 1}  # 6: the highest attempt, checked below
    for task_id in ("2", "3", "6"):
        metadata = store.finished_metadata("12", "work", task_id, finished[task_id])
        assert metadata == store.read_metadata("12", "work", task_id)
    assert store.finished_metadata("12", "work", "4", None) is None
    assert store.finished_attempts("12", "nothing") == {}


def test_runs_sort_numerically(tmp_path: Path) -> None:
    store = FlowDatastore(LocalStorage(tmp_path), "DemoFlow")
    for run_id in ("9", "10", "100"):
        store.write_run(run_id, {})
    assert store.list_runs() == ["9", "10", "100"]


def test_root_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BATCHWRIGHT_DATASTORE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_root() == str(tmp_path / ".batchwright")
    monkeypatch.setenv("BATCHWRIGHT_DATASTORE_ROOT", "/data/store")
    assert default_root() == "/data/store"
    assert default_root("s3://b/p") == "s3://b/p"
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)


def test_s3_urls() -> None:
    assert split_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(UserInputError, match="names no bucket"):
        split_s3_url("s3:///prefix")


def test_a_datastore_at_the_bucket_root_lists_its_flows(s3_storage: S3Storage) -> None:
    root = S3Storage("s3://flows")  # the fixture's bucket, without a prefix
    root.write_bytes("DemoFlow/1/_run.json", b"{}")
    root.write_bytes("OtherFlow/2/_run.json", b"{}")
    assert root.list_children("") == ["DemoFlow", "OtherFlow"]
    assert root.list_children("DemoFlow") == ["1"]
    assert root.list_keys("DemoFlow") == ["1/_run.json"]


def test_s3_missing_objects(s3_storage: S3Storage) -> None:
    assert s3_storage.read_bytes("nope") is None
    assert not s3_storage.exists("nope")
    with pytest.raises(FileNotFoundError):
        s3_storage.open_read("nope")
    s3_storage.write_bytes("a/b/c.json", b"{}")
    assert s3_storage.list_children("a") == ["b"]
    assert s3_storage.list_children("a/b") == ["c.json"]


# --- renewal of reused objects (lifecycle expiry counts from the last use) -----------------


def _last_modified(storage: S3Storage, key: str) -> Any:
    import boto3

    return boto3.client("s3").head_object(Bucket="flows", Key=f"team/datastore/{key}")[
        "LastModified"
    ]


def test_an_old_object_a_new_run_reuses_is_renewed_and_a_recent_one_is_not(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as real

    from batchwright.datastore import s3 as s3_module

    store = FlowDatastore(s3_storage, "Flow")
    key = store.save({"weights": list(range(100))})
    location = f"Flow/data/{key[:2]}/{key}"
    written = _last_modified(s3_storage, location)
    time.sleep(1.1)  # S3 times have whole seconds
    assert FlowDatastore(s3_storage, "Flow").save({"weights": list(range(100))}) == key
    assert _last_modified(s3_storage, location) == written  # reused within a week: untouched

    class EightDaysLater(real.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.datetime.now(tz) + s3_module.RENEW_AFTER + real.timedelta(days=1)

    monkeypatch.setattr(s3_module, "datetime", EightDaysLater)
    assert FlowDatastore(s3_storage, "Flow").save({"weights": list(range(100))}) == key
    renewed = _last_modified(s3_storage, location)
    assert renewed > written
    assert FlowDatastore(s3_storage, "Flow").load(key) == {"weights": list(range(100))}
    assert s3_storage.keep("Flow/data/00/missing") is False
