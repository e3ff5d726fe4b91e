"""Importing an org-unit hierarchy from a CSV or XLSX file.

The file has one row per leaf unit (a school, a clinic) and one column per parent level,
top level first, as ministries publish school lists::

    Region,District,School,Code,Lat,Lon
    North,Central,Hilltop Primary,S001,1.5,30.1

Every row is checked first and every problem is reported with its row number and column
(:func:`validate_import`, no writes). :func:`import_orgunits` then writes everything in ONE
transaction, or nothing. Parents are matched by name (trimmed, case-insensitive) under
their own parent, and units already in the target version are reused, so importing the
same file twice creates nothing the second time.

Speed: the version's existing units are loaded once into a dict, new ids are reserved up
front, paths are computed in Python and rows are written with COPY / ``executemany``
(:mod:`closedloop.registry.bulk`) — no query per row. For the same reason the audit trail
gets ONE summary entry per import (on the source version), not one entry per unit.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit
from closedloop.core.models import AuditEntry
from closedloop.core.tabular import Table, TabularError, read_table
from closedloop.registry.bulk import UnitRow, allocate_unit_ids, bulk_insert_units
from closedloop.registry.geometry import GeometryError, validate_point
from closedloop.registry.models import (
    DataSource,
    OrgUnit,
    OrgUnitType,
    SourceVersion,
    ValidationStatus,
)
from closedloop.registry.paths import child_path

MAX_ERRORS_IN_RESULT = 1000
MAX_LEVELS = 30
NAME_MAX, CODE_MAX, REF_MAX = 255, 100, 200

Progress = Callable[[int, int, str], None]


def clean_name(value: str) -> str:
    """Trim and collapse runs of whitespace: ``"  Hill   Top "`` → ``"Hill Top"``."""
    return " ".join(value.split())


def name_key(value: str) -> str:
    return clean_name(value).casefold()


@dataclass
class ImportOptions:
    """Which columns hold what, and where the units go. JSON-able for ``Job.params``."""

    parents: list[str]
    name: str
    ref: str | None = None
    code: str | None = None
    lat: str | None = None
    lon: str | None = None
    type_names: list[str] = field(default_factory=list)
    leaf_type: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    source: str | None = None
    version: int | None = None
    only_valid: bool = False
    status: str = ValidationStatus.NEW.value
    #: optional column naming each row's own type (an export's ``type`` column)
    type_column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["parents"] = [str(p) for p in values.get("parents") or []]
        values["type_names"] = [str(t) for t in values.get("type_names") or []]
        if values.get("version") not in (None, ""):
            values["version"] = int(values["version"])
        return cls(**values)

    def columns(self) -> list[tuple[str, str]]:
        """(what, column) for every column the options name."""
        named = [(_("parent level"), col) for col in self.parents] + [(_("name"), self.name)]
        for what, col in (
            (_("reference"), self.ref),
            (_("code"), self.code),
            (_("latitude"), self.lat),
            (_("longitude"), self.lon),
            (_("type"), self.type_column),
        ):
            if col:
                named.append((what, col))
        return named


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class PlannedUnit:
    """A unit the import will create; ``parent`` is a token (see :class:`_Plan`)."""

    token: int
    name: str
    parent: int | None
    level: int
    type_name: str | None = None
    ref: str = ""
    code: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class _Plan:
    """What the rows resolve to. Tokens > 0 are ids of existing units, < 0 new units."""

    index: dict[tuple[int | None, str], int]
    existing: dict[int, tuple[str, int]]  # id -> (path, depth)
    existing_refs: dict[str, int]
    new_units: list[PlannedUnit] = field(default_factory=list)
    reused: set[int] = field(default_factory=set)
    refs_seen: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    chains: dict[tuple[tuple[int, str], ...], int | None] = field(default_factory=dict)


@dataclass
class ValidationReport:
    problems: list[RowProblem]
    rows_read: int = 0
    valid_rows: int = 0
    invalid_rows: int = 0
    fatal: bool = False  # the file as a whole cannot be imported (missing column …)
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""
    plan: _Plan | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def errors_json(self, limit: int = MAX_ERRORS_IN_RESULT) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.problems[:limit]]


@dataclass
class ImportResult:
    units_created: dict[str, int]
    units_reused: int
    rows_read: int
    rows_imported: int
    rows_skipped: int
    errors: list[dict[str, Any]]
    error_count: int
    encoding: str
    delimiter: str
    sheet: str
    version: str

    @property
    def total_created(self) -> int:
        return sum(self.units_created.values())

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total_created": self.total_created}


class ImportFailed(Exception):
    """Nothing was imported; ``report`` holds every problem found."""

    def __init__(self, report: ValidationReport):
        self.report = report
        if report.fatal:
            message = report.problems[0].message if report.problems else _("The file is invalid.")
        else:
            message = _("%(n)d row(s) have problems; nothing was imported.") % {
                "n": report.invalid_rows
            }
        super().__init__(message)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: a big table is a million small objects it would rescan for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- validation ---------------------------------------------------------------------------


def _option_problems(table: Table, options: ImportOptions) -> list[RowProblem]:
    problems = []
    lower = {c.casefold() for c in table.columns}
    if not options.name:
        problems.append(RowProblem(1, "", _("Choose the column that holds the unit names.")))
    for what, column in options.columns():
        if column and column.casefold() not in lower:
            problems.append(
                RowProblem(
                    1,
                    column,
                    _("Column “%(col)s” (%(what)s) is not in the file. Columns found: %(found)s.")
                    % {"col": column, "what": what, "found": ", ".join(table.columns)},
                )
            )
    if len(options.parents) > MAX_LEVELS:
        problems.append(
            RowProblem(1, "", _("At most %(n)d parent levels can be imported.") % {"n": MAX_LEVELS})
        )
    levels = len(options.parents) + 1
    if options.type_names and len(options.type_names) not in (levels - 1, levels):
        problems.append(
            RowProblem(
                1,
                "",
                _(
                    "Give one type name per level (%(n)d: the parent levels, then the units); "
                    "%(got)d were given."
                )
                % {"n": levels, "got": len(options.type_names)},
            )
        )
    if options.status not in ValidationStatus.values:
        problems.append(
            RowProblem(1, "", _("“%(s)s” is not a validation status.") % {"s": options.status})
        )
    if options.lat and not options.lon or options.lon and not options.lat:
        problems.append(
            RowProblem(
                1,
                options.lat or options.lon or "",
                _("Choose both the latitude and the longitude columns, or neither."),
            )
        )
    return problems


def _column_positions(table: Table, options: ImportOptions) -> dict[str, int]:
    by_name = {c.casefold(): i for i, c in enumerate(table.columns)}
    return {col: by_name[col.casefold()] for _what, col in options.columns() if col}


def _coordinate_problem(lat: str, lon: str, options: ImportOptions) -> RowProblem | None:
    """The first problem with a row's coordinates, naming the column at fault (row 0)."""
    lat_col, lon_col = options.lat or "", options.lon or ""
    if bool(lat.strip()) != bool(lon.strip()):
        missing = lon_col if lat.strip() else lat_col
        return RowProblem(
            0, missing, _("Latitude and longitude go together: give both or neither.")
        )
    for value, column in ((lat, lat_col), (lon, lon_col)):
        if not value.strip():
            continue
        try:
            float(value.strip().replace(",", "."))
        except ValueError:
            return RowProblem(0, column, _("“%(v)s” is not a number.") % {"v": value})
    try:
        validate_point(lat, lon)
    except GeometryError as exc:
        column = lat_col if str(exc).startswith("latitude") else lon_col
        bound = "-90..90" if column == lat_col else "-180..180"
        return RowProblem(
            0,
            column,
            _("%(v)s is outside %(range)s.")
            % {
                "v": (lat if column == lat_col else lon).strip(),
                "range": bound,
            },
        )
    return None


