"""Small helpers shared by the sync modules."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("closedloop.polls.sync")


def log(ctx: Any, text: str, level: str = "info") -> None:
    """To the job log (when running as a job) and the Python log."""
    logger.log(logging.WARNING if level == "warning" else logging.INFO, text)
    if ctx is not None:
        ctx.log(text, level)


def assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set ``values`` on ``obj``; True when anything differed (only then is it written)."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed
