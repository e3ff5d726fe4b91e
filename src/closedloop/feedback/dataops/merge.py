"""Merging new data into a workflow's table, vectorised in Polars and written in bulk.

Semantics (OnTask's, made safe):

- the new data is joined on ``table[left_on] = new[right_on]``; ``how`` is **outer** (keys
  from both), **inner** (keys in both), **left** (the table's keys only) or **right**
  (the new data's keys only);
- columns the table does not have are added; columns it has are updated cell by cell,
  and only where the new value is not null (``clear_with_empty`` lets empty values
  clear a cell of the rows present in the new data);
- values are converted to the type of the existing column when every value converts
  exactly (``"True"`` → true, ``3.0`` → 3, ``12`` → ``"12"``), else the merge stops and
  names the column and the rows; values must be inside the column's categories;
- every key column stays unique and non-null.

The whole write is one transaction (snapshot for undo, new table, column rows, log, count
refresh): on any error the table is exactly as before and ``workflow_data_failedmerge``
is logged with the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.feedback import table as storage
from closedloop.feedback.dataops import infer
from closedloop.feedback.dataops.errors import FeedbackError, data_error, rows_text
from closedloop.feedback.dataops.fastread import read_table_frame
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import Column, Workflow

HOWS = ("outer", "inner", "left", "right")
SAMPLE_ROWS = 5


@dataclass
class ColumnPlan:
    name: str
    #: new | update | renamed | ignored | key
    tag: str
    data_type: str
    #: the name in the new data (differs for renamed columns)
    source_name: str = ""
    is_key: bool = False
    #: for renamed columns: whether they are new or update a column
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "type": self.data_type,
            "source_name": self.source_name or self.name,
            "is_key": self.is_key,
            "target": self.target,
        }


@dataclass
class MergeResult:
    added: int
    updated: int
    unchanged: int
    dropped: int
    columns: list[ColumnPlan]
    nrows: int = 0
    how: str = "outer"
    left_on: str = ""
    right_on: str = ""
    dry_run: bool = False
    #: a few rows of the result (preview), as {column name: value}
    sample: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "dropped": self.dropped,
            "nrows": self.nrows,
            "how": self.how,
            "left_on": self.left_on,
            "right_on": self.right_on,
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass
class MergePlan:
    """What a merge would write: the whole new table and the columns to create."""

    frame: pl.DataFrame
    existing: list[Column]
    new_columns: list[tuple[str, str, bool]]  # (name, type, is_key)
    changed: set[str]
    result: MergeResult


# --- checks --------------------------------------------------------------------------


def _row_numbers(frame: pl.DataFrame, row_numbers: Sequence[int] | None) -> pl.Series:
    if row_numbers is not None and len(row_numbers) == frame.height:
        return pl.Series("__row", list(row_numbers), dtype=pl.Int64)
    return pl.int_range(2, frame.height + 2, eager=True).alias("__row")


def _display(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat(sep=" "))
    return str(value)


def check_incoming_key(frame: pl.DataFrame, key: str, rows: pl.Series) -> None:
    """The key of the new data: a value in every row, none twice."""
    series = frame.get_column(key)
    missing = rows.filter(series.is_null()).to_list()
    if missing:
        raise data_error(
            _("The key column “%(col)s” of the new data is empty in rows %(rows)s.")
            % {"col": key, "rows": rows_text(missing)},
            row=missing[0],
            column=key,
        )
    duplicated = series.is_duplicated()
    if duplicated.any():
        raise duplicate_error(key, series, rows, _("of the new data"))


def duplicate_error(name: str, series: pl.Series, rows: pl.Series, where: str) -> FeedbackError:
    mask = series.is_duplicated() & series.is_not_null()
    dup = pl.DataFrame({"v": series.filter(mask), "r": rows.filter(mask)})
    groups = dup.group_by("v", maintain_order=True).agg(pl.col("r")).head(5).rows()
    parts = []
    errors = []
    for value, found in groups:
        numbers = [int(r) for r in found if r is not None]
        in_table = len(found) - len(numbers)
        text = _("“%(value)s” in rows %(rows)s") % {"value": _display(value), "rows": rows_text(numbers)} if numbers else f"“{_display(value)}”"  # fmt: skip
        if in_table:
            text += " " + _("(and %(n)d rows already in the table)") % {"n": in_table}
        parts.append(text)
        errors.append({"row": numbers[0] if numbers else None, "column": name, "message": _("Duplicate key “%(v)s”.") % {"v": _display(value)}})  # fmt: skip
    message = _("The key column “%(col)s” %(where)s has values that appear more than once: %(list)s.") % {
        "col": name,
        "where": where,
        "list": "; ".join(parts),
    }  # fmt: skip
    return data_error(message, errors=errors)


def convert_for(
    series: pl.Series, data_type: str, column: str, rows: pl.Series, time_zone: str
) -> pl.Series:
    """``series`` as ``data_type``; every value must convert exactly, else an error that
    names the column and the first rows that do not fit."""
    if infer.type_of_dtype(series.dtype) == data_type:
        return series.cast(infer.dtype_of(data_type))
    converted = infer.coerce_series(series, data_type, time_zone)
    bad = infer.failed_mask(series, converted)
    if bad.any():
        shown = infer.as_text(series.filter(bad)).to_list()
        numbers = rows.filter(bad).to_list()
        type_label = _type_label(data_type)
        message = _(
            "Column “%(col)s” holds %(type)s, but the new data has values that are not: "
            "rows %(rows)s."
        ) % {"col": column, "type": type_label, "rows": rows_text(numbers, shown)}
        raise data_error(
            message,
            errors=[
                {"row": n, "column": column, "message": _("“%(v)s” is not %(type)s.") % {
                    "v": v, "type": type_label}}
                for n, v in list(zip(numbers, shown, strict=False))[:5]
            ],
        )  # fmt: skip
    return converted.alias(series.name)


def _type_label(data_type: str) -> str:
    labels = {
        "string": _("text"),
        "integer": _("integers"),
        "double": _("numbers"),
        "boolean": _("true/false values"),
        "datetime": _("dates and times"),
    }
    return labels.get(data_type, data_type)


def _category_mask(series: pl.Series, column: Column) -> pl.Series | None:
    """True where a value is outside the column's categories (None: no categories)."""
    categories = list(column.categories or [])
    if not categories:
        return None
    allowed = pl.lit(False)
    values: list[Any] = []
    for item in categories:
        if column.data_type == "integer" and isinstance(item, str) and " - " in item:
            low, high = (int(p) for p in item.split(" - ", 1))
            allowed = allowed | pl.col("v").is_between(low, high)
        else:
            values.append(item)
    if values:
        typed = infer.coerce_series(
            pl.Series("c", [infer.python_value_text(v) for v in values]),
            column.data_type,
        )
        allowed = allowed | pl.col("v").is_in(typed.drop_nulls().implode())
    mask = pl.DataFrame({"v": series}).select((pl.col("v").is_not_null() & ~allowed).alias("m"))
    return mask.to_series()


