"""Surveys and TODO lists: which questions a row is asked, and writing the answers.

A question is a column of the action (``ActionColumn``), shown when its condition (if any)
is TRUE for the row — decided by the same compiled SQL predicate as everywhere else — and
when the column's own active window is open. Answers go through ``services.row_update``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.feedback import conditions as conds
from closedloop.feedback import services, table
from closedloop.feedback.models import Action, ActionColumn, ActionType, Column, DataType
from closedloop.feedback.services import FeedbackError


@dataclass
class Question:
    column: Column
    changes_allowed: bool
    value: Any
    locked: bool  # answered already and changes are not allowed

    @property
    def input_kind(self) -> str:
        column = self.column
        if column.categories:
            return "select"
        kinds: dict[str, str] = {
            DataType.BOOLEAN: "checkbox",
            DataType.INTEGER: "number",
            DataType.DOUBLE: "number",
            DataType.DATETIME: "datetime-local",
        }
        return kinds.get(column.data_type, "text")

    @property
    def field_name(self) -> str:
        return f"q{self.column.pk}"

    @property
    def input_value(self) -> str:
        value = self.value
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    @property
    def choices(self) -> list[str]:
        return [str(c) for c in (self.column.categories or [])]


def window_open(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime | None = None
) -> bool:
    now = now or timezone.now()
    return (start is None or start <= now) and (end is None or now <= end)


def key_column(action: Action, columns: list[Column]) -> Column:
    name = (action.options or {}).get("key_column")
    keys = [c for c in columns if c.is_key]
    chosen = next((c for c in keys if c.name == name), None) or (keys[0] if keys else None)
    if chosen is None:
        raise FeedbackError(_("The table has no key column."))
    return chosen


def find_learner_row(action: Action, columns: list[Column], email: str) -> dict[str, Any] | None:
    """The row whose item column (default ``email``) equals ``email``, case-insensitively,
    within the action's filter."""
    from closedloop.feedback.render import item_column_name

    by_name = {c.name: c for c in columns}
    item = by_name.get(item_column_name(action) or "email") or by_name.get("email")
    if item is None or not email:
        return None
    flt = conds.compile_formula(action.filter.formula if action.filter else None, columns)
    col = connection.ops.quote_name(item.physical)
    rows = table.fetch_rows(
        action.workflow,
        columns,
        where=f"({flt.sql}) AND LOWER({col}) = %s",
        params=[*flt.params, email.strip().lower()],
        limit=1,
        extra_select=_condition_selects(action, columns),
    )
    return rows[0] if rows else None


def _condition_selects(action: Action, columns: list[Column]) -> list[tuple[str, str, list[Any]]]:
    out = []
    for ac in ActionColumn.objects.filter(action=action, condition__isnull=False).select_related(
        "condition"
    ):
        assert ac.condition is not None
        sql, params = conds.compile_formula(ac.condition.formula, columns).case()
        out.append((f"__cond_{ac.condition_id}", sql, params))
    return out


def questions_for(action: Action, row: dict[str, Any], *, seed: Any = None) -> list[Question]:
    """The questions shown to ``row`` in order (shuffled, stably per ``seed``, if set)."""
    out = []
    for ac in (
        ActionColumn.objects.filter(action=action)
        .select_related("column")
        .order_by("position", "id")
    ):
        column = ac.column
        if ac.condition_id and row.get(f"__cond_{ac.condition_id}") != 1:
            continue
        if not window_open(column.active_from, column.active_to):
            continue
        value = row.get(column.name)
        locked = not ac.changes_allowed and value is not None
        out.append(Question(column, ac.changes_allowed, value, locked))
    if action.shuffle:
        random.Random(str(seed)).shuffle(out)
    return out


def answers_from(questions: list[Question], data: Any, action: Action) -> dict[str, Any]:
    """Typed values to write from a posted form; FeedbackError names the question."""
    values: dict[str, Any] = {}
    for question in questions:
        if question.locked:
            continue
        column = question.column
        if question.input_kind == "checkbox":
            values[column.name] = bool(data.get(question.field_name))
            continue
        raw = data.get(question.field_name, "")
        value = services.coerce_value(column, raw)
        if value == question.value:
            continue
        values[column.name] = value
    return values


def save_answers(
    *,
    action: Action,
    actor: Any,
    row: dict[str, Any],
    columns: list[Column],
    values: dict[str, Any],
) -> None:
    if not values:
        return
    key = key_column(action, columns)
    services.row_update(
        workflow=action.workflow,
        actor=actor,
        key_column=key.name,
        key_value=row[key.name],
        values=values,
    )


def is_servable(action: Action) -> bool:
    return action.action_type in (
        ActionType.PERSONALIZED_TEXT,
        ActionType.RUBRIC,
        ActionType.SURVEY,
        ActionType.TODO_LIST,
    )
