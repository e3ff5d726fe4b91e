"""The polls table source: one row per RapidPro contact the member may see.

Columns: ``contact uuid`` (key), ``person id``, name, phones, panel, panel path, cohorts,
language, status; then, per chosen question (param ``questions``: ids), the latest active
answer in the window (params ``start``/``end``: dates, inclusive) as ``<question name>``
(a double for numeric questions) and its category as ``<question name> category``. Each
question costs ONE SQL query (the newest answer per contact by a window function), never
one per row — so "contacts who did not answer this week" is a filter on an empty value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.utils.translation import gettext_lazy as _

from closedloop.core.tablesource import SourceColumn, table_sources
from closedloop.people.selectors import unit_path_labels
from closedloop.polls.models import Answer, ContactGroup, GroupRole, Question, QuestionType
from closedloop.polls.selectors import visible_contacts
from closedloop.registry.models import OrgUnit

KEY = "polls"
BUILTIN = [
    SourceColumn("contact uuid", "string", True, "RapidPro contact uuid"),
    SourceColumn("person id", "integer", False, "closedloop person id"),
    SourceColumn("name", "string"),
    SourceColumn("phones", "string", False, "phone URNs, comma-separated"),
    SourceColumn("panel", "string"),
    SourceColumn("panel path", "string", False, "org units above the panel and the panel"),
    SourceColumn("cohorts", "string"),
    SourceColumn("language", "string"),
    SourceColumn("status", "string", False, "active, blocked, stopped, archived or deleted"),
]
SEP = ", "


def _ids(value: Any) -> list[int]:
    if value in (None, ""):
        return []
    if isinstance(value, (str, int)):
        value = str(value).split(",")
    ids = []
    for item in value:
        try:
            ids.append(int(str(item).strip()))
        except ValueError:
            continue
    return list(dict.fromkeys(ids))


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _questions(params: dict[str, Any]) -> list[Question]:
    wanted = _ids(params.get("questions"))
    if not wanted:
        return []
    found = {q.pk: q for q in Question.objects.filter(pk__in=wanted, poll__is_active=True)}
    return [found[i] for i in wanted if i in found]


def _question_columns(questions: list[Question]) -> list[tuple[Question, str, str]]:
    taken = {c.name for c in BUILTIN}
    named = []
    for question in questions:
        name = question.display_name[:60]
        if name in taken:
            name = f"{name} ({question.poll.display_name})"[:90]
        if name in taken:
            name = f"{name} #{question.pk}"
        taken.update({name, f"{name} category"})
        named.append((question, name, f"{name} category"))
    return named


def latest_answers(
    question: Question, start: dt.date | None, end: dt.date | None
) -> dict[int, tuple[str, float | None, str]]:
    """``{contact id: (value, value_number, category)}`` of each contact's newest active
    answer to ``question`` within [start, end] (newest by submission time, then id) — one
    query over the question's answers: DISTINCT ON on PostgreSQL (measured faster there
    than a window function or a MAX() join back), ROW_NUMBER() on SQLite."""
    table = Answer._meta.db_table
    where = ["account_id = %s", "question_id = %s", "is_active = %s"]
    params: list[Any] = [question.account_id, question.pk, True]
    if start is not None:
        where.append("local_date >= %s")
        params.append(start)
    if end is not None:
        where.append("local_date <= %s")
        params.append(end)
    condition = " AND ".join(where)
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT ON (contact_id) contact_id, value, value_number, category "  # noqa: S608
            f'FROM "{table}" WHERE {condition} '
            "ORDER BY contact_id, submitted_on DESC, id DESC"
        )
    else:
        # "+contact_id": partitioning by an expression keeps SQLite from walking the
        # (question, contact, day) index with one random table lookup per answer; it reads
        # the answers through the chart index in storage order and sorts them (~2x faster)
        sql = (
            "SELECT contact_id, value, value_number, category FROM ("  # noqa: S608
            "SELECT contact_id, value, value_number, category, ROW_NUMBER() OVER ("
            "PARTITION BY +contact_id ORDER BY submitted_on DESC, id DESC) AS newest "
            f'FROM "{table}" WHERE {condition}) ranked WHERE newest = 1'
        )
        params = [p.isoformat() if isinstance(p, dt.date) else p for p in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0]: (row[1], row[2], row[3]) for row in cursor.fetchall()}


class PollsTableSource:
    key = KEY
    title: str = _("Poll contacts and answers")  # type: ignore[assignment]

    def columns(self, *, account: Any, params: dict[str, Any]) -> list[SourceColumn]:
        extra: list[SourceColumn] = []
        for question, name, category in _question_columns(_questions(params)):
            kind = "double" if question.type == QuestionType.NUMERIC else "string"
            label = f"{question.poll.display_name}: {question.display_name}"
            extra.append(SourceColumn(name, kind, False, label))
            extra.append(SourceColumn(category, "string", False, label))
        return [*BUILTIN, *extra]

    def rows(
        self, *, account: Any, membership: Any, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        # plain values, not model instances: the org unit rows (geometry left out) are
        # read once per unit, not once per contact
        contacts = (
            visible_contacts(membership)
            .filter(is_active=True)
            .order_by("pk")
            .values_list(
                "pk",
                "uuid",
                "person_id",
                "name",
                "urns",
                "panel__name",
                "org_unit_id",
                "group_uuids",
                "language",
                "status",
            )
        )
        questions = _question_columns(_questions(params))
        start, end = _date(params.get("start")), _date(params.get("end"))
        values = {q.pk: latest_answers(q, start, end) for q, _n, _c in questions}
        batch = list(contacts)
        units = {
            u.pk: u
            for u in OrgUnit.objects.filter(pk__in={c[6] for c in batch if c[6]}).only(
                "pk", "name", "path"
            )
        }
        paths = unit_path_labels(list(units.values()))
        cohorts = _cohort_names(batch)
        for pk, uuid, person_id, name, urns, panel, unit_id, _g, language, status in batch:
            unit = units.get(unit_id) if unit_id else None
            path = paths.get(unit.pk, "") if unit else ""
            row: dict[str, Any] = {
                "contact uuid": uuid,
                "person id": person_id,
                "name": name,
                "phones": SEP.join(u for u in urns or [] if str(u).startswith("tel:")) or None,
                "panel": panel,
                "panel path": (f"{path} › {unit.name}" if path else unit.name) if unit else None,
                "cohorts": SEP.join(cohorts.get(pk, [])) or None,
                "language": language or None,
                "status": status,
            }
            for question, name, category in questions:
                found = values[question.pk].get(pk)
                if found is None:
                    row[name] = row[category] = None
                    continue
                value, number, cat = found
                row[name] = number if question.type == QuestionType.NUMERIC else (value or None)
                row[category] = cat or None
            yield row


def _cohort_names(contacts: list[tuple[Any, ...]]) -> dict[int, list[str]]:
    """Cohort group names per contact (rows of ``rows()``: pk first, group uuids eighth)
    from its group uuids (one query)."""
    names = dict(ContactGroup.objects.filter(role=GroupRole.COHORT).values_list("uuid", "name"))
    return {c[0]: sorted(names[u] for u in (c[7] or []) if u in names) for c in contacts}


def register_table_source() -> None:
    if KEY not in table_sources.sources:
        table_sources.register(PollsTableSource())
