"""Bad input ends the command before any task runs: exit 2, one paragraph, no traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ._support import SAMPLE_FLOWS, RunFlow, write_flow

HEADER = "from batchwright import FlowSpec, Parameter, step, retry, catch, timeout\n\n\n"
FOOTER = "\n\nif __name__ == '__main__':\n    BadFlow()\n"


def _flow(body: str) -> str:
    return (
        HEADER
        + "class BadFlow(FlowSpec):\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + FOOTER
    )


def _assert_rejected(result: object, datastore: Path, *fragments: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.returncode == 2, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: "), output
    for fragment in fragments:
        assert fragment in error_lines[0], output
    # Nothing ran: no task started and no run was recorded.
    assert "started" not in result.stdout  # type: ignore[attr-defined]
    assert not (datastore / "BadFlow").exists()


GRAPH_ERRORS = {
    "missing start": (
        """
        @step
        def begin(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["has no 'start' step"],
    ),
    "missing end": (
        """
        @step
        def start(self):
            self.next(self.finish)

        @step
        def finish(self):
            pass
        """,
        ["has no 'end' step"],
    ),
    "no self.next": (
        """
        @step
        def start(self):
            self.x = 1

        @step
        def end(self):
            pass
        """,
        ["step 'start' (line 8)", "does not end with self.next"],
    ),
    "unknown target": (
        """
        @step
        def start(self):
            self.next(self.middle)

        @step
        def end(self):
            pass
        """,
        ["step 'start'", "'middle', which is not a step"],
    ),
    "unreachable": (
        """
        @step
        def start(self):
            self.next(self.end)

        @step
        def orphan(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'orphan' (line 11)", "not reachable"],
    ),
    "join arity": (
        """
        @step
        def start(self):
            self.next(self.a, self.b, self.c)

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def c(self):
            self.next(self.end)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'end'", "must be a join"],
    ),
    "join wrong count": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.b2)

        @step
        def b2(self):
            self.next(self.end)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["must be a join"],
    ),
    "join without split": (
        """
        @step
        def start(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'join' (line 11)", "no split or foreach open"],
    ),
    "mismatched branches": (
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.a1, self.a2)

        @step
        def a1(self):
            self.next(self.join_a)

        @step
        def a2(self):
            self.next(self.join_outer)

        @step
        def b(self):
            self.next(self.join_a)

        @step
        def join_a(self, inputs):
            self.next(self.join_outer)

        @step
        def join_outer(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["mismatched branches"],
    ),
    "split never joined": (
        """
        @step
        def start(self):
            self.next(self.work, foreach="items")

        @step
        def work(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["step 'start'", "never joined"],
    ),
    "foreach not a string": (
        """
        @step
        def start(self):
            self.next(self.work, foreach=items)

        @step
        def work(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
        ["foreach= must be the artifact's name as a string literal"],
    ),
    "cycle": (
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.start)

        @step
        def end(self):
            pass
        """,
        ["nothing may lead to start"],
    ),
    "end calls next": (
        """
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            self.next(self.start)
        """,
        ["step 'end'", "must not call self.next"],
    ),
}


@pytest.mark.parametrize("case", sorted(GRAPH_ERRORS))
def test_graph_errors_are_reported_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    body, fragments = GRAPH_ERRORS[case]
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    _assert_rejected(run_flow(flow_file, "run"), datastore, *fragments)
    _assert_rejected(run_flow(flow_file, "check"), datastore, *fragments)


GOOD_BODY = """
count = Parameter("count", default=1)
ratio = Parameter("ratio", type=float, default=0.5)
flag = Parameter("flag", type=bool, default=False)
needed = Parameter("needed", required=True)

@retry(times=1)
@step
def start(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

BAD_VALUES = {
    "int": (["--needed", "x", "--count", "many"], ["parameter 'count'", "'many'", "int"]),
    "float": (["--needed", "x", "--ratio", "half"], ["parameter 'ratio'", "'half'", "float"]),
    "bool": (["--needed", "x", "--flag", "maybe"], ["parameter 'flag'", "'maybe'", "bool"]),
    "required": ([], ["parameter 'needed' is required"]),
    "max workers": (["--needed", "x", "--max-workers", "0"], ["--max-workers=0"]),
    "with unknown": (["--needed", "x", "--with", "nosuch"], ["no step decorator named 'nosuch'"]),
    "with bad value": (
        ["--needed", "x", "--with", "timeout:seconds=-3"],
        ["step 'start', @timeout", "seconds=-3"],
    ),
    "with bad key": (
        ["--needed", "x", "--with", "resources:cpus=2"],
        ["@resources", "cpus=2", "cpu, gpu, memory"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_reported_before_running(
    case: str, run_flow: RunFlow, datastore: Path, tmp_path: Path
) -> None:
    args, fragments = BAD_VALUES[case]
    flow_file = write_flow(tmp_path, "bad_flow", _flow(GOOD_BODY))
    _assert_rejected(run_flow(flow_file, "run", *args), datastore, *fragments)


def test_json_and_include_file_values(run_flow: RunFlow, tmp_path: Path) -> None:
    flow = SAMPLE_FLOWS / "parameters_flow.py"
    bad_json = run_flow(flow, "run", "--token", "t", "--config", "{not json")
    assert bad_json.returncode == 2 and "parameter 'config'" in bad_json.stderr
    missing = run_flow(flow, "run", "--token", "t", "--notes", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "IncludeFile 'notes'" in missing.stderr
    assert "cannot be read" in missing.stderr and "Traceback" not in missing.output


def test_bad_decorator_value_on_a_step(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    body = GOOD_BODY.replace("@retry(times=1)", "@retry(times=-1)")
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--needed", "x")
    _assert_rejected(result, datastore, "flow 'BadFlow', step 'start', @retry", "times=-1")


def test_foreach_over_a_non_iterable_fails_clearly(run_flow: RunFlow, tmp_path: Path) -> None:
    body = """
    @step
    def start(self):
        self.items = 5
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
    """
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--with", "retry:times=3,minutes_between_retries=0")
    assert result.returncode == 1
    assert (
        "foreach='items' needs a list, tuple or other iterable of items, got int 5" in result.stdout
    )
    # A deterministic failure is not retried, even with @retry.
    assert "retry 1" not in result.stdout
    assert f"task BadFlow/{result.run_id}/start/1 failed" in result.stderr


def test_parameter_named_like_an_option(run_flow: RunFlow, datastore: Path, tmp_path: Path) -> None:
    body = GOOD_BODY.replace('Parameter("count", default=1)', 'Parameter("max-workers", default=1)')
    flow_file = write_flow(tmp_path, "bad_flow", _flow(body))
    result = run_flow(flow_file, "run", "--needed", "x")
    _assert_rejected(result, datastore, "parameter 'max-workers' has the name of an option")
