"""API: RapidPro messages (log and inbox), broadcasts sent from closedloop, sending and replying.

Everything is scoped like the pages: a supervisor reads and messages only the contacts of
his panels; viewers read but cannot send (403).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, field_error, forbidden
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.polls import outbound, selectors
from closedloop.polls import selectors_contacts as reads
from closedloop.polls.models import Audience, Broadcast, Message

router = Router(tags=["polls"])


class ContactRef(Schema):
    id: int
    name: str
    uuid: str


class MessageOut(Schema):
    id: int
    uuid: str
    contact: ContactRef | None
    urn: str
    direction: str
    status: str
    text: str
    created_on: dt.datetime
    sent_on: dt.datetime | None


class InboxItemOut(Schema):
    contact: ContactRef
    last_at: dt.datetime
    message: MessageOut | None


class BroadcastOut(Schema):
    id: int
    text: str
    audience: str
    pollrun: int | None
    recipient_count: int
    status: str
    rapidpro_uuids: list[str]
    error: str
    sent_by: str | None
    job: int | None
    created_at: dt.datetime


class BroadcastIn(Schema):
    text: str = Field(..., max_length=640)
    audience: str = Field(
        ...,
        description="all, respondents or non_respondents (of ``pollrun``), or contact "
        "(the ``contacts`` ids).",
    )
    pollrun: int | None = None
    contacts: list[int] = []


class ReplyIn(Schema):
    text: str = Field(..., max_length=640)


class MessageFilters(Schema):
    contact: int | None = Field(None, description="Messages of this contact id.")
    direction: str | None = Field(None, description="in or out.")


def _contact(contact: Any) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {"id": contact.pk, "name": contact.name, "uuid": contact.uuid}


def _message(message: Message, contact: Any = None) -> dict[str, Any]:
    return {
        "id": message.pk,
        "uuid": message.uuid,
        "contact": _contact(contact or message.contact),
        "urn": message.urn,
        "direction": message.direction,
        "status": message.status,
        "text": message.text,
        "created_on": message.created_on,
        "sent_on": message.sent_on,
    }


def _broadcast(record: Broadcast) -> dict[str, Any]:
    user = record.sent_by
    return {
        "id": record.pk,
        "text": record.text,
        "audience": record.audience,
        "pollrun": record.pollrun_id,
        "recipient_count": record.recipient_count,
        "status": record.status,
        "rapidpro_uuids": [str(u) for u in record.rapidpro_uuids or []],
        "error": record.error,
        "sent_by": (getattr(user, "email", None) if user else None),
        "job": record.job_id,
        "created_at": record.created_at,
    }


def _acting(request: HttpRequest) -> Membership:
    membership = membership_of(request)
    if not selectors.can_act(membership):
        raise forbidden(_("Your role can read messages but not send them."))
    return membership


@router.get(
    "/polls/messages", response={200: Page[MessageOut], **ERRORS}, summary="RapidPro messages"
)
def list_messages(
    request: HttpRequest, filters: Query[MessageFilters], page: Query[PageParams]
) -> dict[str, Any]:
    membership = membership_of(request)
    visible = selectors.visible_contacts(membership).values("pk")
    qs = Message.objects.filter(contact__in=visible).select_related("contact")
    if filters.contact is not None:
        qs = qs.filter(contact=selectors.get_contact(membership, filters.contact))
    if filters.direction:
        if filters.direction not in ("in", "out"):
            raise field_error("direction", _("Use in or out."))
        qs = qs.filter(direction=filters.direction)
    return paginate(qs.order_by("-created_on", "-pk"), page, _message)


@router.get(
    "/polls/inbox",
    response={200: Page[InboxItemOut], **ERRORS},
    summary="Latest message per contact",
)
def list_inbox(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership = membership_of(request)
    result = paginate(reads.inbox_entries(membership), page)
    contacts = reads.inbox_contacts(result["items"])
    latest = reads.latest_messages([c.pk for c in contacts])
    result["items"] = [
        {
            "contact": _contact(c),
            "last_at": getattr(c, "last_at", None),
            "message": _message(latest[c.pk], c) if c.pk in latest else None,
        }
        for c in contacts
    ]
    return result


@router.get(
    "/polls/broadcasts",
    response={200: Page[BroadcastOut], **ERRORS},
    summary="Messages sent from closedloop",
)
def list_broadcasts(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership = membership_of(request)
    return paginate(outbound.visible_broadcasts(membership), page, _broadcast)


@router.post(
    "/polls/broadcasts",
    response={201: BroadcastOut, **WRITE_ERRORS},
    summary="Send a message to a poll run's participants or to contacts",
)
def send_broadcast(request: HttpRequest, payload: BroadcastIn) -> Status[dict[str, Any]]:
    membership = _acting(request)
    if payload.audience not in (a.value for a in Audience) or payload.audience == Audience.PANEL:
        raise field_error("audience", _("Use all, respondents, non_respondents or contact."))
    pollrun = None
    contacts: list[Any] = []
    if payload.audience == Audience.CONTACT:
        if not payload.contacts:
            raise field_error("contacts", _("Give the ids of the contacts to message."))
        contacts = [selectors.get_contact(membership, pk) for pk in payload.contacts[:1000]]
        connection = contacts[0].connection
    else:
        if payload.pollrun is None:
            raise field_error("pollrun", _("Give the poll run whose participants to message."))
        pollrun = selectors.get_pollrun(membership, payload.pollrun)
        connection = pollrun.poll.connection
    try:
        record = outbound.broadcast(
            connection=connection,
            text=payload.text,
            audience=payload.audience,
            pollrun=pollrun,
            contacts=contacts,
            user=membership.user,
            membership=membership,
        )
    except outbound.OutboundError as exc:
        raise field_error(exc.field or "text", exc.message) from None
    return Status(201, _broadcast(Broadcast.objects.get(pk=record.pk)))


@router.post(
    "/polls/contacts/{contact_id}/reply",
    response={201: BroadcastOut, **WRITE_ERRORS},
    summary="Reply to one contact now",
)
def reply(request: HttpRequest, contact_id: int, payload: ReplyIn) -> Status[dict[str, Any]]:
    membership = _acting(request)
    contact = selectors.get_contact(membership, contact_id)
    if not contact.is_active:
        raise ApiError(409, _("This contact was deleted; it cannot be messaged."))
    try:
        record = outbound.reply(contact=contact, text=payload.text, user=membership.user)
    except outbound.OutboundError as exc:
        raise field_error(exc.field or "text", exc.message) from None
    return Status(201, _broadcast(record))
