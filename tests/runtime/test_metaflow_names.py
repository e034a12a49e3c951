"""Metaflow's names and behaviours that its own core tests (test/core/tests/*.py) rely on:
parameter values from ``METAFLOW_RUN_<NAME>``, ``current.parameter_names``, foreach over
any iterable, ``self._current_step`` and ``self._foreach_stack``, the module paths
``batchwright.exception`` and ``batchwright.metaflow_current``, and the exception names
``merge_artifacts``, ``@timeout`` and ``@catch`` use."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright import Flow, FlowSpec, IncludeFile, JSONType, Parameter, step
from batchwright.current import Current
from batchwright.decorators import CaughtException, TimeoutExceeded
from batchwright.decorators.builtin import TimeoutException
from batchwright.entrypoint import DoNotRetry
from batchwright.errors import BatchwrightError, ParameterError
from batchwright.exception import (
    CommandException,
    ExternalCommandFailed,
    MetaflowException,
    MetaflowExceptionWrapper,
    MetaflowInternalError,
    MetaflowNotFound,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)
from batchwright.flowspec import ForeachFrame, Inputs, StepFailed
from batchwright.parameters import resolve_parameters
from batchwright.task import TaskRunner

from ._support import RunFlow, write_flow

# -- parameters from METAFLOW_RUN_<NAME> --------------------------------------------------


class EnvironmentFlow(FlowSpec):
    zeta = Parameter("zeta", default=1)
    count = Parameter("item-count", default=3)
    label = Parameter("label", default="from default")
    letters = Parameter("letters", separator=",", default="x")
    flag = Parameter("flag", default=True)
    config = Parameter("config", type=JSONType, default='{"a": 1}')
    notes = IncludeFile("notes", required=False)
    constant = "not a parameter"


def _resolve(environ: dict[str, str], **given: str) -> dict[str, Any]:
    return resolve_parameters(EnvironmentFlow, given, "EnvironmentFlow", environ)


def test_the_variable_is_the_name_upper_cased_with_dashes_as_underscores() -> None:
    assert EnvironmentFlow.count.environment_variable == "METAFLOW_RUN_ITEM_COUNT"
    assert Parameter("myParam").environment_variable == "METAFLOW_RUN_MYPARAM"
    assert EnvironmentFlow.notes.environment_variable == "METAFLOW_RUN_NOTES"


def test_a_variable_gives_the_value_converted_like_the_command_line() -> None:
    values = _resolve(
        {
            "METAFLOW_RUN_ITEM_COUNT": "7",
            "METAFLOW_RUN_LETTERS": "a,b,c",
            "METAFLOW_RUN_FLAG": "False",
            "METAFLOW_RUN_CONFIG": '{"b": [1, 2]}',
        }
    )
    assert values["count"] == 7
    assert values["letters"] == ["a", "b", "c"]
    assert values["flag"] is False
    assert values["config"] == {"b": [1, 2]}
    assert values["label"] == "from default"  # no variable: the default
    assert values["notes"] is None


def test_the_command_line_wins_over_the_variable_and_the_variable_over_the_default() -> None:
    environ = {"METAFLOW_RUN_LABEL": "from variable"}
    assert _resolve(environ, label="from command line")["label"] == "from command line"
    assert _resolve(environ)["label"] == "from variable"
    assert _resolve({})["label"] == "from default"


def test_a_variable_set_but_empty_is_a_value_as_in_metaflow() -> None:
    assert _resolve({"METAFLOW_RUN_LABEL": ""})["label"] == ""


def test_the_variable_is_read_from_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METAFLOW_RUN_ZETA", "42")
    assert resolve_parameters(EnvironmentFlow, {}, "EnvironmentFlow")["zeta"] == 42


def test_a_bad_value_in_a_variable_names_the_variable() -> None:
    with pytest.raises(ParameterError) as error:
        _resolve({"METAFLOW_RUN_ITEM_COUNT": "many"})
    assert str(error.value).startswith(
        "flow 'EnvironmentFlow', parameter 'item-count': environment variable "
        "METAFLOW_RUN_ITEM_COUNT value 'many' is not a valid int"
    )
    assert "e.g. METAFLOW_RUN_ITEM_COUNT=3." in str(error.value)


def test_a_required_parameter_names_its_variable_when_missing() -> None:
    class Needy(FlowSpec):
        needed = Parameter("needed", required=True)

    with pytest.raises(
        ParameterError, match=r"Pass --needed VALUE \(str\) or set METAFLOW_RUN_NEEDED\."
    ):
        resolve_parameters(Needy, {}, "Needy", {})
    assert resolve_parameters(Needy, {}, "Needy", {"METAFLOW_RUN_NEEDED": "x"}) == {"needed": "x"}


def test_an_include_file_reads_the_file_its_variable_names(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("from the variable's file")
    values = _resolve({"METAFLOW_RUN_NOTES": str(tmp_path / "notes.txt")})
    assert values["notes"] == "from the variable's file"
    with pytest.raises(ParameterError, match="environment variable METAFLOW_RUN_NOTES file"):
        _resolve({"METAFLOW_RUN_NOTES": str(tmp_path / "absent.txt")})


def test_click_boolean_words_are_accepted() -> None:
    assert _resolve({"METAFLOW_RUN_FLAG": "f"})["flag"] is False
    assert _resolve({"METAFLOW_RUN_FLAG": "t"})["flag"] is True


# -- current.parameter_names and the module paths ---------------------------------------


def test_parameter_names_is_none_outside_a_task_and_a_list_inside() -> None:
    current = Current()
    assert current.parameter_names is None
    current._set_task(
        flow_name="F",
        run_id="1",
        step_name="start",
        task_id="2",
        retry_count=0,
        origin_run_id=None,
        tempdir=None,
        parameter_names=("alpha", "beta"),
    )
    assert current.parameter_names == ["alpha", "beta"]
    with pytest.raises(ValueError, match="reserved"):
        current.extend("parameter_names", [])


def test_metaflow_module_paths_import_in_a_fresh_interpreter(tmp_path: Path) -> None:
    code = (
        "import sys, batchwright, batchwright.exception as e, batchwright.flowspec\n"
        "from batchwright.metaflow_current import current\n"
        "assert current is batchwright.current\n"
        "# A task imports the exceptions, never the client.\n"
        "assert 'batchwright.client' not in sys.modules\n"
        "assert all(hasattr(e, n) for n in e.__all__), e.__all__\n"
        "from batchwright.client import MetaflowNamespaceMismatch\n"
        "assert e.MetaflowNamespaceMismatch is MetaflowNamespaceMismatch\n"
        "print(len(e.__all__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10


# -- the exceptions ----------------------------------------------------------------------


def test_metaflow_exceptions_carry_headline_message_and_location() -> None:
    error = MetaflowException("it broke", lineno=12)
    assert isinstance(error, BatchwrightError)
    assert error.headline == "Flow failed" and error.message == "it broke"
    assert str(error) == "line 12: it broke"
    assert str(MetaflowException("plain")) == "plain"
    assert str(MetaflowException("x", source_file="flow.py")) == "flow.py: x"
    assert ExternalCommandFailed("cmd").headline == "External command failed"
    assert MetaflowNotFound("gone").headline == "Object not found"
    assert MetaflowInternalError("bug").headline == "Internal error"
    assert CommandException("bad").headline == "Invalid command"


def test_merge_exceptions_name_the_artifacts_and_survive_pickling() -> None:
    error = UnhandledInMergeArtifactsException("conflict", ["a", "b"])
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is UnhandledInMergeArtifactsException
    assert again.artifact_names == ["a", "b"] and str(again) == "conflict"
    assert again.headline == "Unhandled artifacts in merge"
    missing = pickle.loads(pickle.dumps(MissingInMergeArtifactsException("m", ["c"])))
    assert missing.artifact_names == ["c"] and missing.headline == "Missing artifacts in merge"
    external = pickle.loads(pickle.dumps(ExternalCommandFailed("catch me!")))
    assert str(external) == "catch me!"


def test_a_user_subclass_keeps_its_headline() -> None:
    class TestRetry(MetaflowException):
        headline = "Testing retry"

    error = TestRetry()
    assert isinstance(error, MetaflowException) and str(error) == ""
    assert error.headline == "Testing retry"


def test_timeout_exception_takes_metaflow_name_and_keeps_the_old_one() -> None:
    assert TimeoutExceeded is TimeoutException
    assert issubclass(TimeoutException, MetaflowException)
    assert TimeoutException.headline == "@timeout"


def test_caught_exceptions_are_metaflow_exception_wrappers() -> None:
    try:
        raise ExternalCommandFailed("catch me!")
    except ExternalCommandFailed as raised:
        caught = CaughtException(raised)
    assert isinstance(caught, MetaflowExceptionWrapper)
    again = pickle.loads(pickle.dumps(caught))
    assert type(again) is CaughtException
    assert again.type == "batchwright.exception.ExternalCommandFailed"
    assert again.exception == "catch me!" and "catch me!" in (again.stacktrace or "")
    wrapper = pickle.loads(pickle.dumps(MetaflowExceptionWrapper(ValueError("v"))))
    assert (wrapper.type, wrapper.exception) == ("builtins.ValueError", "v")
    assert str(wrapper) == "[no stacktrace]\nbuiltins.ValueError: v"


# -- merge_artifacts, _current_step, _foreach_stack, input (no run) --------------------


class MemoryLoader:
    """Artifacts by content key, and foreach splits as lists, in memory."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def load(self, key: str, what: str = "") -> Any:
        return self.values[key]

    def load_item(self, split_key: str, index: int) -> Any:
        return self.values[split_key][index]


