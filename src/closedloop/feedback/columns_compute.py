"""Column services that compute values: type change, random and formula columns.
Import them from :mod:`closedloop.feedback.columns` (see its docstring for NULLs)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import polars as pl
from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.feedback import table
from closedloop.feedback.columns import (
    MAX_CATEGORIES,
    MAX_LISTED,
    _check_type,
    _columns,
    _json_value,
    _key_label,
    _new_slot,
    _place,
    _set_ncols,
    validate_column_name,
)
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import Column, DataType, Workflow
from closedloop.feedback.services import bump_version, refresh_after_data_change
from closedloop.feedback.services_table import convert_series, failed_rows
from closedloop.feedback.values import FeedbackError

NUMERIC_OPS = {"sum", "prod", "max", "min", "mean", "median", "std"}
BOOLEAN_OPS = {"all", "any"}
FORMULA_OPS = NUMERIC_OPS | BOOLEAN_OPS


# --- values: type change, random and formula columns -----------------------------------


def _swap_values(column: Column, data_type: str, rids: list[int], values: list[Any]) -> None:
    """Move the column to a new physical slot of ``data_type`` holding ``values``."""
    workflow = column.workflow
    old = Column(slot=column.slot, data_type=column.data_type, is_key=column.is_key)
    column.slot = _new_slot(workflow)
    column.data_type = data_type
    key = column.is_key
    column.is_key = False
    table.add_column(workflow, column)
    table.set_column_values(workflow, column, rids, values)
    table.drop_column(workflow, old)
    column.is_key = key
    if key:
        table.set_key_index(workflow, column, True)


_INCOMPATIBLE = {
    (DataType.DATETIME, DataType.INTEGER),
    (DataType.DATETIME, DataType.DOUBLE),
    (DataType.DATETIME, DataType.BOOLEAN),
    (DataType.INTEGER, DataType.DATETIME),
    (DataType.DOUBLE, DataType.DATETIME),
    (DataType.BOOLEAN, DataType.DATETIME),
}


def column_change_type(
    *, column: Column, actor: Any, data_type: str, expected_version: int | None = None
) -> Column:
    """Convert every value to ``data_type``; refused (naming the first rows that do not
    convert) unless all do. Categories are converted too."""
    workflow = column.workflow
    data_type = _check_type(data_type)
    if data_type == column.data_type:
        return column
    if (column.data_type, data_type) in _INCOMPATIBLE:
        raise FeedbackError(
            _("Column “%(column)s”: %(from)s values cannot become %(to)s values.")
            % {
                "column": column.name,
                "from": DataType(column.data_type).label,
                "to": DataType(data_type).label,
            },
            column=column.name,
            field="data_type",
        )
    frame = table.read_frame(workflow, [column], with_rid=True)
    before = frame[column.name]
    after = convert_series(before, data_type)
    bad = failed_rows(before, after)
    if bad:
        rids = [frame[table.ROW_ID][i - 1] for i in bad[:MAX_LISTED]]
        raise FeedbackError(
            _("Column “%(column)s”: %(n)s values cannot become %(type)s values (rows %(rows)s).")
            % {
                "column": column.name,
                "n": len(bad),
                "type": DataType(data_type).label,
                "rows": _key_label(workflow, rids),
            },
            column=column.name,
            field="data_type",
        )
    if column.is_key and after.is_duplicated().any():
        raise FeedbackError(
            _("Column “%(column)s” is a key and its converted values would repeat.")
            % {"column": column.name},
            column=column.name,
            field="data_type",
        )
    categories = column.categories
    if categories:
        converted = convert_series(pl.Series(categories, dtype=pl.String), data_type)
        if converted.null_count():
            raise FeedbackError(
                _(
                    "Column “%(column)s”: its allowed values cannot all be converted; clear them first."
                )
                % {"column": column.name},
                column=column.name,
                field="data_type",
            )
        categories = [_json_value(v) for v in dict.fromkeys(converted.to_list())]
    with transaction.atomic():
        bump_version(workflow, expected_version)
        old_type = column.data_type
        _swap_values(column, data_type, frame[table.ROW_ID].to_list(), after.to_list())
        column.categories = categories
        column.save(update_fields=["slot", "data_type", "categories"])
        table.refresh_search(workflow)
        log_event(
            workflow,
            actor,
            "column_change_type",
            {"column": column.name, "from": old_type, "to": data_type},
        )
        refresh_after_data_change(workflow, {column.name}, search=False)
    return column


def _add_computed(
    workflow: Workflow,
    actor: Any,
    name: str,
    data_type: str,
    rids: list[int],
    values: list[Any],
    *,
    categories: list[Any],
    event: str,
    details: dict[str, Any],
    expected_version: int | None,
) -> Column:
    with transaction.atomic():
        bump_version(workflow, expected_version)
        column = Column.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            name=name,
            slot=_new_slot(workflow),
            data_type=data_type,
            categories=categories,
            position=9999,
        )
        table.add_column(workflow, column)
        if rids:
            table.set_column_values(workflow, column, rids, values)
            table.refresh_search(workflow)
        _place(workflow, column, None)
        _set_ncols(workflow)
        log_event(workflow, actor, event, {"column": name, "type": data_type, **details})
    column.refresh_from_db()
    return column


def column_add_random(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    values: list[Any] | None = None,
    int_range: tuple[int, int] | None = None,
    seed: Any = None,
    expected_version: int | None = None,
) -> Column:
    """A column spreading ``values`` (or the integers of ``int_range``, inclusive) over
    equal-sized random partitions of the rows (sizes differ by at most one)."""
    clean = validate_column_name(name, workflow)
    if (values is None) == (int_range is None):
        raise FeedbackError(_("Give either a list of values or an integer range."), field="values")
    if int_range is not None:
        low, high = int(int_range[0]), int(int_range[1])
        if high < low or high - low >= MAX_CATEGORIES:
            raise FeedbackError(
                _("The range must go from a smaller to a larger number (at most %(n)s values).")
                % {"n": MAX_CATEGORIES},
                field="int_range",
            )
        choices: list[Any] = list(range(low, high + 1))
        data_type: str = DataType.INTEGER
    else:
        cleaned = [v.strip() if isinstance(v, str) else v for v in values or []]
        choices = list(dict.fromkeys(v for v in cleaned if v not in (None, "")))
        if len(choices) < 2:
            raise FeedbackError(_("Give at least two different values."), field="values")
        frame = pl.DataFrame({"v": choices}, strict=False)
        data_type = _infer_values(frame["v"])
        choices = convert_series(frame["v"], data_type).to_list()
    rids = table.read_frame(workflow, [], with_rid=True)[table.ROW_ID].to_list()
    random.Random(seed).shuffle(rids)
    assigned = [choices[i % len(choices)] for i in range(len(rids))]
    return _add_computed(
        workflow,
        actor,
        clean,
        data_type,
        rids,
        assigned,
        categories=[_json_value(v) for v in choices],
        event="column_add_random",
        details={"values": [_json_value(v) for v in choices], "seed": seed},
        expected_version=expected_version,
    )


def _infer_values(series: pl.Series) -> str:
    if series.dtype.is_integer():
        return DataType.INTEGER
    if series.dtype.is_float():
        return DataType.DOUBLE
    if series.dtype == pl.Boolean:
        return DataType.BOOLEAN
    return DataType.STRING


_LIST_OPS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "sum": lambda e: e.list.sum(),
    "prod": lambda e: e.list.eval(pl.element().product()).list.first(),
    "max": lambda e: e.list.max(),
    "min": lambda e: e.list.min(),
    "mean": lambda e: e.list.mean(),
    "median": lambda e: e.list.median(),
    "std": lambda e: e.list.std(ddof=1),
    "all": lambda e: e.list.all(),
    "any": lambda e: e.list.any(),
}


def column_add_formula(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    op: str,
    inputs: list[str],
    expected_version: int | None = None,
) -> Column:
    """A stored column computed from ``inputs`` (see the module docstring for NULLs)."""
    clean = validate_column_name(name, workflow)
    if op not in FORMULA_OPS:
        raise FeedbackError(
            _("“%(op)s” is not a formula; use one of %(ops)s.")
            % {"op": op, "ops": ", ".join(sorted(FORMULA_OPS))},
            field="op",
        )
    by_name = {c.name: c for c in _columns(workflow)}
    if not inputs:
        raise FeedbackError(_("Choose at least one input column."), field="inputs")
    wanted_types = {DataType.BOOLEAN} if op in BOOLEAN_OPS else {DataType.INTEGER, DataType.DOUBLE}
    used: list[Column] = []
    for item in inputs:
        column = by_name.get(item)
        if column is None:
            raise FeedbackError(
                _("There is no column named “%(column)s”.") % {"column": item},
                column=item,
                field="inputs",
            )
        if column.data_type not in wanted_types:
            raise FeedbackError(
                _("Column “%(column)s” is not %(kind)s, so “%(op)s” cannot use it.")
                % {
                    "column": item,
                    "kind": _("true/false") if op in BOOLEAN_OPS else _("numeric"),
                    "op": op,
                },
                column=item,
                field="inputs",
            )
        used.append(column)
    data_type: str
    if op in BOOLEAN_OPS:
        data_type = DataType.BOOLEAN
    elif op in {"sum", "prod", "max", "min"} and all(c.data_type == DataType.INTEGER for c in used):
        data_type = DataType.INTEGER
    else:
        data_type = DataType.DOUBLE
    frame = table.read_frame(workflow, used, with_rid=True)
    cast = pl.Boolean if data_type == DataType.BOOLEAN else pl.Float64
    values = pl.concat_list([pl.col(c.name).cast(cast) for c in used]).list.drop_nulls()
    result = (pl.when(values.list.len() == 0).then(None).otherwise(_LIST_OPS[op](values))).alias(
        "result"
    )
    computed = frame.select(pl.col(table.ROW_ID), result)
    series = computed["result"]
    if data_type == DataType.INTEGER:
        series = series.cast(pl.Int64, strict=False)
    return _add_computed(
        workflow,
        actor,
        clean,
        data_type,
        computed[table.ROW_ID].to_list(),
        series.to_list(),
        categories=[],
        event="column_add_formula",
        details={"op": op, "inputs": inputs},
        expected_version=expected_version,
    )
