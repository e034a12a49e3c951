"""The local AWS: a real stand-in for an AWS account on one machine.

:mod:`.services` starts and stops it (Docker engine, offline job image, moto server);
:mod:`.deploy` brings a synthesized batchwright template up inside it and records the
stack outputs as ``cdk deploy --outputs-file`` would; :mod:`.cli` is the
``batchwright localaws`` command group.

A development tool, kept outside the ``batchwright`` package on purpose: the code package
ships that package into every Batch container, and no job needs an emulator. This package
may import ``batchwright``; ``batchwright`` never imports it.
"""

from __future__ import annotations

from batchwright_localaws.services import (
    REGION,
    TEST_CREDENTIALS,
    LocalAws,
    current,
    down,
    image_tag,
    reset,
    running,
    state_dir,
    up,
)

__all__ = [
    "REGION",
    "TEST_CREDENTIALS",
    "LocalAws",
    "current",
    "down",
    "image_tag",
    "reset",
    "running",
    "state_dir",
    "up",
]
