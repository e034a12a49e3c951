"""Read runs back: ``Flow("Name").latest_run["end"].task.data.x``.

**Where runs are read from** (Metaflow's "metadata"). batchwright has no metadata
service: each run's record, task metadata and artifacts live together in the datastore,
so choosing the metadata provider means choosing a datastore root. By default the client
looks where ``run`` writes: ``BATCHWRIGHT_DATASTORE_ROOT`` when set, else the datastore of
the environment discovery finds (``--environment``'s sources: ``$BATCHWRIGHT_ENVIRONMENT``,
``cdk.json``, the outputs file...), where runs with ``@batch`` steps keep their data, then
``.batchwright`` under the working directory; for each flow, the first of them that
holds runs of the flow is used. :func:`metadata` pins the roots for this process
(``"local"``, ``"local@PATH"``, a folder, ``"s3://BUCKET/PREFIX"``); :func:`get_metadata`
names the roots in use (``local@/abs/path``, ``s3@s3://bucket/prefix``; several are
joined by commas, in search order); :func:`default_metadata` goes back to the default.
``Flow(name, datastore_root)`` overrides both for one flow.

**Namespaces**, as in Metaflow: every run carries tags; the user tags given with
``run --tag`` and the system tags ``user:<name>`` (who ran it) and ``runtime:batchwright``.
The current namespace is a tag; ``Flow.runs()``, iterating a flow, ``latest_run`` and
``latest_successful_run`` only return runs that carry it. The default namespace is
``user:<your user name>`` (:func:`default_namespace`), :func:`namespace` switches it and
``namespace(None)`` is the global namespace (every run). A client object keeps the
namespace that was current when it was made. Asking for a run by id (``Flow("X")["12"]``,
``Run("X/12")``) works in any namespace. Runs recorded before batchwright kept tags carry
no ``user:`` tag, so only the global namespace shows them.

Unpickling an artifact of a class defined in the flow file needs that file importable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchwright.datastore import FlowDatastore, open_datastore
from batchwright.errors import BatchwrightError, UserInputError
from batchwright.identity import current_user
from batchwright.timings import AttemptTiming, read_timeline

#: The system tag every batchwright run carries (Metaflow's ``runtime:<name>``).
RUNTIME_TAG = "runtime:batchwright"
#: Metadata types :func:`metadata` accepts: a folder, or an S3 location.
LOCAL_METADATA = "local"
S3_METADATA = "s3"


class ClientError(BatchwrightError, KeyError):
    """The requested flow, run, step, task or artifact does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FlowNotFound(ClientError):
    """No datastore the client looked in holds a run of the flow (Metaflow's
    ``MetaflowNotFound``)."""


class MetadataError(UserInputError):
    """A value given to :func:`metadata` or :func:`namespace` that batchwright cannot use."""


# -- settings of this process: the datastore roots and the namespace ---------------------


@dataclass
class _ClientSettings:
    """What :func:`metadata` and :func:`namespace` chose; None / unset means the default."""

    roots: tuple[str, ...] | None = None
    namespace_chosen: bool = False
    namespace: str | None = None


_settings = _ClientSettings()


