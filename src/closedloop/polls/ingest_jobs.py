"""Job ``polls.fetch_runs``: fetch (or back-fill) a connection's runs, then tell the asker.

Params: ``connection_id`` and ``days`` (0 or missing: an incremental fetch since the
watermark; N ≥ 1: a back-fill of the runs modified in the last N days). The job holds the
connection's sync lock (the scheduled sync and this job never ingest at the same time)
and, when done, emails a short summary to the user who asked (``job.created_by``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.core.mail import send_mail
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.tenancy import scopes_disabled
from closedloop.jobs.runtime import JobContext, JobError, register_job
from closedloop.polls.models import Connection

logger = logging.getLogger(__name__)

FETCH_RUNS_JOB = "polls.fetch_runs"
MAX_DAYS = 3650
#: extend the sync lock at most this often while pages come in
LOCK_EXTEND_SECONDS = 60.0


def parse_days(value: Any) -> int:
    """``days`` param → int in 0..MAX_DAYS (JobError naming the problem otherwise)."""
    if value in (None, ""):
        return 0
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise JobError(
            _("“days” must be a whole number of days, not “%(value)s”.") % {"value": value}
        ) from None
    if isinstance(value, float) and not value.is_integer():
        raise JobError(
            _("“days” must be a whole number of days, not “%(value)s”.") % {"value": value}
        )
    if days < 0 or days > MAX_DAYS:
        raise JobError(
            _("“days” must be between 0 and %(max)s (got %(value)s).")
            % {"max": MAX_DAYS, "value": days}
        )
    return days


class _LockKeepingContext:
    """The job context, extending the connection's sync lock as pages arrive."""

    def __init__(self, ctx: JobContext, connection: Connection) -> None:
        self.ctx = ctx
        self.connection = connection
        self.last_extend = time.monotonic()

    def progress(
        self, done: int, total: int | None = None, message: str | None = None, force: bool = False
    ) -> None:
        self.ctx.progress(done, total, message, force)
        if time.monotonic() - self.last_extend >= LOCK_EXTEND_SECONDS:
            from closedloop.polls import scheduler

            scheduler.extend_lock(self.connection, self.ctx.job)
            self.last_extend = time.monotonic()

    def log(self, text: str, level: str = "info") -> None:
        self.ctx.log(text, level)

    def check_cancelled(self) -> None:
        self.ctx.check_cancelled()


def _release(connection: Connection, job: Any) -> None:
    """Give the lock back (only if this job still holds it); sync health is untouched."""
    with scopes_disabled():
        Connection.objects.filter(pk=connection.pk, sync_job=job).update(
            sync_locked_until=None, sync_job=None
        )


@register_job(FETCH_RUNS_JOB)
def run_fetch_runs(ctx: JobContext) -> dict[str, Any]:
    from closedloop.polls import scheduler
    from closedloop.polls.client import RapidProError
    from closedloop.polls.ingest import fetch_runs

    days = parse_days(ctx.params.get("days"))
    connection = Connection.objects.filter(pk=ctx.params.get("connection_id")).first()
    if connection is None:
        raise JobError(
            _("This RapidPro connection does not exist (or belongs to another account).")
        )
    job = ctx.job
    if not scheduler.acquire_lock(connection, job):
        raise JobError(
            _("A sync of “%(name)s” is running; fetch the runs again when it has finished.")
            % {"name": connection.name}
        )
    after: dt.datetime | None = None
    try:
        if days:
            after = timezone.now() - dt.timedelta(days=days)
            ctx.log(
                _("Fetching the runs of %(name)s modified in the last %(days)s days.")
                % {"name": connection.name, "days": days}
            )
        else:
            ctx.log(_("Fetching the new runs of %(name)s.") % {"name": connection.name})
        try:
            result = fetch_runs(
                connection, _LockKeepingContext(ctx, connection), after=after, backfill=bool(days)
            )
        except RapidProError as exc:
            _notify(ctx, connection, days, None, str(exc))
            raise JobError(str(exc)) from None
    finally:
        _release(connection, job)
    result["days"] = days
    message = summary(result)
    ctx.progress(result["runs"], result["runs"], message, force=True)
    _notify(ctx, connection, days, result, "")
    return result


def summary(result: dict[str, Any]) -> str:
    return _(
        "%(runs)s runs read in %(pages)s pages: %(created)s new, %(updated)s changed, "
        "%(unchanged)s unchanged, %(skipped)s not from a poll; %(answers)s answers written, "
        "%(contacts)s new contacts, %(pollruns)s new poll runs."
    ) % {
        "runs": result.get("runs", 0),
        "pages": result.get("pages", 0),
        "created": result.get("created", 0),
        "updated": result.get("updated", 0),
        "unchanged": result.get("unchanged", 0),
        "skipped": result.get("skipped", 0),
        "answers": result.get("answers", 0),
        "contacts": result.get("contacts_created", 0),
        "pollruns": result.get("pollruns_created", 0),
    }


def _notify(
    ctx: JobContext, connection: Connection, days: int, result: dict[str, Any] | None, error: str
) -> None:
    """Email the requesting user what happened (nobody to tell for CLI / scheduled jobs)."""
    user = ctx.job.created_by
    email = getattr(user, "email", "")
    if not email:
        return
    what = (
        _("the last %(days)s days") % {"days": days} if days else _("the runs since the last fetch")
    )
    if error:
        subject = _("Fetching runs from %(name)s failed") % {"name": connection.name}
        body = _("Fetching %(what)s from %(name)s failed:\n\n%(error)s\n") % {
            "what": what,
            "name": connection.name,
            "error": error,
        }
    else:
        subject = _("Runs fetched from %(name)s") % {"name": connection.name}
        body = _("Fetching %(what)s from %(name)s is done.\n\n%(summary)s\n") % {
            "what": what,
            "name": connection.name,
            "summary": summary(result or {}),
        }
    try:
        send_mail(" ".join(subject.split()), body, None, [email])
    except Exception as exc:  # the fetch itself succeeded: do not fail the job for the mail
        logger.warning("fetch-runs summary mail to %s failed", email, exc_info=True)
        ctx.log(_("The summary email could not be sent: %(error)s") % {"error": exc}, "warning")
