"""Metaflow behaviours its core tests check through the client: class-level constants of a
flow (read-only artifacts of every task), ``Task.exception`` of a failed task, and the
control tasks of a parallel step."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchwright import Flow, FlowSpec, Parameter, step
from batchwright.parameters import flow_constants

from ._support import RunFlow, write_flow


class Base(FlowSpec):
    SHARED = "from the base"


class ConstantsFlow(Base):
    rate = 0.5
    names = ("a", "b")
    size = Parameter("size", default=3)
    helper = staticmethod(len)
    kind = dict
    input = "not a constant: a name of the flow API"

    @property
    def doubled(self) -> float:
        return 2 * self.rate

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_constants_are_plain_class_values_not_steps_parameters_or_descriptors() -> None:
    assert flow_constants(ConstantsFlow) == {
        "SHARED": "from the base",
        "rate": 0.5,
        "names": ("a", "b"),
    }


def test_a_step_cannot_assign_a_constant() -> None:
    flow = ConstantsFlow(use_cli=False)
    with pytest.raises(AttributeError, match="'rate' is a constant of the flow"):
        flow.rate = 1.0
    flow.other = 1.0  # anything else is an artifact, as before
    assert flow.other == 1.0


CONSTANTS_FLOW = """
from batchwright import FlowSpec, Parameter, step


class ConstantFlow(FlowSpec):
    LIMIT = 123
    LABELS = ["x", "y"]
    size = Parameter("size", default=4)

    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        try:
            self.LIMIT = 5
        except AttributeError as error:
            self.refused = str(error)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.refused = inputs.b.refused
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.LIMIT, self.LABELS, self.size)


if __name__ == "__main__":
    ConstantFlow()
"""


def test_constants_are_artifacts_of_every_task_and_read_only(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "constant_flow", CONSTANTS_FLOW), "run")
    assert result.returncode == 0, result.output
    run = Flow("ConstantFlow", str(datastore))[result.run_id or ""]
    for name in ("start", "a", "b", "join", "end"):
        task = run[name].task
        assert task["LIMIT"].data == 123 and task["LABELS"].data == ["x", "y"], name
    assert run.data.seen == (123, ["x", "y"], 4)
    assert "'LIMIT' is a constant of the flow" in run.data.refused


FAILING_END = """
from batchwright import FlowSpec, step


class FailingEndFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        raise KeyError("Something has gone wrong")


if __name__ == "__main__":
    FailingEndFlow()
"""


def test_a_failed_task_keeps_its_exception_for_the_client(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "failing_end", FAILING_END), "run")
    assert result.returncode == 1
    run = Flow("FailingEndFlow", str(datastore))[result.run_id or ""]
    assert run["start"].task.exception is None
    error = run["end"].task.exception
    assert error is not None
    assert error.type == "builtins.KeyError"
    assert error.exception == "'Something has gone wrong'"
    assert "KeyError" in str(error) and 'raise KeyError("Something' in error.stacktrace


PARALLEL_FLOW = """
from batchwright import FlowSpec, current, step


class GroupsFlow(FlowSpec):
    @step
    def start(self):
        self.sizes = [2, 3]
        self.next(self.outer, foreach="sizes")

    @step
    def outer(self):
        self.next(self.work, num_parallel=self.input)

    @step
    def work(self):
        self.control = current.parallel.control_task_id
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GroupsFlow()
"""


def test_control_tasks_are_node_zero_of_each_group(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "groups_flow", PARALLEL_FLOW), "run")
    assert result.returncode == 0, result.output
    run = Flow("GroupsFlow", str(datastore))[result.run_id or ""]
    work = run["work"]
    assert len(work.tasks()) == 5
    controls = list(work.control_tasks())
    assert len(controls) == 2
    assert {task.id for task in controls} == {task.data.control for task in work}
    assert work.control_task is not None and work.control_task.id in {t.id for t in controls}
    assert list(run["start"].control_tasks()) == [] and run["start"].control_task is None


UNPICKLABLE = """
import threading

from batchwright import FlowSpec, step


class LockFlow(FlowSpec):
    guard = threading.Lock()
    _private = threading.Lock()

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LockFlow()
"""


def test_a_constant_that_cannot_be_pickled_is_refused_before_the_run(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "lock_flow", UNPICKLABLE)
    for command in ("check", "run"):
        result = run_flow(flow_file, command)
        assert result.returncode == 2, result.output
        assert "the class attribute 'guard' (lock) is a constant of the flow" in result.stderr
        assert "Name it '_guard'" in result.stderr and "Traceback" not in result.stderr
    assert not datastore.exists()  # no run was started


ASSIGNING = """
from batchwright import FlowSpec, retry, step


class AssignFlow(FlowSpec):
    result = None

    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.result = 3
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    AssignFlow()
"""


def test_assigning_a_constant_fails_once_without_retries(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    result = run_flow(write_flow(tmp_path, "assign_flow", ASSIGNING), "run")
    assert result.returncode == 1
    task = Flow("AssignFlow", str(datastore))[result.run_id or ""]["start"].task
    assert task.retry_count == 0  # a retry cannot help
    assert task.exception is not None and "'result' is a constant" in task.exception.exception


def test_a_failed_attempt_keeps_its_record_when_the_exception_cannot_be_shown() -> None:
    from batchwright.task import EXCEPTION_TEXT_LIMIT, TaskRunner

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    runner = TaskRunner.__new__(TaskRunner)
    runner.metadata = {}
    runner.record_exception(Unprintable())
    assert runner.metadata["exception"]["type"].endswith("Unprintable")
    assert "cannot be shown" in runner.metadata["exception"]["exception"]
    runner.record_exception(ValueError("x" * (3 * EXCEPTION_TEXT_LIMIT)))
    assert len(runner.metadata["exception"]["exception"]) == EXCEPTION_TEXT_LIMIT


CONFIG_TYPED = """
from batchwright import Config, FlowSpec, Parameter, config_expr, step


class TypedFlow(FlowSpec):
    cfg = Config("cfg", default_value={"on": False, "lr": 0.5, "mode": "fast"})
    on = Parameter("on", default=cfg.on)
    lr = Parameter("lr", default=config_expr("cfg.lr"))
    MODE = cfg.mode

    @step
    def start(self):
        self.seen = (self.on, self.lr)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TypedFlow()
"""


def test_parameters_from_configs_take_the_type_of_the_value(
    run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    flow_file = write_flow(tmp_path, "typed_flow", CONFIG_TYPED)
    result = run_flow(flow_file, "run")
    assert result.returncode == 0, result.output
    assert Flow("TypedFlow", str(datastore))[result.run_id or ""]["start"].task.data.seen == (
        False,
        0.5,
    )
    given = run_flow(flow_file, "run", "--lr", "0.25", "--on", "true")
    assert given.returncode == 0, given.output
    assert Flow("TypedFlow", str(datastore))[given.run_id or ""]["start"].task.data.seen == (
        True,
        0.25,
    )
