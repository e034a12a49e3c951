"""Read runs back: ``Flow("Name").latest_run["end"].task.data.x``.

The client finds the datastore the way ``run`` does: the root given, else
``BATCHWRIGHT_DATASTORE_ROOT``, else the datastore of the environment discovery finds
(``--environment``'s sources: ``$BATCHWRIGHT_ENVIRONMENT``, ``cdk.json``, the outputs
file...), where runs with ``@batch`` steps keep their data, then ``.batchwright`` under
the working directory; the first of them that holds runs of the flow is used. There are
no namespaces: every run of the flow in that datastore is visible. Unpickling
an artifact of a class defined in the flow file needs that file importable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from batchwright.datastore import FlowDatastore, open_datastore
from batchwright.errors import BatchwrightError


def find_datastore(
    flow_name: str, datastore_root: str | None = None, run_id: str | None = None
) -> FlowDatastore:
    """The datastore of ``flow_name`` (see the module docstring): the first candidate
    root that holds the run ``run_id`` (or, without one, any run of the flow), else the
    first candidate."""
    from batchwright.environment.discovery import datastore_roots

    roots = datastore_roots(datastore_root, cwd=os.getcwd())
    stores = [open_datastore(flow_name, root) for root in roots]
    if len(stores) > 1:
        for store in stores:
            try:
                if (store.read_run(run_id) is not None) if run_id else store.list_runs():
                    return store
            except Exception:  # an unreachable or forbidden candidate: look at the next
                continue
    return stores[0]


class ClientError(BatchwrightError, KeyError):
    """The requested flow, run, step, task or artifact does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Flow:
    """All runs of one flow in a datastore."""

    def __init__(self, name: str, datastore_root: str | None = None) -> None:
        self.name = name
        self._store = find_datastore(name, datastore_root)
        self.pathspec = name

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        return [Run(self, run_id) for run_id in reversed(self._store.list_runs())]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        if self._store.read_run(run_id) is None:
            raise ClientError(
                f"flow '{self.name}' has no run '{run_id}' in {self._store.storage.root}"
            )
        return Run(self, run_id)

    @property
    def latest_run(self) -> Run | None:
        """The most recently started run, or None."""
        runs = self._store.list_runs()
        return Run(self, runs[-1]) if runs else None

    @property
    def latest_successful_run(self) -> Run | None:
        """The most recent run that succeeded, or None."""
        return next((run for run in self.runs() if run.successful), None)

    def __repr__(self) -> str:
        return f"Flow('{self.name}')"


class Run:
    """One run: index it by step name."""

    def __init__(self, flow: Flow, run_id: str) -> None:
        self.flow = flow
        self.id = run_id
        self.pathspec = f"{flow.name}/{run_id}"
        self._store: FlowDatastore = flow._store

    @property
    def _record(self) -> dict[str, Any]:
        return self._store.read_run(self.id) or {}

    def steps(self) -> list[Step]:
        """Steps that have tasks in this run."""
        return [Step(self, name) for name in self._store.list_steps(self.id)]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> Step:
        if not self._store.list_tasks(self.id, step):
            raise ClientError(f"run {self.pathspec} has no step '{step}'")
        return Step(self, step)

    def __contains__(self, step: object) -> bool:
        return isinstance(step, str) and bool(self._store.list_tasks(self.id, step))

    @property
    def successful(self) -> bool:
        """True when the run finished and succeeded."""
        return self._record.get("status") == "succeeded"

    @property
    def finished(self) -> bool:
        """True when the run ended (either way)."""
        return self._record.get("finished_at") is not None

    @property
    def status(self) -> str:
        """running, succeeded, failed or interrupted."""
        return str(self._record.get("status", "unknown"))

    @property
    def created_at(self) -> datetime | None:
        """When the run started."""
        return _time(self._record.get("started_at"))

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended, or None."""
        return _time(self._record.get("finished_at"))

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed run, the run it resumed."""
        value = self._record.get("origin_run_id")
        return str(value) if value else None

    @property
    def end_task(self) -> Task | None:
        """The ``end`` task, when the run reached it."""
        return self["end"].task if "end" in self else None

    @property
    def data(self) -> ArtifactAccessor | None:
        """The artifacts of the ``end`` task (None when the run did not reach it)."""
        task = self.end_task
        return task.data if task is not None else None

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


