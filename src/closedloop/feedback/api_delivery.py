"""API: action runs (with delivery counts), their deliveries, re-send and cancel, and
scheduled operations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, feedback_api_error
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS, Ref
from closedloop.feedback import runs, schedules, selectors
from closedloop.feedback.models import (
    Action,
    ActionRun,
    Delivery,
    DeliveryStatus,
    OperationType,
    Schedule,
    Workflow,
)
from closedloop.feedback.services import FeedbackError

router = Router(tags=["feedback"])

HIDDEN_OPTIONS = {"token_encrypted", "token"}


class CountsOut(Schema):
    queued: int
    sending: int
    sent: int
    failed: int
    cancelled: int
    opened: int
    total: int


class RunOut(Schema):
    id: int
    action: Ref
    status: str
    total: int
    track_column: str
    schedule: Ref | None
    started_by: str | None
    job_id: int | None
    options: dict[str, Any]
    counts: CountsOut
    created_at: dt.datetime
    finished_at: dt.datetime | None


class DeliveryOut(Schema):
    id: int
    channel: str
    recipient: str
    row_key: str
    subject: str
    status: str
    attempts: int
    error: str
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    opened_at: dt.datetime | None
    open_count: int


class DeliveryFilters(Schema):
    status: str = Field("", description="queued, sending, sent, failed, cancelled or opened.")
    recipient: str = Field("", max_length=320, description="Recipient contains.")


class CountOut(Schema):
    count: int


class ScheduleIn(Schema):
    name: str = Field(..., max_length=200)
    description: str = ""
    operation_type: str = Field(
        OperationType.ACTION_RUN,
        description="action_run, sql_refresh, source_refresh or plugin_run.",
    )
    action: int | None = Field(None, description="Id of the action to run (action_run).")
    payload: dict[str, Any] = Field(
        {}, description="Run options (item_column, subject, cc, bcc, track_read, ...)."
    )
    execute_start: dt.datetime | None = None
    execute_until: dt.datetime | None = None
    frequency: str = Field("", max_length=100, description="5-field crontab; empty: once.")
    incremental: bool = False


class SchedulePatch(ScheduleIn):
    name: str = Field("", max_length=200)


class ScheduleOut(Schema):
    id: int
    name: str
    description: str
    operation_type: str
    action: Ref | None
    payload: dict[str, Any]
    execute_start: dt.datetime | None
    execute_until: dt.datetime | None
    frequency: str
    frequency_text: str
    incremental: bool
    status: str
    next_runs: list[dt.datetime]
    last_run_at: dt.datetime | None
    last_outcome: str


def _workflow(request: HttpRequest, wid: int, need: selectors.Need = "view") -> Workflow:
    return selectors.get_workflow(membership_of(request), wid, need)


def _run(workflow: Workflow, rid: int) -> ActionRun:
    run = (
        runs.runs_with_counts(ActionRun.objects.filter(pk=rid, action__workflow=workflow))
        .select_related("action", "schedule", "started_by")
        .first()
    )
    if run is None:
        raise ApiError(404, _("Not found."))
    return run  # type: ignore[no-any-return]


def _run_out(run: ActionRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "action": {"id": run.action_id, "name": run.action.name},
        "status": run.status,
        "total": run.total,
        "track_column": run.track_column,
        "schedule": {"id": run.schedule_id, "name": run.schedule.name} if run.schedule else None,
        "started_by": run.started_by.email if run.started_by else None,
        "job_id": run.job_id,
        "options": {k: v for k, v in (run.options or {}).items() if k not in HIDDEN_OPTIONS},
        "counts": {
            "queued": run.queued,  # type: ignore[attr-defined]
            "sending": run.sending,  # type: ignore[attr-defined]
            "sent": run.sent,  # type: ignore[attr-defined]
            "failed": run.failed,  # type: ignore[attr-defined]
            "cancelled": run.cancelled,  # type: ignore[attr-defined]
            "opened": run.opened,  # type: ignore[attr-defined]
            "total": run.total_rows,  # type: ignore[attr-defined]
        },
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


@router.get(
    "/workflows/{wid}/runs", response={200: Page[RunOut], **ERRORS}, summary="Runs of a workflow"
)
def list_runs(request: HttpRequest, wid: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = _workflow(request, wid)
    qs = runs.runs_with_counts(
        ActionRun.objects.filter(action__workflow=workflow).select_related(
            "action", "schedule", "started_by"
        )
    ).order_by("-created_at", "-id")
    return paginate(qs, page, _run_out)


@router.get("/workflows/{wid}/runs/{rid}", response={200: RunOut, **ERRORS}, summary="One run")
def get_run(request: HttpRequest, wid: int, rid: int) -> dict[str, Any]:
    return _run_out(_run(_workflow(request, wid), rid))


@router.get(
    "/workflows/{wid}/runs/{rid}/deliveries",
    response={200: Page[DeliveryOut], **ERRORS},
    summary="The messages of a run with their status",
)
def list_deliveries(
    request: HttpRequest,
    wid: int,
    rid: int,
    filters: Query[DeliveryFilters],
    page: Query[PageParams],
) -> dict[str, Any]:
    run = _run(_workflow(request, wid), rid)
    qs = Delivery.objects.filter(run=run).defer("body", "extra")
    if filters.status == "opened":
        qs = qs.filter(opened_at__isnull=False)
    elif filters.status:
        if filters.status not in DeliveryStatus.values:
            raise ApiError(400, _("Unknown status."), [("status", _("Unknown status."))])
        qs = qs.filter(status=filters.status)
    if filters.recipient:
        qs = qs.filter(recipient__icontains=filters.recipient)
    return paginate(qs.order_by("id"), page)


@router.post(
    "/workflows/{wid}/runs/{rid}/resend",
    response={200: CountOut, **WRITE_ERRORS},
    summary="Queue the failed messages of a run again",
)
def resend(request: HttpRequest, wid: int, rid: int) -> dict[str, int]:
    workflow = _workflow(request, wid, "edit")
    run = _run(workflow, rid)
    return {"count": runs.resend_failed(run=run, actor=request.user)}


@router.post(
    "/workflows/{wid}/runs/{rid}/cancel",
    response={200: CountOut, **WRITE_ERRORS},
    summary="Cancel the messages of a run not sent yet",
)
def cancel(request: HttpRequest, wid: int, rid: int) -> dict[str, int]:
    workflow = _workflow(request, wid, "edit")
    run = _run(workflow, rid)
    return {"count": runs.cancel_queued(run=run, actor=request.user)}


# --- schedules --------------------------------------------------------------------------------


def _schedule_out(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "description": schedule.description,
        "operation_type": schedule.operation_type,
        "action": {"id": schedule.action_id, "name": schedule.action.name}
        if schedule.action
        else None,
        "payload": {k: v for k, v in schedule.payload.items() if k not in HIDDEN_OPTIONS},
        "execute_start": schedule.execute_start,
        "execute_until": schedule.execute_until,
        "frequency": schedule.frequency,
        "frequency_text": schedules.describe(schedule.frequency),
        "incremental": schedule.incremental,
        "status": schedule.status,
        "next_runs": schedules.next_runs(schedule),
        "last_run_at": schedule.last_run_at,
        "last_outcome": schedule.last_outcome,
    }


def _schedule(workflow: Workflow, sid: int) -> Schedule:
    schedule = (
        Schedule.objects.filter(pk=sid, workflow=workflow)
        .select_related("action", "account", "workflow")
        .first()
    )
    if schedule is None:
        raise ApiError(404, _("Not found."))
    return schedule  # type: ignore[no-any-return]


def _values(workflow: Workflow, data: dict[str, Any]) -> dict[str, Any]:
    if "action" in data:
        aid = data["action"]
        action = Action.objects.filter(pk=aid, workflow=workflow).first() if aid else None
        if aid and action is None:
            raise ApiError(
                400,
                _("There is no action with id %(id)s in this workflow.") % {"id": aid},
                [("action", _("There is no such action in this workflow."))],
            )
        data["action"] = action
    return data


@router.get(
    "/workflows/{wid}/schedules",
    response={200: Page[ScheduleOut], **ERRORS},
    summary="Scheduled operations of a workflow",
)
def list_schedules(request: HttpRequest, wid: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = _workflow(request, wid)
    qs = Schedule.objects.filter(workflow=workflow).select_related("action", "account")
    return paginate(qs.order_by("name", "pk"), page, _schedule_out)


@router.post(
    "/workflows/{wid}/schedules",
    response={201: ScheduleOut, **WRITE_ERRORS},
    summary="Schedule an operation",
)
def create_schedule(request: HttpRequest, wid: int, payload: ScheduleIn) -> Status[dict[str, Any]]:
    workflow = _workflow(request, wid, "edit")
    values = _values(workflow, payload.dict())
    try:
        schedule = schedules.schedule_create(workflow=workflow, actor=request.user, **values)
    except FeedbackError as exc:
        raise feedback_api_error(exc) from exc
    return Status(201, _schedule_out(_schedule(workflow, schedule.pk)))


@router.get(
    "/workflows/{wid}/schedules/{sid}",
    response={200: ScheduleOut, **ERRORS},
    summary="One scheduled operation",
)
def get_schedule(request: HttpRequest, wid: int, sid: int) -> dict[str, Any]:
    return _schedule_out(_schedule(_workflow(request, wid), sid))


@router.patch(
    "/workflows/{wid}/schedules/{sid}",
    response={200: ScheduleOut, **WRITE_ERRORS},
    summary="Change a scheduled operation",
)
def update_schedule(
    request: HttpRequest, wid: int, sid: int, payload: SchedulePatch
) -> dict[str, Any]:
    workflow = _workflow(request, wid, "edit")
    schedule = _schedule(workflow, sid)
    values = _values(workflow, payload.dict(exclude_unset=True))
    try:
        schedules.schedule_update(schedule=schedule, actor=request.user, **values)
    except FeedbackError as exc:
        raise feedback_api_error(exc) from exc
    return _schedule_out(_schedule(workflow, sid))


@router.delete(
    "/workflows/{wid}/schedules/{sid}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a scheduled operation",
)
def delete_schedule(request: HttpRequest, wid: int, sid: int) -> Status[None]:
    workflow = _workflow(request, wid, "edit")
    schedules.schedule_delete(schedule=_schedule(workflow, sid), actor=request.user)
    return Status(204, None)
