"""Workflow export and import (never pickle).

Export is a zip with two members:

- ``workflow.json``: format name and version, the workflow's name, description,
  attributes, columns (type, key, categories, active window, ...), filters, views,
  the chosen actions with their conditions, questions / criteria and rubric cells,
  and schedules (without their run state). Secrets are left out (action tokens and
  any option or payload entry named like a token, password or secret).
- ``data.csv``: the table, UTF-8, header = column names; an empty field is NULL and
  ``""`` an empty text; booleans ``true``/``false``; datetimes ISO 8601 in UTC.

Import always creates a NEW workflow, in one transaction, through the services of
each part (``services.workflow_create``, ``services.table_load``, ``columns``,
``filters``, ``actions``, ``schedules``); any error rolls everything back and names the
file and the element that is wrong. Imported schedules start paused. OnTask's
gzip-compressed JSON exports are read by ``transfer_ontask`` into the same shape.

Archives are read in memory only (nothing is extracted to disk), with the size of the
upload and of every decompressed member capped by ``DATAOPS_MAX_UPLOAD_SIZE``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop import __version__
from closedloop.feedback import table
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    Action,
    ActionColumn,
    Column,
    Condition,
    Filter,
    RubricCell,
    Schedule,
    View,
    Workflow,
)
from closedloop.feedback.transfer_spec import (
    FORMAT,
    VERSION,
    ActionSpec,
    TransferError,
    WorkflowSpec,
    check_references,
    parse_spec,
)
from closedloop.feedback.values import FeedbackError

__all__ = [
    "FORMAT",
    "VERSION",
    "ImportResult",
    "TransferError",
    "actions_export",
    "actions_import",
    "read_limited",
    "workflow_export",
    "workflow_import",
]

DATA_FILE = "data.csv"
META_FILE = "workflow.json"
ACTIONS_FORMAT = "closedloop-actions"
DT_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey")


def max_size() -> int:
    return int(settings.DATAOPS_MAX_UPLOAD_SIZE)


def _too_big(file: str) -> TransferError:
    return TransferError(
        file,
        None,
        _("is larger than the %(mb)s MB allowed (DATAOPS_MAX_UPLOAD_SIZE).")
        % {"mb": round(max_size() / 1_048_576, 1)},
    )


def read_limited(stream: Any, file: str, limit: int | None = None) -> bytes:
    """Read ``stream`` to the end, refusing more than ``limit`` bytes (decompression bombs
    lie about their size in headers, so the count is of bytes actually produced)."""
    limit = max_size() if limit is None else limit
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise _too_big(file)
        chunks.append(chunk)


# -- export --------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_secrets(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in SECRET_WORDS)
        }
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _action_dict(action: Action) -> dict[str, Any]:
    conditions = list(Condition.objects.filter(action=action).order_by("position", "id"))
    items = ActionColumn.objects.filter(action=action).select_related("column", "condition")
    cells = RubricCell.objects.filter(action=action).select_related("column")
    return {
        "name": action.name,
        "description": action.description,
        "action_type": action.action_type,
        "filter": action.filter.name if action.filter_id and action.filter else None,
        "text_content": action.text_content,
        "text_format": action.text_format,
        "subject": action.subject,
        "target_url": action.target_url,
        "serve_enabled": action.serve_enabled,
        "active_from": _iso(action.active_from),
        "active_to": _iso(action.active_to),
        "shuffle": action.shuffle,
        "options": _without_secrets(action.options or {}),
        "conditions": [
            {"name": c.name, "description": c.description, "formula": c.formula} for c in conditions
        ],
        "columns": [
            {
                "column": item.column.name,
                "condition": item.condition.name if item.condition else None,
                "changes_allowed": item.changes_allowed,
            }
            for item in items.order_by("position", "id")
        ],
        "rubric_cells": [
            {
                "column": cell.column.name,
                "level": cell.level,
                "description": cell.description,
                "feedback": cell.feedback,
            }
            for cell in cells.order_by("column_id", "level")
        ],
    }


def _chosen_actions(workflow: Workflow, action_ids: list[int] | None) -> list[Action]:
    qs = Action.objects.filter(workflow=workflow).select_related("filter").order_by("name")
    if action_ids is not None:
        qs = qs.filter(pk__in=action_ids)
    return list(qs)


def export_meta(workflow: Workflow, actions: list[Action]) -> dict[str, Any]:
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    by_id = {c.pk: c.name for c in columns}
    action_names = {a.name for a in actions}
    schedules = Schedule.objects.filter(workflow=workflow).select_related("action")
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "exported_by": f"closedloop {__version__}",
        "name": workflow.name,
        "description": workflow.description,
        "attributes": workflow.attributes or {},
        "columns": [
            {
                "name": c.name,
                "data_type": c.data_type,
                "is_key": c.is_key,
                "position": c.position,
                "description": c.description,
                "categories": c.categories or [],
                "active_from": _iso(c.active_from),
                "active_to": _iso(c.active_to),
                "in_viz": c.in_viz,
            }
            for c in columns
        ],
        "data": {"file": DATA_FILE, "rows": workflow.nrows},
        "filters": [
            {"name": f.name, "description": f.description, "formula": f.formula}
            for f in Filter.objects.filter(workflow=workflow).order_by("name")
        ],
        "views": [
            {
                "name": v.name,
                "description": v.description,
                "columns": [by_id[i] for i in v.column_ids or [] if i in by_id],
                "filter": v.filter.name if v.filter_id and v.filter else None,
            }
            for v in View.objects.filter(workflow=workflow).select_related("filter")
        ],
        "actions": [_action_dict(a) for a in actions],
        "schedules": [
            {
                "name": s.name,
                "description": s.description,
                "operation_type": s.operation_type,
                "action": s.action.name if s.action else None,
                "payload": _without_secrets(s.payload or {}),
                "execute_start": _iso(s.execute_start),
                "execute_until": _iso(s.execute_until),
                "frequency": s.frequency,
                "incremental": s.incremental,
            }
            for s in schedules.order_by("name")
            if s.action is None or s.action.name in action_names
        ],
    }


def export_csv(workflow: Workflow) -> bytes:
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    frame = table.read_frame(workflow, columns) if columns else pl.DataFrame()
    exprs = []
    for column in columns:
        col = pl.col(column.name)
        if column.data_type == "datetime":
            col = col.dt.convert_time_zone("UTC").dt.strftime(DT_FORMAT)
        elif column.data_type == "boolean":
            col = pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false"))
        exprs.append(col.alias(column.name))
    if exprs:
        frame = frame.select(exprs)
    return frame.write_csv().encode("utf-8")


def workflow_export(
    *, workflow: Workflow, actor: Any, action_ids: list[int] | None = None
) -> bytes:
    """The workflow as a zip (``workflow.json`` + ``data.csv``); ``action_ids`` None: all."""
    actions = _chosen_actions(workflow, action_ids)
    meta = export_meta(workflow, actions)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(META_FILE, json.dumps(meta, ensure_ascii=False, indent=1, default=str))
        archive.writestr(DATA_FILE, export_csv(workflow))
    log_event(
        workflow,
        actor,
        "workflow_export",
        {"actions": [a.name for a in actions], "rows": workflow.nrows},
    )
    return buffer.getvalue()


def actions_export(*, workflow: Workflow, actor: Any, action_ids: list[int] | None = None) -> bytes:
    """Actions only, as JSON: the actions and the filters they use (by name)."""
    actions = _chosen_actions(workflow, action_ids)
    used = {a.filter.name for a in actions if a.filter_id and a.filter}
    filters = Filter.objects.filter(workflow=workflow, name__in=used).order_by("name")
    payload = {
        "format": ACTIONS_FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "filters": [
            {"name": f.name, "description": f.description, "formula": f.formula} for f in filters
        ],
        "actions": [_action_dict(a) for a in actions],
    }
    log_event(workflow, actor, "action_export", {"actions": [a.name for a in actions]})
    return json.dumps(payload, ensure_ascii=False, indent=1, default=str).encode("utf-8")


# -- reading archives ----------------------------------------------------------------


def _safe_member(name: str) -> bool:
    return not (
        name.startswith(("/", "\\"))
        or "\\" in name
        or ".." in name.split("/")
        or ":" in name
        or "\0" in name
    )


def read_zip(data: bytes, file: str) -> dict[str, bytes]:
    """The members of a closedloop export, checked before anything is decompressed."""
    if len(data) > max_size():
        raise _too_big(file)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TransferError(
            file, None, _("is not a valid zip file (%(e)s).") % {"e": exc}
        ) from None
    names = [i.filename for i in infos]
    for name in names:
        if not _safe_member(name):
            raise TransferError(file, name, _("has an unsafe file name; the archive is refused."))
    if len(set(names)) != len(names):
        raise TransferError(file, None, _("holds the same file name twice."))
    if META_FILE not in names:
        raise TransferError(
            file, META_FILE, _("is missing: this is not a closedloop workflow export.")
        )
    if sum(i.file_size for i in infos) > max_size():
        raise _too_big(file)
    members: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if info.filename not in (META_FILE, DATA_FILE):
            continue  # ignored, never read
        try:
            with archive.open(info) as stream:
                content = read_limited(stream, info.filename, max_size() - total)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            raise TransferError(
                info.filename, None, _("cannot be read: %(e)s") % {"e": exc}
            ) from None
        total += len(content)
        members[info.filename] = content
    return members


def parse_json(data: bytes, file: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise TransferError(file, None, _("is not UTF-8 text.")) from None
    except json.JSONDecodeError as exc:
        raise TransferError(
            file,
            None,
            _("is not valid JSON: %(e)s (line %(line)s, column %(col)s).")
            % {"e": exc.msg, "line": exc.lineno, "col": exc.colno},
        ) from None


def read_data_csv(data: bytes, spec: WorkflowSpec, file: str = DATA_FILE) -> pl.DataFrame:
    """``data.csv`` as strings, checked against the declared columns; datetimes parsed."""
    try:
        frame = (
            pl.read_csv(io.BytesIO(data), infer_schema=False) if data.strip() else pl.DataFrame()
        )
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise TransferError(file, None, _("cannot be read as CSV: %(e)s") % {"e": exc}) from None
    declared = [c.name for c in spec.columns]
    missing = [n for n in declared if n not in frame.columns]
    extra = [n for n in frame.columns if n not in declared]
    if missing:
        raise TransferError(
            file, missing[0], _("is declared in workflow.json but missing from the data file.")
        )
    if extra:
        raise TransferError(
            file, extra[0], _("is in the data file but not declared in workflow.json.")
        )
    exprs = []
    for column in spec.columns:
        col = pl.col(column.name)
        if column.data_type == "datetime":
            col = col.str.to_datetime(DT_FORMAT, time_unit="us", time_zone="UTC", strict=False)
        exprs.append(col.alias(column.name))
    parsed = frame.select(exprs) if exprs else frame
    for column in spec.columns:
        if column.data_type != "datetime":
            continue
        bad = frame[column.name].is_not_null() & parsed[column.name].is_null()
        if bad.any():
            row = int(bad.arg_true()[0]) + 1
            raise TransferError(
                file,
                column.name,
                _("row %(row)s: “%(value)s” is not a date and time (%(fmt)s).")
                % {"row": row, "value": frame[column.name][row - 1], "fmt": "YYYY-MM-DDTHH:MM:SSZ"},
            )
    return parsed


# -- import --------------------------------------------------------------------------


@dataclass
class ImportResult:
    workflow: Workflow
    notes: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


def _file_kind(data: bytes) -> str:
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "zip"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    return "other"


def workflow_import(
    *,
    account: Any,
    actor: Any,
    name: str,
    data: bytes,
    file_name: str = "workflow.zip",
    csv_data: bytes | None = None,
    csv_name: str = "data.csv",
) -> ImportResult:
    """A new workflow named ``name`` from a closedloop zip or an OnTask ``.gz`` export
    (whose data comes from ``csv_data``)."""
    kind = _file_kind(data)
    if kind == "zip":
        members = read_zip(data, file_name)
        raw = parse_json(members[META_FILE], META_FILE)
        spec = parse_spec(raw, META_FILE)
        check_references(spec, META_FILE)
        if spec.data is not None and spec.data.file != DATA_FILE:
            raise TransferError(META_FILE, "data.file", _("must be “data.csv”."))
        frame = read_data_csv(members.get(DATA_FILE, b""), spec) if spec.columns else None
        notes: list[str] = []
    elif kind == "gzip":
        from closedloop.feedback import transfer_ontask

        if csv_data is not None and len(csv_data) > max_size():
            raise _too_big(csv_name)
        spec, frame, notes = transfer_ontask.read_workflow(
            data, file_name, csv_data=csv_data, csv_name=csv_name
        )
        check_references(spec, file_name)
    else:
        raise TransferError(
            file_name, None,
            _("is neither a closedloop export (.zip) nor an OnTask export (.gz)."),
        )  # fmt: skip
    name = (name or spec.name or "").strip()
    if Workflow.objects.filter(account=account, name=name).exists():
        raise TransferError(
            file_name, "name",
            _("A workflow named “%(name)s” exists already; choose another name.") % {"name": name},
        )  # fmt: skip
    with transaction.atomic():
        workflow = _create_workflow(account, actor, name, spec, frame)
        actions, build_notes = build_objects(
            workflow, actor, spec, META_FILE if kind == "zip" else file_name
        )
        log_event(
            workflow, actor, "workflow_import",
            {"source": kind, "file": file_name, "actions": [a.name for a in actions]},
        )  # fmt: skip
    workflow.refresh_from_db()
    return ImportResult(workflow=workflow, notes=notes + build_notes, actions=actions)


def _create_workflow(
    account: Any, actor: Any, name: str, spec: WorkflowSpec, frame: pl.DataFrame | None
) -> Workflow:
    from closedloop.feedback import columns as column_services
    from closedloop.feedback import services

    try:
        workflow = services.workflow_create(
            account=account, actor=actor, name=name,
            description=spec.description, attributes=spec.attributes,
        )  # fmt: skip
    except FeedbackError as exc:
        raise TransferError(META_FILE, "name", exc.message) from None
    if not spec.columns:
        return workflow
    ordered = sorted(spec.columns, key=lambda c: c.position or 0)
    frame = frame if frame is not None else pl.DataFrame()
    if frame.width == 0:
        frame = pl.DataFrame({c.name: pl.Series(c.name, [], dtype=pl.String) for c in ordered})
    frame = frame.select([c.name for c in ordered])
    try:
        services.table_load(
            workflow=workflow, actor=actor, frame=frame,
            keys=[c.name for c in ordered if c.is_key],
            types={c.name: c.data_type for c in ordered}, label="import",
        )  # fmt: skip
    except FeedbackError as exc:
        raise TransferError(DATA_FILE, exc.field, exc.message, errors=exc.errors) from None
    by_name = {c.name: c for c in Column.objects.filter(workflow=workflow)}
    for spec_column in ordered:
        changes: dict[str, Any] = {}
        if spec_column.description:
            changes["description"] = spec_column.description
        if spec_column.categories:
            changes["categories"] = spec_column.categories
        if spec_column.active_from:
            changes["active_from"] = spec_column.active_from
        if spec_column.active_to:
            changes["active_to"] = spec_column.active_to
        if not spec_column.in_viz:
            changes["in_viz"] = False
        if not changes:
            continue
        try:
            column_services.column_update(column=by_name[spec_column.name], actor=actor, **changes)
        except FeedbackError as exc:
            raise TransferError(META_FILE, f"column “{spec_column.name}”", exc.message) from None
    return workflow


def build_objects(
    workflow: Workflow, actor: Any, spec: WorkflowSpec, file: str
) -> tuple[list[Action], list[str]]:
    """Filters, views, actions and schedules of ``spec`` in ``workflow`` (inside the
    caller's transaction)."""
    from closedloop.feedback import filters as filter_services

    notes: list[str] = []
    filters: dict[str, Filter] = {f.name: f for f in Filter.objects.filter(workflow=workflow)}
    for item in spec.filters:
        if item.name in filters:
            continue  # actions-only import: the workflow has it already
        try:
            filters[item.name] = filter_services.filter_create(
                workflow=workflow, actor=actor, name=item.name,
                formula=item.formula, description=item.description,
            )  # fmt: skip
        except (FeedbackError, ValueError) as exc:
            raise TransferError(file, f"filter “{item.name}”", str(exc)) from None
    columns = {c.name: c for c in Column.objects.filter(workflow=workflow)}
    for view in spec.views:
        try:
            filter_services.view_create(
                workflow=workflow, actor=actor, name=view.name, description=view.description,
                column_ids=[columns[n].pk for n in view.columns],
                filter=filters[view.filter] if view.filter else None,
            )  # fmt: skip
        except (FeedbackError, ValueError) as exc:
            raise TransferError(file, f"view “{view.name}”", str(exc)) from None
    actions = [_build_action(workflow, actor, item, filters, file) for item in spec.actions]
    by_name = {a.name: a for a in actions}
    for schedule in spec.schedules:
        note = _build_schedule(workflow, actor, schedule, by_name)
        if note:
            notes.append(note)
    if spec.schedules:
        notes.append(_("Imported schedules are paused: resume them from the Schedules page."))
    return actions, notes


def _build_action(
    workflow: Workflow, actor: Any, item: ActionSpec, filters: dict[str, Filter], file: str
) -> Action:
    from closedloop.feedback import actions as action_services
    from closedloop.feedback import filters as filter_services

    element = f"action “{item.name}”"
    if Action.objects.filter(workflow=workflow, name=item.name).exists():
        raise TransferError(file, element, _("an action with this name exists already."))
    if item.action_type not in action_services.enabled_types():
        raise TransferError(file, element, _("actions of this type are disabled on this site."))
    # the row is written directly: the services validate the text against the
    # conditions, which can only be added once the action exists; validated below
    action = Action.objects.create(
        account_id=workflow.account_id, workflow=workflow, name=item.name,
        description=item.description, action_type=item.action_type,
        filter=filters[item.filter] if item.filter else None,
        text_content=item.text_content, text_format=item.text_format, subject=item.subject,
        target_url=item.target_url, serve_enabled=item.serve_enabled,
        active_from=item.active_from, active_to=item.active_to, shuffle=item.shuffle,
        options=item.options,
    )  # fmt: skip
    try:
        for condition in item.conditions:
            filter_services.condition_create(
                action=action, actor=actor, name=condition.name,
                formula=condition.formula, description=condition.description,
            )  # fmt: skip
        if item.columns:
            action_services.action_set_columns(
                action=action, actor=actor,
                items=[{"column": c.column, "condition": c.condition,
                        "changes_allowed": c.changes_allowed} for c in item.columns],
            )  # fmt: skip
        if item.rubric_cells:
            action_services.rubric_set_cells(
                action=action, actor=actor,
                cells=[{"column": c.column, "level": c.level, "description": c.description,
                        "feedback": c.feedback} for c in item.rubric_cells],
            )  # fmt: skip
    except (FeedbackError, ValueError) as exc:
        raise TransferError(file, element, str(exc)) from None
    problems = action_services.validate(action)
    if problems:
        raise TransferError(file, element, problems[0]["message"])
    log_event(workflow, actor, "action_import", {"action": action.name, "id": action.pk})
    return action


def _build_schedule(workflow: Workflow, actor: Any, item: Any, actions: dict[str, Action]) -> str:
    from closedloop.feedback import schedules as schedule_services

    try:
        with transaction.atomic():
            schedule = schedule_services.schedule_create(
                workflow=workflow, actor=actor, name=item.name, description=item.description,
                operation_type=item.operation_type,
                action=actions.get(item.action) if item.action else None,
                payload=item.payload, execute_start=item.execute_start,
                execute_until=item.execute_until, frequency=item.frequency,
                incremental=item.incremental,
            )  # fmt: skip
            schedule_services.schedule_pause(schedule=schedule, actor=actor, paused=True)
    except (FeedbackError, ValueError) as exc:
        return _("Schedule “%(name)s” was not imported: %(error)s") % {
            "name": item.name,
            "error": getattr(exc, "message", str(exc)),
        }
    return ""


def actions_import(
    *, workflow: Workflow, actor: Any, data: bytes, file_name: str = "actions.json"
) -> ImportResult:
    """Actions (closedloop JSON or OnTask ``.gz`` action export) into an existing workflow
    whose columns they use."""
    if len(data) > max_size():
        raise _too_big(file_name)
    if _file_kind(data) == "gzip":
        from closedloop.feedback import transfer_ontask

        spec = transfer_ontask.read_actions(data, file_name)
    else:
        raw = parse_json(data, file_name)
        if not isinstance(raw, dict) or raw.get("format") != ACTIONS_FORMAT:
            raise TransferError(file_name, "format", _("is not a closedloop actions export."))
        columns = [
            {
                "name": c.name,
                "data_type": c.data_type,
                "is_key": c.is_key,
                "categories": c.categories,
            }
            for c in Column.objects.filter(workflow=workflow)
        ]
        spec = parse_spec(
            {"format": FORMAT, "version": raw.get("version"), "columns": columns,
             "filters": raw.get("filters") or [], "actions": raw.get("actions") or []},
            file_name,
        )  # fmt: skip
    spec = spec.with_workflow_columns(workflow)
    check_references(spec, file_name)
    with transaction.atomic():
        actions, notes = build_objects(workflow, actor, spec, file_name)
    return ImportResult(workflow=workflow, notes=notes, actions=actions)
