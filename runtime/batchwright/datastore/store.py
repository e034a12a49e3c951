"""The flow datastore: content-addressed artifacts and per-task records.

Layout, relative to the storage root (every lookup is a direct key, never a scan)::

    <Flow>/data/<k[:2]>/<k>                          pickled artifact, k = sha256 of the pickle
    <Flow>/runs/<run>/run.json                       run record (parameters, times, status)
    <Flow>/runs/<run>/<step>/<task>/<attempt>/metadata.json
    <Flow>/runs/<run>/<step>/<task>/<attempt>/stdout.log, stderr.log
    <Flow>/runs/<run>/<step>/<task>/DONE             written last: {"attempt": n}

A task's ``metadata.json`` maps each artifact name to its content key, so identical
values are stored once and a task inherits its parent's artifacts by copying keys.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Any

from batchwright.datastore.storage import Storage, stream_sha256
from batchwright.errors import ArtifactIntegrityError

#: Version of the on-disk layout, recorded in every metadata and run record.
LAYOUT_VERSION = 1
#: Pickles up to this size are hashed and written from memory; larger ones spill to disk.
SPOOL_BYTES = 16 * 1024 * 1024
PARAMETERS_STEP = "_parameters"
PARAMETERS_TASK = "0"
#: The folder of a run a state machine orchestrates where the state machine itself writes
#: (the execution's Parameters, the failures it saw).
DEPLOYMENT_FOLDER = "_deployment"
#: A step's failure as the state machine recorded it: ``failed-<step>.json``.
FAILURE_PREFIX = "failed-"


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


class FlowDatastore:
    """Everything one flow stores, on one storage backend."""

    def __init__(self, storage: Storage, flow_name: str) -> None:
        self.storage = storage
        self.flow_name = flow_name
        self._stored: set[str] = set()

    # -- artifacts --------------------------------------------------------------------

    def _artifact_key(self, key: str) -> str:
        return f"{self.flow_name}/data/{key[:2]}/{key}"

    def save(self, value: Any) -> str:
        """Pickle ``value``, store it under the sha256 of the pickle, return that key."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            writer = _HashingWriter(spool)
            pickle.dump(value, writer, protocol=pickle.HIGHEST_PROTOCOL)
            key = writer.digest.hexdigest()
            if key in self._stored:
                return key
            location = self._artifact_key(key)
            if not self.storage.keep(location):
                spool.seek(0)
                self.storage.write_stream(location, spool)  # type: ignore[arg-type]
            self._stored.add(key)
            return key

    def artifact_size(self, key: str) -> int | None:
        """The size in bytes of the pickle stored under the artifact key ``key`` (a task's
        metadata maps names to these keys), asked of the storage (a ``stat``, or one
        HeadObject on S3): a large artifact is neither downloaded nor unpickled. None when
        its blob is missing."""
        try:
            return self.storage.size(self._artifact_key(key))
        except FileNotFoundError:
            return None

    def load(self, key: str, what: str = "") -> Any:
        """Unpickle the artifact stored under ``key`` (streamed from storage), after checking
        that its bytes still have that SHA-256: a changed artifact is never unpickled.

        ``what`` names it in the error (``artifact 'model' of task F/3/train/2``).

        Raises:
            ArtifactIntegrityError: the bytes have another SHA-256.
        """
        location = self._artifact_key(key)
        with self.storage.open_read(location) as stream:
            actual = stream_sha256(stream)
            if actual != key:
                raise ArtifactIntegrityError(
                    f"{what or 'an artifact'} is stored under its SHA-256 {key}, but the "
                    f"bytes at {self.storage.root.rstrip('/')}/{location} have SHA-256 "
                    f"{actual}: they were changed after they were written, so they are not "
                    "loaded. Find who wrote them, then run the step that produced the "
                    "artifact again (resume from it)."
                )
            stream.seek(0)
            return pickle.load(stream)

    # -- the items of a foreach ----------------------------------------------------------

    def save_split(self, values: Sequence[Any]) -> str:
        """Stores the items a foreach fans out over as one blob each child reads its own
        item from: an 8-byte count, then ``count + 1`` 8-byte positions in the blob (where
        each item's pickle starts, and where the last ends), then the pickles. Returns the
        blob's key (its content hash)."""
        pickles = [pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for v in values]
        position = 8 + 8 * (len(pickles) + 1)
        positions = [position]
        for item in pickles:
            position += len(item)
            positions.append(position)
        blob = struct.pack(f"<Q{len(positions)}Q", len(pickles), *positions) + b"".join(pickles)
        key = hashlib.sha256(blob).hexdigest()
        location = self._artifact_key(key)
        if not self.storage.keep(location):
            self.storage.write_bytes(location, blob)
        return key

    def load_item(self, split_key: str, index: int) -> Any:
        """Item ``index`` of a split stored by :meth:`save_split`: two ranged reads (where
        it is, then its pickle), whatever the number of items."""
        location = self._artifact_key(split_key)
        where = self.storage.read_range(location, 8 + 8 * index, 24 + 8 * index)
        start, end = struct.unpack("<QQ", where)
        return pickle.loads(self.storage.read_range(location, start, end))

    # -- runs -------------------------------------------------------------------------

    def run_prefix(self, run_id: str) -> str:
        """Key prefix of a run."""
        return f"{self.flow_name}/runs/{run_id}"

    def task_prefix(self, run_id: str, step: str, task_id: str) -> str:
        """Key prefix of a task."""
        return task_prefix(self.flow_name, run_id, step, task_id)

    def write_run(self, run_id: str, record: dict[str, Any]) -> None:
        """Write (or replace) the run record."""
        body = {"layout_version": LAYOUT_VERSION, "flow": self.flow_name, "run_id": run_id}
        self._write_json(f"{self.run_prefix(run_id)}/run.json", {**body, **record})

    def write_parameters(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Store the run's parameters (with its configs and the flow's constants) as the
        finished task ``_parameters/0`` that ``start`` reads, as Metaflow does."""
        refs = {name: self.save(value) for name, value in values.items()}
        metadata = {
            "flow": self.flow_name,
            "run_id": run_id,
            "step": PARAMETERS_STEP,
            "task_id": PARAMETERS_TASK,
            "attempt": 0,
            "status": "succeeded",
            "artifacts": refs,
            "foreach_frames": [],
        }
        self.write_metadata(run_id, PARAMETERS_STEP, PARAMETERS_TASK, 0, metadata)
        self.mark_done(run_id, PARAMETERS_STEP, PARAMETERS_TASK, 0)

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        """The run record, or None.

        A run a state machine orchestrates says ``running`` until its ``end`` task
        records success or a task records its failure; a failure no task lived to record
        (a job killed, never submitted, timed out) the state machine records itself under
        ``_deployment/failed-<step>.json``, and the record reads as failed then."""
        record = self._read_json(f"{self.run_prefix(run_id)}/run.json")
        if (
            record is not None
            and record.get("status") == "running"
            and record.get("orchestrator") == "step-functions"
        ):
            record = self._with_recorded_failure(run_id, record)
        return record

    def _with_recorded_failure(self, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
        folder = f"{self.run_prefix(run_id)}/{DEPLOYMENT_FOLDER}"
        for name in sorted(self.storage.list_children(folder)):
            if not (name.startswith(FAILURE_PREFIX) and name.endswith(".json")):
                continue
            step = name[len(FAILURE_PREFIX) : -len(".json")]
            error = self._read_json(f"{folder}/{name}") or {}
            reason = ": ".join(str(error[k]) for k in ("Error", "Cause") if error.get(k))
            return {
                **record,
                "status": "failed",
                "failed_task": f"{self.flow_name}/{run_id}/{step}",
                "reason": reason[:2000] or f"step '{step}' failed",
            }
        return record

    def list_runs(self) -> list[str]:
        """Run ids of this flow, oldest first. A run id is its start in microseconds
        since the epoch, except for runs a state machine started on its own (a schedule:
        the execution's name): those are placed by their record's start time."""

        def order(run_id: str) -> tuple[int, str]:
            if run_id.isdigit():
                return int(run_id), ""
            started = (self._read_json(f"{self.run_prefix(run_id)}/run.json") or {}).get(
                "started_at"
            )
            if isinstance(started, int | float) and not isinstance(started, bool):
                return int(started * 1_000_000), run_id
            return 1 << 62, run_id  # no record yet: after the others

        return sorted(self.storage.list_children(f"{self.flow_name}/runs"), key=order)

    def list_steps(self, run_id: str) -> list[str]:
        """Steps with at least one task in the run (the parameters pseudo-step excluded)."""
        return [
            name
            for name in self.storage.list_children(self.run_prefix(run_id))
            if not name.endswith(".json") and not name.startswith("_")
        ]

    def list_tasks(self, run_id: str, step: str) -> list[str]:
        """Task ids of a step, in numeric order."""
        names = self.storage.list_children(f"{self.run_prefix(run_id)}/{step}")
        return sorted(names, key=_run_order)

    def list_attempts(self, run_id: str, step: str, task_id: str) -> list[int]:
        """Attempt numbers recorded for a task."""
        names = self.storage.list_children(self.task_prefix(run_id, step, task_id))
        return sorted(int(n) for n in names if n.isdigit())

    def write_timings(self, run_id: str, chunk: str, body: bytes) -> None:
        """Write one chunk of attempt timings (JSON lines; see :mod:`batchwright.timings`)."""
        self.storage.write_bytes(f"{self.run_prefix(run_id)}/_timings/{chunk}.jsonl", body)

    def read_timings(self, run_id: str) -> list[str]:
        """Every attempt-timing line of the run, chunk by chunk in the order written."""
        prefix = f"{self.run_prefix(run_id)}/_timings"
        lines: list[str] = []
        for chunk in sorted(self.storage.list_children(prefix)):
            data = self.storage.read_bytes(f"{prefix}/{chunk}")
            lines.extend(line for line in (data or b"").decode().splitlines() if line.strip())
        return lines

    # -- tasks ------------------------------------------------------------------------

    def write_metadata(
        self, run_id: str, step: str, task_id: str, attempt: int, metadata: dict[str, Any]
    ) -> None:
        """Write an attempt's metadata (artifact keys included)."""
        key = f"{self.task_prefix(run_id, step, task_id)}/{attempt}/metadata.json"
        self._write_json(key, {"layout_version": LAYOUT_VERSION, **metadata})

    def read_metadata(
        self, run_id: str, step: str, task_id: str, attempt: int | None = None
    ) -> dict[str, Any] | None:
        """An attempt's metadata; by default the attempt named by the done marker."""
        if attempt is None:
            done = self.read_done(run_id, step, task_id)
            if done is None:
                return None
            attempt = int(done["attempt"])
        return self._read_json(f"{self.task_prefix(run_id, step, task_id)}/{attempt}/metadata.json")

    def write_log(
        self, run_id: str, step: str, task_id: str, attempt: int, stream: str, data: IO[bytes]
    ) -> None:
        """Store an attempt's ``stdout`` or ``stderr`` from a file object."""
        key = f"{self.task_prefix(run_id, step, task_id)}/{attempt}/{stream}.log"
        self.storage.write_stream(key, data)  # type: ignore[arg-type]

    def read_log(
        self, run_id: str, step: str, task_id: str, attempt: int, stream: str
    ) -> bytes | None:
        """An attempt's log, or None."""
        key = f"{self.task_prefix(run_id, step, task_id)}/{attempt}/{stream}.log"
        return self.storage.read_bytes(key)

    def mark_done(self, run_id: str, step: str, task_id: str, attempt: int) -> None:
        """Write the done marker: the LAST write of a successful task."""
        key = f"{self.task_prefix(run_id, step, task_id)}/DONE"
        self._write_json(key, {"attempt": attempt})

    def read_done(self, run_id: str, step: str, task_id: str) -> dict[str, Any] | None:
        """The done marker, or None while the task has not succeeded."""
        return self._read_json(f"{self.task_prefix(run_id, step, task_id)}/DONE")

    def finished_attempts(self, run_id: str, step: str) -> dict[str, int]:
        """The step's finished tasks and the attempt that finished each, from one prefix
        listing, not a request per task.

        A task is finished when its done marker is listed; its attempt is taken to be the
        highest one that recorded metadata. Nearly always the one the marker names (a
        later attempt starts only after an earlier one failed); :meth:`finished_metadata`
        checks, and reads the marker when it is not.
        """
        attempts: dict[str, int] = {}
        done: set[str] = set()
        for key in self.storage.list_keys(f"{self.run_prefix(run_id)}/{step}"):
            parts = key.split("/")
            if len(parts) == 2 and parts[1] == "DONE":
                done.add(parts[0])
            elif len(parts) == 3 and parts[2] == "metadata.json" and parts[1].isdigit():
                attempts[parts[0]] = max(attempts.get(parts[0], 0), int(parts[1]))
        return {task: attempts.get(task, 0) for task in done}

    def finished_metadata(
        self, run_id: str, step: str, task_id: str, attempt: int | None
    ) -> dict[str, Any] | None:
        """The metadata of a finished task's successful attempt, given the attempt
        :meth:`finished_attempts` found (one GET), or None when it is not finished."""
        if attempt is not None:
            metadata = self.read_metadata(run_id, step, task_id, attempt)
            if metadata is not None and metadata.get("status") == "succeeded":
                return metadata
        return self.read_metadata(run_id, step, task_id)

    def clone_task(
        self,
        origin_run: str,
        run_id: str,
        step: str,
        task_id: str,
        extra: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Copy a finished task's records into ``run_id`` (artifacts are shared by key).

        ``metadata``: the task's, when already read (by :meth:`finished_metadata`).
        """
        if metadata is None or "attempt" not in metadata:
            done = self.read_done(origin_run, step, task_id)
            if done is None:
                raise FileNotFoundError(f"{origin_run}/{step}/{task_id} is not done")
            attempt = int(done["attempt"])
            metadata = self.read_metadata(origin_run, step, task_id, attempt) or {}
        else:
            attempt = int(metadata["attempt"])
        metadata = {**metadata, "run_id": run_id, **extra}
        source = self.task_prefix(origin_run, step, task_id)
        target = self.task_prefix(run_id, step, task_id)
        for stream in ("stdout", "stderr"):
            if self.storage.exists(f"{source}/{attempt}/{stream}.log"):
                self.storage.copy(
                    f"{source}/{attempt}/{stream}.log", f"{target}/{attempt}/{stream}.log"
                )
        self.write_metadata(run_id, step, task_id, attempt, metadata)
        self.mark_done(run_id, step, task_id, attempt)
        return metadata

    # -- helpers ----------------------------------------------------------------------

    def _write_json(self, key: str, value: dict[str, Any]) -> None:
        self.storage.write_bytes(key, json.dumps(value, indent=1, default=str).encode())

    def _read_json(self, key: str) -> dict[str, Any] | None:
        data = self.storage.read_bytes(key)
        if data is None:
            return None
        result: dict[str, Any] = json.loads(data)
        return result


def task_prefix(flow_name: str, run_id: str, step: str, task_id: str) -> str:
    """Key prefix of a task, relative to the datastore root."""
    return f"{flow_name}/runs/{run_id}/{step}/{task_id}"


def _run_order(name: str) -> tuple[int, str]:
    # Numeric ids sort by value; anything else after them, alphabetically.
    return (int(name), "") if name.isdigit() else (1 << 62, name)
