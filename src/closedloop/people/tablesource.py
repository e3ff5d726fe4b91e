"""The people table source: one row per person the member may see, for feedback
workflows and any other module that consumes table sources.

Columns: ``id`` (key), name, first email (``email``) and all of them, phones, external
ids (``system:value``), the org unit and its path, cohorts (comma-separated), language,
active, and one typed column per custom field of the account. A supervisor gets only the
people placed in his subtrees (the same rule as the people pages).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext_lazy as _

from closedloop.core.tablesource import SourceColumn, table_sources
from closedloop.people.models import CustomField, Identifier
from closedloop.people.selectors import unit_path_labels, visible_people

FIELD_TYPES: dict[str, str] = {
    CustomField.Type.TEXT: "string",
    CustomField.Type.NUMBER: "double",
    CustomField.Type.DATE: "datetime",
    CustomField.Type.BOOLEAN: "boolean",
}
BUILTIN = [
    SourceColumn("id", "integer", True, "closedloop person id"),
    SourceColumn("name", "string"),
    SourceColumn("email", "string", False, "first email address"),
    SourceColumn("emails", "string", False, "all email addresses, comma-separated"),
    SourceColumn("phones", "string"),
    SourceColumn("external ids", "string", False, "system:value, comma-separated"),
    SourceColumn("org unit", "string"),
    SourceColumn("org unit path", "string"),
    SourceColumn("cohorts", "string"),
    SourceColumn("language", "string"),
    SourceColumn("active", "boolean"),
]
SEP = ", "


def _field_column_name(field: CustomField, taken: set[str]) -> str:
    name = field.key[:63]
    return name if name not in taken else f"{field.key[:55]} (field)"


class PeopleTableSource:
    key = "people"
    title: str = _("People")  # type: ignore[assignment]

    def _fields(self) -> list[tuple[str, CustomField]]:
        taken = {c.name for c in BUILTIN}
        named = []
        for field in CustomField.objects.order_by("label", "pk"):
            name = _field_column_name(field, taken)
            taken.add(name)
            named.append((name, field))
        return named

    def columns(self, *, account: Any, params: dict[str, Any]) -> list[SourceColumn]:
        extra = [
            SourceColumn(name, FIELD_TYPES.get(field.type, "string"), False, field.label)
            for name, field in self._fields()
        ]
        return [*BUILTIN, *extra]

    def rows(
        self, *, account: Any, membership: Any, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        people = visible_people(membership).select_related("org_unit")
        if params.get("active_only"):
            people = people.filter(is_active=True)
        if params.get("cohort"):
            people = people.filter(cohorts__pk=params["cohort"])
        people = people.prefetch_related("identifiers", "cohorts").order_by("pk")
        fields = self._fields()
        batch = list(people)
        paths = unit_path_labels([p.org_unit for p in batch])
        for person in batch:
            identifiers = list(person.identifiers.all())
            emails = sorted(i.value for i in identifiers if i.kind == Identifier.Kind.EMAIL)
            phones = sorted(i.value for i in identifiers if i.kind == Identifier.Kind.PHONE)
            external = sorted(
                f"{i.system}:{i.value}" if i.system else i.value
                for i in identifiers
                if i.kind == Identifier.Kind.EXTERNAL
            )
            unit = person.org_unit
            path = paths.get(unit.pk, "") if unit else ""
            row: dict[str, Any] = {
                "id": person.pk,
                "name": person.name,
                "email": emails[0] if emails else None,
                "emails": SEP.join(emails) or None,
                "phones": SEP.join(phones) or None,
                "external ids": SEP.join(external) or None,
                "org unit": unit.name if unit else None,
                "org unit path": (f"{path} › {unit.name}" if path else unit.name) if unit else None,
                "cohorts": SEP.join(sorted(c.name for c in person.cohorts.all())) or None,
                "language": person.language or None,
                "active": person.is_active,
            }
            values = person.fields or {}
            for name, field in fields:
                row[name] = values.get(field.key)
            yield row


def register_table_source() -> None:
    if PeopleTableSource.key not in table_sources.sources:
        table_sources.register(PeopleTableSource())
