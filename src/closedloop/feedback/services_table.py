"""Writes that touch the workflow's data: loading a whole table, single-row edits and
cloning a workflow with its data. Re-exported by :mod:`closedloop.feedback.services`
(import them from there).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

import polars as pl
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.feedback import table
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    COLUMN_NAME_MAX,
    Action,
    ActionColumn,
    Column,
    Condition,
    DataType,
    Filter,
    RubricCell,
    View,
    Workflow,
)
from closedloop.feedback.table import ROW_ID, qn
from closedloop.feedback.values import (
    FALSE_WORDS,
    TRUE_WORDS,
    FeedbackError,
    RowNotFound,
    coerce_value,
    parse_datetime,
)

MAX_LISTED = 10


def _services() -> Any:
    from closedloop.feedback import services

    return services


def check_column_name(name: Any) -> str:
    """A valid column name (≤63 characters, no quotes, not starting with ``__``)."""
    clean = str(name if name is not None else "").strip()
    if not clean:
        raise FeedbackError(_("A column needs a name."), field="name")
    if len(clean) > COLUMN_NAME_MAX:
        raise FeedbackError(
            _("Column “%(name)s”: a name can have at most %(n)s characters.")
            % {"name": clean[:20] + "…", "n": COLUMN_NAME_MAX},
            column=clean,
            field="name",
        )
    if "'" in clean or '"' in clean:
        raise FeedbackError(
            _("Column “%(name)s”: a name cannot contain quotes (' or \").") % {"name": clean},
            column=clean,
            field="name",
        )
    if clean.startswith("__"):
        raise FeedbackError(
            _("Column “%(name)s”: a name cannot start with two underscores.") % {"name": clean},
            column=clean,
            field="name",
        )
    return clean


# --- typing frames -------------------------------------------------------------------------


def infer_type(dtype: pl.DataType) -> str:
    """The column type for a Polars dtype."""
    if dtype == pl.Boolean:
        return DataType.BOOLEAN
    if dtype.is_integer():
        return DataType.INTEGER
    if dtype.is_float() or dtype.is_decimal():
        return DataType.DOUBLE
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return DataType.DATETIME
    return DataType.STRING


def _local_zone() -> str:
    return str(timezone.get_current_timezone())


def _to_datetime(series: pl.Series) -> pl.Series:
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            series = series.dt.replace_time_zone(_local_zone())
        return series.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
    if dtype == pl.Date:
        return _to_datetime(series.cast(pl.Datetime("us")))
    values: list[dt.datetime | None] = []
    raws = series.to_list() if series.dtype == pl.Object else series.cast(pl.String).to_list()
    for raw in raws:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            values.append(None)
            continue
        try:
            values.append(parse_datetime(raw))
        except (ValueError, TypeError, OverflowError, zoneinfo.ZoneInfoNotFoundError):
            values.append(None)
    return pl.Series(series.name, values, dtype=pl.Datetime("us", "UTC"))


def _to_boolean(series: pl.Series) -> pl.Series:
    if series.dtype == pl.Boolean:
        return series
    if series.dtype.is_numeric():
        return (
            pl.select(pl.when(series == 1).then(True).when(series == 0).then(False).otherwise(None))
            .to_series()
            .alias(series.name)
        )
    text = series.cast(pl.String).str.strip_chars().str.to_lowercase()
    return (
        pl.select(
            pl.when(text.is_in(list(TRUE_WORDS)))
            .then(True)
            .when(text.is_in(list(FALSE_WORDS)))
            .then(False)
            .otherwise(None)
        )
        .to_series()
        .alias(series.name)
    )


def convert_series(series: pl.Series, data_type: str) -> pl.Series:
    """``series`` converted to ``data_type``'s dtype; values that do not convert are null."""
    if data_type == DataType.DATETIME:
        return _to_datetime(series)
    if data_type == DataType.BOOLEAN:
        return _to_boolean(series)
    if data_type == DataType.STRING:
        if isinstance(series.dtype, pl.Datetime):
            return series.dt.convert_time_zone("UTC").dt.strftime(table.SEARCH_DT_FORMAT)
        return series.cast(pl.String)
    source = series
    if series.dtype == pl.String:
        source = series.str.strip_chars()
    if data_type == DataType.INTEGER:
        as_int = source.cast(pl.Int64, strict=False)
        as_float = source.cast(pl.Float64, strict=False)
        whole = as_float.round(0) == as_float
        fallback = pl.select(pl.when(whole).then(as_float).otherwise(None)).to_series()
        return as_int.fill_null(fallback.cast(pl.Int64, strict=False)).alias(series.name)
    return source.cast(pl.Float64, strict=False).fill_nan(None).alias(series.name)


