"""Spec-13 flow definitions for the RapidPro double, and goflow-like categorisation.

A poll flow is a chain of nodes, one per question. Each node sends the question
(``send_msg`` action) and waits for the reply with a ``switch`` router on ``@input.text``:

- numeric questions: ``has_number_between`` (or ``has_number_lt`` …) cases + "Other";
- categorical questions: ``has_any_word`` cases + "Other";
- open questions: no cases, a single "All Responses" category.

``flows.results[].node_uuids`` of the API flow object name these nodes, as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

SPEC_VERSION = "13.2.0"
NUMBER_RE = re.compile(r"-?\d+(?:[.,]\d+)?")
WORD_RE = re.compile(r"\w+", re.UNICODE)

NUMERIC_TESTS = {
    "has_number",
    "has_number_between",
    "has_number_lt",
    "has_number_lte",
    "has_number_gt",
    "has_number_gte",
    "has_number_eq",
}


def result_key(name: str) -> str:
    """RapidPro's result key: lower-case, runs of non-alphanumerics → ``_``."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return key[:64] or "result"


def _cat_name(category: Any) -> str:
    return category["name"] if isinstance(category, dict) else str(category)


def build_flow(
    *,
    new_uuid: Callable[[], str],
    flow_uuid: str,
    name: str,
    questions: list[dict[str, Any]],
    language: str = "eng",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return ``(results, definition)`` for a flow asking ``questions`` in order.

    A question is ``{"name", "key"?, "type": "numeric"|"categorical"|"open",
    "categories"?: [names], "cases"?: [{"type", "arguments", "category"}]}``; missing
    categories/cases get sensible defaults (see the module docstring).
    """
    node_uuids = [new_uuid() for _ in questions]
    nodes: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, question in enumerate(questions):
        qtype = question.get("type", "open")
        qname = question.get("name") or question.get("key") or f"Question {index + 1}"
        key = question.get("key") or result_key(qname)
        categories = [_cat_name(c) for c in question.get("categories", [])]
        raw_cases = list(question.get("cases") or [])
        if qtype == "open":
            categories, raw_cases = ["All Responses"], []
            default = "All Responses"
        else:
            if not raw_cases:
                if qtype == "numeric":
                    if categories:
                        raw_cases = [
                            {"type": "has_number", "arguments": [], "category": c}
                            for c in categories[:1]
                        ]
                    else:
                        raw_cases = [{"type": "has_number", "arguments": [], "category": "Number"}]
                else:
                    raw_cases = [
                        {"type": "has_any_word", "arguments": [c.lower()], "category": c}
                        for c in categories
                        if c != "Other"
                    ]
            for case in raw_cases:
                cname = case.get("category")
                if cname and cname not in categories:
                    categories.append(cname)
            default = "Other"
            categories = [c for c in categories if c != "Other"] + ["Other"]
        next_node = node_uuids[index + 1] if index + 1 < len(questions) else None
        cat_objs = []
        exits = []
        for cname in categories:
            exit_uuid = new_uuid()
            cat_objs.append({"uuid": new_uuid(), "name": cname, "exit_uuid": exit_uuid})
            exits.append({"uuid": exit_uuid, "destination_uuid": next_node})
        by_name = {c["name"]: c["uuid"] for c in cat_objs}
        cases = []
        for case in raw_cases:
            cases.append(
                {
                    "uuid": new_uuid(),
                    "type": case["type"],
                    "arguments": [str(a) for a in case.get("arguments", [])],
                    "category_uuid": case.get("category_uuid") or by_name[case["category"]],
                }
            )
        nodes.append(
            {
                "uuid": node_uuids[index],
                "actions": [
                    {
                        "uuid": new_uuid(),
                        "type": "send_msg",
                        "text": question.get("text") or qname,
                        "quick_replies": [],
                    }
                ],
                "router": {
                    "type": "switch",
                    "wait": {"type": "msg"},
                    "operand": "@input.text",
                    "cases": cases,
                    "categories": cat_objs,
                    "default_category_uuid": by_name[default],
                    "result_name": qname,
                },
                "exits": exits,
            }
        )
        results.append(
            {
                "key": key,
                "name": qname,
                "categories": categories,
                "node_uuids": [node_uuids[index]],
            }
        )
    definition = {
        "uuid": flow_uuid,
        "name": name,
        "spec_version": SPEC_VERSION,
        "language": language,
        "type": "messaging",
        "revision": 1,
        "expire_after_minutes": 10080,
        "localization": {},
        "nodes": nodes,
        "_ui": {"nodes": {}, "stickies": {}},
    }
    return results, definition


# --- categorisation -----------------------------------------------------------------------


def _number(text: str) -> Decimal | None:
    match = NUMBER_RE.search(text)
    if not match:
        return None
    try:
        return Decimal(match.group(0).replace(",", "."))
    except InvalidOperation:  # pragma: no cover - regex guarantees a number
        return None


def _fmt(number: Decimal) -> str:
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _args(case: dict[str, Any]) -> list[Decimal]:
    out = []
    for arg in case.get("arguments", []):
        try:
            out.append(Decimal(str(arg)))
        except InvalidOperation:
            out.append(Decimal(0))
    return out


def evaluate_case(case: dict[str, Any], text: str) -> str | None:
    """The matched value when ``case`` passes for ``text`` (like goflow tests), else None."""
    test = case.get("type", "")
    if test in NUMERIC_TESTS:
        number = _number(text)
        if number is None:
            return None
        args = _args(case)
        ok = {
            "has_number": lambda: True,
            "has_number_between": lambda: len(args) == 2 and args[0] <= number <= args[1],
            "has_number_lt": lambda: bool(args) and number < args[0],
            "has_number_lte": lambda: bool(args) and number <= args[0],
            "has_number_gt": lambda: bool(args) and number > args[0],
            "has_number_gte": lambda: bool(args) and number >= args[0],
            "has_number_eq": lambda: bool(args) and number == args[0],
        }[test]()
        return _fmt(number) if ok else None
    words = [w.lower() for w in WORD_RE.findall(text)]
    argument = " ".join(str(a) for a in case.get("arguments", []))
    wanted = [w.lower() for w in WORD_RE.findall(argument)]
    if test == "has_any_word":
        hits = [w for w in words if w in wanted]
        return " ".join(hits) if hits else None
    if test == "has_all_words":
        return " ".join(wanted) if wanted and all(w in words for w in wanted) else None
    if test == "has_phrase":
        phrase = " ".join(wanted)
        return phrase if phrase and phrase in " ".join(words) else None
    if test == "has_only_phrase":
        return text.strip() if words == wanted else None
    if test == "has_beginning":
        return argument if text.strip().lower().startswith(argument.lower()) else None
    if test == "has_text":
        return text.strip() or None
    if test == "has_pattern":
        match = re.search(argument, text, re.IGNORECASE)
        return match.group(0) if match else None
    return None


class Categorizer:
    """Categorises inputs for one router node (built once per node, reused per value)."""

    def __init__(self, node: dict[str, Any]) -> None:
        router = node.get("router") or {}
        self.node_uuid: str = node["uuid"]
        self.name: str = router.get("result_name", "")
        names = {c["uuid"]: c["name"] for c in router.get("categories", [])}
        self.cases = [
            (c, names.get(c.get("category_uuid"), "Other")) for c in router.get("cases", [])
        ]
        self.default = names.get(router.get("default_category_uuid"), "Other")

    def __call__(self, text: str) -> tuple[str, str]:
        """``(value, category)`` for an input text."""
        for case, category in self.cases:
            value = evaluate_case(case, text)
            if value is not None:
                return value, category
        return text, self.default


def categorizers(definition: dict[str, Any]) -> dict[str, Categorizer]:
    """Result key → categoriser for every router node with a result name."""
    out: dict[str, Categorizer] = {}
    for node in definition.get("nodes", []):
        router = node.get("router")
        if router and router.get("result_name"):
            out[result_key(router["result_name"])] = Categorizer(node)
    return out


def definition_from_results(flow: dict[str, Any], new_uuid: Callable[[], str]) -> dict[str, Any]:
    """A spec-13 definition for an API flow object that has only ``results`` (fixtures):
    categorical questions with ``has_any_word`` cases, open ones for "All Responses"."""
    questions = []
    for result in flow.get("results", []):
        cats = list(result.get("categories", []))
        qtype = "open" if cats in ([], ["All Responses"]) else "categorical"
        questions.append(
            {
                "key": result["key"],
                "name": result["name"],
                "type": qtype,
                "categories": [c for c in cats if c not in ("Other", "Nothing")],
            }
        )
    _, definition = build_flow(
        new_uuid=new_uuid, flow_uuid=flow["uuid"], name=flow["name"], questions=questions
    )
    for node, result in zip(definition["nodes"], flow.get("results", []), strict=False):
        if result.get("node_uuids"):
            node["uuid"] = result["node_uuids"][0]
    for index, node in enumerate(definition["nodes"][:-1]):
        for exit_ in node["exits"]:
            exit_["destination_uuid"] = definition["nodes"][index + 1]["uuid"]
    return definition
