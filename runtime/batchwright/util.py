"""Helpers at the module path Metaflow's users import them from (``metaflow.util``)."""

from __future__ import annotations

from typing import Any

__all__ = ["is_stringish"]


def is_stringish(value: Any) -> bool:
    """True for text (``str``) and bytes, as Metaflow's ``is_stringish``."""
    return isinstance(value, str | bytes)
