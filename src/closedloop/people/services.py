"""Every write to people, cohorts and custom fields goes through these functions.

Each runs in one transaction and leaves an audit entry. Bad input raises
:class:`PeopleError` with a message for the user and the form field it concerns.
The normalisers (:func:`normalise_email`, :func:`normalise_phone`,
:func:`coerce_field_value`) are shared with the CSV importer.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.people.models import Cohort, CustomField, Identifier, Person
from closedloop.registry.models import OrgUnit

PERSON_FIELDS = ("name", "org_unit", "language", "fields", "is_active")
UPDATABLE = {
    "name",
    "org_unit",
    "language",
    "emails",
    "phones",
    "external_ids",
    "cohorts",
    "fields",
    "is_active",
}
TRUE_WORDS = {"yes", "true", "1", "y"}
FALSE_WORDS = {"no", "false", "0", "n"}
PHONE_RE = re.compile(r"^\+\d{6,15}$")
PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

ExternalId = tuple[str, str]


class PeopleError(ValueError):
    """A change refused, with a message for the user and the field it concerns."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# --- normalising values -------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Lower-cased, trimmed, valid email address, or PeopleError."""
    email = (value or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise PeopleError(
            _("“%(value)s” is not a valid email address.") % {"value": value}, "emails"
        ) from None
    return email


def normalise_phone(value: str) -> str:
    """A phone URN ``tel:+<digits>``; accepts ``+250 788-123 456`` or ``tel:+250…``."""
    text = (value or "").strip()
    number = text[4:] if text.lower().startswith("tel:") else text
    number = PHONE_SEPARATORS.sub("", number)
    if not PHONE_RE.match(number):
        raise PeopleError(
            _(
                "“%(value)s” is not a valid phone number. Write it in international form, "
                "starting with + and the country code, e.g. +250788123456."
            )
            % {"value": value},
            "phones",
        )
    return "tel:" + number


def normalise_external_id(value: Any) -> ExternalId:
    """``(system, value)``; accepts a pair or a text ``system:value`` / ``value``."""
    if isinstance(value, (tuple, list)):
        system, ident = str(value[0] or ""), str(value[1] or "")
    else:
        text = str(value or "")
        system, sep, ident = text.partition(":")
        if not sep:
            system, ident = "", text
    system, ident = system.strip().lower(), ident.strip()
    if not ident:
        raise PeopleError(_("An external id cannot be empty."), "external_ids")
    if len(system) > 60 or len(ident) > 255:
        raise PeopleError(
            _("The external id “%(value)s” is too long.") % {"value": ident}, "external_ids"
        )
    return system, ident


def coerce_field_value(field: CustomField, raw: Any) -> Any:
    """The JSON value stored for ``raw`` in a custom field; None means "no value"."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if field.type == CustomField.Type.TEXT:
        return str(raw).strip()
    if field.type == CustomField.Type.NUMBER:
        return _coerce_number(field, raw)
    if field.type == CustomField.Type.DATE:
        return _coerce_date(field, raw)
    return _coerce_boolean(field, raw)


def _coerce_number(field: CustomField, raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise _bad_value(field, raw, _("a number"))
    try:
        number = float(str(raw).strip())
    except ValueError:
        raise _bad_value(field, raw, _("a number")) from None
    if not math.isfinite(number):
        raise _bad_value(field, raw, _("a number"))
    return int(number) if number.is_integer() else number


def _coerce_date(field: CustomField, raw: Any) -> str:
    if isinstance(raw, dt.date):
        return raw.isoformat()
    try:
        return dt.date.fromisoformat(str(raw).strip()).isoformat()
    except ValueError:
        raise _bad_value(field, raw, _("a date written YYYY-MM-DD")) from None


def _coerce_boolean(field: CustomField, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad_value(field, raw, _("yes or no"))


def _bad_value(field: CustomField, raw: Any, expected: str) -> PeopleError:
    return PeopleError(
        _("“%(value)s” is not valid for “%(label)s”: expected %(expected)s.")
        % {"value": raw, "label": field.label, "expected": expected},
        f"field:{field.key}",
    )


def clean_custom_fields(
    values: Mapping[str, Any] | None, definitions: Mapping[str, CustomField]
) -> dict[str, Any]:
    """Validate and coerce ``values`` against the account's custom fields."""
    cleaned: dict[str, Any] = {}
    for key, raw in (values or {}).items():
        definition = definitions.get(key)
        if definition is None:
            raise PeopleError(
                _("“%(key)s” is not a custom field of this account.") % {"key": key},
                f"field:{key}",
            )
        value = coerce_field_value(definition, raw)
        if value is not None:
            cleaned[key] = value
    return cleaned


def custom_field_definitions() -> dict[str, CustomField]:
    return {f.key: f for f in CustomField.objects.all()}


# --- identifiers --------------------------------------------------------------------


def _wanted_identifiers(
    emails: Iterable[str], phones: Iterable[str], external_ids: Iterable[Any]
) -> list[tuple[str, str, str]]:
    """(kind, system, value) triples, normalised and without repeats."""
    wanted: list[tuple[str, str, str]] = []
    for email in emails:
        if str(email).strip():
            wanted.append((Identifier.Kind.EMAIL, "", normalise_email(email)))
    for phone in phones:
        if str(phone).strip():
            wanted.append((Identifier.Kind.PHONE, "", normalise_phone(phone)))
    for external in external_ids:
        if external and (not isinstance(external, str) or external.strip()):
            system, value = normalise_external_id(external)
            wanted.append((Identifier.Kind.EXTERNAL, system, value))
    return list(dict.fromkeys(wanted))


KIND_FIELD: dict[str, str] = {
    Identifier.Kind.EMAIL: "emails",
    Identifier.Kind.PHONE: "phones",
    Identifier.Kind.EXTERNAL: "external_ids",
}


def _check_identifier_conflicts(
    wanted: Sequence[tuple[str, str, str]], person: Person | None
) -> None:
    for kind, system, value in wanted:
        qs = Identifier.objects.filter(kind=kind, system=system, value=value)
        if person is not None:
            qs = qs.exclude(person=person)
        taken = qs.select_related("person").first()
        if taken is not None:
            raise PeopleError(
                _("%(value)s already belongs to %(person)s.")
                % {"value": value, "person": taken.person.name},
                KIND_FIELD[kind],
            )


def _set_identifiers(person: Person, wanted: Sequence[tuple[str, str, str]]) -> None:
    current = {(i.kind, i.system, i.value): i.pk for i in person.identifiers.all()}
    stale = [pk for key, pk in current.items() if key not in wanted]
    if stale:
        Identifier.objects.filter(pk__in=stale).delete()
    Identifier.objects.bulk_create(
        [
            Identifier(account_id=person.account_id, person=person, kind=k, system=s, value=v)
            for k, s, v in wanted
            if (k, s, v) not in current
        ]
    )


def person_snapshot(person: Person) -> dict[str, Any]:
    """Audited values of a person, identifiers and cohorts included (sorted lists)."""
    values = snapshot(person, PERSON_FIELDS)
    identifiers = list(person.identifiers.all())
    values["emails"] = sorted(i.value for i in identifiers if i.kind == Identifier.Kind.EMAIL)
    values["phones"] = sorted(i.value for i in identifiers if i.kind == Identifier.Kind.PHONE)
    values["external_ids"] = sorted(
        f"{i.system}:{i.value}" if i.system else i.value
        for i in identifiers
        if i.kind == Identifier.Kind.EXTERNAL
    )
    values["cohorts"] = sorted(c.name for c in person.cohorts.all())
    return values


# --- people -------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise PeopleError(_("A person needs a name."), "name")
    if len(name) > 255:
        raise PeopleError(_("The name is longer than 255 characters."), "name")
    return name


def _clean_language(language: str) -> str:
    language = (language or "").strip()
    if len(language) > 10:
        raise PeopleError(
            _("“%(value)s” is not a language code (such as en, fr or ar).") % {"value": language},
            "language",
        )
    return language


def _check_org_unit(account: Any, org_unit: OrgUnit | None) -> None:
    if org_unit is not None and org_unit.account_id != getattr(account, "pk", account):
        raise PeopleError(_("Choose an org unit of this account."), "org_unit")


def _check_cohorts(account: Any, cohorts: Iterable[Cohort]) -> list[Cohort]:
    cohorts = list(cohorts)
    account_id = getattr(account, "pk", account)
    if any(c.account_id != account_id for c in cohorts):
        raise PeopleError(_("Choose cohorts of this account."), "cohorts")
    return cohorts


def person_create(
    *,
    account: Any,
    actor: Any,
    name: str,
    org_unit: OrgUnit | None = None,
    language: str = "",
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
    external_ids: Iterable[Any] = (),
    cohorts: Iterable[Cohort] = (),
    fields: Mapping[str, Any] | None = None,
    is_active: bool = True,
) -> Person:
    name = _clean_name(name)
    language = _clean_language(language)
    _check_org_unit(account, org_unit)
    cohort_list = _check_cohorts(account, cohorts)
    cleaned_fields = clean_custom_fields(fields, custom_field_definitions())
    wanted = _wanted_identifiers(emails, phones, external_ids)
    with transaction.atomic():
        _check_identifier_conflicts(wanted, None)
        person = Person.objects.create(
            account_id=getattr(account, "pk", account),
            name=name,
            org_unit=org_unit,
            language=language,
            fields=cleaned_fields,
            is_active=is_active,
        )
        _set_identifiers(person, wanted)
        person.cohorts.set(cohort_list)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=person,
            after=person_snapshot(person),
        )
    return person


