"""Suite ``polls``: run ingest, poll-detail charts and participation at scale.

Each part of the polls module keeps its benchmarks in ``polls_<part>.py``; this module
joins them so ``python -m benchmarks polls`` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import (
    polls_charts,
    polls_double,
    polls_ingest,
    polls_outbound,
    polls_pages,
    polls_setup,
    polls_sync,
)

BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {
    **polls_ingest.BENCHMARKS,
    **polls_charts.BENCHMARKS,
    **polls_pages.BENCHMARKS,
    **polls_sync.BENCHMARKS,
    **polls_outbound.BENCHMARKS,
    **polls_setup.BENCHMARKS,
    **polls_double.BENCHMARKS,
}