def failed_rows(before: pl.Series, after: pl.Series) -> list[int]:
    """Row numbers (from 1) where a non-empty value did not convert."""
    present = before.is_not_null()
    if before.dtype == pl.String:
        present = present & (before.str.strip_chars() != "")
    bad = present & after.is_null()
    return [i + 1 for i in bad.arg_true().to_list()]


def _describe_rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED])
    return shown + ("…" if len(rows) > MAX_LISTED else "")


def type_frame(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame:
    """Cast every column of ``frame`` to its type; FeedbackError listing the bad rows."""
    out: list[pl.Series] = []
    problems: list[dict[str, Any]] = []
    for name in frame.columns:
        data_type = types[name]
        if data_type not in DataType.values:
            raise FeedbackError(
                _("Column “%(column)s”: unknown type “%(type)s”.")
                % {"column": name, "type": data_type},
                column=name,
            )
        before = frame[name]
        after = convert_series(before, data_type)
        rows = failed_rows(before, after)
        if rows:
            message = _("Column “%(column)s”: rows %(rows)s are not %(type)s values.") % {
                "column": name,
                "rows": _describe_rows(rows),
                "type": DataType(data_type).label,
            }
            problems.extend(
                {"row": r, "column": name, "message": message} for r in rows[:MAX_LISTED]
            )
            if len(problems) == len(rows[:MAX_LISTED]):
                first_message = message
        out.append(after.alias(name))
    if problems:
        raise FeedbackError(first_message, problems)
    return pl.DataFrame(out) if out else pl.DataFrame()


def check_keys(frame: pl.DataFrame, keys: list[str]) -> None:
    """Each key column must be in the frame, without nulls and without duplicates."""
    if not keys:
        raise FeedbackError(
            _("Choose at least one key column (unique values, none empty)."), field="keys"
        )
    for key in keys:
        if key not in frame.columns:
            raise FeedbackError(
                _("The key column “%(column)s” is not in the data.") % {"column": key}, column=key
            )
        series = frame[key]
        nulls = [i + 1 for i in series.is_null().arg_true().to_list()]
        if nulls:
            message = _("Key column “%(column)s” has empty values in rows %(rows)s.") % {
                "column": key,
                "rows": _describe_rows(nulls),
            }
            raise FeedbackError(
                message, [{"row": r, "column": key, "message": message} for r in nulls[:MAX_LISTED]]
            )
        dups = [i + 1 for i in series.is_duplicated().arg_true().to_list()]
        if dups:
            message = _("Key column “%(column)s” has repeated values in rows %(rows)s.") % {
                "column": key,
                "rows": _describe_rows(dups),
            }
            raise FeedbackError(
                message, [{"row": r, "column": key, "message": message} for r in dups[:MAX_LISTED]]
            )


def table_load(
    *,
    workflow: Workflow,
    actor: Any,
    frame: pl.DataFrame,
    keys: list[str],
    types: dict[str, str] | None = None,
    label: str = "upload",
    expected_version: int | None = None,
) -> list[Column]:
    """Replace all data and columns by ``frame``. Columns with the same name keep their
    id (so views and actions that use them keep working); the others are created or
    removed. The previous table is kept for undo."""
    services = _services()
    names = [check_column_name(n) for n in frame.columns]
    if len(set(names)) != len(names):
        raise FeedbackError(_("Two columns have the same name."))
    frame = frame.rename(dict(zip(frame.columns, names, strict=True)))
    wanted = {n: infer_type(frame.schema[n]) for n in names}
    wanted.update(types or {})
    typed = type_frame(frame, wanted)
    keys = [str(k).strip() for k in keys]
    check_keys(typed, keys)
    with transaction.atomic():
        services.bump_version(workflow, expected_version)
        table.snapshot_version(workflow, label=label, actor=actor)
        columns = _load_columns(workflow, typed, wanted, set(keys))
        table.replace_table(workflow, columns, typed, label=label, actor=actor, snapshot=False)
        log_event(
            workflow,
            actor,
            "workflow_data_upload",
            {"label": label, "nrows": typed.height, "ncols": len(columns), "keys": keys},
        )
        services.refresh_after_data_change(workflow)
    return columns


def _load_columns(
    workflow: Workflow, frame: pl.DataFrame, types: dict[str, str], keys: set[str]
) -> list[Column]:
    existing = {c.name: c for c in Column.objects.filter(workflow=workflow)}
    slot = workflow.next_slot
    kept: list[Column] = []
    new: list[Column] = []
    for position, name in enumerate(frame.columns, 1):
        column = existing.pop(name, None)
        if column is None:
            column = Column(account_id=workflow.account_id, workflow=workflow, name=name, slot=slot)
            slot += 1
            new.append(column)
        else:
            kept.append(column)
            if column.data_type != types[name] or not _within_categories(frame[name], column):
                column.categories = []
        column.data_type = types[name]
        column.is_key = name in keys
        column.position = position
    if existing:
        Column.objects.filter(pk__in=[c.pk for c in existing.values()]).delete()
    if kept:
        Column.objects.bulk_update(kept, ["data_type", "is_key", "position", "categories"])
    Column.objects.bulk_create(new)
    workflow.next_slot = slot
    Workflow.objects.filter(pk=workflow.pk).update(next_slot=slot)
    return sorted(kept + new, key=lambda c: c.position)


def _within_categories(series: pl.Series, column: Column) -> bool:
    if not column.categories:
        return True
    values = {v for v in series.drop_nulls().unique().to_list()}
    allowed = {coerce_value(Column(data_type=column.data_type), c) for c in column.categories}
    return values <= allowed


# --- single rows ---------------------------------------------------------------------------


def _typed_values(columns: list[Column], values: dict[str, Any]) -> dict[str, Any]:
    by_name = {c.name: c for c in columns}
    unknown = [n for n in values if n not in by_name]
    if unknown:
        raise FeedbackError(
            _("There is no column named “%(column)s”.") % {"column": unknown[0]}, column=unknown[0]
        )
    return {name: coerce_value(by_name[name], raw) for name, raw in values.items()}


def _check_key_values(
    workflow: Workflow, columns: list[Column], typed: dict[str, Any], exclude_rid: int | None
) -> None:
    for column in columns:
        if not column.is_key or column.name not in typed:
            continue
        value = typed[column.name]
        if value is None:
            raise FeedbackError(
                _("Key column “%(column)s” needs a value.") % {"column": column.name},
                column=column.name,
            )
        sql = f"{qn(column.physical)} = %s"
        params: list[Any] = [table.to_db(column.data_type, value)]
        if exclude_rid is not None:
            sql += f" AND {qn(ROW_ID)} <> %s"
            params.append(exclude_rid)
        if table.count_rows(workflow, where=sql, params=params):
            raise FeedbackError(
                _("Key column “%(column)s”: another row already has the value %(value)s.")
                % {"column": column.name, "value": value},
                column=column.name,
            )


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def find_row(workflow: Workflow, columns: list[Column], key_column: str, key_value: Any) -> int:
    """The ``_rid`` of the row whose key column has ``key_value`` (RowNotFound if none)."""
    column = next((c for c in columns if c.name == key_column), None)
    if column is None or not column.is_key:
        raise FeedbackError(
            _("“%(column)s” is not a key column of this table.") % {"column": key_column},
            column=key_column,
        )
    value = coerce_value(Column(name=column.name, data_type=column.data_type), key_value)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn(ROW_ID)} FROM {qn(workflow.table_name)} WHERE {qn(column.physical)} = %s",
            [table.to_db(column.data_type, value)],
        )
        row = cursor.fetchone()
    if row is None:
        raise RowNotFound(
            _("There is no row where “%(column)s” is %(value)s.")
            % {"column": key_column, "value": key_value},
            column=key_column,
        )
    return int(row[0])


