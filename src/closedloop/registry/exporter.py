"""Exporting org units to CSV or XLSX, in a shape :mod:`closedloop.registry.importer` reads.

Columns: one per level of the parent path (named after the level's type: ``Country,
Region, District``), then ``name, type, code, ref, latitude, longitude, status, id``.
Rows stream from SQL in chunks (keyset on the path), so a million units never sit in
memory. The caller passes a queryset already limited to what the user may see
(``selectors.visible_units(membership)``); ancestors' names above that are written too,
so the file can be re-imported elsewhere.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from django.db.models import Max, Q, QuerySet

from closedloop.registry.importer import ImportOptions
from closedloop.registry.models import OrgUnit, OrgUnitType
from closedloop.registry.paths import ids_in_path, upper_bound

FORMATS = ("csv", "xlsx")
FIXED_COLUMNS = ["name", "type", "code", "ref", "latitude", "longitude", "status", "id"]
CHUNK_SIZE = 5000
NAME_CACHE_LIMIT = 200_000

_FIELDS = (
    "id",
    "path",
    "depth",
    "name",
    "type__name",
    "code",
    "ref",
    "latitude",
    "longitude",
    "validation_status",
)


def filter_units(
    units: QuerySet[OrgUnit],
    *,
    root: OrgUnit | None = None,
    type_id: Any = None,
    status: str | None = None,
    search: str | None = None,
) -> QuerySet[OrgUnit]:
    """Narrow a (visible) queryset to a subtree, a type, a status and a name search."""
    if root is not None:
        units = units.filter(path__gte=root.path, path__lt=upper_bound(root.path))
    if type_id:
        try:
            units = units.filter(type_id=int(type_id))
        except (TypeError, ValueError):
            return units.none()  # not a type id: no unit has it
    if status:
        units = units.filter(validation_status=status)
    if search and search.strip():
        term = search.strip()
        units = units.filter(Q(name__icontains=term) | Q(code__iexact=term) | Q(ref__iexact=term))
    return units


def level_columns(max_depth: int) -> list[str]:
    """Header names for parent levels 1 … max_depth-1, after the types at that depth."""
    by_depth: dict[int, str] = {}
    for depth, name in (
        OrgUnitType.objects.filter(depth__isnull=False)
        .order_by("depth", "name")
        .values_list("depth", "name")
    ):
        if depth is not None:
            by_depth.setdefault(depth, name)
    taken = {c.casefold() for c in FIXED_COLUMNS}
    columns = []
    for depth in range(1, max_depth):
        name = by_depth.get(depth) or f"Level {depth}"
        if name.casefold() in taken:
            name = f"Level {depth}"
        taken.add(name.casefold())
        columns.append(name)
    return columns


def reimport_options(columns: list[str]) -> ImportOptions:
    """The import options that read back a file written by :func:`write_export`."""
    return ImportOptions(
        parents=columns[: len(columns) - len(FIXED_COLUMNS)],
        name="name",
        ref="ref",
        code="code",
        lat="latitude",
        lon="longitude",
        type_column="type",
    )


def _chunks(units: QuerySet[OrgUnit]) -> Iterator[list[tuple[Any, ...]]]:
    ordered = units.order_by("path").values_list(*_FIELDS)
    last = ""
    while True:
        chunk = list(ordered.filter(path__gt=last)[:CHUNK_SIZE])
        if not chunk:
            return
        yield chunk
        last = chunk[-1][1]


class _AncestorNames:
    """Names of ancestors, fetched once per chunk for the ids not seen yet."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def remember(self, chunk: list[tuple[Any, ...]]) -> None:
        if len(self.names) > NAME_CACHE_LIMIT:
            self.names.clear()
        for row in chunk:
            self.names[row[0]] = row[3]
        wanted = {pk for row in chunk for pk in ids_in_path(row[1])[:-1]}
        missing = wanted - self.names.keys()
        if missing:
            self.names.update(OrgUnit.objects.filter(pk__in=missing).values_list("id", "name"))

    def of(self, path: str) -> list[str]:
        return [self.names.get(pk, "") for pk in ids_in_path(path)[:-1]]


def export_rows(units: QuerySet[OrgUnit]) -> tuple[list[str], Iterator[list[Any]]]:
    """The header and a lazy iterator over the rows."""
    max_depth = units.aggregate(deepest=Max("depth"))["deepest"] or 1
    levels = level_columns(max_depth)
    header = [*levels, *FIXED_COLUMNS]

    def rows() -> Iterator[list[Any]]:
        names = _AncestorNames()
        for chunk in _chunks(units):
            names.remember(chunk)
            for pk, path, _depth, name, type_name, code, ref, lat, lon, status in chunk:
                parents = names.of(path)
                parents += [""] * (len(levels) - len(parents))
                yield [
                    *parents,
                    name,
                    type_name or "",
                    code,
                    ref,
                    "" if lat is None else lat,
                    "" if lon is None else lon,
                    status,
                    pk,
                ]

    return header, rows()


def write_export(
    units: QuerySet[OrgUnit],
    fmt: str,
    destination: str | Path | IO[bytes],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the units to ``destination`` as CSV (UTF-8 with BOM) or XLSX; returns the count."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    header, rows = export_rows(units)
    if fmt == "csv":
        return _write_csv(header, rows, destination, progress)
    return _write_xlsx(header, rows, destination, progress)


def _write_csv(
    header: list[str],
    rows: Iterator[list[Any]],
    destination: Any,
    progress: Callable[[int], None] | None,
) -> int:
    count = 0
    if isinstance(destination, str | Path):
        with open(destination, "w", encoding="utf-8-sig", newline="") as handle:
            return _write_csv(header, rows, handle, progress)
    import io

    text = (
        destination
        if isinstance(destination, io.TextIOBase)
        else io.TextIOWrapper(destination, encoding="utf-8-sig", newline="", write_through=True)
    )
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        count += 1
        if progress and count % CHUNK_SIZE == 0:
            progress(count)
    text.flush()
    if text is not destination:
        text.detach()
    return count


def _write_xlsx(
    header: list[str],
    rows: Iterator[list[Any]],
    destination: Any,
    progress: Callable[[int], None] | None,
) -> int:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Org units")
    sheet.append(header)
    count = 0
    for row in rows:
        sheet.append(row)
        count += 1
        if progress and count % CHUNK_SIZE == 0:
            progress(count)
    workbook.save(destination)
    return count
