"""Template helpers of the condition builder (``feedback/builder/widget.html``)."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.translation import gettext as _

from closedloop.feedback import conditions

register = template.Library()


@register.filter
def builder_fields(columns: Any) -> list[dict[str, Any]]:
    """Columns → what the builder offers for each (type, operators, choices)."""
    return conditions.builder_fields(columns or [])


@register.filter
def formula_json(formula: Any) -> str:
    """A formula as the JSON text of the builder's hidden input."""
    if isinstance(formula, str):
        return formula
    return json.dumps(formula or {}, ensure_ascii=False)


@register.filter
def formula_text(formula: Any) -> str:
    return conditions.formula_to_text(formula)


@register.simple_tag
def builder_strings() -> dict[str, Any]:
    """The words the builder's script shows, in the user's language."""
    return {
        "operators": conditions.operator_labels(),
        "and": _("AND"),
        "or": _("OR"),
        "not": _("NOT"),
        "match": _("Combine the rules with"),
        "negate": _("Negate this group"),
        "addRule": _("Add rule"),
        "addGroup": _("Add group"),
        "removeRule": _("Remove rule"),
        "removeGroup": _("Remove group"),
        "field": _("Column"),
        "operator": _("Operator"),
        "value": _("Value"),
        "from": _("From"),
        "to": _("To"),
        "true": _("true"),
        "false": _("false"),
        "choose": _("Choose…"),
        "empty": _("No rules: every row matches."),
        "noColumns": _("This workflow has no columns yet."),
        "counting": _("Counting…"),
        "count1": _("1 row matches"),
        "countN": _("%(count)s rows match"),
        "failed": _("The count could not be computed."),
        "group": _("Group of rules"),
        "rule": _("Rule"),
    }
