"""Sync jobs of the polls module and the beat task that queues them.

- Job ``polls.sync`` (params ``connection_id``, optional ``steps`` and ``full``) runs
  :func:`closedloop.polls.sync.sync_connection` while holding the connection's lock, then
  records success or failure (with the persisted back-off) on the connection.
- Celery task ``closedloop.polls.sync_due`` (beat, every minute) queues one such job per
  due connection, taking each lock first so two beats never queue the same sync twice.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils.translation import gettext as _

from closedloop.jobs.runtime import JobCancelled, JobContext, JobError, register_job
from closedloop.polls import scheduler
from closedloop.polls.client import RapidProError, RateLimited
from closedloop.polls.models import Connection
from closedloop.polls.scheduler import SYNC_JOB

SYNC_DUE_TASK = "closedloop.polls.sync_due"


@register_job(SYNC_JOB)
def run_sync(ctx: JobContext) -> dict[str, Any]:
    from closedloop.polls.sync import ALL_STEPS, sync_connection

    connection = Connection.objects.filter(pk=ctx.params.get("connection_id")).first()
    if connection is None:
        raise JobError(_("This RapidPro connection no longer exists."))
    steps = ctx.params.get("steps") or list(ALL_STEPS)
    unknown = [s for s in steps if s not in ALL_STEPS]
    if unknown:
        raise JobError(
            _("Unknown sync steps: %(steps)s. Choose among: %(all)s.")
            % {"steps": ", ".join(map(str, unknown)), "all": ", ".join(ALL_STEPS)}
        )
    job = ctx.job
    if scheduler.holds_lock(connection, job):
        scheduler.extend_lock(connection, job)
    elif not scheduler.acquire_lock(connection, job):
        raise JobError(
            _("Another sync of “%(name)s” is running; this one did nothing.")
            % {"name": connection.name}
        )
    ctx.log(
        _("Syncing %(name)s (%(url)s).") % {"name": connection.name, "url": connection.host_url}
    )
    try:
        counts = sync_connection(
            connection,
            ctx,
            steps,
            full=bool(ctx.params.get("full")),
            on_step=lambda _step: scheduler.extend_lock(connection, job),
        )
    except JobCancelled:
        scheduler.release(connection, ok=False, count_failure=False)
        raise
    except RapidProError as exc:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else 0
        scheduler.release(connection, ok=False, error=str(exc), retry_after=retry_after)
        raise JobError(str(exc)) from None
    except Exception as exc:
        scheduler.release(connection, ok=False, error=f"{type(exc).__name__}: {exc}")
        raise
    scheduler.release(connection, ok=True, counts=counts)
    return counts


@shared_task(name=SYNC_DUE_TASK, ignore_result=True)
def sync_due() -> dict[str, Any]:
    """Queue a sync for every connection whose next sync is due (beat, every minute)."""
    return {"queued": scheduler.enqueue_due()}
