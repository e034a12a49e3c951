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
``latest_successful_run`` only return runs that carry it, and asking for a run outside it
by id (``Flow("X")["12"]``, ``Run("X/12")``, ``Step("X/12/start")``, ``Task(...)``,
``DataArtifact(...)``) raises :class:`MetaflowNamespaceMismatch`. The default namespace is
``user:<your user name>`` (:func:`default_namespace`), :func:`namespace` switches it and
``namespace(None)`` is the global namespace, where every run is listed and reachable. As
in Metaflow, ``_namespace_check=False`` on a constructor skips the check for that object
(``Flow(name, _namespace_check=False)`` also lists every run), and lineage
(``Task.parent_tasks`` and the like) never checks. A client object keeps the namespace
that was current when it was made. ``run_id in flow`` says whether the run exists,
whatever the namespace. Runs recorded before batchwright kept tags carry no ``user:`` tag:
only the global namespace lists them, but reaching one directly (``Run("F/123")``) skips
the check.

**Lineage** comes from what each task recorded when it ran: the tasks it read
(``input_paths``) and the steps that follow it (``next_steps``). ``Task.parent_tasks`` and
``Task.child_tasks`` follow them across branches, foreach splits (nested ones included)
and joins; ``Step.parent_steps`` and ``Step.child_steps`` do the same for steps. In a
resumed run, ``Run.origin_pathspec``, ``Step.origin_pathspec`` and (for the tasks the
resume reused) ``Task.origin_pathspec`` name what they came from.

Unpickling an artifact of a class defined in the flow file needs that file importable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from batchwright.datastore import FlowDatastore, open_datastore
from batchwright.errors import UserInputError
from batchwright.exception import (
    ClientError,
    FlowNotFound,
    MetaflowExceptionWrapper,
    MetaflowNamespaceMismatch,
)
from batchwright.identity import current_user
from batchwright.timings import AttemptTiming, read_timeline

#: The system tag every batchwright run carries (Metaflow's ``runtime:<name>``).
RUNTIME_TAG = "runtime:batchwright"
#: Metadata types :func:`metadata` accepts: a folder, or an S3 location.
LOCAL_METADATA = "local"
S3_METADATA = "s3"


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


class _ClientObject:
    """What every client object shares: its pathspec, its parent, its run's tags, and
    equality by pathspec (and datastore), so two reads of one task compare equal."""

    pathspec: str
    id: str
    _store: FlowDatastore
    #: The namespace current when the object (or the object it came from) was made.
    _namespace: str | None
    #: False when made with ``_namespace_check=False`` or in the global namespace.
    _namespace_check: bool

    @property
    def path_components(self) -> list[str]:
        """The parts of the pathspec: ``["Flow", "12", "start", "3"]`` for a task."""
        return self.pathspec.split("/")

    @property
    def parent(self) -> _ClientObject | None:
        """The object one level up (a task's step, a step's run, a run's flow)."""
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ClientObject) or type(other) is not type(self):
            return NotImplemented
        return (self.pathspec, self._store.storage.root) == (
            other.pathspec,
            other._store.storage.root,
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec, self._store.storage.root))

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"


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


