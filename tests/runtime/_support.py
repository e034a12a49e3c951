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


def run_on_backend(
    flow_class: type,
    backend: Any,
    root: Path,
    *,
    workers: int = 16,
    with_options: tuple[str, ...] = (),
    origin_run_id: str | None = None,
) -> tuple[Any, list[Any]]:
    """Runs ``flow_class`` in this process with ``backend`` standing in for the local
    backend (a fake deciding every attempt's status; it gets the backend options through
    ``bind(options)`` when it has that method): the run's result and its events. With
    ``origin_run_id`` the run resumes that one."""
    from batchwright.backends import register_backend
    from batchwright.backends.local import LocalBackend
    from batchwright.datastore import open_datastore
    from batchwright.definition import load_definition
    from batchwright.plan import make_plan
    from batchwright.scheduler import RunOptions, Scheduler

    definition = load_definition(flow_class, with_options)
    plan = make_plan(
        definition.name,
        definition.decorators,
        None,
        parallel_steps=definition.parallel_steps,
    )
    events: list[Any] = []
    register_backend("local", lambda options: getattr(backend, "bind", lambda o: backend)(options))
    try:
        scheduler = Scheduler(
            definition,
            plan.policies,
            open_datastore(definition.name, str(root)),
            RunOptions(
                flow_file=__file__,
                datastore_root=str(root),
                max_workers=workers,
                origin_run_id=origin_run_id,
            ),
            events.append,
        )
        return scheduler.run({}), events
    finally:
        register_backend("local", LocalBackend)
