"""Artifact sizes from the storage (``dump`` shows them without downloading the blob)."""

from __future__ import annotations

import argparse
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from batchwright.cli.command import FlowCommand
from batchwright.cli.dump import configure_dump, handle_dump
from batchwright.console import Console
from batchwright.datastore import FlowDatastore, LocalStorage, open_datastore
from batchwright.datastore.s3 import S3Storage


def test_local_size_is_the_files_size(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("a/b/blob", b"x" * 1234)
    assert storage.size("a/b/blob") == 1234
    with pytest.raises(FileNotFoundError):
        storage.size("a/b/missing")
    store = FlowDatastore(storage, "SizeFlow")
    key = store.save("y" * 5000)
    location = tmp_path / "SizeFlow" / "data" / key[:2] / key
    assert store.artifact_size(key) == location.stat().st_size > 5000
    assert store.artifact_size("0" * 64) is None


def _count_s3_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the S3 operations of every client :mod:`batchwright.aws` makes from now on:
    by operation, and by ``"GetObject data"`` for downloads of artifact blobs."""
    import batchwright.aws

    calls: Counter[str] = Counter()
    make = batchwright.aws.client

    def counting_client(service: str, **kwargs: Any) -> Any:
        made = make(service, **kwargs)

        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            calls[model.name] += 1
            if "/data/" in str(params.get("Key", "")):
                calls[f"{model.name} data"] += 1

        made.meta.events.register("before-parameter-build.s3", count)
        return made

    monkeypatch.setattr(batchwright.aws, "client", counting_client)
    return calls


def test_s3_size_is_a_head_object(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_s3_calls(monkeypatch)
    storage = S3Storage("s3://runs/team")
    storage.write_bytes("a/blob", b"x" * 4321)
    calls.clear()
    assert storage.size("a/blob") == 4321
    with pytest.raises(FileNotFoundError):
        storage.size("a/missing")
    assert calls == Counter({"HeadObject": 2})  # a key without /data/
    # The counter sees downloads: a read is a GetObject.
    assert storage.read_bytes("a/blob") == b"x" * 4321
    assert calls["GetObject"] == 1


def _dump(flow_name: str, root: str, *words: str) -> list[str]:
    out = io.StringIO()
    command = FlowCommand(
        flow_class=type(flow_name, (), {}), flow_file="flow.py", console=Console(out, out)
    )
    parser = argparse.ArgumentParser()
    configure_dump(parser, command)
    args = parser.parse_args([*words, "--datastore-root", root])
    assert handle_dump(args, command) == 0
    return out.getvalue().splitlines()


def test_dump_of_a_large_artifact_on_s3_downloads_nothing(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = "s3://runs/flows"
    store = open_datastore("SizeFlow", root)
    big, small = os.urandom(3 * 1024 * 1024), [1, 2, 3]
    artifacts = {"big": store.save(big), "small": store.save(small)}
    store.write_run("1", {"status": "succeeded"})
    store.write_metadata("1", "start", "1", 0, {"attempt": 0, "artifacts": artifacts})
    store.mark_done("1", "start", "1", 0)
    calls = _count_s3_calls(monkeypatch)

    # Sizes alone: no artifact is downloaded, whatever its size.
    lines = _dump("SizeFlow", root, "--max-value-size", "0", "1/start")
    assert lines[1:] == [
        f"big [size: {store.artifact_size(artifacts['big'])}]",
        f"small [size: {store.artifact_size(artifacts['small'])}]",
    ]
    assert calls["HeadObject data"] == 2
    assert calls["GetObject data"] == 0
    assert calls["GetObject"] > 0  # the run's records (DONE, metadata.json) are read

    # The default: the large one is not shown (and not downloaded), the small one is.
    lines = _dump("SizeFlow", root, "1/start")
    assert lines[1].startswith("big [size: 3") and "<not shown:" in lines[1]
    assert lines[2].endswith("type: list] = [1, 2, 3]")
    assert calls["GetObject data"] == 1  # 'small' alone, to show its value

    # --file writes every value, whatever its size (the same keys and values as before).
    import pickle

    target = tmp_path / "out.pkl"
    _dump("SizeFlow", root, "--file", str(target), "1/start")
    assert pickle.loads(target.read_bytes()) == {"1/start/1": {"big": big, "small": small}}
