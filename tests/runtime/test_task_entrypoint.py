"""The task entrypoint contract (version 1): its command line and its exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batchwright.task import (
    EXIT_DO_NOT_RETRY,
    TASK_ENTRYPOINT_VERSION,
    build_parser,
    command_arguments,
)

from ._support import SAMPLE_FLOWS


def test_command_arguments_round_trip() -> None:
    args = command_arguments(
        flow_file="/code/flow.py",
        flow="DemoFlow",
        step="work",
        run_id="17",
        task_id="4",
        datastore_root="s3://bucket/prefix",
        input_paths=["17/start/1", "17/start/2"],
        split_index=3,
        retry_count=1,
        max_retries=2,
        origin_run_id="9",
        with_options=["retry:times=2"],
    )
    parsed = build_parser().parse_args(args)
    assert parsed.contract_version == TASK_ENTRYPOINT_VERSION == 1
    assert parsed.input_paths == "17/start/1,17/start/2"
    assert (parsed.split_index, parsed.retry_count, parsed.max_retries) == (3, 1, 2)
    assert parsed.with_options == ["retry:times=2"] and parsed.origin_run_id == "9"


def _task(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    base = command_arguments(
        flow_file=str(SAMPLE_FLOWS / "linear_flow.py"),
        flow="LinearFlow",
        step="transform",
        run_id="1",
        task_id="2",
        datastore_root=str(tmp_path),
        input_paths=["1/start/1"],
    )
    return subprocess.run(
        [sys.executable, "-m", "batchwright.task", *base, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wrong_contract_version_is_not_retryable(tmp_path: Path) -> None:
    done = _task(tmp_path, "--contract-version", "99")
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert "contract version 1, was called with 99" in done.stderr


def test_missing_input_is_not_retryable_and_writes_no_done_marker(tmp_path: Path) -> None:
    done = _task(tmp_path)
    assert done.returncode == EXIT_DO_NOT_RETRY
    assert "input 1/start/1 of step 'transform' has no done marker" in done.stderr
    task = tmp_path / "LinearFlow" / "runs" / "1" / "transform" / "2"
    assert (task / "0" / "metadata.json").exists()
    assert not (task / "DONE").exists()
