"""The datastore: where runs keep artifacts, metadata, logs and done markers.

:func:`open_datastore` picks the storage from the root: ``s3://bucket/prefix`` means S3
(boto3 is imported only then), anything else a local folder. The root comes from
``--datastore-root``, else ``BATCHWRIGHT_DATASTORE_ROOT``, else ``.batchwright`` under
the working directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from batchwright.datastore.storage import LocalStorage, Storage
from batchwright.datastore.store import (
    LAYOUT_VERSION,
    PARAMETERS_STEP,
    PARAMETERS_TASK,
    FlowDatastore,
)

if TYPE_CHECKING:
    from batchwright.aws import Patience

#: Environment variable naming the datastore root.
ROOT_VARIABLE = "BATCHWRIGHT_DATASTORE_ROOT"
DEFAULT_ROOT = ".batchwright"

__all__ = [
    "DEFAULT_ROOT",
    "LAYOUT_VERSION",
    "PARAMETERS_STEP",
    "PARAMETERS_TASK",
    "ROOT_VARIABLE",
    "FlowDatastore",
    "LocalStorage",
    "Storage",
    "default_root",
    "open_datastore",
    "open_storage",
]


def default_root(explicit: str | None = None) -> str:
    """The datastore root: ``explicit``, else the environment variable, else the default."""
    if explicit:
        return explicit
    from_environment = os.environ.get(ROOT_VARIABLE)
    if from_environment:
        return from_environment
    return os.path.abspath(DEFAULT_ROOT)


def open_storage(root: str, patience: Patience | None = None) -> Storage:
    """The storage backend for ``root``; S3 calls go through ``patience`` when given (the
    orchestrator's, so a run outlives throttling and short outages)."""
    if root.startswith("s3://"):
        from batchwright.datastore.s3 import S3Storage

        return S3Storage(root, patience=patience)
    return LocalStorage(root)


def open_datastore(
    flow_name: str, root: str | None = None, patience: Patience | None = None
) -> FlowDatastore:
    """The datastore of ``flow_name`` at ``root`` (see :func:`default_root`)."""
    return FlowDatastore(open_storage(default_root(root), patience), flow_name)