def person_update(*, account: Any, actor: Any, person: Person, **changes: Any) -> Person:
    """Change the given attributes; lists (emails, phones, …) replace the current ones."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise TypeError(f"unknown person fields: {sorted(unknown)}")
    with transaction.atomic():
        before = person_snapshot(person)
        _apply_scalar_changes(account, person, changes)
        if {"emails", "phones", "external_ids"} & set(changes):
            wanted = _wanted_identifiers(
                changes.get("emails", before["emails"]),
                changes.get("phones", before["phones"]),
                changes.get("external_ids", before["external_ids"]),
            )
            _check_identifier_conflicts(wanted, person)
            _set_identifiers(person, wanted)
        if "cohorts" in changes:
            person.cohorts.set(_check_cohorts(account, changes["cohorts"]))
        person.save()
        person = Person.objects.prefetch_related("identifiers", "cohorts").get(pk=person.pk)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=person,
            before=before,
            after=person_snapshot(person),
        )
    return person


def _apply_scalar_changes(account: Any, person: Person, changes: Mapping[str, Any]) -> None:
    if "name" in changes:
        person.name = _clean_name(changes["name"])
    if "language" in changes:
        person.language = _clean_language(changes["language"])
    if "org_unit" in changes:
        _check_org_unit(account, changes["org_unit"])
        person.org_unit = changes["org_unit"]
    if "is_active" in changes:
        person.is_active = bool(changes["is_active"])
    if "fields" in changes:
        person.fields = clean_custom_fields(changes["fields"], custom_field_definitions())


def person_delete(*, account: Any, actor: Any, person: Person) -> None:
    with transaction.atomic():
        before = person_snapshot(person)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.DELETE,
            obj=person,
            before=before,
        )
        person.delete()


# --- cohorts and custom fields ------------------------------------------------------


def cohort_create(*, account: Any, actor: Any, name: str, description: str = "") -> Cohort:
    name = (name or "").strip()
    if not name:
        raise PeopleError(_("A cohort needs a name."), "name")
    if len(name) > 200:
        raise PeopleError(_("The name is longer than 200 characters."), "name")
    if Cohort.objects.filter(name__iexact=name).exists():
        raise PeopleError(_("A cohort named “%(name)s” already exists.") % {"name": name}, "name")
    with transaction.atomic():
        cohort = Cohort.objects.create(
            account_id=getattr(account, "pk", account),
            name=name,
            description=(description or "").strip(),
        )
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=cohort,
            after=snapshot(cohort, ("name", "description")),
        )
    return cohort


def custom_field_create(
    *, account: Any, actor: Any, key: str, label: str, type: str = CustomField.Type.TEXT
) -> CustomField:
    key = (key or "").strip().lower()
    label = (label or "").strip()
    if not KEY_RE.match(key):
        raise PeopleError(
            _(
                "A key starts with a letter and uses only lower-case letters, digits and "
                "underscores (at most 64), e.g. school_year."
            ),
            "key",
        )
    if not label:
        raise PeopleError(_("A custom field needs a label."), "label")
    if type not in CustomField.Type.values:
        raise PeopleError(_("Choose a type: text, number, date or yes/no."), "type")
    if CustomField.objects.filter(key=key).exists():
        raise PeopleError(
            _("A custom field with key “%(key)s” already exists.") % {"key": key}, "key"
        )
    with transaction.atomic():
        field = CustomField.objects.create(
            account_id=getattr(account, "pk", account), key=key, label=label, type=type
        )
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=field,
            after=snapshot(field, ("key", "label", "type")),
        )
    return field
