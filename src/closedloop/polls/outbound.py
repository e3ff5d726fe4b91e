"""Everything closedloop writes to RapidPro: poll starts, restarts, broadcasts and replies.

The request side (these service functions) writes the local rows first — the poll run, the
broadcast with its recipients — and enqueues a job; the job side (``run_*``, called by the
handlers in :mod:`closedloop.polls.tasks_outbound`) talks to RapidPro in batches of at most
100 contacts (the API's write limit), through the real ``TembaClient`` with 429 Retry-After
honoured by :func:`closedloop.polls.client.call`.

Runs of a start come back later with ``start.uuid``; the ingest maps them to the poll run
through the :class:`FlowStart` rows written here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from closedloop.accounts.models import Membership
from closedloop.jobs.models import Job
from closedloop.jobs.runtime import JobContext, JobError, enqueue_job
from closedloop.polls import selectors
from closedloop.polls.models import (
    Audience,
    Broadcast,
    Connection,
    Contact,
    ContactGroup,
    ContactStatus,
    FlowStart,
    GroupRole,
    Message,
    Poll,
    PollRun,
    PollRunType,
    Response,
    ResponseStatus,
)
from closedloop.registry.paths import upper_bound
from closedloop.registry.selectors import scope_paths, subtree_q

BATCH = 100
KIND_START = "polls.start_poll"
KIND_RESTART = "polls.restart"
KIND_BROADCAST = "polls.broadcast"
KIND_PUSH = "polls.push_contact"
STARTED_TYPES = (PollRunType.REGIONAL, PollRunType.PROPAGATED)


class OutboundError(ValueError):
    """An action refused, with a message for the user (and the form field it concerns)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# --- the RapidPro client (part of the module's client layer) ------------------------------


def rapidpro() -> Any:
    """The module's client layer (``client_for``, ``call``, ``batches``, ``RapidProError``)."""
    from closedloop.polls import client

    return client


