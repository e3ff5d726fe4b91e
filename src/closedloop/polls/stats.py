"""Aggregates of the polls module: charts, summaries, maps, participation, indicators.

The public entry point; the work is split by seam:

- :mod:`closedloop.polls.stats_filters` — :class:`Filters`, :func:`parse_filters`;
- :mod:`closedloop.polls.stats_charts` — per-question series, word cloud, summary;
- :mod:`closedloop.polls.stats_map` — the map tab and one poll run's summary;
- :mod:`closedloop.polls.stats_participation` — participation and home figures;
- :mod:`closedloop.polls.stats_indicators` — indicator baseline / follow-up.

Every figure is computed by SQL aggregates over the denormalized answer and response
columns (see ``polls/models.py``); the formulas are in each module's docstring.
"""

from __future__ import annotations

from closedloop.polls.stats_charts import (
    answer_counts,
    categorical_series,
    numeric_series,
    question_chart,
    summary,
    summary_from_series,
    word_cloud,
    word_cloud_source,
)
from closedloop.polls.stats_filters import (
    WINDOWS,
    FilterError,
    Filters,
    account_today,
    parse_filters,
    window_bounds,
)
from closedloop.polls.stats_indicators import indicator_data
from closedloop.polls.stats_map import map_data, pollrun_summary
from closedloop.polls.stats_participation import (
    home_figures,
    participation,
    participation_matrix,
    participation_totals,
)

__all__ = [
    "WINDOWS",
    "FilterError",
    "Filters",
    "account_today",
    "answer_counts",
    "categorical_series",
    "home_figures",
    "indicator_data",
    "map_data",
    "numeric_series",
    "parse_filters",
    "participation",
    "participation_matrix",
    "participation_totals",
    "pollrun_summary",
    "question_chart",
    "summary",
    "summary_from_series",
    "window_bounds",
    "word_cloud",
    "word_cloud_source",
]
