"""Shared helpers of the runtime tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
