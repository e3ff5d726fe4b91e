"""What the polls module offers other modules: the RapidPro SMS sender (core.channels),
the polls table source (core.tablesource), the person-page section and the demo."""

from __future__ import annotations


def register_all() -> None:
    """Called once from ``PollsConfig.ready``."""