def _load_existing(version_id: int | None) -> _Plan:
    plan = _Plan(index={}, existing={}, existing_refs={})
    if version_id is None:
        return plan
    rows = OrgUnit.objects.filter(version_id=version_id).values_list(
        "id", "parent_id", "name", "path", "depth", "ref"
    )
    for pk, parent_id, name, path, depth, ref in rows.iterator(chunk_size=20_000):
        plan.index.setdefault((parent_id, name_key(name)), pk)
        plan.existing[pk] = (path, depth)
        if ref:
            plan.existing_refs.setdefault(ref, pk)
    return plan


class _RowReader:
    """Turns one table row into cleaned values, or problems."""

    def __init__(self, table: Table, options: ImportOptions):
        self.options = options
        pos = _column_positions(table, options)
        self.parent_pos = [pos[c] for c in options.parents]
        self.name_pos = pos[options.name]
        self.optional = {
            key: pos[col] if col else None
            for key, col in (
                ("ref", options.ref),
                ("code", options.code),
                ("lat", options.lat),
                ("lon", options.lon),
                ("type", options.type_column),
            )
        }
        self.limits = [
            ("name", options.name, NAME_MAX),
            ("ref", options.ref, REF_MAX),
            ("code", options.code, CODE_MAX),
        ]
        self._cleaned: dict[str, str] = {"": ""}

    def cell(self, row: list[str], key: str) -> str:
        position = self.optional[key]
        return row[position].strip() if position is not None else ""

    def clean(self, raw: str) -> str:
        # the same parent names repeat on thousands of rows: clean each once
        cleaned = self._cleaned.get(raw)
        if cleaned is None:
            cleaned = self._cleaned[raw] = clean_name(raw)
        return cleaned

    def read(self, number: int, row: list[str]) -> tuple[dict[str, Any], list[RowProblem]]:
        options = self.options
        values: dict[str, Any] = {
            "chain": [
                (level, self.clean(row[p])) for level, p in enumerate(self.parent_pos) if row[p]
            ],
            "name": clean_name(row[self.name_pos]),
            "ref": self.cell(row, "ref"),
            "code": self.cell(row, "code"),
            "type": self.clean(self.cell(row, "type")),
        }
        problems = []
        if not values["name"]:
            problems.append(RowProblem(number, options.name, _("The unit has no name.")))
        for level, text in values["chain"]:
            if len(text) > NAME_MAX:
                message = _("The name is longer than %(n)d characters.") % {"n": NAME_MAX}
                problems.append(RowProblem(number, options.parents[level], message))
        for key, column, limit in self.limits:
            if len(values[key]) > limit:
                message = _("The value is longer than %(n)d characters.") % {"n": limit}
                problems.append(RowProblem(number, column or "", message))
        if options.lat and options.lon:
            lat, lon = self.cell(row, "lat"), self.cell(row, "lon")
            point = _quick_point(lat, lon)
            problem = None if point else _coordinate_problem(lat, lon, options)
            if problem:
                problems.append(dataclasses.replace(problem, row=number))
            else:
                values["lat"], values["lon"] = point or validate_point(lat, lon)
        return values, problems


