"""Groups with NULLs (Kleene logic), bad formulas, renaming, readable text, counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import translation

from closedloop.feedback.conditions import (
    ConditionError,
    compile_formula,
    count_matching,
    formula_fields,
    formula_to_text,
    refresh_counts,
    rename_formula_field,
)
from closedloop.feedback.models import Action, Condition, Filter
from closedloop.feedback.tests.test_conditions_operators import (
    ALL,
    CATEGORIES,
    ROWS,
    SPEC,
    group,
    rule,
)
from closedloop.feedback.tests.test_conditions_support import (
    build_workflow,
    case_values,
    selected_keys,
)


@pytest.fixture
def table(scoped):
    world = scoped
    return build_workflow(world.account, world.alice, SPEC, ROWS, categories=CATEGORIES)


def select(table, formula):
    workflow, columns = table
    predicate = compile_formula(formula, columns)
    selected = selected_keys(workflow, columns, predicate.sql, predicate.params)
    as_condition = case_values(workflow, columns, predicate.sql, predicate.params)
    assert {k for k, v in as_condition.items() if v} == selected
    return selected


# --- three-valued groups ------------------------------------------------------------------

LOW = rule("score", "less", 50)  # k2, k5 true; k1, k4 false; k3 (NULL) unknown
PASSED = rule("passed", "equal", True)  # k1, k4 true; k2, k5 false; k3 unknown
NAME_EMPTY = rule("name", "is_empty")  # k3, k4 true (definite)


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        # unknown OR unknown = unknown: k3 in neither the OR nor its negation
        (group(LOW, PASSED, condition="OR"), {"k1", "k2", "k4", "k5"}),
        (group(LOW, PASSED, condition="OR", negate=True), set()),
        # unknown OR true = true
        (group(LOW, NAME_EMPTY, condition="OR"), {"k2", "k3", "k4", "k5"}),
        (group(LOW, NAME_EMPTY, condition="OR", negate=True), {"k1"}),
        # unknown AND false = false, so NOT(...) is true for the NULL row
        (group(LOW, rule("name", "is_not_empty")), {"k2", "k5"}),
        (group(LOW, rule("name", "is_not_empty"), negate=True), {"k1", "k3", "k4"}),
        # unknown AND true = unknown
        (group(LOW, NAME_EMPTY), set()),
        (group(LOW, NAME_EMPTY, negate=True), {"k1", "k2", "k4", "k5"}),
        # nested NOT groups: NOT(NOT(x)) = x, also for unknown
        (group(group(LOW, negate=True), negate=True), {"k2", "k5"}),
        # a negated subgroup inside OR with a definite test
        (
            group(group(LOW, PASSED, negate=True), rule("score", "is_null"), condition="OR"),
            ALL,
        ),
        (
            group(
                rule("attempts", "greater", 0),
                group(rule("name", "contains", "li"), PASSED, condition="OR"),
            ),
            {"k1", "k4"},
        ),
        # empty subgroups are left out; an empty formula selects everything
        (group(LOW, group()), {"k2", "k5"}),
        (group(), ALL),
        ({}, ALL),
        (None, ALL),
        (group(group(), negate=True), ALL),
    ],
)
def test_groups_follow_kleene_logic(table, formula, expected):
    assert select(table, formula) == expected


def test_not_equal_is_not_true_for_null(table):
    assert "k3" not in select(table, group(rule("score", "not_equal", 40)))
    assert "k4" not in select(table, group(rule("name", "not_contains", "zzz")))


def test_lower_case_operator_groups_and_missing_not_are_accepted(table):
    formula = {"condition": "or", "rules": [LOW, PASSED]}
    assert select(table, formula) == {"k1", "k2", "k4", "k5"}


def test_a_rule_may_name_its_column_by_id_only(table):
    only_id = {"id": "score", "operator": "greater", "value": 90}
    assert select(table, group(only_id)) == {"k4"}


def test_values_are_parameters_not_sql(table):
    workflow, columns = table
    hostile = "x' OR '1'='1"
    predicate = compile_formula(group(rule("name", "equal", hostile)), columns)
    assert hostile not in predicate.sql and hostile in predicate.params
    assert select(table, group(rule("name", "contains", hostile))) == set()


def test_columns_are_quoted_physical_names(table):
    _workflow, columns = table
    predicate = compile_formula(group(rule("score", "less", 1)), columns)
    assert connection.ops.quote_name("c3") in predicate.sql
    assert "score" not in predicate.sql


# --- bad formulas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "field", "words"),
    [
        ("score < 3", None, "group"),
        ({"condition": "XOR", "rules": [LOW]}, None, "AND or OR"),
        ({"condition": "AND", "rules": "nope"}, None, "list"),
        (group("score"), None, "object"),
        (group({"operator": "equal", "value": 1}), None, "no field"),
        (group(rule("missing", "equal", 1)), "missing", "no column"),
        (group(rule("score", "smaller", 1)), "score", "unknown operator"),
        (group(rule("score", "contains", "1")), "score", "does not apply"),
        (group(rule("name", "less", "b")), "name", "does not apply"),
        (group(rule("passed", "greater", True)), "passed", "does not apply"),
        (group(rule("grade", "begins_with", "A")), "grade", "does not apply"),
        (group(rule("score", "less", "abc")), "score", "'abc' is not a number"),
        (group(rule("score", "less", "")), "score", "is not a number"),
        (group(rule("score", "less", None)), "score", "is not a number"),
        (group(rule("score", "less", True)), "score", "is not a number"),
        (group(rule("score", "less", "nan")), "score", "finite"),
        (group(rule("attempts", "equal", "three")), "attempts", "is not a number"),
        (group(rule("score", "between", [1])), "score", "two values"),
        (group(rule("score", "between", "1,2")), "score", "two values"),
        (group(rule("score", "between", [1, "x"])), "score", "is not a number"),
        (group(rule("score", "equal", [1, 2])), "score", "one value"),
        (group(rule("passed", "equal", "maybe")), "passed", "not true or false"),
        (group(rule("submitted", "less", "yesterday")), "submitted", "date and time"),
        (group(rule("submitted", "less", "2024-13-01 00:00:00")), "submitted", "date and time"),
        (group(rule("submitted", "less", "2024-03-01 10:00 Mars/Olympus")), "submitted", "date"),
        (group(rule("submitted", "less", 17)), "submitted", "date and time"),
        (group(rule("name", "equal", None)), "name", "text value"),
        (group(rule("grade", "equal", "D")), "grade", "allowed values"),
        (group(rule("level", "equal", 7)), "level", "allowed values"),
        (group(LOW, group(rule("nope", "is_null"))), "nope", "no column"),
    ],
)
def test_bad_formulas_raise_a_condition_error_naming_the_field(table, formula, field, words):
    _workflow, columns = table
    with pytest.raises(ConditionError) as info:
        compile_formula(formula, columns)
    assert info.value.field == field
    assert words in info.value.message
    if field:
        assert str(info.value).startswith(f"{field}: ")


def test_error_message_reads_as_field_and_reason(table):
    _workflow, columns = table
    with pytest.raises(ConditionError, match=r"^score: 'abc' is not a number$"):
        compile_formula(group(rule("score", "less", "abc")), columns)


def test_deep_nesting_is_refused(table):
    _workflow, columns = table
    formula = group(LOW)
    for _ in range(60):
        formula = group(formula)
    with pytest.raises(ConditionError, match="nested"):
        compile_formula(formula, columns)


# --- inspection and text ------------------------------------------------------------------


def test_formula_fields_and_rename():
    formula = group(LOW, group(rule("my name", "contains", "x"), PASSED, condition="OR"))
    assert formula_fields(formula) == {"score", "my name", "passed"}
    renamed = rename_formula_field(formula, "my name", "full name")
    assert formula_fields(renamed) == {"score", "full name", "passed"}
    inner = renamed["rules"][1]["rules"][0]
    assert inner["id"] == "full name" and inner["field"] == "full name"
    assert formula_fields(formula) == {"score", "my name", "passed"}  # original untouched
    assert formula_fields(None) == set() and rename_formula_field(None, "a", "b") == {}


def test_formula_to_text_is_readable_and_localised():
    formula = group(
        LOW,
        group(
            rule("name", "contains", "li"),
            rule("score", "between", [1, 2]),
            condition="OR",
            negate=True,
        ),
        rule("name", "is_null"),
    )
    text = formula_to_text(formula)
    assert text == (
        "score < 50 AND NOT (name contains “li” OR score between 1 and 2) AND name is null"
    )
    assert formula_to_text(group(PASSED)) == "passed = true"
    assert formula_to_text({}) == "every row"
    with translation.override("fr"):
        assert formula_to_text(None) != "" and "score" in formula_to_text(group(LOW))


# --- counts -------------------------------------------------------------------------------


def test_count_matching_with_and_without_an_action_filter(table):
    workflow, _columns = table
    assert count_matching(workflow, group(LOW)) == 2
    assert count_matching(workflow, None) == 5
    assert count_matching(workflow, group(LOW), within=group(rule("name", "contains", "a"))) == 1
    with pytest.raises(ConditionError):
        count_matching(workflow, group(rule("nope", "is_null")))


def _update(workflow, columns, name, value, key):
    qn = connection.ops.quote_name
    by_name = {c.name: c for c in columns}
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(workflow.table_name)} SET {qn(by_name[name].physical)} = %s"
            f" WHERE {qn(by_name['key'].physical)} = %s",
            [value, key],
        )


def test_refresh_counts_recounts_only_the_affected_filters_and_conditions(
    table, django_assert_max_num_queries
):
    workflow, columns = table
    account = workflow.account
    on_score = Filter.objects.create(
        account=account, workflow=workflow, name="low", formula=group(LOW)
    )
    on_name = Filter.objects.create(
        account=account, workflow=workflow, name="named", formula=group(NAME_EMPTY)
    )
    action = Action.objects.create(
        account=account, workflow=workflow, name="Mail", action_type="email", filter=on_score
    )
    other = Action.objects.create(
        account=account, workflow=workflow, name="Web", action_type="email"
    )
    # filtered by score, tests passed: affected by score through the action's filter
    via_filter = Condition.objects.create(
        account=account, action=action, name="passed", formula=group(PASSED)
    )
    on_passed = Condition.objects.create(
        account=account, action=other, name="passed", formula=group(PASSED)
    )
    refresh_counts(workflow)
    for item, count in [(on_score, 2), (on_name, 2), (via_filter, 0), (on_passed, 2)]:
        item.refresh_from_db()
        assert item.selected_count == count

    _update(workflow, columns, "score", 10, "k1")  # k1 becomes low (and passed)
    _update(workflow, columns, "passed", False, "k4")
    with django_assert_max_num_queries(6):
        refresh_counts(workflow, columns={"score"})
    on_score.refresh_from_db()
    on_name.refresh_from_db()
    via_filter.refresh_from_db()
    on_passed.refresh_from_db()
    assert on_score.selected_count == 3
    assert via_filter.selected_count == 1  # low AND passed: k1
    assert on_passed.selected_count == 2  # not affected by score: stale until refreshed
    assert on_name.selected_count == 2

    with django_assert_max_num_queries(0):
        refresh_counts(workflow, columns=set())
    refresh_counts(workflow, columns={"passed"})
    on_passed.refresh_from_db()
    assert on_passed.selected_count == 1


def test_refresh_counts_uses_one_select_for_all(table, django_assert_num_queries):
    workflow, _columns = table
    for i in range(10):
        Filter.objects.create(
            account=workflow.account,
            workflow=workflow,
            name=f"f{i}",
            formula=group(rule("attempts", "greater", i)),
        )
    # columns, filters, conditions, one SELECT of all counts, one bulk UPDATE
    with django_assert_num_queries(5):
        refresh_counts(workflow)
    counts = sorted(
        Filter.objects.filter(workflow=workflow).values_list("selected_count", flat=True)
    )
    assert counts == [0, 0, 0, 0, 0, 1, 1, 2, 2, 3]
    with django_assert_num_queries(4):  # nothing changed: no UPDATE
        refresh_counts(workflow)


def test_a_broken_formula_keeps_its_count_and_does_not_stop_the_others(table):
    workflow, _columns = table
    broken = Filter.objects.create(
        account=workflow.account,
        workflow=workflow,
        name="gone",
        formula=group(rule("deleted column", "is_null")),
        selected_count=7,
    )
    fine = Filter.objects.create(
        account=workflow.account, workflow=workflow, name="low", formula=group(LOW)
    )
    refresh_counts(workflow)
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert (broken.selected_count, fine.selected_count) == (7, 2)
