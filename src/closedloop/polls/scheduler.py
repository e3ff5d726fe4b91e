"""When each RapidPro connection syncs: due times, the lock, and the persisted back-off.

Everything lives in the ``Connection`` row (never in a cache), so a restart, another
worker or a second beat see the same state:

- ``sync_locked_until`` is taken with a conditional UPDATE (only when empty or expired),
  so two beats or two "Sync now" clicks never start two syncs of one connection; a lock
  whose holder died expires after ``POLLS_SYNC_LOCK_SECONDS``;
- after a success the next sync is due ``sync_interval_minutes`` later; after the n-th
  consecutive failure it waits ``interval × 2ⁿ``, at most ``POLLS_BACKOFF_MAX_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.tenancy import scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.runtime import enqueue_job
from closedloop.polls.models import Connection

SYNC_JOB = "polls.sync"


def lock_seconds() -> int:
    return int(settings.POLLS_SYNC_LOCK_SECONDS)


def interval_seconds(connection: Connection) -> int:
    minutes = connection.sync_interval_minutes or settings.POLLS_SYNC_MINUTES
    return max(int(minutes), 1) * 60


def backoff_seconds(connection: Connection, failures: int) -> int:
    """Wait after ``failures`` consecutive failures: interval × 2^failures, capped."""
    cap = int(settings.POLLS_BACKOFF_MAX_SECONDS)
    if failures <= 0:
        return min(interval_seconds(connection), cap)
    if failures >= 40:  # 2**40 intervals is far beyond any cap
        return cap
    return min(interval_seconds(connection) * 2**failures, cap)


def due_connections(now: dt.datetime | None = None) -> list[Connection]:
    """Active connections (of active accounts) whose sync is due and not locked."""
    now = now or timezone.now()
    with scopes_disabled():
        return list(
            Connection.objects.filter(is_active=True, account__is_active=True)
            .filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))
            .filter(Q(sync_locked_until__isnull=True) | Q(sync_locked_until__lte=now))
            .order_by("next_sync_at", "pk")
        )


def acquire_lock(
    connection: Connection, job: Job | None = None, now: dt.datetime | None = None
) -> bool:
    """Take the connection's sync lock for ``job``; False if another holds it.

    The lock is free when empty or expired, or when the job holding it has ended (its
    worker died before releasing it). Both are conditional UPDATEs on the row itself,
    so of two concurrent callers exactly one wins.
    """
    now = now or timezone.now()
    values = {
        "sync_locked_until": now + dt.timedelta(seconds=lock_seconds()),
        "sync_job": job,
        "last_sync_started_at": now,
    }
    with scopes_disabled():
        rows = Connection.objects.filter(pk=connection.pk)
        taken = rows.filter(
            Q(sync_locked_until__isnull=True) | Q(sync_locked_until__lte=now)
        ).update(**values)
        if not taken:
            holder = rows.values_list("sync_job_id", "sync_locked_until").first()
            if holder is not None and holder[0] is not None and _job_ended(holder[0]):
                taken = rows.filter(sync_job_id=holder[0], sync_locked_until=holder[1]).update(
                    **values
                )
    if taken:
        for name, value in values.items():
            setattr(connection, name, value)
    return bool(taken)


def _job_ended(job_id: int) -> bool:
    status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    return status not in (JobStatus.QUEUED, JobStatus.RUNNING)


def attach_job(connection: Connection, job: Job) -> None:
    """Record which job holds a lock taken before the job existed."""
    with scopes_disabled():
        Connection.objects.filter(pk=connection.pk).update(sync_job=job)
    connection.sync_job = job


def holds_lock(connection: Connection, job: Job, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    with scopes_disabled():
        return Connection.objects.filter(
            pk=connection.pk, sync_job=job, sync_locked_until__gt=now
        ).exists()


def extend_lock(connection: Connection, job: Job | None = None) -> None:
    """Keep holding the lock during a long sync (called between steps)."""
    until = timezone.now() + dt.timedelta(seconds=lock_seconds())
    with scopes_disabled():
        qs = Connection.objects.filter(pk=connection.pk)
        if job is not None:
            qs = qs.filter(sync_job=job)
        qs.update(sync_locked_until=until)
    connection.sync_locked_until = until


def release(
    connection: Connection,
    ok: bool,
    error: str = "",
    counts: dict[str, Any] | None = None,
    *,
    retry_after: int = 0,
    count_failure: bool = True,
    now: dt.datetime | None = None,
) -> Connection:
    """Unlock and persist the outcome: success resets the back-off, a failure grows it.

    ``retry_after`` (a long 429 wait) pushes the next sync at least that far.
    ``count_failure=False`` (a cancelled sync) unlocks without touching the back-off.
    """
    now = now or timezone.now()
    with scopes_disabled(), transaction.atomic():
        row = Connection.objects.select_for_update().filter(pk=connection.pk).first()
        if row is None:  # deleted while it synced: nothing to record
            return connection
        values: dict[str, Any] = {"sync_locked_until": None, "sync_job": None}
        if ok:
            values.update(
                consecutive_failures=0,
                next_sync_at=now + dt.timedelta(seconds=interval_seconds(row)),
                last_success_at=now,
            )
            if counts is not None:
                values["last_counts"] = counts
        elif count_failure:
            failures = row.consecutive_failures + 1
            wait = max(backoff_seconds(row, failures), int(retry_after or 0))
            values.update(
                consecutive_failures=failures,
                next_sync_at=now + dt.timedelta(seconds=wait),
                last_error_at=now,
                last_error=error[:2000],
            )
        else:
            values["next_sync_at"] = now + dt.timedelta(seconds=interval_seconds(row))
        Connection.objects.filter(pk=row.pk).update(**values)
    for name, value in values.items():
        setattr(connection, name, value)
    return connection


def job_title(connection: Connection) -> str:
    return _("Sync RapidPro connection “%(name)s”") % {"name": connection.name}


def running_job(connection: Connection) -> Job | None:
    """The queued or running sync job holding the connection's lock, if any."""
    now = timezone.now()
    with scopes_disabled():
        row = (
            Connection.objects.filter(pk=connection.pk)
            .values_list("sync_job_id", "sync_locked_until")
            .first()
        )
        if row is None or row[0] is None or row[1] is None or row[1] <= now:
            return None
        return Job.objects.filter(
            pk=row[0], status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).first()


