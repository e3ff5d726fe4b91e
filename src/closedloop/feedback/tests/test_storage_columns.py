"""Column services: add, rename (propagated), delete, move, clone, change type,
categories, keys, random and formula columns — and their bad inputs."""

from __future__ import annotations

import datetime as dt

import pytest

from closedloop.feedback import columns as cs
from closedloop.feedback import services, table
from closedloop.feedback.models import Action, Column, Condition, Filter, View
from closedloop.feedback.selectors import columns_of

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def col(workflow, name):
    return Column.objects.get(workflow=workflow, name=name)


def values(workflow, name):
    return table.read_frame(workflow, [col(workflow, name)])[name].to_list()


def test_add_with_and_without_initial_value(make_workflow, scoped):
    wf = make_workflow()
    version = wf.version
    c = cs.column_add(workflow=wf, actor=scoped.alice, name="bonus", data_type="integer")
    assert c.position == 7 and values(wf, "bonus") == [None] * 6
    assert table.read_frame(wf, [c]).schema["bonus"].is_integer()
    cs.column_add(
        workflow=wf,
        actor=scoped.alice,
        name="cohort #1",
        data_type="string",
        initial="A",
        position=1,
    )
    assert [c.name for c in columns_of(wf)][:2] == ["cohort #1", "email"]
    assert values(wf, "cohort #1") == ["A"] * 6
    wf.refresh_from_db()
    assert wf.ncols == 8 and wf.version == version + 2
    assert wf.logs.filter(name="column_add").count() == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("x" * 64, "at most 63"),
        ("it's", "quotes"),
        ('say "hi"', "quotes"),
        ("__hidden", "two underscores"),
        ("score", "already a column"),
    ],
)
def test_add_refuses_bad_names(make_workflow, scoped, name, message):
    wf = make_workflow()
    with pytest.raises(services.FeedbackError, match=message):
        cs.column_add(workflow=wf, actor=scoped.alice, name=name, data_type="string")
    assert Column.objects.filter(workflow=wf).count() == 6


def test_add_refuses_bad_type_initial_and_key(make_workflow, scoped):
    wf = make_workflow()
    with pytest.raises(services.FeedbackError, match="not a column type"):
        cs.column_add(workflow=wf, actor=scoped.alice, name="x", data_type="text")
    with pytest.raises(services.FeedbackError, match="“x”.*not a number"):
        cs.column_add(workflow=wf, actor=scoped.alice, name="x", data_type="double", initial="abc")
    with pytest.raises(services.FeedbackError, match="not be unique"):
        cs.column_add(workflow=wf, actor=scoped.alice, name="x", data_type="integer", is_key=True)
    with pytest.raises(services.FeedbackError, match="allowed values"):
        cs.column_add(
            workflow=wf,
            actor=scoped.alice,
            name="x",
            data_type="string",
            initial="c",
            categories=["a", "b"],
        )
    assert len(table.physical_columns(wf.table_name)) == 8  # _rid, 6 columns, _search


def test_rename_propagates_into_filters_conditions_and_actions(make_workflow, scoped):
    wf = make_workflow()
    rule = {"id": "score", "field": "score", "type": "double", "operator": "less", "value": 50}
    formula = {"condition": "AND", "not": False, "rules": [rule], "valid": True}
    f = Filter.objects.create(account=scoped.account, workflow=wf, name="low", formula=formula)
    action = Action.objects.create(
        account=scoped.account,
        workflow=wf,
        name="mail",
        action_type="email",
        text_content="Hi {{ name }}, {% if low score %}your score {{score}} is low{% endif %}",
        subject="Score: {{ score }}",
        options={"item_column": "email", "columns": ["score"]},
    )
    cond = Condition.objects.create(
        account=scoped.account, action=action, name="low score", formula=formula
    )
    view = View.objects.create(
        account=scoped.account, workflow=wf, name="v", column_ids=[col(wf, "score").pk]
    )
    cs.column_rename(column=col(wf, "score"), actor=scoped.alice, new_name="final score")
    f.refresh_from_db(), cond.refresh_from_db(), action.refresh_from_db(), view.refresh_from_db()
    assert f.formula["rules"][0]["field"] == "final score"
    assert cond.formula["rules"][0]["id"] == "final score"
    assert "{{ final score }}" in action.text_content or "{{final score}}" in action.text_content
    assert "score }}" not in action.text_content.replace("final score }}", "")
    assert "{% if low score %}" in action.text_content
    assert action.subject == "Score: {{ final score }}"
    assert action.options == {"item_column": "email", "columns": ["final score"]}
    assert view.column_ids == [col(wf, "final score").pk]
    log = wf.logs.get(name="column_rename")
    assert log.payload["old"] == "score" and log.payload["updated"]["filters"] == 1


def test_rename_refuses_duplicates(make_workflow, scoped):
    wf = make_workflow()
    with pytest.raises(services.FeedbackError, match="already a column"):
        cs.column_rename(column=col(wf, "score"), actor=scoped.alice, new_name="name")


