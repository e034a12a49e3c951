"""Parallel steps against the sample environment (synthesized): routed to a queue that
runs multi-node jobs with room for every node, and refused, exit code 2 and a message
naming step, key, value and fix, before any AWS call or run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchwright.environment.descriptor import EnvironmentDescriptor

from .conftest import REPO, STACK, isolate_from_aws, run_flow_cli, write_outputs_file

SAMPLE = REPO / "sample_app" / "flows" / "distributed_training_flow.py"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def _flow(tmp_path: Path, batch: str, nodes: int = 3, join: bool = True) -> Path:
    after = "self.join" if join else "self.end"
    source = (
        f"""from batchwright import FlowSpec, batch, parallel, step


class ParallelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel={nodes})

    @batch({batch})
    @parallel
    @step
    def train(self):
        self.next({after})
"""
        + (
            """
    @step
    def join(self, inputs):
        self.next(self.end)
"""
            if join
            else ""
        )
        + """
    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParallelFlow()
"""
    )
    path = tmp_path / "parallel_flow.py"
    path.write_text(source)
    return path


def _run(tmp_path: Path, flow: Path, env: EnvironmentDescriptor, *argv: str) -> tuple[int, str]:
    outputs = write_outputs_file(tmp_path / "outputs.json", env)
    store = tmp_path / "store"
    where = ["--environment", STACK, "--outputs-file", str(outputs)]
    if argv[0] == "run":
        where += ["--datastore-root", str(store)]
    code, out, err = run_flow_cli(flow, [*argv, *where])
    assert "Traceback" not in err
    if argv[0] == "run":
        assert not store.exists()  # refused before any run was recorded or task started
    return code, out + err


def test_the_sample_plans_three_nodes_on_the_efa_queue(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    code, output = _run(tmp_path, SAMPLE, sample_env, "plan")
    assert code == 0, output
    assert "nodes:          3 x c5n.18xlarge, one multi-node job" in output
    assert "a parallel step: 3 node(s) x c5n.18xlarge" in output
    # A node has its instance to itself: each of the three tasks costs all of it.
    assert "per task while it runs (100% (vCPU) of c5n.18xlarge" in output


@pytest.mark.parametrize(
    ("batch", "nodes", "message"),
    [
        (
            "cpu=2, memory=4096, queue='spot'",
            3,
            "queue='spot' can never run it (2 vCPU / 4096 MiB): queue 'spot' is a Spot queue, "
            "and AWS Batch runs multi-node parallel jobs on on-demand EC2 in private subnets "
            "only",
        ),
        (
            "cpu=2, memory=4096, queue='fargate'",
            2,
            "queue 'fargate' is a Fargate queue, and AWS Batch runs multi-node parallel jobs",
        ),
        (
            "cpu=8, memory=16000, efa=1",
            5,
            "5 nodes of c5n.18xlarge need 360 vCPUs, and its max vCPUs of 288 hold 4 node(s)",
        ),
        ("cpu=8, memory=16000, efa=2", 2, "2 EFA interfaces"),
    ],
)
def test_impossible_parallel_steps_are_refused_before_anything_runs(
    tmp_path: Path, sample_env: EnvironmentDescriptor, batch: str, nodes: int, message: str
) -> None:
    code, output = _run(tmp_path, _flow(tmp_path, batch, nodes), sample_env, "run")
    assert code == 2, output
    assert "step 'train', @batch" in output
    assert message in output


def test_a_parallel_step_without_a_join_is_refused_with_its_line(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    code, output = _run(tmp_path, _flow(tmp_path, "cpu=2", 2, join=False), sample_env, "run")
    assert code == 2, output
    assert "step 'train'" in output and "line 13" in output
    assert "its nodes must meet in a join right after it" in output


def test_a_parallel_step_without_a_timeout_is_warned_about(
    tmp_path: Path, sample_env: EnvironmentDescriptor
) -> None:
    code, output = _run(tmp_path, _flow(tmp_path, "cpu=2", 2), sample_env, "plan")
    assert code == 0, output
    assert "step 'train' is a parallel step without @timeout" in output
    # The sample bounds its parallel step: no such warning.
    code, output = _run(tmp_path, SAMPLE, sample_env, "plan")
    assert code == 0 and "without @timeout" not in output
