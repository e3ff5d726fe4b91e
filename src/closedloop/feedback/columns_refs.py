"""Where a column's name is used (filters, conditions, action texts and options,
survey questions, schedules) — for rename propagation and delete checks."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.utils.translation import gettext as _

from closedloop.feedback.models import Action, ActionColumn, Condition, Filter, Schedule, Workflow

# --- formulas (conditions.py when present, else a minimal walk of QueryBuilder JSON) ----------


def _walk(formula: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(formula, dict):
        return
    for rule in formula.get("rules") or []:
        if isinstance(rule, dict) and "rules" in rule:
            yield from _walk(rule)
        elif isinstance(rule, dict):
            yield rule


def formula_fields(formula: Any) -> set[str]:
    try:
        from closedloop.feedback.conditions import formula_fields as fields
    except ImportError:  # pragma: no cover - conditions not installed
        return {str(r.get("field") or r.get("id")) for r in _walk(formula)}
    return set(fields(formula))


def rename_formula_field(formula: Any, old: str, new: str) -> dict[str, Any]:
    try:
        from closedloop.feedback.conditions import rename_formula_field as rename
    except ImportError:  # pragma: no cover
        renamed: dict[str, Any] = copy.deepcopy(formula) if isinstance(formula, dict) else {}
        for rule in _walk(renamed):
            for key in ("field", "id"):
                if rule.get(key) == old:
                    rule[key] = new
        return renamed
    return rename(formula, old, new)


def _without_field(formula: Any, name: str) -> Any:
    """``formula`` without the rules on ``name`` (empty groups removed)."""
    if not isinstance(formula, dict) or "rules" not in formula:
        return formula
    rules = []
    for rule in formula.get("rules") or []:
        if isinstance(rule, dict) and "rules" in rule:
            inner = _without_field(rule, name)
            if inner.get("rules"):
                rules.append(inner)
        elif not (isinstance(rule, dict) and name in (rule.get("field"), rule.get("id"))):
            rules.append(rule)
    return {**formula, "rules": rules}


# --- templates (templating.py when present, else tokens by regex) -----------------------------


def _fallback_rename(text: str, old: str, new: str) -> str:
    name = re.escape(old)
    text = re.sub(r"(\{\{\s*)" + name + r"(\s*\}\})", lambda m: m[1] + new + m[2], text)
    return re.sub(
        r"(\{%\s*(?:el)?if\s+(?:not\s+)?)" + name + r"(\s*%\})", lambda m: m[1] + new + m[2], text
    )


def rename_in_template(text: str, old: str, new: str) -> str:
    if not text:
        return text
    try:
        from closedloop.feedback.templating import rename_in_template as rename
    except ImportError:  # pragma: no cover
        return _fallback_rename(text, old, new)
    try:
        return str(rename(text, old, new))
    except ValueError:  # a template that does not parse: rename its plain tokens
        return _fallback_rename(text, old, new)


def template_uses(text: str, name: str) -> bool:
    if not text:
        return False
    try:
        from closedloop.feedback.templating import template_names
    except ImportError:  # pragma: no cover
        return _fallback_rename(text, name, "\x00") != text
    try:
        return name in template_names(text)
    except ValueError:
        return _fallback_rename(text, name, "\x00") != text


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, change) for k, v in value.items()}
    return value


def _options_rename(options: Any, old: str, new: str) -> Any:
    """Option values equal to the name (item column, report columns...) and templates."""

    def change(text: str) -> str:
        if text == old:
            return new
        return rename_in_template(text, old, new) if "{" in text else text

    return _map_strings(options, change)


def _options_use(options: Any, name: str) -> bool:
    found = False

    def check(text: str) -> str:
        nonlocal found
        found = found or text == name or ("{" in text and template_uses(text, name))
        return text

    _map_strings(options, check)
    return found


# --- the uses of a column -------------------------------------------------------------------


def column_uses(column: Any) -> list[str]:
    """Human descriptions of what uses ``column`` by name (views excepted: they refer to
    columns by id and simply drop a deleted one)."""
    workflow, name = column.workflow, column.name
    uses: list[str] = []
    for item in Filter.objects.filter(workflow=workflow):
        if name in formula_fields(item.formula):
            uses.append(_("filter “%(name)s”") % {"name": item.name})
    for cond in Condition.objects.filter(action__workflow=workflow).select_related("action"):
        if name in formula_fields(cond.formula):
            uses.append(
                _("condition “%(name)s” of action “%(action)s”")
                % {"name": cond.name, "action": cond.action.name}
            )
    for action in Action.objects.filter(workflow=workflow):
        if (
            template_uses(action.text_content, name)
            or template_uses(action.subject, name)
            or _options_use(action.options, name)
        ):
            uses.append(_("action “%(name)s”") % {"name": action.name})
    for item in ActionColumn.objects.filter(column=column).select_related("action"):
        uses.append(_("questions of action “%(name)s”") % {"name": item.action.name})
    for schedule in Schedule.objects.filter(workflow=workflow):
        if _options_use(schedule.payload, name):
            uses.append(_("schedule “%(name)s”") % {"name": schedule.name})
    return list(dict.fromkeys(uses))


def propagate_rename(workflow: Workflow, old: str, new: str) -> dict[str, int]:
    """Point every filter, condition, action text / subject / options and schedule
    payload that uses column ``old`` at ``new``. Returns how many of each changed."""
    counts = {"filters": 0, "conditions": 0, "actions": 0, "schedules": 0}
    for item in Filter.objects.filter(workflow=workflow):
        if old in formula_fields(item.formula):
            item.formula = rename_formula_field(item.formula, old, new)
            item.save(update_fields=["formula"])
            counts["filters"] += 1
    for cond in Condition.objects.filter(action__workflow=workflow):
        if old in formula_fields(cond.formula):
            cond.formula = rename_formula_field(cond.formula, old, new)
            cond.save(update_fields=["formula"])
            counts["conditions"] += 1
    for action in Action.objects.filter(workflow=workflow):
        text = rename_in_template(action.text_content, old, new)
        subject = rename_in_template(action.subject, old, new)
        options = _options_rename(action.options, old, new)
        if (text, subject, options) != (action.text_content, action.subject, action.options):
            action.text_content, action.subject, action.options = text, subject, options
            action.save(update_fields=["text_content", "subject", "options", "updated_at"])
            counts["actions"] += 1
    for schedule in Schedule.objects.filter(workflow=workflow):
        payload = _map_strings(schedule.payload, lambda t: new if t == old else t)
        if payload != schedule.payload:
            schedule.payload = payload
            schedule.save(update_fields=["payload", "updated_at"])
            counts["schedules"] += 1
    return counts


def remove_from_formulas(workflow: Workflow, name: str) -> None:
    """Drop the rules on column ``name`` from every filter and condition."""
    for item in Filter.objects.filter(workflow=workflow):
        if name in formula_fields(item.formula):
            item.formula = _without_field(item.formula, name)
            item.save(update_fields=["formula"])
    for cond in Condition.objects.filter(action__workflow=workflow):
        if name in formula_fields(cond.formula):
            cond.formula = _without_field(cond.formula, name)
            cond.save(update_fields=["formula"])
