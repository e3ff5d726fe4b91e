"""The map tab of a question and the one-date summary of a poll run."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from django.db.models import Avg, Count, F, FloatField, Max, Min, Value
from django.db.models.functions import Floor, Least

from closedloop.polls.models import (
    Answer,
    ContactGroup,
    GroupRole,
    PollRun,
    Question,
    QuestionType,
)
from closedloop.polls.rules import categorize
from closedloop.polls.selectors import unit_filter
from closedloop.polls.stats_charts import WORD_LIMIT, _round, numeric_rows, word_cloud
from closedloop.polls.stats_filters import Filters, answers, pollrun_dates, value_field
from closedloop.registry.models import OrgUnit


def _geometry(unit: OrgUnit) -> dict[str, Any] | None:
    if unit.simplified_geometry:
        return unit.simplified_geometry  # type: ignore[no-any-return]
    if unit.geometry:
        return unit.geometry  # type: ignore[no-any-return]
    if unit.latitude is not None and unit.longitude is not None:
        return {"type": "Point", "coordinates": [unit.longitude, unit.latitude]}
    return None


def map_data(question: Question, filters: Filters) -> dict[str, Any]:
    """One entry per panel org unit within the filters, coloured by the page.

    ``{"type": question type, "categories": [...], "units": [{"id", "name", "panel",
    "geometry" (GeoJSON: simplified polygon, else full, else a Point; null when the unit
    has no location), "value" (numeric: average over the window, else null), "category"
    (numeric: the average's category by the question's rules; categorical: the most
    common category, ties by the question's order), "count" (answers)}]}``. Units with no
    answer in the window are listed with ``count`` 0 and null value / category.
    """
    panels = ContactGroup.objects.filter(role=GroupRole.PANEL, org_unit__isnull=False)
    if filters.unit_ids is not None:
        panels = panels.filter(org_unit_id__in=filters.unit_ids)
    panel_names: dict[int, list[str]] = defaultdict(list)
    for unit_id, name in panels.order_by("name").values_list("org_unit_id", "name"):
        panel_names[unit_id].append(name)
    units = OrgUnit.objects.filter(pk__in=list(panel_names)).only(
        "pk", "name", "geometry", "simplified_geometry", "latitude", "longitude"
    )
    ids = [pk for pk, _day in pollrun_dates(question.poll_id, filters)]
    values: dict[int | None, dict[str, Any]] = {}
    if ids and question.type == QuestionType.NUMERIC:
        values = _numeric_units(question, filters, ids)
    elif ids:
        values = _category_units(question, filters, ids)
    items = []
    for unit in sorted(units, key=lambda u: u.name):
        found = values.get(unit.pk, {"count": 0, "value": None, "category": None})
        items.append(
            {
                "id": unit.pk,
                "name": unit.name,
                "panel": " / ".join(panel_names[unit.pk]),
                "geometry": _geometry(unit),
                **found,
            }
        )
    return {
        "type": question.type,
        "categories": list(question.categories),
        "units": items,
    }


def _numeric_units(
    question: Question, filters: Filters, ids: list[int]
) -> dict[int | None, dict[str, Any]]:
    """Average per org unit over the window, from the (run, unit) groups of the chart
    index (cheaper than a GROUP BY unit, which would need a sort of every answer)."""
    rows, _counts = numeric_rows(question, filters, ids, by_unit=True, with_responses=False)
    merged: dict[int | None, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for (_pk, unit), row in rows.items():
        into = merged[unit]
        into[0] += row["n"]
        into[1] += row["nn"]
        into[2] += float(row["total"] or 0.0)
    values: dict[int | None, dict[str, Any]] = {}
    for unit, (n, nn, total) in merged.items():
        average = _round(total / nn) if nn else None
        values[unit] = {
            "count": int(n),
            "value": average,
            "category": categorize(average, question.rules) if average is not None else None,
        }
    return values


def _category_units(
    question: Question, filters: Filters, ids: list[int]
) -> dict[int | None, dict[str, Any]]:
    """The most common category per org unit (ties: the question's category order)."""
    order = {c: i for i, c in enumerate(question.categories)}
    counts: dict[int | None, Counter[str]] = defaultdict(Counter)
    totals: dict[int | None, int] = defaultdict(int)
    rows = (
        answers(question, filters, ids)
        .values("pollrun_id", "org_unit_id", "category")
        .annotate(n=Count("*"))
        .values_list("org_unit_id", "category", "n")
        .order_by()
    )
    unit: int | None
    for unit, category, n in rows:
        totals[unit] += n
        if category:
            counts[unit][category] += n
    values: dict[int | None, dict[str, Any]] = {}
    for unit, total in totals.items():
        ranked = sorted(
            counts[unit].items(), key=lambda c: (-c[1], order.get(c[0], len(order)), c[0])
        )
        values[unit] = {"count": total, "value": None, "category": ranked[0][0] if ranked else None}
    return values


def pollrun_summary(
    pollrun: PollRun, question: Question, unit_ids: list[int] | None
) -> dict[str, Any]:
    """One question's figures for one poll run (the poll-run page's summary tab).

    Numeric: ``{"type": "numeric", "count", "mean", "min", "max", "bins": [{"start",
    "end", "count"}]}`` — a histogram with numpy's ``sqrt`` rule (⌈√n⌉ equal bins from the
    minimum to the maximum, the last bin closed; a single value gets one bin ±0.5), binned
    in SQL. Categorical: ``{"type", "count", "categories": [{"category", "count",
    "share"}]}``. Open: ``{"type", "count", "words": [{"word", "count"}]}``.
    """
    base = Answer.objects.filter(
        unit_filter(unit_ids), question_id=question.pk, pollrun_id=pollrun.pk, is_active=True
    )
    if question.type == QuestionType.NUMERIC:
        return {"type": question.type, **_histogram(base, value_field(question.account_id))}
    if question.type == QuestionType.CATEGORICAL:
        rows = list(base.values("category").annotate(n=Count("*")).order_by())
        total = sum(r["n"] for r in rows)
        order = {c: i for i, c in enumerate(question.categories)}
        rows.sort(key=lambda r: (order.get(r["category"], len(order)), r["category"]))
        categorised = sum(r["n"] for r in rows if r["category"])
        return {
            "type": question.type,
            "count": total,
            "categories": [
                {
                    "category": r["category"],
                    "count": r["n"],
                    "share": round(r["n"] * 100.0 / categorised, 2) if categorised else None,
                }
                for r in rows
                if r["category"]
            ],
        }
    filters = Filters(unit_ids=unit_ids)
    return {
        "type": question.type,
        "count": base.count(),
        "words": word_cloud(question, filters, WORD_LIMIT, pollrun_ids=[pollrun.pk]),
    }


def _histogram(base: Any, column: str) -> dict[str, Any]:
    stats = base.filter(**{f"{column}__isnull": False}).aggregate(
        n=Count("*"), low=Min(column), high=Max(column), avg=Avg(column)
    )
    n = stats["n"] or 0
    result: dict[str, Any] = {
        "count": n,
        "mean": _round(stats["avg"]),
        "min": stats["low"],
        "max": stats["high"],
        "bins": [],
    }
    if not n:
        return result
    low, high = float(stats["low"]), float(stats["high"])
    if high == low:
        result["bins"] = [{"start": low - 0.5, "end": high + 0.5, "count": n}]
        return result
    k = max(1, math.ceil(math.sqrt(n)))
    width = (high - low) / k
    rows = (
        base.filter(**{f"{column}__isnull": False})
        .annotate(
            bin=Least(
                Floor((F(column) - low) * (k / (high - low))),
                Value(float(k - 1)),
                output_field=FloatField(),
            )
        )
        .values("bin")
        .annotate(c=Count("*"))
        .order_by()
    )
    counts = {int(r["bin"]): r["c"] for r in rows}
    result["bins"] = [
        {
            "start": _round(low + i * width),
            "end": _round(high if i == k - 1 else low + (i + 1) * width),
            "count": counts.get(i, 0),
        }
        for i in range(k)
    ]
    return result
