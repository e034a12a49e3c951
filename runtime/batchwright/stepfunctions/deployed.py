"""The task side of a deployed run: what the scheduler does for a local run, done by the
tasks themselves when a state machine orchestrates.

* ``start`` records the run (``running``) and stores its parameters, configs and the
  flow's constants, from the execution's Parameters (which the state machine stored at
  :func:`~batchwright.stepfunctions.layout.deployment_key`) and the configs resolved at
  deploy time (:data:`CONFIGS_VARIABLE`).
* A foreach split publishes the size of its array jobs (:func:`publish_array_size`).
* ``end`` records the run as succeeded; a step that fails for good records it as failed
  (and the state machine records a failure it saw, see
  :meth:`~batchwright.datastore.store.FlowDatastore.read_run`). An attempt that failed in
  a way no retry can fix leaves a marker: later attempts of the task refuse at once.
* A task that already finished in an earlier attempt of its state (Step Functions retries
  a whole array job when one child fails) is not run again.

Standard library, boto3 and the runtime's own modules only: this runs in the job.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from batchwright.datastore.store import PARAMETERS_STEP, PARAMETERS_TASK
from batchwright.entrypoint import DoNotRetry, TaskArguments
from batchwright.identity import USER_VARIABLE
from batchwright.stepfunctions import layout

if TYPE_CHECKING:
    from batchwright.datastore import FlowDatastore
    from batchwright.graph import FlowGraph

#: The configs resolved when the flow was deployed (:meth:`RunConfigs.to_json`).
CONFIGS_VARIABLE = "BATCHWRIGHT_CONFIGS"
#: The run's tags, given when the flow was deployed (a JSON list).
TAGS_VARIABLE = "BATCHWRIGHT_TAGS"
#: What the run record says orchestrated the run.
ORCHESTRATOR = "step-functions"


class Placement(NamedTuple):
    """Where a deployed task stands: its inputs, or why it does nothing."""

    input_paths: tuple[str, ...]
    #: Why the task does not run (padding of an array, finished before), or None.
    skip: str | None = None


def place(graph: FlowGraph, store: FlowDatastore, args: TaskArguments) -> Placement:
    """The inputs of a deployed task, or why it has nothing to do.

    Raises:
        DoNotRetry: an earlier attempt failed in a way no retry can fix (Step Functions'
            Retry cannot tell an exit code from another, so the attempt refuses itself).
    """
    final = store.storage.read_bytes(_final_failure_key(store, args))
    if final is not None:
        raise DoNotRetry(
            f"{args.pathspec}: an earlier attempt failed in a way no retry can fix "
            f"({json.loads(final).get('reason')}); this attempt does not run the step again."
        )
    if store.read_done(args.run_id, args.step, args.task_id) is not None:
        return Placement((), "it finished in an earlier attempt of its state")
    if layout.is_padding(graph, store, args.run_id, args.step, args.split_index):
        return Placement((), "it pads the array job past the foreach's items")
    return Placement(layout.input_paths(graph, store, args.run_id, args.step, args.split_index))


def start_run(
    store: FlowDatastore,
    flow_class: type,
    args: TaskArguments,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Record the run and store its parameters (once: a retried ``start`` keeps them).

    Raises:
        DoNotRetry: a parameter's value is invalid, or the deployment's configs are
            unreadable (the execution's input must be fixed, so retrying cannot help).
    """
    from batchwright.configs import RunConfigs
    from batchwright.errors import BatchwrightError
    from batchwright.parameters import IncludeFile, flow_constants, flow_parameters

    if store.read_run(args.run_id) is None:
        store.write_run(
            args.run_id,
            {
                "status": "running",
                "started_at": time.time(),
                "flow_file": args.flow_file,
                "origin_run_id": None,
                "tags": sorted(set(json.loads(environ.get(TAGS_VARIABLE) or "[]"))),
                "user": environ.get(USER_VARIABLE),
                "orchestrator": ORCHESTRATOR,
            },
        )
    if store.read_done(args.run_id, PARAMETERS_STEP, PARAMETERS_TASK) is not None:
        return
    stored = store.storage.read_bytes(
        layout.deployment_key(args.flow, args.run_id, layout.PARAMETERS_OBJECT)
    )
    if stored is None:
        raise DoNotRetry(
            f"run {args.run_id}: the state machine stored no Parameters for it; deploy the "
            "flow again with this batchwright version."
        )
    try:
        configs = RunConfigs.from_json(environ.get(CONFIGS_VARIABLE, ""))
        given = json.loads(stored)
        if not isinstance(given, dict):
            raise ValueError(f"the execution's Parameters must be an object, got {given!r:.80}")
        values: dict[str, Any] = {}
        for attribute, parameter in flow_parameters(flow_class).items():
            text = given.get(parameter.name)
            if text is not None and not isinstance(text, str):
                text = json.dumps(text)
            if isinstance(parameter, IncludeFile) and text is not None:
                # The deployer read the file: the input carries its content.
                values[attribute] = text if parameter.is_text else base64.b64decode(text)
            else:
                values[attribute] = parameter.resolve(text, args.flow, {}, configs.namespace())
    except (BatchwrightError, ValueError) as error:
        raise DoNotRetry(f"run {args.run_id}: {error}") from None
    store.write_parameters(
        args.run_id, {**flow_constants(flow_class), **values, **configs.artifacts()}
    )


def publish_array_size(store: FlowDatastore, run_id: str, step: str, num_splits: int) -> None:
    """Write where the state machine reads it how many children the foreach's array jobs
    have.

    Raises:
        DoNotRetry: more items than an AWS Batch array job can have.
    """
    if num_splits > layout.MAX_ARRAY_SIZE:
        raise DoNotRetry(
            f"step '{step}': the foreach has {num_splits:,} items; a deployed flow runs a "
            f"foreach as one AWS Batch array job, which has at most {layout.MAX_ARRAY_SIZE:,} "
            "children. Split the items into batches of at most that many."
        )
    size = layout.array_size(num_splits)
    store.storage.write_bytes(
        layout.array_size_key(store.flow_name, run_id, step), str(size).encode()
    )


def _final_failure_key(store: FlowDatastore, args: TaskArguments) -> str:
    return (
        f"{store.task_prefix(args.run_id, args.step, args.task_id)}/{layout.FINAL_FAILURE_OBJECT}"
    )


def mark_final_failure(store: FlowDatastore, args: TaskArguments, reason: str) -> None:
    """Leave the marker that makes later attempts of this task refuse at once."""
    body = {"attempt": args.retry_count, "reason": reason}
    store.storage.write_bytes(_final_failure_key(store, args), json.dumps(body).encode())


def finish_run(
    store: FlowDatastore,
    run_id: str,
    *,
    failed_task: str | None = None,
    reason: str | None = None,
) -> None:
    """Record the run as succeeded, or as failed in ``failed_task`` with ``reason``."""
    record = store.read_run(run_id) or {}
    record = {key: value for key, value in record.items() if key not in ("flow", "run_id")}
    record.update(
        status="failed" if failed_task else "succeeded",
        finished_at=time.time(),
        failed_task=failed_task,
        reason=reason,
    )
    store.write_run(run_id, record)
