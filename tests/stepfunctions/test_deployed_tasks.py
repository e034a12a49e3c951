"""The task side of a deployed flow, without AWS: each step's deployed command run as the
state machine would run it (the execution's name, Step Functions' retry count and Batch's
array index in the environment), against a local datastore, in the state machine's order.

What the state machine itself does (which job runs when) is checked on the local AWS in
tests/e2e/test_step_functions.py; here, that the tasks find their inputs, store the run's
parameters, publish the array size, pad, skip finished work and record the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.environment.descriptors import environment, queue

from batchwright.client import Flow, default_namespace, namespace
from batchwright.datastore import open_datastore
from batchwright.entrypoint import (
    ARRAY_INDEX_VARIABLE,
    EXECUTION_VARIABLE,
    EXIT_DO_NOT_RETRY,
    EXIT_STEP_FAILED,
    EXIT_SUCCESS,
    RETRY_COUNT_VARIABLE,
    deployed_arguments,
)
from batchwright.environment.descriptor import DESCRIPTOR_OUTPUT_KEY
from batchwright.stepfunctions import layout

FLOW_FILE = Path(__file__).resolve().parent / "flows" / "production_flow.py"
FLOW = "ProductionFlow"


class Machine:
    """Runs deployed steps the way the compiled state machine does."""

    def __init__(self, datastore: Path, run_id: str) -> None:
        self.datastore = datastore
        self.run_id = run_id

    def step(
        self,
        step: str,
        *,
        index: int | None = None,
        retry: int = 0,
        max_retries: int = 0,
        parameters: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        arguments = deployed_arguments(
            flow_file=FLOW_FILE.name,
            flow=FLOW,
            step=step,
            datastore_root=str(self.datastore),
            max_retries=max_retries,
            array=index is not None,
        )
        env = {
            **os.environ,
            EXECUTION_VARIABLE: self.run_id,
            RETRY_COUNT_VARIABLE: str(retry),
            "BATCHWRIGHT_USER": "deployer",
        }
        if index is not None:
            env[ARRAY_INDEX_VARIABLE] = str(index)
        if parameters is not None:
            # What the state machine's first task stores for start.
            key = layout.deployment_key(FLOW, self.run_id, layout.PARAMETERS_OBJECT)
            (self.datastore / key).parent.mkdir(parents=True, exist_ok=True)
            (self.datastore / key).write_text(json.dumps(parameters))
        return subprocess.run(
            [sys.executable, "-m", "batchwright.task", *arguments],
            cwd=FLOW_FILE.parent,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def ok(self, step: str, **kwargs: object) -> None:
        done = self.step(step, **kwargs)  # type: ignore[arg-type]
        assert done.returncode == EXIT_SUCCESS, done.stderr

    def array_size(self, foreach: str) -> int:
        key = layout.array_size_key(FLOW, self.run_id, foreach)
        return int((self.datastore / key).read_text())

    def record(self) -> dict[str, object]:
        return open_datastore(FLOW, str(self.datastore)).read_run(self.run_id) or {}


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path / "store", "4242")


def test_a_deployed_run_goes_through_its_steps_in_the_state_machines_order(
    machine: Machine,
) -> None:
    machine.ok("start", parameters={"scale": "3"})
    assert machine.record()["status"] == "running"
    machine.ok("left")
    # The @retry step fails once: the run is not failed while a retry is left.
    first = machine.step("right", max_retries=1)
    assert first.returncode == EXIT_STEP_FAILED
    assert machine.record()["status"] == "running"
    machine.ok("right", retry=1, max_retries=1)
    machine.ok("join_sides")
    size = machine.array_size("join_sides")
    assert size == 8
    for index in range(size):
        machine.ok("square", index=index)
    machine.ok("gather")
    machine.ok("end")

    record = machine.record()
    assert record["status"] == "succeeded" and record["orchestrator"] == "step-functions"
    # Runs are in the namespace of who deployed the flow.
    namespace("user:deployer")
    try:
        run = Flow(FLOW, str(machine.datastore)).latest_run
        assert run is not None and run.id == machine.run_id and run.successful
        gather = run["gather"].task.data
        assert gather.values == [i * i * 3 for i in range(8)]
        assert run["join_sides"].task.data.right_attempt == 1
        assert sorted(t.id for t in run["square"]) == [str(i) for i in range(8)]
        assert run["square"]["5"].data.value == 5 * 5 * 3
    finally:
        default_namespace()


def test_array_padding_and_finished_children_do_nothing(machine: Machine) -> None:
    machine.ok("start", parameters={"count": "1"})
    machine.ok("left")
    machine.ok("right", retry=1, max_retries=1)
    machine.ok("join_sides")
    # Batch runs arrays of at least 2: child 1 of a one-item foreach pads it.
    assert machine.array_size("join_sides") == 2
    machine.ok("square", index=0)
    padding = machine.step("square", index=1)
    assert padding.returncode == EXIT_SUCCESS
    assert "pads the array job" in padding.stderr
    store = open_datastore(FLOW, str(machine.datastore))
    assert set(store.finished_attempts(machine.run_id, "square")) == {"0"}
    # Step Functions retries a whole array job when one child fails: a child that
    # finished before is not run again.
    again = machine.step("square", index=0, retry=1, max_retries=1)
    assert again.returncode == EXIT_SUCCESS
    assert "finished in an earlier attempt" in again.stderr
    assert store.finished_attempts(machine.run_id, "square") == {"0": 0}
    machine.ok("gather")
    assert Flow(FLOW, str(machine.datastore), _namespace_check=False)[machine.run_id][
        "gather"
    ].task.data.values == [0]


def test_the_last_failing_attempt_records_the_run_as_failed(machine: Machine) -> None:
    machine.ok("start", parameters={})
    failed = machine.step("right", max_retries=0)
    assert failed.returncode == EXIT_STEP_FAILED
    record = machine.record()
    assert record["status"] == "failed"
    assert record["failed_task"] == f"{FLOW}/{machine.run_id}/right/1"
    assert "on purpose" in str(record["reason"])


def test_a_bad_parameter_fails_start_without_retry(machine: Machine) -> None:
    failed = machine.step("start", parameters={"scale": "many"}, max_retries=3)
    assert failed.returncode == EXIT_DO_NOT_RETRY
    assert "scale" in failed.stderr and "many" in failed.stderr
    assert machine.record()["status"] == "failed"


def test_a_deployed_step_without_the_executions_name_refuses(machine: Machine) -> None:
    arguments = deployed_arguments(
        flow_file=FLOW_FILE.name,
        flow=FLOW,
        step="start",
        datastore_root=str(machine.datastore),
        max_retries=0,
    )
    env = {k: v for k, v in os.environ.items() if k != EXECUTION_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-m", "batchwright.task", *arguments],
        cwd=FLOW_FILE.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert EXECUTION_VARIABLE in done.stderr


def test_a_failed_deployed_run_resumes_locally_reusing_its_finished_steps(
    machine: Machine,
) -> None:
    machine.ok("start", parameters={"scale": "5", "count": "2"})
    machine.ok("left")
    assert machine.step("right", max_retries=0).returncode == EXIT_STEP_FAILED
    assert machine.record()["status"] == "failed"
    # The environment the flow was deployed to, for the plan of the @batch steps.
    outputs = machine.datastore.parent / "cdk-outputs.json"
    sample = environment(queue("cpu", "EC2"))
    outputs.write_text(json.dumps({sample.name: {DESCRIPTOR_OUTPUT_KEY: sample.to_json()}}))
    resumed = subprocess.run(
        [sys.executable, str(FLOW_FILE), "resume", machine.run_id, "--run-batch-locally"],
        cwd=FLOW_FILE.parent,
        env={
            **os.environ,
            "BATCHWRIGHT_DATASTORE_ROOT": str(machine.datastore),
            "BATCHWRIGHT_ENVIRONMENT": sample.name,
            "BATCHWRIGHT_OUTPUTS_FILE": str(outputs),
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    flow = Flow(FLOW, str(machine.datastore), _namespace_check=False)
    run = next(r for r in flow.runs() if r.id != machine.run_id)
    assert run.successful
    # The deployed run's parameters and finished steps carry over; 'right' ran again.
    assert run["gather"].task.data.values == [0, 5]
    assert run["left"].task.origin_pathspec == f"{FLOW}/{machine.run_id}/left/1"
    assert run["right"].task.origin_pathspec is None


def test_a_failure_no_task_recorded_is_read_from_what_the_state_machine_wrote(
    machine: Machine,
) -> None:
    machine.ok("start", parameters={})
    assert machine.record()["status"] == "running"
    # The job of 'left' was killed (no task lived to say so): the Catch wrote its error.
    key = layout.deployment_key(FLOW, machine.run_id, layout.failure_object("left"))
    (machine.datastore / key).write_text(
        json.dumps({"Error": "States.TaskFailed", "Cause": "OutOfMemoryError: Container killed"})
    )
    record = machine.record()
    assert record["status"] == "failed"
    assert record["failed_task"] == f"{FLOW}/{machine.run_id}/left"
    assert "OutOfMemoryError" in str(record["reason"])
    assert not Flow(FLOW, str(machine.datastore), _namespace_check=False)[machine.run_id].successful


def test_a_failure_no_retry_can_fix_stops_the_later_attempts_at_once(machine: Machine) -> None:
    failed = machine.step("start", parameters={"scale": "many"}, max_retries=2)
    assert failed.returncode == EXIT_DO_NOT_RETRY
    # Step Functions retries it anyway (its Retry cannot see exit codes): refused at once.
    again = machine.step("start", retry=1, max_retries=2)
    assert again.returncode == EXIT_DO_NOT_RETRY
    assert "no retry can fix" in again.stderr
    assert "scale" in again.stderr


def test_runs_a_schedule_started_are_ordered_by_their_start(machine: Machine) -> None:
    store = open_datastore(FLOW, str(machine.datastore))
    store.write_run("1000000000000000", {"status": "succeeded", "started_at": 1_000_000_000.0})
    store.write_run("3000000000000000", {"status": "succeeded", "started_at": 3_000_000_000.0})
    # A scheduled execution's name is not a number: placed by when it started.
    store.write_run("5a1f0c3e-9d2b", {"status": "running", "started_at": 2_000_000_000.0})
    assert store.list_runs() == ["1000000000000000", "5a1f0c3e-9d2b", "3000000000000000"]
    store.write_run("7b00-later", {"status": "running", "started_at": 4_000_000_000.0})
    assert store.list_runs()[-1] == "7b00-later"
