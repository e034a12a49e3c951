"""``from batchwright.metaflow_current import current``: the module path Metaflow's users
import ``current`` from (``metaflow.metaflow_current``); the same object as
``batchwright.current``."""

from __future__ import annotations

from batchwright.current import Current, current

__all__ = ["Current", "current"]
