"""Filter, condition and view services: validation, counts, logs, version bumps."""

from __future__ import annotations

import pytest

from closedloop.feedback import filters
from closedloop.feedback.conditions import ConditionError
from closedloop.feedback.filters import FilterError
from closedloop.feedback.models import Action, Column, Condition, Filter, View, WorkflowLog

LOW = {"condition": "AND", "not": False, "valid": True, "rules": [
    {"id": "score", "field": "score", "type": "double", "input": "number", "operator": "less", "value": "50"}
]}  # fmt: skip
PASSED = {"condition": "AND", "rules": [{"field": "passed", "operator": "equal", "value": True}]}


@pytest.fixture
def wf(world, make_workflow):
    from closedloop.core.tenancy import account_scope

    workflow = make_workflow()
    with account_scope(world.account):
        yield workflow


def _action(workflow, name="Mail", filter=None):  # noqa: A002
    return Action.objects.create(
        account=workflow.account, workflow=workflow, name=name, action_type="email", filter=filter
    )


def _logs(workflow, name):
    return list(WorkflowLog.objects.filter(workflow=workflow, name=name))


def test_filter_create_stores_its_count_logs_and_bumps_the_version(wf, world):
    version = wf.version
    item = filters.filter_create(workflow=wf, actor=world.alice, name=" Low ", formula=LOW)
    assert (item.name, item.selected_count) == ("Low", 2)
    wf.refresh_from_db()
    assert wf.version == version + 1
    [log] = _logs(wf, "filter_create")
    assert log.payload["formula_text"] == "score < “50”"
    assert log.payload["selected_count"] == 2 and log.user == world.alice


def test_filter_create_refuses_bad_formulas_and_names_and_changes_nothing(wf, world):
    filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    wf.refresh_from_db()
    version = wf.version
    bad = {"condition": "AND", "rules": [{"field": "score", "operator": "less", "value": "abc"}]}
    with pytest.raises(ConditionError) as info:
        filters.filter_create(workflow=wf, actor=world.alice, name="Bad", formula=bad)
    assert info.value.field == "score" and not isinstance(info.value, FilterError)
    with pytest.raises(FilterError) as info:
        filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=PASSED)
    assert info.value.field == "name" and "already exists" in info.value.message
    with pytest.raises(FilterError):
        filters.filter_create(workflow=wf, actor=world.alice, name="  ", formula=PASSED)
    with pytest.raises(ConditionError):
        filters.filter_create(workflow=wf, actor=world.alice, name="Str", formula="score < 3")
    assert list(Filter.objects.filter(workflow=wf).values_list("name", flat=True)) == ["Low"]
    wf.refresh_from_db()
    assert wf.version == version
    assert len(_logs(wf, "filter_create")) == 1


def test_filter_update_recounts_the_conditions_of_actions_using_it(wf, world):
    low = filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    action = _action(wf, filter=low)
    cond = filters.condition_create(action=action, actor=world.alice, name="ok", formula=PASSED)
    assert cond.selected_count == 0  # nobody below 50 passed
    filters.filter_update(filter=low, actor=world.alice, formula={})  # every row
    low.refresh_from_db()
    cond.refresh_from_db()
    assert (low.selected_count, cond.selected_count) == (6, 3)
    filters.filter_update(filter=low, actor=world.alice, name="Everyone", description="all")
    low.refresh_from_db()
    assert (low.name, low.description, low.formula) == ("Everyone", "all", {})
    assert len(_logs(wf, "filter_update")) == 2


def test_filter_delete_leaves_actions_on_every_row_and_recounts_them(wf, world):
    low = filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    action = _action(wf, filter=low)
    view = filters.view_create(workflow=wf, actor=world.alice, name="V", column_ids=[], filter=low)
    cond = filters.condition_create(action=action, actor=world.alice, name="ok", formula=PASSED)
    filters.filter_delete(filter=low, actor=world.alice)
    action.refresh_from_db()
    view.refresh_from_db()
    cond.refresh_from_db()
    assert action.filter is None and view.filter is None
    assert cond.selected_count == 3
    assert _logs(wf, "filter_delete")[0].payload["name"] == "Low"


def test_condition_count_is_action_filter_and_condition(wf, world):
    low = filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    failed = {
        "condition": "AND",
        "rules": [{"field": "passed", "operator": "equal", "value": "false"}],
    }
    on_filtered = filters.condition_create(
        action=_action(wf, filter=low), actor=world.alice, name="failed", formula=failed
    )
    on_all = filters.condition_create(
        action=_action(wf, "Web"), actor=world.alice, name="failed", formula=failed
    )
    assert (on_filtered.selected_count, on_all.selected_count) == (2, 2)
    assert on_filtered.position == 1
    second = filters.condition_create(
        action=on_filtered.action, actor=world.alice, name="any", formula={}
    )
    assert (second.position, second.selected_count) == (2, 2)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("x" * 64, "longer than 63"),
        ("it's", "quotes"),
        ('say "hi"', "quotes"),
        ("__secret", "__"),
        ("score", "column"),
        ("course", "attribute"),
        ("ok", "already exists"),
        ("", "name is needed"),
    ],
)
def test_condition_names_share_the_template_namespace(wf, world, name, words):
    wf.attributes = {"course": "Biology"}
    wf.save()
    action = _action(wf)
    filters.condition_create(action=action, actor=world.alice, name="ok", formula=PASSED)
    with pytest.raises(FilterError) as info:
        filters.condition_create(action=action, actor=world.alice, name=name, formula=PASSED)
    assert info.value.field == "name" and words in info.value.message
    assert Condition.objects.filter(action=action).count() == 1