def row_insert(
    *, workflow: Workflow, actor: Any, values: dict[str, Any], expected_version: int | None = None
) -> int:
    """Add one row; every key column needs a new value. Returns its ``_rid``."""
    services = _services()
    columns = _columns(workflow)
    if not columns:
        raise FeedbackError(_("The table has no columns yet: upload data first."))
    typed = _typed_values(columns, values)
    for column in columns:
        if column.is_key and typed.get(column.name) is None:
            raise FeedbackError(
                _("Key column “%(column)s” needs a value.") % {"column": column.name},
                column=column.name,
            )
    with transaction.atomic():
        services.bump_version(workflow, expected_version)
        _check_key_values(workflow, columns, typed, None)
        used = [c for c in columns if c.name in typed]
        names = ", ".join(qn(c.physical) for c in used)
        marks = ", ".join(["%s"] * len(used))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {qn(workflow.table_name)} ({names}) VALUES ({marks}) RETURNING {qn(ROW_ID)}",
                [table.to_db(c.data_type, typed[c.name]) for c in used],
            )
            rid = int(cursor.fetchone()[0])
        Workflow.objects.filter(pk=workflow.pk).update(nrows=F("nrows") + 1)
        workflow.nrows += 1
        log_event(workflow, actor, "row_create", {"rid": rid, "values": _loggable(typed)})
        table.refresh_search(workflow, columns, rids=[rid])
        services.refresh_after_data_change(workflow, set(typed), search=False)
    return rid


