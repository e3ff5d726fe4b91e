"""Per-question aggregates of the poll-detail cards: series over dates, summary, word cloud.

Every figure comes from a GROUP BY over the denormalized ``Answer`` / ``Response``
columns (index ``polls_ans_chart``), never from Python loops over answers. Rules:

- only active answers and responses count (the newest response per contact per poll run);
- a numeric answer's value is ``value_number`` under the same-day rule ``use_last`` and
  ``day_sum`` under ``sum`` (both are stored on the answer, so changing the rule needs no
  recompute);
- per poll run (one point per run, dated by its local day): sum and average of the
  values, response rate = answers to this question ÷ active responses of the run
  (empty ones included) × 100 — answers and responses both within the filters;
- poll runs without any response within the filters are left out (no 0 ÷ 0 points);
- summary: mean and **population** standard deviation of the per-date averages, the
  average response rate across dates, and the totals.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from django.db.models import Count, Sum

from closedloop.polls.models import ContactGroup, GroupRole, Question, QuestionType, WordCount
from closedloop.polls.stats_filters import (
    Filters,
    answers,
    pollrun_dates,
    responses,
    value_field,
)
from closedloop.registry.models import OrgUnit

#: with a cohort or field filter the word cloud is tokenized from at most this many of the
#: newest matching answers (the WordCount rollup is kept per poll run × org unit only)
WORD_SAMPLE = 2000
WORD_LIMIT = 50


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _rate(answered: int, responded: int) -> float | None:
    return round(answered * 100.0 / responded, 2) if responded else None


def unit_names(unit_ids: set[int | None]) -> dict[int | None, str]:
    """Display names of panel org units: the panel group names (else the unit's name)."""
    ids = [i for i in unit_ids if i is not None]
    names: dict[int | None, list[str]] = defaultdict(list)
    for unit_id, name in (
        ContactGroup.objects.filter(role=GroupRole.PANEL, org_unit_id__in=ids)
        .order_by("name")
        .values_list("org_unit_id", "name")
    ):
        names[unit_id].append(name)
    missing = [i for i in ids if i not in names]
    result: dict[int | None, str] = {k: " / ".join(v) for k, v in names.items()}
    if missing:
        result.update(OrgUnit.objects.filter(pk__in=missing).values_list("pk", "name"))
    if None in unit_ids:
        from django.utils.translation import gettext as _

        result[None] = _("No panel")
    return result


# --- numeric -------------------------------------------------------------------------


def numeric_rows(
    question: Question,
    filters: Filters,
    pollrun_ids: list[int],
    by_unit: bool = False,
    with_responses: bool = True,
) -> tuple[dict[Any, dict[str, Any]], dict[Any, int]]:
    """Answer aggregates ``{"n", "nn" (numbers), "total"}`` and response counts keyed by
    poll run, or by ``(poll run, org unit)`` with ``by_unit`` — index-only GROUP BYs."""
    column = value_field(question.account_id)
    keys = ["pollrun_id", "org_unit_id"] if by_unit else ["pollrun_id"]
    answer_rows = (
        answers(question, filters, pollrun_ids)
        .values(*keys)
        .annotate(n=Count("*"), nn=Count(column), total=Sum(column))
        .values_list(*keys, "n", "nn", "total")
        .order_by()
    )
    response_rows = (
        responses(filters, pollrun_ids)
        .values(*keys)
        .annotate(n=Count("*"))
        .values_list(*keys, "n")
        .order_by()
    )
    width = len(keys)
    found: dict[Any, dict[str, Any]] = {}
    for row in answer_rows:
        key = row[:width] if by_unit else row[0]
        found[key] = {"n": row[width], "nn": row[width + 1], "total": row[width + 2]}
    if not with_responses:
        return found, {}
    counts = {(row[:width] if by_unit else row[0]): row[width] for row in response_rows}
    return found, counts


def _point(row: dict[str, Any] | None, responded: int) -> tuple[float, float | None, float | None]:
    answered = row["n"] if row else 0
    total = float(row["total"] or 0.0) if row else 0.0
    average = total / row["nn"] if row and row["nn"] else None
    return _round(total) or 0.0, _round(average), _rate(answered, responded)


def _merge_units(
    answer_rows: dict[Any, dict[str, Any]], response_counts: dict[Any, int]
) -> tuple[dict[Any, dict[str, Any]], dict[Any, int]]:
    """Per-(run, unit) aggregates → per-run aggregates (sums of counts and totals)."""
    merged: dict[Any, dict[str, Any]] = {}
    for (pk, _unit), row in answer_rows.items():
        into = merged.setdefault(pk, {"n": 0, "nn": 0, "total": 0.0})
        into["n"] += row["n"]
        into["nn"] += row["nn"]
        into["total"] += float(row["total"] or 0.0)
    counts: dict[Any, int] = defaultdict(int)
    for (pk, _unit), n in response_counts.items():
        counts[pk] += n
    return merged, dict(counts)


def numeric_series(
    question: Question, filters: Filters, split_by_panel: bool = False
) -> dict[str, Any]:
    """Sum, average and response rate per poll run.

    ``{"dates": ["2026-11-02", ...], "pollruns": [ids], "sum": [...], "average": [...]
    (null when no number), "response_rate": [% ...], "answers": [n ...], "responses":
    [n ...], "series_by_panel": {"<org unit id>": {"id", "name", "sum", "average",
    "response_rate"}}}`` — ``series_by_panel`` is filled only with ``split_by_panel`` (one
    series per panel org unit, aligned with ``dates``; ``null`` where the panel had no
    response that day). Split or not, it costs two GROUP BYs: the per-run figures of a
    split chart are the sums of its per-unit groups.
    """
    runs = pollrun_dates(question.poll_id, filters)
    result = _empty_series()
    result["series_by_panel"] = {}
    if not runs:
        return result
    ids = [pk for pk, _day in runs]
    if split_by_panel:
        unit_rows, unit_counts = numeric_rows(question, filters, ids, by_unit=True)
        answer_rows, response_counts = _merge_units(unit_rows, unit_counts)
    else:
        answer_rows, response_counts = numeric_rows(question, filters, ids)
    kept = [(pk, day) for pk, day in runs if response_counts.get(pk)]
    for pk, day in kept:
        row = answer_rows.get(pk)
        total, average, rate = _point(row, response_counts[pk])
        _append(result, pk, day, row["n"] if row else 0, response_counts[pk])
        result["sum"].append(total)
        result["average"].append(average)
        result["response_rate"].append(rate)
    if split_by_panel and kept:
        result["series_by_panel"] = _split(kept, unit_rows, unit_counts)
    return result


def _split(
    kept: list[tuple[int, Any]],
    answer_rows: dict[Any, dict[str, Any]],
    response_counts: dict[Any, int],
) -> dict[str, dict[str, Any]]:
    units = {unit for (_pk, unit) in response_counts} | {unit for (_pk, unit) in answer_rows}
    names = unit_names(units)
    series: dict[str, dict[str, Any]] = {}
    for unit in sorted(units, key=lambda u: (names.get(u, ""), u or 0)):
        item: dict[str, Any] = {
            "id": unit,
            "name": names.get(unit, ""),
            "sum": [],
            "average": [],
            "response_rate": [],
        }
        for pk, _day in kept:
            responded = response_counts.get((pk, unit), 0)
            row = answer_rows.get((pk, unit))
            if not responded and not row:
                total, average, rate = None, None, None
            else:
                total, average, rate = _point(row, responded)
            item["sum"].append(total)
            item["average"].append(average)
            item["response_rate"].append(rate)
        series[str(unit) if unit is not None else "none"] = item
    return series


def _empty_series() -> dict[str, Any]:
    return {
        "dates": [],
        "pollruns": [],
        "sum": [],
        "average": [],
        "response_rate": [],
        "answers": [],
        "responses": [],
    }


def _append(result: dict[str, Any], pk: int, day: Any, answered: int, responded: int) -> None:
    result["dates"].append(day.isoformat())
    result["pollruns"].append(pk)
    result["answers"].append(answered)
    result["responses"].append(responded)


# --- categorical ---------------------------------------------------------------------


def categorical_series(question: Question, filters: Filters) -> dict[str, Any]:
    """Answers per category per poll run, and each category's share of the run's answers.

    ``{"dates", "pollruns", "categories": [names: the question's order, then any other
    seen], "counts": {category: [n per date]}, "shares": {category: [% per date]},
    "answers": [n], "responses": [n], "response_rate": [%]}``. Answers without a category
    (RapidPro's "All Responses") count as answers but in no category.
    """
    runs = pollrun_dates(question.poll_id, filters)
    result = _empty_series()
    del result["sum"], result["average"]
    result.update({"categories": [], "counts": {}, "shares": {}})
    if not runs:
        return result
    ids = [pk for pk, _day in runs]
    rows = (
        answers(question, filters, ids)
        .values("pollrun_id", "category")
        .annotate(n=Count("*"))
        .order_by()
    )
    response_counts = {
        r["pollrun_id"]: r["n"]
        for r in responses(filters, ids).values("pollrun_id").annotate(n=Count("*")).order_by()
    }
    counts: dict[tuple[int, str], int] = {}
    answered: Counter[int] = Counter()
    categorised: Counter[int] = Counter()
    seen: set[str] = set()
    for row in rows:
        answered[row["pollrun_id"]] += row["n"]
        if row["category"]:
            counts[(row["pollrun_id"], row["category"])] = row["n"]
            categorised[row["pollrun_id"]] += row["n"]
            seen.add(row["category"])
    categories = [c for c in question.categories if c in seen] + sorted(
        seen - set(question.categories)
    )
    result["categories"] = categories
    result["counts"] = {c: [] for c in categories}
    result["shares"] = {c: [] for c in categories}
    for pk, day in runs:
        responded = response_counts.get(pk, 0)
        if not responded:
            continue
        _append(result, pk, day, answered[pk], responded)
        result["response_rate"].append(_rate(answered[pk], responded))
        for category in categories:
            n = counts.get((pk, category), 0)
            result["counts"][category].append(n)
            share = round(n * 100.0 / categorised[pk], 2) if categorised[pk] else None
            result["shares"][category].append(share)
    return result


# --- open-ended ----------------------------------------------------------------------


def answer_counts(question: Question, filters: Filters) -> dict[str, Any]:
    """Answers, responses and response rate per poll run (any question type)."""
    runs = pollrun_dates(question.poll_id, filters)
    result = _empty_series()
    del result["sum"], result["average"]
    if not runs:
        return result
    ids = [pk for pk, _day in runs]
    answered = {
        r["pollrun_id"]: r["n"]
        for r in answers(question, filters, ids)
        .values("pollrun_id")
        .annotate(n=Count("*"))
        .order_by()
    }
    response_counts = {
        r["pollrun_id"]: r["n"]
        for r in responses(filters, ids).values("pollrun_id").annotate(n=Count("*")).order_by()
    }
    for pk, day in runs:
        responded = response_counts.get(pk, 0)
        if responded:
            _append(result, pk, day, answered.get(pk, 0), responded)
            result["response_rate"].append(_rate(answered.get(pk, 0), responded))
    return result


def word_cloud(
    question: Question,
    filters: Filters,
    limit: int = WORD_LIMIT,
    pollrun_ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` most frequent words: ``[{"word", "count"}]``, most frequent first.

    From the ``WordCount`` rollup (kept by the ingest per question × poll run × org unit),
    summed over the poll runs of the window and the units of the filters. The rollup knows
    no contacts, so with a cohort or contact-field filter the words are counted from the
    newest :data:`WORD_SAMPLE` matching answers instead (tokenized per contact language,
    the same way the ingest does) — see :func:`word_cloud_source`.
    """
    if pollrun_ids is None:
        pollrun_ids = [pk for pk, _day in pollrun_dates(question.poll_id, filters)]
    if not pollrun_ids:
        return []
    if filters.has_contact_filter:
        return _words_from_answers(question, filters, pollrun_ids, limit)
    from closedloop.polls.selectors import unit_filter

    rows = (
        WordCount.objects.filter(
            unit_filter(filters.unit_ids), question_id=question.pk, pollrun_id__in=pollrun_ids
        )
        .values("word")
        .annotate(count=Sum("count"))
        .order_by("-count", "word")[:limit]
    )
    return [{"word": r["word"], "count": r["count"]} for r in rows]


def word_cloud_source(filters: Filters) -> str:
    """``"rollup"`` or ``"latest_answers"`` (cohort / field filters, sampled)."""
    return "latest_answers" if filters.has_contact_filter else "rollup"


def _words_from_answers(
    question: Question, filters: Filters, pollrun_ids: list[int], limit: int
) -> list[dict[str, Any]]:
    from closedloop.polls.words import tokenize

    texts = (
        answers(question, filters, pollrun_ids)
        .exclude(value="")
        .order_by("-submitted_on", "-pk")
        .values_list("value", "contact__language")[:WORD_SAMPLE]
    )
    counter: Counter[str] = Counter()
    for text, language in texts:
        counter.update(tokenize(text, language))
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"word": word, "count": count} for word, count in ranked]


# --- summary and the whole card ------------------------------------------------------


def summary_from_series(series: dict[str, Any]) -> dict[str, Any]:
    """Mean / population stdev of the per-date averages, mean response rate, totals."""
    averages = [a for a in series.get("average", []) if a is not None]
    rates = [r for r in series.get("response_rate", []) if r is not None]
    return {
        "dates": len(series.get("dates", [])),
        "mean": _round(statistics.fmean(averages)) if averages else None,
        "stdev": _round(statistics.pstdev(averages)) if averages else None,
        "response_rate": round(statistics.fmean(rates), 2) if rates else None,
        "answers": sum(series.get("answers", [])),
        "responses": sum(series.get("responses", [])),
    }


def summary(question: Question, filters: Filters) -> dict[str, Any]:
    """``{"dates", "mean", "stdev", "response_rate", "answers", "responses"}`` (mean and
    stdev only for numeric questions; ``null`` otherwise)."""
    if question.type == QuestionType.NUMERIC:
        return summary_from_series(numeric_series(question, filters))
    return summary_from_series(answer_counts(question, filters))


def question_chart(question: Question, filters: Filters, split_by_panel: bool = False) -> dict:
    """Everything a poll-detail card needs, by question type (see the API docstring)."""
    payload: dict[str, Any] = {
        "question": {
            "id": question.pk,
            "name": question.display_name,
            "type": question.type,
            "categories": list(question.categories),
        },
        "filters": filters.as_params(),
    }
    if question.type == QuestionType.NUMERIC:
        series = numeric_series(question, filters, split_by_panel=split_by_panel)
    elif question.type == QuestionType.CATEGORICAL:
        series = categorical_series(question, filters)
    else:
        series = answer_counts(question, filters)
        payload["words"] = word_cloud(question, filters, pollrun_ids=series["pollruns"])
        payload["words_source"] = word_cloud_source(filters)
    payload.update(series)
    payload["summary"] = summary_from_series(series)
    return payload