class Flow(_ClientObject):
    """All runs of one flow in a datastore.

    ``Flow(name)[run_id]`` raises :class:`MetaflowNamespaceMismatch` for a run outside the
    current namespace; ``_namespace_check=False`` (as in Metaflow) lists and returns every
    run whatever the namespace.

    Raises:
        FlowNotFound: no datastore the client looks in holds a run of the flow.
    """

    def __init__(
        self,
        name: str,
        datastore_root: str | None = None,
        *,
        _namespace_check: bool = True,
        _namespace: str | None = "",
    ) -> None:
        self.name = name
        self.id = name
        self.pathspec = name
        # "" means "the current namespace"; None is the global namespace.
        self._namespace = get_namespace() if _namespace == "" else _namespace
        self._namespace_check = _namespace_check and self._namespace is not None
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
    def _holding_run(
        cls, name: str, run_id: str, datastore_root: str | None, namespace_check: bool
    ) -> Flow:
        """The flow, in the datastore that holds the run ``run_id`` (for ``Run("X/12")``)."""
        flow = cls.__new__(cls)
        flow.name = flow.id = flow.pathspec = name
        flow._namespace = get_namespace()
        flow._namespace_check = namespace_check and flow._namespace is not None
        flow._store = find_datastore(name, datastore_root, run_id)
        return flow

    def _runs(self, tags: Iterable[str] = ()) -> Iterator[Run]:
        """Runs newest first that carry ``tags`` and the namespace; the record of a run is
        read only when there is something to check."""
        wanted = set(tags)
        if self._namespace_check and self._namespace is not None:
            wanted.add(self._namespace)
        for run_id in reversed(self._store.list_runs()):
            if wanted and not wanted <= _all_tags(self._store.read_run(run_id) or {}):
                continue
            # Its tags were just checked: no second read of its record.
            yield Run(self, run_id, _namespace_check=False)

    def runs(self, *tags: str) -> list[Run]:
        """Every run in the current namespace that carries all ``tags``, newest first."""
        return list(self._runs(tags))

    def __iter__(self) -> Iterator[Run]:
        return self._runs()

    def __getitem__(self, run_id: str) -> Run:
        """The run ``run_id``.

        Raises:
            ClientError: the flow has no such run.
            MetaflowNamespaceMismatch: the run is not in this object's namespace.
        """
        record = self._store.read_run(run_id)
        if record is None:
            raise ClientError(
                f"flow '{self.name}' has no run '{run_id}' in {self._store.storage.root}"
            )
        run = Run(self, run_id, _namespace_check=False)
        run._namespace_check = self._namespace_check
        run._require_namespace(f"Run('{run.pathspec}')", self._namespace_check, record)
        return run

    def __contains__(self, run_id: object) -> bool:
        # As in Metaflow: whether the run exists, whatever the namespace.
        return isinstance(run_id, str) and self._store.read_run(run_id) is not None

    @property
    def latest_run(self) -> Run | None:
        """The most recently started run in the current namespace, or None."""
        return next(self._runs(), None)

    @property
    def latest_successful_run(self) -> Run | None:
        """The most recent run in the current namespace that succeeded, or None."""
        return next((run for run in self._runs() if run.successful), None)


class Run(_ClientObject):
    """One run: index it by step name. ``Run("Flow/12")`` or ``Flow("Flow")["12"]``.

    Raises:
        ClientError: the run does not exist (only when given a pathspec).
        MetaflowNamespaceMismatch: the run is not in the current namespace (unless made
            with ``_namespace_check=False``, or in the global namespace).
    """

    def __init__(
        self,
        flow: Flow | str,
        run_id: str | None = None,
        *,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ) -> None:
        record: dict[str, Any] | None = None
        if isinstance(flow, str):
            name, run_id = _split_pathspec(flow, "Run", "FlowName/RunID")
            flow = Flow._holding_run(name, run_id, datastore_root, _namespace_check)
            record = flow._store.read_run(run_id)
            if record is None:
                raise ClientError(
                    f"flow '{name}' has no run '{run_id}' in {flow._store.storage.root}"
                )
        elif run_id is None:
            raise TypeError("Run(flow, run_id): run_id is required with a Flow")
        self.flow = flow
        self.id = run_id
        self.pathspec = f"{flow.name}/{run_id}"
        self._store: FlowDatastore = flow._store
        self._namespace = flow._namespace
        self._namespace_check = flow._namespace_check and _namespace_check
        # Lineage reads each step's task records once per object, for a run that ended.
        self._inputs_cache: dict[str, dict[str, frozenset[str]]] = {}
        self._require_namespace(f"Run('{self.pathspec}')", self._namespace_check, record)

    def _require_namespace(
        self, asked: str, check: bool, record: dict[str, Any] | None = None
    ) -> None:
        """Unless ``check`` is False, raise when the run does not carry this object's
        namespace (never in the global namespace). ``record``: the run's, when read.

        A run recorded before batchwright kept tags has no ``user`` field in its record,
        so no ``user:`` tag: it is not checked, and reaching it directly
        (``Run("F/123")``, ``Flow("F")["123"]`` and what is below it) works in any
        namespace, as it did then.

        Raises:
            MetaflowNamespaceMismatch: ``asked`` (the object asked for, as written) belongs
                to a run outside the namespace.
        """
        if not check or self._namespace is None:
            return
        record = record if record is not None else self._record
        if "user" not in record:
            return
        tags = _all_tags(record)
        if self._namespace not in tags:
            raise MetaflowNamespaceMismatch(asked, self.pathspec, self._namespace, tags)

    @property
    def _record(self) -> dict[str, Any]:
        return self._store.read_run(self.id) or {}

    @property
    def parent(self) -> Flow:
        """The flow."""
        return self.flow

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

    def steps(self, *tags: str) -> list[Step]:
        """Steps that have tasks in this run (none when the run lacks one of ``tags``)."""
        if tags and not set(tags) <= self.tags:
            return []
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
        """For a resumed run, the id of the run it resumed; None otherwise."""
        value = self._record.get("origin_run_id")
        return str(value) if value else None

    @property
    def origin_pathspec(self) -> str | None:
        """For a resumed run, the pathspec of the run it resumed (``Flow/12``); None
        otherwise."""
        origin = self.origin_run_id
        return f"{self.flow.name}/{origin}" if origin else None

    @property
    def end_task(self) -> Task | None:
        """The ``end`` task, when the run reached it."""
        return self["end"].task if "end" in self else None

    @property
    def data(self) -> ArtifactAccessor | None:
        """The artifacts of the ``end`` task (None when the run did not reach it)."""
        task = self.end_task
        return task.data if task is not None else None

    # -- lineage: what each task of a step read, from the records the tasks wrote ------------

    def _inputs_of(self, step: str) -> dict[str, frozenset[str]]:
        """For each task of ``step`` with a record, its inputs as ``step/task`` (without
        their run id: a task a resume reused names its origin run's tasks, which the
        resume reused under the same ids)."""
        cached = self._inputs_cache.get(step)
        if cached is not None:
            return cached
        records = _latest_records(self._store, self.id, step)
        inputs = {
            task_id: frozenset(_strip_run(path) for path in record.get("input_paths") or [])
            for task_id, record in records.items()
        }
        if self.finished:  # nothing more will be written
            self._inputs_cache[step] = inputs
        return inputs


