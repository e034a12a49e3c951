"""Fixtures of the runtime tests: run a flow file as ``python flow.py ...`` in a tmp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import FlowRun, RunFlow


@pytest.fixture
def datastore(tmp_path: Path) -> Path:
    """A private datastore root."""
    return tmp_path / "store"


@pytest.fixture
def run_flow(tmp_path: Path, datastore: Path) -> RunFlow:
    """Run a flow file's command line with the private datastore; returns a FlowRun (its
    run id read from a ``--run-id-file`` of its own, unless the test passes one)."""

    def run(flow_file: Path, *args: str, timeout: float = 60) -> FlowRun:
        run_id_file = tmp_path / f"run-id-{os.getpid()}-{len(list(tmp_path.iterdir()))}"
        command = [sys.executable, str(flow_file), *args]
        if args and args[0] in ("run", "resume") and "--run-id-file" not in args:
            command += ["--run-id-file", str(run_id_file)]
        env = {**os.environ, "BATCHWRIGHT_DATASTORE_ROOT": str(datastore), "NO_COLOR": "1"}
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )
        run_id = run_id_file.read_text() if run_id_file.exists() else None
        return FlowRun(done.returncode, done.stdout, done.stderr, run_id)

    return run