def _loggable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in values.items()}


def row_update(
    *,
    workflow: Workflow,
    actor: Any,
    key_column: str,
    key_value: Any,
    values: dict[str, Any],
    expected_version: int | None = None,
) -> None:
    """Change values of the row whose key column has ``key_value``."""
    services = _services()
    columns = _columns(workflow)
    rid = find_row(workflow, columns, key_column, key_value)
    typed = _typed_values(columns, values)
    if not typed:
        return
    with transaction.atomic():
        services.bump_version(workflow, expected_version)
        _check_key_values(workflow, columns, typed, rid)
        used = [c for c in columns if c.name in typed]
        sets = ", ".join(f"{qn(c.physical)} = %s" for c in used)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(workflow.table_name)} SET {sets} WHERE {qn(ROW_ID)} = %s",
                [*(table.to_db(c.data_type, typed[c.name]) for c in used), rid],
            )
        log_event(
            workflow,
            actor,
            "row_update",
            {"key": {key_column: str(key_value)}, "values": _loggable(typed)},
        )
        table.refresh_search(workflow, columns, rids=[rid])
        services.refresh_after_data_change(workflow, set(typed), search=False)


def row_delete(
    *,
    workflow: Workflow,
    actor: Any,
    key_column: str,
    key_value: Any,
    expected_version: int | None = None,
) -> None:
    services = _services()
    columns = _columns(workflow)
    rid = find_row(workflow, columns, key_column, key_value)
    with transaction.atomic():
        services.bump_version(workflow, expected_version)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {qn(workflow.table_name)} WHERE {qn(ROW_ID)} = %s", [rid])
        Workflow.objects.filter(pk=workflow.pk).update(nrows=F("nrows") - 1)
        workflow.nrows -= 1
        log_event(workflow, actor, "row_delete", {"key": {key_column: str(key_value)}})
        services.refresh_after_data_change(workflow, search=False)


