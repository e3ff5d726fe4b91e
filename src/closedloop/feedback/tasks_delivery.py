"""Delivery tasks: the action-run job handler, the outbox sender, its sweep, schedules.

The sender never sleeps: after a burst, or when only future retries are left, it
re-schedules itself with ``apply_async(countdown=...)`` and hands its lease on. A beat
task every minute (and every worker when it starts) fails the in-flight message of dead
senders, re-queues the rest of their claims and restarts senders for runs that have due
messages and no live lease.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery import current_app, shared_task
from celery.signals import worker_ready

from closedloop.core.tenancy import scopes_disabled
from closedloop.feedback import outbox
from closedloop.feedback import runs as _runs  # noqa: F401 - registers the job kind

logger = logging.getLogger("closedloop.feedback.outbox")

SWEEP_TASK = "closedloop.feedback.outbox_sweep"
SWEEP_NAME = "feedback: outbox sweep"
_sweep_ensured = False


def _hostname(task: Any) -> str:
    return getattr(task.request, "hostname", None) or socket.gethostname()


@shared_task(name="closedloop.feedback.deliver_run", ignore_result=True, acks_late=False)
def deliver_run_task(run_id: int, lease: str = "") -> None:
    """Send a run's messages (one burst at most), then continue later if needed."""
    from closedloop.feedback.models import ActionRun

    with scopes_disabled():
        job_id = ActionRun.objects.filter(pk=run_id).values_list("job_id", flat=True).first()
    result = outbox.deliver_run(
        run_id, worker=_hostname(deliver_run_task), lease=lease, job_id=job_id
    )
    continue_later(run_id, result)


def deliver_run(run_id: int) -> None:
    """Celery-side sending of a run (the contract's entry point)."""
    deliver_run_task.delay(run_id)


def continue_later(run_id: int, result: outbox.DeliverResult) -> None:
    """Re-schedule the sender after a burst pause or until the next retry is due."""
    if result.skipped or result.resume_in is None:
        return
    countdown = max(0.0, result.resume_in)
    if _eager() and countdown > 0:
        return  # in-process runs (tests): the sweep or a test continues it, never a sleep
    deliver_run_task.apply_async((run_id,), {"lease": result.lease}, countdown=countdown)


def _eager() -> bool:
    return bool(current_app.conf.task_always_eager)


def kick_run(run_id: int) -> None:
    deliver_run_task.delay(run_id)


@shared_task(name=SWEEP_TASK, ignore_result=True)
def outbox_sweep(restarted_worker: str = "") -> dict[str, Any]:
    """Recover dead claims, finish runs with nothing left, restart idle senders."""
    recovered = outbox.recover_stale_claims(restarted_worker=restarted_worker)
    closed = 0
    for run_id in outbox.runs_to_close():
        with scopes_disabled():
            closed += outbox.finish_run_if_done(run_id)
    kicked = outbox.runs_needing_a_sender()
    for run_id in kicked:
        deliver_run_task.delay(run_id)
    fail_abandoned_preparations()
    return {**recovered, "closed": closed, "kicked": len(kicked)}


def fail_abandoned_preparations() -> int:
    """Runs still "preparing" whose job ended (its worker died while rendering)."""
    from django.utils import timezone

    from closedloop.feedback.models import ActionRun, RunStatus
    from closedloop.jobs.models import FINISHED

    with scopes_disabled():
        return ActionRun.objects.filter(
            status=RunStatus.PREPARING, job__status__in=list(FINISHED)
        ).update(status=RunStatus.FAILED, finished_at=timezone.now())


def ensure_outbox_sweep() -> None:
    """The beat entry for the sweep (every minute), created once."""
    global _sweep_ensured
    if _sweep_ensured:
        return
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _c = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(
        name=SWEEP_NAME, defaults={"task": SWEEP_TASK, "interval": every}
    )
    _sweep_ensured = True


@worker_ready.connect
def _recover_on_start(sender: Any = None, **_: Any) -> None:
    """A (re)started worker fails what its previous life left in flight and resumes."""
    hostname = getattr(sender, "hostname", "") or ""
    try:
        outbox_sweep(restarted_worker=hostname)
        # leases of senders that died with the previous worker lapse after this long
        outbox_sweep.apply_async(countdown=outbox.lease_seconds() + 1)
    except Exception:  # a worker must start even if the database is not ready yet
        logger.exception("outbox recovery at worker start failed")


@shared_task(name="closedloop.feedback.run_schedule", ignore_result=True)
def run_schedule(schedule_id: int) -> str:
    """Called by celery beat for each schedule (see schedules.sync_beat)."""
    from closedloop.feedback.schedules import execute_schedule

    return execute_schedule(schedule_id)
