"""The submission journal: what a run handed to a remote backend, recorded before and after.

Before each SubmitJob the backend records its intent (the deterministic job name, the
queue, the tasks); after it, the job id. An orchestrator that dies therefore leaves, for
every job it may have started, either a job id or a name that ListJobs can find. A
resumed run reads the journal of the run it resumes and reattaches to the jobs still
going instead of submitting them again.

Layout: ``<Flow>/runs/<run>/_submissions/<job name>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from batchwright.datastore.store import FlowDatastore

#: The folder of a run that holds its submissions (``_`` keeps it out of the steps).
FOLDER = "_submissions"


@dataclass(frozen=True)
class SubmittedTask:
    """One task of a submission: which attempt of which task, with which inputs."""

    step: str
    task_id: str
    attempt: int
    #: ``run/step/task`` pathspecs of its inputs.
    input_paths: tuple[str, ...]
    split_index: int | None = None


@dataclass(frozen=True)
class Submission:
    """One job (or array job) a backend submitted, or was about to submit."""

    job_name: str
    backend: str
    #: The queue as submitted (name or ARN).
    queue: str
    #: One task, or the members of an array job in child-index order.
    tasks: tuple[SubmittedTask, ...]
    #: When the intent was recorded (seconds since the epoch).
    recorded_at: float
    #: How many times the attempt was submitted again after its capacity failed.
    resubmission: int = 0
    #: The job id, once SubmitJob answered.
    job_id: str | None = None
    #: The members are the nodes of one multi-node job (a parallel step), not an array.
    nodes: bool = False

    def job_id_of(self, index: int, job_id: str | None = None) -> str | None:
        """The id of the job running member ``index``: the job itself, its array child
        (``<id>:<index>``), or its node (``<id>#<index>``)."""
        parent = job_id or self.job_id
        if parent is None:
            return None
        if self.nodes:
            return f"{parent}#{index}"
        return parent if len(self.tasks) == 1 else f"{parent}:{index}"

    def to_json(self) -> str:
        """The record as stored."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Submission:
        """A stored record."""
        data: dict[str, Any] = json.loads(text)
        tasks = tuple(
            SubmittedTask(**{**t, "input_paths": tuple(t["input_paths"])}) for t in data["tasks"]
        )
        # Fields a later version added are left out, so that it can still be resumed.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and k != "tasks"}, tasks=tasks)


class Journal:
    """The submissions of one run, in its datastore."""

    def __init__(self, store: FlowDatastore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def _key(self, run_id: str, job_name: str) -> str:
        return f"{self.store.run_prefix(run_id)}/{FOLDER}/{job_name}.json"

    def intend(self, submission: Submission) -> None:
        """Records a submission about to be made (before SubmitJob)."""
        self.store.storage.write_bytes(
            self._key(self.run_id, submission.job_name), submission.to_json().encode()
        )

    def submitted(self, submission: Submission, job_id: str) -> Submission:
        """Records the job id SubmitJob answered."""
        done = replace(submission, job_id=job_id)
        self.store.storage.write_bytes(
            self._key(self.run_id, submission.job_name), done.to_json().encode()
        )
        return done

    def entries(self, run_id: str | None = None) -> list[Submission]:
        """The submissions of a run (this one by default), oldest first."""
        run = run_id or self.run_id
        names = self.store.storage.list_children(f"{self.store.run_prefix(run)}/{FOLDER}")
        found = []
        for name in names:
            data = self.store.storage.read_bytes(f"{self.store.run_prefix(run)}/{FOLDER}/{name}")
            if data is not None:
                found.append(Submission.from_json(data))
        return sorted(found, key=lambda s: s.recorded_at)


def latest_by_task(
    submissions: Sequence[Submission],
) -> Mapping[tuple[str, tuple[str, ...], int | None], tuple[Submission, int]]:
    """For each task (step, inputs without their run id, split index): its latest
    submission and the task's member index in it."""
    latest: dict[tuple[str, tuple[str, ...], int | None], tuple[Submission, int]] = {}
    for submission in submissions:  # oldest first: later ones replace earlier ones
        for index, task in enumerate(submission.tasks):
            inputs = tuple(p.split("/", 1)[1] if "/" in p else p for p in task.input_paths)
            latest[(task.step, inputs, task.split_index)] = (submission, index)
    return latest
