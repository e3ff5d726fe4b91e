"""Statistics pages: an overview (one SQL query for every column), one column (Polars over
that one column), and one row compared with the rest of the table."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.feedback import selectors
from closedloop.feedback import table as tbl
from closedloop.feedback.models import Column, DataType, Workflow
from closedloop.feedback.templatetags.feedback_pages import cell
from closedloop.feedback.views_rows import find_row
from closedloop.feedback.views_table import has_table, row_query
from closedloop.feedback.views_workflows import load_workflow, member_required, workflow_context

HISTOGRAM_BINS = 20
TOP_VALUES = 20
NUMERIC = (DataType.INTEGER, DataType.DOUBLE)
ORDERED = (DataType.INTEGER, DataType.DOUBLE, DataType.DATETIME)


def is_categorical(column: Column) -> bool:
    return bool(column.categories) or column.data_type in (DataType.STRING, DataType.BOOLEAN)


def _column(workflow: Workflow, cid: int) -> Column:
    column = Column.objects.filter(workflow=workflow, pk=cid).first()
    if column is None:
        raise Http404
    return column


# --- numbers as shown / charted ------------------------------------------------------------


def _epoch_ms(value: dt.datetime) -> float:
    return value.timestamp() * 1000


def _from_epoch_ms(ms: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _show(column: Column, value: Any) -> str:
    """A statistic as text: datetimes from epoch-ms, numbers rounded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if column.data_type == DataType.DATETIME and isinstance(value, (int, float)):
        return cell(_from_epoch_ms(value))
    if isinstance(value, float):
        if abs(value) >= 1e9:
            return f"{value:,.4g}"
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return cell(value)


def _show_spread(column: Column, std: float | None) -> str:
    if std is None:
        return "—"
    if column.data_type == DataType.DATETIME:
        return _("%(days)s days") % {"days": round(std / 86_400_000, 2)}
    return _show(column, std)


def _numeric_series(column: Column, series: pl.Series) -> pl.Series:
    """The non-null values as Float64 (datetimes as epoch milliseconds)."""
    values = series.drop_nulls()
    if column.data_type == DataType.DATETIME:
        return values.dt.epoch("ms").cast(pl.Float64)
    return values.cast(pl.Float64)


def _five(values: pl.Series) -> list[float]:
    return [
        float(values.min()),  # type: ignore[arg-type]
        float(values.quantile(0.25, "linear")),  # type: ignore[arg-type]
        float(values.median()),  # type: ignore[arg-type]
        float(values.quantile(0.75, "linear")),  # type: ignore[arg-type]
        float(values.max()),  # type: ignore[arg-type]
    ]


def _histogram(column: Column, values: pl.Series) -> dict[str, Any]:
    low, high = float(values.min()), float(values.max())  # type: ignore[arg-type]
    if column.data_type == DataType.INTEGER and high - low + 1 <= HISTOGRAM_BINS:
        counts = values.cast(pl.Int64).value_counts().sort(values.name)
        found = dict(zip(counts[values.name].to_list(), counts["count"].to_list(), strict=True))
        labels = list(range(int(low), int(high) + 1))
        return {"labels": [str(v) for v in labels], "values": [found.get(v, 0) for v in labels]}
    bins = HISTOGRAM_BINS if high > low else 1
    width = (high - low) / bins or 1.0
    index = ((values - low) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    tally = index.value_counts()
    per_bin = dict(zip(tally[index.name].to_list(), tally["count"].to_list(), strict=True))
    return {
        "labels": [_show(column, low + i * width) for i in range(bins)],
        "values": [int(per_bin.get(i, 0)) for i in range(bins)],
    }


def _value_counts(column: Column, series: pl.Series) -> list[tuple[str, int, float]]:
    """(value as text, count, share of non-null) for the most frequent values."""
    values = series.drop_nulls()
    total = values.len()
    if not total:
        return []
    counts = values.value_counts(sort=True).head(TOP_VALUES)
    name = series.name
    out = []
    for value, count in zip(counts[name].to_list(), counts["count"].to_list(), strict=True):
        out.append((cell(value), int(count), count / total))
    if column.categories:  # allowed values never seen still show, with 0
        seen = {text for text, _c, _s in out}
        out += [(cell(c), 0, 0.0) for c in column.categories if cell(c) not in seen]
    return out


def column_statistics(workflow: Workflow, column: Column) -> dict[str, Any]:
    """Every figure and chart of the column page, from a frame of this one column."""
    series = tbl.read_frame(workflow, [column]).to_series()
    rows = series.len()
    nulls = series.null_count()
    stats: dict[str, Any] = {
        "rows": rows,
        "count": rows - nulls,
        "nulls": nulls,
        "distinct": series.drop_nulls().n_unique(),
        "figures": [],
        "charts": {},
    }
    counts = _value_counts(column, series)
    stats["value_counts"] = counts
    # a mode only means something when a value repeats
    stats["mode"] = counts[0][0] if counts and counts[0][1] > 1 else None
    if column.data_type in ORDERED and stats["count"]:
        values = _numeric_series(column, series)
        five = _five(values)
        mean = float(values.mean())  # type: ignore[arg-type]
        std = float(values.std()) if values.len() > 1 else None  # type: ignore[arg-type]
        stats["figures"] = [
            (_("minimum"), _show(column, five[0])),
            (_("first quartile"), _show(column, five[1])),
            (_("median"), _show(column, five[2])),
            (_("third quartile"), _show(column, five[3])),
            (_("maximum"), _show(column, five[4])),
            (_("mean"), _show(column, mean)),
            (_("standard deviation"), _show_spread(column, std)),
        ]
        stats["raw"] = {"five": five, "mean": mean, "std": std}
        stats["charts"]["histogram"] = {
            "kind": "histogram",
            "title": _("Histogram"),
            **_histogram(column, values),
        }
        stats["charts"]["box"] = {
            "kind": "box",
            "title": _("Box plot"),
            "box": five,
            "labels": [_show(column, v) for v in five],
            "datetime": column.data_type == DataType.DATETIME,
        }
    if is_categorical(column) and counts:
        stats["charts"]["bar"] = {
            "kind": "bar",
            "title": _("Most frequent values"),
            "labels": [text or "“”" for text, _c, _s in counts],
            "values": [c for _t, c, _s in counts],
        }
    stats["charts"] = [
        {
            "id": f"chart-{name}",
            "name": name,
            "title": data["title"],
            "data": data,
            "css": "cl-chart" if name == "box" else "cl-chart-lg",
        }
        for name, data in stats["charts"].items()
    ]
    return stats


# --- overview: one SQL query --------------------------------------------------------------


def overview(workflow: Workflow, columns: list[Column]) -> list[dict[str, Any]]:
    """count, distinct, min, max, mean per column in one aggregate query."""
    if not columns or not has_table(workflow, columns):
        return []
    select: list[str] = ["COUNT(*)"]
    for column in columns:
        phys = tbl.qn(column.physical)
        select += [f"COUNT({phys})", f"COUNT(DISTINCT {phys})"]
        if column.data_type in ORDERED:
            select += [f"MIN({phys})", f"MAX({phys})"]
        if column.data_type in NUMERIC:
            select.append(f"AVG({phys})")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(select)} FROM {tbl.qn(workflow.table_name)}")
        values = list(cursor.fetchone())
    total = int(values.pop(0))
    cards = []
    for column in columns:
        count, distinct = int(values.pop(0)), int(values.pop(0))
        card: dict[str, Any] = {
            "column": column,
            "count": count,
            "nulls": total - count,
            "distinct": distinct,
            "filled": round(100 * count / total) if total else 0,
            "figures": [],
        }
        if column.data_type in ORDERED:
            low = tbl.from_db(column.data_type, values.pop(0))
            high = tbl.from_db(column.data_type, values.pop(0))
            card["figures"] += [(_("min"), cell(low)), (_("max"), cell(high))]
        if column.data_type in NUMERIC:
            mean = values.pop(0)
            card["figures"].append(
                (_("mean"), _show(column, float(mean)) if mean is not None else "—")
            )
        cards.append(card)
    return cards


