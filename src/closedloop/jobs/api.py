"""API: background jobs of the account (supervisors see only the jobs they started)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, forbidden
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.jobs import selectors, services
from closedloop.jobs.models import Job

router = Router(tags=["jobs"])

JobStatusIn = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobOut(Schema):
    id: int
    kind: str
    title: str
    status: str
    percent: int
    progress_done: int
    progress_total: int
    message: str
    created_by: str | None = Field(description="Email of the user who started it.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobDetailOut(JobOut):
    params: dict[str, Any]
    result: Any
    error: str
    cancel_requested: bool
    log: list[dict[str, Any]]


class JobFilters(Schema):
    status: JobStatusIn | None = None
    kind: str = Field("", max_length=100)


def _job(job: Job) -> dict[str, Any]:
    fields = (
        "kind",
        "title",
        "status",
        "percent",
        "progress_done",
        "progress_total",
        "message",
        "created_at",
        "started_at",
        "finished_at",
    )
    return {
        "id": job.pk,
        "created_by": job.created_by.email if job.created_by is not None else None,
        **{name: getattr(job, name) for name in fields},
    }


def _job_detail(job: Job) -> dict[str, Any]:
    detail = ("params", "result", "error", "cancel_requested", "log")
    return {**_job(job), **{name: getattr(job, name) for name in detail}}


@router.get("/jobs", response={200: Page[JobOut], **ERRORS}, summary="Background jobs")
def list_jobs(
    request: HttpRequest, filters: Query[JobFilters], page: Query[PageParams]
) -> dict[str, Any]:
    membership = membership_of(request)
    qs = selectors.job_list(membership, status=filters.status or "", kind=filters.kind)
    return paginate(qs, page, _job)


@router.get("/jobs/{job_id}", response={200: JobDetailOut, **ERRORS}, summary="One job")
def get_job(request: HttpRequest, job_id: int) -> dict[str, Any]:
    return _job_detail(selectors.get_job(membership_of(request), job_id))


@router.post(
    "/jobs/{job_id}/cancel", response={200: JobDetailOut, **WRITE_ERRORS}, summary="Cancel a job"
)
def cancel_job(request: HttpRequest, job_id: int) -> dict[str, Any]:
    membership = membership_of(request)
    job = selectors.get_job(membership, job_id)
    if job.is_finished:
        raise ApiError(409, _("This job has already finished; there is nothing to cancel."))
    if not selectors.can_cancel(membership, job):
        raise forbidden(_("Your role cannot cancel this job."))
    job = services.job_cancel(account=membership.account, actor=membership.user, job=job)
    return _job_detail(selectors.get_job(membership, job.pk))