class Step(_ClientObject):
    """One step of a run; iterate over its tasks. ``Step("Flow/12/start")`` or
    ``run["start"]``.

    Raises:
        ClientError: the run or step does not exist (only when given a pathspec).
        MetaflowNamespaceMismatch: the run is not in the current namespace (only when given
            a pathspec; see :class:`Run`).
    """

    def __init__(
        self,
        run: Run | str,
        name: str | None = None,
        *,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ) -> None:
        asked: str | None = None
        if isinstance(run, str):
            asked = f"Step('{run}')"
            flow_name, run_id, name = _split_pathspec(run, "Step", "FlowName/RunID/StepName")
            run = Run(
                f"{flow_name}/{run_id}", datastore_root=datastore_root, _namespace_check=False
            )
            run._namespace_check = _namespace_check and run._namespace is not None
            run[name]  # raises ClientError when the step has no task
        elif name is None:
            raise TypeError("Step(run, name): name is required with a Run")
        self.run = run
        self.id = name
        self.pathspec = f"{run.pathspec}/{name}"
        self._store = run._store
        self._namespace = run._namespace
        self._namespace_check = run._namespace_check
        if asked is not None:
            run._require_namespace(asked, _namespace_check)

    @property
    def parent(self) -> Run:
        """The run."""
        return self.run

    @property
    def tags(self) -> frozenset[str]:
        """The run's tags (a step has none of its own)."""
        return self.run.tags

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self.run.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self.run.system_tags

    def tasks(self, *tags: str) -> list[Task]:
        """Every task of the step, in task-id order (none when the run lacks one of
        ``tags``: tasks carry their run's tags)."""
        if tags and not set(tags) <= self.run.tags:
            return []
        return [Task(self, task_id) for task_id in self._store.list_tasks(self.run.id, self.id)]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    def __getitem__(self, task_id: str) -> Task:
        if task_id not in self._store.list_tasks(self.run.id, self.id):
            raise ClientError(f"step {self.pathspec} has no task '{task_id}'")
        return Task(self, task_id)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and task_id in self._store.list_tasks(self.run.id, self.id)

    def control_tasks(self, *tags: str) -> Iterator[Task]:
        """The control task of each group of nodes of a parallel step: node 0's task
        (``current.parallel.control_task_id``), as Metaflow's; none for other steps."""
        for task in self.tasks(*tags):
            frames = task._record.get("foreach_frames") or []
            if frames and frames[-1].get("parallel") and str(frames[-1].get("index")) == "0":
                yield task

    @property
    def control_task(self) -> Task | None:
        """The first of :meth:`control_tasks`, or None."""
        return next(self.control_tasks(), None)

    @property
    def task(self) -> Task:
        """The step's first task (the only one outside a foreach)."""
        tasks = self.tasks()
        if not tasks:
            raise ClientError(f"step {self.pathspec} has no task")
        return tasks[0]

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task ended; None while one of them has not."""
        times = [task.finished_at for task in self]
        if not times or any(time is None for time in times):
            return None
        return max(time for time in times if time is not None)

    @property
    def origin_pathspec(self) -> str | None:
        """In a resumed run, this step in the run it resumed (``Flow/12/start``), whether
        its tasks were reused or ran again; None otherwise."""
        origin = self.run.origin_pathspec
        return f"{origin}/{self.id}" if origin else None

    @property
    def parent_steps(self) -> Iterator[Step]:
        """The steps whose tasks this step's tasks read (none for ``start``), in the order
        the tasks name their inputs. All tasks count: where switch cases meet, or in a
        loop, tasks of one step may have read different steps."""
        seen: list[str] = []
        for task_id in self._store.list_tasks(self.run.id, self.id):
            record = _task_record(self._store, self.run.id, self.id, task_id)
            for path in (record or {}).get("input_paths") or ():
                step = _strip_run(path).split("/")[0]
                if step not in seen and not step.startswith("_"):
                    seen.append(step)
        for step in seen:
            yield Step(self.run, step)

    @property
    def child_steps(self) -> Iterator[Step]:
        """The steps that follow this one in the flow's graph and have tasks in this run
        (none for ``end``). All tasks count: the laps of a switch in a loop, or its tasks
        in a foreach, may each have chosen a different case."""
        seen: list[str] = []
        for task_id in self._store.list_tasks(self.run.id, self.id):
            record = _task_record(self._store, self.run.id, self.id, task_id)
            # None for a task that failed before choosing its next steps.
            for step in (record or {}).get("next_steps") or ():
                if step not in seen and step in self.run:
                    seen.append(step)
        for step in seen:
            yield Step(self.run, step)


class Metadata(NamedTuple):
    """One metadata entry of a task attempt, as Metaflow's ``Metadata``."""

    #: ``attempt``, ``origin-run-id``, ``ds-root``, ... (see :attr:`Task.metadata`).
    name: str
    #: The value as text (JSON for a list or a dict).
    value: str
    #: When the attempt started, in milliseconds since the epoch (Metaflow's ``ts_epoch``).
    created_at: int
    #: The kind of entry; the name, except for ``attempt`` entries (type ``attempt``).
    type: str
    #: The task the entry belongs to.
    task: Task


