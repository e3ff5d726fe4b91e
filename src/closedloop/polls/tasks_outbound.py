"""Job kinds that write to RapidPro: start a poll, restart it, send a broadcast, push a contact.

Thin handlers: load by id (inside the job's account scope), call the outbound module.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from closedloop.jobs.runtime import JobContext, JobError, register_job
from closedloop.polls import outbound, outbound_contacts
from closedloop.polls.models import Broadcast, Contact, PollRun


def _pollrun(ctx: JobContext) -> PollRun:
    found = (
        PollRun.objects.select_related("poll__connection", "panel__org_unit")
        .filter(pk=ctx.params.get("pollrun_id"))
        .first()
    )
    if found is None:
        raise JobError(_("The poll run no longer exists."))
    return found


@register_job(outbound.KIND_START)
def start_poll_job(ctx: JobContext) -> dict[str, Any]:
    pollrun = _pollrun(ctx)
    return outbound.run_flow_starts(ctx, pollrun, outbound.pollrun_contacts(pollrun), restart=False)


@register_job(outbound.KIND_RESTART)
def restart_job(ctx: JobContext) -> dict[str, Any]:
    pollrun = _pollrun(ctx)
    if not outbound.can_restart(pollrun):
        raise JobError(_("A newer poll run was started for this panel; nothing was restarted."))
    return outbound.run_flow_starts(
        ctx, pollrun, outbound.incomplete_contacts(pollrun), restart=True
    )


@register_job(outbound.KIND_BROADCAST)
def broadcast_job(ctx: JobContext) -> dict[str, Any]:
    record = (
        Broadcast.objects.select_related("connection")
        .filter(pk=ctx.params.get("broadcast_id"))
        .first()
    )
    if record is None:
        raise JobError(_("The message no longer exists."))
    if record.status == Broadcast.Status.SENT:
        return {"broadcast": record.pk, "status": record.status}
    record = outbound.send_broadcast(record, ctx)
    if record.status == Broadcast.Status.FAILED:
        raise JobError(record.error)
    return {"broadcast": record.pk, "status": record.status, "uuids": record.rapidpro_uuids}


@register_job(outbound.KIND_PUSH)
def push_contact_job(ctx: JobContext) -> dict[str, Any]:
    contact = (
        Contact.objects.select_related("connection").filter(pk=ctx.params.get("contact_id")).first()
    )
    if contact is None:
        raise JobError(_("The contact no longer exists."))
    return outbound_contacts.run_push(ctx, contact, bool(ctx.params.get("delete")))
