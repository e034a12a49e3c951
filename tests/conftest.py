"""Fixtures shared by the whole suite.

``local_aws`` brings up the local AWS (moto server + Docker engine + offline job image)
once per session. Outside CI a machine that cannot run it skips the tests that need it,
saying why; with ``CI=true`` those tests fail instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchwright_localaws as localaws
from batchwright.errors import LocalAwsError

REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    """Whether the suite runs in CI, where nothing may be skipped for lack of tools."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def local_aws() -> Iterator[localaws.LocalAws]:
    """The running local AWS; started (and stopped afterwards) when not already up."""
    try:
        local, started = localaws.up()
    except LocalAwsError as error:
        if in_ci():
            pytest.fail(f"CI=true and the local AWS cannot start: {error}")
        pytest.skip(f"the local AWS cannot start on this machine: {error}")
    try:
        yield local
    finally:
        if started:
            localaws.down()