def _quick_point(lat: str, lon: str) -> tuple[float | None, float | None] | None:
    """The common cases without building messages; None means "look closer"."""
    if not lat and not lon:
        return None, None
    try:
        lat_f, lon_f = float(lat), float(lon)
    except ValueError:
        return None
    if -90 <= lat_f <= 90 and -180 <= lon_f <= 180:
        return lat_f, lon_f
    return None


def _resolve(plan: _Plan, chain: list[tuple[int, str]], name: str) -> int | None:
    """The token of the row's unit if the plan knows it already (changes nothing)."""
    parent: int | None = None
    for _level, text in [*chain, (0, name)]:
        token = plan.index.get((parent, text.casefold()))
        if token is None:
            return None
        parent = token
    return parent


def _ref_problem(
    plan: _Plan, number: int, ref: str, leaf: int | None, column: str
) -> RowProblem | None:
    if not ref:
        return None
    seen = plan.refs_seen.get(ref)
    if seen is not None and (leaf is None or seen[1] != leaf):
        return RowProblem(
            number,
            column,
            _("Reference “%(ref)s” is used by two different units: rows %(a)d and %(b)d.")
            % {"ref": ref, "a": seen[0], "b": number},
        )
    owner = plan.existing_refs.get(ref)
    if seen is None and owner is not None and owner != leaf:
        return RowProblem(
            number,
            column,
            _("Reference “%(ref)s” already belongs to another unit (id %(id)d).")
            % {"ref": ref, "id": owner},
        )
    return None


def _leaf_type(options: ImportOptions, row_type: str) -> str | None:
    if row_type:
        return row_type
    if options.leaf_type:
        return clean_name(options.leaf_type)
    if len(options.type_names) > len(options.parents):
        return clean_name(options.type_names[len(options.parents)])
    return None


def _step(
    plan: _Plan, parent: int | None, level: int, text: str, type_name: str | None
) -> tuple[int, bool]:
    """The token of ``text`` under ``parent``, planning a new unit if needed."""
    key = (parent, text.casefold())
    token = plan.index.get(key)
    if token is None:
        token = -(len(plan.new_units) + 1)
        plan.new_units.append(PlannedUnit(token, text, parent, level, type_name))
        plan.index[key] = token
        return token, True
    if token > 0:
        plan.reused.add(token)
    return token, False


def _plan_parents(plan: _Plan, chain: list[tuple[int, str]], options: ImportOptions) -> int | None:
    """The token of the row's nearest parent; rows sharing a chain resolve it once."""
    key = tuple(chain)
    if key in plan.chains:
        return plan.chains[key]
    parent: int | None = None
    for level, text in chain:
        type_name = None
        if level < len(options.type_names):
            type_name = clean_name(options.type_names[level])
        parent, _created = _step(plan, parent, level, text, type_name)
    plan.chains[key] = parent
    return parent


