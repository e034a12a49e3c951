"""Who is running: the user name a run's record keeps and the client's default namespace
(``user:<name>``) matches, so the runs one starts are the runs one reads back."""

from __future__ import annotations

import getpass
import os

#: The name kept when the system has none (a container without a login name or passwd entry).
UNKNOWN_USER = "unknown"
#: Who runs, when set (Metaflow's ``METAFLOW_USER``): a job on AWS Batch gets the name of
#: the user who started the run here, so the client inside a step reads that user's
#: namespace rather than ``user:root``.
USER_VARIABLE = "BATCHWRIGHT_USER"


def current_user() -> str:
    """``$BATCHWRIGHT_USER``, else ``getpass.getuser()``, else :data:`UNKNOWN_USER`."""
    named = os.environ.get(USER_VARIABLE, "").strip()
    if named:
        return named
    try:
        return getpass.getuser() or UNKNOWN_USER
    except (KeyError, OSError):
        return UNKNOWN_USER
