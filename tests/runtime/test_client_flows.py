"""The client on runs made by the local runtime: a missing flow, and the namespace of
the user who ran the flow."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwright import client
from batchwright.client import (
    Flow,
    FlowNotFound,
    MetaflowNamespaceMismatch,
    Task,
    get_metadata,
    namespace,
)
from batchwright.datastore import ROOT_VARIABLE

from ._support import SAMPLE_FLOWS, RunFlow, write_flow


@pytest.fixture(autouse=True)
def fresh_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No metadata() or namespace() choice; the flows run, and the client reads, as alice."""
    monkeypatch.setattr(client, "_settings", client._ClientSettings())
    monkeypatch.setenv("LOGNAME", "alice")  # getpass.getuser() reads LOGNAME first
    yield


def test_a_flow_that_never_ran_is_not_found_in_the_datastore_runs_use(
    run_flow: RunFlow, datastore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_flow(SAMPLE_FLOWS / "linear_flow.py", "run")
    assert result.returncode == 0, result.output
    monkeypatch.setenv(ROOT_VARIABLE, str(datastore))
    assert get_metadata() == f"local@{datastore}"
    assert Flow("LinearFlow").latest_run is not None
    with pytest.raises(FlowNotFound) as raised:
        Flow("LinerFlow")
    assert str(raised.value).startswith(
        f"Flow('LinerFlow') not found: there are no runs of 'LinerFlow' in {datastore}. "
    )


def test_a_run_is_in_the_namespace_of_the_user_who_started_it(
    run_flow: RunFlow, datastore: Path
) -> None:
    result = run_flow(SAMPLE_FLOWS / "linear_flow.py", "run")
    assert result.returncode == 0, result.output
    run = Flow("LinearFlow", str(datastore)).latest_run
    assert run is not None and run.id == result.run_id
    assert {"user:alice", "runtime:batchwright"} <= run.tags
    assert run.data is not None and run.data.total == 14

    namespace("user:bob")
    as_bob = Flow("LinearFlow", str(datastore))
    assert as_bob.latest_run is None
    assert as_bob.runs() == []
    with pytest.raises(MetaflowNamespaceMismatch, match=r"is not in the namespace 'user:bob'"):
        as_bob[str(result.run_id)]
    with pytest.raises(MetaflowNamespaceMismatch):
        Task(f"LinearFlow/{result.run_id}/end/{run['end'].task.id}", datastore_root=str(datastore))

    namespace(None)
    everyone = Flow("LinearFlow", str(datastore))
    assert [r.id for r in everyone] == [result.run_id]


INSIDE_FLOW = """
from batchwright import Flow, FlowSpec, current, get_metadata, get_namespace, step


class InsideFlow(FlowSpec):
    @step
    def start(self):
        run = Flow(current.flow_name)[current.run_id]
        print("inside", run.id, get_metadata(), get_namespace())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    InsideFlow()
"""


def test_the_client_inside_a_step_reads_the_run_it_belongs_to(tmp_path: Path) -> None:
    # Only --datastore-root says where the run is: a job in a container has no variable.
    flow_file = write_flow(tmp_path, "inside_flow", INSIDE_FLOW)
    store = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k not in (ROOT_VARIABLE, "BATCHWRIGHT_USER")}
    done = subprocess.run(
        [sys.executable, str(flow_file), "run", "--datastore-root", str(store)],
        cwd=tmp_path,
        env={**env, "LOGNAME": "alice", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = Flow("InsideFlow", str(store)).latest_run.id  # type: ignore[union-attr]
    assert f"inside {run_id} local@{store} user:alice" in done.stdout
