"""Conditions and filters: jQuery-QueryBuilder JSON compiled to one SQL predicate.

A formula is a tree of groups ``{"condition": "AND"|"OR", "not": bool, "rules": [...]}``
whose rules are ``{"id", "field", "type", "input", "operator", "value"}`` (OnTask's shape).
:func:`compile_formula` turns it into a parameterised SQL predicate over the workflow
table's physical columns. That one predicate is the only evaluator: it counts rows, selects
a filter's rows and (as ``CASE WHEN (pred) THEN 1 ELSE 0 END``) decides each message's
conditional text, so they can never disagree.

Semantics are SQL's three-valued logic (see docs/conditions.md): a rule over a NULL value is
UNKNOWN, groups combine with Kleene AND / OR / NOT, and a row is selected only when the whole
formula is TRUE. ``is_empty`` / ``is_not_empty`` / ``is_null`` / ``is_not_null`` are always
definite.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from closedloop.feedback.models import Column, Condition, DataType, Filter

if TYPE_CHECKING:
    from closedloop.feedback.models import Workflow

TRUE_SQL = "1=1"

# --- operators ----------------------------------------------------------------------------

EQUALITY = ["equal", "not_equal"]
COMPARISONS = [*EQUALITY, "less", "less_or_equal", "greater", "greater_or_equal"]
RANGES = ["between", "not_between"]
NULL_TESTS = ["is_null", "is_not_null"]
TEXT_MATCHES = [
    "begins_with",
    "not_begins_with",
    "contains",
    "not_contains",
    "ends_with",
    "not_ends_with",
]
EMPTY_TESTS = ["is_empty", "is_not_empty"]
OPERATORS = [*COMPARISONS, *RANGES, *TEXT_MATCHES, *EMPTY_TESTS, *NULL_TESTS]
#: operators that take no value
NO_VALUE = {*EMPTY_TESTS, *NULL_TESTS}

OPERATORS_BY_TYPE: dict[str, list[str]] = {
    DataType.STRING: [*EQUALITY, *TEXT_MATCHES, *EMPTY_TESTS, *NULL_TESTS],
    DataType.INTEGER: [*COMPARISONS, *RANGES, *NULL_TESTS],
    DataType.DOUBLE: [*COMPARISONS, *RANGES, *NULL_TESTS],
    DataType.DATETIME: [*COMPARISONS, *RANGES, *NULL_TESTS],
    DataType.BOOLEAN: [*EQUALITY, *NULL_TESTS],
}
#: columns with categories offer a choice of their values
CATEGORY_OPERATORS = [*EQUALITY, *NULL_TESTS]

OPERATOR_LABELS = {
    "equal": gettext_lazy("="),
    "not_equal": gettext_lazy("≠"),
    "less": gettext_lazy("<"),
    "less_or_equal": gettext_lazy("≤"),
    "greater": gettext_lazy(">"),
    "greater_or_equal": gettext_lazy("≥"),
    "between": gettext_lazy("between"),
    "not_between": gettext_lazy("not between"),
    "begins_with": gettext_lazy("begins with"),
    "not_begins_with": gettext_lazy("does not begin with"),
    "contains": gettext_lazy("contains"),
    "not_contains": gettext_lazy("does not contain"),
    "ends_with": gettext_lazy("ends with"),
    "not_ends_with": gettext_lazy("does not end with"),
    "is_empty": gettext_lazy("is empty"),
    "is_not_empty": gettext_lazy("is not empty"),
    "is_null": gettext_lazy("is null"),
    "is_not_null": gettext_lazy("is not null"),
}

_COMPARE_SQL = {
    "equal": "=",
    "not_equal": "<>",
    "less": "<",
    "less_or_equal": "<=",
    "greater": ">",
    "greater_or_equal": ">=",
}

# what the builder's <input> looks like for each type (QueryBuilder's "input" / "type")
INPUT_BY_TYPE: dict[str, str] = {
    DataType.STRING: "text",
    DataType.INTEGER: "number",
    DataType.DOUBLE: "number",
    DataType.DATETIME: "text",
    DataType.BOOLEAN: "select",
}


class ConditionError(ValueError):
    """A formula that cannot be compiled; ``field`` names the rule's column when known."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = str(message)
        super().__init__(f"{field}: {self.message}" if field else self.message)


