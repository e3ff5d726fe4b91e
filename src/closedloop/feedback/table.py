"""Physical storage of a workflow's data table (SQLite and PostgreSQL).

Each workflow's data is the table ``fbw_<pk>``: a row id ``_rid`` (integer primary key),
one physical column ``c<slot>`` per :class:`Column` and a maintained search text
``_search``. Key columns carry a UNIQUE index ``fbw_<pk>_k<slot>``.

Types: string TEXT; integer BIGINT (SQLite INTEGER); double DOUBLE PRECISION (SQLite
REAL); boolean BOOLEAN (SQLite INTEGER 0/1); datetime TIMESTAMPTZ on PostgreSQL and, on
SQLite, UTC TEXT ``YYYY-MM-DD HH:MM:SS.ffffff`` (always 26 characters, so text order is
time order). :func:`to_db` / :func:`from_db` convert single values; frames use the Polars
dtypes of :func:`polars_dtype`.

Bulk writes never go through the ORM: COPY (binary) on PostgreSQL, ``executemany`` on
SQLite, in the caller's transaction.

Search
------
Searching 20 columns with ``CAST(c AS TEXT) LIKE`` costs ~130 ms per 100k rows; one
LIKE over a precomputed text costs ~25 ms. So every row keeps ``_search``: the lower-cased
display text of all its values joined by newlines (datetimes as ``YYYY-MM-DD HH:MM:SS``
UTC, booleans ``true``/``false``). :func:`write_frame` computes it in Polars; in-place
writers (row edits, column operations, merges that UPDATE) call :func:`refresh_search`
— ``services.refresh_after_data_change`` does it for them. The search therefore covers
every column of a row, also ones a view hides.

Paging uses a deferred join (sort and page the row ids, then fetch the wide rows), so a
sorted page deep in a 100k-row table stays under ~60 ms on SQLite. NULLs sort last in
ascending order and first in descending order (the same on both databases); ties are
broken by ``_rid``.

Undo keeps previous tables as ``fbw_<pk>_v<n>`` (``CREATE TABLE ... AS SELECT``) with a
:class:`TableVersion` holding the column metadata; ``settings.FEEDBACK_TABLE_VERSIONS``
newest ones are kept.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
from django.db import connection, transaction

from closedloop.feedback.models import Column, TableVersion, Workflow

ROW_ID = "_rid"
SEARCH = "_search"
SEARCH_SEP = "\n"
SQLITE_DT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
POLARS_DT_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"
SEARCH_DT_FORMAT = "%Y-%m-%d %H:%M:%S"
UTC = dt.UTC

_PG_TYPES = {
    "string": "TEXT",
    "integer": "BIGINT",
    "double": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "datetime": "TIMESTAMPTZ",
}
_SQLITE_TYPES = {
    "string": "TEXT",
    "integer": "INTEGER",
    "double": "REAL",
    "boolean": "INTEGER",
    "datetime": "TEXT",
}
_COPY_TYPES = {
    "string": "text",
    "integer": "int8",
    "double": "float8",
    "boolean": "bool",
    "datetime": "timestamptz",
}


# --- types and values ---------------------------------------------------------------


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def qn(name: str) -> str:
    return str(connection.ops.quote_name(name))


def sql_type(data_type: str) -> str:
    return (_PG_TYPES if is_postgres() else _SQLITE_TYPES)[data_type]


def polars_dtype(data_type: str) -> pl.DataType:
    mapping: dict[str, pl.DataType] = {
        "string": pl.String(),
        "integer": pl.Int64(),
        "double": pl.Float64(),
        "boolean": pl.Boolean(),
        "datetime": pl.Datetime("us", "UTC"),
    }
    return mapping[data_type]


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; a naive one is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_db(data_type: str, value: Any) -> Any:
    """A typed Python value as a parameter for the physical column."""
    if value is None:
        return None
    if data_type == "datetime":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        aware = as_utc(value)
        return aware if is_postgres() else aware.strftime(SQLITE_DT_FORMAT)
    if data_type == "boolean":
        return bool(value) if is_postgres() else int(bool(value))
    if data_type == "double":
        number = float(value)
        return None if math.isnan(number) else number
    if data_type == "integer":
        return int(value)
    return str(value)


def from_db(data_type: str, value: Any) -> Any:
    """A value read from the physical column as Python (aware UTC datetime, bool)."""
    if value is None:
        return None
    if data_type == "datetime":
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)  # fixed format, 10x faster
        return as_utc(value)
    if data_type == "boolean":
        return bool(value)
    if data_type == "double":
        return float(value)
    if data_type == "integer":
        return int(value)
    return value


# --- tables -----------------------------------------------------------------------


def _name(workflow: Workflow, table_name: str | None) -> str:
    return table_name or workflow.table_name


def index_name(table: str, column: Column) -> str:
    return f"{table}_k{column.slot}"


def table_exists(table: str) -> bool:
    if is_postgres():
        sql = "SELECT to_regclass(%s) IS NOT NULL"
        params = [connection.ops.quote_name(table)]
    else:
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = %s"
        params = [table]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchone()[0])


def physical_columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, table)]


def create_table(
    workflow: Workflow, columns: list[Column], *, table_name: str | None = None
) -> None:
    table = _name(workflow, table_name)
    rid = (
        f"{qn(ROW_ID)} BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        if is_postgres()
        else f"{qn(ROW_ID)} INTEGER PRIMARY KEY AUTOINCREMENT"
    )
    parts = [rid] + [f"{qn(c.physical)} {sql_type(c.data_type)}" for c in columns]
    parts.append(f"{qn(SEARCH)} TEXT")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {qn(table)} ({', '.join(parts)})")
        for column in columns:
            if column.is_key:
                cursor.execute(_key_index_sql(table, column))


def _key_index_sql(table: str, column: Column) -> str:
    return f"CREATE UNIQUE INDEX {qn(index_name(table, column))} ON {qn(table)} ({qn(column.physical)})"


def drop_table(workflow: Workflow, *, table_name: str | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {qn(_name(workflow, table_name))}")


def drop_all_tables(workflow: Workflow) -> None:
    """The table and every kept version (workflow deletion)."""
    for name in TableVersion.objects.filter(workflow=workflow).values_list("table_name", flat=True):
        drop_table(workflow, table_name=name)
    drop_table(workflow)


# --- physical column changes (ALTER TABLE on both databases) ------------------------------


def add_column(workflow: Workflow, column: Column, *, table_name: str | None = None) -> None:
    table = _name(workflow, table_name)
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {qn(table)} ADD COLUMN {qn(column.physical)} {sql_type(column.data_type)}"
        )
        if column.is_key:
            cursor.execute(_key_index_sql(table, column))


def drop_column(workflow: Workflow, column: Column, *, table_name: str | None = None) -> None:
    table = _name(workflow, table_name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {qn(index_name(table, column))}")
        cursor.execute(f"ALTER TABLE {qn(table)} DROP COLUMN {qn(column.physical)}")


def set_key_index(workflow: Workflow, column: Column, unique: bool) -> None:
    """Create (``unique``) or drop the key column's UNIQUE index."""
    table = workflow.table_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {qn(index_name(table, column))}")
        if unique:
            cursor.execute(_key_index_sql(table, column))


