"""The run lease: one live orchestrator per run.

An orchestrator holds a lease on its run, and on the run it resumes, in the datastore
(``<Flow>/runs/<run>/lease.json``), renews it while it works and releases it at the end.
A second orchestrator that wants either run is refused while the holder is alive. A
holder is dead when it stopped renewing for :data:`LEASE_SECONDS`, or at once when it ran
on this machine and its process is gone (a SIGKILL, a crash); its lease is then taken
over, with a compare-and-swap so two newcomers cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchwright.datastore.store import FlowDatastore
from batchwright.errors import BatchwrightError, UserInputError

#: A lease not renewed for this long belongs to a dead orchestrator.
LEASE_SECONDS = 120.0
#: A live holder renews this often.
RENEW_SECONDS = LEASE_SECONDS / 4


class RunInUse(UserInputError):
    """Another orchestrator is driving the run (exit code 2: nothing was started)."""


class LeaseLost(BatchwrightError):
    """Another orchestrator took the run over (this one stopped renewing for too long)."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunLease:
    """The leases of one orchestrator on the runs it drives."""

    store: FlowDatastore
    run_ids: Sequence[str]
    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    _versions: dict[str, str] = field(default_factory=dict)
    _renewed_at: float = 0.0

    def _key(self, run_id: str) -> str:
        return f"{self.store.run_prefix(run_id)}/lease.json"

    def _record(self, run_id: str, released: bool = False) -> bytes:
        record = {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "run": run_id,
            "renewed_at": self.clock(),
            "seconds": LEASE_SECONDS,
            "released": released,
        }
        return json.dumps(record).encode()

    def _alive(self, record: dict[str, Any]) -> bool:
        if record.get("released") or record.get("owner") == self.owner:
            return False
        if self.clock() - float(record.get("renewed_at", 0)) >= LEASE_SECONDS:
            return False
        if record.get("host") == self.host:
            return _process_alive(int(record.get("pid", 0)))
        return True

    def acquire(self) -> None:
        """Takes the lease on every run, or none of them.

        Raises:
            RunInUse: a live orchestrator holds one of them.
        """
        taken: list[str] = []
        try:
            for run_id in dict.fromkeys(self.run_ids):
                self._take(run_id)
                taken.append(run_id)
        except RunInUse:
            for run_id in taken:
                self._write(run_id, released=True)
            raise
        self._renewed_at = self.clock()

    def _take(self, run_id: str) -> None:
        while True:
            current = self.store.storage.read_versioned(self._key(run_id))
            if current is not None:
                record = json.loads(current[0])
                if self._alive(record):
                    since = self.clock() - float(record.get("renewed_at", 0))
                    raise RunInUse(
                        f"run {self.store.flow_name}/{run_id} is being driven by another "
                        f"orchestrator (pid {record.get('pid')} on {record.get('host')}, "
                        f"lease renewed {since:.0f} s ago). Wait for it to finish, or stop "
                        "it; a dead orchestrator's lease lapses after "
                        f"{LEASE_SECONDS:.0f} s (at once on the same machine)."
                    )
            expected = current[1] if current else None
            version = self.store.storage.write_versioned(
                self._key(run_id), self._record(run_id), expected
            )
            if version is not None:
                self._versions[run_id] = version
                return
            # Another orchestrator wrote in between: look again.

    def renew(self) -> None:
        """Renews the leases when due (cheap to call on every loop of the scheduler).

        Raises:
            LeaseLost: another orchestrator took a run over while this one was silent.
        """
        if self.clock() - self._renewed_at < RENEW_SECONDS:
            return
        for run_id in self._versions:
            self._write(run_id, released=False)
        self._renewed_at = self.clock()

    def _write(self, run_id: str, *, released: bool) -> None:
        version = self.store.storage.write_versioned(
            self._key(run_id), self._record(run_id, released), self._versions.get(run_id)
        )
        if version is None:
            raise LeaseLost(
                f"run {self.store.flow_name}/{run_id} was taken over by another orchestrator "
                f"(this one stopped renewing its lease for over {LEASE_SECONDS:.0f} s); its "
                "jobs are that orchestrator's now, so they are left running."
            )
        self._versions[run_id] = version

    def release(self) -> None:
        """Gives the leases back (the run may be resumed by anyone at once)."""
        for run_id in list(self._versions):
            with contextlib.suppress(LeaseLost):  # someone else's now: nothing to give back
                self._write(run_id, released=True)
        self._versions.clear()
