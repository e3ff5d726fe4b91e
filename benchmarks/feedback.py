"""Suite ``feedback``: upload, merge, filter count, render, delivery, table page.

Each part of the feedback module keeps its benchmarks in ``feedback_<part>.py``; this
module joins them so ``python -m benchmarks feedback`` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import (
    feedback_actions,
    feedback_dataops,
    feedback_delivery,
    feedback_filters,
    feedback_table,
    feedback_transfer,
)

BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {
    **feedback_dataops.BENCHMARKS,
    **feedback_table.BENCHMARKS,
    **feedback_filters.BENCHMARKS,
    **feedback_actions.BENCHMARKS,
    **feedback_delivery.BENCHMARKS,
    **feedback_transfer.BENCHMARKS,
}
