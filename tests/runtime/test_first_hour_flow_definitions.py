"""Flow-definition mistakes a new user makes in the first hour.

A join written without ``inputs``, a step decorator written below ``@step``, ``--with``
values holding JSON with commas, ``--with`` for one step, and ``tmpfs_tempdir``. Each
refusal is asserted in full, with the command's exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwright.batch.jobenv import TEMPDIR_VARIABLE, tempdir_environment
from batchwright.batch.options import DEFAULT_TMPFS_PATH, BatchOptions
from batchwright.current import current
from batchwright.datastore import open_datastore
from batchwright.decorators import (
    BatchDecorator,
    RetryDecorator,
    StepDecorator,
    TaskContext,
    UnbalancedValue,
    decorator_from_with_option,
    parse_with_option,
    register_step_decorator,
    split_top_level,
)
from batchwright.definition import FlowDefinition, load_definition, step_decorators
from batchwright.entrypoint import EXIT_SUCCESS, DoNotRetry, TaskArguments
from batchwright.errors import BatchwrightError, GraphError, UserInputError
from batchwright.graph import FlowGraph
from batchwright.lint import validate

from ._support import SAMPLE_FLOWS, RunFlow, write_flow


def _flow_file(tmp_path: Path, name: str, body: str) -> Path:
    """A flow file named ``name``.py whose class is ``name`` with ``body`` as its steps."""
    source = (
        "import os\n"
        "import tempfile\n"
        "from batchwright import FlowSpec, batch, catch, current, environment, resources, "
        "retry, step, timeout\n\n\n"
        f"class {name}(FlowSpec):\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + f"\n\n\nif __name__ == '__main__':\n    {name}()\n"
    )
    return write_flow(tmp_path, name, source)


def _line(path: Path, text: str) -> int:
    """The 1-based line of the first line of ``path`` that contains ``text``."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def _flow_class(path: Path, name: str) -> type:
    namespace: dict[str, Any] = {"__name__": f"first_hour_{name}"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    flow_class: type = namespace[name]
    return flow_class


def _refused(result: Any, message: str) -> None:
    """Exit code 2, the message as the one line on stderr, no traceback."""
    assert result.returncode == 2, result.output
    assert result.stderr == f"error: {message}\n", result.stderr
    assert "Traceback" not in result.output


# --- 1. a join without inputs -------------------------------------------------------------

FOREACH_JOIN_WITHOUT_INPUTS = """
@step
def start(self):
    self.items = [1, 2]
    self.next(self.work, foreach="items")

@step
def work(self):
    self.next(self.join)

@step
def join(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

SPLIT_JOIN_WITHOUT_INPUTS = """
@step
def start(self):
    self.next(self.a, self.b)

@step
def a(self):
    self.next(self.join)

@step
def b(self):
    self.next(self.join)

@step
def join(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

# The join is called 'collect' but reads its inputs; the foreach is nested in another.
NESTED_COLLECT_WITHOUT_INPUTS = """
@step
def start(self):
    self.outer = [1, 2]
    self.next(self.fan, foreach="outer")

@step
def fan(self):
    self.inner = [3, 4]
    self.next(self.work, foreach="inner")

@step
def work(self):
    self.next(self.collect)

@step
def collect(self):
    self.total = sum(i.input for i in inputs)
    self.next(self.gather)

@step
def gather(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""


@pytest.mark.parametrize(
    ("source", "join", "message"),
    [
        pytest.param(
            FOREACH_JOIN_WITHOUT_INPUTS,
            "join",
            "a join takes exactly one argument besides self (inputs), got 0. Define it as "
            "'def join(self, inputs)'.",
            id="after a foreach",
        ),
        pytest.param(
            SPLIT_JOIN_WITHOUT_INPUTS,
            "join",
            "is reached from several steps (a, b) and so must be a join. Define it as "
            "'def join(self, inputs)'.",
            id="after a split",
        ),
        pytest.param(
            NESTED_COLLECT_WITHOUT_INPUTS,
            "collect",
            "a join takes exactly one argument besides self (inputs), got 0. Define it as "
            "'def collect(self, inputs)'.",
            id="nested foreach, join reads inputs",
        ),
    ],
)
def test_a_join_without_inputs_is_reported_on_the_join(
    tmp_path: Path, run_flow: RunFlow, source: str, join: str, message: str
) -> None:
    flow_file = _flow_file(tmp_path, "JoinFlow", source)
    line = _line(flow_file, f"def {join}(self)")
    _refused(run_flow(flow_file, "check"), f"step '{join}' (line {line}): {message}")
    with pytest.raises(GraphError) as caught:
        validate(FlowGraph(_flow_class(flow_file, "JoinFlow")))
    assert (caught.value.step, caught.value.line) == (join, line)


def test_the_join_meant_is_recorded_on_the_graph(tmp_path: Path) -> None:
    flow_file = _flow_file(tmp_path, "JoinFlow", FOREACH_JOIN_WITHOUT_INPUTS)
    graph = FlowGraph(_flow_class(flow_file, "JoinFlow"))
    join = graph["join"]
    assert (join.type, join.missing_inputs, join.takes_inputs) == ("join", True, False)
    assert graph["start"].matching_join == "join"
    assert graph["end"].split_parents == []
    # The same flow written correctly is a valid graph with the same shape.
    fixed = _flow_file(
        tmp_path,
        "FixedFlow",
        FOREACH_JOIN_WITHOUT_INPUTS.replace("join(self)", "join(self, inputs)"),
    )
    fixed_graph = FlowGraph(_flow_class(fixed, "FixedFlow"))
    validate(fixed_graph)
    assert not fixed_graph["join"].missing_inputs
    assert fixed_graph["start"].matching_join == "join"


def test_a_foreach_without_any_join_is_still_blamed_on_the_foreach(
    tmp_path: Path, run_flow: RunFlow
) -> None:
    # 'joint_training' is not a join by name ('join' is not one of its words), and it
    # reads no inputs: nothing to point at but the foreach itself.
    flow_file = _flow_file(
        tmp_path,
        "NoJoinFlow",
        """
        @step
        def start(self):
            self.items = [1, 2]
            self.next(self.joint_training, foreach="items")

        @step
        def joint_training(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    line = _line(flow_file, "def start(self)")
    _refused(
        run_flow(flow_file, "check"),
        f"step 'start' (line {line}): is never joined: the branches it opens reach 'end' "
        "without a join. Add a step 'def join(self, inputs)' and route its branches there.",
    )


# --- 2. a step decorator below @step ------------------------------------------------------

DECORATORS_BELOW_STEP = {
    "batch": "@batch(gpu=1)",
    "retry": "@retry(times=1)",
    "timeout": "@timeout(minutes=5)",
    "resources": "@resources(memory=8000)",
    "catch": "@catch(var='failure')",
    "environment": "@environment(vars={'MODE': 'fast'})",
}


@pytest.mark.parametrize(("name", "written"), list(DECORATORS_BELOW_STEP.items()))
def test_a_decorator_below_step_exits_2_with_the_fix(
    tmp_path: Path, run_flow: RunFlow, name: str, written: str
) -> None:
    flow_file = _flow_file(
        tmp_path,
        "BelowFlow",
        f"""
        @step
        def start(self):
            self.next(self.train)

        @step
        {written}
        def train(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    line = _line(flow_file, "def train(self)")
    message = (
        f"flow 'BelowFlow', step 'train' (line {line}): @{name} is written below @step, "
        f"so it would not apply. Put @{name} above @step."
    )
    for command in ("check", "run"):
        _refused(run_flow(flow_file, command), message)


def test_several_decorators_below_step_are_named_together(
    tmp_path: Path, run_flow: RunFlow
) -> None:
    flow_file = _flow_file(
        tmp_path,
        "BelowFlow",
        """
        @retry
        @step
        @batch
        @timeout(seconds=90)
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    line = _line(flow_file, "def start(self)")
    _refused(
        run_flow(flow_file, "check"),
        f"flow 'BelowFlow', step 'start' (line {line}): @batch and @timeout are written "
        "below @step, so they would not apply. Put @batch and @timeout above @step.",
    )


def test_a_decorator_on_a_method_that_is_no_step_exits_2(tmp_path: Path, run_flow: RunFlow) -> None:
    flow_file = _flow_file(
        tmp_path,
        "HelperFlow",
        """
        @step
        def start(self):
            self.next(self.end)

        @batch(cpu=2)
        def helper(self):
            pass

        @step
        def end(self):
            pass
        """,
    )
    line = _line(flow_file, "@batch(cpu=2)")
    _refused(
        run_flow(flow_file, "check"),
        f"flow 'HelperFlow': @batch is applied to 'helper' (line {line}), which is not a "
        "step. Add @step below @batch, or remove it.",
    )


def test_the_flow_class_still_imports_and_a_task_refuses_the_step_too(tmp_path: Path) -> None:
    """Importing the flow no longer raises; every path that reads the step's decorators
    (the command line's definition, a task's own check) refuses it."""
    flow_file = _flow_file(
        tmp_path,
        "BelowFlow",
        """
        @step
        @retry
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    flow_class = _flow_class(flow_file, "BelowFlow")
    graph = FlowGraph(flow_class)
    message = (
        f"flow 'BelowFlow', step 'start' (line {_line(flow_file, 'def start(self)')}): @retry "
        "is written below @step, so it would not apply. Put @retry above @step."
    )
    with pytest.raises(UserInputError) as from_definition:
        load_definition(flow_class)
    assert str(from_definition.value) == message
    with pytest.raises(UserInputError) as from_task:
        step_decorators(flow_class, graph, "start")
    assert str(from_task.value) == message
    assert step_decorators(flow_class, graph, "end") == ()


# --- 3. --with values holding commas --------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "pieces"),
    [
        ("cpu=2,memory=4096", ["cpu=2", "memory=4096"]),
        (
            'aws_batch_tags={"team":"ml","cc":"12"},cpu=2',
            ['aws_batch_tags={"team":"ml","cc":"12"}', "cpu=2"],
        ),
        ('vars={"A":"x,y","B":"[,"}', ['vars={"A":"x,y","B":"[,"}']),
        ('x=[1,[2,3]],y="a\\",b"', ["x=[1,[2,3]]", 'y="a\\",b"']),
        ("note=it's,cpu=1", ["note=it's", "cpu=1"]),
        ("", [""]),
    ],
)
def test_with_specs_split_only_at_top_level_commas(spec: str, pieces: list[str]) -> None:
    assert split_top_level(spec) == pieces


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ('aws_batch_tags={"team":"ml","cc":"12"', "a '{' is never closed."),
        ('aws_batch_tags={"team":"ml"}}', "a '}' closes nothing that is open."),
        ("x=[1,2}", "a '}' stands where the '[' before it needs a ']'."),
        ('image="a,b', 'a " quote is never closed.'),
    ],
)
def test_an_unbalanced_with_value_is_refused(spec: str, problem: str) -> None:
    with pytest.raises(UnbalancedValue) as caught:
        split_top_level(spec)
    assert str(caught.value) == problem
    with pytest.raises(UserInputError) as refused:
        decorator_from_with_option(f"batch:{spec}")
    assert str(refused.value) == (
        f"--with batch:{spec}: {problem} Close every bracket, brace and quote, and put the "
        "whole option in single quotes so that the shell keeps its quotes, e.g. "
        """--with 'batch:key={"a":"1","b":"2"}'."""
    )


ONE_BATCH_STEP = """
@step
def start(self):
    self.next(self.train)

@batch(gpu=1, cpu=4, memory=15000, shared_memory=8192)
@step
def train(self):
    self.next(self.end)

@step
def end(self):
    pass
"""


def _batch(definition: FlowDefinition, step: str) -> BatchDecorator | None:
    found = [d for d in definition.decorators[step] if isinstance(d, BatchDecorator)]
    assert len(found) <= 1
    return found[0] if found else None


def test_tags_with_several_entries_reach_the_options(tmp_path: Path, run_flow: RunFlow) -> None:
    option = 'batch:aws_batch_tags={"team":"ml","cc":"12"},memory=8000'
    flow_file = _flow_file(tmp_path, "TagFlow", ONE_BATCH_STEP)
    checked = run_flow(flow_file, "check", "--with", option)
    assert checked.returncode == 0, checked.output
    definition = load_definition(_flow_class(flow_file, "TagFlow"), [option])
    for step in ("start", "train", "end"):
        decorator = _batch(definition, step)
        assert decorator is not None
        assert decorator.options.tags == {"team": "ml", "cc": "12"}
        assert decorator.options.memory == 8000
    unbalanced = 'batch:aws_batch_tags={"team":"ml","cc":"12",memory=8000'
    _refused(
        run_flow(flow_file, "check", "--with", unbalanced),
        f"--with {unbalanced}: a '{{' is never closed. Close every bracket, brace and quote, "
        "and put the whole option in single quotes so that the shell keeps its quotes, e.g. "
        """--with 'batch:key={"a":"1","b":"2"}'.""",
    )


# --- 4. --with for every step, and for one step -----------------------------------------------


def test_with_batch_applies_to_every_step_and_overrides_declared_keys(tmp_path: Path) -> None:
    flow_class = _flow_class(_flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP), "GpuFlow")
    definition = load_definition(flow_class, ["batch:gpu=4,memory=180000"])
    start, train, end = (_batch(definition, s) for s in ("start", "train", "end"))
    assert start is not None and end is not None and train is not None
    # Steps without @batch get @batch with the option's values: on the GPU queue too.
    assert (start.options.gpu, start.options.memory, start.options.cpu) == (4, 180000, 1)
    assert (end.options.gpu, end.options.memory) == (4, 180000)
    # A step with @batch keeps its other keys; the option's keys win, one by one.
    assert (train.options.gpu, train.options.memory, train.options.cpu) == (4, 180000, 4)
    assert train.options.shared_memory == 8192


def test_a_step_scoped_with_changes_that_step_only(tmp_path: Path) -> None:
    flow_class = _flow_class(_flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP), "GpuFlow")
    definition = load_definition(flow_class, ["train/batch:gpu=4,memory=180000"])
    assert _batch(definition, "start") is None and _batch(definition, "end") is None
    train = _batch(definition, "train")
    assert train is not None
    assert (train.options.gpu, train.options.memory, train.options.cpu) == (4, 180000, 4)
    assert train.options.shared_memory == 8192
    assert train.options.explicit >= {"gpu", "memory", "cpu", "shared_memory"}


SHARED_DECORATOR = """
@step
def start(self):
    self.next(self.a)

@big
@retry(times=1)
@step
def a(self):
    self.next(self.b)

@big
@step
def b(self):
    self.next(self.end)

@step
def end(self):
    pass
"""


def test_with_never_changes_the_decorators_written_in_the_class(tmp_path: Path) -> None:
    # One @batch object on two steps, as `big = batch(cpu=2)` writes it: each step gets its
    # own, and --with changes neither the class nor a later definition.
    flow_file = _flow_file(tmp_path, "SharedFlow", SHARED_DECORATOR)
    flow_file.write_text(
        flow_file.read_text().replace(
            "\n\nclass SharedFlow", "\nbig = batch(cpu=2)\n\nclass SharedFlow"
        )
    )
    flow_class = _flow_class(flow_file, "SharedFlow")
    scoped = load_definition(flow_class, ["a/batch:cpu=8", "a/retry:times=3"])
    a, b = _batch(scoped, "a"), _batch(scoped, "b")
    assert a is not None and b is not None
    assert (a.options.cpu, a.options.step, b.options.cpu, b.options.step) == (8, "a", 2, "b")
    everywhere = load_definition(flow_class, ["batch:cpu=4"])
    assert [_batch(everywhere, s).options.cpu for s in ("a", "b")] == [4, 4]  # type: ignore[union-attr]
    plain = load_definition(flow_class, [])
    assert [_batch(plain, s).options.cpu for s in ("a", "b")] == [2, 2]  # type: ignore[union-attr]
    retry = next(d for d in plain.decorators["a"] if isinstance(d, RetryDecorator))
    assert retry.attributes["times"] == 1


def test_a_step_scoped_with_adds_the_decorator_to_that_step_only(tmp_path: Path) -> None:
    flow_class = _flow_class(_flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP), "GpuFlow")
    definition = load_definition(flow_class, ["end/batch:cpu=2", "end/retry:times=5"])
    end = _batch(definition, "end")
    assert end is not None and end.from_command_line
    assert (end.options.cpu, end.options.gpu) == (2, 0)
    assert [d.name for d in definition.decorators["end"]] == ["batch", "retry"]
    assert definition.decorators["end"][1].attributes["times"] == 5
    assert _batch(definition, "start") is None
    assert [d.name for d in definition.decorators["start"]] == []


def test_a_step_scoped_with_wins_over_the_code_and_over_with_for_every_step(
    tmp_path: Path,
) -> None:
    flow_file = _flow_file(
        tmp_path,
        "RetryFlow",
        """
        @retry(times=1)
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    flow_class = _flow_class(flow_file, "RetryFlow")
    # --with retry for every step: the step's own @retry wins, as in Metaflow.
    every = load_definition(flow_class, ["retry:times=4"])
    assert [d.attributes["times"] for d in every.decorators["start"]] == [1]
    assert [d.attributes["times"] for d in every.decorators["end"]] == [4]
    # --with start/retry names the step: its keys win over the code's.
    scoped = load_definition(flow_class, ["retry:times=4", "start/retry:times=6"])
    assert [d.attributes["times"] for d in scoped.decorators["start"]] == [6]
    assert [d.attributes["times"] for d in scoped.decorators["end"]] == [4]
    # And over --with batch for every step, whatever their order.
    mixed = load_definition(flow_class, ["start/batch:cpu=2", "batch:cpu=8,memory=9000"])
    start, end = (_batch(mixed, s) for s in ("start", "end"))
    assert start is not None and end is not None
    assert (start.options.cpu, start.options.memory) == (2, 9000)
    assert (end.options.cpu, end.options.memory) == (8, 9000)


def test_a_task_applies_only_the_options_for_its_step(tmp_path: Path) -> None:
    flow_class = _flow_class(_flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP), "GpuFlow")
    graph = FlowGraph(flow_class)
    options = [parse_with_option("train/batch:gpu=2"), parse_with_option("retry")]
    start = step_decorators(flow_class, graph, "start", options)
    train = step_decorators(flow_class, graph, "train", options)
    assert [d.name for d in start] == ["retry"]
    assert [d.name for d in train] == ["batch", "retry"]
    assert isinstance(train[0], BatchDecorator) and train[0].options.gpu == 2


def test_the_gpu_sample_resizes_only_its_training_step() -> None:
    from batchwright.definition import import_flow_file

    module = import_flow_file(str(SAMPLE_FLOWS / "gpu_training_flow.py"))
    flow_class = module.GpuTrainingFlow
    assert "--with train/batch:gpu=4,memory=180000" in (module.__doc__ or "")
    definition = load_definition(flow_class, ["train/batch:gpu=4,memory=180000"])
    train = _batch(definition, "train")
    assert train is not None
    assert (train.options.gpu, train.options.memory, train.options.shared_memory) == (
        4,
        180000,
        8192,
    )
    assert _batch(definition, "start") is None and _batch(definition, "end") is None


@pytest.mark.parametrize(
    ("option", "message"),
    [
        pytest.param(
            "trian/batch:gpu=2",
            "--with trian/batch:gpu=2: flow 'GpuFlow' has no step 'trian'. Did you mean "
            "'train'? Steps: start, train, end.",
            id="unknown step",
        ),
        pytest.param(
            "evaluate/batch",
            "--with evaluate/batch: flow 'GpuFlow' has no step 'evaluate'. Steps: start, "
            "train, end.",
            id="unknown step, nothing close",
        ),
        pytest.param(
            "batch/train:gpu=2",
            "--with batch/train:gpu=2: 'train' is not a step decorator, while 'batch' is: "
            "the step comes first. Write --with train/batch:gpu=2.",
            id="reversed",
        ),
        pytest.param(
            "train/btach:gpu=2",
            "--with train/btach:gpu=2: there is no step decorator named 'btach'. Did you "
            "mean 'batch'? Known: batch, catch, environment, parallel, resources, retry, timeout.",
            id="unknown decorator",
        ),
        pytest.param(
            "/batch:gpu=2",
            "--with /batch:gpu=2: '' is not a step name. Write --with STEP/batch:gpu=2 for "
            "one step (e.g. --with train/batch:gpu=2), or --with batch:gpu=2 for every step.",
            id="no step",
        ),
    ],
)
def test_a_bad_step_scoped_with_exits_2(
    tmp_path: Path, run_flow: RunFlow, option: str, message: str
) -> None:
    flow_file = _flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP)
    _refused(run_flow(flow_file, "check", "--with", option), message)


def test_a_bad_value_in_a_step_scoped_with_names_the_step_and_the_option(
    tmp_path: Path, run_flow: RunFlow
) -> None:
    flow_file = _flow_file(tmp_path, "GpuFlow", ONE_BATCH_STEP)
    result = run_flow(flow_file, "check", "--with", "train/batch:gpu=-1")
    assert result.returncode == 2 and "Traceback" not in result.output
    # The rest of the sentence is the option table's (batch/options.py).
    assert result.stderr.startswith("error: flow 'GpuFlow', step 'train', --with batch: gpu=-1 ")


def test_decorator_names_must_be_identifiers() -> None:
    class Dashed(StepDecorator):
        name = "my-notify"

    with pytest.raises(BatchwrightError) as caught:
        register_step_decorator(Dashed)
    assert str(caught.value) == (
        "test_decorator_names_must_be_identifiers.<locals>.Dashed needs a 'name' that is a "
        "Python identifier to be registered, got 'my-notify'"
    )


def test_a_step_scoped_option_cannot_pass_for_a_global_one() -> None:
    assert isinstance(decorator_from_with_option("retry:times=2"), RetryDecorator)
    with pytest.raises(UserInputError) as caught:
        decorator_from_with_option("train/retry:times=2")
    assert str(caught.value) == (
        "--with train/retry:times=2 applies to step 'train' only; it cannot be used where "
        "the option applies to every step."
    )


# --- 5. tmpfs_tempdir --------------------------------------------------------------------------


def test_the_tmpfs_serves_as_tempdir_only_when_mounted_and_asked() -> None:
    assert BatchOptions.from_attributes("s", {"use_tmpfs": True}).tempdir == DEFAULT_TMPFS_PATH
    assert BatchOptions.from_attributes("s", {"tmpfs_path": "/scratch"}).tempdir == "/scratch"
    assert (
        BatchOptions.from_attributes("s", {"use_tmpfs": True, "tmpfs_tempdir": False}).tempdir
        is None
    )
    assert BatchOptions.from_attributes("s", {}).tempdir is None
    assert tempdir_environment("/scratch") == {"TMPDIR": "/scratch", TEMPDIR_VARIABLE: "/scratch"}
    assert tempdir_environment(None) == {}


def _batch_decorator(**attributes: Any) -> BatchDecorator:
    from batchwright.decorators import StepInitContext

    decorator = BatchDecorator(**attributes)
    decorator.step_init(StepInitContext("F", "train", "linear", (decorator,)))
    return decorator


@pytest.fixture
def task_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskContext]:
    """A running task's ``current`` and context; environment and tempfile restored after."""
    monkeypatch.setattr(tempfile, "tempdir", None)
    for name in ("TMPDIR", TEMPDIR_VARIABLE, "AWS_BATCH_JOB_ID"):
        # Set first, so the undo removes what the test's decorator sets (a plain delenv of
        # an absent variable records nothing to undo, and TMPDIR would leak onwards).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    task_tempdir = tmp_path / "task"
    task_tempdir.mkdir()
    current._set_task(
        flow_name="F",
        run_id="1",
        step_name="train",
        task_id="2",
        retry_count=0,
        origin_run_id=None,
        tempdir=str(task_tempdir),
    )
    yield TaskContext("F", "train", "1", "2", 0, 0, object())
    current._values = {}
    current._extensions = {}


def test_in_a_batch_job_tmpdir_and_current_tempdir_move_to_the_tmpfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task_context: TaskContext
) -> None:
    tmpfs = tmp_path / "tmpfs"
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-1")
    decorator = _batch_decorator(tmpfs_path=str(tmpfs))
    decorator.task_pre_step(task_context)
    assert current.tempdir is not None
    assert Path(current.tempdir).parent == tmpfs and Path(current.tempdir).is_dir()
    assert os.environ["TMPDIR"] == os.environ[TEMPDIR_VARIABLE] == str(tmpfs)
    assert tempfile.gettempdir() == str(tmpfs)
    private = current.tempdir
    decorator.task_finally(task_context)
    assert not os.path.exists(private)


@pytest.mark.parametrize(
    ("in_a_job", "attributes"),
    [
        pytest.param(False, {"use_tmpfs": True}, id="local run"),
        pytest.param(True, {"use_tmpfs": True, "tmpfs_tempdir": False}, id="tmpfs_tempdir=False"),
        pytest.param(True, {}, id="no tmpfs"),
    ],
)
def test_otherwise_the_task_keeps_its_own_tempdir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_context: TaskContext,
    in_a_job: bool,
    attributes: dict[str, Any],
) -> None:
    if in_a_job:
        monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-1")
    before = current.tempdir
    decorator = _batch_decorator(**attributes)
    decorator.task_pre_step(task_context)
    assert current.tempdir == before
    assert "TMPDIR" not in os.environ and TEMPDIR_VARIABLE not in os.environ
    decorator.task_finally(task_context)