class JoinFlow(FlowSpec):
    @step
    def start(self) -> None:
        pass


def _join(inputs: list[dict[str, str]], *, is_join: bool = True) -> tuple[JoinFlow, Inputs]:
    loader = MemoryLoader({})
    flow = JoinFlow(use_cli=False)
    flow._prepare_task(
        loader,
        {},
        [],
        parameter_names=frozenset({"param"}),
        is_join=is_join,
        owner="test",
        step_name="merge_things",
    )
    metadata = [
        {"step": "branch", "task_id": str(n), "artifacts": refs} for n, refs in enumerate(inputs)
    ]
    return flow, Inputs(metadata, loader)


BRANCHES = [
    {"passdown": "k-a", "same": "k-e", "manual": "k-1", "ignore_me": "k-1", "param": "k-p"},
    {"passdown": "k-a", "same": "k-e", "manual": "k-2", "ignore_me": "k-2", "param": "k-p"},
]


def test_a_conflict_raises_unhandled_and_merges_nothing() -> None:
    flow, inputs = _join(BRANCHES)
    with pytest.raises(UnhandledInMergeArtifactsException) as error:
        flow.merge_artifacts(inputs)
    assert error.value.artifact_names == ["manual", "ignore_me"]
    assert "step 'merge_things'" in str(error.value)
    assert not hasattr(flow, "passdown") and not hasattr(flow, "same")