@member_required
def stats_overview(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    columns = selectors.columns_of(workflow)
    context = workflow_context(
        workflow,
        "stats",
        cards=overview(workflow, [c for c in columns if c.in_viz]),
        hidden=[c for c in columns if not c.in_viz],
        has_data=has_table(workflow, columns) and workflow.nrows > 0,
    )
    return render(request, "feedback/stats_overview.html", context)


@member_required
def stats_column(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    column = _column(workflow, cid)
    columns = selectors.columns_of(workflow)
    stats = column_statistics(workflow, column) if has_table(workflow, columns) else None
    context = workflow_context(workflow, "stats", column=column, columns=columns, stats=stats)
    return render(request, "feedback/stats_column.html", context)


# --- one row compared with the rest ---------------------------------------------------------


def compare_row(
    workflow: Workflow, columns: list[Column], row: dict[str, Any]
) -> list[dict[str, Any]]:
    ordered = [c for c in columns if c.data_type in ORDERED and not c.is_key and c.in_viz]
    items: list[dict[str, Any]] = []
    frame = tbl.read_frame(workflow, ordered) if ordered else pl.DataFrame()
    for number, column in enumerate(ordered, start=1):
        values = _numeric_series(column, frame[column.name])
        mine = row.get(column.name)
        item: dict[str, Any] = {
            "column": column,
            "value": cell(mine),
            "kind": "ordered",
            "chart_id": f"compare-{number}",
            "percentile": None,
        }
        if values.len():
            five = _five(values)
            if mine is not None:
                point = _epoch_ms(mine) if column.data_type == DataType.DATETIME else float(mine)
                below = int((values < point).sum())
                equal = int((values == point).sum())
                # percentile rank: share below plus half the ties
                item["percentile"] = round(100 * (below + equal / 2) / values.len())
            else:
                point = None
            item["chart"] = {
                "kind": "box_marked",
                "box": five,
                "point": point,
                "labels": [_show(column, v) for v in five],
                "point_label": cell(mine),
                "datetime": column.data_type == DataType.DATETIME,
            }
            item["median"] = _show(column, five[2])
        items.append(item)
    for column in columns:
        if column.is_key or not column.in_viz or column.data_type in ORDERED:
            continue
        if not is_categorical(column):
            continue
        mine = row.get(column.name)
        phys = tbl.qn(column.physical)
        where = f"{phys} IS NULL" if mine is None else f"{phys} = %s"
        params = [] if mine is None else [tbl.to_db(column.data_type, mine)]
        same = tbl.count_rows(workflow, where=where, params=params)
        items.append(
            {
                "column": column,
                "value": cell(mine),
                "kind": "categorical",
                "same": same,
                "share": round(100 * same / workflow.nrows) if workflow.nrows else 0,
            }
        )
    return items


@member_required
def stats_row(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    columns = selectors.columns_of(workflow)
    key, key_value, row = find_row(
        workflow, columns, request.GET.get("key", ""), request.GET.get("value", "")
    )
    context = workflow_context(
        workflow,
        "stats",
        key=key,
        key_value=cell(key_value),
        row_query=row_query(key, key_value),
        items=compare_row(workflow, columns, row),
        now=timezone.now(),
    )
    return render(request, "feedback/stats_row.html", context)
