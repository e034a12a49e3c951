"""A whole run against an S3 datastore (an in-process moto server via AWS_ENDPOINT_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from batchwright import Flow

from ._support import SAMPLE_FLOWS


def test_branch_join_flow_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    root = "s3://runs/team/flows"
    done = subprocess.run(
        [
            sys.executable,
            str(SAMPLE_FLOWS / "branch_join_flow.py"),
            "run",
            "--datastore-root",
            root,
        ],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / ".batchwright").exists()
    run = Flow("BranchJoinFlow", root).latest_run
    assert run is not None and run.successful
    assert run.data.total == 31 and run["join"].task.data.values == {"left": 20, "right": 11}
    assert sorted(s.id for s in run) == ["end", "join", "left", "right", "start"]

    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket="runs", Prefix="team/flows/BranchJoinFlow/")
    keys = [item["Key"] for item in listed["Contents"]]
    assert any(key.endswith("/DONE") for key in keys)
    assert any("/data/" in key for key in keys)