@dataclass(frozen=True)
class Predicate:
    sql: str
    params: list[Any]

    def case(self) -> tuple[str, list[Any]]:
        """The predicate as a 0/1 value for a SELECT list (UNKNOWN counts as 0)."""
        return f"CASE WHEN ({self.sql}) THEN 1 ELSE 0 END", list(self.params)


def operators_for(column: Column) -> list[str]:
    """The operators offered for ``column`` (booleans and categories: a choice of values)."""
    if column.categories:
        return list(CATEGORY_OPERATORS)
    return list(OPERATORS_BY_TYPE.get(column.data_type, NULL_TESTS))


# --- value coercion -----------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}
_ZONE_SUFFIX = re.compile(r"^(?P<stamp>.+?)\s+(?P<zone>[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)$")


def parse_datetime_value(raw: Any) -> dt.datetime:
    """``YYYY-MM-DD HH:mm[:ss[.ffffff]]`` (or with ``T``), optional zone as an offset
    (``+02:00``, ``Z``) or a name (``Europe/Paris``); naive values are in TIME_ZONE.
    Returns an aware UTC datetime. Raises ValueError."""
    if isinstance(raw, dt.datetime):
        value = raw
    else:
        text = str(raw).strip()
        zone: dt.tzinfo | None = None
        match = _ZONE_SUFFIX.match(text)
        if match and match["zone"].upper() not in {"AM", "PM"}:
            try:
                zone = zoneinfo.ZoneInfo(match["zone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(text) from None
            text = match["stamp"]
        value = dt.datetime.fromisoformat(text)
        if zone is not None:
            if value.tzinfo is not None:
                raise ValueError(text)
            value = value.replace(tzinfo=zone)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
    return value.astimezone(dt.UTC)


def _number(field: str, raw: Any) -> int | float:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ConditionError(field, _("%(value)r is not a number") % {"value": raw})
    if isinstance(raw, int):
        return raw
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ConditionError(field, _("%(value)r is not a number") % {"value": raw}) from None
    if not math.isfinite(number):
        raise ConditionError(field, _("%(value)r is not a finite number") % {"value": raw})
    return number


def coerce_value(column: Column, raw: Any) -> Any:
    """A rule's value as a DB parameter for ``column`` (ConditionError naming the column)."""
    field, kind = column.name, column.data_type
    if kind == DataType.STRING:
        if raw is None or isinstance(raw, (list, dict)):
            raise ConditionError(field, _("a text value is needed"))
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, float) and raw.is_integer():
            return str(int(raw))
        return str(raw)
    if kind == DataType.INTEGER:
        number = _number(field, raw)
        # a fractional bound on an integer column still compares correctly as a number
        return int(number) if float(number).is_integer() and abs(number) < 2**63 else number
    if kind == DataType.DOUBLE:
        return float(_number(field, raw))
    if kind == DataType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        text = str(raw).strip().lower() if raw is not None else ""
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConditionError(field, _("%(value)r is not true or false") % {"value": raw})
    if kind == DataType.DATETIME:
        if raw is None or isinstance(raw, (bool, int, float, list, dict)):
            raise ConditionError(field, _("%(value)r is not a date and time") % {"value": raw})
        try:
            value = parse_datetime_value(raw)
        except (ValueError, TypeError, OverflowError):
            raise ConditionError(
                field,
                _(
                    "%(value)r is not a date and time (use YYYY-MM-DD HH:mm:ss, optionally with a zone)"
                )
                % {"value": raw},
            ) from None
        if connection.vendor == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value
    raise ConditionError(field, _("unsupported column type %(type)s") % {"type": kind})


def _category_value(column: Column, raw: Any) -> Any:
    value = coerce_value(column, raw)
    if column.categories:
        allowed = [coerce_value(column, c) for c in column.categories]
        if value not in allowed:
            raise ConditionError(
                column.name, _("%(value)r is not one of the allowed values") % {"value": raw}
            )
    return value


# --- compilation --------------------------------------------------------------------------


def _text_match(op: str, col: str, value: str) -> tuple[str, list[Any]]:
    """Case-sensitive, wildcard-free prefix / infix / suffix tests (TRUE, FALSE or UNKNOWN)."""
    if value == "":
        return f"length({col}) >= 0", []  # every text holds '', NULL stays UNKNOWN
    sqlite = connection.vendor == "sqlite"
    if op == "contains":
        fn = "instr" if sqlite else "strpos"
        return f"{fn}({col}, %s) > 0", [value]
    # the length is an int we computed, so it is inlined (PostgreSQL's left/right take int4)
    n = len(value)
    if op == "begins_with":
        if sqlite:
            return f"substr({col}, 1, {n}) = %s", [value]
        return f"left({col}, {n}) = %s", [value]
    # ends_with
    if sqlite:
        return f"substr({col}, {-n}) = %s", [value]
    return f"right({col}, {n}) = %s", [value]


def _rule_sql(rule: Any, by_name: dict[str, Column]) -> tuple[str, list[Any]]:
    if not isinstance(rule, dict):
        raise ConditionError(None, _("each rule must be an object"))
    field = rule.get("field", rule.get("id"))
    if not isinstance(field, str) or not field:
        raise ConditionError(None, _("a rule has no field"))
    column = by_name.get(field)
    if column is None:
        raise ConditionError(field, _("there is no column with this name"))
    op = rule.get("operator")
    if op not in OPERATORS:
        raise ConditionError(field, _("unknown operator %(op)r") % {"op": op})
    if op not in operators_for(column):
        raise ConditionError(
            field,
            _("the operator “%(op)s” does not apply to this column") % {"op": OPERATOR_LABELS[op]},
        )
    col = connection.ops.quote_name(column.physical)
    value = rule.get("value")
    if op == "is_null":
        return f"{col} IS NULL", []
    if op == "is_not_null":
        return f"{col} IS NOT NULL", []
    if op == "is_empty":
        return f"({col} IS NULL OR {col} = '')", []
    if op == "is_not_empty":
        return f"({col} IS NOT NULL AND {col} <> '')", []
    if op in RANGES:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConditionError(field, _("“between” needs two values"))
        low, high = (coerce_value(column, v) for v in value)
        sql = f"{col} BETWEEN %s AND %s"
        return (sql if op == "between" else f"NOT ({sql})"), [low, high]
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ConditionError(field, _("this operator takes one value"))
        value = value[0]
    if op in _COMPARE_SQL:
        return f"{col} {_COMPARE_SQL[op]} %s", [_category_value(column, value)]
    positive = op.removeprefix("not_")
    sql, params = _text_match(positive, col, coerce_value(column, value))
    return (sql if positive == op else f"NOT ({sql})"), params


def _group_sql(
    group: Any, by_name: dict[str, Column], depth: int = 0
) -> tuple[str, list[Any]] | None:
    """SQL for a group, or None for a group without rules (dropped from its parent)."""
    if depth > 50:
        raise ConditionError(None, _("the formula is nested too deeply"))
    if not isinstance(group, dict):
        raise ConditionError(None, _("a group must be an object"))
    joiner = str(group.get("condition") or "AND").upper()
    if joiner not in {"AND", "OR"}:
        raise ConditionError(None, _("a group's condition must be AND or OR"))
    rules = group.get("rules") or []
    if not isinstance(rules, list):
        raise ConditionError(None, _("a group's rules must be a list"))
    parts: list[str] = []
    params: list[Any] = []
    for item in rules:
        if isinstance(item, dict) and "rules" in item and "operator" not in item:
            compiled = _group_sql(item, by_name, depth + 1)
        else:
            compiled = _rule_sql(item, by_name)
        if compiled is None:
            continue
        parts.append(f"({compiled[0]})")
        params.extend(compiled[1])
    if not parts:
        return None
    sql = f" {joiner} ".join(parts)
    if group.get("not"):
        sql = f"NOT ({sql})"
    return sql, params


def compile_formula(formula: dict[str, Any] | None, columns: Iterable[Column]) -> Predicate:
    """The SQL predicate of ``formula`` over ``columns`` (an empty formula is ``1=1``)."""
    if formula is None or formula == {}:
        return Predicate(TRUE_SQL, [])
    by_name = {c.name: c for c in columns}
    compiled = _group_sql(formula, by_name)
    if compiled is None:
        return Predicate(TRUE_SQL, [])
    return Predicate(compiled[0], compiled[1])


def combine(*predicates: Predicate) -> Predicate:
    """``p1 AND p2 …`` (1=1 parts left out)."""
    parts = [p for p in predicates if p.sql != TRUE_SQL]
    if not parts:
        return Predicate(TRUE_SQL, [])
    if len(parts) == 1:
        return parts[0]
    return Predicate(
        " AND ".join(f"({p.sql})" for p in parts), [v for p in parts for v in p.params]
    )


def is_empty_formula(formula: Any) -> bool:
    return not formula_fields(formula)


# --- formula inspection -------------------------------------------------------------------


def _walk_rules(formula: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(formula, dict):
        return
    for item in formula.get("rules") or []:
        if not isinstance(item, dict):
            continue
        if "rules" in item and "operator" not in item:
            yield from _walk_rules(item)
        else:
            yield item


def formula_fields(formula: Any) -> set[str]:
    """The column names a formula uses."""
    return {
        str(rule.get("field", rule.get("id")))
        for rule in _walk_rules(formula)
        if rule.get("field", rule.get("id"))
    }


def rename_formula_field(formula: Any, old: str, new: str) -> dict[str, Any]:
    """A copy of ``formula`` with every rule on column ``old`` pointing at ``new``."""
    renamed: dict[str, Any] = copy.deepcopy(formula) if isinstance(formula, dict) else {}
    for rule in _walk_rules(renamed):
        if rule.get("field") == old:
            rule["field"] = new
        if rule.get("id") == old:
            rule["id"] = new
    return renamed


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return _("true") if value else _("false")
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def _rule_text(rule: dict[str, Any]) -> str:
    field = str(rule.get("field", rule.get("id", "?")))
    op = str(rule.get("operator", "?"))
    label = str(OPERATOR_LABELS.get(op, op))
    value = rule.get("value")
    if op in NO_VALUE:
        return f"{field} {label}"
    if op in RANGES and isinstance(value, (list, tuple)) and len(value) == 2:
        return _("%(field)s %(op)s %(low)s and %(high)s") % {
            "field": field,
            "op": label,
            "low": _value_text(value[0]),
            "high": _value_text(value[1]),
        }
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return f"{field} {label} {_value_text(value)}"


def _group_text(group: dict[str, Any], top: bool) -> str:
    joiner = _("OR") if str(group.get("condition", "AND")).upper() == "OR" else _("AND")
    parts = []
    for item in group.get("rules") or []:
        if not isinstance(item, dict):
            continue
        if "rules" in item and "operator" not in item:
            text = _group_text(item, top=False)
            if text:
                parts.append(text)
        else:
            parts.append(_rule_text(item))
    if not parts:
        return ""
    text = f" {joiner} ".join(parts)
    if group.get("not"):
        return f"{_('NOT')} ({text})"
    return text if top or len(parts) == 1 else f"({text})"


def formula_to_text(formula: Any) -> str:
    """The formula as a readable line in the user's language (empty: "every row")."""
    text = _group_text(formula, top=True) if isinstance(formula, dict) else ""
    return text or _("every row")


# --- counting -----------------------------------------------------------------------------


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow))