def enqueue_sync(
    connection: Connection,
    *,
    user: Any = None,
    steps: list[str] | None = None,
    full: bool = False,
    run_now: bool = False,
) -> Job | None:
    """Lock the connection, then queue a sync job holding that lock.

    Returns None when another sync holds the lock (the caller may show that one).
    """
    params: dict[str, Any] = {"connection_id": connection.pk}
    if steps:
        params["steps"] = list(steps)
    if full:
        params["full"] = True
    # one transaction: the worker is only told about the job once it holds the lock
    with transaction.atomic():
        if not acquire_lock(connection):
            return None
        job = enqueue_job(
            account=connection.account_id,
            kind=SYNC_JOB,
            params=params,
            title=job_title(connection),
            created_by=user,
            run_now=run_now,
        )
        attach_job(connection, job)
    return job


def request_sync(
    connection: Connection, user: Any = None, *, steps: list[str] | None = None, full: bool = False
) -> Job:
    """ "Sync now": a new sync job, or the one already queued or running."""
    job = enqueue_sync(connection, user=user, steps=steps, full=full)
    if job is not None:
        return job
    running = running_job(connection)
    if running is not None:
        return running
    # the lock is held without a live job (it died): it expires on its own
    raise SyncBusy(
        _("Another sync of this connection is still holding it. Try again in a few minutes.")
    )


class SyncBusy(Exception):
    """A sync of the connection is running (or its lock has not expired yet)."""


def enqueue_due(now: dt.datetime | None = None) -> list[int]:
    """Queue a sync job for every due connection (the beat task); returns the job ids."""
    jobs = []
    for connection in due_connections(now):
        job = enqueue_sync(connection)
        if job is not None:
            jobs.append(job.pk)
    return jobs