def check_categories(series: pl.Series, column: Column, rows: pl.Series) -> None:
    mask = _category_mask(series, column)
    if mask is None or not mask.any():
        return
    numbers = rows.filter(mask).to_list()
    shown = infer.as_text(series.filter(mask)).to_list()
    message = _(
        "Column “%(col)s” accepts only %(allowed)s; the new data has other values in rows %(rows)s."
    ) % {
        "col": column.name,
        "allowed": ", ".join(f"“{c}”" for c in column.categories),
        "rows": rows_text(numbers, shown),
    }
    raise data_error(message, row=numbers[0], column=column.name)


def check_result_keys(frame: pl.DataFrame, keys: Iterable[str], rows: pl.Series) -> None:
    for name in keys:
        series = frame.get_column(name)
        missing = series.is_null()
        if missing.any():
            numbers = [n for n in rows.filter(missing).to_list() if n is not None]
            where = (
                _(" (rows %(rows)s of the new data)") % {"rows": rows_text(numbers)}
                if numbers
                else ""
            )
            raise data_error(
                _(
                    "The merge would leave key column “%(col)s” empty in %(n)d rows%(where)s. "
                    "Give those rows a value, or un-mark the column as a key."
                )
                % {"col": name, "n": int(missing.sum()), "where": where},
                column=name,
            )
        if series.is_duplicated().any():
            raise duplicate_error(name, series, rows, _("after the merge"))