def _apply_row(plan: _Plan, values: dict[str, Any], options: ImportOptions) -> int:
    """Add the row's missing units to the plan; returns the leaf's token."""
    parent = _plan_parents(plan, values["chain"], options)
    token, created = _step(plan, parent, len(options.parents), values["name"], None)
    if token < 0:
        unit = plan.new_units[-token - 1]
        if created or values["type"]:
            unit.type_name = _leaf_type(options, values["type"]) or unit.type_name
        unit.ref = unit.ref or values["ref"]
        unit.code = unit.code or values["code"]
        if unit.latitude is None and values.get("lat") is not None:
            unit.latitude, unit.longitude = values["lat"], values["lon"]
    return token


def _validate_rows(table: Table, options: ImportOptions, plan: _Plan) -> ValidationReport:
    report = ValidationReport(
        problems=[],
        encoding=table.encoding,
        delimiter=table.delimiter,
        sheet=table.sheet,
        plan=plan,
    )
    reader = _RowReader(table, options)
    for index, row in enumerate(table.rows):
        if not any(row):
            continue
        number = table.row_number(index)
        report.rows_read += 1
        values, problems = reader.read(number, row)
        if values["ref"] and not problems:
            leaf = _resolve(plan, values["chain"], values["name"])
            problem = _ref_problem(plan, number, values["ref"], leaf, options.ref or "")
            if problem:
                problems.append(problem)
        if problems:
            report.problems.extend(problems)
            report.invalid_rows += 1
            continue
        leaf = _apply_row(plan, values, options)
        if values["ref"]:
            plan.refs_seen.setdefault(values["ref"], (number, leaf))
        report.valid_rows += 1
    return report


def _find_version(options: ImportOptions) -> SourceVersion | None:
    """The target version if it exists already (no writes)."""
    if options.source:
        source = DataSource.objects.filter(name__iexact=options.source.strip()).first()
    else:
        source = DataSource.objects.filter(is_default=True).first()
        if source is None:
            return None if options.version else _default_or_none()
    if source is None:
        return None
    versions = SourceVersion.objects.filter(source=source)
    if options.version:
        return versions.filter(number=options.version).first()
    return versions.filter(is_default=True).first() or versions.order_by("-number").first()


def _default_or_none() -> SourceVersion | None:
    return SourceVersion.objects.filter(is_default=True).first()


def validate_import(account: Any, table: Table, options: ImportOptions) -> ValidationReport:
    """Check every row against the options and the registry; writes nothing.

    Call it inside the account's scope.
    """
    problems = _option_problems(table, options)
    if problems:
        return ValidationReport(
            problems=problems,
            fatal=True,
            encoding=table.encoding,
            delimiter=table.delimiter,
            sheet=table.sheet,
        )
    version = _find_version(options)
    with _gc_paused():
        return _validate_rows(table, options, _load_existing(version.pk if version else None))


# --- writing ------------------------------------------------------------------------------


def _ensure_version(account: Any, options: ImportOptions) -> SourceVersion:
    from closedloop.registry.services import default_version

    version = _find_version(options)
    if version is not None:
        return version
    if not options.source and not options.version:
        return default_version(account)
    account_id = getattr(account, "pk", account)
    if options.source:
        source = DataSource.objects.filter(name__iexact=options.source.strip()).first()
        source = source or DataSource.objects.create(
            account_id=account_id, name=options.source.strip()
        )
    else:
        source = default_version(account).source
    number = options.version or 1
    existing = SourceVersion.objects.filter(source=source, number=number).first()
    return existing or SourceVersion.objects.create(
        account_id=account_id, source=source, number=number
    )


def _ensure_types(account: Any, actor: Any, units: list[PlannedUnit]) -> dict[str, int]:
    from closedloop.registry.services import orgunit_type_create

    existing = {t.name.casefold(): t.pk for t in OrgUnitType.objects.all()}
    wanted: dict[str, tuple[str, int]] = {}
    for unit in units:
        if unit.type_name and unit.type_name.casefold() not in existing:
            wanted.setdefault(unit.type_name.casefold(), (unit.type_name, unit.level + 1))
    for key, (name, depth) in wanted.items():
        existing[key] = orgunit_type_create(account=account, actor=actor, name=name, depth=depth).pk
    return existing


