"""Schedule pages: the list with next run times and last outcomes, create, edit, pause,
delete."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import runs, schedules
from closedloop.feedback.models import (
    OUT_ACTION_TYPES,
    Action,
    ActionRun,
    Column,
    OperationType,
    Schedule,
    ScheduleStatus,
    Workflow,
)
from closedloop.feedback.services import FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    workflow_context,
)

RUN_OPTION_FIELDS = ("item_column", "subject", "cc", "bcc", "email_to", "target_url", "token",
                     "canvas_instance")  # fmt: skip
RUN_OPTION_FLAGS = ("send_confirmation", "track_read", "html_only")
LAST_RUNS = 3


def _schedule_or_404(workflow: Workflow, sid: Any) -> Schedule:
    try:
        return Schedule.objects.select_related("action", "account", "workflow").get(
            pk=int(sid), workflow=workflow
        )
    except (Schedule.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def _zone(workflow: Workflow) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(getattr(workflow.account, "time_zone", "") or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _parse_local(value: str, tz: dt.tzinfo, field: str) -> dt.datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FeedbackError(
            _("“%(v)s” is not a date and time.") % {"v": value}, field=field
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _local_input(value: dt.datetime | None, tz: dt.tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""


def _posted(request: HttpRequest, workflow: Workflow) -> dict[str, Any]:
    data = request.POST
    tz = _zone(workflow)
    values: dict[str, Any] = {
        "name": data.get("name", ""),
        "description": data.get("description", ""),
        "operation_type": data.get("operation_type", OperationType.ACTION_RUN),
        "frequency": data.get("frequency", "") if data.get("repeat") == "on" else "",
        "incremental": data.get("incremental") == "on",
        "execute_start": _parse_local(data.get("execute_start", ""), tz, "execute_start"),
        "execute_until": _parse_local(data.get("execute_until", ""), tz, "execute_until"),
    }
    if values["operation_type"] == OperationType.ACTION_RUN:
        action = Action.objects.filter(workflow=workflow, pk=_int(data.get("action"))).first()
        values["action"] = action
        payload: dict[str, Any] = {
            k: data.get(k, "").strip() for k in RUN_OPTION_FIELDS if data.get(k)
        }
        payload.update({k: data.get(k) == "on" for k in RUN_OPTION_FLAGS})
        values["payload"] = payload
    else:
        raw = data.get("payload", "").strip() or "{}"
        try:
            values["payload"] = json.loads(raw)
        except ValueError as exc:
            raise FeedbackError(
                _("The options are not valid JSON: %s") % exc, field="payload"
            ) from exc
    return values


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _form_context(
    workflow: Workflow, schedule: Schedule | None, values: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    tz = _zone(workflow)
    payload = values.get("payload") or {}
    action = values.get("action")
    return workflow_context(
        workflow,
        "schedules",
        schedule=schedule,
        values=values,
        payload=payload,
        payload_json=json.dumps(payload, indent=2)
        if values.get("operation_type") != OperationType.ACTION_RUN
        else "{}",
        action_id=getattr(action, "pk", None),
        start_input=_local_input(values.get("execute_start"), tz),
        until_input=_local_input(values.get("execute_until"), tz),
        time_zone=str(tz),
        actions=list(
            Action.objects.filter(workflow=workflow, action_type__in=list(OUT_ACTION_TYPES))
            .exclude(action_type="personalized_text")
            .order_by("name")
        ),  # fmt: skip
        columns=list(
            Column.objects.filter(workflow=workflow)
            .order_by("position", "id")
            .values_list("name", flat=True)
        ),
        operations=OperationType.choices,
        description=schedules.describe(values.get("frequency") or ""),
        **extra,
    )


def _values_of(schedule: Schedule) -> dict[str, Any]:
    return {f: getattr(schedule, f) for f in schedules.FIELDS}


@member_required
def schedule_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    items = list(
        Schedule.objects.filter(workflow=workflow)
        .select_related("action", "account")
        .order_by("name")
    )
    last_runs: dict[int, list[ActionRun]] = {}
    recent = runs.runs_with_counts(
        ActionRun.objects.filter(schedule__in=[s.pk for s in items])
    ).order_by("-created_at", "-id")
    for run in recent[: 50 * max(1, len(items))]:
        bucket = last_runs.setdefault(run.schedule_id or 0, [])
        if len(bucket) < LAST_RUNS:
            bucket.append(run)
    rows = [
        {
            "schedule": s,
            "description": schedules.describe(s.frequency),
            "next_runs": schedules.next_runs(s),
            "last_runs": last_runs.get(s.pk, []),
        }
        for s in items
    ]
    return render(request, "feedback/schedules/schedule_list.html",
                  workflow_context(workflow, "schedules", rows=rows, time_zone=str(_zone(workflow))))  # fmt: skip


@member_required
def schedule_create(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    if request.method != "POST":
        preset = Action.objects.filter(
            workflow=workflow, pk=_int(request.GET.get("action"))
        ).first()
        start = (timezone.now() + dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        initial = {"operation_type": OperationType.ACTION_RUN, "action": preset, "execute_start": start,
                  "payload": {"item_column": (preset.options or {}).get("item_column", ""), "html_only": settings.EMAIL_HTML_ONLY} if preset else {"html_only": settings.EMAIL_HTML_ONLY}}  # fmt: skip
        return render(
            request, "feedback/schedules/schedule_form.html", _form_context(workflow, None, initial)
        )
    values: dict[str, Any] = {}
    try:
        values = _posted(request, workflow)
        schedule = schedules.schedule_create(workflow=workflow, actor=request.user, **values)
    except FeedbackError as exc:
        context = _form_context(
            workflow, None, values or {}, error=error_text(exc), error_field=exc.field
        )
        return render(request, "feedback/schedules/schedule_form.html", context, status=400)
    messages.success(request, _("Schedule “%(name)s” was created.") % {"name": schedule.name})
    return redirect("feedback:schedule_list", wid=workflow.pk)


@member_required
def schedule_edit(request: HttpRequest, wid: int, sid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    schedule = _schedule_or_404(workflow, sid)
    if request.method != "POST":
        return render(request, "feedback/schedules/schedule_form.html",
                      _form_context(workflow, schedule, _values_of(schedule)))  # fmt: skip
    values: dict[str, Any] = {}
    try:
        values = _posted(request, workflow)
        schedules.schedule_update(schedule=schedule, actor=request.user, **values)
    except FeedbackError as exc:
        context = _form_context(workflow, schedule, values or _values_of(schedule), error=error_text(exc),
                                error_field=exc.field)  # fmt: skip
        return render(request, "feedback/schedules/schedule_form.html", context, status=400)
    messages.success(request, _("Schedule “%(name)s” was saved.") % {"name": schedule.name})
    return redirect("feedback:schedule_list", wid=workflow.pk)


@member_required
def schedule_delete(request: HttpRequest, wid: int, sid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    schedule = _schedule_or_404(workflow, sid)
    if request.method == "POST":
        name = schedule.name
        schedules.schedule_delete(schedule=schedule, actor=request.user)
        messages.success(request, _("Schedule “%(name)s” was deleted.") % {"name": name})
        return redirect("feedback:schedule_list", wid=workflow.pk)
    return render(request, "feedback/schedules/schedule_delete.html",
                  workflow_context(workflow, "schedules", schedule=schedule))  # fmt: skip


@require_POST
@member_required
def schedule_pause(request: HttpRequest, wid: int, sid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    schedule = _schedule_or_404(workflow, sid)
    paused = schedule.status != ScheduleStatus.PAUSED
    schedules.schedule_pause(schedule=schedule, actor=request.user, paused=paused)
    return redirect("feedback:schedule_list", wid=workflow.pk)