# --- planning ------------------------------------------------------------------------


def plan_merge(
    workflow: Workflow,
    existing: list[Column],
    current: pl.DataFrame,
    frame: pl.DataFrame,
    types: dict[str, str],
    *,
    how: str,
    left_on: str,
    right_on: str,
    clear_with_empty: bool = False,
    renames: dict[str, str] | None = None,
    ignored: Sequence[str] = (),
    keys: Sequence[str] = (),
    row_numbers: Sequence[int] | None = None,
    time_zone: str = "UTC",
) -> MergePlan:
    """Build the merged table in memory and count what changes; raises FeedbackError."""
    renames = renames or {}
    if how not in HOWS:
        raise data_error(
            _("Unknown merge method “%(how)s”; use outer, inner, left or right.") % {"how": how},
            column="how",
        )
    by_name = {c.name: c for c in existing}
    left = by_name.get(left_on)
    if left is None or not left.is_key:
        raise data_error(
            _("“%(col)s” is not a key column of the table.") % {"col": left_on}, column="left_on"
        )
    if right_on not in frame.columns:
        raise data_error(
            _("“%(col)s” is not a column of the new data.") % {"col": right_on},
            column="right_on",
        )
    rows = _row_numbers(frame, row_numbers)
    check_incoming_key(frame, right_on, rows)
    key_new = convert_for(frame.get_column(right_on), left.data_type, right_on, rows, time_zone)

    plans: list[ColumnPlan] = []
    incoming: list[tuple[str, pl.Series]] = []  # (table column name, converted values)
    new_columns: list[tuple[str, str, bool]] = []
    for name in frame.columns:
        source_name = renames.get(name, name)
        if name == right_on and (name == left_on or name not in by_name):
            plans.append(ColumnPlan(left_on, "key", left.data_type, source_name, True))
            continue
        series = frame.get_column(name)
        target = by_name.get(name)
        if target is not None:
            converted = convert_for(series, target.data_type, name, rows, time_zone)
            check_categories(converted, target, rows)
            tag, kind = "update", "update"
            data_type, is_key = target.data_type, target.is_key
        else:
            data_type = types.get(name) or infer.type_of_dtype(series.dtype) or "string"
            converted = convert_for(series, data_type, name, rows, time_zone)
            tag, kind, is_key = "new", "new", name in keys
            new_columns.append((name, data_type, is_key))
        if source_name != name:
            tag = "renamed"
        plans.append(ColumnPlan(name, tag, data_type, source_name, is_key, kind))
        incoming.append((name, converted))
    for name in ignored:
        plans.append(ColumnPlan(name, "ignored", types.get(name, "string"), name))

    new_frame = pl.DataFrame(
        [key_new.alias("__key")]
        + [s.alias(f"__n{i}") for i, (_name, s) in enumerate(incoming)]
        + [rows.alias("__row"), pl.int_range(0, frame.height, eager=True).alias("__pos_new")]
    ).with_columns(pl.lit(True).alias("__new"))
    old_frame = current.with_columns(
        pl.int_range(0, current.height).alias("__pos_old"), pl.lit(True).alias("__old")
    )
    joined = old_frame.join(
        new_frame, left_on=left_on, right_on="__key", how="full", coalesce=True
    ).with_columns(pl.col("__old").fill_null(False), pl.col("__new").fill_null(False))
    keep = {
        "outer": pl.lit(True),
        "inner": pl.col("__old") & pl.col("__new"),
        "left": pl.col("__old"),
        "right": pl.col("__new"),
    }[how]
    joined = joined.filter(keep).sort(["__pos_old", "__pos_new"], nulls_last=True)

    exprs: list[pl.Expr] = []
    changed_exprs: list[pl.Expr] = []
    updates = {name: f"__n{i}" for i, (name, _s) in enumerate(incoming)}
    for column in existing:
        name = column.name
        if name in updates:
            new = pl.col(updates[name])
            value = (
                pl.when(pl.col("__new")).then(new).otherwise(pl.col(name))
                if clear_with_empty
                else pl.coalesce([new, pl.col(name)])
            )
            exprs.append(value.alias(name))
            changed_exprs.append(value.ne_missing(pl.col(name)))
        else:
            exprs.append(pl.col(name))
    for name, _type, _key in new_columns:
        exprs.append(pl.col(updates[name]).alias(name))
        changed_exprs.append(pl.col(updates[name]).is_not_null())
    flags = [pl.col("__old"), pl.col("__new"), pl.col("__row")]
    changed = pl.any_horizontal(changed_exprs) if changed_exprs else pl.lit(False)
    result = joined.select([*exprs, *flags, changed.alias("__changed")])

    if result.height == 0:
        raise data_error(
            _("The merge would leave the table empty: no row has a key in both tables.")
        )
    key_names = [c.name for c in existing if c.is_key] + [n for n, _t, k in new_columns if k]
    check_result_keys(result, key_names, result.get_column("__row"))

    kept_old = int(result.get_column("__old").sum())
    updated = int((result.get_column("__old") & result.get_column("__changed")).sum())
    outcome = MergeResult(
        added=result.height - kept_old,
        updated=updated,
        unchanged=kept_old - updated,
        dropped=current.height - kept_old,
        columns=plans,
        nrows=result.height,
        how=how,
        left_on=left_on,
        right_on=right_on,
    )
    final = result.drop(["__old", "__new", "__row", "__changed"])
    sample_rows = result.filter(pl.col("__changed") | ~pl.col("__old")).head(SAMPLE_ROWS)
    outcome.sample = sample_rows.drop(["__old", "__new", "__row", "__changed"]).to_dicts()
    touched = {p.name for p in plans if p.tag in ("new", "update", "renamed")}
    return MergePlan(final, existing, new_columns, touched, outcome)