def test_merge_takes_what_agrees_and_skips_set_excluded_and_parameters() -> None:
    flow, inputs = _join(BRANCHES)
    flow.manual = "set in the join"
    flow.merge_artifacts(inputs, exclude=["ignore_me"])
    assert flow._refs == {"passdown": "k-a", "same": "k-e"}
    assert flow.manual == "set in the join"


def test_include_and_exclude_together_is_a_metaflow_exception() -> None:
    flow, inputs = _join(BRANCHES)
    with pytest.raises(MetaflowException, match="not both"):
        flow.merge_artifacts(inputs, exclude=["ignore_me"], include=["passdown"])


def test_include_of_an_absent_artifact_raises_missing_and_merges_nothing() -> None:
    flow, inputs = _join(BRANCHES)
    flow.manual = "set in the join"
    with pytest.raises(MissingInMergeArtifactsException) as error:
        flow.merge_artifacts(inputs, include=["manual", "passdown", "foobar"])
    # A name the join set itself is not missing, as in Metaflow.
    assert error.value.artifact_names == ["foobar"]
    assert flow._refs == {}
    flow.merge_artifacts(inputs, include=["passdown", "manual"])
    assert flow._refs == {"passdown": "k-a"}


def test_merge_outside_a_join_is_a_metaflow_exception_naming_the_step() -> None:
    flow, inputs = _join(BRANCHES, is_join=False)
    with pytest.raises(StepFailed) as error:
        flow.merge_artifacts(inputs)
    assert isinstance(error.value, MetaflowException)
    assert "step 'merge_things' is not a join" in str(error.value)


