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
    answer to ``question`` within [start, end] — one query over the question's answers
    (DISTINCT ON on PostgreSQL; SQLite's MAX() picks the bare columns of the newest row)."""
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
        sql = (
            f"SELECT contact_id, value, value_number, category, MAX(submitted_on) "  # noqa: S608
            f'FROM "{table}" WHERE {condition} GROUP BY contact_id'
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
        contacts = visible_contacts(membership).filter(is_active=True)
        contacts = contacts.select_related("panel", "org_unit").order_by("pk")
        questions = _question_columns(_questions(params))
        start, end = _date(params.get("start")), _date(params.get("end"))
        values = {q.pk: latest_answers(q, start, end) for q, _n, _c in questions}
        batch = list(contacts)
        cohorts = _cohort_names(batch)
        paths = unit_path_labels([c.org_unit for c in batch])
        for contact in batch:
            unit = contact.org_unit
            path = paths.get(unit.pk, "") if unit else ""
            row: dict[str, Any] = {
                "contact uuid": contact.uuid,
                "person id": contact.person_id,
                "name": contact.name,
                "phones": SEP.join(u for u in contact.urns if str(u).startswith("tel:")) or None,
                "panel": contact.panel.name if contact.panel else None,
                "panel path": (f"{path} › {unit.name}" if path else unit.name) if unit else None,
                "cohorts": SEP.join(cohorts.get(contact.pk, [])) or None,
                "language": contact.language or None,
                "status": contact.status,
            }
            for question, name, category in questions:
                found = values[question.pk].get(contact.pk)
                if found is None:
                    row[name] = row[category] = None
                    continue
                value, number, cat = found
                row[name] = number if question.type == QuestionType.NUMERIC else (value or None)
                row[category] = cat or None
            yield row


def _cohort_names(contacts: list[Any]) -> dict[int, list[str]]:
    """Cohort group names per contact from its group uuids (one query)."""
    names = dict(ContactGroup.objects.filter(role=GroupRole.COHORT).values_list("uuid", "name"))
    return {c.pk: sorted(names[u] for u in (c.group_uuids or []) if u in names) for c in contacts}


def register_table_source() -> None:
    if KEY not in table_sources.sources:
        table_sources.register(PollsTableSource())