# --- running -------------------------------------------------------------------------


def _existing_columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def _time_zone(workflow: Workflow) -> str:
    account = getattr(workflow, "account", None)
    return getattr(account, "time_zone", "") or "UTC"


def merge_frame(
    *,
    workflow: Workflow,
    actor: Any,
    frame: pl.DataFrame,
    types: dict[str, str],
    how: str,
    left_on: str,
    right_on: str,
    clear_with_empty: bool = False,
    dry_run: bool = False,
    label: str = "merge",
    renames: dict[str, str] | None = None,
    ignored: Sequence[str] = (),
    keys: Sequence[str] = (),
    row_numbers: Sequence[int] | None = None,
    expected_version: int | None = None,
) -> MergeResult:
    """Merge ``frame`` into the workflow's table (see the module docstring).

    ``dry_run`` computes the preview without writing. An empty workflow is loaded instead
    (``services.table_load``) with ``keys`` (default: ``right_on``) as key columns."""

    options = {
        "types": types,
        "how": how,
        "left_on": left_on,
        "right_on": right_on,
        "clear_with_empty": clear_with_empty,
        "renames": renames,
        "ignored": ignored,
        "keys": keys,
        "row_numbers": row_numbers,
        "time_zone": _time_zone(workflow),
    }
    if dry_run:
        existing = _existing_columns(workflow)
        if not existing:
            return _load_preview(frame, types, keys or [right_on], renames, ignored)
        current = read_table_frame(workflow, existing)
        return plan_merge(workflow, existing, current, frame, **options).result  # type: ignore[arg-type]
    try:
        with transaction.atomic():
            locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
            existing = _existing_columns(locked)
            if not existing:
                load_frame(
                    workflow=workflow,
                    actor=actor,
                    frame=frame,
                    keys=list(keys or [right_on]),
                    types=types,
                    label=label if label != "merge" else "upload",
                    row_numbers=row_numbers,
                    expected_version=expected_version,
                )
                return _load_preview(frame, types, keys or [right_on], renames, ignored)
            current = read_table_frame(locked, existing)
            plan = plan_merge(locked, existing, current, frame, **options)  # type: ignore[arg-type]
            write_plan(locked, plan, actor=actor, label=label, expected_version=expected_version)
    except Exception as exc:
        workflow.refresh_from_db()
        log_event(
            workflow,
            actor,
            "workflow_data_failedmerge",
            {
                "message": str(exc),
                "errors": getattr(exc, "errors", []),
                "how": how,
                "left_on": left_on,
                "right_on": right_on,
            },
        )
        raise
    workflow.refresh_from_db()
    return plan.result


