"""The moto server, with compute capacity: at most N job containers run at once.

moto starts every Batch job the moment it is submitted: a 300-way array job is 300
containers at once, each polled by its own thread, which a small machine cannot run
(and real AWS would not: a compute environment's ``maxvCpus`` bounds what runs, and the
rest waits in ``RUNNABLE``). Run through this module, the server holds a job that would
start beyond :data:`SLOTS_VARIABLE` containers in ``RUNNABLE`` until one ends, as Batch
holds jobs waiting for capacity. Its ``startedAt`` is when it got its slot, as on AWS.

    python -m batchwright_localaws.motoserver -H 127.0.0.1 -p PORT   # moto.server's options

``BATCHWRIGHT_LOCALAWS_SLOTS`` sets N (default: twice the machine's cores). A job
terminated while it waits never starts. With container execution off (moto's config API)
jobs do not run and the slots do not apply.

Two more gaps are filled. :func:`install_updates`: moto's UpdateComputeEnvironment ignores
``computeResources`` (a TODO in moto), so a compute environment updated in place, as
CloudFormation updates ``MaxvCpus``, would keep its old sizes. :func:`install_multinode`
(:mod:`batchwright_localaws.multinode`): multi-node parallel jobs run as on Batch, with
SubmitJob's ``nodeOverrides``, the per-node ``AWS_BATCH_*`` variables, one log stream per
node (``<definition>/default/<jobId>-node-<i>``), node records for DescribeJobs
``<jobId>#<i>``, and the main node deciding the job's outcome. One emulator adaptation
there: every node shares the host's network, so child nodes reach the main node on
``127.0.0.1``. A multi-node job takes one container slot whatever its node count (it needs
all its containers at once; partial holds could deadlock).

:func:`install_stepfunctions` (:mod:`batchwright_localaws.stepfunctions`): moto's Step
Functions interpreter (switched on by the local AWS through moto's config API,
``execute_state_machine``) leaves the conversion of a Task's PascalCase ``Parameters`` to
the API's names, and of the API's answer back to PascalCase, as empty stubs, so
``batch:submitJob.sync`` as written for AWS fails there. The server fills them in from
botocore's model of each operation, as Step Functions does, reads an ``aws-sdk`` result's
streaming ``Body`` into text, gives each retry of a ``.sync`` task a task token of its own
(moto's retry reused the spent one and timed out at once), lets a state machine run more
than once, and names aws-sdk S3 errors ``S3.*``. An emulator adaptation: only names are
converted, never values, and a field the model does not know is left as written; moto's
client then refuses it (the task fails with ``States.Runtime`` naming the field) where
AWS refuses the state machine or the call. Nothing else of moto changes.
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


#: The sizes UpdateComputeEnvironment may change in place.
UPDATABLE_SIZES = ("minvCpus", "maxvCpus", "desiredvCpus")


def install_updates() -> None:
    """Makes moto's UpdateComputeEnvironment apply the sizes it is given (min, max and
    desired vCPUs), as Batch does (patches ``moto.batch.models.BatchBackend``)."""
    from moto.batch import models

    backend: Any = models.BatchBackend
    update = backend.update_compute_environment
    if getattr(update, "_batchwright", False):
        return

    def sizing_update(
        self: Any,
        compute_environment_name: str,
        state: str | None,
        compute_resources: Any | None,
        service_role: str | None,
    ) -> tuple[str, str]:
        result: tuple[str, str] = update(
            self, compute_environment_name, state, compute_resources, service_role
        )
        environment = self.get_compute_environment(compute_environment_name)
        if compute_resources and environment is not None and environment.compute_resources:
            for key in UPDATABLE_SIZES:
                if key in compute_resources:
                    environment.compute_resources[key] = compute_resources[key]
        return result

    sizing_update._batchwright = True  # type: ignore[attr-defined]
    backend.update_compute_environment = sizing_update


def install_multinode() -> None:
    """Makes moto's multi-node parallel jobs behave as Batch's (see
    :mod:`batchwright_localaws.multinode`). Idempotent."""
    from batchwright_localaws import multinode

    multinode.install()


def install_stepfunctions() -> None:
    """Makes moto's Step Functions call service integrations with the field names AWS uses
    (see :mod:`batchwright_localaws.stepfunctions`). Idempotent."""
    from batchwright_localaws import stepfunctions

    stepfunctions.install()


def main(argv: list[str] | None = None) -> None:
    """Installs the capacity, the in-place updates, multi-node jobs and Step Functions'
    integrations, then runs ``moto.server`` with ``argv``."""
    from moto.server import main as moto_main

    install(int(os.environ.get(SLOTS_VARIABLE) or default_slots()))
    install_updates()
    install_multinode()
    install_stepfunctions()
    moto_main(argv)


if __name__ == "__main__":
    main()
