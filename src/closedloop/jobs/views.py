"""Jobs pages: the list, a job's live detail, cancel and the result download."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from closedloop.accounts.models import Membership
from closedloop.jobs import selectors
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.services import job_cancel

PAGE_SIZE = 25
LOG_LINES_SHOWN = 200


def _membership(request: HttpRequest) -> Membership:
    membership = getattr(request, "membership", None)
    if membership is None:
        raise Http404
    return membership


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    status = request.GET.get("status", "")
    kind = request.GET.get("kind", "")
    jobs = selectors.job_list(membership, status=status, kind=kind)
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "jobs/job_list.html",
        {
            "page": page,
            "jobs": page.object_list,
            "status": status if status in JobStatus.values else "",
            "kind": kind,
            "statuses": JobStatus.choices,
            "kinds": selectors.job_kinds(membership),
            "filtered": bool(status or kind),
            "query": query.urlencode(),
        },
    )


def _live_context(membership: Membership, job: Job) -> dict[str, Any]:
    log = job.log or []
    return {
        "job": job,
        "can_cancel": selectors.can_cancel(membership, job),
        "log_lines": log[-LOG_LINES_SHOWN:],
        "log_hidden": max(0, len(log) - LOG_LINES_SHOWN),
        "result_json": (
            json.dumps(job.result, indent=2, ensure_ascii=False, sort_keys=True)
            if job.result is not None
            else ""
        ),
        "has_file": isinstance(job.result, dict) and bool(job.result.get("file")),
    }


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    job = selectors.get_job(membership, pk)
    return render(request, "jobs/job_detail.html", _live_context(membership, job))


@login_required
@require_GET
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the detail page, polled by htmx while the job is unfinished."""
    membership = _membership(request)
    job = selectors.get_job(membership, pk)
    return render(request, "jobs/job_detail.html#live", _live_context(membership, job))


@login_required
@require_POST
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    job = selectors.get_job(membership, pk)
    if job.is_finished:
        messages.info(request, _("This job had already finished; nothing was cancelled."))
        return redirect("jobs:detail", pk=job.pk)
    if not selectors.can_cancel(membership, job):
        raise PermissionDenied
    job = job_cancel(account=membership.account, actor=request.user, job=job)
    if job.status == JobStatus.CANCELLED:
        messages.success(request, _("The job was cancelled."))
    else:
        messages.info(request, _("Cancel requested: the job stops at its next step."))
    return redirect("jobs:detail", pk=job.pk)


@login_required
@require_GET
def job_download(request: HttpRequest, pk: int) -> FileResponse:
    """The file a job left in its result, if it belongs to this account and still exists."""
    membership = _membership(request)
    job = selectors.get_job(membership, pk)
    path = _result_file(job)
    if path is None:
        raise Http404
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


def _result_file(job: Job) -> Path | None:
    name = job.result.get("file") if isinstance(job.result, dict) else None
    if not isinstance(name, str) or not name:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