def load_frame(
    *,
    workflow: Workflow,
    actor: Any,
    frame: pl.DataFrame,
    keys: Sequence[str],
    types: dict[str, str],
    label: str = "upload",
    row_numbers: Sequence[int] | None = None,
    expected_version: int | None = None,
) -> list[Column]:
    """Replace all data and columns by ``frame`` (an upload into an empty table, or the
    API's PUT). Keys are checked here first so messages carry the file's row numbers."""
    from closedloop.feedback import services

    if not keys:
        raise data_error(_("Choose at least one key column: a column with a value in every row and no value twice."))  # fmt: skip
    rows = _row_numbers(frame, row_numbers)
    for key in keys:
        if key not in frame.columns:
            raise data_error(_("The key column “%(col)s” is not in the data.") % {"col": key}, column=key)  # fmt: skip
        check_incoming_key(frame, key, rows)
    types = {
        n: types.get(n) or infer.type_of_dtype(frame.schema[n]) or "string" for n in frame.columns
    }
    typed = frame.with_columns(
        [infer.coerce_series(frame.get_column(n), t).alias(n) for n, t in types.items()]
    )
    columns: list[Column] = services.table_load(
        workflow=workflow,
        actor=actor,
        frame=typed,
        keys=list(keys),
        types=types,
        label=label,
        expected_version=expected_version,
    )
    workflow.refresh_from_db()
    return columns


def write_plan(
    workflow: Workflow,
    plan: MergePlan,
    *,
    actor: Any,
    label: str,
    expected_version: int | None = None,
) -> None:
    """Inside the caller's transaction: snapshot, new column rows, new table, log, counts."""
    from closedloop.feedback import services

    services.bump_version(workflow, expected_version)
    storage.snapshot_version(workflow, label=label, actor=actor)
    columns = list(plan.existing)
    position = max((c.position for c in columns), default=0)
    slot = max(workflow.next_slot, max((c.slot for c in columns), default=0) + 1)
    for name, data_type, is_key in plan.new_columns:
        position += 1
        columns.append(
            Column.objects.create(
                account_id=workflow.account_id,
                workflow=workflow,
                name=name,
                slot=slot,
                data_type=data_type,
                is_key=is_key,
                position=position,
            )
        )
        slot += 1
    storage.replace_table(workflow, columns, plan.frame, label=label, actor=actor, snapshot=False)
    result = plan.result
    log_event(
        workflow,
        actor,
        "workflow_data_merge",
        {
            "label": label,
            **{k: v for k, v in result.counts().items() if k != "columns"},
            "columns": [c.to_dict() for c in result.columns if c.tag != "ignored"],
        },
    )
    services.refresh_after_data_change(workflow, plan.changed)


def _load_preview(
    frame: pl.DataFrame,
    types: dict[str, str],
    keys: Sequence[str],
    renames: dict[str, str] | None,
    ignored: Sequence[str],
) -> MergeResult:
    """What loading ``frame`` into an empty table does (every column new)."""
    renames = renames or {}
    plans = [
        ColumnPlan(
            name,
            "renamed" if renames.get(name, name) != name else "new",
            types.get(name) or infer.type_of_dtype(frame.schema[name]) or "string",
            renames.get(name, name),
            name in keys,
            "new",
        )
        for name in frame.columns
    ]
    plans += [ColumnPlan(n, "ignored", types.get(n, "string"), n) for n in ignored]
    return MergeResult(
        added=frame.height,
        updated=0,
        unchanged=0,
        dropped=0,
        columns=plans,
        nrows=frame.height,
        how="load",
        sample=frame.head(SAMPLE_ROWS).to_dicts(),
    )
