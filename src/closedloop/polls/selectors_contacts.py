"""Reads behind the contacts, participation and inbox pages (scoped to the member).

Each page costs a fixed number of queries whatever its size: the participation icons of a
page of contacts are ONE query over (contacts of the page × poll runs shown), the inbox is
one aggregate per page plus one query for the page's latest messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from closedloop.accounts.models import Membership
from closedloop.people.models import Identifier
from closedloop.polls import selectors
from closedloop.polls.models import (
    Answer,
    Contact,
    ContactGroup,
    DataField,
    GroupRole,
    Message,
    PollRun,
    Response,
)
from closedloop.registry.selectors import scope_paths, subtree_q

#: org unit columns no contact list reads (loaded lazily if a page ever does)
HEAVY_UNIT_FIELDS = ("geometry", "simplified_geometry", "aliases", "extra")


def search_contacts(
    membership: Membership,
    q: str = "",
    panel: ContactGroup | None = None,
    cohort: ContactGroup | None = None,
    include_sub: bool = True,
) -> QuerySet[Contact]:
    """Active contacts the member may see, by name or URN, in a panel and/or a cohort."""
    contacts = selectors.visible_contacts(membership).filter(is_active=True)
    q = q.strip()
    if q:
        by_identifier = Identifier.objects.filter(
            person_id=OuterRef("person_id"), value__icontains=q
        )
        contacts = contacts.filter(Q(name__icontains=q) | Q(Exists(by_identifier)))
    if panel is not None:
        units = selectors.panel_unit_ids(membership, panel, include_sub)
        contacts = contacts.filter(org_unit_id__in=units or [])
    if cohort is not None and cohort.cohort_id is not None:
        contacts = contacts.filter(person__cohorts=cohort.cohort_id)
    # the org unit's shapes can weigh megabytes each and no list shows them
    return (
        contacts.select_related("panel", "org_unit")
        .defer(*(f"org_unit__{name}" for name in HEAVY_UNIT_FIELDS))
        .order_by("name", "pk")
    )


def cohort_groups() -> QuerySet[ContactGroup]:
    return ContactGroup.objects.filter(role=GroupRole.COHORT).order_by("name")


def get_cohort_group(pk: Any) -> ContactGroup | None:
    try:
        return cohort_groups().filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def latest_pollruns(
    membership: Membership, count: int = 3, poll_id: int | None = None
) -> list[PollRun]:
    runs = selectors.visible_pollruns(membership).select_related("poll", "panel")
    if poll_id is not None:
        runs = runs.filter(poll_id=poll_id)
    return list(runs.order_by("-conducted_on", "-pk")[:count])


def participation_statuses(
    contact_ids: list[int], pollrun_ids: list[int]
) -> dict[tuple[int, int], str]:
    """``{(contact id, poll run id): "C" | "P" | "E"}`` of active responses — one query."""
    if not contact_ids or not pollrun_ids:
        return {}
    rows = Response.objects.filter(
        is_active=True, contact_id__in=contact_ids, pollrun_id__in=pollrun_ids
    ).values_list("contact_id", "pollrun_id", "status")
    return {(c, r): s for c, r, s in rows}


@dataclass(frozen=True)
class Cell:
    pollrun: PollRun
    status: str  # "C" | "P" | "E" | "" (no response)


def participation_rows(
    contacts: list[Contact], pollruns: list[PollRun]
) -> list[tuple[Contact, list[Cell]]]:
    statuses = participation_statuses([c.pk for c in contacts], [r.pk for r in pollruns])
    return [
        (contact, [Cell(run, statuses.get((contact.pk, run.pk), "")) for run in pollruns])
        for contact in contacts
    ]


def visible_fields(account: Any, connection_id: int | None = None) -> list[DataField]:
    """The RapidPro fields shown and editable on contact pages (setup's choice)."""
    keys = set(selectors.polls_settings(account).visible_fields or [])
    fields = DataField.objects.filter(Q(is_visible=True) | Q(key__in=keys))
    if connection_id is not None:
        fields = fields.filter(connection_id=connection_id)
    seen: dict[str, DataField] = {}
    for field in fields.order_by("label", "pk"):
        seen.setdefault(field.key, field)
    return list(seen.values())


def contact_history(membership: Membership, contact: Contact, limit: int = 50) -> dict[str, Any]:
    """Responses (with answers, newest first) and recent messages of one contact."""
    runs = selectors.visible_pollruns(membership).values("pk")
    answers = Answer.objects.select_related("question").order_by("question__order", "pk")
    responses = list(
        Response.objects.filter(contact=contact, pollrun__in=runs)
        .select_related("pollrun__poll")
        .prefetch_related(Prefetch("answers", queryset=answers))
        .order_by("-created_on", "-pk")[:limit]
    )
    messages = list(Message.objects.filter(contact=contact).order_by("-created_on", "-pk")[:limit])
    return {"responses": responses, "contact_messages": messages}


def inbox_entries(membership: Membership, q: str = "") -> QuerySet[Any]:
    """``{"contact_id", "last_at"}`` per contact with messages in the inbox window (the
    account's ``inbox_days``), the most recent conversation first: one GROUP BY, without
    loading contacts."""
    days = selectors.polls_settings(membership.account_id).inbox_days or 30
    since = timezone.now() - dt.timedelta(days=days)
    messages = Message.objects.filter(contact_id__isnull=False, created_on__gte=since)
    paths = scope_paths(membership)
    if paths is not None:
        messages = messages.filter(subtree_q(paths, "contact__org_unit__"))
    if q.strip():
        messages = messages.filter(contact__name__icontains=q.strip())
    return (
        messages.values("contact_id")
        .annotate(last_at=Max("created_on"))
        .order_by("-last_at", "-contact_id")
    )


def inbox_contacts(entries: list[dict[str, Any]]) -> list[Contact]:
    """The contacts of one page of :func:`inbox_entries`, in order, with ``last_at`` set."""
    ids = [e["contact_id"] for e in entries]
    found = Contact.objects.select_related("panel").in_bulk(ids)
    contacts = []
    for entry in entries:
        contact = found.get(entry["contact_id"])
        if contact is not None:
            contact.last_at = entry["last_at"]  # type: ignore[attr-defined]
            contacts.append(contact)
    return contacts


def latest_messages(contact_ids: list[int]) -> dict[int, Message]:
    """The newest message of each contact — one query."""
    if not contact_ids:
        return {}
    newest = (
        Message.objects.filter(contact_id__in=contact_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("contact_id")],
                order_by=[F("created_on").desc(), F("pk").desc()],
            )
        )
        .filter(rank=1)
    )
    return {m.contact_id: m for m in newest if m.contact_id is not None}


def conversation(contact: Contact, limit: int = 200) -> list[Message]:
    """A contact's messages, oldest first (the latest ``limit``)."""
    newest = list(Message.objects.filter(contact=contact).order_by("-created_on", "-pk")[:limit])
    return newest[::-1]