def test_current_step_is_none_until_a_task_prepares_the_flow() -> None:
    flow = JoinFlow(use_cli=False)
    assert flow._current_step is None
    assert flow.input is None and flow.index is None  # outside a foreach, as in Metaflow
    assert flow.foreach_stack() == [] and flow._foreach_stack == []
    prepared, _ = _join([])
    assert prepared._current_step == "merge_things"


def test_foreach_stack_frames_have_metaflow_fields_and_short_values() -> None:
    long_text = "x" * 50
    loader = MemoryLoader({"split-1": ["a", long_text], "split-2": [{"deep": list(range(99))}]})
    frames = [
        {"step": "start", "inner_step": "outer", "var": "words", "index": 1, "num_splits": 2},
        {"step": "outer", "inner_step": "inner", "var": "dicts", "index": 0, "num_splits": 1},
        {"step": "inner", "var": "_parallel", "parallel": True, "index": 3, "num_splits": 4},
    ]
    frames[0]["split"] = "split-1"
    frames[1]["split"] = "split-2"
    flow = JoinFlow(use_cli=False)
    flow._prepare_task(
        loader, {}, frames, parameter_names=frozenset(), is_join=False, owner="t", step_name="x"
    )
    stack = flow._foreach_stack
    assert all(isinstance(frame, ForeachFrame) for frame in stack)
    assert ForeachFrame._fields == ("step", "var", "num_splits", "index", "value")
    assert stack[0] == ForeachFrame("outer", "words", 2, 1, "x" * 30)
    assert stack[1].step == "inner" and stack[1].value is not None
    assert stack[1].value.startswith("{'deep': [0, 1, 2") and len(stack[1].value) <= 30
    assert stack[2] == ForeachFrame(None, "_parallel", 4, 3, None)
    assert flow.foreach_stack()[:2] == [(1, 2, long_text), (0, 1, {"deep": list(range(99))})]


class ShapeFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Inputs) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_iterating_a_flow_gives_its_steps_in_order_with_names_and_graph_types() -> None:
    # Metaflow's checkers walk a flow this way: for step in flow: flow._graph[step.name].type
    flow = ShapeFlow(use_cli=False)
    names = [step_function.name for step_function in flow]
    assert names == ["start", "each", "join", "end"]
    assert [flow._graph[name].type for name in names] == ["foreach", "linear", "join", "end"]
    assert flow._graph["start"].foreach_param == "items"
    assert flow._graph is ShapeFlow(use_cli=False)._graph  # built once per class


def test_includefile_and_util_modules_have_metaflow_names(tmp_path: Path) -> None:
    from batchwright.includefile import IncludedFile
    from batchwright.includefile import IncludeFile as FromIncludefile
    from batchwright.util import is_stringish

    assert FromIncludefile is IncludeFile
    assert IncludedFile({"type": "local", "url": "x"}).descriptor == {"type": "local", "url": "x"}
    assert is_stringish("text") and is_stringish(b"bytes")
    assert not is_stringish(["t"]) and not is_stringish(None)


# -- foreach over any iterable (the task's rule) --------------------------------------------


def _fan_out(value: Any) -> tuple[Any, Any]:
    """What a foreach over ``value`` fans out over, and the artifact afterwards."""
    runner = TaskRunner.__new__(TaskRunner)
    runner.step_name = "start"
    flow = JoinFlow(use_cli=False)
    flow.things = value
    return list(runner._foreach_values(flow, "things")), flow.things


def test_a_string_fans_out_over_its_characters() -> None:
    assert _fan_out("abc") == (["a", "b", "c"], "abc")