def metadata(spec: str) -> str:
    """Read runs from the datastore ``spec`` names, for every client object made afterwards
    in this process; returns :func:`get_metadata`.

    ``spec`` is ``"local"`` (``$BATCHWRIGHT_DATASTORE_ROOT`` when it names a folder, else
    ``.batchwright`` under the working directory), ``"local@PATH"`` or a folder path,
    ``"s3@s3://BUCKET/PREFIX"`` or ``"s3://BUCKET/PREFIX"``; several, separated by commas,
    are searched in order (what :func:`get_metadata` returns can be passed back). A
    metadata service (``"service@URL"``, ``http(s)://...``) is refused: batchwright keeps
    run metadata in the datastore, so there is none to talk to.

    Raises:
        MetadataError: ``spec`` names no datastore batchwright can read.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise MetadataError(
            f"metadata({spec!r}): expected a datastore, e.g. metadata('local'), "
            "metadata('local@/path/to/.batchwright') or metadata('s3://BUCKET/PREFIX')."
        )
    _settings.roots = tuple(_parse_metadata(part.strip(), spec) for part in spec.split(","))
    return get_metadata()


def get_metadata() -> str:
    """The datastore(s) the client reads runs from, as ``local@/abs/path`` or
    ``s3@s3://bucket/prefix``; several are joined by commas, in the order they are searched.
    Without :func:`metadata`, these are the default roots (see the module docstring), which
    may take a look for the environment (CloudFormation, SSM) to find."""
    return ",".join(_describe_root(root) for root in _search_roots(None))


def default_metadata() -> str:
    """Forget :func:`metadata`'s choice: read from the default roots again; returns
    :func:`get_metadata`."""
    _settings.roots = None
    return get_metadata()


def _parse_metadata(part: str, spec: str) -> str:
    """The datastore root one comma-separated part of a :func:`metadata` value names."""
    kind, separator, info = part.partition("@")
    if not separator and part not in (LOCAL_METADATA, S3_METADATA, "service"):
        kind, info = "", part  # a bare folder or URL
    if (kind == "" and info.startswith(("http://", "https://"))) or kind == "service":
        raise MetadataError(
            f"metadata({spec!r}): batchwright has no metadata service; a run's metadata is "
            "kept in its datastore, next to its artifacts. Pass the datastore instead: "
            "metadata('s3://BUCKET/PREFIX') for the S3 datastore of an environment, or "
            "metadata('local') for the folder that runs without @batch steps use."
        )
    if (kind == "" and info.startswith("s3://")) or kind == S3_METADATA:
        if not info.startswith("s3://") or len(info) <= len("s3://"):
            raise MetadataError(
                f"metadata({spec!r}): '{part}' is not an S3 location; write "
                "metadata('s3://BUCKET/PREFIX')."
            )
        return info.rstrip("/")
    if kind == LOCAL_METADATA and not info:
        return _local_root()
    if kind in ("", LOCAL_METADATA) and info and not info.startswith("s3://"):
        return str(Path(info).expanduser().resolve())
    raise MetadataError(
        f"metadata({spec!r}): '{part}' names no datastore. Use 'local', 'local@PATH', a "
        "folder, or 's3://BUCKET/PREFIX'."
    )


def _local_root() -> str:
    """``metadata("local")``: the folder runs are written to without ``--datastore-root``
    and without an S3 datastore."""
    from batchwright.datastore import DEFAULT_ROOT, ROOT_VARIABLE

    configured = os.environ.get(ROOT_VARIABLE)
    if configured and not configured.startswith("s3://"):
        return str(Path(configured).expanduser().resolve())
    return str(Path(os.getcwd(), DEFAULT_ROOT).resolve())


def _describe_root(root: str) -> str:
    kind = S3_METADATA if root.startswith("s3://") else LOCAL_METADATA
    return f"{kind}@{root}"


def _search_roots(explicit: str | None) -> list[str]:
    """The roots looked in, in order: ``explicit``, else :func:`metadata`'s, else the
    default ones."""
    if explicit:
        return [explicit]
    if _settings.roots is not None:
        return list(_settings.roots)
    from batchwright.environment.discovery import datastore_roots

    return datastore_roots(None, cwd=os.getcwd())


def namespace(ns: str | None) -> str | None:
    """Switch the namespace for client objects made afterwards: only runs tagged ``ns``
    are listed; ``None`` lists every run. Returns :func:`get_namespace`.

    Raises:
        MetadataError: ``ns`` is neither a non-empty string nor None.
    """
    if ns is not None and (not isinstance(ns, str) or not ns.strip()):
        raise MetadataError(
            f"namespace({ns!r}): a namespace is a tag, such as 'user:alice' or a tag given "
            "with run --tag; pass None for the global namespace (every run)."
        )
    _settings.namespace_chosen = True
    _settings.namespace = ns
    return ns


def get_namespace() -> str | None:
    """The namespace client objects made now filter runs by (None: every run); the default
    one (:func:`default_namespace`) until :func:`namespace` is called."""
    if not _settings.namespace_chosen:
        return default_namespace()
    return _settings.namespace


def default_namespace() -> str:
    """Go back to the default namespace, ``user:<your user name>``, and return it."""
    _settings.namespace_chosen = True
    _settings.namespace = f"user:{current_user()}"
    return _settings.namespace


# -- finding a flow's datastore ----------------------------------------------------------


def find_datastore(
    flow_name: str, datastore_root: str | None = None, run_id: str | None = None
) -> FlowDatastore:
    """The datastore of ``flow_name`` (see the module docstring): the first candidate
    root that holds the run ``run_id`` (or, without one, any run of the flow), else the
    first candidate."""
    stores = [open_datastore(flow_name, root) for root in _search_roots(datastore_root)]
    if len(stores) == 1:
        return stores[0]
    return _holding(stores, run_id) or stores[0]


def _holding(stores: list[FlowDatastore], run_id: str | None) -> FlowDatastore | None:
    """The first of ``stores`` that holds the run ``run_id`` (or, without one, any run)."""
    for store in stores:
        try:
            if (store.read_run(run_id) is not None) if run_id else store.list_runs():
                return store
        except Exception:  # an unreachable or forbidden candidate: look at the next
            continue
    return None


# -- tags ----------------------------------------------------------------------------------


def _user_tags(record: dict[str, Any]) -> frozenset[str]:
    tags = record.get("tags")
    if not isinstance(tags, list):
        return frozenset()
    return frozenset(str(tag) for tag in tags)


def _system_tags(record: dict[str, Any]) -> frozenset[str]:
    user = record.get("user")
    tags = {RUNTIME_TAG}
    if isinstance(user, str) and user:
        tags.add(f"user:{user}")
    return frozenset(tags)


def _all_tags(record: dict[str, Any]) -> frozenset[str]:
    return _user_tags(record) | _system_tags(record)


class Metaflow:
    """Every flow with runs in the current namespace, in the datastore(s) the client reads
    (see :func:`get_metadata`): ``Metaflow().flows``, ``for flow in Metaflow()``."""

    def __init__(self, datastore_root: str | None = None) -> None:
        self._datastore_root = datastore_root
        self._namespace = get_namespace()

    @property
    def flows(self) -> list[Flow]:
        """The flows, by name."""
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        seen: set[str] = set()
        for root in _search_roots(self._datastore_root):
            storage = open_datastore("", root).storage
            for name in storage.list_children(""):
                if name in seen or not storage.list_children(f"{name}/runs"):
                    continue
                flow = Flow(name, root, _namespace=self._namespace)
                if flow.latest_run is not None:
                    seen.add(name)
                    yield flow

    def __getitem__(self, name: str) -> Flow:
        return Flow(name, self._datastore_root)

    def __repr__(self) -> str:
        return "Metaflow()"


class Flow:
    """All runs of one flow in a datastore.

    Raises:
        FlowNotFound: no datastore the client looks in holds a run of the flow.
    """

    def __init__(
        self, name: str, datastore_root: str | None = None, *, _namespace: str | None = ""
    ) -> None:
        self.name = name
        self.id = name
        self.pathspec = name
        # "" means "the current namespace"; None is the global namespace.
        self._namespace = get_namespace() if _namespace == "" else _namespace
        roots = _search_roots(datastore_root)
        stores = [open_datastore(name, root) for root in roots]
        store = stores[0] if len(stores) == 1 else _holding(stores, None)
        if store is None or not store.list_runs():
            raise FlowNotFound(
                f"Flow('{name}') not found: there are no runs of '{name}' in "
                f"{' or '.join(roots)}. Check the name (the flow's class name) and where its "
                "runs were written: pass Flow(name, datastore_root=...), call "
                "metadata('s3://BUCKET/PREFIX' or 'local@PATH'), or set "
                "$BATCHWRIGHT_DATASTORE_ROOT to the datastore the runs used."
            )
        self._store = store

    @classmethod
    def _holding_run(cls, name: str, run_id: str, datastore_root: str | None) -> Flow:
        """The flow, in the datastore that holds the run ``run_id`` (for ``Run("X/12")``)."""
        flow = cls.__new__(cls)
        flow.name = flow.id = flow.pathspec = name
        flow._namespace = get_namespace()
        flow._store = find_datastore(name, datastore_root, run_id)
        return flow

    def _runs(self, tags: Iterable[str] = ()) -> Iterator[Run]:
        """Runs newest first that carry ``tags`` and the namespace; the record of a run is
        read only when there is something to check."""
        wanted = set(tags) | ({self._namespace} if self._namespace else set())
        for run_id in reversed(self._store.list_runs()):
            if wanted and not wanted <= _all_tags(self._store.read_run(run_id) or {}):
                continue
            yield Run(self, run_id)

    def runs(self, *tags: str) -> list[Run]:
        """Every run in the current namespace that carries all ``tags``, newest first."""
        return list(self._runs(tags))

    def __iter__(self) -> Iterator[Run]:
        return self._runs()

    def __getitem__(self, run_id: str) -> Run:
        """The run ``run_id``, in any namespace (its id is explicit)."""
        if self._store.read_run(run_id) is None:
            raise ClientError(
                f"flow '{self.name}' has no run '{run_id}' in {self._store.storage.root}"
            )
        return Run(self, run_id)

    def __contains__(self, run_id: object) -> bool:
        return isinstance(run_id, str) and self._store.read_run(run_id) is not None

    @property
    def latest_run(self) -> Run | None:
        """The most recently started run in the current namespace, or None."""
        return next(self._runs(), None)

    @property
    def latest_successful_run(self) -> Run | None:
        """The most recent run in the current namespace that succeeded, or None."""
        return next((run for run in self._runs() if run.successful), None)

    def __repr__(self) -> str:
        return f"Flow('{self.name}')"


class Run:
    """One run: index it by step name. ``Run("Flow/12")`` or ``Flow("Flow")["12"]``.

    Raises:
        ClientError: the run does not exist (only when given a pathspec).
    """

    def __init__(
        self, flow: Flow | str, run_id: str | None = None, *, datastore_root: str | None = None
    ) -> None:
        if isinstance(flow, str):
            name, run_id = _split_pathspec(flow, "Run", "FlowName/RunID")
            flow = Flow._holding_run(name, run_id, datastore_root)
            flow[run_id]  # raises ClientError when the run does not exist
        elif run_id is None:
            raise TypeError("Run(flow, run_id): run_id is required with a Flow")
        self.flow = flow
        self.id = run_id
        self.pathspec = f"{flow.name}/{run_id}"
        self._store: FlowDatastore = flow._store

    @property
    def _record(self) -> dict[str, Any]:
        return self._store.read_run(self.id) or {}

    def timeline(self) -> list[AttemptTiming]:
        """Every task attempt of the run, in order of submission: when it was submitted,
        started and stopped, where it ran and how it ended (see
        :mod:`batchwright.timings`). Tasks a resume reused from its origin run are not in
        it (they did not run in this one)."""
        return read_timeline(self._store, self.id)

    @property
    def tags(self) -> frozenset[str]:
        """User and system tags of the run."""
        return _all_tags(self._record)

    @property
    def user_tags(self) -> frozenset[str]:
        """The tags given with ``run --tag`` (or ``resume --tag``)."""
        return _user_tags(self._record)

    @property
    def system_tags(self) -> frozenset[str]:
        """The tags batchwright gives every run: ``runtime:batchwright`` and ``user:<name>``
        (absent on runs recorded before batchwright kept the user)."""
        return _system_tags(self._record)

    def is_in_namespace(self) -> bool:
        """True when the run carries the current namespace (always, in the global one)."""
        current = get_namespace()
        return current is None or current in self.tags

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
    """One step of a run; iterate over its tasks. ``Step("Flow/12/start")`` or
    ``run["start"]``."""

    def __init__(
        self, run: Run | str, name: str | None = None, *, datastore_root: str | None = None
    ) -> None:
        if isinstance(run, str):
            flow_name, run_id, name = _split_pathspec(run, "Step", "FlowName/RunID/StepName")
            run = Run(f"{flow_name}/{run_id}", datastore_root=datastore_root)
            run[name]  # raises ClientError when the step has no task
        elif name is None:
            raise TypeError("Step(run, name): name is required with a Run")
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
    """One task: its artifacts, logs and outcome. ``Task("Flow/12/start/1")`` or
    ``run["start"].task``."""

    def __init__(
        self, step: Step | str, task_id: str | None = None, *, datastore_root: str | None = None
    ) -> None:
        if isinstance(step, str):
            flow_name, run_id, name, task_id = _split_pathspec(
                step, "Task", "FlowName/RunID/StepName/TaskID"
            )
            step = Step(f"{flow_name}/{run_id}/{name}", datastore_root=datastore_root)
            step[task_id]  # raises ClientError when the task does not exist
        elif task_id is None:
            raise TypeError("Task(step, task_id): task_id is required with a Step")
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
    def timings(self) -> list[AttemptTiming]:
        """This task's attempts, oldest first (see :meth:`Run.timeline`)."""
        return read_timeline(self._store, self._run_id, (self.step.id, self.id))

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
        return DataArtifact(self._store, refs[name], name, task=self.pathspec)

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
    """One artifact; ``.data`` loads its value. ``DataArtifact("Flow/12/start/1/x")`` or
    ``task["x"]``."""

    def __init__(
        self,
        store: FlowDatastore | str,
        key: str | None = None,
        name: str | None = None,
        *,
        datastore_root: str | None = None,
        task: str = "",
    ) -> None:
        if isinstance(store, str):
            *parts, name = _split_pathspec(
                store, "DataArtifact", "FlowName/RunID/StepName/TaskID/ArtifactName"
            )
            found = Task("/".join(parts), datastore_root=datastore_root)[name]
            store, key, task = found._store, found.key, found.task
        if key is None or name is None:
            raise TypeError("DataArtifact(store, key, name): key and name are required")
        self._store: FlowDatastore = store
        self.key: str = key
        self.id: str = name
        #: The pathspec of the task that holds it (``Flow/12/start/1``), when known.
        self.task: str = task

    @property
    def pathspec(self) -> str:
        """``Flow/12/start/1/name`` (the name alone when the task is not known)."""
        return f"{self.task}/{self.id}" if self.task else self.id

    @property
    def data(self) -> Any:
        """The value (its bytes checked against its content address first).

        Raises:
            ArtifactIntegrityError: the stored bytes were changed after they were written.
        """
        where = f" of task {self.task}" if self.task else ""
        return self._store.load(self.key, f"artifact '{self.id}'{where}")


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
        return self._store.load(self._refs[name], f"artifact '{name}' of task {self._pathspec}")

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __dir__(self) -> list[str]:
        return sorted(self._refs)


def _split_pathspec(pathspec: str, kind: str, shape: str) -> list[str]:
    """The parts of ``pathspec``, which must have the shape ``shape``.

    Raises:
        ClientError: a part is missing or empty.
    """
    parts = pathspec.strip("/").split("/")
    if len(parts) != shape.count("/") + 1 or not all(parts):
        raise ClientError(f"{kind}('{pathspec}'): expected {kind}('{shape}')")
    return parts


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)
