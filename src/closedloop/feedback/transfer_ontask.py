"""Reading OnTask exports: gzip-compressed JSON (workflow or action list) converted into
closedloop's ``workflow.json`` shape, then imported like a closedloop export.

OnTask stores the table in ``data_frame`` as a base64 pandas **pickle**. Loading a pickle
can run any code its author wrote, so closedloop never unpickles it: the bytes are only
recognised (``pickletools.genops`` walks the opcodes without executing anything) to say
so, and the data must come from a CSV file exported from OnTask. Older layouts are read
too: before OnTask 7 an action's filter was stored among its conditions (``is_filter``),
formulas were under ``formula`` instead of ``_formula`` and text under ``content``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import pickletools
from typing import Any

import polars as pl
from django.utils.translation import gettext as _

from closedloop.feedback.transfer import TransferError, max_size, parse_json, read_limited
from closedloop.feedback.transfer_spec import FORMAT, VERSION, WorkflowSpec, parse_spec

ACTION_TYPES = {
    "personalized_text": "email",
    "personalized_canvas_email": "canvas_email",
    "personalized_json": "json",
    "rubric_text": "rubric",
    "email_report": "email_report",
    "json_report": "json_report",
    "survey": "survey",
    "todo_list": "todo_list",
    "send_list": "email_report",
    "send_list_json": "json_report",
}
DATA_TYPES = {
    "string": "string",
    "integer": "integer",
    "double": "double",
    "boolean": "boolean",
    "datetime": "datetime",
    "object": "string",
    "int64": "integer",
    "float64": "double",
    "bool": "boolean",
    "datetime64[ns]": "datetime",
}


def pickle_help() -> str:
    return _(
        "This OnTask export embeds its table as a Python pickle (“data_frame”). closedloop "
        "never opens pickles: loading one can run any code hidden in the file. In OnTask, open "
        "the workflow's table and download it as CSV (the “CSV Download” button of the table "
        "page), then choose that CSV file here together with this export."
    )


def gunzip(data: bytes, file: str) -> bytes:
    if len(data) > max_size():
        raise TransferError(file, None, _("is larger than DATAOPS_MAX_UPLOAD_SIZE allows."))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return read_limited(stream, file)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TransferError(
            file, None, _("is not a valid gzip file (%(e)s).") % {"e": exc}
        ) from None


def looks_like_pickle(value: Any) -> bool:
    """True when ``value`` (OnTask's base64 ``data_frame``) decodes to pickle opcodes.

    Only the opcode stream is parsed, never executed."""
    if not isinstance(value, str) or not value:
        return False
    try:
        raw = base64.b64decode(value[: 4 * 4096], validate=False)
    except (binascii.Error, ValueError):
        return False
    if not raw.startswith(b"\x80"):
        return False
    try:
        for count, _op in enumerate(pickletools.genops(io.BytesIO(raw))):
            if count > 8:
                break
    except Exception:  # a truncated stream past the first opcodes is still a pickle
        return True
    return True


def _formula(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {}
    formula = item.get("_formula", item.get("formula"))
    return formula if isinstance(formula, dict) else {}


def _name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or "")
    return str(value or "")


def _first(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, dict) else None


def _column(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    data_type = str(raw.get("data_type") or "")
    return {
        "name": raw.get("name"),
        "data_type": DATA_TYPES.get(data_type, data_type),
        "is_key": bool(raw.get("is_key")),
        "position": raw.get("position"),
        "description": raw.get("description_text") or "",
        "categories": raw.get("categories") or [],
        "active_from": raw.get("active_from"),
        "active_to": raw.get("active_to"),
        "in_viz": raw.get("in_viz", True),
    }


class _Names:
    """Unique filter names (OnTask filters belong to actions and views, unnamed)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def make(self, base: str) -> str:
        name, n = base[:190], 2
        while name in self.taken:
            name = f"{base[:185]} ({n})"
            n += 1
        self.taken.add(name)
        return name


def _action(raw: Any, filters: list[dict[str, Any]], names: _Names) -> Any:
    if not isinstance(raw, dict):
        return raw
    name = str(raw.get("name") or "")
    kind = raw.get("action_type")
    if not kind:
        kind = "personalized_text" if raw.get("is_out", True) else "survey"
    conditions, filter_item = [], _first(raw.get("filter"))
    for item in raw.get("conditions") or []:
        if isinstance(item, dict) and item.get("is_filter"):
            filter_item = filter_item or item  # the layout before OnTask 7
            continue
        conditions.append(
            {
                "name": _name(item),
                "description": (item or {}).get("description_text") or "",
                "formula": _formula(item),
            }
        )
    filter_name = None
    if filter_item and _formula(filter_item):
        filter_name = names.make(_("%(action)s (filter)") % {"action": name})
        filters.append(
            {
                "name": filter_name,
                "description": filter_item.get("description_text") or "",
                "formula": _formula(filter_item),
            }
        )
    items: list[dict[str, Any]] = []
    for pair in raw.get("column_condition_pair") or []:
        if isinstance(pair, dict):
            items.append(
                {
                    "column": _name(pair.get("column")),
                    "condition": _name(pair.get("condition")) or None,
                    "changes_allowed": bool(pair.get("changes_allowed", True)),
                }
            )
    listed = {i["column"] for i in items}
    for legacy in raw.get("columns") or []:  # legacy: used columns without conditions
        if _name(legacy) and _name(legacy) not in listed and kind in ("survey", "todo_list"):
            items.append({"column": _name(legacy), "condition": None, "changes_allowed": True})
    return {
        "name": name,
        "description": raw.get("description_text") or "",
        "action_type": ACTION_TYPES.get(str(kind), str(kind)),
        "filter": filter_name,
        "text_content": raw.get("text_content", raw.get("content")) or "",
        "target_url": raw.get("target_url") or "",
        "serve_enabled": bool(raw.get("serve_enabled")),
        "active_from": raw.get("active_from"),
        "active_to": raw.get("active_to"),
        "shuffle": bool(raw.get("shuffle")),
        "conditions": conditions,
        "columns": items,
        "rubric_cells": [
            {
                "column": _name(cell.get("column")),
                "level": cell.get("loa_position"),
                "description": cell.get("description_text") or "",
                "feedback": cell.get("feedback_text") or "",
            }
            for cell in raw.get("rubric_cells") or []
            if isinstance(cell, dict)
        ],
    }


def _view(raw: Any, filters: list[dict[str, Any]], names: _Names) -> Any:
    if not isinstance(raw, dict):
        return raw
    name = str(raw.get("name") or "")
    formula = _formula(raw) or _formula(_first(raw.get("filter")))
    filter_name = None
    if formula:
        filter_name = names.make(_("%(view)s (view)") % {"view": name})
        filters.append({"name": filter_name, "description": "", "formula": formula})
    return {
        "name": name,
        "description": raw.get("description_text") or "",
        "columns": [_name(c) for c in raw.get("columns") or []],
        "filter": filter_name,
    }


def _convert(raw: dict[str, Any], file: str) -> WorkflowSpec:
    filters: list[dict[str, Any]] = []
    names = _Names()
    converted = {
        "format": FORMAT,
        "version": VERSION,
        "name": raw.get("name") or "",
        "description": raw.get("description_text") or "",
        "attributes": raw.get("attributes") or {},
        "columns": [_column(c) for c in raw.get("columns") or []],
        "views": [_view(v, filters, names) for v in raw.get("views") or []],
        "actions": [_action(a, filters, names) for a in raw.get("actions") or []],
    }
    converted["filters"] = filters
    return parse_spec(converted, file)


def _read_csv(csv_data: bytes, csv_name: str) -> tuple[pl.DataFrame, dict[str, str]]:
    from closedloop.feedback.dataops.sources import parse_upload
    from closedloop.feedback.values import FeedbackError

    try:
        parsed = parse_upload("csv", csv_data)
    except FeedbackError as exc:
        raise TransferError(csv_name, exc.field, exc.message) from None
    return parsed.frame, parsed.types


def read_workflow(
    data: bytes, file: str, *, csv_data: bytes | None, csv_name: str
) -> tuple[WorkflowSpec, pl.DataFrame | None, list[str]]:
    """An OnTask workflow export as a spec, its data (from ``csv_data``) and notes."""
    raw = parse_json(gunzip(data, file), file)
    if not isinstance(raw, dict) or not isinstance(raw.get("columns", []), list):
        raise TransferError(file, None, _("is not an OnTask workflow export."))
    notes: list[str] = []
    embedded = raw.get("data_frame")
    if embedded not in (None, "", {}) and csv_data is None:
        if looks_like_pickle(embedded):
            raise TransferError(file, "data_frame", pickle_help())
        raise TransferError(
            file, "data_frame", _("holds data in a form closedloop cannot read; supply a CSV.")
        )
    if embedded not in (None, "", {}):
        notes.append(
            _(
                "The data embedded in the OnTask file was ignored (never opened); the table comes from %(csv)s."
            )
            % {"csv": csv_name}
        )
    raw = {k: v for k, v in raw.items() if k != "data_frame"}
    spec = _convert(raw, file)
    if csv_data is None:
        if spec.columns:
            notes.append(_("No data was supplied: the columns are created empty."))
        return spec, None, notes
    frame, types = _read_csv(csv_data, csv_name)
    declared = {c.name for c in spec.columns}
    missing = [c.name for c in spec.columns if c.name not in frame.columns]
    if missing:
        raise TransferError(
            csv_name, missing[0], _("is a column of the OnTask workflow but not of the CSV file.")
        )
    extra = [n for n in frame.columns if n not in declared]
    if extra:
        from closedloop.feedback.transfer_spec import ColumnSpec

        added = [ColumnSpec(name=n, data_type=types.get(n, "string")) for n in extra]  # type: ignore[arg-type]
        spec = spec.model_copy(update={"columns": [*spec.columns, *added]})
        notes.append(
            _("Columns only in the CSV file were added: %(names)s.") % {"names": ", ".join(extra)}
        )
    if not spec.columns:
        raise TransferError(file, "columns", _("the export declares no columns."))
    return spec, frame, notes


def read_actions(data: bytes, file: str) -> WorkflowSpec:
    """An OnTask action export (a list of actions) as a spec without columns."""
    raw = parse_json(gunzip(data, file), file)
    if isinstance(raw, dict) and isinstance(raw.get("actions"), list):
        raw = raw["actions"]
    if not isinstance(raw, list):
        raise TransferError(file, None, _("is not an OnTask action export (a list of actions)."))
    return _convert({"actions": raw}, file)
