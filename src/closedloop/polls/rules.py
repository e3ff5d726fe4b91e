"""Numeric rules of RapidPro flows: read from spec-13 routers, used to categorise numbers.

A flow's router node (``nodes[].router``) has ``categories`` (``uuid``, ``name``) and
``cases`` (``type`` such as ``has_number_between``, string ``arguments``,
``category_uuid``). closedloop keeps the numeric cases of a question, in order, as::

    [{"category": "1-5", "test": "between", "arguments": [1.0, 5.0]}, ...]

("Other" / the default category is never a rule: a number no rule accepts is "Other").
The ingest derives the category of every numeric answer from these rules, so a number
typed with words around it ("about 12") is categorised the same way RapidPro would.
"""

from __future__ import annotations

import math
from typing import Any

from closedloop.polls.models import QuestionType

OTHER = "Other"
ALL_RESPONSES = "All Responses"

#: spec-13 case type → normalised test name
NUMERIC_TESTS: dict[str, str] = {
    "has_number_between": "between",
    "has_number_lt": "lt",
    "has_number_lte": "lte",
    "has_number_gt": "gt",
    "has_number_gte": "gte",
    "has_number_eq": "eq",
    "has_number": "number",
}
#: how many arguments each normalised test needs
_ARITY: dict[str, int] = {
    "between": 2,
    "lt": 1,
    "lte": 1,
    "gt": 1,
    "gte": 1,
    "eq": 1,
    "number": 0,
}


def localized_name(name: Any) -> str:
    """A category/flow name that may be a translation dict → its ``base`` (else first) text."""
    if isinstance(name, dict):
        if "base" in name:
            return str(name["base"] or "")
        for value in name.values():
            return str(value or "")
        return ""
    return "" if name is None else str(name)


def normalize_test(test: str) -> str:
    """``has_number_between`` → ``between``; already-normalised names pass through."""
    return NUMERIC_TESTS.get(test, test)


_NUMBER_START = frozenset("0123456789+-. \t\n")


def to_number(value: Any) -> float | None:
    """A finite float from a number or a numeric string ("12", " 3.5 ", "1,5"), else None."""
    if type(value) is str and value:
        if value[0] not in _NUMBER_START:  # words ("Yes", "water…"): no exception to pay
            return None
        try:  # the hot path of the ingest: most numeric values are plain numbers
            number = float(value)
        except ValueError:
            pass
        else:
            return number if math.isfinite(number) else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if not text or len(text) > 40:
            return None
        try:
            number = float(text)
        except ValueError:
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                return None
    return number if math.isfinite(number) else None


def _case_arguments(case: dict[str, Any], test: str) -> list[float] | None:
    arguments = case.get("arguments") or []
    arity = _ARITY[test]
    if len(arguments) < arity:
        return None
    numbers = [to_number(a) for a in arguments[:arity]]
    if any(n is None for n in numbers):
        return None  # e.g. an expression such as "@fields.limit": not usable offline
    return [float(n) for n in numbers if n is not None]


def rules_from_router(router: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The numeric rules of a spec-13 router, in case order (default category excluded)."""
    if not router:
        return []
    names = {
        c.get("uuid"): localized_name(c.get("name"))
        for c in router.get("categories") or []
        if isinstance(c, dict)
    }
    default_uuid = router.get("default_category_uuid")
    rules: list[dict[str, Any]] = []
    for case in router.get("cases") or []:
        if not isinstance(case, dict):
            continue
        test = NUMERIC_TESTS.get(str(case.get("type") or ""))
        if test is None:
            continue
        category_uuid = case.get("category_uuid")
        if default_uuid and category_uuid == default_uuid:
            continue
        category = names.get(category_uuid) or localized_name(case.get("category"))
        if not category or category == OTHER:
            continue
        arguments = _case_arguments(case, test)
        if arguments is None:
            continue
        rules.append({"category": category, "test": test, "arguments": arguments})
    return rules


def rule_passes(number: float, rule: dict[str, Any]) -> bool:
    """Whether one rule accepts the number (between inclusive, lt/gt strict)."""
    test = normalize_test(str(rule.get("test") or ""))
    args = [to_number(a) for a in rule.get("arguments") or []]
    if test == "number":
        return True
    if test not in _ARITY or len(args) < _ARITY[test] or any(a is None for a in args):
        return False
    a = float(args[0])  # type: ignore[arg-type]
    if test == "between":
        b = float(args[1])  # type: ignore[arg-type]
        low, high = min(a, b), max(a, b)
        return low <= number <= high
    if test == "lt":
        return number < a
    if test == "lte":
        return number <= a
    if test == "gt":
        return number > a
    if test == "gte":
        return number >= a
    return number == a  # eq


#: a rule ready for fast evaluation: (category, test, first argument, second argument)
CompiledRule = tuple[str, str, float, float]


def compile_rules(rules: list[dict[str, Any]]) -> list[CompiledRule]:
    """Rules with their arguments as floats (unusable rules dropped), for ``categorize_number``."""
    compiled: list[CompiledRule] = []
    for rule in rules or []:
        test = normalize_test(str(rule.get("test") or ""))
        if test not in _ARITY:
            continue
        args = [to_number(a) for a in rule.get("arguments") or []]
        if len(args) < _ARITY[test] or any(a is None for a in args[: _ARITY[test]]):
            continue
        first = float(args[0]) if args else 0.0  # type: ignore[arg-type]
        second = float(args[1]) if len(args) > 1 else first  # type: ignore[arg-type]
        if test == "between" and first > second:
            first, second = second, first
        compiled.append((str(rule.get("category") or OTHER), test, first, second))
    return compiled


def categorize_number(number: float, compiled: list[CompiledRule]) -> str:
    """``categorize`` for a float and compiled rules (same results, faster)."""
    for category, test, a, b in compiled:
        if (
            (test == "between" and a <= number <= b)
            or (test == "lt" and number < a)
            or (test == "gt" and number > a)
            or (test == "lte" and number <= a)
            or (test == "gte" and number >= a)
            or (test == "eq" and number == a)
            or test == "number"
        ):
            return category
    return OTHER


def categorize(value: Any, rules: list[dict[str, Any]]) -> str:
    """The category of the first rule the number passes, else "Other" (also for non-numbers)."""
    number = to_number(value)
    if number is None:
        return OTHER
    for rule in rules:
        if rule_passes(number, rule):
            return str(rule.get("category") or OTHER)
    return OTHER


def guess_type(
    categories: list[str],
    rules: list[dict[str, Any]],
    cases: list[dict[str, Any]] | None = None,
) -> QuestionType:
    """Open when there are no cases / only "All Responses"; numeric when every case is a
    number test; categorical otherwise.

    Without the router ``cases`` the guess uses the categories: every category other than
    "Other" must be the category of a numeric rule for the question to be numeric.
    """
    names = [localized_name(c) for c in categories or []]
    meaningful = [n for n in names if n and n not in (OTHER, ALL_RESPONSES)]
    if cases is not None:
        typed = [c for c in cases if isinstance(c, dict)]
        if not typed:
            return QuestionType.OPEN
        if all(str(c.get("type") or "") in NUMERIC_TESTS for c in typed):
            return QuestionType.NUMERIC
        return QuestionType.CATEGORICAL
    if not meaningful:
        return QuestionType.NUMERIC if rules else QuestionType.OPEN
    ruled = {str(r.get("category")) for r in rules or []}
    if rules and all(n in ruled for n in meaningful):
        return QuestionType.NUMERIC
    return QuestionType.CATEGORICAL
