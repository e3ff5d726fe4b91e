"""API: workflow export (zip) and import (closedloop zip or OnTask .gz + CSV), action-only
export and import, and plugin runs.

Access follows ``selectors.get_workflow``: exporting needs to see the workflow, importing
actions and running plugins need to edit it, importing a workflow needs a role that may
create workflows. Other accounts' workflows and unshared ones are 404.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, forbidden
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.feedback import plugins, transfer
from closedloop.feedback.api_workflows import feedback_errors
from closedloop.feedback.selectors import can_create_workflows, get_workflow

router = Router(tags=["feedback"])


class ImportOut(Schema):
    id: int
    name: str
    nrows: int
    ncols: int
    actions: list[str]
    notes: list[str]


class ExportQuery(Schema):
    actions: str = Field(
        default="", description="Comma-separated action ids to include (empty: all actions)."
    )


class PluginRunIn(Schema):
    plugin_key: str
    key: str = Field(description="Key column the outputs are merged on.")
    input_columns: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None


class JobOut(Schema):
    job_id: int
    status: str


class PluginOut(Schema):
    key: str
    name: str
    description: str
    status: str
    input_column_names: list[str]
    output_column_names: list[str]
    output_suffix: str
    parameters: list[dict[str, Any]]
    errors: list[str]


def _ids(raw: str) -> list[int] | None:
    if not raw.strip():
        return None
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ApiError(400, _("actions must be comma-separated ids."), [("actions", raw)]) from None


def _read(upload: UploadedFile, field: str) -> bytes:
    if upload.size and upload.size > settings.DATAOPS_MAX_UPLOAD_SIZE:
        raise ApiError(
            413,
            _("The file is larger than DATAOPS_MAX_UPLOAD_SIZE allows."),
            [(field, upload.name or "")],
        )
    return upload.read()


def _download(data: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@router.get(
    "/workflows/{workflow_id}/export",
    response={200: None, **ERRORS},
    summary="Export a workflow (zip: workflow.json + data.csv)",
)
def export_workflow(
    request: HttpRequest, workflow_id: int, query: Query[ExportQuery]
) -> HttpResponse:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id)
    data = transfer.workflow_export(
        workflow=workflow, actor=membership.user, action_ids=_ids(query.actions)
    )
    return _download(data, f"{slugify(workflow.name) or 'workflow'}.zip", "application/zip")


@router.get(
    "/workflows/{workflow_id}/export/actions",
    response={200: None, **ERRORS},
    summary="Export actions only (JSON)",
)
def export_actions(
    request: HttpRequest, workflow_id: int, query: Query[ExportQuery]
) -> HttpResponse:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id)
    data = transfer.actions_export(
        workflow=workflow, actor=membership.user, action_ids=_ids(query.actions)
    )
    return _download(
        data, f"{slugify(workflow.name) or 'workflow'}-actions.json", "application/json"
    )


@router.post(
    "/workflows/import",
    response={201: ImportOut, **WRITE_ERRORS},
    summary="Import a workflow (closedloop zip, or OnTask .gz with its data as CSV)",
)
def import_workflow(
    request: HttpRequest,
    file: File[UploadedFile],
    name: Form[str] = "",
    csv: File[UploadedFile] | None = None,
) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    if not can_create_workflows(membership):
        raise forbidden(_("Your role cannot create workflows."))
    data = _read(file, "file")
    csv_data = _read(csv, "csv") if csv is not None else None
    with feedback_errors():
        result = transfer.workflow_import(
            account=membership.account, actor=membership.user, name=name, data=data,
            file_name=file.name or "upload", csv_data=csv_data,
            csv_name=(csv.name or "data.csv") if csv is not None else "data.csv",
        )  # fmt: skip
    workflow = result.workflow
    return Status(
        201,
        {
            "id": workflow.pk,
            "name": workflow.name,
            "nrows": workflow.nrows,
            "ncols": workflow.ncols,
            "actions": [a.name for a in result.actions],
            "notes": result.notes,
        },
    )


@router.post(
    "/workflows/{workflow_id}/actions/import",
    response={201: ImportOut, **WRITE_ERRORS},
    summary="Import actions (closedloop JSON or OnTask .gz) into a workflow",
)
def import_actions(
    request: HttpRequest, workflow_id: int, file: File[UploadedFile]
) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    data = _read(file, "file")
    with feedback_errors():
        result = transfer.actions_import(
            workflow=workflow, actor=membership.user, data=data, file_name=file.name or "upload"
        )
    return Status(
        201,
        {
            "id": workflow.pk,
            "name": workflow.name,
            "nrows": workflow.nrows,
            "ncols": workflow.ncols,
            "actions": [a.name for a in result.actions],
            "notes": result.notes,
        },
    )


@router.get(
    "/plugins", response={200: list[PluginOut], **ERRORS}, summary="Plugins and their status"
)
def list_plugins(request: HttpRequest) -> list[dict[str, Any]]:
    membership = membership_of(request)
    chosen = plugins.settings_by_key(membership.account)
    return [
        {
            "key": info.key,
            "name": info.name,
            "description": info.description,
            "status": plugins.plugin_status(info, chosen.get(info.key)),
            "input_column_names": info.input_column_names,
            "output_column_names": info.output_column_names,
            "output_suffix": info.output_suffix,
            "parameters": [
                {
                    "name": p.name,
                    "type": p.type,
                    "allowed": p.allowed,
                    "default": p.default,
                    "help": p.help,
                }
                for p in info.parameters
            ],
            "errors": info.errors if membership.is_admin else [],
        }
        for info in plugins.discover()
    ]


@router.post(
    "/workflows/{workflow_id}/plugins/run",
    response={202: JobOut, **WRITE_ERRORS},
    summary="Run an enabled plugin (returns the Job)",
)
def run_plugin(
    request: HttpRequest, workflow_id: int, payload: PluginRunIn
) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    workflow = get_workflow(membership, workflow_id, need="edit")
    params = payload.dict(exclude={"plugin_key"})
    with feedback_errors():
        job = plugins.run_plugin(
            workflow=workflow, actor=membership.user, plugin_key=payload.plugin_key, params=params
        )
    return Status(202, {"job_id": job.pk, "status": job.status})
