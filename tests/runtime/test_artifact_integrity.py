"""Artifacts are checked on load: their keys are their SHA-256, so bytes changed after
they were written are refused before they are unpickled (unpickling runs code), with an
error that names the artifact and the task, in the client and inside a step alike; a
step that meets one fails without retrying."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from batchwright.client import Flow, Task
from batchwright.datastore import FlowDatastore, LocalStorage
from batchwright.entrypoint import DoNotRetry
from batchwright.errors import ArtifactIntegrityError

from ._support import RunFlow


class _Planted:
    """A pickle that creates a file when it is unpickled: what a swapped artifact could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _swap(store: FlowDatastore, key: str, value: Any) -> None:
    path = Path(store.storage.root) / store._artifact_key(key)
    path.write_bytes(pickle.dumps(value))


def test_a_changed_artifact_is_never_unpickled(tmp_path: Path) -> None:
    store = FlowDatastore(LocalStorage(str(tmp_path / "store")), "F")
    key = store.save({"weights": [1, 2, 3]})
    assert store.load(key) == {"weights": [1, 2, 3]}
    planted = tmp_path / "planted"
    _swap(store, key, _Planted(str(planted)))
    with pytest.raises(ArtifactIntegrityError) as refused:
        store.load(key, "artifact 'model' of task F/3/train/2")
    message = str(refused.value)
    assert message.startswith(
        f"artifact 'model' of task F/3/train/2 is stored under its SHA-256 {key}"
    )
    assert f"{tmp_path / 'store'}/F/data/{key[:2]}/{key} have SHA-256" in message
    assert not planted.exists()
    assert isinstance(refused.value, DoNotRetry)


FLOW = textwrap.dedent(
    """
    from batchwright import FlowSpec, retry, step


    class SwappedFlow(FlowSpec):
        @step
        def start(self):
            self.model = [1, 2, 3]
            self.next(self.end)

        @retry(times=2, minutes_between_retries=0)
        @step
        def end(self):
            print("model", self.model)


    if __name__ == "__main__":
        SwappedFlow()
    """
)


def test_a_step_and_the_client_refuse_a_changed_artifact(
    tmp_path: Path, datastore: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = tmp_path / "swapped_flow.py"
    flow_file.write_text(FLOW)
    first = run_flow(flow_file, "run")
    assert first.returncode == 0, first.output
    monkeypatch.setenv("BATCHWRIGHT_DATASTORE_ROOT", str(datastore))
    run = Flow("SwappedFlow")[first.run_id]
    start = run["start"].task
    key = start["model"].key
    store = FlowDatastore(LocalStorage(str(datastore)), "SwappedFlow")
    planted = tmp_path / "planted"
    _swap(store, key, _Planted(str(planted)))

    with pytest.raises(ArtifactIntegrityError) as refused:
        _ = Task(start.pathspec)["model"].data
    assert str(refused.value).startswith(
        f"artifact 'model' of task {start.pathspec} is stored under its SHA-256 {key}"
    )

    # Rerun 'end', which reads the changed artifact: one attempt, despite @retry.
    resumed = run_flow(flow_file, "resume", "end")
    assert resumed.returncode == 1, resumed.output
    assert (
        f"artifact 'model' of task SwappedFlow/{resumed.run_id}/end/" in resumed.output
        and f"is stored under its SHA-256 {key}" in resumed.output
    ), resumed.output
    assert "failed in a way a retry cannot fix" in resumed.output
    end = Flow("SwappedFlow")[resumed.run_id]["end"].task
    assert end._attempt == 0
    assert not planted.exists()