def _table(workflow: Workflow) -> str:
    return connection.ops.quote_name(workflow.table_name)


def count_matching(
    workflow: Workflow,
    formula: dict[str, Any] | None,
    *,
    within: dict[str, Any] | None = None,
    columns: Sequence[Column] | None = None,
) -> int:
    """How many rows of the workflow's table satisfy ``formula`` (AND ``within``)."""
    columns = list(columns) if columns is not None else _columns(workflow)
    predicate = compile_formula(formula, columns)
    if within:
        predicate = combine(compile_formula(within, columns), predicate)
    if not columns:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {_table(workflow)} WHERE {predicate.sql}", predicate.params
        )
        return int(cursor.fetchone()[0])


def refresh_counts(workflow: Workflow, columns: set[str] | None = None) -> None:
    """Recount the filters and conditions that use any of ``columns`` (all when None) in
    one SELECT with one ``SUM(CASE …)`` each, then store the changed counts in bulk."""
    if columns is not None and not columns:
        return
    table_columns = _columns(workflow)
    if not table_columns:
        return

    def affected(*formulas: Any) -> bool:
        if columns is None:
            return True
        return any(formula_fields(f) & columns for f in formulas)

    filters = [f for f in Filter.objects.filter(workflow=workflow) if affected(f.formula)]
    conditions = [
        c
        for c in Condition.objects.filter(action__workflow=workflow).select_related(
            "action__filter"
        )
        if affected(c.formula, c.action.filter.formula if c.action.filter else None)
    ]
    items: list[tuple[Filter | Condition, Predicate]] = []
    for item in [*filters, *conditions]:
        try:
            predicate = compile_formula(item.formula, table_columns)
            if isinstance(item, Condition) and item.action.filter:
                predicate = combine(
                    compile_formula(item.action.filter.formula, table_columns), predicate
                )
        except ConditionError:
            continue  # a formula broken by a column change keeps its last count
        items.append((item, predicate))
    if not items:
        return
    selects, params = [], []
    for _item, predicate in items:
        sql, values = predicate.case()
        selects.append(f"SUM({sql})")
        params.extend(values)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(selects)} FROM {_table(workflow)}", params)
        counts = cursor.fetchone()
    changed_filters: list[Filter] = []
    changed_conditions: list[Condition] = []
    for (item, _predicate), count in zip(items, counts, strict=True):
        count = int(count or 0)
        if item.selected_count == count:
            continue
        item.selected_count = count
        if isinstance(item, Filter):
            changed_filters.append(item)
        else:
            changed_conditions.append(item)
    if changed_filters:
        Filter.objects.bulk_update(changed_filters, ["selected_count"])
    if changed_conditions:
        Condition.objects.bulk_update(changed_conditions, ["selected_count"])


# --- the builder's view of the columns ----------------------------------------------------


def builder_fields(columns: Iterable[Column]) -> list[dict[str, Any]]:
    """What the visual builder needs to know about each column (passed via json_script)."""
    fields = []
    for column in columns:
        choices: list[Any] = []
        if column.categories:
            choices = list(column.categories)
        elif column.data_type == DataType.BOOLEAN:
            choices = [True, False]
        fields.append(
            {
                "name": column.name,
                "type": column.data_type,
                "input": "select" if choices else INPUT_BY_TYPE.get(column.data_type, "text"),
                "operators": operators_for(column),
                "choices": choices,
            }
        )
    return fields


def operator_labels() -> dict[str, str]:
    return {op: str(label) for op, label in OPERATOR_LABELS.items()}