class Step:
    """One step of a run; iterate over its tasks."""

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.id = name
        self.pathspec = f"{run.pathspec}/{name}"
        self._store = run._store

    def tasks(self) -> list[Task]:
        """Every task of the step, in task-id order."""
        return [Task(self, task_id) for task_id in self._store.list_tasks(self.run.id, self.id)]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    def __getitem__(self, task_id: str) -> Task:
        if task_id not in self._store.list_tasks(self.run.id, self.id):
            raise ClientError(f"step {self.pathspec} has no task '{task_id}'")
        return Task(self, task_id)

    @property
    def task(self) -> Task:
        """The step's first task (the only one outside a foreach)."""
        tasks = self.tasks()
        if not tasks:
            raise ClientError(f"step {self.pathspec} has no task")
        return tasks[0]

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Task:
    """One task: its artifacts, logs and outcome."""

    def __init__(self, step: Step, task_id: str) -> None:
        self.step = step
        self.id = task_id
        self.pathspec = f"{step.pathspec}/{task_id}"
        self._store = step._store
        self._run_id = step.run.id
        self._metadata_cache: dict[str, Any] | None = None

    @property
    def _attempt(self) -> int | None:
        done = self._store.read_done(self._run_id, self.step.id, self.id)
        if done is not None:
            return int(done["attempt"])
        attempts = self._store.list_attempts(self._run_id, self.step.id, self.id)
        return attempts[-1] if attempts else None

    @property
    def metadata(self) -> dict[str, Any]:
        """The final (or latest) attempt's metadata record."""
        if self._metadata_cache is None:
            attempt = self._attempt
            found = (
                self._store.read_metadata(self._run_id, self.step.id, self.id, attempt)
                if attempt is not None
                else None
            )
            self._metadata_cache = found or {}
        return self._metadata_cache

    @property
    def successful(self) -> bool:
        """True when the task's done marker exists."""
        return self._store.read_done(self._run_id, self.step.id, self.id) is not None

    @property
    def finished(self) -> bool:
        """True when the latest attempt ended."""
        return "finished_at" in self.metadata

    @property
    def finished_at(self) -> datetime | None:
        """When the final attempt ended."""
        return _time(self.metadata.get("finished_at"))

    @property
    def retry_count(self) -> int:
        """The attempt number of the final attempt."""
        return int(self.metadata.get("attempt", 0))

    @property
    def origin_pathspec(self) -> str | None:
        """For a task reused by resume, the task it was cloned from."""
        origin = self.metadata.get("origin_task_id")
        if not self.metadata.get("cloned") or origin is None:
            return None
        return f"{self.step.run.flow.name}/{self.metadata['origin_run_id']}/{self.step.id}/{origin}"

    @property
    def index(self) -> int | None:
        """The innermost foreach position of this task, or None."""
        frames = self.metadata.get("foreach_frames") or []
        return int(frames[-1]["index"]) if frames else None

    @property
    def data(self) -> ArtifactAccessor:
        """Artifacts as attributes: ``task.data.x``."""
        return ArtifactAccessor(self._store, self.metadata.get("artifacts", {}), self.pathspec)

    @property
    def artifacts(self) -> list[str]:
        """Names of the task's artifacts."""
        return sorted(self.metadata.get("artifacts", {}))

    def __getitem__(self, name: str) -> DataArtifact:
        refs = self.metadata.get("artifacts", {})
        if name not in refs:
            raise ClientError(f"task {self.pathspec} has no artifact '{name}'")
        return DataArtifact(self._store, refs[name], name)

    def __contains__(self, name: object) -> bool:
        return name in self.metadata.get("artifacts", {})

    def _log(self, stream: str) -> str:
        attempt = self._attempt
        if attempt is None:
            return ""
        data = self._store.read_log(self._run_id, self.step.id, self.id, attempt, stream)
        return data.decode("utf-8", "replace") if data else ""

    @property
    def stdout(self) -> str:
        """What the final attempt printed on standard output."""
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        """What the final attempt printed on standard error."""
        return self._log("stderr")

    @property
    def exception(self) -> str | None:
        """The exception text recorded by @catch, if any."""
        value = self.metadata.get("caught_exception")
        return str(value) if value else None

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"


class DataArtifact:
    """One artifact; ``.data`` loads its value."""

    def __init__(self, store: FlowDatastore, key: str, name: str) -> None:
        self._store = store
        self.key = key
        self.id = name

    @property
    def data(self) -> Any:
        """The value."""
        return self._store.load(self.key)


class ArtifactAccessor:
    """``task.data.<name>`` loads the artifact on access."""

    def __init__(self, store: FlowDatastore, refs: dict[str, str], pathspec: str) -> None:
        self._store = store
        self._refs = refs
        self._pathspec = pathspec

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._refs:
            raise AttributeError(f"task {self._pathspec} has no artifact '{name}'")
        return self._store.load(self._refs[name])

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __dir__(self) -> list[str]:
        return sorted(self._refs)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)
