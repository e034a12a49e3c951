"""``from batchwright.includefile import IncludeFile``: the module path Metaflow's users
import ``IncludeFile`` from (``metaflow.includefile``), and Metaflow's ``IncludedFile``.

The parameter class itself is :class:`batchwright.parameters.IncludeFile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchwright.parameters import IncludeFile

__all__ = ["IncludeFile", "IncludedFile"]


class IncludedFile:
    """Metaflow's stored form of an ``IncludeFile`` value: a reference (``descriptor``)
    to a copy of the file, which its client reads back.

    batchwright stores the file's content itself (``str``, or ``bytes`` with
    ``is_text=False``), so no artifact is ever an ``IncludedFile``: code written for
    Metaflow that tests ``isinstance(value, IncludedFile)`` takes its other branch, the
    one for plain values.
    """

    def __init__(self, descriptor: Mapping[str, Any]) -> None:
        self._descriptor = dict(descriptor)

    @property
    def descriptor(self) -> dict[str, Any]:
        """Where Metaflow's copy of the file is (type, url, size...)."""
        return self._descriptor
