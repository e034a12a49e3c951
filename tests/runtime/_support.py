"""Shared helpers of the runtime tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FLOWS = REPO / "sample_app" / "flows"
TEST_FLOWS = Path(__file__).resolve().parent / "flows"


@dataclass
class FlowRun:
    """The outcome of one ``python flow.py ...`` command."""

    returncode: int
    stdout: str
    stderr: str
    run_id: str | None

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


RunFlow = Callable[..., FlowRun]


def write_flow(folder: Path, name: str, source: str) -> Path:
    """Write a flow file and return its path."""
    path = folder / f"{name}.py"
    path.write_text(source)
    return path


def start_flow(
    flow_file: Path, datastore: Path, *args: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """Start ``python flow.py run ...`` in the flow's folder with a private datastore.

    ``env`` adds to the environment; ``popen`` goes to :class:`subprocess.Popen` (default:
    output discarded). The caller waits for or kills the process.
    """
    environment = {
        **os.environ,
        "BATCHWRIGHT_DATASTORE_ROOT": str(datastore),
        "NO_COLOR": "1",
        **(env or {}),
    }
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        [sys.executable, str(flow_file), "run", *args],
        cwd=flow_file.parent,
        env=environment,
        text=True,
        **popen,
    )