# --- cloning -------------------------------------------------------------------------------


def _copy(obj: Any, **changes: Any) -> Any:
    obj.pk = None
    obj.id = None
    obj._state.adding = True
    for key, value in changes.items():
        setattr(obj, key, value)
    obj.save()
    return obj


def workflow_clone(*, workflow: Workflow, actor: Any, name: str) -> Workflow:
    """A new workflow owned by ``actor`` with a copy of the data, columns, attributes,
    filters, views and actions (with conditions, action columns and rubric cells).
    Shares, schedules, runs and logs are not copied."""
    services = _services()
    clean = services._clean_workflow_name(workflow.account_id, name)
    with transaction.atomic():
        clone = Workflow.objects.create(
            account_id=workflow.account_id,
            owner=actor,
            name=clean,
            description=workflow.description,
            attributes=dict(workflow.attributes),
            nrows=workflow.nrows,
            ncols=workflow.ncols,
            next_slot=workflow.next_slot,
        )
        columns = _columns(workflow)
        col_map: dict[int, Column] = {}
        for column in columns:
            old = column.pk
            col_map[old] = _copy(column, workflow=clone)
        new_columns = list(col_map.values())
        table.create_table(clone, new_columns)
        names = [qn(ROW_ID)] + [qn(c.physical) for c in new_columns] + [qn(table.SEARCH)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {qn(clone.table_name)} ({', '.join(names)}) "
                f"SELECT {', '.join(names)} FROM {qn(workflow.table_name)}"
            )
            if table.is_postgres():
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                    f"COALESCE((SELECT MAX({qn(ROW_ID)}) FROM {qn(clone.table_name)}), 0) + 1, false)",
                    [clone.table_name, ROW_ID],
                )
        filter_map: dict[int, Filter] = {}
        for item in Filter.objects.filter(workflow=workflow):
            old = item.pk
            filter_map[old] = _copy(item, workflow=clone)
        for view in View.objects.filter(workflow=workflow):
            _copy(
                view,
                workflow=clone,
                column_ids=[col_map[i].pk for i in view.column_ids if i in col_map],
                filter=filter_map.get(view.filter_id) if view.filter_id else None,
            )
        for action in Action.objects.filter(workflow=workflow):
            _clone_action(action, clone, col_map, filter_map)
        log_event(clone, actor, "workflow_clone", {"from": workflow.name, "from_id": workflow.pk})
    return clone


def _clone_action(
    action: Action, clone: Workflow, col_map: dict[int, Column], filter_map: dict[int, Filter]
) -> Action:
    old_pk = action.pk
    conditions = list(Condition.objects.filter(action_id=old_pk))
    action_columns = list(ActionColumn.objects.filter(action_id=old_pk))
    cells = list(RubricCell.objects.filter(action_id=old_pk))
    new = _copy(
        action,
        workflow=clone,
        public_id=uuid.uuid4(),
        filter=filter_map.get(action.filter_id) if action.filter_id else None,
    )
    cond_map: dict[int, Condition] = {}
    for condition in conditions:
        old = condition.pk
        cond_map[old] = _copy(condition, action=new)
    for item in action_columns:
        if item.column_id in col_map:
            _copy(
                item,
                action=new,
                column=col_map[item.column_id],
                condition=cond_map.get(item.condition_id) if item.condition_id else None,
            )
    for cell in cells:
        if cell.column_id in col_map:
            _copy(cell, action=new, column=col_map[cell.column_id])
    return new
