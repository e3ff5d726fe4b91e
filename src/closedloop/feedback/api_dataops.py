"""API: a workflow's table as a whole — read it, load (replace) it, merge into it.

Bodies are ``text/csv`` (parsed and typed exactly as the upload wizard does) or JSON
(``{"records": [...], ...}``). Errors are 400 with the row and column in each message;
viewers get 403 on writes and workflows one cannot see are 404.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any, Literal

import polars as pl
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, feedback_api_error
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.feedback import table
from closedloop.feedback.dataops.infer import as_text
from closedloop.feedback.dataops.merge import load_frame, merge_frame
from closedloop.feedback.dataops.sources import ParsedTable, parse_csv, parse_records
from closedloop.feedback.models import Column, Workflow
from closedloop.feedback.selectors import get_workflow
from closedloop.feedback.services import FeedbackError

router = Router(tags=["feedback"])

How = Literal["outer", "inner", "left", "right"]
BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "records": {"type": "array", "items": {"type": "object"}},
                        "keys": {"type": "array", "items": {"type": "string"}},
                        "how": {"type": "string", "enum": ["outer", "inner", "left", "right"]},
                        "left_on": {"type": "string"},
                        "right_on": {"type": "string"},
                    },
                    "required": ["records"],
                }
            },
        },
    }
}


class ColumnOut(Schema):
    name: str
    type: str
    is_key: bool


class TableOut(Schema):
    columns: list[ColumnOut]
    records: list[dict[str, Any]]


class LoadOut(Schema):
    nrows: int
    ncols: int
    columns: list[ColumnOut]


class ColumnPlanOut(Schema):
    name: str
    tag: str = Field(description="new, update, renamed, ignored or key")
    type: str
    source_name: str
    is_key: bool


class MergeOut(Schema):
    added: int
    updated: int
    unchanged: int
    dropped: int
    nrows: int
    columns: list[ColumnPlanOut]


class TableQuery(Schema):
    format: Literal["json", "csv"] = "json"


class LoadQuery(Schema):
    keys: str = Field("", description="Key columns, comma-separated (JSON bodies may send `keys`).")


class MergeQuery(Schema):
    how: How | None = None
    left_on: str | None = None
    right_on: str | None = None
    clear_with_empty: bool = False
    dry_run: bool = Field(False, description="Return the counts without changing anything.")


def _body(request: HttpRequest, workflow: Workflow) -> tuple[ParsedTable, dict[str, Any]]:
    """The parsed body and the JSON options that came with it."""
    content_type = (request.content_type or "").lower()
    time_zone = getattr(workflow.account, "time_zone", "") or "UTC"
    if content_type in ("text/csv", "text/plain", "application/csv"):
        return parse_csv(request.body, time_zone=time_zone), {}
    if content_type == "application/json":
        try:
            document = json.loads(request.body or b"null")
        except ValueError:
            raise ApiError(400, _("The request body is not valid JSON.")) from None
        if not isinstance(document, dict) or "records" not in document:
            raise ApiError(400, _("Send {\"records\": [...]} (or a text/csv body)."), [("records", _("This field is required."))])  # fmt: skip
        return parse_records(document["records"], time_zone=time_zone), document
    raise ApiError(415, _("Send the data as text/csv or application/json."))


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def _column_out(columns: list[Column]) -> list[dict[str, Any]]:
    return [{"name": c.name, "type": c.data_type, "is_key": c.is_key} for c in columns]


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@router.get(
    "/workflows/{workflow_id}/table",
    response={200: TableOut, **ERRORS},
    summary="Read the whole table",
    description="JSON records with the columns' types, or `?format=csv` for CSV.",
)
def read_table(request: HttpRequest, workflow_id: int, query: Query[TableQuery]) -> Any:
    workflow = get_workflow(membership_of(request), workflow_id, "view")
    columns = _columns(workflow)
    frame = table.read_frame(workflow, columns) if columns else pl.DataFrame()
    if query.format == "csv":
        text = frame.with_columns([as_text(frame.get_column(c)) for c in frame.columns])
        buffer = io.BytesIO()
        text.write_csv(buffer)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}.csv"'
        return response
    records = [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
    return {"columns": _column_out(columns), "records": records}


@router.put(
    "/workflows/{workflow_id}/table",
    response={200: LoadOut, **WRITE_ERRORS},
    summary="Load (or replace) the table",
    openapi_extra=BODY_DOC,
)
def load_table(request: HttpRequest, workflow_id: int, query: Query[LoadQuery]) -> Any:
    workflow = get_workflow(membership_of(request), workflow_id, "edit")
    try:
        parsed, options = _body(request, workflow)
        keys = [k.strip() for k in query.keys.split(",") if k.strip()] or list(
            options.get("keys") or []
        )
        columns = load_frame(
            workflow=workflow,
            actor=request.user,
            frame=parsed.frame,
            keys=keys,
            types=parsed.types,
            label="api upload",
            row_numbers=parsed.row_numbers,
        )
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None
    workflow.refresh_from_db()
    return {"nrows": workflow.nrows, "ncols": workflow.ncols, "columns": _column_out(columns)}


@router.post(
    "/workflows/{workflow_id}/table/merge",
    response={200: MergeOut, **WRITE_ERRORS},
    summary="Merge data into the table",
    description="The wizard's semantics: new columns are added, existing ones are updated "
    "where the new value is not empty, keys stay unique. Returns the counts.",
    openapi_extra=BODY_DOC,
)
def merge_table(request: HttpRequest, workflow_id: int, query: Query[MergeQuery]) -> Any:
    workflow = get_workflow(membership_of(request), workflow_id, "edit")
    try:
        parsed, options = _body(request, workflow)
        right_on = query.right_on or options.get("right_on") or ""
        left_on = query.left_on or options.get("left_on") or right_on
        right_on = right_on or left_on
        if not right_on:
            raise ApiError(400, _("Say which column is the key: left_on and right_on."),
                           [("right_on", _("This field is required."))])  # fmt: skip
        result = merge_frame(
            workflow=workflow,
            actor=request.user,
            frame=parsed.frame,
            types=parsed.types,
            how=query.how or options.get("how") or "outer",
            left_on=left_on,
            right_on=right_on,
            clear_with_empty=query.clear_with_empty or bool(options.get("clear_with_empty")),
            dry_run=query.dry_run,
            label="api merge",
            keys=[right_on],
            row_numbers=parsed.row_numbers,
        )
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None
    counts = result.counts()
    return {**counts, "columns": [c for c in counts["columns"]]}