def test_a_dict_fans_out_over_its_keys_and_stays_a_dict() -> None:
    assert _fan_out({"x": 1, "y": 2}) == (["x", "y"], {"x": 1, "y": 2})


def test_an_iterator_fans_out_and_the_artifact_keeps_its_items() -> None:
    def numbers() -> Iterator[int]:
        yield from (3, 1, 2)

    assert _fan_out(numbers()) == ([3, 1, 2], [3, 1, 2])
    assert _fan_out(range(3)) == ([0, 1, 2], range(3))


def test_a_non_iterable_or_empty_foreach_fails_without_retry() -> None:
    with pytest.raises(DoNotRetry, match="needs a list, tuple or other iterable of items, got int"):
        _fan_out(5)
    with pytest.raises(DoNotRetry, match="is empty"):
        _fan_out("")

    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("source gone")

    with pytest.raises(DoNotRetry, match="raised RuntimeError: source gone"):
        _fan_out(broken())


# -- real runs ------------------------------------------------------------------------------

PARAMETER_FLOW = """
import os

from batchwright import FlowSpec, IncludeFile, JSONType, Parameter, step
from batchwright.metaflow_current import current

# As Metaflow's basic_parameters test does: set before the run reads its parameters.
os.environ["METAFLOW_RUN_NO_DEFAULT_PARAM"] = "test_str"
with open("reg.txt", "w") as f:
    f.write("Regular Text File")
with open("override.txt", "w") as f:
    f.write("Override Text File")


class ParamFlow(FlowSpec):
    zeta = Parameter("zeta", default=1)
    no_default_param = Parameter("no_default_param")
    bool_param = Parameter("bool_param", default=True)
    int_param = Parameter("int-param", default=123)
    str_param = Parameter("str_param", default="foobar")
    list_param = Parameter("list_param", separator=",", default="a,b,c")
    json_param = Parameter("json_param", type=JSONType, default='{"a": [1, 2, 3]}')
    myfile = IncludeFile("myfile", default="./reg.txt")
    constant = "not a parameter"

    @step
    def start(self):
        self.names = current.parameter_names
        self.step_seen = self._current_step
        self.letters = "ab"
        self.next(self.each, foreach="letters")

    @step
    def each(self):
        self.nums = [10, 20]
        self.next(self.inner, foreach="nums")

    @step
    def inner(self):
        self.stack = self.foreach_stack()
        self.frames = [tuple(frame) for frame in self._foreach_stack]
        self.step_seen = self._current_step
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.frames = [tuple(frame) for frame in self._foreach_stack]
        self.stacks = [i.stack for i in inputs]
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.all_stacks = sorted(s for i in inputs for s in i.stacks)
        self.outer_frames = sorted(i.frames for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.end_names = current.parameter_names


if __name__ == "__main__":
    ParamFlow()
"""

NAMES = [
    "bool_param",
    "int_param",
    "json_param",
    "list_param",
    "myfile",
    "no_default_param",
    "str_param",
    "zeta",
]


def test_a_run_reads_parameters_from_variables_and_shows_names_and_frames(
    run_flow: RunFlow, datastore: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "param_flow", PARAMETER_FLOW)
    monkeypatch.setenv("METAFLOW_RUN_BOOL_PARAM", "False")
    monkeypatch.setenv("METAFLOW_RUN_INT_PARAM", "7")
    monkeypatch.setenv("METAFLOW_RUN_MYFILE", "./override.txt")
    monkeypatch.setenv("METAFLOW_RUN_STR_PARAM", "from the variable")
    result = run_flow(flow_file, "run", "--str_param", "from the command line")
    assert result.returncode == 0, result.output

    run = Flow("ParamFlow", str(datastore)).latest_run
    assert run is not None and run.successful and run.data is not None
    data = run.data
    assert data.no_default_param == "test_str"
    assert data.bool_param is False
    assert data.int_param == 7
    assert data.str_param == "from the command line"
    assert data.list_param == ["a", "b", "c"]
    assert data.json_param == {"a": [1, 2, 3]}
    assert data.myfile == "Override Text File"
    assert data.zeta == 1
    assert data.end_names == NAMES
    start = run["start"].task.data
    assert start.names == NAMES and start.step_seen == "start"
    # A string fans out over its characters; each frame is Metaflow's shape.
    assert data.all_stacks == [
        [(0, 2, "a"), (0, 2, 10)],
        [(0, 2, "a"), (1, 2, 20)],
        [(1, 2, "b"), (0, 2, 10)],
        [(1, 2, "b"), (1, 2, 20)],
    ]
    assert data.outer_frames == [
        [("each", "letters", 2, 0, "a")],
        [("each", "letters", 2, 1, "b")],
    ]
    inner = [task.data for task in run["inner"].tasks()]
    assert {task.step_seen for task in inner} == {"inner"}
    assert sorted(task.frames for task in inner)[0] == [
        ("each", "letters", 2, 0, "a"),
        ("inner", "nums", 2, 0, "10"),
    ]


