"""Importing people from a CSV or XLSX file.

Two passes. :func:`plan_import` reads every row, normalises and validates it, and
matches it against the org units, identifiers and cohorts already in the database
(loaded in a few chunked queries, never one query per row); every problem is kept
with its spreadsheet row number and column. :func:`apply_plan` then writes
everything in one transaction with bulk inserts and updates: new people are created,
people already known by one of the row's identifiers (email, phone, external id) are
updated, never duplicated. With problems and without ``only_valid`` nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.core.audit import record_audit_bulk
from closedloop.core.models import AuditEntry
from closedloop.core.tabular import Table, TabularError
from closedloop.people.models import Cohort, CustomField, Identifier, Person
from closedloop.people.services import (
    PeopleError,
    coerce_field_value,
    normalise_email,
    normalise_phone,
)
from closedloop.registry.models import OrgUnit
from closedloop.registry.selectors import scope_paths

CHUNK = 900  # SQLite's limit on variables per statement is 999
BATCH = 2000
UNIT_MATCHES = ("code", "ref", "id")
LIST_SPLIT = re.compile(r"[;,]")
AUTO_COLUMNS = {
    "email_column": ("email", "e-mail", "email address"),
    "phone_column": ("phone", "phone number", "tel", "mobile"),
    "external_column": ("external_id", "external id"),
    "cohorts_column": ("cohorts", "cohort"),
    "language_column": ("language", "lang"),
}

Progress = Callable[[int, int, str], None]
IdentKey = tuple[str, str, str]  # kind, system, value


class ImportOptionsError(ValueError):
    """The options or the column mapping cannot work with this file."""


@dataclass
class ImportOptions:
    name_column: str = "name"
    email_column: str = ""
    phone_column: str = ""
    external_column: str = ""
    external_system: str = ""
    unit_column: str = ""
    unit_match: str = "code"
    cohorts_column: str = ""
    language_column: str = ""
    field_columns: dict[str, str] = field(default_factory=dict)  # column -> field key
    auto_map: bool = True
    only_valid: bool = False
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ImportOptions:
        known = set(cls.__dataclass_fields__)
        unknown = set(data or {}) - known
        if unknown:
            raise ImportOptionsError(
                _("Unknown import options: %(names)s.") % {"names": ", ".join(sorted(unknown))}
            )
        options = cls(**(data or {}))
        if options.unit_match not in UNIT_MATCHES:
            raise ImportOptionsError(
                _("Match org units by code, ref or id, not “%(value)s”.")
                % {"value": options.unit_match}
            )
        return options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        if self.column:
            return _("Row %(row)d, column “%(column)s”: %(message)s") % {
                "row": self.row,
                "column": self.column,
                "message": self.message,
            }
        return _("Row %(row)d: %(message)s") % {"row": self.row, "message": self.message}


@dataclass
class Mapping:
    """Column positions in the table (None: not mapped)."""

    name: int
    email: int | None = None
    phone: int | None = None
    external: int | None = None
    unit: int | None = None
    cohorts: int | None = None
    language: int | None = None
    fields: dict[int, CustomField] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


@dataclass
class RowPlan:
    row: int
    name: str
    identifiers: list[tuple[IdentKey, str]] = field(default_factory=list)  # key, column
    unit_value: str = ""
    unit_id: int | None = None
    cohorts: list[str] = field(default_factory=list)
    language: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    person_id: int | None = None
    valid: bool = True


@dataclass
class ImportPlan:
    rows: list[RowPlan]
    problems: list[Problem]
    mapping: Mapping
    columns: list[str]
    existing_people: dict[int, Person] = field(default_factory=dict)
    existing_identifiers: dict[IdentKey, int] = field(default_factory=dict)
    unit_match: str = "code"

    @property
    def valid_rows(self) -> list[RowPlan]:
        return [r for r in self.rows if r.valid]

    @property
    def invalid_row_count(self) -> int:
        return len({p.row for p in self.problems})


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    cohorts_created: int = 0
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def as_json(self, max_problems: int = 500) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "cohorts_created": self.cohorts_created,
            "problem_count": len(self.problems),
            "problems": [asdict(p) for p in self.problems[:max_problems]],
            "ignored_columns": self.ignored_columns,
        }


# --- mapping --------------------------------------------------------------------------


def _find_column(columns: Sequence[str], name: str) -> int:
    lowered = [c.lower() for c in columns]
    try:
        return lowered.index(name.strip().lower())
    except ValueError:
        raise ImportOptionsError(
            _("Column “%(name)s” is not in the file. Columns found: %(found)s.")
            % {"name": name, "found": ", ".join(columns)}
        ) from None


def resolve_mapping(
    columns: Sequence[str], options: ImportOptions, definitions: dict[str, CustomField]
) -> Mapping:
    """Column positions for each role; explicit names must exist, the rest is guessed."""
    lowered = [c.lower() for c in columns]
    mapping = Mapping(name=_find_column(columns, options.name_column))
    for option, attr in (
        ("email_column", "email"),
        ("phone_column", "phone"),
        ("external_column", "external"),
        ("unit_column", "unit"),
        ("cohorts_column", "cohorts"),
        ("language_column", "language"),
    ):
        given = getattr(options, option)
        if given:
            setattr(mapping, attr, _find_column(columns, given))
        elif options.auto_map and option in AUTO_COLUMNS:
            guess = next((lowered.index(n) for n in AUTO_COLUMNS[option] if n in lowered), None)
            setattr(mapping, attr, guess)
    used = {
        i
        for i in (
            mapping.name,
            mapping.email,
            mapping.phone,
            mapping.external,
            mapping.unit,
            mapping.cohorts,
            mapping.language,
        )
        if i is not None
    }
    for column, key in options.field_columns.items():
        key = key.removeprefix("field:")
        if key not in definitions:
            raise ImportOptionsError(
                _("“%(key)s” is not a custom field of this account (column “%(column)s”).")
                % {"key": key, "column": column}
            )
        mapping.fields[_find_column(columns, column)] = definitions[key]
    for index, name in enumerate(lowered):
        if index in used or index in mapping.fields:
            continue
        key = name.removeprefix("field:").strip()
        if options.auto_map and key in definitions:
            mapping.fields[index] = definitions[key]
        else:
            mapping.ignored.append(columns[index])
    return mapping


# --- pass 1: validate -----------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [v.strip() for v in LIST_SPLIT.split(value) if v.strip()]


def _parse_row(
    number: int, cells: list[str], mapping: Mapping, columns: list[str], options: ImportOptions
) -> tuple[RowPlan, list[Problem]]:
    problems: list[Problem] = []

    def cell(index: int | None) -> str:
        return cells[index] if index is not None else ""

    def column(index: int | None) -> str:
        return columns[index] if index is not None else ""

    def problem(index: int | None, message: str) -> None:
        problems.append(Problem(number, column(index), message))

    plan = RowPlan(row=number, name=cell(mapping.name))
    if not plan.name:
        problem(mapping.name, _("The name is empty."))
    elif len(plan.name) > 255:
        problem(mapping.name, _("The name is longer than 255 characters."))
    for index, kind, normalise in (
        (mapping.email, Identifier.Kind.EMAIL, normalise_email),
        (mapping.phone, Identifier.Kind.PHONE, normalise_phone),
    ):
        for raw in _split(cell(index)):
            try:
                plan.identifiers.append(((kind, "", normalise(raw)), column(index)))
            except PeopleError as exc:
                problem(index, exc.message)
    external = cell(mapping.external)
    if len(external) > 255:
        problem(mapping.external, _("The external id is longer than 255 characters."))
    elif external:
        key = (Identifier.Kind.EXTERNAL.value, options.external_system.strip().lower(), external)
        plan.identifiers.append((key, column(mapping.external)))
    plan.unit_value = cell(mapping.unit)
    plan.cohorts = [c[:200] for c in _split(cell(mapping.cohorts))]
    if cell(mapping.language):
        plan.language = cell(mapping.language)
        if len(plan.language) > 10:
            problem(
                mapping.language,
                _("“%(value)s” is not a language code (such as en, fr or ar).")
                % {"value": plan.language},
            )
    for index, definition in mapping.fields.items():
        try:
            value = coerce_field_value(definition, cells[index])
        except PeopleError as exc:
            problem(index, exc.message)
            continue
        if value is not None:
            plan.fields[definition.key] = value
    plan.identifiers = list(dict.fromkeys(plan.identifiers))
    return plan, problems


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _load_units(values: Iterable[str], match: str) -> dict[str, list[tuple[int, str]]]:
    """``{value: [(unit id, path), …]}`` for the codes, refs or ids in the file."""
    wanted = sorted(set(values))
    if match == "id":
        wanted = [v for v in wanted if v.isdigit()]
    found: dict[str, list[tuple[int, str]]] = {}
    for chunk in _chunks(wanted):
        lookup = {"pk__in" if match == "id" else f"{match}__in": chunk}
        for pk, path, code, ref in OrgUnit.objects.filter(**lookup).values_list(
            "pk", "path", "code", "ref"
        ):
            key = str(pk) if match == "id" else (code if match == "code" else ref)
            found.setdefault(key, []).append((pk, path))
    return found


def _load_identifiers(keys: Iterable[IdentKey]) -> dict[IdentKey, int]:
    """``{(kind, system, value): person id}`` for the identifiers already known."""
    by_kind: dict[str, set[str]] = {}
    wanted = set(keys)
    for kind, _system, value in wanted:
        by_kind.setdefault(kind, set()).add(value)
    found: dict[IdentKey, int] = {}
    for kind, values in by_kind.items():
        for chunk in _chunks(sorted(values)):
            rows = Identifier.objects.filter(kind=kind, value__in=chunk).values_list(
                "system", "value", "person_id"
            )
            for system, value, person_id in rows:
                if (kind, system, value) in wanted:
                    found[(kind, system, value)] = person_id
    return found


def _load_people(ids: Iterable[int]) -> dict[int, Person]:
    people: dict[int, Person] = {}
    for chunk in _chunks(sorted(set(ids))):
        for person in Person.objects.filter(pk__in=chunk).select_related("org_unit"):
            people[person.pk] = person
    return people


def _in_scope(path: str | None, paths: list[str] | None) -> bool:
    if paths is None:
        return True
    return path is not None and any(path.startswith(p) for p in paths)


def plan_import(
    table: Table,
    options: ImportOptions,
    membership: Membership | None = None,
    progress: Progress | None = None,
) -> ImportPlan:
    """Validate every row and match it with the database; writes nothing."""
    definitions = {f.key: f for f in CustomField.objects.all()}
    mapping = resolve_mapping(table.columns, options, definitions)
    rows: list[RowPlan] = []
    problems: list[Problem] = []
    total = len(table.rows)
    for index, cells in enumerate(table.rows):
        if not any(cells):
            continue
        row, row_problems = _parse_row(
            table.row_number(index), cells, mapping, table.columns, options
        )
        rows.append(row)
        problems.extend(row_problems)
        if progress and index % 5000 == 0:
            progress(index, total, _("Checking rows…"))
    plan = ImportPlan(
        rows=rows,
        problems=problems,
        mapping=mapping,
        columns=table.columns,
        unit_match=options.unit_match,
    )
    _check_duplicates_in_file(plan)
    _match_database(plan, options, membership)
    bad_rows = {p.row for p in plan.problems}
    for row in plan.rows:
        row.valid = row.row not in bad_rows
    plan.problems.sort(key=lambda p: (p.row, p.column))
    return plan


def _check_duplicates_in_file(plan: ImportPlan) -> None:
    first_row: dict[IdentKey, int] = {}
    for row in plan.rows:
        for key, column in row.identifiers:
            if key in first_row and first_row[key] != row.row:
                plan.problems.append(
                    Problem(
                        row.row,
                        column,
                        _("%(value)s is also on row %(other)d.")
                        % {"value": key[2], "other": first_row[key]},
                    )
                )
            else:
                first_row.setdefault(key, row.row)


def _match_database(
    plan: ImportPlan, options: ImportOptions, membership: Membership | None
) -> None:
    paths = scope_paths(membership) if membership is not None else None
    units = _load_units((r.unit_value for r in plan.rows if r.unit_value), options.unit_match)
    identifiers = _load_identifiers(k for r in plan.rows for k, _c in r.identifiers)
    people = _load_people(identifiers.values())
    plan.existing_identifiers = identifiers
    plan.existing_people = people
    unit_column = plan.columns[plan.mapping.unit] if plan.mapping.unit is not None else ""
    matched_by: dict[int, int] = {}
    for row in plan.rows:
        _match_unit(plan, row, units, paths, unit_column)
        _match_person(plan, row, identifiers, people, paths, matched_by)


def _match_unit(
    plan: ImportPlan,
    row: RowPlan,
    units: dict[str, list[tuple[int, str]]],
    paths: list[str] | None,
    column: str,
) -> None:
    if not row.unit_value:
        return
    candidates = units.get(row.unit_value, [])
    if not candidates:
        plan.problems.append(
            Problem(
                row.row,
                column,
                _("No org unit has the %(match)s “%(value)s”.")
                % {"match": plan.unit_match, "value": row.unit_value},
            )
        )
    elif len(candidates) > 1:
        plan.problems.append(
            Problem(
                row.row,
                column,
                _("%(count)d org units have the %(match)s “%(value)s”; match by id instead.")
                % {"count": len(candidates), "match": plan.unit_match, "value": row.unit_value},
            )
        )
    elif not _in_scope(candidates[0][1], paths):
        plan.problems.append(
            Problem(
                row.row,
                column,
                _("The org unit “%(value)s” is outside the part of the registry you supervise.")
                % {"value": row.unit_value},
            )
        )
    else:
        row.unit_id = candidates[0][0]


def _match_person(
    plan: ImportPlan,
    row: RowPlan,
    identifiers: dict[IdentKey, int],
    people: dict[int, Person],
    paths: list[str] | None,
    matched_by: dict[int, int],
) -> None:
    found = {identifiers[k]: column for k, column in row.identifiers if k in identifiers}
    if not found:
        if paths is not None and not row.unit_value:
            plan.problems.append(
                Problem(
                    row.row,
                    plan.columns[plan.mapping.name],
                    _("Give an org unit: you can only add people to the org units you supervise."),
                )
            )
        return
    if len(found) > 1:
        names = ", ".join(sorted(people[pk].name for pk in found if pk in people))
        plan.problems.append(
            Problem(
                row.row,
                next(iter(found.values())),
                _("The identifiers on this row belong to different people (%(names)s).")
                % {"names": names},
            )
        )
        return
    person_id, column = next(iter(found.items()))
    person = people.get(person_id)
    if person is None or not _in_scope(person.org_unit.path if person.org_unit else None, paths):
        plan.problems.append(
            Problem(
                row.row,
                column,
                _(
                    "This identifier already belongs to a person outside the part of the registry you supervise."
                ),
            )
        )
        return
    if person_id in matched_by:
        plan.problems.append(
            Problem(
                row.row,
                column,
                _("This row and row %(other)d both match %(person)s.")
                % {"other": matched_by[person_id], "person": person.name},
            )
        )
        return
    matched_by[person_id] = row.row
    row.person_id = person_id


# --- pass 2: write --------------------------------------------------------------------


def apply_plan(
    plan: ImportPlan, *, account: Any, actor: Any, progress: Progress | None = None
) -> ImportResult:
    """Write the valid rows in one transaction; returns the counts."""
    rows = plan.valid_rows
    account_id = getattr(account, "pk", account)
    result = ImportResult(
        skipped=plan.invalid_row_count,
        problems=plan.problems,
        ignored_columns=plan.mapping.ignored,
    )
    with transaction.atomic():
        cohorts, result.cohorts_created = _ensure_cohorts(rows, account_id, actor)
        created = _create_people(rows, account_id)
        updated = _update_people(plan, rows)
        if progress:
            progress(len(rows) // 2, len(rows), _("Writing identifiers and cohorts…"))
        _create_identifiers(plan, rows, account_id)
        _link_cohorts(rows, cohorts)
        record_audit_bulk(
            account=account_id, actor=actor, action=AuditEntry.Action.CREATE, objects=created
        )
        record_audit_bulk(
            account=account_id, actor=actor, action=AuditEntry.Action.UPDATE, objects=updated
        )
    result.created, result.updated = len(created), len(updated)
    return result


def _ensure_cohorts(rows: list[RowPlan], account_id: int, actor: Any) -> tuple[dict[str, int], int]:
    by_lower = {c.name.lower(): c.pk for c in Cohort.objects.all()}
    missing: dict[str, str] = {}
    for row in rows:
        for name in row.cohorts:
            if name.lower() not in by_lower:
                missing.setdefault(name.lower(), name)
    new = Cohort.objects.bulk_create(
        [Cohort(account_id=account_id, name=name) for name in missing.values()], batch_size=BATCH
    )
    if new and new[0].pk is None:  # databases without RETURNING
        new = list(Cohort.objects.filter(name__in=missing.values()))
    for cohort in new:
        by_lower[cohort.name.lower()] = cohort.pk
    record_audit_bulk(account=account_id, actor=actor, action=AuditEntry.Action.CREATE, objects=new)
    return by_lower, len(new)


def _create_people(rows: list[RowPlan], account_id: int) -> list[Person]:
    new_rows = [r for r in rows if r.person_id is None]
    people = [
        Person(
            account_id=account_id,
            name=r.name,
            org_unit_id=r.unit_id,
            language=r.language or "",
            fields=r.fields,
        )
        for r in new_rows
    ]
    Person.objects.bulk_create(people, batch_size=BATCH)
    for row, person in zip(new_rows, people, strict=True):
        row.person_id = person.pk
    return people


def _update_people(plan: ImportPlan, rows: list[RowPlan]) -> list[Person]:
    """One executemany UPDATE: ``bulk_update``'s CASE expressions grow with the batch."""
    now = timezone.now()
    changed = []
    for row in rows:
        person = plan.existing_people.get(row.person_id) if row.person_id else None
        if person is None:
            continue
        person.name = row.name
        if row.unit_id is not None:
            person.org_unit_id = row.unit_id
        if row.language is not None:
            person.language = row.language
        person.fields = {**(person.fields or {}), **row.fields}
        person.updated_at = now
        changed.append(person)
    names = ["name", "org_unit", "language", "fields", "updated_at"]
    columns: list[Field[Any, Any]] = [Person._meta.get_field(n) for n in names]  # type: ignore[misc]
    sets = ", ".join(f"{connection.ops.quote_name(str(c.column))} = %s" for c in columns)
    sql = f"UPDATE {connection.ops.quote_name(Person._meta.db_table)} SET {sets} WHERE id = %s"
    params = [
        [c.get_db_prep_save(getattr(p, c.attname), connection) for c in columns] + [p.pk]
        for p in changed
    ]
    _executemany(sql, params)
    return changed


