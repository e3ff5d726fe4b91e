"""Numeric rules: spec-13 routers → rules, categorisation bounds, question type guesses."""

from __future__ import annotations

from typing import Any

import pytest

from closedloop.polls import rules
from closedloop.polls.models import QuestionType

ROUTER: dict[str, Any] = {
    "type": "switch",
    "operand": "@input.text",
    "result_name": "Children",
    "default_category_uuid": "c-other",
    "categories": [
        {"uuid": "c-none", "name": "None", "exit_uuid": "e1"},
        {"uuid": "c-few", "name": {"base": "Few", "fra": "Peu"}, "exit_uuid": "e2"},
        {"uuid": "c-many", "name": "Many", "exit_uuid": "e3"},
        {"uuid": "c-huge", "name": "Huge", "exit_uuid": "e4"},
        {"uuid": "c-other", "name": "Other", "exit_uuid": "e5"},
    ],
    "cases": [
        {"uuid": "k1", "type": "has_number_eq", "arguments": ["0"], "category_uuid": "c-none"},
        {
            "uuid": "k2",
            "type": "has_number_between",
            "arguments": ["1", "5"],
            "category_uuid": "c-few",
        },
        {"uuid": "k3", "type": "has_number_lte", "arguments": ["10"], "category_uuid": "c-many"},
        {"uuid": "k4", "type": "has_number_gt", "arguments": ["10"], "category_uuid": "c-huge"},
    ],
}


def test_rules_from_router_in_case_order() -> None:
    assert rules.rules_from_router(ROUTER) == [
        {"category": "None", "test": "eq", "arguments": [0.0]},
        {"category": "Few", "test": "between", "arguments": [1.0, 5.0]},
        {"category": "Many", "test": "lte", "arguments": [10.0]},
        {"category": "Huge", "test": "gt", "arguments": [10.0]},
    ]


def test_rules_from_router_skips_what_is_not_a_usable_number_test() -> None:
    router = {
        "categories": [
            {"uuid": "a", "name": "Yes"},
            {"uuid": "b", "name": "Limit"},
            {"uuid": "c", "name": "Any number"},
            {"uuid": "o", "name": "Other"},
        ],
        "cases": [
            {"type": "has_any_word", "arguments": ["yes"], "category_uuid": "a"},
            {"type": "has_number_lt", "arguments": ["@fields.limit"], "category_uuid": "b"},
            {"type": "has_number_between", "arguments": ["1"], "category_uuid": "b"},
            {"type": "has_number", "arguments": [], "category_uuid": "c"},
            {"type": "has_number_gt", "arguments": ["3"], "category_uuid": "o"},
        ],
    }
    assert rules.rules_from_router(router) == [
        {"category": "Any number", "test": "number", "arguments": []}
    ]
    assert rules.rules_from_router({}) == []
    assert rules.rules_from_router(None) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "None"),
        (1, "Few"),  # between is inclusive at both ends
        (5, "Few"),
        (5.5, "Many"),
        (10, "Many"),  # lte includes its bound
        (10.01, "Huge"),  # gt is strict: 10 itself was "Many"
        (-3, "Many"),
        ("7", "Many"),
        (" 3 ", "Few"),
        ("2,5", "Few"),
        ("lots", "Other"),
        ("", "Other"),
        (None, "Other"),
        ("nan", "Other"),
    ],
)
def test_categorize(value: Any, expected: str) -> None:
    found = rules.rules_from_router(ROUTER)
    assert rules.categorize(value, found) == expected
    number = rules.to_number(value)
    if number is not None:
        assert rules.categorize_number(number, rules.compile_rules(found)) == expected


@pytest.mark.parametrize(
    ("test", "arguments", "passes", "fails"),
    [
        ("lt", [5], [4.99, -1], [5, 6]),
        ("gt", [5], [5.01, 100], [5, 4]),
        ("lte", [5], [5, 0], [5.01]),
        ("gte", [5], [5, 9], [4.99]),
        ("eq", [5], [5, 5.0], [5.01, 4]),
        ("between", [10, 1], [1, 10, 5], [0.99, 10.01]),  # reversed bounds still work
        ("has_number_between", [1, 2], [1, 2], [3]),  # spec-13 names accepted too
        ("number", [], [0, -7.5], []),
    ],
)
def test_each_test_bounds(
    test: str, arguments: list[float], passes: list[float], fails: list[float]
) -> None:
    rule = [{"category": "Yes", "test": test, "arguments": arguments}]
    compiled = rules.compile_rules(rule)
    for value in passes:
        assert rules.categorize(value, rule) == "Yes", value
        assert rules.categorize_number(float(value), compiled) == "Yes", value
    for value in fails:
        assert rules.categorize(value, rule) == "Other", value
        assert rules.categorize_number(float(value), compiled) == "Other", value


def test_first_passing_rule_wins() -> None:
    overlapping = [
        {"category": "Small", "test": "lt", "arguments": [10]},
        {"category": "Tiny", "test": "lt", "arguments": [2]},
    ]
    assert rules.categorize(1, overlapping) == "Small"


def test_guess_type() -> None:
    numeric = rules.rules_from_router(ROUTER)
    names = [c["name"] for c in ROUTER["categories"]]
    assert rules.guess_type(names, numeric, ROUTER["cases"]) == QuestionType.NUMERIC
    mixed = [
        *ROUTER["cases"],
        {"type": "has_any_word", "arguments": ["none"], "category_uuid": "c-none"},
    ]
    assert rules.guess_type(names, numeric, mixed) == QuestionType.CATEGORICAL
    assert rules.guess_type(["All Responses"], [], []) == QuestionType.OPEN
    assert rules.guess_type(["All Responses"], []) == QuestionType.OPEN
    assert rules.guess_type([], []) == QuestionType.OPEN
    # without cases: categories all covered by numeric rules → numeric
    assert (
        rules.guess_type(["None", "Few", "Many", "Huge", "Other"], numeric) == QuestionType.NUMERIC
    )
    assert rules.guess_type(["Red", "Blue", "Other"], []) == QuestionType.CATEGORICAL
    assert rules.guess_type([{"base": "Red"}, "Other"], []) == QuestionType.CATEGORICAL


def test_localized_name() -> None:
    assert rules.localized_name({"base": "Few", "fra": "Peu"}) == "Few"
    assert rules.localized_name({"fra": "Peu", "eng": "Few"}) == "Peu"
    assert rules.localized_name(None) == ""
    assert rules.localized_name("Red") == "Red"