class Task(_ClientObject):
    """One task: its artifacts, logs, metadata, lineage and outcome.
    ``Task("Flow/12/start/1")`` or ``run["start"].task``.

    Raises:
        ClientError: the run, step or task does not exist (only when given a pathspec).
        MetaflowNamespaceMismatch: the run is not in the current namespace (only when given
            a pathspec; see :class:`Run`).
    """

    def __init__(
        self,
        step: Step | str,
        task_id: str | None = None,
        *,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ) -> None:
        asked: str | None = None
        if isinstance(step, str):
            asked = f"Task('{step}')"
            flow_name, run_id, name, task_id = _split_pathspec(
                step, "Task", "FlowName/RunID/StepName/TaskID"
            )
            run = Run(
                f"{flow_name}/{run_id}", datastore_root=datastore_root, _namespace_check=False
            )
            run._namespace_check = _namespace_check and run._namespace is not None
            step = run[name]  # raises ClientError when the step has no task
            step[task_id]  # raises ClientError when the task does not exist
        elif task_id is None:
            raise TypeError("Task(step, task_id): task_id is required with a Step")
        self.step = step
        self.id = task_id
        self.pathspec = f"{step.pathspec}/{task_id}"
        self._store = step._store
        self._run_id = step.run.id
        self._namespace = step._namespace
        self._namespace_check = step._namespace_check
        self._record_cache: dict[str, Any] | None = None
        if asked is not None:
            step.run._require_namespace(asked, _namespace_check)

    @property
    def parent(self) -> Step:
        """The step."""
        return self.step

    @property
    def tags(self) -> frozenset[str]:
        """The run's tags (a task has none of its own)."""
        return self.step.run.tags

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self.step.run.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self.step.run.system_tags

    @property
    def _attempt(self) -> int | None:
        done = self._store.read_done(self._run_id, self.step.id, self.id)
        if done is not None:
            return int(done["attempt"])
        attempts = self._store.list_attempts(self._run_id, self.step.id, self.id)
        return attempts[-1] if attempts else None

    @property
    def _record(self) -> dict[str, Any]:
        """The final (or latest) attempt's metadata record, as the task wrote it."""
        if self._record_cache is None:
            attempt = self._attempt
            found = (
                self._store.read_metadata(self._run_id, self.step.id, self.id, attempt)
                if attempt is not None
                else None
            )
            self._record_cache = found or {}
        return self._record_cache

    @property
    def metadata(self) -> list[Metadata]:
        """The metadata entries of every recorded attempt, oldest attempt first.

        Each attempt gives ``attempt``; ``ds-type`` (``local`` or ``s3``) and ``ds-root``;
        in a foreach, ``foreach-execution-path`` (``split_step:index`` per enclosing
        foreach, outermost first); in a resumed run, ``origin-run-id``, and for a task the
        resume reused, ``origin-task-id``. The other fields of the attempt's
        ``metadata.json`` follow under their own names (``status``, ``exit_code``,
        ``started_at``, ``finished_at``, ``input_paths``, ``split_index``,
        ``foreach_frames``, ``next_steps``, ``placement``, ...), except the artifacts (see
        :attr:`artifacts`) and the parts of the pathspec.
        """
        entries: list[Metadata] = []
        for attempt in self._store.list_attempts(self._run_id, self.step.id, self.id):
            record = self._store.read_metadata(self._run_id, self.step.id, self.id, attempt)
            if record is not None:
                entries.extend(self._entries(attempt, record))
        return entries

    @property
    def metadata_dict(self) -> dict[str, str]:
        """``{name: value}`` of :attr:`metadata`, the latest attempt's value for a name
        recorded by several."""
        return {
            entry.name: entry.value for entry in sorted(self.metadata, key=lambda e: e.created_at)
        }

    def _entries(self, attempt: int, record: dict[str, Any]) -> list[Metadata]:
        created = int(float(record.get("started_at") or 0) * 1000)
        root = self._store.storage.root
        values: dict[str, Any] = {
            "attempt": attempt,
            "ds-type": S3_METADATA if root.startswith("s3://") else LOCAL_METADATA,
            "ds-root": root,
        }
        frames = record.get("foreach_frames") or []
        if frames:
            values["foreach-execution-path"] = ",".join(
                f"{frame.get('step')}:{frame.get('index')}" for frame in frames
            )
        origin_run = self.step.run.origin_run_id
        if origin_run:
            values["origin-run-id"] = origin_run
            if record.get("cloned") and record.get("origin_task_id") is not None:
                values["origin-task-id"] = record["origin_task_id"]
        for name, value in record.items():
            if name not in _NOT_METADATA and value is not None:
                values.setdefault(name, value)
        return [
            Metadata(name, _as_text(value), created, name, self) for name, value in values.items()
        ]

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
        return "finished_at" in self._record

    @property
    def finished_at(self) -> datetime | None:
        """When the final attempt ended."""
        return _time(self._record.get("finished_at"))

    @property
    def created_at(self) -> datetime | None:
        """When the final attempt started."""
        return _time(self._record.get("started_at"))

    @property
    def retry_count(self) -> int:
        """The attempt number of the final attempt."""
        return int(self._record.get("attempt", 0))

    @property
    def current_attempt(self) -> int:
        """The attempt the logs and artifacts are read from: the one that succeeded, else
        the latest recorded (0 before any)."""
        attempt = self._attempt
        return attempt if attempt is not None else 0

    @property
    def runtime_name(self) -> str | None:
        """The runtime that ran the task (``batchwright``), from its run's ``runtime:``
        tag."""
        for tag in self.tags:
            if tag.startswith("runtime:"):
                return tag.split(":", 1)[1]
        return None

    @property
    def origin_pathspec(self) -> str | None:
        """For a task a resume reused, the task it was cloned from
        (``Flow/<origin run>/step/id``); None otherwise, also for a task that ran again in
        the resumed run."""
        origin = self._record.get("origin_task_id")
        if not self._record.get("cloned") or origin is None:
            return None
        return f"{self.step.run.flow.name}/{self._record['origin_run_id']}/{self.step.id}/{origin}"

    @property
    def index(self) -> int | None:
        """The innermost foreach position of this task, or None."""
        frames = self._record.get("foreach_frames") or []
        return int(frames[-1]["index"]) if frames else None

    # -- lineage ----------------------------------------------------------------------------

    @property
    def parent_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks whose output this task read: one, or every branch or
        foreach split for a join; none for ``start``."""
        run = self.step.run
        for path in self._record.get("input_paths") or []:
            step, task_id = _strip_run(path).split("/", 1)
            if not step.startswith("_"):  # the parameters pseudo-step
                yield f"{run.pathspec}/{step}/{task_id}"

    @property
    def child_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks that read this task's output: the next step's task, each
        branch, each foreach split, or the join that gathered it; none for ``end``."""
        run = self.step.run
        me = f"{self.step.id}/{self.id}"
        for step in self._record.get("next_steps") or []:
            inputs = run._inputs_of(step)
            for task_id in sorted(inputs, key=_task_order):
                if me in inputs[task_id]:
                    yield f"{run.pathspec}/{step}/{task_id}"

    @property
    def parent_tasks(self) -> Iterator[Task]:
        """The tasks of :attr:`parent_task_pathspecs` (in any namespace, as in Metaflow)."""
        return self._tasks(self.parent_task_pathspecs)

    @property
    def child_tasks(self) -> Iterator[Task]:
        """The tasks of :attr:`child_task_pathspecs` (in any namespace, as in Metaflow)."""
        return self._tasks(self.child_task_pathspecs)

    def _tasks(self, pathspecs: Iterable[str]) -> Iterator[Task]:
        run = self.step.run
        for pathspec in pathspecs:
            _, _, step, task_id = pathspec.split("/")
            yield Task(Step(run, step), task_id)

    # -- artifacts ----------------------------------------------------------------------------

    @property
    def data(self) -> ArtifactAccessor:
        """Artifacts as attributes: ``task.data.x``."""
        return ArtifactAccessor(self._store, self._record.get("artifacts", {}), self.pathspec)

    @property
    def artifacts(self) -> list[str]:
        """Names of the task's artifacts."""
        return sorted(self._record.get("artifacts", {}))

    def __getitem__(self, name: str) -> DataArtifact:
        refs = self._record.get("artifacts", {})
        if name not in refs:
            raise ClientError(f"task {self.pathspec} has no artifact '{name}'")
        return DataArtifact(self._store, refs[name], name, task=self.pathspec)

    def __contains__(self, name: object) -> bool:
        return name in self._record.get("artifacts", {})

    # -- logs --------------------------------------------------------------------------------

    def _log(self, stream: str) -> bytes:
        if stream not in ("stdout", "stderr"):
            raise ClientError(
                f"task {self.pathspec}: there is no log stream {stream!r}; "
                "use 'stdout' or 'stderr'."
            )
        attempt = self._attempt
        if attempt is None:
            return b""
        return self._store.read_log(self._run_id, self.step.id, self.id, attempt, stream) or b""

    @property
    def stdout(self) -> str:
        """What the final attempt printed on standard output."""
        return self._log("stdout").decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        """What the final attempt printed on standard error."""
        return self._log("stderr").decode("utf-8", "replace")

    def loglines(
        self, stream: str, as_unicode: bool = True
    ) -> Iterator[tuple[datetime | None, str | bytes]]:
        """``(time, line)`` for each line the final attempt wrote to ``stream``
        (``"stdout"`` or ``"stderr"``), without its line break; ``line`` is bytes with
        ``as_unicode=False``.

        batchwright does not time each line: every line carries the time its attempt
        ended (an upper bound; None when the attempt recorded no end).

        Raises:
            ClientError: ``stream`` is neither ``"stdout"`` nor ``"stderr"``.
        """
        data = self._log(stream)
        when = _time(self._record.get("finished_at"))
        for line in data.splitlines():
            yield when, (line.decode("utf-8", "replace") if as_unicode else line)

    @property
    def exception(self) -> MetaflowExceptionWrapper | None:
        """The exception that failed the task's latest attempt (``type``, ``exception``:
        its message, ``stacktrace``), as Metaflow's; None when the attempt succeeded,
        including when ``@catch`` handled the exception (its ``var`` artifact holds it)."""
        recorded = self._record.get("exception")
        if not isinstance(recorded, dict):
            return None
        wrapped = MetaflowExceptionWrapper()
        wrapped.type = recorded.get("type")
        wrapped.exception = recorded.get("exception")
        wrapped.stacktrace = recorded.get("stacktrace")
        return wrapped