def _executemany(sql: str, params: list[list[Any]]) -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(params), BATCH):
            cursor.executemany(sql, params[start : start + BATCH])


def _insert_sql(table: str, columns: Sequence[str], ignore_conflicts: bool = False) -> str:
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    return sql + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")


def _create_identifiers(plan: ImportPlan, rows: list[RowPlan], account_id: int) -> None:
    params = [
        [account_id, row.person_id, k[0], k[1], k[2]]
        for row in rows
        for k, _column in row.identifiers
        if k not in plan.existing_identifiers
    ]
    sql = _insert_sql(
        Identifier._meta.db_table, ["account_id", "person_id", "kind", "system", "value"]
    )
    _executemany(sql, params)


def _link_cohorts(rows: list[RowPlan], cohorts: dict[str, int]) -> None:
    through = Person.cohorts.through
    links = sorted({(row.person_id, cohorts[name.lower()]) for row in rows for name in row.cohorts})
    sql = _insert_sql(through._meta.db_table, ["person_id", "cohort_id"], ignore_conflicts=True)
    _executemany(sql, [list(link) for link in links])


def import_people(
    table: Table,
    options: ImportOptions,
    *,
    account: Any,
    actor: Any,
    membership: Membership | None = None,
    progress: Progress | None = None,
    before_write: Callable[[], None] | None = None,
) -> tuple[ImportPlan, ImportResult | None]:
    """Validate, then write unless there are problems (or ``only_valid`` is set).

    Returns the plan and the result; the result is None when nothing was written.
    """
    plan = plan_import(table, options, membership, progress)
    if plan.problems and not options.only_valid:
        return plan, None
    if before_write:
        before_write()
    return plan, apply_plan(plan, account=account, actor=actor, progress=progress)


__all__ = [
    "ImportOptions",
    "ImportOptionsError",
    "ImportPlan",
    "ImportResult",
    "Problem",
    "TabularError",
    "import_people",
    "plan_import",
]
