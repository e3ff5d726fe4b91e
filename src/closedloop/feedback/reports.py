"""Report attachments and downloads: a view as CSV, personalized pages as a ZIP."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from typing import Any

from closedloop.feedback import conditions as conds
from closedloop.feedback import render, table
from closedloop.feedback.models import Action, Column, View
from closedloop.feedback.templating import format_value


def view_columns(view: View) -> list[Column]:
    columns = list(Column.objects.filter(workflow=view.workflow).order_by("position", "id"))
    if not view.column_ids:
        return columns
    by_id = {c.pk: c for c in columns}
    return [by_id[i] for i in view.column_ids if i in by_id]


def view_csv(view: View) -> bytes:
    """The rows and columns of ``view`` as UTF-8 CSV (with BOM, so spreadsheets open it
    with the right encoding) — what an email report attaches."""
    columns = view_columns(view)
    if not columns:
        return b""
    all_columns = list(Column.objects.filter(workflow=view.workflow))
    predicate = conds.compile_formula(view.filter.formula if view.filter else None, all_columns)
    frame = table.read_frame(view.workflow, columns, where=predicate.sql, params=predicate.params)
    buffer = io.BytesIO()
    buffer.write("\ufeff".encode())
    frame.write_csv(buffer, datetime_format="%Y-%m-%d %H:%M:%S%z")
    return buffer.getvalue()


_UNSAFE = re.compile(r"[^\w.@\- ]+", re.UNICODE)


def _file_part(value: Any) -> str:
    text = _UNSAFE.sub("_", format_value(value)).strip(" ._")
    return text[:80] or "row"


def moodle_file_name(fullname: Any, participant: Any, name: str) -> str:
    """The name Moodle's "upload feedback files" import accepts for an assignment:
    ``<Full name>_<participant id>_assignsubmission_file_<file name>``."""
    return f"{_file_part(fullname)}_{_file_part(participant)}_assignsubmission_file_{name}"


def personalized_zip(
    action: Action,
    *,
    file_column: str,
    file_suffix: str = "feedback.html",
    moodle: bool = False,
    fullname_column: str = "",
    participant_column: str = "",
) -> bytes:
    """One HTML page per filtered row in a ZIP. Plain names are
    ``<file_column value>_<file_suffix>``; with ``moodle`` they follow Moodle's feedback-file
    convention (full name and participant id columns, see :func:`moodle_file_name`)."""
    prepared = render.prepare(action)
    extra = {file_column, fullname_column, participant_column} - {""}
    wanted = {c.name for c in prepared.fetch} | extra
    prepared.fetch = [c for c in prepared.columns if c.name in wanted]
    suffix = _file_part(file_suffix) or "feedback.html"
    if not suffix.lower().endswith((".html", ".htm")):
        suffix += ".html"
    buffer = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in _rows(prepared):
            message = render._message(prepared, row, with_text=False)
            if moodle:
                name = moodle_file_name(
                    row.get(fullname_column), row.get(participant_column), suffix
                )
            else:
                name = f"{_file_part(row.get(file_column))}_{suffix}"
            base, n = name, 2
            while name in used:
                name = f"{n}_{base}"
                n += 1
            used.add(name)
            archive.writestr(name, _page(message.subject or action.name, message.body))
    return buffer.getvalue()


def _rows(prepared: render.Prepared, batch: int = 2000) -> Iterable[dict[str, Any]]:
    last = 0
    while True:
        rows = render._fetch(prepared, where=f"{render.ROW_ID} > %s", params=[last], limit=batch)
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1][render.ROW_ID]


def _page(title: str, body: str) -> str:
    from markupsafe import escape

    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body>{body}</body></html>"
    )
