"""Reads of jobs that depend on who is asking.

Everyone in an account sees the account's jobs, except members limited to org-unit
subtrees (supervisors): a job's params, log and result file may cover the whole
tree, so they see only the jobs they started themselves. Viewers never cancel.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from closedloop.accounts.models import Membership, Role
from closedloop.jobs.models import Job, JobStatus

#: Roles that may cancel any job of the account; other editors only their own.
CANCEL_ANY_ROLES = {Role.ADMIN, Role.MANAGER}


def is_limited_to_own_jobs(membership: Membership) -> bool:
    cached = getattr(membership, "_own_jobs_only", None)
    if cached is None:
        cached = membership.role == Role.SUPERVISOR or membership.scope.exists()
        membership._own_jobs_only = cached  # type: ignore[attr-defined]
    return bool(cached)


def visible_jobs(membership: Membership) -> QuerySet[Job]:
    jobs = Job.objects.all()
    if is_limited_to_own_jobs(membership):
        jobs = jobs.filter(created_by_id=membership.user_id)
    return jobs


def job_list(membership: Membership, *, status: str = "", kind: str = "") -> QuerySet[Job]:
    """Newest first, filtered by status and kind when given."""
    jobs = visible_jobs(membership).select_related("created_by").defer("log", "params")
    if status in JobStatus.values:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    return jobs.order_by("-created_at", "-id")


def job_kinds(membership: Membership) -> list[str]:
    return list(visible_jobs(membership).order_by("kind").values_list("kind", flat=True).distinct())


def get_job(membership: Membership, pk: Any) -> Job:
    """The job if this membership may see it; otherwise the same 404 as a missing one."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    job = visible_jobs(membership).select_related("created_by").filter(pk=pk).first()
    if job is None:
        raise Http404
    return job


def can_cancel(membership: Membership, job: Job) -> bool:
    if job.is_finished or membership.role == Role.VIEWER:
        return False
    if membership.role in CANCEL_ANY_ROLES:
        return True
    return job.created_by_id == membership.user_id