#: Fields of an attempt's metadata.json that :attr:`Task.metadata` does not repeat: the
#: parts of the pathspec, the artifacts, and what it gives under Metaflow's names.
_NOT_METADATA = frozenset(
    {
        "layout_version",
        "flow",
        "run_id",
        "step",
        "task_id",
        "artifacts",
        "attempt",
        "origin_run_id",
        "origin_task_id",
        "cloned",
    }
)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _strip_run(path: str) -> str:
    """``run/step/task`` -> ``step/task`` (an input path as the scheduler records it)."""
    parts = path.strip("/").split("/")
    return "/".join(parts[-2:])


def _task_order(task_id: str) -> tuple[int, str]:
    return (int(task_id), "") if task_id.isdigit() else (1 << 62, task_id)


def _task_record(
    store: FlowDatastore, run_id: str, step: str, task_id: str
) -> dict[str, Any] | None:
    """A task's record: its successful attempt's, else its latest attempt's."""
    done = store.read_done(run_id, step, task_id)
    if done is not None:
        return store.read_metadata(run_id, step, task_id, int(done["attempt"]))
    attempts = store.list_attempts(run_id, step, task_id)
    return store.read_metadata(run_id, step, task_id, attempts[-1]) if attempts else None


#: Records read at once when one step's tasks are all read (one GET each on S3).
_RECORD_READERS = 16