def test_delete_refuses_last_key_and_used_columns(make_workflow, scoped):
    wf = make_workflow()
    with pytest.raises(services.FeedbackError, match="only key"):
        cs.column_delete(column=col(wf, "email"), actor=scoped.alice)
    formula = {
        "condition": "AND",
        "rules": [
            {"field": "score", "operator": "less", "value": 50},
            {"field": "attempts", "operator": "greater", "value": 1},
        ],
    }
    f = Filter.objects.create(account=scoped.account, workflow=wf, name="low", formula=formula)
    with pytest.raises(services.FeedbackError, match="filter “low”"):
        cs.column_delete(column=col(wf, "score"), actor=scoped.alice)
    assert "score" in [c.name for c in columns_of(wf)]
    cs.column_delete(column=col(wf, "score"), actor=scoped.alice, force=True)
    f.refresh_from_db()
    assert [r["field"] for r in f.formula["rules"]] == ["attempts"]
    assert "score" not in [c.name for c in columns_of(wf)]
    assert [c.position for c in columns_of(wf)] == [1, 2, 3, 4, 5]
    assert table.read_frame(wf).width == 5
    wf.refresh_from_db()
    assert wf.ncols == 5


def test_delete_a_key_when_another_key_exists(make_workflow, scoped):
    wf = make_workflow()
    cs.column_update(column=col(wf, "name"), actor=scoped.alice, is_key=True)
    cs.column_delete(column=col(wf, "email"), actor=scoped.alice)
    assert [c.name for c in columns_of(wf) if c.is_key] == ["name"]


def test_move_and_clone(make_workflow, scoped):
    wf = make_workflow()
    cs.column_move(column=col(wf, "submitted"), actor=scoped.alice, position=2)
    assert [c.name for c in columns_of(wf)] == [
        "email",
        "submitted",
        "name",
        "score",
        "attempts",
        "passed",
    ]
    clone = cs.column_clone(column=col(wf, "score"), actor=scoped.alice, name="score copy")
    assert clone.position == col(wf, "score").position + 1 and not clone.is_key
    assert values(wf, "score copy") == values(wf, "score")


def test_change_type_validates_every_value(make_workflow, scoped):
    wf = make_workflow(
        data={"id": [1, 2, 3], "code": ["10", "x", "y"], "n": [1, 2, None]}, keys=("id",)
    )
    with pytest.raises(services.FeedbackError, match=r"“code”: 2 values.*id = 2, 3"):
        cs.column_change_type(column=col(wf, "code"), actor=scoped.alice, data_type="integer")
    assert col(wf, "code").data_type == "string" and values(wf, "code") == ["10", "x", "y"]
    cs.column_change_type(column=col(wf, "n"), actor=scoped.alice, data_type="string")
    assert values(wf, "n") == ["1", "2", None]
    cs.column_change_type(column=col(wf, "n"), actor=scoped.alice, data_type="double")
    assert values(wf, "n") == [1.0, 2.0, None]
    cs.column_change_type(column=col(wf, "id"), actor=scoped.alice, data_type="string")
    assert col(wf, "id").is_key and values(wf, "id") == ["1", "2", "3"]
    with pytest.raises(services.FeedbackError, match="cannot become"):
        cs.column_change_type(column=col(wf, "n"), actor=scoped.alice, data_type="datetime")
    assert wf.logs.filter(name="column_change_type").count() == 3


def test_categories_ranges_and_restriction(make_workflow, scoped):
    wf = make_workflow()
    c = col(wf, "attempts")
    cs.column_update(column=c, actor=scoped.alice, categories=["0 - 4"])
    assert col(wf, "attempts").categories == [0, 1, 2, 3, 4]
    with pytest.raises(services.FeedbackError, match="not allowed: 3, 4|not allowed: 4, 3"):
        cs.column_update(column=c, actor=scoped.alice, categories=[0, 1, 2])
    with pytest.raises(services.FeedbackError, match="at least two"):
        cs.column_update(column=c, actor=scoped.alice, categories=["1"])
    with pytest.raises(services.FeedbackError, match="not a number"):
        cs.column_update(column=c, actor=scoped.alice, categories=["a", "b"])
    cs.column_restrict_categories(column=col(wf, "passed"), actor=scoped.alice)
    assert sorted(col(wf, "passed").categories) == [False, True]
    with pytest.raises(services.FeedbackError, match="allowed values"):
        services.row_update(
            workflow=wf,
            actor=scoped.alice,
            key_column="email",
            key_value="ana@example.org",
            values={"attempts": 9},
        )


