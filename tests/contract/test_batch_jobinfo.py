"""current.batch: AWS_BATCH_* read defensively."""

from __future__ import annotations

import pytest

from batchwright.batch.jobinfo import BatchJobInfo

JOB = "2f1b0c2e-1111-4000-8000-000000000001"


def test_outside_batch_there_is_nothing() -> None:
    assert BatchJobInfo.from_environ({}) is None
    assert BatchJobInfo.from_environ({"AWS_BATCH_JOB_ID": "  "}) is None


def test_everything_batch_sets() -> None:
    env = BatchJobInfo.from_environ(
        {
            "AWS_BATCH_JOB_ID": f"{JOB}:3",
            "AWS_BATCH_JOB_ATTEMPT": "2",
            "AWS_BATCH_CE_NAME": "ce-spot",
            "AWS_BATCH_JQ_NAME": "queue-spot",
            "AWS_BATCH_JOB_ARRAY_INDEX": "3",
        }
    )
    assert env == BatchJobInfo(
        job_id=f"{JOB}:3",
        attempt=2,
        compute_environment="ce-spot",
        queue="queue-spot",
        array_index=3,
    )
    assert env.parent_job_id == JOB


def test_moto_sets_only_the_job_id() -> None:
    env = BatchJobInfo.from_environ({"AWS_BATCH_JOB_ID": JOB})
    assert env == BatchJobInfo(job_id=JOB)
    assert env.attempt is None and env.array_index is None and env.parent_job_id is None


@pytest.mark.parametrize(("suffix", "index"), [(":0", 0), (":9999", 9999)])
def test_array_index_comes_from_the_job_id_when_missing(suffix: str, index: int) -> None:
    env = BatchJobInfo.from_environ({"AWS_BATCH_JOB_ID": JOB + suffix})
    assert env is not None and env.array_index == index


def test_the_variable_wins_over_the_job_id_suffix() -> None:
    env = BatchJobInfo.from_environ(
        {"AWS_BATCH_JOB_ID": f"{JOB}:5", "AWS_BATCH_JOB_ARRAY_INDEX": "7"}
    )
    assert env is not None and env.array_index == 7


def test_malformed_values_become_none() -> None:
    env = BatchJobInfo.from_environ(
        {
            "AWS_BATCH_JOB_ID": f"{JOB}#1",  # a multi-node child, not an array child
            "AWS_BATCH_JOB_ATTEMPT": "first",
            "AWS_BATCH_JOB_ARRAY_INDEX": "",
            "AWS_BATCH_CE_NAME": "",
            "AWS_BATCH_JOB_NODE_INDEX": "1",
            "AWS_BATCH_JOB_NUM_NODES": "2",
        }
    )
    assert env is not None
    assert (env.attempt, env.array_index, env.compute_environment) == (None, None, None)
    assert (env.node_index, env.num_nodes) == (1, 2)