def test_an_unusable_tmpfs_path_stops_the_task_without_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task_context: TaskContext
) -> None:
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-1")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = str(blocker / "tmpfs")
    decorator = _batch_decorator(tmpfs_path=path)
    with pytest.raises(DoNotRetry) as caught:
        decorator.task_pre_step(task_context)
    assert str(caught.value) == (
        f"flow 'F', step 'train', @batch: tmpfs_tempdir=True but the tmpfs path '{path}' "
        f"cannot be used in this job (NotADirectoryError: [Errno 20] Not a directory: "
        f"'{path}'). Check that the job runs with the job definition batchwright registered "
        "(it mounts the tmpfs), or set tmpfs_tempdir=False."
    )


TMPFS_FLOW = """
@batch(tmpfs_path={tmpfs!r})
@step
def start(self):
    self.tempdir = current.tempdir
    self.tmpdir = os.environ.get("TMPDIR")
    self.gettempdir = tempfile.gettempdir()
    with tempfile.NamedTemporaryFile() as scratch:
        self.scratch = scratch.name
    self.next(self.end)

@step
def end(self):
    pass
"""


def test_a_step_run_with_the_job_environment_writes_its_temporary_files_on_the_tmpfs(
    tmp_path: Path,
) -> None:
    """The task entrypoint, run as a Batch job runs it (``AWS_BATCH_JOB_ID`` set), with the
    tmpfs stood in for by a folder."""
    tmpfs = tmp_path / "tmpfs"
    flow_file = _flow_file(tmp_path, "TmpfsFlow", TMPFS_FLOW.format(tmpfs=str(tmpfs)))
    store = tmp_path / "store"
    argv = TaskArguments(
        flow_file=str(flow_file),
        flow="TmpfsFlow",
        step="start",
        run_id="1",
        task_id="1",
        datastore_root=str(store),
    ).to_argv()
    environment = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", TEMPDIR_VARIABLE)}
    done = subprocess.run(
        [sys.executable, "-m", "batchwright.task", *argv],
        env={**environment, "AWS_BATCH_JOB_ID": "job-1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_SUCCESS, done.stderr
    datastore = open_datastore("TmpfsFlow", str(store))
    metadata = datastore.finished_metadata("1", "start", "1", None)
    assert metadata is not None
    seen = {
        name: datastore.load(metadata["artifacts"][name])
        for name in ("tempdir", "tmpdir", "gettempdir", "scratch")
    }
    assert Path(seen["tempdir"]).parent == tmpfs
    assert seen["tmpdir"] == seen["gettempdir"] == str(tmpfs)
    assert Path(seen["scratch"]).parent == tmpfs
    # The private directory went with the task; the tmpfs itself stays (it is a mount).
    assert tmpfs.is_dir() and not Path(seen["tempdir"]).exists()