def batches(items: Sequence[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def rapidpro_error_text(exc: BaseException) -> str:
    """A short, user-facing description of a failed RapidPro call."""
    text = str(exc) or type(exc).__name__
    return text[:500]


def _call(connection: Connection, method: str, *args: Any, **kwargs: Any) -> Any:
    layer = rapidpro()
    temba = layer.client_for(connection)
    return layer.call(getattr(temba, method), *args, **kwargs)


# --- small helpers ------------------------------------------------------------------------


def account_today(account: Any, now: dt.datetime | None = None) -> dt.date:
    now = now or timezone.now()
    try:
        zone = zoneinfo.ZoneInfo(getattr(account, "time_zone", "") or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return now.astimezone(zone).date()


def membership_for(user: Any, account_id: int) -> Membership | None:
    return (
        Membership.objects.filter(user=user, account_id=account_id, is_active=True)
        .select_related("account", "user")
        .first()
    )


def reachable(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """Contacts RapidPro can still message (not blocked, stopped, archived or deleted)."""
    return contacts.filter(is_active=True, status=ContactStatus.ACTIVE).exclude(
        uuid__startswith="new-"
    )


def panel_subtree_ids(panel: ContactGroup, propagate: bool) -> list[int]:
    """The panel itself, and with ``propagate`` every panel whose org unit lies below it."""
    if not propagate or panel.org_unit is None:
        return [panel.pk]
    path = panel.org_unit.path
    ids = list(
        ContactGroup.objects.filter(
            connection_id=panel.connection_id,
            role=GroupRole.PANEL,
            org_unit__path__gte=path,
            org_unit__path__lt=upper_bound(path),
        ).values_list("pk", flat=True)
    )
    return ids if panel.pk in ids else [panel.pk, *ids]


def pollrun_panel_ids(pollrun: PollRun) -> list[int]:
    if pollrun.panel is None:
        return []
    return panel_subtree_ids(pollrun.panel, pollrun.type == PollRunType.PROPAGATED)


def pollrun_contacts(pollrun: PollRun) -> QuerySet[Contact]:
    """The contacts a regional / propagated poll run was started for (its panels' contacts)."""
    return reachable(Contact.objects.filter(panel_id__in=pollrun_panel_ids(pollrun)))


# --- start a poll -------------------------------------------------------------------------


def start_poll(*, poll: Poll, panel: ContactGroup, propagate: bool, user: Any) -> Job:
    """A regional (or, with sub-panels, propagated) poll run and the job that starts it."""
    if panel.role != GroupRole.PANEL or panel.org_unit_id is None:
        raise OutboundError(_("Choose a panel linked to an org unit."), "panel")
    if panel.connection_id != poll.connection_id:
        raise OutboundError(_("This panel belongs to another RapidPro connection."), "panel")
    if not poll.is_active:
        raise OutboundError(_("This flow is not used as a poll."), "poll")
    now = timezone.now()
    with transaction.atomic():
        pollrun = PollRun.objects.create(
            account_id=poll.account_id,
            poll=poll,
            type=PollRunType.PROPAGATED if propagate else PollRunType.REGIONAL,
            conducted_on=now,
            local_date=account_today(poll.account, now),
            panel=panel,
            org_unit_id=panel.org_unit_id,
            created_by=user if getattr(user, "pk", None) else None,
        )
        job = enqueue_job(
            account=poll.account_id,
            kind=KIND_START,
            params={"pollrun_id": pollrun.pk},
            title=_("Start %(poll)s for %(panel)s") % {"poll": poll.display_name, "panel": panel},
            created_by=user,
        )
    return job


def newest_started_run(pollrun: PollRun) -> PollRun | None:
    return (
        PollRun.objects.filter(poll_id=pollrun.poll_id, panel_id=pollrun.panel_id)
        .filter(type__in=STARTED_TYPES)
        .order_by("-conducted_on", "-pk")
        .first()
    )


def can_restart(pollrun: PollRun) -> bool:
    if pollrun.type not in STARTED_TYPES or pollrun.panel_id is None:
        return False
    newest = newest_started_run(pollrun)
    return newest is not None and newest.pk == pollrun.pk


def restart(*, pollrun: PollRun, user: Any) -> Job:
    """Restart the contacts of the newest started run of a panel who did not complete it."""
    if pollrun.type not in STARTED_TYPES or pollrun.panel_id is None:
        raise OutboundError(_("Only poll runs started for a panel can be restarted."))
    if not can_restart(pollrun):
        raise OutboundError(
            _("Only the newest poll run of this panel can be restarted; start a new one instead.")
        )
    return enqueue_job(
        account=pollrun.account_id,
        kind=KIND_RESTART,
        params={"pollrun_id": pollrun.pk},
        title=_("Restart %(poll)s for incomplete contacts") % {"poll": pollrun.poll},
        created_by=user,
    )


def incomplete_contacts(pollrun: PollRun) -> QuerySet[Contact]:
    """Panel contacts whose active response is not complete, or who have none."""
    complete = Response.objects.filter(
        pollrun=pollrun, is_active=True, status=ResponseStatus.COMPLETE
    ).values("contact_id")
    return pollrun_contacts(pollrun).exclude(pk__in=complete)


def run_flow_starts(
    ctx: JobContext | None, pollrun: PollRun, contacts: QuerySet[Contact], *, restart: bool
) -> dict[str, Any]:
    """POST flow_starts in batches of ≤100; one FlowStart row per batch, saved as it goes."""
    uuids = list(contacts.order_by("pk").values_list("uuid", flat=True))
    connection = pollrun.poll.connection
    total = len(uuids)
    if ctx:
        ctx.progress(0, total, _("Starting %(count)s contacts") % {"count": total}, force=True)
    done, starts = 0, 0
    for batch in batches(uuids):
        if ctx:
            ctx.check_cancelled()
        try:
            start = _call(
                connection,
                "create_flow_start",
                flow=pollrun.poll.flow_uuid,
                contacts=batch,
                restart_participants=True,
            )
        except Exception as exc:
            raise JobError(
                _("RapidPro refused the start after %(done)s of %(total)s contacts: %(error)s")
                % {"done": done, "total": total, "error": rapidpro_error_text(exc)}
            ) from exc
        FlowStart.objects.create(
            account_id=pollrun.account_id,
            pollrun=pollrun,
            uuid=start.uuid,
            status=start.status or "",
            contact_count=len(batch),
            restart=restart,
            created_on=start.created_on or timezone.now(),
        )
        done += len(batch)
        starts += 1
        if ctx:
            ctx.progress(done, total, _("%(done)s of %(total)s contacts started") % locals())
    return {"pollrun": pollrun.pk, "contacts": total, "starts": starts}


# --- broadcasts ---------------------------------------------------------------------------


def audience_contacts(
    pollrun: PollRun, audience: str, membership: Membership | None
) -> QuerySet[Contact]:
    """Recipients of a poll-run message, limited to what ``membership`` may see."""
    active = Response.objects.filter(pollrun=pollrun, is_active=True)
    answered = active.exclude(status=ResponseStatus.EMPTY).values("contact_id")
    if audience == Audience.ALL:
        contacts = Contact.objects.filter(pk__in=active.values("contact_id"))
    elif audience == Audience.RESPONDENTS:
        contacts = Contact.objects.filter(pk__in=answered)
    elif audience == Audience.NON_RESPONDENTS:
        if pollrun.type in STARTED_TYPES and pollrun.panel_id is not None:
            contacts = pollrun_contacts(pollrun).exclude(pk__in=answered)
        else:
            contacts = Contact.objects.filter(
                pk__in=active.filter(status=ResponseStatus.EMPTY).values("contact_id")
            )
    else:
        raise OutboundError(_("Choose who receives the message."), "audience")
    contacts = reachable(contacts)
    if membership is not None:
        contacts = contacts.filter(pk__in=selectors.visible_contacts(membership).values("pk"))
    return contacts.order_by("name", "pk")


def _clean_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise OutboundError(_("Write the message first."), "text")
    if len(text) > 640:
        raise OutboundError(
            _("The message is %(count)s characters long; 640 is the most.") % {"count": len(text)},
            "text",
        )
    return text


def broadcast(
    *,
    connection: Connection,
    text: str,
    audience: str,
    user: Any,
    pollrun: PollRun | None = None,
    contacts: Iterable[Contact] | None = None,
    org_unit: Any = None,
    membership: Membership | None = None,
    run_now: bool = False,
) -> Broadcast:
    """Log a broadcast with its exact recipients and enqueue the job that sends it."""
    text = _clean_text(text)
    if membership is None and getattr(user, "pk", None):
        membership = membership_for(user, connection.account_id)
    if audience in (Audience.ALL, Audience.RESPONDENTS, Audience.NON_RESPONDENTS):
        if pollrun is None:
            raise OutboundError(_("Choose a poll run."), "pollrun")
        recipients = list(audience_contacts(pollrun, audience, membership))
    elif audience == Audience.PANEL:
        if org_unit is None:
            raise OutboundError(_("Choose a panel."), "org_unit")
        qs = reachable(Contact.objects.filter(connection=connection))
        qs = qs.filter(
            org_unit__path__gte=org_unit.path, org_unit__path__lt=upper_bound(org_unit.path)
        )
        if membership is not None:
            qs = qs.filter(pk__in=selectors.visible_contacts(membership).values("pk"))
        recipients = list(qs.order_by("name", "pk"))
    elif audience == Audience.CONTACT:
        recipients = [c for c in (contacts or []) if c.connection_id == connection.pk]
    else:
        raise OutboundError(_("Choose who receives the message."), "audience")
    if not recipients:
        raise OutboundError(_("Nobody matches this audience: no message was sent."), "audience")
    with transaction.atomic():
        record = Broadcast.objects.create(
            account_id=connection.account_id,
            connection=connection,
            sent_by=user if getattr(user, "pk", None) else None,
            text=text,
            audience=audience,
            pollrun=pollrun,
            org_unit=_broadcast_unit(org_unit, pollrun, recipients),
            recipient_count=len(recipients),
        )
        record.recipients.set(recipients)
        if not run_now:
            record.job = enqueue_job(
                account=connection.account_id,
                kind=KIND_BROADCAST,
                params={"broadcast_id": record.pk},
                title=_("Send a message to %(count)s contacts") % {"count": len(recipients)},
                created_by=user,
            )
            record.save(update_fields=["job"])
    return record


def _broadcast_unit(org_unit: Any, pollrun: PollRun | None, recipients: list[Contact]) -> Any:
    """The place a broadcast is logged under (supervisors see the log of their places)."""
    if org_unit is not None:
        return org_unit
    if pollrun is not None and pollrun.org_unit_id:
        return pollrun.org_unit
    if len(recipients) == 1:
        return recipients[0].org_unit
    return None


def send_broadcast(record: Broadcast, ctx: JobContext | None = None) -> Broadcast:
    """POST the broadcast in batches of ≤100 contacts; record uuids, status and errors."""
    uuids = list(record.recipients.order_by("pk").values_list("uuid", flat=True))
    total = len(uuids)
    # a retried job resumes after the batches RapidPro already accepted (one uuid each)
    sent_uuids: list[str] = list(record.rapidpro_uuids or [])
    sent = min(total, len(sent_uuids) * BATCH)
    error = ""
    if ctx:
        ctx.progress(sent, total, _("Sending to %(count)s contacts") % {"count": total}, force=True)
    for batch in list(batches(uuids))[len(sent_uuids) :]:
        try:
            result = _call(record.connection, "create_broadcast", record.text, contacts=batch)
        except Exception as exc:
            error = rapidpro_error_text(exc)
            break
        sent_uuids.append(str(result.uuid or getattr(result, "id", "") or ""))
        sent += len(batch)
        if ctx:
            ctx.progress(sent, total)
    record.rapidpro_uuids = sent_uuids
    if error:
        record.status = Broadcast.Status.FAILED
        record.error = (
            _("Sent to %(sent)s of %(total)s contacts, then RapidPro failed: %(error)s")
            % {"sent": sent, "total": total, "error": error}
            if sent
            else error
        )
    else:
        record.status = Broadcast.Status.SENT
        record.error = ""
        if ctx:
            done = ngettext("Sent to %(count)s contact.", "Sent to %(count)s contacts.", total)
            ctx.progress(sent, total, done % {"count": total}, force=True)
    record.save(update_fields=["rapidpro_uuids", "status", "error"])
    return record


def reply(*, contact: Contact, text: str, user: Any) -> Broadcast:
    """Send one contact a message now, then fetch their latest messages into the inbox."""
    record = broadcast(
        connection=contact.connection,
        text=text,
        audience=Audience.CONTACT,
        contacts=[contact],
        user=user,
        run_now=True,
    )
    send_broadcast(record)
    if record.status == Broadcast.Status.SENT:
        # the message went out; if the fetch fails the inbox catches up at the next sync
        with contextlib.suppress(Exception):
            refresh_contact_messages(contact)
    return record


# --- fetching messages now ----------------------------------------------------------------


def _ref_uuid(ref: Any) -> str:
    if ref is None:
        return ""
    if isinstance(ref, dict):
        return str(ref.get("uuid") or "")
    return str(getattr(ref, "uuid", "") or "")


def store_messages(connection: Connection, items: Iterable[Any]) -> int:
    """Upsert RapidPro messages (TembaClient objects) keyed by uuid; unknown contacts kept null."""
    rows = [m for m in items if getattr(m, "uuid", None) or getattr(m, "id", None)]
    if not rows:
        return 0
    by_uuid = {_ref_uuid(m.contact) for m in rows} - {""}
    contacts = dict(
        Contact.objects.filter(connection=connection, uuid__in=by_uuid).values_list("uuid", "pk")
    )
    keys = [str(m.uuid or m.id) for m in rows]
    existing = set(
        Message.objects.filter(connection=connection, uuid__in=keys).values_list("uuid", flat=True)
    )
    new = []
    for message, key in zip(rows, keys, strict=True):
        values = {
            "contact_id": contacts.get(_ref_uuid(message.contact)),
            "urn": message.urn or "",
            "direction": "in" if message.direction in ("in", "I") else "out",
            "type": message.type or "",
            "status": message.status or "",
            "text": message.text or "",
            "flow_uuid": _ref_uuid(getattr(message, "flow", None)),
            "created_on": message.created_on or timezone.now(),
            "sent_on": message.sent_on,
            "modified_on": getattr(message, "modified_on", None),
        }
        if key in existing:
            Message.objects.filter(connection=connection, uuid=key).update(**values)
        else:
            new.append(
                Message(account_id=connection.account_id, connection=connection, uuid=key, **values)
            )
    Message.objects.bulk_create(new, ignore_conflicts=True)
    return len(rows)


def refresh_contact_messages(contact: Contact, days: int = 7) -> int:
    """Fetch this contact's recent messages (both directions) from RapidPro now."""
    connection = contact.connection
    layer = rapidpro()
    temba = layer.client_for(connection)
    from temba_client.v2.types import Message as TembaMessage

    after = timezone.now() - dt.timedelta(days=days)
    params = temba._build_params(contact=contact.uuid, after=after)
    query = temba._get_query("messages", params, TembaMessage)
    page = layer.call(query.all, retry_on_rate_exceed=False)
    mine = [m for m in page if _ref_uuid(m.contact) == contact.uuid]
    return store_messages(connection, mine)


def refresh_messages(connection: Connection) -> dict[str, Any]:
    """Fetch the inbox now (the sync's message step)."""
    from closedloop.polls import sync

    return dict(sync.sync_messages(connection) or {})


def visible_broadcasts(membership: Membership) -> QuerySet[Broadcast]:
    """The message log. Supervisors see what was sent to places in their scope, and their own."""
    qs = Broadcast.objects.select_related("sent_by", "pollrun__poll", "org_unit")
    paths = scope_paths(membership)
    if paths is None:
        return qs
    return qs.filter(subtree_q(paths, "org_unit__") | Q(sent_by=membership.user))


def push_contact(*, contact: Contact, user: Any, delete: bool = False) -> Job:
    """Enqueue the job that creates, updates or deletes ``contact`` in RapidPro."""
    from closedloop.polls import outbound_contacts

    return outbound_contacts.push_contact(contact=contact, user=user, delete=delete)
