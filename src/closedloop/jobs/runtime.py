"""Running Jobs: handlers register by kind; one Celery task runs any of them.

A handler is ``def handler(ctx: JobContext) -> dict | None``. It reports progress with
``ctx.progress``, writes to the log with ``ctx.log``, calls ``ctx.check_cancelled()``
between steps, and returns the result (JSON). The runner opens the account scope,
claims the job with a conditional update so two workers never run it, and marks it
succeeded, cancelled or failed (with the error) when the handler ends.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)

Handler = Callable[["JobContext"], "dict[str, Any] | None"]
HANDLERS: dict[str, Handler] = {}
MAX_LOG_LINES = 2000


class JobCancelled(Exception):
    """Raised by ``check_cancelled`` when a user asked to cancel the job."""


class JobError(Exception):
    """A failure whose message is meant for the user (no stack trace in the UI)."""


def register_job(kind: str) -> Callable[[Handler], Handler]:
    def decorate(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return decorate


@dataclass
class JobContext:
    job: Job
    echo: Callable[[str], None] | None = None
    min_interval: float = 0.3
    _last_write: float = field(default=0.0, init=False)
    _pending_log: list[dict[str, str]] = field(default_factory=list, init=False)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def account_id(self) -> int:
        return self.job.account_id

    def progress(
        self, done: int, total: int | None = None, message: str | None = None, force: bool = False
    ) -> None:
        self.job.progress_done = done
        if total is not None:
            self.job.progress_total = total
        if message is not None:
            self.job.message = message[:500]
        if self.echo and message:
            self.echo(f"[{done}/{self.job.progress_total}] {message}")
        now = time.monotonic()
        if force or now - self._last_write >= self.min_interval:
            self._flush()

    def log(self, text: str, level: str = "info") -> None:
        entry = {"at": timezone.now().isoformat(timespec="seconds"), "level": level, "text": text}
        self._pending_log.append(entry)
        if self.echo:
            self.echo(text)
        self._flush()

    def check_cancelled(self) -> None:
        with scopes_disabled():
            requested = (
                Job.objects.filter(pk=self.job.pk)
                .values_list("cancel_requested", flat=True)
                .first()
            )
        if requested:
            raise JobCancelled()

    def _flush(self) -> None:
        self._last_write = time.monotonic()
        if self._pending_log:
            self.job.log = (self.job.log + self._pending_log)[-MAX_LOG_LINES:]
            self._pending_log = []
        with scopes_disabled():
            Job.objects.filter(pk=self.job.pk).update(
                progress_done=self.job.progress_done,
                progress_total=self.job.progress_total,
                message=self.job.message,
                log=self.job.log,
            )


def enqueue_job(
    *,
    account: Any,
    kind: str,
    params: dict[str, Any] | None = None,
    title: str = "",
    created_by: Any = None,
    run_now: bool = False,
) -> Job:
    """Create a queued job; it is sent to the worker when the transaction commits.

    With ``run_now`` the job runs in this process instead (the CLI uses this).
    """
    if kind not in HANDLERS:
        raise KeyError(f"unknown job kind {kind!r}")
    with scopes_disabled():
        job = Job.objects.create(
            account_id=getattr(account, "pk", account),
            kind=kind,
            title=title or kind,
            params=params or {},
            created_by=created_by
            if created_by is None or getattr(created_by, "pk", None)
            else None,
        )
    if not run_now:
        from closedloop.jobs.tasks import run_job

        job_id = job.pk
        transaction.on_commit(lambda: run_job.delay(job_id))
    return job


def cancel_job(job: Job) -> Job:
    """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
    with scopes_disabled():
        if job.status == JobStatus.QUEUED:
            Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.CANCELLED,
                cancel_requested=True,
                finished_at=timezone.now(),
                message="Cancelled before it started.",
            )
        elif job.status == JobStatus.RUNNING:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        job.refresh_from_db()
    return job


def execute_job(
    job_id: int, worker: str = "", echo: Callable[[str], None] | None = None
) -> Job | None:
    """Claim and run one job. Returns the finished job, or None if another worker had it."""
    with scopes_disabled():
        claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=timezone.now(), worker=worker[:200]
        )
        if not claimed:
            return None
        job = Job.objects.get(pk=job_id)
    ctx = JobContext(job=job, echo=echo)
    handler = HANDLERS.get(job.kind)
    status, result, error, message = JobStatus.FAILED, None, "", ""
    try:
        if handler is None:
            raise JobError(f"No handler for job kind {job.kind!r}.")
        with account_scope(job.account_id):
            result = handler(ctx)
        status = JobStatus.SUCCEEDED
        message = ctx.job.message or "Done."
    except JobCancelled:
        status, message = JobStatus.CANCELLED, "Cancelled."
        ctx.log("Cancelled by a user; nothing was written.", "warning")
    except JobError as exc:
        error = message = str(exc)
        ctx.log(error, "error")
    except Exception as exc:  # the job must end in a state, whatever the handler did
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        error = f"{type(exc).__name__}: {exc}"
        message = f"Failed: {exc}"[:500]
        ctx.log(error, "error")
        ctx.log(traceback.format_exc(limit=5), "debug")
    ctx._flush()
    with scopes_disabled():
        Job.objects.filter(pk=job.pk).update(
            status=status,
            result=result,
            error=error,
            message=message[:500],
            finished_at=timezone.now(),
            progress_done=(
                ctx.job.progress_total or ctx.job.progress_done
                if status == JobStatus.SUCCEEDED
                else ctx.job.progress_done
            ),
        )
        job.refresh_from_db()
    return job


def fail_orphaned_jobs(*, worker: str | None = None, stale_before: Any = None) -> int:
    """Mark running jobs of a dead worker as failed, with that reason."""
    from closedloop.jobs.models import WorkerHeartbeat

    with scopes_disabled():
        running = Job.objects.filter(status=JobStatus.RUNNING)
        count = 0
        if worker:
            count += running.filter(worker=worker).update(
                status=JobStatus.FAILED,
                finished_at=timezone.now(),
                error="The worker running this job stopped before it finished.",
                message="Failed: the worker stopped before the job finished. Run it again.",
            )
        if stale_before is not None:
            dead = WorkerHeartbeat.objects.filter(seen_at__lt=stale_before).values("hostname")
            count += running.filter(worker__in=dead).update(
                status=JobStatus.FAILED,
                finished_at=timezone.now(),
                error="The worker running this job stopped answering.",
                message="Failed: the worker stopped answering. Run it again.",
            )
    return count
