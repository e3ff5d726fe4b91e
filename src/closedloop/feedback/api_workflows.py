"""API: feedback workflows, their columns, single rows, logs and undo.

Who may do what follows ``selectors.get_workflow``: workflows one cannot see are 404
(other accounts, not shared), a viewer share gets 403 on writes, renaming and deleting
need the owner (or an account admin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.accounts.models import Membership, Role
from closedloop.api.auth import membership_of
from closedloop.api.errors import feedback_api_error, forbidden
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.feedback import columns as column_services
from closedloop.feedback import services, table
from closedloop.feedback.models import (
    COLUMN_NAME_MAX,
    Column,
    ShareRole,
    Workflow,
    WorkflowLog,
    WorkflowShare,
)
from closedloop.feedback.selectors import can_create_workflows, get_workflow, visible_workflows
from closedloop.feedback.values import FeedbackError

router = Router(tags=["feedback"])

DataTypeName = Literal["string", "integer", "double", "boolean", "datetime"]


@contextmanager
def feedback_errors() -> Iterator[None]:
    """FeedbackError -> the one error shape (400, 409 for conflicts, 404 for a missing row)."""
    try:
        yield
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None


# --- schemas -------------------------------------------------------------------------------


class WorkflowOut(Schema):
    id: int
    name: str
    description: str
    attributes: dict[str, Any]
    owner: str = Field(description="The owner's email.")
    role: str = Field(description="Your access: owner, editor or viewer.")
    nrows: int
    ncols: int
    version: int = Field(description="Send it back as `version` to detect conflicting edits.")
    created_at: dt.datetime
    updated_at: dt.datetime


class WorkflowIn(Schema):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    attributes: dict[str, Any] = {}


class WorkflowPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    attributes: dict[str, Any] | None = None
    version: int | None = Field(None, description="The version your change is based on.")


class WorkflowPut(WorkflowIn):
    version: int | None = None


class ColumnOut(Schema):
    id: int
    name: str
    data_type: str
    is_key: bool
    position: int
    description: str
    categories: list[Any]
    active_from: dt.datetime | None
    active_to: dt.datetime | None
    in_viz: bool


class RandomIn(Schema):
    values: list[Any] | None = None
    int_range: tuple[int, int] | None = None
    seed: int | None = None


class FormulaIn(Schema):
    op: Literal["sum", "prod", "max", "min", "mean", "median", "std", "all", "any"]
    inputs: list[str] = Field(..., min_length=1)


class ColumnIn(Schema):
    name: str = Field(..., min_length=1, max_length=COLUMN_NAME_MAX)
    data_type: DataTypeName = "string"
    initial: Any = None
    is_key: bool = False
    description: str = ""
    categories: list[Any] = []
    position: int | None = Field(None, ge=1)
    active_from: dt.datetime | None = None
    active_to: dt.datetime | None = None
    in_viz: bool = True
    random: RandomIn | None = Field(None, description="Make a random column instead.")
    formula: FormulaIn | None = Field(None, description="Make a formula column instead.")
    version: int | None = None


class ColumnPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=COLUMN_NAME_MAX)
    data_type: DataTypeName | None = None
    is_key: bool | None = None
    description: str | None = None
    categories: list[Any] | None = None
    position: int | None = Field(None, ge=1)
    active_from: dt.datetime | None = None
    active_to: dt.datetime | None = None
    in_viz: bool | None = None
    version: int | None = None


class RenameIn(Schema):
    name: str = Field(..., min_length=1, max_length=COLUMN_NAME_MAX)
    version: int | None = None


class RowIn(Schema):
    values: dict[str, Any]
    version: int | None = None


class RowOut(Schema):
    values: dict[str, Any]


class LogOut(Schema):
    id: int
    name: str
    user: str | None
    payload: dict[str, Any]
    created_at: dt.datetime


class LogFilters(Schema):
    name: str = Field("", max_length=60, description="Only events with this name.")
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class UndoOut(Schema):
    label: str
    number: int
    nrows: int
    version: int


# --- helpers -------------------------------------------------------------------------------


def _roles(membership: Membership, workflows: list[Workflow]) -> dict[int, str]:
    if membership.role == Role.ADMIN:
        return {w.pk: ShareRole.OWNER for w in workflows}
    shared = dict(
        WorkflowShare.objects.filter(
            workflow_id__in=[w.pk for w in workflows], user_id=membership.user_id
        ).values_list("workflow_id", "role")
    )
    return {
        w.pk: ShareRole.OWNER if w.owner_id == membership.user_id else shared.get(w.pk, "")
        for w in workflows
    }


def _workflow(workflow: Workflow, role: str) -> dict[str, Any]:
    return {
        "id": workflow.pk,
        "name": workflow.name,
        "description": workflow.description,
        "attributes": workflow.attributes,
        "owner": workflow.owner.email,
        "role": role,
        "nrows": workflow.nrows,
        "ncols": workflow.ncols,
        "version": workflow.version,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
    }


def _reload(membership: Membership, pk: int) -> dict[str, Any]:
    workflow = get_workflow(membership, pk)
    return _workflow(workflow, workflow.user_role)  # type: ignore[attr-defined]


def _column(workflow: Workflow, column_id: int) -> Column:
    column = Column.objects.filter(workflow=workflow, pk=column_id).first()
    if column is None:
        raise Http404
    column.workflow = workflow
    return column


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _row(workflow: Workflow, key_column: str, key_value: Any) -> dict[str, Any]:
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    with feedback_errors():
        rid = services.find_row(workflow, columns, key_column, key_value)
    rows = table.fetch_rows(workflow, columns, where=f"{table.qn(table.ROW_ID)} = %s", params=[rid])
    return {"values": {c.name: _json(rows[0][c.name]) for c in columns}}


# --- workflows -----------------------------------------------------------------------------


@router.get("/workflows", response={200: Page[WorkflowOut], **ERRORS}, summary="List workflows")
def list_workflows(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership = membership_of(request)
    qs = visible_workflows(membership).select_related("owner").order_by("name", "pk")
    result = paginate(qs, page)
    roles = _roles(membership, result["items"])
    result["items"] = [_workflow(w, roles[w.pk]) for w in result["items"]]
    return result


@router.post("/workflows", response={201: WorkflowOut, **WRITE_ERRORS}, summary="Create a workflow")
def create_workflow(request: HttpRequest, payload: WorkflowIn) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    if not can_create_workflows(membership):
        raise forbidden(_("Your role cannot create workflows."))
    with feedback_errors():
        workflow = services.workflow_create(
            account=membership.account,
            actor=membership.user,
            name=payload.name,
            description=payload.description,
            attributes=payload.attributes,
        )
    return Status(201, _reload(membership, workflow.pk))


@router.get(
    "/workflows/{workflow_id}", response={200: WorkflowOut, **ERRORS}, summary="One workflow"
)
def get_workflow_api(request: HttpRequest, workflow_id: int) -> dict[str, Any]:
    return _reload(membership_of(request), workflow_id)


def _update(request: HttpRequest, workflow_id: int, values: dict[str, Any]) -> dict[str, Any]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    version = values.pop("version", None)
    if "name" in values and values["name"] != workflow.name:
        get_workflow(membership, workflow_id, need="own")
    with feedback_errors():
        services.workflow_update(
            workflow=workflow, actor=membership.user, expected_version=version, **values
        )
    return _reload(membership, workflow.pk)


@router.patch(
    "/workflows/{workflow_id}",
    response={200: WorkflowOut, **WRITE_ERRORS},
    summary="Change a workflow",
)
def patch_workflow(
    request: HttpRequest, workflow_id: int, payload: WorkflowPatch
) -> dict[str, Any]:
    values = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    return _update(request, workflow_id, values)


@router.put(
    "/workflows/{workflow_id}",
    response={200: WorkflowOut, **WRITE_ERRORS},
    summary="Replace a workflow's settings",
)
def put_workflow(request: HttpRequest, workflow_id: int, payload: WorkflowPut) -> dict[str, Any]:
    return _update(request, workflow_id, payload.dict())


@router.delete(
    "/workflows/{workflow_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a workflow"
)
def delete_workflow(request: HttpRequest, workflow_id: int) -> Status[None]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="own")
    with feedback_errors():
        services.workflow_delete(
            workflow=workflow, actor=membership.user, confirm_name=workflow.name
        )
    return Status(204, None)


@router.post(
    "/workflows/{workflow_id}/undo",
    response={200: UndoOut, **WRITE_ERRORS},
    summary="Undo the last data operation",
)
def undo(request: HttpRequest, workflow_id: int) -> dict[str, Any]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    with feedback_errors():
        version = services.workflow_undo(workflow=workflow, actor=membership.user)
    return {
        "label": version.label,
        "number": version.number,
        "nrows": workflow.nrows,
        "version": workflow.version,
    }


@router.get(
    "/workflows/{workflow_id}/logs",
    response={200: Page[LogOut], **ERRORS},
    summary="The workflow's log",
)
def list_logs(
    request: HttpRequest, workflow_id: int, filters: Query[LogFilters], page: Query[PageParams]
) -> dict[str, Any]:
    workflow = get_workflow(membership_of(request), workflow_id)
    qs = WorkflowLog.objects.filter(workflow=workflow).select_related("user")
    if filters.name:
        qs = qs.filter(name=filters.name)
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)

    def item(log: WorkflowLog) -> dict[str, Any]:
        return {
            "id": log.pk,
            "name": log.name,
            "user": log.user.email if log.user else None,
            "payload": log.payload,
            "created_at": log.created_at,
        }

    return paginate(qs.order_by("-created_at", "-id"), page, item)


# --- columns -------------------------------------------------------------------------------


@router.get(
    "/workflows/{workflow_id}/columns",
    response={200: Page[ColumnOut], **ERRORS},
    summary="List columns",
)
def list_columns(request: HttpRequest, workflow_id: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = get_workflow(membership_of(request), workflow_id)
    return paginate(Column.objects.filter(workflow=workflow).order_by("position", "id"), page)


@router.post(
    "/workflows/{workflow_id}/columns",
    response={201: ColumnOut, **WRITE_ERRORS},
    summary="Add a column",
)
def create_column(request: HttpRequest, workflow_id: int, payload: ColumnIn) -> Status[Column]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    actor = membership.user
    with feedback_errors():
        if payload.random is not None:
            column = column_services.column_add_random(
                workflow=workflow,
                actor=actor,
                name=payload.name,
                values=payload.random.values,
                int_range=payload.random.int_range,
                seed=payload.random.seed,
                expected_version=payload.version,
            )
        elif payload.formula is not None:
            column = column_services.column_add_formula(
                workflow=workflow,
                actor=actor,
                name=payload.name,
                op=payload.formula.op,
                inputs=payload.formula.inputs,
                expected_version=payload.version,
            )
        else:
            values = payload.dict(exclude={"random", "formula", "version"})
            column = column_services.column_add(
                workflow=workflow, actor=actor, expected_version=payload.version, **values
            )
    return Status(201, column)


@router.get(
    "/workflows/{workflow_id}/columns/{column_id}",
    response={200: ColumnOut, **ERRORS},
    summary="One column",
)
def get_column(request: HttpRequest, workflow_id: int, column_id: int) -> Column:
    return _column(get_workflow(membership_of(request), workflow_id), column_id)


@router.patch(
    "/workflows/{workflow_id}/columns/{column_id}",
    response={200: ColumnOut, **WRITE_ERRORS},
    summary="Change a column (name, type, key, categories, position, ...)",
)
def patch_column(
    request: HttpRequest, workflow_id: int, column_id: int, payload: ColumnPatch
) -> Column:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    column = _column(workflow, column_id)
    values = payload.dict(exclude_unset=True)
    version = values.pop("version", None)
    actor = membership.user
    with feedback_errors():
        if version is not None:
            services.bump_version(workflow, version)
        if values.get("name") is not None:
            column_services.column_rename(column=column, actor=actor, new_name=values.pop("name"))
        if values.get("data_type") is not None:
            column_services.column_change_type(
                column=column, actor=actor, data_type=values.pop("data_type")
            )
        if values.get("position") is not None:
            column_services.column_move(column=column, actor=actor, position=values.pop("position"))
        values = {k: v for k, v in values.items() if k in column_services.UPDATABLE}
        if "categories" in values and values["categories"] is None:
            values["categories"] = []
        if values:
            column_services.column_update(column=column, actor=actor, **values)
    return _column(workflow, column_id)


@router.post(
    "/workflows/{workflow_id}/columns/{column_id}/rename",
    response={200: ColumnOut, **WRITE_ERRORS},
    summary="Rename a column (filters, conditions and templates follow)",
)
def rename_column(
    request: HttpRequest, workflow_id: int, column_id: int, payload: RenameIn
) -> Column:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    column = _column(workflow, column_id)
    with feedback_errors():
        return column_services.column_rename(
            column=column,
            actor=membership.user,
            new_name=payload.name,
            expected_version=payload.version,
        )


@router.delete(
    "/workflows/{workflow_id}/columns/{column_id}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a column",
)
def delete_column(
    request: HttpRequest, workflow_id: int, column_id: int, force: bool = False
) -> Status[None]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    column = _column(workflow, column_id)
    with feedback_errors():
        column_services.column_delete(column=column, actor=membership.user, force=force)
    return Status(204, None)


# --- rows ----------------------------------------------------------------------------------


@router.get(
    "/workflows/{workflow_id}/rows/{key_column}/{path:key_value}",
    response={200: RowOut, **ERRORS},
    summary="One row, by a key column's value",
)
def get_row(
    request: HttpRequest, workflow_id: int, key_column: str, key_value: str
) -> dict[str, Any]:
    workflow = get_workflow(membership_of(request), workflow_id)
    return _row(workflow, key_column, key_value)


@router.post(
    "/workflows/{workflow_id}/rows", response={201: RowOut, **WRITE_ERRORS}, summary="Add a row"
)
def create_row(request: HttpRequest, workflow_id: int, payload: RowIn) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    with feedback_errors():
        rid = services.row_insert(
            workflow=workflow,
            actor=membership.user,
            values=payload.values,
            expected_version=payload.version,
        )
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    rows = table.fetch_rows(workflow, columns, where=f"{table.qn(table.ROW_ID)} = %s", params=[rid])
    return Status(201, {"values": {c.name: _json(rows[0][c.name]) for c in columns}})


@router.patch(
    "/workflows/{workflow_id}/rows/{key_column}/{path:key_value}",
    response={200: RowOut, **WRITE_ERRORS},
    summary="Change a row",
)
def patch_row(
    request: HttpRequest, workflow_id: int, key_column: str, key_value: str, payload: RowIn
) -> dict[str, Any]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    with feedback_errors():
        services.row_update(
            workflow=workflow,
            actor=membership.user,
            key_column=key_column,
            key_value=key_value,
            values=payload.values,
            expected_version=payload.version,
        )
    new_key = payload.values.get(key_column, key_value)
    return _row(workflow, key_column, new_key)


@router.delete(
    "/workflows/{workflow_id}/rows/{key_column}/{path:key_value}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a row",
)
def delete_row(
    request: HttpRequest, workflow_id: int, key_column: str, key_value: str
) -> Status[None]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    with feedback_errors():
        services.row_delete(
            workflow=workflow, actor=membership.user, key_column=key_column, key_value=key_value
        )
    return Status(204, None)
