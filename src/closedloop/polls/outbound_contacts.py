"""Contacts edited in closedloop: local rows first (Person + Contact), then a push to RapidPro.

A contact created here has no RapidPro uuid yet: it carries a local placeholder starting
with ``new-`` until the push job stores the uuid RapidPro returns. Every push sends ALL the
contact's group uuids — its panel, its cohorts and the untracked groups it was already in —
so RapidPro memberships closedloop does not manage are never lost. A failed push keeps
``push_pending`` and ``push_error`` on the contact, shown on its page.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.jobs.models import Job
from closedloop.jobs.runtime import JobContext, JobError, enqueue_job
from closedloop.people import services as people_services
from closedloop.people.models import CustomField, Identifier, Person
from closedloop.polls.models import (
    Connection,
    Contact,
    ContactGroup,
    ContactStatus,
    DataField,
    GroupRole,
)
from closedloop.polls.outbound import KIND_PUSH, OutboundError, _call, rapidpro_error_text

LOCAL_PREFIX = "new-"
RAPIDPRO_SYSTEM = "rapidpro"


def is_local_only(contact: Contact) -> bool:
    return contact.uuid.startswith(LOCAL_PREFIX)


def _local_uuid() -> str:
    return LOCAL_PREFIX + uuidlib.uuid4().hex


def _clean_phones(phones: Iterable[str]) -> list[str]:
    urns = []
    for phone in phones:
        if str(phone).strip():
            try:
                urns.append(people_services.normalise_phone(phone))
            except people_services.PeopleError as exc:
                raise OutboundError(exc.message, "phones") from None
    return list(dict.fromkeys(urns))


def _clean_language(language: str) -> str:
    language = (language or "").strip().lower()
    if language and (len(language) != 3 or not language.isalpha()):
        raise OutboundError(
            _("“%(value)s” is not a three-letter language code (such as eng, fra or ara).")
            % {"value": language},
            "language",
        )
    return language


def _group_uuids(
    connection: Connection, current: list[str], panel: ContactGroup, cohorts: list[ContactGroup]
) -> list[str]:
    """Untracked groups kept; tracked panel/cohort groups replaced by the chosen ones."""
    tracked = set(
        ContactGroup.objects.filter(
            connection=connection, role__in=[GroupRole.PANEL, GroupRole.COHORT]
        ).values_list("uuid", flat=True)
    )
    kept = [u for u in current if u not in tracked]
    return list(dict.fromkeys([*kept, panel.uuid, *(g.uuid for g in cohorts)]))


def _person_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    known = set(CustomField.objects.values_list("key", flat=True))
    return {k: v for k, v in fields.items() if k in known and v not in (None, "")}


def _check_urns_free(connection: Connection, urns: list[str], contact: Contact | None) -> None:
    """A phone number belongs to one RapidPro contact of a workspace."""
    for urn in urns:
        others = Contact.objects.filter(connection=connection, urns__icontains=urn, is_active=True)
        if contact is not None:
            others = others.exclude(pk=contact.pk)
        owner = next((c for c in others if urn in c.urns), None)
        if owner is not None:
            raise OutboundError(
                _("%(value)s already belongs to %(name)s.") % {"value": urn[4:], "name": owner},
                "phones",
            )


def _check(panel: ContactGroup, cohorts: list[ContactGroup], connection: Connection) -> None:
    if panel.role != GroupRole.PANEL or panel.connection_id != connection.pk:
        raise OutboundError(_("Choose one of the panels."), "panel")
    if any(g.role != GroupRole.COHORT or g.connection_id != connection.pk for g in cohorts):
        raise OutboundError(_("Choose cohorts of this connection."), "cohorts")


def _validated(
    connection: Connection,
    panel: ContactGroup,
    cohorts: list[ContactGroup],
    phones: Iterable[str],
    language: str,
    contact: Contact | None,
) -> tuple[list[str], str]:
    """Checks shared by create and update: panel and cohorts, phone URNs (at least one,
    not used by another contact), language. Returns the URNs and the language."""
    _check(panel, cohorts, connection)
    urns = _clean_phones(phones)
    if not urns:
        raise OutboundError(_("RapidPro needs at least one phone number."), "phones")
    _check_urns_free(connection, urns, contact)
    return urns, _clean_language(language)


def contact_create(
    *,
    actor: Any,
    panel: ContactGroup,
    name: str,
    phones: Iterable[str],
    cohorts: Iterable[ContactGroup] = (),
    language: str = "",
    fields: Mapping[str, Any] | None = None,
) -> Contact:
    """A Person and a Contact, saved locally, then pushed to RapidPro by a job."""
    connection = panel.connection
    cohorts = list(cohorts)
    urns, language = _validated(connection, panel, cohorts, phones, language, None)
    fields = {k: v for k, v in (fields or {}).items() if v not in (None, "")}
    with transaction.atomic():
        try:
            person = people_services.person_create(
                account=connection.account,
                actor=actor,
                name=name,
                org_unit=panel.org_unit,
                language=language,
                phones=urns,
                cohorts=[g.cohort for g in cohorts if g.cohort is not None],
                fields=_person_fields(fields),
            )
        except people_services.PeopleError as exc:
            raise OutboundError(exc.message, exc.field) from None
        contact = Contact.objects.create(
            account_id=connection.account_id,
            connection=connection,
            person=person,
            uuid=_local_uuid(),
            name=person.name,
            language=language,
            urns=urns,
            group_uuids=_group_uuids(connection, [], panel, cohorts),
            panel=panel,
            org_unit_id=panel.org_unit_id,
            fields=fields,
            push_pending=True,
        )
        push_contact(contact=contact, user=actor)
    return contact


def contact_update(
    *,
    actor: Any,
    contact: Contact,
    panel: ContactGroup,
    name: str,
    phones: Iterable[str],
    cohorts: Iterable[ContactGroup] = (),
    language: str = "",
    fields: Mapping[str, Any] | None = None,
) -> Contact:
    """Change the contact (and its person) locally, then push the change to RapidPro."""
    connection = contact.connection
    cohorts = list(cohorts)
    tel, language = _validated(connection, panel, cohorts, phones, language, contact)
    other_urns = [u for u in contact.urns if not str(u).startswith("tel:")]
    merged_fields = {**(contact.fields or {}), **dict(fields or {})}
    merged_fields = {k: v for k, v in merged_fields.items() if v not in (None, "")}
    with transaction.atomic():
        person = contact.person
        try:
            people_services.person_update(
                account=connection.account,
                actor=actor,
                person=person,
                name=name,
                org_unit=panel.org_unit,
                language=language,
                phones=tel,
                cohorts=[g.cohort for g in cohorts if g.cohort is not None],
                fields={**(person.fields or {}), **_person_fields(merged_fields)},
            )
        except people_services.PeopleError as exc:
            raise OutboundError(exc.message, exc.field) from None
        contact.name = name.strip()
        contact.language = language
        contact.urns = [*tel, *other_urns]
        contact.group_uuids = _group_uuids(connection, list(contact.group_uuids), panel, cohorts)
        contact.panel = panel
        contact.org_unit_id = panel.org_unit_id
        contact.fields = merged_fields
        contact.push_pending = True
        contact.save()
        push_contact(contact=contact, user=actor)
    return contact


def contact_delete(*, actor: Any, contact: Contact) -> Job:
    """Hide the contact now (history kept) and delete it in RapidPro by a job."""
    with transaction.atomic():
        contact.is_active = False
        contact.status = ContactStatus.DELETED
        contact.push_pending = True
        contact.save(update_fields=["is_active", "status", "push_pending", "updated_at"])
        Person.objects.filter(pk=contact.person_id).update(is_active=False)
        return push_contact(contact=contact, user=actor, delete=True)


def push_contact(*, contact: Contact, user: Any, delete: bool = False) -> Job:
    """Enqueue the job that creates, updates or deletes the contact in RapidPro."""
    if not contact.push_pending:
        Contact.objects.filter(pk=contact.pk).update(push_pending=True)
        contact.push_pending = True
    verb = _("Delete") if delete else _("Update")
    return enqueue_job(
        account=contact.account_id,
        kind=KIND_PUSH,
        params={"contact_id": contact.pk, "delete": bool(delete)},
        title=_("%(verb)s contact %(name)s in RapidPro") % {"verb": verb, "name": contact.name},
        created_by=user,
    )


def _payload(contact: Contact) -> dict[str, Any]:
    visible = set(
        DataField.objects.filter(connection_id=contact.connection_id).values_list("key", flat=True)
    )
    fields = {k: v for k, v in (contact.fields or {}).items() if not visible or k in visible}
    return {
        "name": contact.name,
        "language": contact.language or None,
        "urns": list(contact.urns),
        "groups": list(contact.group_uuids),
        "fields": fields or None,
    }


def run_push(ctx: JobContext | None, contact: Contact, delete: bool) -> dict[str, Any]:
    """Create, update or delete ``contact`` in RapidPro; failures stay visible on the contact."""
    connection = contact.connection
    try:
        if delete:
            if not is_local_only(contact):
                _call(connection, "delete_contact", contact.uuid)
            result: dict[str, Any] = {"deleted": contact.uuid}
        elif is_local_only(contact):
            created = _call(connection, "create_contact", **_payload(contact))
            _store_uuid(contact, created)
            result = {"created": contact.uuid}
        else:
            updated = _call(connection, "update_contact", contact.uuid, **_payload(contact))
            contact.modified_on = updated.modified_on or timezone.now()
            result = {"updated": contact.uuid}
    except Exception as exc:
        error = rapidpro_error_text(exc)
        Contact.objects.filter(pk=contact.pk).update(push_pending=True, push_error=error)
        raise JobError(_("RapidPro refused the change: %(error)s") % {"error": error}) from exc
    contact.push_pending = False
    contact.push_error = ""
    contact.save(update_fields=["uuid", "push_pending", "push_error", "modified_on"])
    if ctx:
        ctx.progress(1, 1, _("Saved in RapidPro."), force=True)
    return result


def _store_uuid(contact: Contact, created: Any) -> None:
    contact.uuid = str(created.uuid)
    contact.modified_on = getattr(created, "modified_on", None) or timezone.now()
    Identifier.objects.get_or_create(
        account_id=contact.account_id,
        kind=Identifier.Kind.EXTERNAL,
        system=RAPIDPRO_SYSTEM,
        value=contact.uuid,
        defaults={"person_id": contact.person_id},
    )