def test_key_toggling(make_workflow, scoped):
    wf = make_workflow()
    with pytest.raises(services.FeedbackError, match="only key"):
        cs.column_update(column=col(wf, "email"), actor=scoped.alice, is_key=False)
    with pytest.raises(services.FeedbackError, match="1 empty"):
        cs.column_update(column=col(wf, "score"), actor=scoped.alice, is_key=True)
    with pytest.raises(services.FeedbackError, match="repeated"):
        cs.column_update(column=col(wf, "attempts"), actor=scoped.alice, is_key=True)
    cs.column_update(column=col(wf, "name"), actor=scoped.alice, is_key=True)
    cs.column_update(column=col(wf, "email"), actor=scoped.alice, is_key=False)
    assert [c.name for c in columns_of(wf) if c.is_key] == ["name"]
    with pytest.raises(services.FeedbackError, match="already has the value"):
        services.row_insert(workflow=wf, actor=scoped.alice, values={"name": "Ana"})


def test_description_window_and_unknown_fields(make_workflow, scoped):
    wf = make_workflow()
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    cs.column_update(
        column=col(wf, "score"),
        actor=scoped.alice,
        description="Final",
        active_from=start,
        active_to=start + dt.timedelta(days=3),
        in_viz=False,
    )
    c = col(wf, "score")
    assert (c.description, c.active_from, c.in_viz) == ("Final", start, False)
    with pytest.raises(services.FeedbackError, match="ends before"):
        cs.column_update(column=c, actor=scoped.alice, active_to=start - dt.timedelta(days=1))
    with pytest.raises(services.FeedbackError, match="cannot be changed here"):
        cs.column_update(column=c, actor=scoped.alice, slot=99)


def test_random_column_partitions_equally(make_workflow, scoped):
    wf = make_workflow()
    c = cs.column_add_random(
        workflow=wf, actor=scoped.alice, name="group", values=["A", "B", "C"], seed=7
    )
    got = values(wf, "group")
    assert sorted(got) == ["A", "A", "B", "B", "C", "C"] and c.categories == ["A", "B", "C"]
    cs.column_add_random(workflow=wf, actor=scoped.alice, name="g2", int_range=(1, 4), seed=7)
    counts = {v: values(wf, "g2").count(v) for v in (1, 2, 3, 4)}
    assert sorted(counts.values()) == [1, 1, 2, 2]
    cs.column_add_random(workflow=wf, actor=scoped.alice, name="g3", values=["A", "B", "C"], seed=7)
    assert values(wf, "g3") == got  # seedable
    with pytest.raises(services.FeedbackError, match="two different"):
        cs.column_add_random(workflow=wf, actor=scoped.alice, name="g4", values=["A", "A"])
    with pytest.raises(services.FeedbackError, match="either"):
        cs.column_add_random(workflow=wf, actor=scoped.alice, name="g4")


def test_formula_columns(make_workflow, scoped):
    wf = make_workflow(
        data={
            "id": [1, 2, 3],
            "a": [1, 2, None],
            "b": [10.0, None, None],
            "c": [3, 4, None],
            "p": [True, None, None],
            "q": [False, True, None],
        },
        keys=("id",),
    )

    def formula(op, inputs):
        c = cs.column_add_formula(
            workflow=wf, actor=scoped.alice, name=f"{op} {' '.join(inputs)}", op=op, inputs=inputs
        )
        return c.data_type, values(wf, c.name)

    assert formula("sum", ["a", "c"]) == ("integer", [4, 6, None])
    assert formula("sum", ["a", "b"]) == ("double", [11.0, 2.0, None])
    assert formula("prod", ["a", "c"]) == ("integer", [3, 8, None])
    assert formula("max", ["a", "b"]) == ("double", [10.0, 2.0, None])
    assert formula("min", ["a", "c"]) == ("integer", [1, 2, None])
    assert formula("mean", ["a", "b"]) == ("double", [5.5, 2.0, None])
    assert formula("median", ["a", "b", "c"]) == ("double", [3.0, 3.0, None])
    dtype, std = formula("std", ["a", "c"])
    assert dtype == "double" and std[0] == pytest.approx(1.41421356) and std[2] is None
    assert formula("all", ["p", "q"]) == ("boolean", [False, True, None])
    assert formula("any", ["p", "q"]) == ("boolean", [True, True, None])
    with pytest.raises(services.FeedbackError, match="“p” is not numeric"):
        cs.column_add_formula(workflow=wf, actor=scoped.alice, name="bad", op="sum", inputs=["p"])
    with pytest.raises(services.FeedbackError, match="not a formula"):
        cs.column_add_formula(workflow=wf, actor=scoped.alice, name="bad", op="pow", inputs=["a"])
    with pytest.raises(services.FeedbackError, match="no column named"):
        cs.column_add_formula(workflow=wf, actor=scoped.alice, name="bad", op="sum", inputs=["z"])


def test_conflicting_writes_are_detected(make_workflow, scoped):
    wf = make_workflow()
    seen = wf.version
    cs.column_add(workflow=wf, actor=scoped.alice, name="x", data_type="string")
    with pytest.raises(services.ConflictError, match="Someone else"):
        cs.column_add(
            workflow=wf, actor=scoped.alice, name="y", data_type="string", expected_version=seen
        )
    assert not Column.objects.filter(workflow=wf, name="y").exists()
