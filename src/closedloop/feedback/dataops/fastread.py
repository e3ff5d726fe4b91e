"""Reading a whole workflow table into a typed frame fast, for merges.

On PostgreSQL, fetching 100k × 20 rows through the driver costs ~2 s (Python objects per
value, timestamptz parsed one by one); ``COPY (SELECT …) TO STDOUT`` as CSV parsed by
Polars costs ~0.3 s. In PostgreSQL's CSV a NULL is an unquoted empty field and an empty
string is ``""``, which Polars reads back as null and "" respectively. SQLite has no such
gap: its reader is used as is.
"""

from __future__ import annotations

import io

import polars as pl
from django.db import connection

from closedloop.feedback import table as storage
from closedloop.feedback.models import Column, Workflow

_CSV_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "double": pl.Float64(),
    "boolean": pl.Int8(),
    "datetime": pl.String(),
}


def _select_expr(column: Column) -> str:
    name = storage.qn(column.physical)
    if column.data_type == "boolean":
        return f"{name}::int"
    if column.data_type == "datetime":
        return f"to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    return name


def read_table_frame(workflow: Workflow, columns: list[Column]) -> pl.DataFrame:
    """The table (in row id order) as a frame named by Column.name, typed as ``read_frame``."""
    if not columns or connection.vendor != "postgresql":
        return storage.read_frame(workflow, columns)
    select = ", ".join(_select_expr(c) for c in columns)
    sql = (
        f"COPY (SELECT {select} FROM {storage.qn(workflow.table_name)} "
        f"ORDER BY {storage.qn(storage.ROW_ID)}) TO STDOUT WITH (FORMAT CSV)"
    )
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for block in copy:
            buffer.write(block)
    names = [c.name for c in columns]
    if buffer.tell() == 0:
        return pl.DataFrame(schema={c.name: storage.polars_dtype(c.data_type) for c in columns})
    raw = pl.read_csv(
        buffer.getvalue(),
        has_header=False,
        new_columns=names,
        schema={c.name: _CSV_TYPES[c.data_type] for c in columns},
        quote_char='"',
    )
    fixes = []
    for column in columns:
        if column.data_type == "boolean":
            fixes.append(pl.col(column.name).cast(pl.Boolean))
        elif column.data_type == "datetime":
            fixes.append(
                pl.col(column.name)
                .str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
                .dt.replace_time_zone("UTC")
            )
    return raw.with_columns(fixes) if fixes else raw
