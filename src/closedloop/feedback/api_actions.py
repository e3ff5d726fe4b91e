"""API: actions of a workflow — list, create, read, update, delete, preview row N, run now."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, feedback_api_error
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS, Ref
from closedloop.feedback import actions as services
from closedloop.feedback import conditions as conds
from closedloop.feedback import render as rendering
from closedloop.feedback import selectors
from closedloop.feedback.models import Action, ActionColumn, Condition
from closedloop.feedback.services import FeedbackError

router = Router(tags=["feedback"])


class ConditionRef(Schema):
    id: int
    name: str
    count: int


class ActionColumnIO(Schema):
    column: str = Field(..., description="Column name.")
    condition: str | None = Field(None, description="Name of a condition of the action.")
    changes_allowed: bool = True


class RubricCellIO(Schema):
    column: str
    level: int = Field(..., ge=0, description="Index in the criterion column's categories.")
    description: str = ""
    feedback: str = ""


class ActionOut(Schema):
    id: int
    name: str
    description: str
    action_type: str
    filter: Ref | None
    text_content: str
    text_format: str
    subject: str
    target_url: str
    has_token: bool
    serve_enabled: bool
    serve_url: str
    active_from: dt.datetime | None
    active_to: dt.datetime | None
    shuffle: bool
    options: dict[str, Any]
    public_id: UUID
    conditions: list[ConditionRef]
    columns: list[ActionColumnIO]
    created_at: dt.datetime
    updated_at: dt.datetime


class ActionPatch(Schema):
    name: str | None = Field(None, max_length=200)
    description: str | None = None
    filter: int | None = Field(None, description="Filter id; 0 for every row.")
    text_content: str | None = None
    text_format: str | None = Field(None, description="html, markdown or text.")
    subject: str | None = Field(None, max_length=500)
    target_url: str | None = Field(None, max_length=500)
    token: str | None = Field(None, description="Bearer token for JSON actions (stored encrypted).")
    serve_enabled: bool | None = None
    active_from: dt.datetime | None = None
    active_to: dt.datetime | None = None
    shuffle: bool | None = None
    options: dict[str, Any] | None = None
    columns: list[ActionColumnIO] | None = Field(
        None, description="Survey questions, rubric criteria or TODO items (replace the list)."
    )
    rubric: list[RubricCellIO] | None = Field(None, description="Rubric cells (replace them).")


class ActionIn(ActionPatch):
    name: str = Field(..., max_length=200)  # type: ignore[assignment]
    action_type: str = Field(
        ...,
        description="personalized_text, email, sms, json, canvas_email, rubric, email_report, json_report, survey or todo_list.",
    )


class PreviewOut(Schema):
    index: int
    total: int
    recipient: str
    row_key: str
    subject: str
    body: str
    text: str
    conditions: dict[str, bool]
    next_all_false: int | None
    error: str | None


class RunIn(Schema):
    options: dict[str, Any] = Field(default_factory=dict, description="The run form's fields.")
    item_column: str | None = None
    subject: str | None = None
    cc: list[str] | str | None = None
    bcc: list[str] | str | None = None
    email_to: list[str] | str | None = None
    exclude_values: list[str] | None = None
    track_read: bool | None = None
    send_confirmation: bool | None = None
    html_only: bool | None = None
    target_url: str | None = None


def _action(
    action: Action, conditions: list[Condition], columns: list[ActionColumn]
) -> dict[str, Any]:
    return {
        "id": action.pk,
        "name": action.name,
        "description": action.description,
        "action_type": action.action_type,
        "filter": {"id": action.filter.pk, "name": action.filter.name} if action.filter else None,
        "text_content": action.text_content,
        "text_format": action.text_format,
        "subject": action.subject,
        "target_url": action.target_url,
        "has_token": bool(action.token_encrypted),
        "serve_enabled": action.serve_enabled,
        "serve_url": reverse("feedback:serve", args=[action.public_id]),
        "active_from": action.active_from,
        "active_to": action.active_to,
        "shuffle": action.shuffle,
        "options": action.options or {},
        "public_id": action.public_id,
        "conditions": [{"id": c.pk, "name": c.name, "count": c.selected_count} for c in conditions],
        "columns": [
            {
                "column": ac.column.name,
                "condition": ac.condition.name if ac.condition else None,
                "changes_allowed": ac.changes_allowed,
            }
            for ac in columns
        ],
        "created_at": action.created_at,
        "updated_at": action.updated_at,
    }


def _one(action: Action) -> dict[str, Any]:
    action = Action.objects.select_related("filter").get(pk=action.pk)
    conditions = list(Condition.objects.filter(action=action).order_by("position", "id"))
    columns = list(ActionColumn.objects.filter(action=action).select_related("column", "condition"))
    return _action(action, conditions, columns)


def _apply_extras(action: Action, membership: Any, payload: ActionPatch) -> None:
    if payload.columns is not None:
        services.action_set_columns(
            action=action, actor=membership.user, items=[c.dict() for c in payload.columns]
        )
    if payload.rubric is not None:
        services.rubric_set_cells(
            action=action, actor=membership.user, cells=[c.dict() for c in payload.rubric]
        )


def _fields(payload: ActionPatch, *, exclude_unset: bool) -> dict[str, Any]:
    fields = payload.dict(exclude_unset=exclude_unset, exclude={"columns", "rubric", "action_type"})
    if not exclude_unset:
        fields = {k: v for k, v in fields.items() if v is not None}
    if "filter" in fields and not fields["filter"]:
        fields["filter"] = None
    return fields


@router.get(
    "/workflows/{workflow_id}/actions",
    response={200: Page[ActionOut], **ERRORS},
    summary="Actions of a workflow",
)
def list_actions(request: HttpRequest, workflow_id: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = selectors.get_workflow(membership_of(request), workflow_id)
    qs = Action.objects.filter(workflow=workflow).select_related("filter").order_by("name", "pk")
    result = paginate(qs, page)
    items = result["items"]
    ids = [a.pk for a in items]
    conditions: dict[int, list[Condition]] = {}
    for c in Condition.objects.filter(action_id__in=ids).order_by("position", "id"):
        conditions.setdefault(c.action_id, []).append(c)
    columns: dict[int, list[ActionColumn]] = {}
    for ac in ActionColumn.objects.filter(action_id__in=ids).select_related("column", "condition"):
        columns.setdefault(ac.action_id, []).append(ac)
    result["items"] = [_action(a, conditions.get(a.pk, []), columns.get(a.pk, [])) for a in items]
    return result


@router.post(
    "/workflows/{workflow_id}/actions",
    response={201: ActionOut, **WRITE_ERRORS},
    summary="Create an action",
)
def create_action(
    request: HttpRequest, workflow_id: int, payload: ActionIn
) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    workflow = selectors.get_workflow(membership, workflow_id, "edit")
    try:
        with transaction.atomic():
            action = services.safe_create(
                workflow=workflow,
                actor=membership.user,
                action_type=payload.action_type,
                **_fields(payload, exclude_unset=False),
            )
            _apply_extras(action, membership, payload)
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None
    return Status(201, _one(action))


@router.get(
    "/workflows/{workflow_id}/actions/{action_id}",
    response={200: ActionOut, **ERRORS},
    summary="One action",
)
def get_action(request: HttpRequest, workflow_id: int, action_id: int) -> dict[str, Any]:
    return _one(selectors.get_action(membership_of(request), workflow_id, action_id))


@router.patch(
    "/workflows/{workflow_id}/actions/{action_id}",
    response={200: ActionOut, **WRITE_ERRORS},
    summary="Change an action (only the fields sent)",
)
def update_action(
    request: HttpRequest, workflow_id: int, action_id: int, payload: ActionPatch
) -> dict[str, Any]:
    membership = membership_of(request)
    action = selectors.get_action(membership, workflow_id, action_id, "edit")
    try:
        with transaction.atomic():
            fields = _fields(payload, exclude_unset=True)
            if fields:
                services.action_update(action=action, actor=membership.user, **fields)
            _apply_extras(action, membership, payload)
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None
    return _one(action)


@router.delete(
    "/workflows/{workflow_id}/actions/{action_id}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete an action",
)
def delete_action(request: HttpRequest, workflow_id: int, action_id: int) -> Status[None]:
    membership = membership_of(request)
    action = selectors.get_action(membership, workflow_id, action_id, "edit")
    services.action_delete(action=action, actor=membership.user)
    return Status(204, None)


@router.get(
    "/workflows/{workflow_id}/actions/{action_id}/preview",
    response={200: PreviewOut, **ERRORS},
    summary="Preview message N (1-based) of the action's rows",
)
def preview_action(
    request: HttpRequest, workflow_id: int, action_id: int, row: int = 1
) -> dict[str, Any]:
    action = selectors.get_action(membership_of(request), workflow_id, action_id)
    result = rendering.preview_row(action, row)
    return {
        "index": result.get("index", 0),
        "total": result.get("total", 0),
        "recipient": result.get("recipient", ""),
        "row_key": result.get("row_key", ""),
        "subject": result.get("subject", ""),
        "body": result.get("body", ""),
        "text": result.get("text", ""),
        "conditions": result.get("conditions", {}),
        "next_all_false": result.get("next_all_false"),
        "error": result.get("error"),
    }


@router.post(
    "/workflows/{workflow_id}/actions/{action_id}/run",
    response={202: dict[str, Any], **WRITE_ERRORS},
    summary="Run an action now (returns the Job)",
)
def run_action(
    request: HttpRequest, workflow_id: int, action_id: int, payload: RunIn
) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    action = selectors.get_action(membership, workflow_id, action_id, "edit")
    try:
        from closedloop.feedback.runs import start_run
    except ImportError:  # pragma: no cover - delivery not installed
        raise ApiError(501, _("Running actions is not available on this server.")) from None
    from closedloop.jobs.api import _job

    options = {**payload.options, **payload.dict(exclude_unset=True, exclude={"options"})}
    try:
        run = start_run(action=action, actor=membership.user, options=options)
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None
    except (conds.ConditionError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    job = run.job
    return Status(202, {"run_id": run.pk, "job": _job(job) if job is not None else None})