def _latest_records(store: FlowDatastore, run_id: str, step: str) -> dict[str, dict[str, Any]]:
    """Each task of ``step`` that recorded an attempt, with its latest attempt's record:
    one listing of the step, then the records read in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    latest: dict[str, int] = {}
    for key in store.storage.list_keys(f"{store.run_prefix(run_id)}/{step}"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "metadata.json" and parts[1].isdigit():
            latest[parts[0]] = max(latest.get(parts[0], 0), int(parts[1]))

    def read(task_id: str) -> dict[str, Any] | None:
        return store.read_metadata(run_id, step, task_id, latest[task_id])

    with ThreadPoolExecutor(max_workers=_RECORD_READERS) as pool:
        found = zip(latest, pool.map(read, latest), strict=True)
        return {task_id: record for task_id, record in found if record is not None}


class DataArtifact:
    """One artifact; ``.data`` loads its value. ``DataArtifact("Flow/12/start/1/x")`` or
    ``task["x"]``.

    Raises:
        ClientError: the task or artifact does not exist (only when given a pathspec).
        MetaflowNamespaceMismatch: the run is not in the current namespace (only when given
            a pathspec, unless made with ``_namespace_check=False``; see :class:`Run`).
    """

    def __init__(
        self,
        store: FlowDatastore | str,
        key: str | None = None,
        name: str | None = None,
        *,
        datastore_root: str | None = None,
        task: str = "",
        _namespace_check: bool = True,
    ) -> None:
        if isinstance(store, str):
            *parts, name = _split_pathspec(
                store, "DataArtifact", "FlowName/RunID/StepName/TaskID/ArtifactName"
            )
            owner = Task("/".join(parts), datastore_root=datastore_root, _namespace_check=False)
            found = owner[name]  # raises ClientError when the task has no such artifact
            owner.step.run._require_namespace(f"DataArtifact('{store}')", _namespace_check)
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
