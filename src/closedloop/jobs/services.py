"""Writes to jobs. Creating a job is ``jobs.runtime.enqueue_job``; users cancel here."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.jobs.models import Job
from closedloop.jobs.runtime import cancel_job

AUDITED_FIELDS = ("status", "cancel_requested")


def job_cancel(*, account: Any, actor: Any, job: Job, allowed: bool = True) -> Job:
    """Ask ``job`` to stop (queued: at once; running: at its next check), audited.

    ``allowed`` is the caller's permission check (``selectors.can_cancel``).
    """
    if not allowed:
        raise PermissionDenied
    if job.account_id != getattr(account, "pk", account):
        raise PermissionDenied
    with transaction.atomic():
        before = snapshot(job, AUDITED_FIELDS)
        job = cancel_job(job)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=job,
            before=before,
            after=snapshot(job, AUDITED_FIELDS),
        )
    return job