def test_a_bad_value_in_a_variable_stops_the_run_before_any_task(
    run_flow: RunFlow, datastore: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_file = write_flow(tmp_path, "param_flow", PARAMETER_FLOW)
    monkeypatch.setenv("METAFLOW_RUN_INT_PARAM", "seven")
    result = run_flow(flow_file, "run")
    assert result.returncode == 2, result.output
    assert "environment variable METAFLOW_RUN_INT_PARAM value 'seven' is not a valid int" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert "/start/" not in result.output  # no task started


EXCEPTION_FLOW = """
import time

from batchwright import FlowSpec, catch, current, retry, step, timeout
from batchwright.exception import (
    ExternalCommandFailed,
    MetaflowException,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)


class TestRetry(MetaflowException):
    headline = "Testing retry"


class NamesFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.attempt = current.retry_count
        self.passdown = "a"
        self.manual = "c"
        if current.retry_count < 2:
            raise TestRetry("not yet")
        self.next(self.left, self.right)

    @step
    def left(self):
        self.manual = current.task_id
        self.next(self.merge_things)

    @step
    def right(self):
        self.manual = current.task_id
        self.next(self.merge_things)

    @step
    def merge_things(self, inputs):
        try:
            self.merge_artifacts(inputs)
        except UnhandledInMergeArtifactsException as error:
            self.unhandled = error.artifact_names
        assert not hasattr(self, "passdown")
        try:
            self.merge_artifacts(inputs, include=["passdown", "foobar"])
        except MissingInMergeArtifactsException as error:
            self.missing = error.artifact_names
        self.merge_artifacts(inputs, exclude=["manual"])
        self.next(self.external)

    @catch(var="end_ex", print_exception=False)
    @step
    def external(self):
        try:
            self.merge_artifacts([])
        except MetaflowException as error:
            self.not_a_join = type(error).__name__
        raise ExternalCommandFailed("catch me!")
        self.next(self.slow)

    @catch(var="ex", print_exception=False)
    @timeout(seconds=1)
    @step
    def slow(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NamesFlow()
"""


def test_metaflow_exceptions_in_a_run(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    flow_file = write_flow(tmp_path, "names_flow", EXCEPTION_FLOW)
    result = run_flow(flow_file, "run", timeout=120)
    assert result.returncode == 0, result.output

    run = Flow("NamesFlow", str(datastore)).latest_run
    assert run is not None and run.successful and run.data is not None
    # A MetaflowException subclass is retried like any failure.
    assert run["start"].task.data.attempt == 2
    merged = run["merge_things"].task.data
    assert merged.unhandled == ["manual"] and merged.missing == ["foobar"]
    assert merged.passdown == "a" and "manual" not in run["merge_things"].task
    external = run["external"].task.data
    assert external.not_a_join == "StepFailed"
    assert external.end_ex.type == "batchwright.exception.ExternalCommandFailed"
    assert external.end_ex.exception == "catch me!"
    assert isinstance(external.end_ex, MetaflowExceptionWrapper)
    assert run.data.ex.type == "batchwright.decorators.builtin.TimeoutException"
