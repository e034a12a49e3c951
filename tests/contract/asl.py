"""Validation of Amazon States Language documents with the pinned ``asl-validator``.

``asl_problems(definition)`` runs the validator's command line (the npm package
``asl-validator``, pinned in package.json and installed by scripts/bootstrap.sh into
node_modules/) on one state-machine definition and returns its error messages, one
``CODE: message`` string per problem; an empty list means the document is valid.

The document goes through ``--json-path`` (a temporary file), not ``--json-definition``:
in asl-validator 4.0.0 a ``--json-definition`` that does not parse only prints "Unable to
parse" and still exits 0, and a large definition would meet the limit on argv's size.
The Node.js it runs on is the pinned one in node_modules/.bin, like the CDK CLI's.

Without the validator, a test that needs it is skipped with the reason on a developer's
machine, and fails with :class:`ValidatorMissing` in CI (``CI=true``), so CI never
passes by skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, in_ci

BIN = REPO / "node_modules" / ".bin"
VALIDATOR = BIN / "asl-validator"

#: The validator's exit codes (dist/bin/asl-validator.js).
VALID, INVALID = 0, 1

_HEADER = "✕ State machine definition"


class ValidatorMissing(RuntimeError):
    """The pinned asl-validator (or the Node.js to run it) is not installed."""


class ValidatorFailed(RuntimeError):
    """The validator crashed or answered in a way this helper cannot read."""


def _command() -> list[str]:
    """The command that runs the validator; skips (or, in CI, raises) when it is missing."""
    node = BIN / "node" if (BIN / "node").exists() else shutil.which("node")
    problem = None
    if not VALIDATOR.exists():
        problem = f"asl-validator is not installed ({VALIDATOR} is missing)"
    elif node is None:
        problem = "Node.js is not installed (no node_modules/.bin/node and no node on PATH)"
    if problem is not None:
        message = f"{problem}; run `make bootstrap` (npm ci installs the pinned package.json)"
        if in_ci():
            raise ValidatorMissing(f"CI=true and {message}")
        pytest.skip(message)
    # The bin entry is a symlink to a script with `#!/usr/bin/env node`: naming the pinned
    # node explicitly keeps the machine's own Node.js out of it.
    return [str(node), str(VALIDATOR.resolve())]


def asl_problems(definition: Mapping[str, Any]) -> list[str]:
    """The validator's error messages for a state-machine definition (empty when valid).

    Each message reads ``CODE: message``, e.g. ``MISSING_TRANSITION_TARGET: Missing
    'StartAt'|'Next'|'Default' target: B``. Resource ARNs and paths are checked too (the
    validator's defaults).

    Raises:
        ValidatorMissing: in CI, when the validator is not installed (elsewhere the
            calling test is skipped).
        ValidatorFailed: when the validator crashes (exit code 2) or reports the
            document invalid without a readable message.
        TypeError: when ``definition`` is not JSON-serialisable.
    """
    command = _command()
    document = json.dumps(definition)
    with tempfile.TemporaryDirectory(prefix="asl-") as folder:
        path = Path(folder) / "definition.asl.json"
        path.write_text(document, encoding="utf-8")
        done = subprocess.run(
            [*command, "--json-path", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode == VALID:
        return []
    if done.returncode == INVALID:
        problems = [
            line.strip()
            for line in done.stderr.splitlines()
            if line.strip() and not line.startswith(_HEADER)
        ]
        if problems:
            return problems
    raise ValidatorFailed(
        f"asl-validator exited with code {done.returncode}: "
        f"{(done.stderr or done.stdout).strip()[-2000:]}"
    )
