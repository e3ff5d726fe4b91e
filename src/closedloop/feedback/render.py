"""Rendering an action's messages: one SELECT per batch, conditions decided in SQL.

The rows are the action filter's rows (the same compiled predicate that counts them); each
condition of the action is one ``CASE WHEN (predicate) THEN 1 ELSE 0 END`` column of the
same SELECT, so a condition's count and the messages showing its text always agree. The
templates (text and subject) are compiled once per call; rows are streamed with keyset
pagination on the row id, so memory stays flat however large the table is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from markupsafe import escape

from closedloop.feedback import conditions as conds
from closedloop.feedback import table
from closedloop.feedback.models import Action, ActionType, Column, Condition, RubricCell
from closedloop.feedback.templating import (
    CompiledTemplate,
    TemplateError,
    compile_template,
    format_value,
)

ROW_ID = "_rid"
#: action types producing one message for the whole selection
REPORT_TYPES = {ActionType.EMAIL_REPORT, ActionType.JSON_REPORT}
#: action types whose message is plain text whatever the editor's format
PLAIN_TYPES = {ActionType.SMS, ActionType.CANVAS_EMAIL}
JSON_TYPES = {ActionType.JSON, ActionType.JSON_REPORT}
SUBJECT_TYPES = {ActionType.EMAIL, ActionType.CANVAS_EMAIL, ActionType.EMAIL_REPORT}
DEFAULT_ITEM_COLUMN: dict[str, str] = {
    ActionType.EMAIL: "email",
    ActionType.PERSONALIZED_TEXT: "email",
    ActionType.RUBRIC: "email",
    ActionType.SMS: "phone",
    ActionType.CANVAS_EMAIL: "canvas id",
    ActionType.JSON: "",
    ActionType.SURVEY: "email",
    ActionType.TODO_LIST: "email",
}


@dataclass
class RenderedMessage:
    rid: int
    row_key: str
    recipient: str
    subject: str
    body: str
    text: str
    conditions: dict[str, bool] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """What rendering an action needs, computed once."""

    action: Action
    columns: list[Column]
    by_name: dict[str, Column]
    filter: conds.Predicate
    conditions: list[tuple[str, conds.Predicate]]
    body: CompiledTemplate
    subject: CompiledTemplate | None
    item_column: Column | None
    key_column: Column | None
    fetch: list[Column]
    rubric: dict[str, dict[Any, str]] = field(default_factory=dict)  # column -> value -> html

    @cached_property
    def condition_aliases(self) -> list[tuple[str, str]]:
        return [(name, f"__cond_{i}") for i, (name, _p) in enumerate(self.conditions)]

    @cached_property
    def fetch_names(self) -> list[str]:
        return [c.name for c in self.fetch]


def body_format(action: Action) -> str:
    if action.action_type in JSON_TYPES:
        return "json"
    return action.text_format or "html"


def item_column_name(action: Action, options: dict[str, Any] | None = None) -> str:
    options = options or {}
    return str(
        options.get("item_column")
        or (action.options or {}).get("item_column")
        or DEFAULT_ITEM_COLUMN.get(action.action_type, "")
    )


def prepare(action: Action, options: dict[str, Any] | None = None) -> Prepared:
    """Compile the filter, the conditions and the templates (TemplateError /
    ConditionError say what is wrong)."""
    workflow = action.workflow
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    by_name = {c.name: c for c in columns}
    flt = conds.compile_formula(action.filter.formula if action.filter else None, columns)
    condition_rows = (
        list(Condition.objects.filter(action=action).order_by("position", "id"))
        if action.pk
        else []
    )
    is_report = action.action_type in REPORT_TYPES
    compiled_conditions = (
        []
        if is_report
        else [(c.name, conds.compile_formula(c.formula, columns)) for c in condition_rows]
    )
    attributes = workflow.attributes or {}
    time_zone = getattr(workflow.account, "time_zone", None) or settings.TIME_ZONE
    names = [c.name for c in columns]
    condition_names = [name for name, _p in compiled_conditions]
    body = compile_template(
        action.text_content,
        columns=names,
        attributes=attributes,
        conditions=condition_names,
        text_format=body_format(action),
        time_zone=time_zone,
        allow_reports=is_report,
        allow_rubric=action.action_type == ActionType.RUBRIC,
    )
    subject_text = (options or {}).get("subject") or action.subject
    subject = None
    if action.action_type in SUBJECT_TYPES or subject_text:
        try:
            subject = compile_template(
                subject_text or "",
                columns=names,
                attributes=attributes,
                conditions=condition_names,
                text_format="text",
                time_zone=time_zone,
                allow_reports=False,
                allow_rubric=False,
            )
        except TemplateError as exc:
            exc.field = "subject"
            raise
    item_name = item_column_name(action, options)
    item_column = by_name.get(item_name) if item_name else None
    if item_name and item_column is None and (options or {}).get("item_column"):
        raise TemplateError(_("There is no column named “%(name)s”.") % {"name": item_name})
    key_column = next((c for c in columns if c.is_key), None)
    used = set(body.var_names.values()) | (set(subject.var_names.values()) if subject else set())
    prepared = Prepared(
        action=action,
        columns=columns,
        by_name=by_name,
        filter=flt,
        conditions=compiled_conditions,
        body=body,
        subject=subject,
        item_column=item_column,
        key_column=key_column,
        fetch=[],
    )
    if action.action_type == ActionType.RUBRIC and action.pk:
        prepared.rubric = _rubric_feedback(action, by_name)
        used |= set(prepared.rubric)
    wanted = used | {c.name for c in (item_column, key_column) if c is not None}
    prepared.fetch = [c for c in columns if c.name in wanted]
    return prepared


def _rubric_feedback(action: Action, by_name: dict[str, Column]) -> dict[str, dict[Any, str]]:
    """criterion column -> {category value: the cell's feedback as HTML}."""
    out: dict[str, dict[Any, str]] = {}
    for cell in RubricCell.objects.filter(action=action).select_related("column"):
        column = by_name.get(cell.column.name)
        if column is None or cell.level >= len(column.categories or []):
            continue
        out.setdefault(column.name, {})[column.categories[cell.level]] = cell.feedback
    return out


def rubric_insert(prepared: Prepared, values: dict[str, Any], text_format: str) -> str:
    parts = []
    for name, cells in prepared.rubric.items():
        feedback = cells.get(values.get(name))
        if not feedback:
            continue
        if text_format in ("html", "markdown"):
            parts.append(f"<p><strong>{escape(name)}</strong>: {escape(feedback)}</p>")
        else:
            parts.append(f"{name}: {feedback}")
    return "\n".join(parts)


def _extra_select(prepared: Prepared) -> list[tuple[str, str, list[Any]]]:
    out = []
    for i, (_name, predicate) in enumerate(prepared.conditions):
        sql, params = predicate.case()
        out.append((f"__cond_{i}", sql, params))
    return out


def _where(
    prepared: Prepared, extra: str = "", extra_params: Sequence[Any] = ()
) -> tuple[str, list[Any]]:
    sql = prepared.filter.sql
    params = list(prepared.filter.params)
    if extra:
        sql = f"({sql}) AND {extra}"
        params += list(extra_params)
    return sql, params


def _fetch(
    prepared: Prepared,
    *,
    where: str = "",
    params: Sequence[Any] = (),
    offset: int = 0,
    limit: int | None = None,
    with_conditions: bool = True,
) -> list[dict[str, Any]]:
    sql, all_params = _where(prepared, where, params)
    return table.fetch_rows(
        prepared.action.workflow,
        prepared.fetch or prepared.columns[:1],
        where=sql,
        params=all_params,
        offset=offset,
        limit=limit,
        extra_select=_extra_select(prepared) if with_conditions else (),
    )


def _message(prepared: Prepared, row: dict[str, Any], with_text: bool) -> RenderedMessage:
    truth = {name: row[alias] == 1 for name, alias in prepared.condition_aliases}
    fmt = prepared.body.text_format
    inserts = {"rubric": rubric_insert(prepared, row, fmt)} if prepared.rubric else None
    plain = prepared.action.action_type in PLAIN_TYPES and fmt in ("html", "markdown")
    body = (
        prepared.body.render_text(row, truth, inserts)
        if plain
        else prepared.body.render(row, truth, inserts)
    )
    if with_text and not plain and fmt in ("html", "markdown"):
        text = prepared.body.render_text(row, truth, inserts)
    else:
        text = body if fmt in ("text",) or plain else ""
    item, key = prepared.item_column, prepared.key_column
    return RenderedMessage(
        rid=row[ROW_ID],
        row_key=format_value(row.get(key.name)) if key else str(row[ROW_ID]),
        recipient=format_value(row.get(item.name)).strip() if item else "",
        subject=prepared.subject.render(row, truth) if prepared.subject else "",
        body=body,
        text=text,
        conditions=truth,
        values={name: row.get(name) for name in prepared.fetch_names},
    )


def iter_messages(
    action: Action,
    *,
    options: dict[str, Any] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
    batch: int = 2000,
) -> Iterator[RenderedMessage]:
    """Every message of ``action`` in row order (one for a report), rendered on the fly."""
    options = options or {}
    prepared = prepare(action, options)
    if action.action_type in REPORT_TYPES:
        yield report_message(prepared, options)
        return
    with_text = bool(options.get("with_text", not settings.EMAIL_HTML_ONLY))
    excluded = {str(v).strip().lower() for v in exclude}
    last = 0
    rid = table.ROW_ID if hasattr(table, "ROW_ID") else ROW_ID
    while True:
        rows = _fetch(prepared, where=f"{rid} > %s", params=[last], limit=batch)
        for row in rows:
            message = _message(prepared, row, with_text)
            if excluded and message.recipient.lower() in excluded:
                continue
            yield message
        if len(rows) < batch:
            return
        last = rows[-1][ROW_ID]


def count_messages(action: Action) -> int:
    """How many messages a run would produce (rows of the action filter; 1 for a report)."""
    if action.action_type in REPORT_TYPES:
        return 1
    columns = list(Column.objects.filter(workflow=action.workflow))
    if not columns:
        return 0
    predicate = conds.compile_formula(action.filter.formula if action.filter else None, columns)
    return table.count_rows(action.workflow, where=predicate.sql, params=predicate.params)


# --- reports ----------------------------------------------------------------------------


def report_data(prepared: Prepared, names: Sequence[str]) -> dict[str, list[Any]]:
    columns = [prepared.by_name[n] for n in names if n in prepared.by_name]
    if not columns:
        return {}
    sql, params = _where(prepared)
    rows = table.fetch_rows(prepared.action.workflow, columns, where=sql, params=params)
    return {c.name: [r.get(c.name) for r in rows] for c in columns}


def report_html(data: dict[str, list[Any]], tz: Any = None) -> str:
    names = list(data)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    count = len(data[names[0]]) if names else 0
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(format_value(data[n][i], tz))}</td>" for n in names)
        + "</tr>"
        for i in range(count)
    )
    return (
        '<table class="report" border="1" cellpadding="4" cellspacing="0">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def report_json(data: dict[str, list[Any]], tz: Any = None) -> str:
    def plain(value: Any) -> Any:
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return json.dumps({k: [plain(v) for v in vs] for k, vs in data.items()}, ensure_ascii=False)


def report_message(prepared: Prepared, options: dict[str, Any]) -> RenderedMessage:
    action = prepared.action
    tz = prepared.body.tz
    inserts = {}
    for i, names in enumerate(prepared.body.reports):
        data = report_data(prepared, names)
        if action.action_type == ActionType.JSON_REPORT:
            inserts[f"r{i}"] = report_json(data, tz)
        else:
            inserts[f"r{i}"] = report_html(data, tz)
    body = prepared.body.render({}, {}, inserts)
    text = ""
    if action.action_type == ActionType.EMAIL_REPORT:
        text = prepared.body.render_text({}, {}, inserts)
    recipients = options.get("email_to") or (action.options or {}).get("email_to") or ""
    if isinstance(recipients, list):
        recipients = " ".join(recipients)
    return RenderedMessage(
        rid=0,
        row_key="",
        recipient=str(recipients or action.target_url or ""),
        subject=prepared.subject.render({}, {}) if prepared.subject else "",
        body=body,
        text=text,
    )


# --- preview ----------------------------------------------------------------------------


def _index_of(prepared: Prepared, rid: int) -> int:
    sql, params = _where(prepared, f"{ROW_ID} <= %s", [rid])
    return table.count_rows(prepared.action.workflow, where=sql, params=params)


def next_all_false(prepared: Prepared, after_rid: int) -> int | None:
    """Index (1-based among the filtered rows) of the first row after ``after_rid`` where
    no condition is TRUE, wrapping round to the start; None if there is none."""
    if not prepared.conditions:
        return None
    parts, params = [], []
    for _name, predicate in prepared.conditions:
        sql, values = predicate.case()
        parts.append(f"({sql}) = 0")
        params.extend(values)
    none_true = " AND ".join(parts)
    for cond, extra in ((f"{ROW_ID} > %s", [after_rid]), ("1=1", [])):
        rows = _fetch(
            prepared,
            where=f"{cond} AND {none_true}",
            params=[*extra, *params],
            limit=1,
            with_conditions=False,
        )
        if rows:
            return _index_of(prepared, rows[0][ROW_ID])
    return None


def preview_row(
    action: Action, index: int, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Message ``index`` (1-based) of the filtered rows: subject, body, text, each
    condition's value, the total, and where the next all-false row is. Errors in the
    templates or conditions come back as ``error`` (a message for the user)."""
    result: dict[str, Any] = {
        "index": 0,
        "total": 0,
        "subject": "",
        "body": "",
        "text": "",
        "conditions": {},
        "values": {},
        "recipient": "",
        "row_key": "",
        "next_all_false": None,
        "error": None,
    }
    try:
        prepared = prepare(action, options)
    except (TemplateError, conds.ConditionError) as exc:
        result["error"] = str(exc)
        return result
    if action.action_type in REPORT_TYPES:
        message = report_message(prepared, options or {})
        result.update(
            index=1,
            total=1,
            subject=message.subject,
            body=message.body,
            text=message.text,
            recipient=message.recipient,
        )
        _check_json(action, result)
        return result
    total = count_messages(action)
    result["total"] = total
    if total == 0:
        return result
    index = min(max(1, int(index)), total)
    rows = _fetch(prepared, offset=index - 1, limit=1)
    if not rows:
        return result
    message = _message(prepared, rows[0], with_text=True)
    result.update(
        index=index,
        rid=message.rid,
        subject=message.subject,
        body=message.body,
        text=message.text,
        conditions=message.conditions,
        values=message.values,
        recipient=message.recipient,
        row_key=message.row_key,
        next_all_false=next_all_false(prepared, message.rid),
    )
    _check_json(action, result)
    return result


def _check_json(action: Action, result: dict[str, Any]) -> None:
    if action.action_type not in JSON_TYPES:
        return
    try:
        json.loads(result["body"])
    except ValueError as exc:
        result["error"] = _("The rendered text is not valid JSON: %(reason)s") % {"reason": exc}
