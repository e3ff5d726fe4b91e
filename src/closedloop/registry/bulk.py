"""Fast bulk writes of org units, bypassing the ORM's per-object machinery.

Used by the importer, the demo data and the benchmarks. The caller computes ids, paths
and depths (see :func:`allocate_unit_ids` and :func:`closedloop.registry.paths.child_path`)
and must call these functions inside ``transaction.atomic()``: nothing here commits.
PostgreSQL gets ``COPY``; SQLite gets one ``executemany`` per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.db import connection
from django.utils import timezone

from closedloop.registry.models import OrgUnit

CHUNK_SIZE = 10_000


@dataclass(slots=True)
class UnitRow:
    """One org unit to insert. ``path`` and ``depth`` must already be right."""

    id: int
    version_id: int
    name: str
    path: str
    depth: int
    parent_id: int | None = None
    type_id: int | None = None
    code: str = ""
    ref: str = ""
    validation_status: str = "new"
    latitude: float | None = None
    longitude: float | None = None


COLUMNS = (
    "id",
    "account_id",
    "version_id",
    "name",
    "path",
    "depth",
    "parent_id",
    "type_id",
    "code",
    "ref",
    "validation_status",
    "latitude",
    "longitude",
    "aliases",
    "extra",
    "created_at",
    "updated_at",
)


PG_TYPES = (
    "int8",
    "int8",
    "int8",
    "varchar",
    "varchar",
    "int2",
    "int8",
    "int8",
    "varchar",
    "varchar",
    "varchar",
    "float8",
    "float8",
    "jsonb",
    "jsonb",
    "timestamptz",
    "timestamptz",
)


def allocate_unit_ids(count: int) -> list[int]:
    """Reserve ``count`` new org-unit ids. Call it inside the transaction that inserts them.

    PostgreSQL draws them from the id sequence (safe with concurrent writers). SQLite has
    one writer at a time (our transactions begin IMMEDIATE), so the next free ids after
    both the largest id and the AUTOINCREMENT counter are ours until the commit.
    """
    if count <= 0:
        return []
    table = OrgUnit._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')  # noqa: S608
        highest = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        seq = cursor.fetchone()
        start = max(highest, seq[0] if seq else 0) + 1
    return list(range(start, start + count))


def _chunks(rows: Iterable[UnitRow], size: int) -> Iterator[list[UnitRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _as_tuple(
    account_id: int, row: UnitRow, now: Any, aliases: Any = "[]", extra: Any = "{}"
) -> tuple[Any, ...]:
    """One unit's column values; JSON columns as text for SQLite, as objects for COPY."""
    return (
        row.id,
        account_id,
        row.version_id,
        row.name,
        row.path,
        row.depth,
        row.parent_id,
        row.type_id,
        row.code,
        row.ref,
        row.validation_status,
        row.latitude,
        row.longitude,
        aliases,
        extra,
        now,
        now,
    )


def bulk_insert_units(
    account_id: int,
    rows: Iterable[UnitRow],
    *,
    chunk_size: int = CHUNK_SIZE,
    after_chunk: Callable[[int], None] | None = None,
) -> int:
    """Insert ``rows`` (ids included) and return how many were written.

    ``after_chunk(written_so_far)`` runs after each chunk: report progress there, or raise
    to stop (the surrounding transaction then rolls everything back).
    """
    table = OrgUnit._meta.db_table
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    now = timezone.now()
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            copy_sql = f'COPY "{table}" ({columns}) FROM STDIN (FORMAT BINARY)'
            for chunk in _chunks(rows, chunk_size):
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(PG_TYPES)
                    for row in chunk:
                        copy.write_row(_as_tuple(account_id, row, now, [], {}))
                written += len(chunk)
                if after_chunk:
                    after_chunk(written)
            return written
        stamp = connection.ops.adapt_datetimefield_value(now)
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        sql = f'INSERT INTO "{table}" ({columns}) VALUES ({placeholders})'  # noqa: S608
        for chunk in _chunks(rows, chunk_size):
            cursor.executemany(sql, [_as_tuple(account_id, row, stamp) for row in chunk])
            written += len(chunk)
            if after_chunk:
                after_chunk(written)
    return written


def analyze_units() -> None:
    """Refresh the planner's statistics after a large load."""
    table = OrgUnit._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{table}"')
