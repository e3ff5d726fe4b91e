"""Action services: create, change, clone and delete actions of every type, their survey
questions / rubric criteria / TODO items and rubric cells.

Every change is validated before it is stored: the text and subject templates and each
condition are compiled, so a broken action is refused with a message saying what is wrong
(and nothing changes). Changes to the text bump the workflow version (optimistic lock).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from closedloop.core.crypto import encrypt
from closedloop.feedback import conditions as conds
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    Action,
    ActionColumn,
    ActionType,
    Column,
    Condition,
    DataType,
    Filter,
    RubricCell,
    TextFormat,
    Workflow,
)
from closedloop.feedback.services import FeedbackError, bump_version
from closedloop.feedback.templating import TemplateError

#: fields action_update accepts
EDITABLE = {
    "name",
    "description",
    "filter",
    "text_content",
    "text_format",
    "subject",
    "target_url",
    "token",
    "serve_enabled",
    "active_from",
    "active_to",
    "shuffle",
    "options",
}

DEFAULT_TEXT: dict[str, str] = {
    ActionType.EMAIL: "<p>Dear {{ name }},</p>\n<p></p>",
    ActionType.PERSONALIZED_TEXT: "<p>Dear {{ name }},</p>\n<p></p>",
    ActionType.RUBRIC: "<p>Dear {{ name }},</p>\n{% rubric %}",
    ActionType.SMS: "Hello {{ name }}",
    ActionType.CANVAS_EMAIL: "Hello {{ name }}",
    ActionType.JSON: '{"email": {{ email }}}',
    ActionType.EMAIL_REPORT: '<p>Report</p>\n{% report "KEY" %}',
    ActionType.JSON_REPORT: '{"report": {% report "KEY" %}}',
}


def _error(message: str, column: str | None = None) -> FeedbackError:
    error = FeedbackError(message)
    error.errors = [{"row": None, "column": column, "message": str(message)}]
    return error


def enabled_types() -> list[str]:
    disabled = {str(t).strip() for t in getattr(settings, "DISABLED_ACTIONS", []) or []}
    return [t.value for t in ActionType if t.value not in disabled]


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


# --- validation -------------------------------------------------------------------------


def validate(action: Action) -> list[dict[str, Any]]:
    """Everything wrong with ``action`` as it stands (empty: it can be previewed and run).
    Each item is ``{"field": ..., "message": ...}``."""
    from closedloop.feedback import render  # render imports nothing from here

    problems: list[dict[str, Any]] = []
    columns = _columns(action.workflow)
    for condition in Condition.objects.filter(action=action) if action.pk else []:
        try:
            conds.compile_formula(condition.formula, columns)
        except conds.ConditionError as exc:
            problems.append(
                {
                    "field": "conditions",
                    "message": _("Condition “%(name)s”: %(e)s")
                    % {"name": condition.name, "e": exc},
                }
            )
    if action.filter_id:
        try:
            conds.compile_formula(action.filter.formula if action.filter else None, columns)
        except conds.ConditionError as exc:
            problems.append({"field": "filter", "message": str(exc)})
    if action.action_type in (ActionType.SURVEY, ActionType.TODO_LIST):
        problems += _validate_in_action(action, columns)
    if problems:
        return problems
    try:
        prepared = render.prepare(action)
    except TemplateError as exc:
        problems.append({"field": exc.field or "text_content", "message": str(exc)})
        return problems
    except conds.ConditionError as exc:
        problems.append({"field": "conditions", "message": str(exc)})
        return problems
    is_report = action.action_type in (ActionType.EMAIL_REPORT, ActionType.JSON_REPORT)
    if is_report and not prepared.body.reports:
        problems.append(
            {
                "field": "text_content",
                "message": _('Insert at least one report tag: {% report "Column" %}.'),
            }
        )
    return problems


def _validate_in_action(action: Action, columns: list[Column]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    key_name = (action.options or {}).get("key_column")
    keys = [c for c in columns if c.is_key]
    if key_name and key_name not in {c.name for c in keys}:
        problems.append(
            {
                "field": "options.key_column",
                "message": _("“%(name)s” is not a key column.") % {"name": key_name},
            }
        )
    if not keys:
        problems.append(
            {"field": "options.key_column", "message": _("The table has no key column.")}
        )
    return problems


def _check(action: Action) -> None:
    problems = validate(action)
    if problems:
        error = FeedbackError(problems[0]["message"])
        error.errors = [
            {"row": None, "column": p["field"], "message": p["message"]} for p in problems
        ]
        raise error


def _clean_fields(workflow: Workflow, action_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if "name" in out:
        out["name"] = str(out["name"] or "").strip()
        if not out["name"]:
            raise _error(_("Give the action a name."), "name")
        if len(out["name"]) > 200:
            raise _error(_("The name is longer than 200 characters."), "name")
    flt = out.get("filter")
    if flt is not None and not isinstance(flt, Filter):
        flt = Filter.objects.filter(workflow=workflow, pk=flt).first()
        if flt is None:
            raise _error(_("There is no such filter in this workflow."), "filter")
        out["filter"] = flt
    elif isinstance(flt, Filter) and flt.workflow_id != workflow.pk:
        raise _error(_("There is no such filter in this workflow."), "filter")
    if "text_format" in out and out["text_format"] not in TextFormat.values:
        raise _error(_("Unknown text format “%(f)s”.") % {"f": out["text_format"]}, "text_format")
    if out.get("target_url"):
        try:
            URLValidator(schemes=["http", "https"])(out["target_url"])
        except ValidationError:
            raise _error(_("The target URL must be an http(s) address."), "target_url") from None
    if "token" in out:
        out["token_encrypted"] = encrypt(out.pop("token") or "")
    start, end = out.get("active_from"), out.get("active_to")
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime) and end <= start:
        raise _error(_("The active window must end after it starts."), "active_to")
    if "options" in out:
        out["options"] = _clean_options(action_type, dict(out["options"] or {}))
    return out


def _clean_options(action_type: str, options: dict[str, Any]) -> dict[str, Any]:
    for key in ("email_to", "cc", "bcc"):
        if key not in options:
            continue
        value = options[key]
        addresses = value.split() if isinstance(value, str) else list(value or [])
        addresses = [a.strip().strip(",;") for a in addresses if a.strip().strip(",;")]
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise _error(
                    _("“%(a)s” is not an email address.") % {"a": address}, f"options.{key}"
                ) from None
        options[key] = addresses
    return options


# --- actions ----------------------------------------------------------------------------


@transaction.atomic
def action_create(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    action_type: str,
    description: str = "",
    text_content: str | None = None,
    text_format: str = TextFormat.HTML,
    options: dict[str, Any] | None = None,
    **fields: Any,
) -> Action:
    if action_type not in ActionType.values:
        raise _error(_("Unknown action type “%(t)s”.") % {"t": action_type}, "action_type")
    if action_type not in enabled_types():
        raise _error(_("Actions of this type are disabled on this site."), "action_type")
    unknown = set(fields) - EDITABLE
    if unknown:
        raise _error(_("Unknown field “%(f)s”.") % {"f": sorted(unknown)[0]}, sorted(unknown)[0])
    if text_content is None:
        text_content = _default_text(workflow, action_type)
    if (
        action_type
        in (ActionType.SMS, ActionType.CANVAS_EMAIL, ActionType.JSON, ActionType.JSON_REPORT)
        and text_format == TextFormat.HTML
    ):
        text_format = TextFormat.TEXT
    values = _clean_fields(
        workflow,
        action_type,
        {
            "name": name,
            "description": description,
            "text_content": text_content,
            "text_format": text_format,
            "options": options or {},
            **fields,
        },
    )
    if Action.objects.filter(workflow=workflow, name=values["name"]).exists():
        raise _error(_("An action named “%(n)s” exists already.") % {"n": values["name"]}, "name")
    action = Action(
        account_id=workflow.account_id, workflow=workflow, action_type=action_type, **values
    )
    if action_type in (ActionType.SURVEY, ActionType.TODO_LIST):
        action.options.setdefault("key_column", _first_key(workflow))
    _check(action)
    action.save()
    bump_version(workflow)
    log_event(
        workflow,
        actor,
        "action_create",
        {"action": action.name, "id": action.pk, "type": action_type},
    )
    return action


def _first_key(workflow: Workflow) -> str:
    key = Column.objects.filter(workflow=workflow, is_key=True).order_by("position", "id").first()
    return key.name if key else ""


def _default_text(workflow: Workflow, action_type: str) -> str:
    names = set(Column.objects.filter(workflow=workflow).values_list("name", flat=True))
    text = DEFAULT_TEXT.get(action_type, "")
    if "{{ name }}" in text and "name" not in names:
        text = text.replace(" {{ name }}", "")
    if "{{ email }}" in text and "email" not in names:
        text = text.replace("{{ email }}", "null")
    if '"KEY"' in text:
        text = text.replace("KEY", _first_key(workflow).replace('"', ""))
    return text


@transaction.atomic
def action_update(
    *, action: Action, actor: Any, expected_version: int | None = None, **fields: Any
) -> Action:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise _error(_("Unknown field “%(f)s”.") % {"f": sorted(unknown)[0]}, sorted(unknown)[0])
    workflow = action.workflow
    values = _clean_fields(workflow, action.action_type, fields)
    if (
        "name" in values
        and Action.objects.filter(workflow=workflow, name=values["name"])
        .exclude(pk=action.pk)
        .exists()
    ):
        raise _error(_("An action named “%(n)s” exists already.") % {"n": values["name"]}, "name")
    if "options" in values:
        values["options"] = {**(action.options or {}), **values["options"]}
    changed = []
    for key, value in values.items():
        if getattr(action, key) != value:
            setattr(action, key, value)
            changed.append(key)
    if not changed:
        if expected_version is not None:
            bump_version(workflow, expected_version)
        return action
    _check(action)
    action.save()
    bump_version(workflow, expected_version)
    log_event(
        workflow,
        actor,
        "action_update",
        {"action": action.name, "id": action.pk, "fields": sorted(changed)},
    )
    return action


@transaction.atomic
def action_delete(*, action: Action, actor: Any) -> None:
    workflow = action.workflow
    payload = {"action": action.name, "id": action.pk, "type": action.action_type}
    action.delete()
    bump_version(workflow)
    log_event(workflow, actor, "action_delete", payload)


@transaction.atomic
def action_clone(*, action: Action, actor: Any, name: str) -> Action:
    name = (name or "").strip()
    workflow = action.workflow
    if not name:
        raise _error(_("Give the copy a name."), "name")
    if Action.objects.filter(workflow=workflow, name=name).exists():
        raise _error(_("An action named “%(n)s” exists already.") % {"n": name}, "name")
    conditions = list(Condition.objects.filter(action=action))
    questions = list(ActionColumn.objects.filter(action=action))
    cells = list(RubricCell.objects.filter(action=action))
    source_pk = action.pk
    copy = Action.objects.get(pk=source_pk)
    copy.pk = None
    copy.id = None
    copy.name = name
    copy.public_id = uuid.uuid4()
    copy.serve_enabled = False
    copy.save()
    mapping: dict[int, Condition] = {}
    for condition in conditions:
        old = condition.pk
        condition.pk = None
        condition.id = None
        condition.action = copy
        condition.save()
        mapping[old] = condition
    for question in questions:
        question.pk = None
        question.id = None
        question.action = copy
        question.condition = mapping.get(question.condition_id) if question.condition_id else None
    ActionColumn.objects.bulk_create(questions)
    for cell in cells:
        cell.pk = None
        cell.id = None
        cell.action = copy
    RubricCell.objects.bulk_create(cells)
    bump_version(workflow)
    log_event(workflow, actor, "action_clone", {"action": name, "id": copy.pk, "from": action.name})
    return copy


# --- questions, criteria, items ------------------------------------------------------------


def _column(workflow: Workflow, name_or_id: Any) -> Column:
    qs = Column.objects.filter(workflow=workflow)
    column = (
        qs.filter(pk=name_or_id).first()
        if isinstance(name_or_id, int)
        else qs.filter(name=str(name_or_id)).first()
    )
    if column is None:
        raise _error(_("There is no column named “%(n)s”.") % {"n": name_or_id}, "columns")
    return column


@transaction.atomic
def action_set_columns(
    *, action: Action, actor: Any, items: Sequence[dict[str, Any]]
) -> list[ActionColumn]:
    """Replace the survey questions / rubric criteria / TODO items: each item is
    ``{"column": name or id, "condition": name or None, "changes_allowed": bool}``."""
    workflow = action.workflow
    seen: set[int] = set()
    rows: list[ActionColumn] = []
    conditions = {c.name: c for c in Condition.objects.filter(action=action)}
    for position, item in enumerate(items, start=1):
        column = _column(workflow, item.get("column"))
        if column.pk in seen:
            raise _error(_("“%(n)s” is listed twice.") % {"n": column.name}, "columns")
        seen.add(column.pk)
        _check_column_kind(action, column)
        condition = None
        if item.get("condition"):
            condition = conditions.get(str(item["condition"]))
            if condition is None:
                raise _error(
                    _("There is no condition named “%(n)s” in this action.")
                    % {"n": item["condition"]},
                    "condition",
                )
        rows.append(
            ActionColumn(
                account_id=action.account_id,
                action=action,
                column=column,
                condition=condition,
                changes_allowed=bool(item.get("changes_allowed", True)),
                position=position,
            )
        )
    ActionColumn.objects.filter(action=action).delete()
    ActionColumn.objects.bulk_create(rows)
    if action.action_type == ActionType.RUBRIC:
        RubricCell.objects.filter(action=action).exclude(column_id__in=seen).delete()
    bump_version(workflow)
    log_event(
        workflow,
        actor,
        "action_columns",
        {"action": action.name, "columns": [r.column.name for r in rows]},
    )
    return rows


def _check_column_kind(action: Action, column: Column) -> None:
    if action.action_type == ActionType.TODO_LIST and column.data_type != DataType.BOOLEAN:
        raise _error(
            _("TODO items must be true/false columns; “%(n)s” is not.") % {"n": column.name},
            "columns",
        )
    if action.action_type == ActionType.RUBRIC and len(column.categories or []) < 2:
        raise _error(
            _("A rubric criterion needs a column with categories (the levels); “%(n)s” has none.")
            % {"n": column.name},
            "columns",
        )
    if action.action_type == ActionType.SURVEY and column.is_key:
        raise _error(_("A key column cannot be a survey question."), "columns")


@transaction.atomic
def rubric_set_cells(*, action: Action, actor: Any, cells: Iterable[dict[str, Any]]) -> int:
    """Store the rubric grid: ``{"column": name, "level": i, "description", "feedback"}``."""
    if action.action_type != ActionType.RUBRIC:
        raise _error(_("Only rubric actions have rubric cells."))
    workflow = action.workflow
    criteria = {
        ac.column.name: ac.column
        for ac in ActionColumn.objects.filter(action=action).select_related("column")
    }
    rows: dict[tuple[int, int], RubricCell] = {}
    for cell in cells:
        column = criteria.get(str(cell.get("column")))
        if column is None:
            raise _error(
                _("“%(n)s” is not a criterion of this rubric.") % {"n": cell.get("column")},
                "column",
            )
        try:
            level = int(cell.get("level", -1))
        except (TypeError, ValueError):
            level = -1
        if not 0 <= level < len(column.categories or []):
            raise _error(
                _("Level %(l)s does not exist for “%(n)s”.")
                % {"l": cell.get("level"), "n": column.name},
                "level",
            )
        rows[(column.pk, level)] = RubricCell(
            account_id=action.account_id,
            action=action,
            column=column,
            level=level,
            description=str(cell.get("description") or ""),
            feedback=str(cell.get("feedback") or ""),
        )
    RubricCell.objects.filter(action=action).delete()
    RubricCell.objects.bulk_create(rows.values())
    bump_version(workflow)
    log_event(workflow, actor, "action_rubric", {"action": action.name, "cells": len(rows)})
    return len(rows)


def rubric_grid(action: Action) -> list[dict[str, Any]]:
    """Criteria × levels for the editor: ``[{"column", "levels": [{"level", "value",
    "description", "feedback"}]}]``."""
    cells = {(c.column_id, c.level): c for c in RubricCell.objects.filter(action=action)}
    grid = []
    for ac in ActionColumn.objects.filter(action=action).select_related("column"):
        column = ac.column
        levels = []
        for i, value in enumerate(column.categories or []):
            cell = cells.get((column.pk, i))
            levels.append(
                {
                    "level": i,
                    "value": value,
                    "description": cell.description if cell else "",
                    "feedback": cell.feedback if cell else "",
                }
            )
        grid.append({"column": column, "levels": levels})
    return grid


def safe_create(**kwargs: Any) -> Action:
    """action_create, turning a lost race on the unique name into the same FeedbackError."""
    try:
        return action_create(**kwargs)
    except IntegrityError:
        raise _error(
            _("An action named “%(n)s” exists already.") % {"n": kwargs.get("name")}, "name"
        ) from None
