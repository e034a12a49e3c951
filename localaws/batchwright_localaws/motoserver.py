"""The moto server, with compute capacity: at most N job containers run at once.

moto starts every Batch job the moment it is submitted: a 300-way array job is 300
containers at once, each polled by its own thread, which a small machine cannot run
(and real AWS would not: a compute environment's ``maxvCpus`` bounds what runs, and the
rest waits in ``RUNNABLE``). Run through this module, the server holds a job that would
start beyond :data:`SLOTS_VARIABLE` containers in ``RUNNABLE`` until one ends, as Batch
holds jobs waiting for capacity. Its ``startedAt`` is when it got its slot, as on AWS.

    python -m batchwright_localaws.motoserver -H 127.0.0.1 -p PORT   # moto.server's options

``BATCHWRIGHT_LOCALAWS_SLOTS`` sets N (default: twice the machine's cores). A job
terminated while it waits never starts. Nothing else of moto changes; with container
execution off (moto's config API) jobs do not run and the slots do not apply.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Any

#: The environment variable that sets how many job containers may run at once.
SLOTS_VARIABLE = "BATCHWRIGHT_LOCALAWS_SLOTS"


class JobTerminatedWhileWaiting(Exception):
    """A job was terminated before it got capacity: it fails without starting."""


def default_slots() -> int:
    """Twice the machine's cores, at least 2."""
    return max(2, 2 * (os.cpu_count() or 1))


def install(slots: int) -> None:
    """Gives moto's Batch jobs ``slots`` container slots (patches ``moto.batch.models.Job``)."""
    from moto.batch import models

    job: Any = models.Job  # patched in place: moto's own typing does not follow
    gate = threading.BoundedSemaphore(slots)
    start_attempt = job._start_attempt
    mark_stopped = job._mark_stopped
    status = job.status  # ManagedState's property

    def waiting_start_attempt(self: Any) -> None:
        # Called when the job leaves PENDING, before its containers start.
        self._batchwright_waiting = True
        try:
            while not gate.acquire(timeout=0.5):
                if self.stop:
                    raise JobTerminatedWhileWaiting(self.job_id)
            self._batchwright_slot = True
        finally:
            self._batchwright_waiting = False
        self.job_started_at = datetime.now()
        start_attempt(self)

    def releasing_mark_stopped(self: Any, success: bool = True) -> None:
        try:
            mark_stopped(self, success)
        finally:
            if getattr(self, "_batchwright_slot", False):
                self._batchwright_slot = False
                gate.release()

    def status_while_waiting(self: Any) -> str | None:
        if getattr(self, "_batchwright_waiting", False):
            return "RUNNABLE"
        return status.fget(self)  # type: ignore[no-any-return]

    job._start_attempt = waiting_start_attempt
    job._mark_stopped = releasing_mark_stopped
    job.status = property(status_while_waiting, status.fset)


def main(argv: list[str] | None = None) -> None:
    """Installs the capacity, then runs ``moto.server`` with ``argv``."""
    from moto.server import main as moto_main

    install(int(os.environ.get(SLOTS_VARIABLE) or default_slots()))
    moto_main(argv)


if __name__ == "__main__":
    main()
