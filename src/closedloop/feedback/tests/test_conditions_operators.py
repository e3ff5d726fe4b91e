"""Every operator on every type it fits, against values, '' and a NULL row, with SQL's
three-valued logic: a rule and its negation never both select a row, and on a NULL value
neither does (except the definite is_empty / is_null tests)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from closedloop.feedback.conditions import (
    OPERATORS,
    ConditionError,
    compile_formula,
    operators_for,
)
from closedloop.feedback.tests.test_conditions_support import (
    build_workflow,
    case_values,
    selected_keys,
    utc,
)

SPEC = [
    ("key", "string"),
    ("name", "string"),
    ("score", "double"),
    ("attempts", "integer"),
    ("passed", "boolean"),
    ("submitted", "datetime"),
    ("grade", "string"),
    ("level", "integer"),
]
ROWS = [
    ("k1", "Alice", 80.5, 3, True, utc(2024, 3, 1, 10, 0, 0), "A", 1),
    ("k2", "bob", 40.0, 1, False, utc(2024, 3, 5, 8, 30, 0), "B", 2),
    ("k3", "", None, None, None, None, None, None),
    ("k4", None, 100.0, 5, True, utc(2024, 2, 28, 23, 0, 0), "C", 3),
    ("k5", "50%_off alice", 0.0, 0, False, utc(2024, 3, 1, 10, 0, 0, 500000), "A", 1),
]
ALL = {"k1", "k2", "k3", "k4", "k5"}
CATEGORIES = {"grade": ["A", "B", "C"], "level": [1, 2, 3]}
DEFINITE = {"is_empty", "is_not_empty", "is_null", "is_not_null"}
T0 = "2024-03-01 10:00:00Z"

CASES: list[tuple[str, str, Any, set[str]]] = [
    # text
    ("name", "equal", "Alice", {"k1"}),
    ("name", "equal", "alice", set()),
    ("name", "equal", "", {"k3"}),
    ("name", "not_equal", "Alice", {"k2", "k3", "k5"}),
    ("name", "begins_with", "Al", {"k1"}),
    ("name", "begins_with", "al", set()),
    ("name", "begins_with", "Alice and more", set()),
    ("name", "begins_with", "50%", {"k5"}),
    ("name", "not_begins_with", "Al", {"k2", "k3", "k5"}),
    ("name", "contains", "lic", {"k1", "k5"}),
    ("name", "contains", "LIC", set()),
    ("name", "contains", "%", {"k5"}),
    ("name", "contains", "_", {"k5"}),
    ("name", "contains", "a%e", set()),
    ("name", "contains", "b_b", set()),
    ("name", "contains", "", {"k1", "k2", "k3", "k5"}),
    ("name", "not_contains", "lic", {"k2", "k3"}),
    ("name", "not_contains", "%", {"k1", "k2", "k3"}),
    ("name", "not_contains", "", set()),
    ("name", "ends_with", "ice", {"k1", "k5"}),
    ("name", "ends_with", "ICE", set()),
    ("name", "ends_with", "_", set()),
    ("name", "ends_with", "ce", {"k1", "k5"}),
    ("name", "not_ends_with", "ice", {"k2", "k3"}),
    ("name", "not_begins_with", "", set()),
    ("name", "is_empty", None, {"k3", "k4"}),
    ("name", "is_not_empty", None, {"k1", "k2", "k5"}),
    ("name", "is_null", None, {"k4"}),
    ("name", "is_not_null", None, {"k1", "k2", "k3", "k5"}),
    # double
    ("score", "equal", 40, {"k2"}),
    ("score", "equal", "80.5", {"k1"}),
    ("score", "not_equal", 40, {"k1", "k4", "k5"}),
    ("score", "less", 50, {"k2", "k5"}),
    ("score", "less_or_equal", "40", {"k2", "k5"}),
    ("score", "greater", 80.5, {"k4"}),
    ("score", "greater_or_equal", "80.5", {"k1", "k4"}),
    ("score", "between", [0, "80.5"], {"k1", "k2", "k5"}),
    ("score", "not_between", [0, 80.5], {"k4"}),
    ("score", "is_null", None, {"k3"}),
    ("score", "is_not_null", None, {"k1", "k2", "k4", "k5"}),
    # integer
    ("attempts", "equal", "3", {"k1"}),
    ("attempts", "not_equal", 3, {"k2", "k4", "k5"}),
    ("attempts", "less", 1, {"k5"}),
    ("attempts", "less_or_equal", 1, {"k2", "k5"}),
    ("attempts", "greater", 2.5, {"k1", "k4"}),
    ("attempts", "greater_or_equal", "5", {"k4"}),
    ("attempts", "between", ["1", "3"], {"k1", "k2"}),
    ("attempts", "not_between", [1, 3], {"k4", "k5"}),
    ("attempts", "is_null", None, {"k3"}),
    ("attempts", "is_not_null", None, {"k1", "k2", "k4", "k5"}),
    # boolean
    ("passed", "equal", True, {"k1", "k4"}),
    ("passed", "equal", "false", {"k2", "k5"}),
    ("passed", "equal", "True", {"k1", "k4"}),
    ("passed", "not_equal", True, {"k2", "k5"}),
    ("passed", "not_equal", "0", {"k1", "k4"}),
    ("passed", "is_null", None, {"k3"}),
    ("passed", "is_not_null", None, {"k1", "k2", "k4", "k5"}),
    # datetime, with zones
    ("submitted", "equal", T0, {"k1"}),
    ("submitted", "equal", "2024-03-01 11:00:00 Europe/Paris", {"k1"}),
    ("submitted", "equal", "2024-03-01T12:00:00+02:00", {"k1"}),
    ("submitted", "equal", "2024-03-01 10:00:00.5+00:00", {"k5"}),
    ("submitted", "not_equal", T0, {"k2", "k4", "k5"}),
    ("submitted", "less", T0, {"k4"}),
    ("submitted", "less_or_equal", T0, {"k1", "k4"}),
    ("submitted", "greater", T0, {"k2", "k5"}),
    ("submitted", "greater_or_equal", T0, {"k1", "k2", "k5"}),
    ("submitted", "between", ["2024-03-01 00:00:00Z", "2024-03-02 00:00:00Z"], {"k1", "k5"}),
    ("submitted", "not_between", ["2024-03-01 00:00Z", "2024-03-02 00:00Z"], {"k2", "k4"}),
    ("submitted", "less", "2024-03-01 00:30:00 America/New_York", {"k4"}),
    ("submitted", "is_null", None, {"k3"}),
    ("submitted", "is_not_null", None, {"k1", "k2", "k4", "k5"}),
    # categories (text and integer)
    ("grade", "equal", "A", {"k1", "k5"}),
    ("grade", "not_equal", "A", {"k2", "k4"}),
    ("grade", "is_null", None, {"k3"}),
    ("grade", "is_not_null", None, {"k1", "k2", "k4", "k5"}),
    ("level", "equal", 2, {"k2"}),
    ("level", "not_equal", "1", {"k2", "k4"}),
    ("level", "is_null", None, {"k3"}),
]


def rule(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {
        "id": field,
        "field": field,
        "type": "string",
        "input": "text",
        "operator": operator,
        "value": value,
    }


def group(*rules: Any, condition: str = "AND", negate: bool = False) -> dict[str, Any]:
    return {"condition": condition, "not": negate, "valid": True, "rules": list(rules)}


@pytest.fixture
def table(scoped):
    world = scoped
    return build_workflow(world.account, world.alice, SPEC, ROWS, categories=CATEGORIES)


def test_every_operator_fitting_a_type_has_cases():
    """The case list covers each operator each type offers (plus categories)."""
    from closedloop.feedback.models import Column

    covered = {(f, op) for f, op, _v, _e in CASES}
    types = dict(SPEC)
    for field in ("name", "score", "attempts", "passed", "submitted", "grade", "level"):
        column = Column(name=field, data_type=types[field], categories=CATEGORIES.get(field, []))
        for op in operators_for(column):
            assert (field, op) in covered or (field, op) == ("level", "is_not_null")


@pytest.mark.parametrize(("field", "operator", "value", "expected"), CASES)
def test_operator(table, field, operator, value, expected):
    workflow, columns = table
    formula = group(rule(field, operator, value))
    predicate = compile_formula(formula, columns)
    selected = selected_keys(workflow, columns, predicate.sql, predicate.params)
    assert selected == expected

    # the message-condition value (CASE WHEN) agrees with the row selection
    values = case_values(workflow, columns, predicate.sql, predicate.params)
    assert {k for k, v in values.items() if v} == expected

    # NOT(rule): Kleene. Rows where the value is NULL stay UNKNOWN (selected by neither)
    # except for the definite tests, which split every row.
    negated = compile_formula(group(rule(field, operator, value), negate=True), columns)
    opposite = selected_keys(workflow, columns, negated.sql, negated.params)
    assert not (selected & opposite)
    column_index = [name for name, _t in SPEC].index(field)
    null_rows = {row[0] for row in ROWS if row[column_index] is None}
    if operator in DEFINITE:
        assert selected | opposite == ALL
    else:
        assert selected | opposite == ALL - null_rows
        assert not (selected & null_rows)


def test_naive_datetimes_are_in_the_server_time_zone(table):
    workflow, columns = table
    with override_settings(TIME_ZONE="Africa/Kigali"):  # UTC+2
        predicate = compile_formula(
            group(rule("submitted", "equal", "2024-03-01 12:00:00")), columns
        )
        assert selected_keys(workflow, columns, predicate.sql, predicate.params) == {"k1"}
        # the builder's datetime-local input sends no seconds
        predicate = compile_formula(group(rule("submitted", "less", "2024-03-01T12:00")), columns)
        assert selected_keys(workflow, columns, predicate.sql, predicate.params) == {"k4"}


def test_operators_are_limited_by_type(table):
    _workflow, columns = table
    by_name = {c.name: c for c in columns}
    assert operators_for(by_name["name"]) == [
        "equal",
        "not_equal",
        "begins_with",
        "not_begins_with",
        "contains",
        "not_contains",
        "ends_with",
        "not_ends_with",
        "is_empty",
        "is_not_empty",
        "is_null",
        "is_not_null",
    ]
    for numeric in ("score", "attempts", "submitted"):
        ops = operators_for(by_name[numeric])
        assert "between" in ops and "less" in ops and "contains" not in ops
        assert "is_empty" not in ops
    for choice in ("passed", "grade", "level"):
        assert operators_for(by_name[choice]) == ["equal", "not_equal", "is_null", "is_not_null"]
    wrong = [
        (f, op)
        for f in ("name", "score", "passed", "grade")
        for op in OPERATORS
        if op not in operators_for(by_name[f])
    ]
    assert wrong
    for field, op in wrong:
        value = [1, 2] if "between" in op else "1"
        with pytest.raises(ConditionError) as info:
            compile_formula(group(rule(field, op, value)), columns)
        assert info.value.field == field
