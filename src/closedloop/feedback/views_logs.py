"""The workflow's log: every operation with its details; filters, paging, CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import slugify

from closedloop.core.tenancy import account_scope
from closedloop.feedback.forms import LogFilterForm
from closedloop.feedback.models import Workflow, WorkflowLog
from closedloop.feedback.views_workflows import load_workflow, member_required, workflow_context

LOG_PAGE_SIZE = 50


def _filter_form(request: HttpRequest, workflow: Workflow) -> LogFilterForm:
    logs = WorkflowLog.objects.filter(workflow=workflow)
    events = sorted(set(logs.values_list("name", flat=True).distinct()))
    user_ids = set(logs.exclude(user=None).values_list("user_id", flat=True).distinct())
    users = [
        (u.pk, str(u)) for u in get_user_model().objects.filter(pk__in=user_ids).order_by("email")
    ]
    return LogFilterForm(request.GET or None, events=events, users=users)


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def filtered_logs(workflow: Workflow, form: LogFilterForm) -> QuerySet[WorkflowLog]:
    logs = WorkflowLog.objects.filter(workflow=workflow).select_related("user")
    if not form.is_bound or not form.is_valid():
        return logs.order_by("-created_at", "-id")
    data = form.cleaned_data
    if data.get("event"):
        logs = logs.filter(name=data["event"])
    if data.get("user"):
        logs = logs.filter(user_id=int(data["user"]))
    if data.get("date_from"):
        logs = logs.filter(created_at__gte=_day_start(data["date_from"]))
    if data.get("date_to"):
        logs = logs.filter(created_at__lt=_day_start(data["date_to"] + dt.timedelta(days=1)))
    return logs.order_by("-created_at", "-id")


def _summary(payload: Any) -> str:
    if not isinstance(payload, dict) or not payload:
        return ""
    parts = []
    for key, value in list(payload.items())[:4]:
        text = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
        parts.append(f"{key}: {text[:60]}")
    return " · ".join(parts)


@member_required
def log_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    form = _filter_form(request, workflow)
    page = Paginator(filtered_logs(workflow, form), LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    entries = [
        {
            "log": log,
            "summary": _summary(log.payload),
            "payload": json.dumps(log.payload, indent=2, ensure_ascii=False, default=str),
        }
        for log in page.object_list
    ]
    context = workflow_context(
        workflow, "logs", form=form, page=page, entries=entries, query=query.urlencode()
    )
    return render(request, "feedback/logs.html", context)


def _csv_rows(logs: QuerySet[WorkflowLog], account_id: int) -> Iterator[str]:
    """Streamed after the view returned, so it re-enters the account scope itself."""

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    yield "\ufeff" + writer.writerow(["time", "event", "user", "payload"])
    with account_scope(account_id):
        for log in logs.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    log.created_at.isoformat(),
                    log.name,
                    log.user.email if log.user else "",
                    json.dumps(log.payload, ensure_ascii=False, default=str),
                ]
            )


@member_required
def log_export(request: HttpRequest, wid: int) -> StreamingHttpResponse:
    workflow = load_workflow(request, wid)
    logs = filtered_logs(workflow, _filter_form(request, workflow))
    response = StreamingHttpResponse(
        _csv_rows(logs, workflow.account_id), content_type="text/csv; charset=utf-8"
    )
    name = slugify(workflow.name) or f"workflow-{workflow.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}-log.csv"'
    return response