def _unit_rows(
    plan: _Plan, ids: list[int], version_id: int, type_ids: dict[str, int], status: str
) -> list[UnitRow]:
    paths: dict[int, tuple[str, int]] = {}
    rows = []
    for unit, pk in zip(plan.new_units, ids, strict=True):
        if unit.parent is None:
            parent_id, parent_path, parent_depth = None, "", 0
        elif unit.parent > 0:
            parent_id = unit.parent
            parent_path, parent_depth = plan.existing[unit.parent]
        else:
            parent_id = ids[-unit.parent - 1]
            parent_path, parent_depth = paths[unit.parent]
        path = child_path(parent_path, pk)
        paths[unit.token] = (path, parent_depth + 1)
        rows.append(
            UnitRow(
                id=pk,
                version_id=version_id,
                name=unit.name,
                path=path,
                depth=parent_depth + 1,
                parent_id=parent_id,
                type_id=type_ids.get(unit.type_name.casefold()) if unit.type_name else None,
                code=unit.code,
                ref=unit.ref,
                validation_status=status,
                latitude=unit.latitude,
                longitude=unit.longitude,
            )
        )
    return rows


def _read(path_or_bytes: str | Path | bytes, options: ImportOptions, filename: str) -> Table:
    try:
        return read_table(
            path_or_bytes,
            filename=filename,
            delimiter=options.delimiter,
            encoding=options.encoding,
            sheet=options.sheet,
        )
    except TabularError as exc:
        problem = RowProblem(exc.row or 0, exc.column or "", str(exc))
        raise ImportFailed(ValidationReport(problems=[problem], fatal=True)) from None


def import_orgunits(
    *,
    account: Any,
    actor: Any,
    path_or_bytes: str | Path | bytes,
    options: ImportOptions,
    progress: Progress | None = None,
    check_cancelled: Callable[[], None] | None = None,
    filename: str = "",
) -> ImportResult:
    """Validate, then write the whole file in one transaction. Raises :class:`ImportFailed`.

    Call it inside the account's scope. ``check_cancelled`` may raise to stop; the
    transaction is then rolled back and the registry is as it was.
    """
    with _gc_paused():
        return _import_table(
            account=account,
            actor=actor,
            path_or_bytes=path_or_bytes,
            options=options,
            progress=progress,
            check_cancelled=check_cancelled,
            filename=filename,
        )


def _import_table(
    *,
    account: Any,
    actor: Any,
    path_or_bytes: str | Path | bytes,
    options: ImportOptions,
    progress: Progress | None = None,
    check_cancelled: Callable[[], None] | None = None,
    filename: str = "",
) -> ImportResult:
    def report_progress(done: int, total: int, message: str) -> None:
        if progress:
            progress(done, total, message)

    table = _read(path_or_bytes, options, filename)
    report_progress(0, 0, _("Read %(n)d rows; checking them.") % {"n": len(table.rows)})
    fatal = _option_problems(table, options)
    if fatal:
        raise ImportFailed(ValidationReport(problems=fatal, fatal=True))
    with transaction.atomic():
        version = _ensure_version(account, options)
        report = _validate_rows(table, options, _load_existing(version.pk))
        if report.problems and not options.only_valid or not report.valid_rows:
            raise ImportFailed(report)
        plan = report.plan
        assert plan is not None
        type_ids = _ensure_types(account, actor, plan.new_units)
        if check_cancelled:
            check_cancelled()
        total = len(plan.new_units)
        ids = allocate_unit_ids(total)
        rows = _unit_rows(plan, ids, version.pk, type_ids, options.status)

        def after_chunk(written: int) -> None:
            report_progress(
                written,
                total,
                _("Wrote %(n)d of %(total)d units.") % {"n": written, "total": total},
            )
            if check_cancelled:
                check_cancelled()

        bulk_insert_units(getattr(account, "pk", account), rows, after_chunk=after_chunk)
        result = _result(report, plan, version)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=version,
            before={"imported_units": None},
            after={
                "imported_units": result.total_created,
                "import_file": filename,
                "rows_imported": result.rows_imported,
            },
        )
    return result


def _result(report: ValidationReport, plan: _Plan, version: SourceVersion) -> ImportResult:
    created: dict[str, int] = {}
    for unit in plan.new_units:
        label = unit.type_name or ""
        created[label] = created.get(label, 0) + 1
    return ImportResult(
        units_created=created,
        units_reused=len(plan.reused),
        rows_read=report.rows_read,
        rows_imported=report.valid_rows,
        rows_skipped=report.invalid_rows,
        errors=report.errors_json(),
        error_count=len(report.problems),
        encoding=report.encoding,
        delimiter=report.delimiter,
        sheet=report.sheet,
        version=str(version),
    )