def test_condition_update_rename_and_formula(wf, world):
    action = _action(wf)
    action.text_content = "{% if ok %}Well done{% endif %}"
    action.save()
    cond = filters.condition_create(action=action, actor=world.alice, name="ok", formula=PASSED)
    filters.condition_update(condition=cond, actor=world.alice, name="ok", formula=LOW)
    cond.refresh_from_db()
    assert (cond.name, cond.selected_count) == ("ok", 2)
    filters.condition_update(condition=cond, actor=world.alice, name="good")
    cond.refresh_from_db()
    assert cond.name == "good"
    log = _logs(wf, "condition_update")[0]
    assert log.payload["old_name"] == "ok"
    with pytest.raises(FilterError):
        filters.condition_update(condition=cond, actor=world.alice, name="email")


def test_condition_clone_and_delete(wf, world):
    action = _action(wf)
    cond = filters.condition_create(action=action, actor=world.alice, name="ok", formula=PASSED)
    clone = filters.condition_clone(condition=cond, actor=world.alice)
    assert clone.name == "Copy of ok" and clone.formula == cond.formula
    other = _action(wf, "Web")
    moved = filters.condition_clone(condition=cond, actor=world.alice, name="ok", action=other)
    assert moved.action == other and moved.selected_count == cond.selected_count
    filters.condition_delete(condition=cond, actor=world.alice)
    assert list(Condition.objects.filter(action=action).values_list("name", flat=True)) == [
        "Copy of ok"
    ]
    assert {log.name for log in WorkflowLog.objects.filter(workflow=wf)} >= {
        "condition_create",
        "condition_clone",
        "condition_delete",
    }


def test_views_take_a_subset_of_the_workflows_columns(wf, world, make_workflow):
    columns = {c.name: c.pk for c in Column.objects.filter(workflow=wf)}
    low = filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    view = filters.view_create(
        workflow=wf,
        actor=world.alice,
        name="Scores",
        column_ids=[columns["email"], columns["score"], columns["email"]],
        filter=low,
    )
    assert view.column_ids == [columns["email"], columns["score"]]
    with pytest.raises(FilterError) as info:
        filters.view_create(workflow=wf, actor=world.alice, name="X", column_ids=[999999])
    assert info.value.field == "column_ids" and "999999" in info.value.message
    with pytest.raises(FilterError) as info:
        filters.view_create(workflow=wf, actor=world.alice, name="Scores", column_ids=[])
    assert info.value.field == "name"
    other = make_workflow(name="Other")
    other_columns = list(Column.objects.filter(workflow=other).values_list("pk", flat=True))
    with pytest.raises(FilterError):
        filters.view_create(workflow=wf, actor=world.alice, name="Y", column_ids=other_columns)
    foreign = filters.filter_create(workflow=other, actor=world.alice, name="F", formula={})
    with pytest.raises(FilterError) as info:
        filters.view_create(workflow=wf, actor=world.alice, name="Z", column_ids=[], filter=foreign)
    assert info.value.field == "filter"

    filters.view_update(view=view, actor=world.alice, filter=None, column_ids=[columns["name"]])
    view.refresh_from_db()
    assert (view.filter, view.column_ids) == (None, [columns["name"]])
    filters.view_update(view=view, actor=world.alice, name="Names")
    view.refresh_from_db()
    assert (view.name, view.column_ids) == ("Names", [columns["name"]])
    clone = filters.view_clone(view=view, actor=world.alice)
    assert clone.name == "Copy of Names" and clone.column_ids == view.column_ids
    filters.view_delete(view=view, actor=world.alice)
    assert list(View.objects.filter(workflow=wf).values_list("name", flat=True)) == [
        "Copy of Names"
    ]


def test_expected_version_detects_a_conflicting_write(wf, world):
    from closedloop.feedback.services import ConflictError

    stale = wf.version
    filters.filter_create(workflow=wf, actor=world.alice, name="A", formula={})
    with pytest.raises(ConflictError):
        filters.filter_create(
            workflow=wf, actor=world.alice, name="B", formula={}, expected_version=stale
        )
    assert not Filter.objects.filter(workflow=wf, name="B").exists()


def test_counts_follow_row_changes_through_the_storage_refresh(wf, world):
    from closedloop.feedback import services

    low = filters.filter_create(workflow=wf, actor=world.alice, name="Low", formula=LOW)
    services.row_update(
        workflow=wf,
        actor=world.alice,
        key_column="email",
        key_value="ana@example.org",
        values={"score": 10},
    )
    low.refresh_from_db()
    assert low.selected_count == 3
