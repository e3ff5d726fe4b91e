"""Sync of RapidPro's message log (inbox and sent messages) within the inbox window."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.polls.client import Pages, client_for
from closedloop.polls.models import Connection, Contact, Message
from closedloop.polls.selectors import polls_settings
from closedloop.polls.sync_common import assign, log


def sync_messages(connection: Connection, ctx: Any = None) -> dict[str, int]:
    """Messages (incoming and outgoing) created within the account's inbox window.

    Incremental from ``connection.messages_after`` (the newest ``created_on`` stored);
    keyed by uuid. A message of a contact closedloop does not sync keeps ``contact`` null.
    """
    client = client_for(connection)
    days = polls_settings(connection.account_id).inbox_days or 30
    window_start = timezone.now() - dt.timedelta(days=days)
    after = connection.messages_after
    if after is None or after < window_start:
        after = window_start
    newest = connection.messages_after
    total = created = updated = 0
    pages = Pages(client.get_messages(after=after))
    for page in pages:
        items = [m for m in page if m.uuid and getattr(m, "visibility", None) != "deleted"]
        page_created, page_updated = _store_messages(connection, items)
        created += page_created
        updated += page_updated
        total += len(items)
        for item in items:
            if item.created_on and (newest is None or item.created_on > newest):
                newest = item.created_on
        if ctx is not None:
            ctx.progress(total, None, _("Messages: %(n)s read.") % {"n": total})
    if newest != connection.messages_after:
        connection.messages_after = newest
        Connection.objects.filter(pk=connection.pk).update(messages_after=newest)
    log(ctx, _("Messages: %(n)s read, %(new)s new.") % {"n": total, "new": created})
    return {"messages": total, "messages_created": created, "messages_updated": updated}


def _store_messages(connection: Connection, items: list[Any]) -> tuple[int, int]:
    if not items:
        return 0, 0
    uuids = [str(m.uuid) for m in items]
    contact_uuids = {m.contact.uuid for m in items if m.contact and m.contact.uuid}
    with transaction.atomic():
        existing = {
            m.uuid: m for m in Message.objects.filter(connection=connection, uuid__in=uuids)
        }
        contacts = dict(
            Contact.objects.filter(connection=connection, uuid__in=contact_uuids).values_list(
                "uuid", "pk"
            )
        )
        created, updated = [], []
        seen: set[str] = set()
        for item in items:
            uuid = str(item.uuid)[:36]
            if uuid in seen:
                continue
            seen.add(uuid)
            contact_uuid = item.contact.uuid if item.contact else None
            values = {
                "contact_id": contacts.get(contact_uuid),
                "urn": str(item.urn or "")[:255],
                "direction": "in" if item.direction == "in" else "out",
                "type": str(item.type or "")[:20],
                "status": str(item.status or "")[:20],
                "text": _message_text(item.text),
                "flow_uuid": str(item.flow.uuid if item.flow and item.flow.uuid else "")[:36],
                "is_archived": getattr(item, "visibility", None) == "archived",
                "created_on": item.created_on or item.modified_on or timezone.now(),
                "sent_on": item.sent_on,
                "modified_on": item.modified_on,
            }
            row = existing.get(uuid)
            if row is None:
                created.append(
                    Message(
                        account_id=connection.account_id,
                        connection=connection,
                        uuid=uuid,
                        **values,
                    )
                )
            elif assign(row, values):
                updated.append(row)
        Message.objects.bulk_create(created)
        Message.objects.bulk_update(
            updated,
            [
                "contact_id",
                "urn",
                "direction",
                "type",
                "status",
                "text",
                "flow_uuid",
                "is_archived",
                "created_on",
                "sent_on",
                "modified_on",
            ],
        )
    return len(created), len(updated)


def _message_text(text: Any) -> str:
    """Message text; a translation map ({lang: text}) gives its first text."""
    if isinstance(text, dict):
        return str(next(iter(text.values()), "") or "")
    return "" if text is None else str(text)