def set_column_value(workflow: Workflow, column: Column, value: Any) -> None:
    """One value (or NULL) in every row of ``column``."""
    mark_stale(workflow)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(workflow.table_name)} SET {qn(column.physical)} = %s",
            [to_db(column.data_type, value)],
        )


def set_column_values(
    workflow: Workflow, column: Column, rids: Sequence[int], values: Sequence[Any]
) -> None:
    """Per-row values of ``column`` (``values[i]`` for row ``rids[i]``), in bulk:
    a temporary table loaded with COPY / executemany, then one UPDATE ... FROM."""
    table, phys = qn(workflow.table_name), qn(column.physical)
    tmp = qn(f"fbw_tmp_{workflow.pk}")
    typ = sql_type(column.data_type)
    mark_stale(workflow)
    rows = [(int(r), to_db(column.data_type, v)) for r, v in zip(rids, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {tmp}")
        cursor.execute(f"CREATE TEMPORARY TABLE {tmp} (rid BIGINT PRIMARY KEY, val {typ})")
        if is_postgres():
            with cursor.cursor.copy(f"COPY {tmp} (rid, val) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", _COPY_TYPES[column.data_type]])
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.cursor.executemany(f"INSERT INTO {tmp} (rid, val) VALUES (?, ?)", rows)
        cursor.execute(
            f"UPDATE {table} SET {phys} = {tmp}.val FROM {tmp} WHERE {tmp}.rid = {table}.{qn(ROW_ID)}"
        )
        cursor.execute(f"DROP TABLE {tmp}")


# --- search text ------------------------------------------------------------------------
#
# Tables just rebuilt by write_frame have a correct ``_search``: the next
# refresh_after_data_change may skip the full recomputation. In-place writers in this
# module clear the mark; writers outside it call refresh_after_data_change anyway.
_fresh = threading.local()


def _fresh_set() -> set[str]:
    if not hasattr(_fresh, "tables"):
        _fresh.tables = set()
    return _fresh.tables  # type: ignore[no-any-return]


def mark_fresh(workflow: Workflow) -> None:
    _fresh_set().add(workflow.table_name)


def mark_stale(workflow: Workflow) -> None:
    _fresh_set().discard(workflow.table_name)


def consume_fresh(workflow: Workflow) -> bool:
    """True (once) if the table was rebuilt with its search text since the last check."""
    tables = _fresh_set()
    if workflow.table_name in tables:
        tables.discard(workflow.table_name)
        return True
    return False


def _search_expr_polars(column: Column) -> pl.Expr:
    col = pl.col(column.name)
    if column.data_type == "string":
        return col
    if column.data_type == "boolean":
        return pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false"))
    if column.data_type == "datetime":
        return col.dt.convert_time_zone("UTC").dt.strftime(SEARCH_DT_FORMAT)
    return col.cast(pl.String)


def search_text(frame: pl.DataFrame, columns: list[Column]) -> pl.Series:
    """The ``_search`` values of the rows of a frame named by Column.name."""
    if not columns:
        return pl.Series(SEARCH, [None] * frame.height, dtype=pl.String)
    exprs = [_search_expr_polars(c) for c in columns]
    return frame.select(
        pl.concat_str(exprs, separator=SEARCH_SEP, ignore_nulls=True)
        .str.to_lowercase()
        .alias(SEARCH)
    ).to_series()


def _search_expr_sql(column: Column) -> str:
    phys = qn(column.physical)
    if is_postgres():
        if column.data_type == "boolean":
            return f"CASE WHEN {phys} THEN 'true' WHEN NOT {phys} THEN 'false' END"
        if column.data_type == "datetime":
            return f"to_char({phys} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        return f"{phys}::text"
    if column.data_type == "boolean":
        return f"CASE {phys} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"
    if column.data_type == "datetime":
        return f"substr({phys}, 1, 19)"
    return f"CAST({phys} AS TEXT)"


def _sqlite_lower_function() -> str:
    """SQLite's lower() folds only ASCII; use Python's, like the Polars path does."""
    connection.ensure_connection()
    # cheap; registering on every use survives reconnections
    connection.connection.create_function("fb_lower", 1, _py_lower, deterministic=True)
    return "fb_lower"


def _py_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def search_source_sql(columns: list[Column]) -> str:
    """SQL computing ``_search`` from the physical columns."""
    if not columns:
        return "NULL"
    parts = [_search_expr_sql(c) for c in columns]
    if is_postgres():
        return f"lower(concat_ws(E'\\n', {', '.join(parts)}))"
    joined = " || char(10) || ".join(f"COALESCE({p}, '')" for p in parts)
    return f"{_sqlite_lower_function()}({joined})"


def refresh_search(
    workflow: Workflow, columns: list[Column] | None = None, *, rids: Sequence[int] | None = None
) -> None:
    """Recompute ``_search`` for the rows ``rids`` (all rows when None)."""
    if rids is None:
        mark_stale(workflow)
    if columns is None:
        columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    sql = f"UPDATE {qn(workflow.table_name)} SET {qn(SEARCH)} = {search_source_sql(columns)}"
    params: list[Any] = []
    if rids is not None:
        if not rids:
            return
        sql += f" WHERE {qn(ROW_ID)} IN ({', '.join(['%s'] * len(rids))})"
        params = [int(r) for r in rids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def search_sql(columns: Iterable[Column], search: str) -> tuple[str, list[Any]]:
    """The WHERE piece of the table search (over every column of the row, see above)."""
    term = (search or "").strip().lower()
    if not term:
        return "", []
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{qn(SEARCH)} LIKE %s ESCAPE '\\'", [f"%{escaped}%"]


# --- writing and reading -------------------------------------------------------------------


def _prepare_frame(frame: pl.DataFrame, columns: list[Column]) -> pl.DataFrame:
    """Typed frame (Column.name -> dtype) plus ``_search``; NaN -> NULL, naive times -> UTC."""
    exprs: list[pl.Expr] = []
    for column in columns:
        col = pl.col(column.name)
        if column.data_type == "datetime":
            dtype = frame.schema[column.name]
            if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            elif isinstance(dtype, pl.Datetime):
                col = col.dt.convert_time_zone("UTC")
            col = col.cast(pl.Datetime("us", "UTC"))
        elif column.data_type == "double":
            col = col.cast(pl.Float64).fill_nan(None)
        else:
            col = col.cast(polars_dtype(column.data_type))
        exprs.append(col.alias(column.name))
    typed = frame.select(exprs) if exprs else pl.DataFrame({"__n": range(frame.height)})
    return typed.with_columns(search_text(typed, columns)).select(
        [c.name for c in columns] + [SEARCH]
    )


def write_frame(
    workflow: Workflow,
    columns: list[Column],
    frame: pl.DataFrame,
    *,
    table_name: str | None = None,
) -> int:
    """Append the rows of ``frame`` (columns named by Column.name) to the table."""
    if frame.height == 0:
        return 0
    table = _name(workflow, table_name)
    typed = _prepare_frame(frame, columns)
    names = [qn(c.physical) for c in columns] + [qn(SEARCH)]
    with transaction.atomic(), connection.cursor() as cursor:
        if is_postgres():
            types = [_COPY_TYPES[c.data_type] for c in columns] + ["text"]
            sql = f"COPY {qn(table)} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types(types)
                for row in typed.iter_rows():
                    copy.write_row(row)
        else:
            conv: list[pl.Expr] = []
            for column in columns:
                col = pl.col(column.name)
                if column.data_type == "datetime":
                    col = col.dt.strftime(POLARS_DT_FORMAT)
                elif column.data_type == "boolean":
                    col = col.cast(pl.Int8)
                conv.append(col)
            conv.append(pl.col(SEARCH))
            marks = ", ".join(["?"] * len(names))
            sql = f"INSERT INTO {qn(table)} ({', '.join(names)}) VALUES ({marks})"
            cursor.cursor.executemany(sql, typed.select(conv).iter_rows())
    return typed.height


def _columns_of(workflow: Workflow, columns: list[Column] | None) -> list[Column]:
    if columns is not None:
        return columns
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def _frame_from_rows(
    rows: list[tuple[Any, ...]], columns: list[Column], with_rid: bool
) -> pl.DataFrame:
    pg = is_postgres()
    raw_schema: list[tuple[str, pl.DataType]] = []
    if with_rid:
        raw_schema.append((ROW_ID, pl.Int64()))
    for column in columns:
        dtype = polars_dtype(column.data_type)
        if not pg and column.data_type == "datetime":
            dtype = pl.String()
        elif not pg and column.data_type == "boolean":
            dtype = pl.Int64()
        raw_schema.append((column.name, dtype))
    frame = pl.DataFrame(rows, schema=raw_schema, orient="row")
    if pg:
        return frame
    fixes = []
    for column in columns:
        if column.data_type == "datetime":
            fixes.append(
                pl.col(column.name)
                .str.to_datetime(POLARS_DT_FORMAT, time_unit="us", time_zone="UTC")
                .alias(column.name)
            )
        elif column.data_type == "boolean":
            fixes.append(pl.col(column.name).cast(pl.Boolean))
    return frame.with_columns(fixes) if fixes else frame


def read_frame(
    workflow: Workflow,
    columns: list[Column] | None = None,
    *,
    where: str = "",
    params: Sequence[Any] = (),
    table_name: str | None = None,
    with_rid: bool = False,
) -> pl.DataFrame:
    """The table (or the rows matching ``where``) as a typed frame named by Column.name."""
    columns = _columns_of(workflow, columns)
    names = ([qn(ROW_ID)] if with_rid else []) + [qn(c.physical) for c in columns]
    if not names:
        return pl.DataFrame()
    sql = f"SELECT {', '.join(names)} FROM {qn(_name(workflow, table_name))}"
    if where:
        sql += f" WHERE {where}"
    sql += f" ORDER BY {qn(ROW_ID)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        rows = cursor.fetchall()
    return _frame_from_rows(rows, columns, with_rid)


def count_rows(workflow: Workflow, *, where: str = "", params: Sequence[Any] = ()) -> int:
    sql = f"SELECT COUNT(*) FROM {qn(workflow.table_name)}"
    if where:
        sql += f" WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return int(cursor.fetchone()[0])


def _order_sql(order_by: Column | None, descending: bool) -> str:
    rid = qn(ROW_ID)
    if order_by is None:
        return f"{rid} DESC" if descending else rid
    direction = "DESC NULLS FIRST" if descending else "ASC NULLS LAST"
    return f"{qn(order_by.physical)} {direction}, {rid} {'DESC' if descending else 'ASC'}"


def fetch_rows(
    workflow: Workflow,
    columns: list[Column],
    *,
    where: str = "",
    params: Sequence[Any] = (),
    order_by: Column | None = None,
    descending: bool = False,
    search: str = "",
    offset: int = 0,
    limit: int | None = None,
    extra_select: Sequence[tuple[str, str, Sequence[Any]]] = (),
) -> list[dict[str, Any]]:
    """One page of rows as dicts keyed by Column.name, ``_rid`` and each extra alias.

    The page's row ids are chosen by a narrow sorted query first, then the wide rows
    are read for those ids only (a deferred join)."""
    table = qn(workflow.table_name)
    conditions: list[str] = []
    all_params: list[Any] = []
    if where:
        conditions.append(f"({where})")
        all_params.extend(params)
    search_where, search_params = search_sql(columns, search)
    if search_where:
        conditions.append(search_where)
        all_params.extend(search_params)
    order = _order_sql(order_by, descending)
    inner = f"SELECT {qn(ROW_ID)} FROM {table}"
    if conditions:
        inner += " WHERE " + " AND ".join(conditions)
    inner += f" ORDER BY {order}"
    if limit is not None:
        inner += " LIMIT %s OFFSET %s"
        all_params.extend([int(limit), int(offset)])
    elif offset:
        inner += " LIMIT -1 OFFSET %s" if not is_postgres() else " OFFSET %s"
        all_params.append(int(offset))
    select = [qn(ROW_ID)] + [qn(c.physical) for c in columns]
    extra_params: list[Any] = []
    for alias, expression, expr_params in extra_select:
        select.append(f"({expression}) AS {qn(alias)}")
        extra_params.extend(expr_params)
    sql = (
        f"SELECT {', '.join(select)} FROM {table} WHERE {qn(ROW_ID)} IN ({inner}) ORDER BY {order}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, extra_params + all_params)
        rows = cursor.fetchall()
    out: list[dict[str, Any]] = []
    types = [c.data_type for c in columns]
    names = [c.name for c in columns]
    aliases = [alias for alias, _e, _p in extra_select]
    ncols = len(columns)
    for row in rows:
        item: dict[str, Any] = {ROW_ID: row[0]}
        for i in range(ncols):
            item[names[i]] = from_db(types[i], row[i + 1])
        for j, alias in enumerate(aliases):
            item[alias] = row[ncols + 1 + j]
        out.append(item)
    return out


from closedloop.feedback.table_versions import (  # noqa: E402
    prune_versions,
    replace_table,
    restore_columns,
    snapshot_version,
    undo_last,
)

__all__ = [
    "ROW_ID",
    "SEARCH",
    "add_column",
    "count_rows",
    "create_table",
    "drop_all_tables",
    "drop_column",
    "drop_table",
    "fetch_rows",
    "from_db",
    "polars_dtype",
    "prune_versions",
    "read_frame",
    "refresh_search",
    "replace_table",
    "restore_columns",
    "search_sql",
    "set_column_value",
    "set_column_values",
    "set_key_index",
    "snapshot_version",
    "table_exists",
    "to_db",
    "undo_last",
    "write_frame",
]
