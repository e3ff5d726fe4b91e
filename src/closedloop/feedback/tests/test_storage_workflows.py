"""Workflow services: create, update, clone, delete, flush, attributes, stars, sharing,
presence, loading a table (key rules, typing errors) and single rows."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from django.db import connection

from closedloop.feedback import services, table
from closedloop.feedback.models import (
    Action,
    ActionColumn,
    Column,
    Condition,
    Filter,
    RubricCell,
    View,
    Workflow,
    WorkflowLog,
    WorkflowShare,
    WorkflowStar,
)
from closedloop.feedback.selectors import columns_of

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def test_create_makes_an_empty_table_and_refuses_duplicates(world, scoped):
    wf = services.workflow_create(account=world.account, actor=world.alice, name=" Bio ")
    assert wf.name == "Bio" and table.table_exists(wf.table_name) and table.count_rows(wf) == 0
    with pytest.raises(services.FeedbackError, match="already a workflow"):
        services.workflow_create(account=world.account, actor=world.alice, name="Bio")
    with pytest.raises(services.FeedbackError, match="needs a name"):
        services.workflow_create(account=world.account, actor=world.alice, name="  ")
    assert WorkflowLog.objects.filter(workflow=wf, name="workflow_create").exists()


def test_update_checks_the_version_and_logs(make_workflow, scoped):
    wf = make_workflow()
    version = wf.version
    services.workflow_update(
        workflow=wf, actor=scoped.alice, expected_version=version, description="Notes"
    )
    assert wf.version == version + 1
    with pytest.raises(services.ConflictError):
        services.workflow_update(
            workflow=wf, actor=scoped.alice, expected_version=version, description="Old"
        )
    wf.refresh_from_db()
    assert wf.description == "Notes"
    services.workflow_update(workflow=wf, actor=scoped.alice, name="Course 2")
    assert WorkflowLog.objects.filter(workflow=wf, name="workflow_rename").exists()
    with pytest.raises(services.FeedbackError, match="Unknown"):
        services.workflow_update(workflow=wf, actor=scoped.alice, owner=scoped.bob)


def test_attributes_star_and_presence(make_workflow, scoped):
    wf = make_workflow()
    services.workflow_set_attribute(workflow=wf, actor=scoped.alice, name="term", value="Fall")
    assert Workflow.objects.get(pk=wf.pk).attributes == {"term": "Fall"}
    with pytest.raises(services.FeedbackError, match="column name"):
        services.workflow_set_attribute(workflow=wf, actor=scoped.alice, name="score", value=1)
    services.workflow_delete_attribute(workflow=wf, actor=scoped.alice, name="term")
    assert Workflow.objects.get(pk=wf.pk).attributes == {}
    with pytest.raises(services.FeedbackError):
        services.workflow_delete_attribute(workflow=wf, actor=scoped.alice, name="term")
    services.workflow_star(workflow=wf, user=scoped.bob, starred=True)
    services.workflow_star(workflow=wf, user=scoped.bob, starred=True)
    assert WorkflowStar.objects.filter(workflow=wf).count() == 1
    services.workflow_star(workflow=wf, user=scoped.bob, starred=False)
    assert not WorkflowStar.objects.filter(workflow=wf).exists()
    assert services.presence_touch(workflow=wf, user=scoped.alice) == []
    assert services.presence_touch(workflow=wf, user=scoped.sam) == [scoped.alice]


def test_sharing_rules(make_workflow, scoped, world):
    wf = make_workflow()
    share = services.workflow_share(
        workflow=wf, actor=world.alice, email="BOB@example.org", role="viewer"
    )
    assert (share.user, share.role) == (world.bob, "viewer")
    services.workflow_share(workflow=wf, actor=world.alice, email="bob@example.org", role="editor")
    assert WorkflowShare.objects.get(workflow=wf).role == "editor"
    with pytest.raises(services.FeedbackError, match="not a member"):
        services.workflow_share(
            workflow=wf, actor=world.alice, email="charlie@example.org", role="viewer"
        )
    with pytest.raises(services.FeedbackError, match="editor or viewer"):
        services.workflow_share(
            workflow=wf, actor=world.alice, email="sam@example.org", role="owner"
        )
    with pytest.raises(services.FeedbackError, match="owner already"):
        services.workflow_share(
            workflow=wf, actor=world.alice, email="alice@example.org", role="viewer"
        )
    services.workflow_unshare(workflow=wf, actor=world.alice, user=world.bob)
    assert not WorkflowShare.objects.filter(workflow=wf).exists()


def test_delete_needs_the_exact_name(make_workflow, scoped):
    wf = make_workflow()
    table.snapshot_version(wf, label="x", actor=None)
    with pytest.raises(services.FeedbackError, match="Type the workflow"):
        services.workflow_delete(workflow=wf, actor=scoped.alice, confirm_name="course")
    assert Workflow.objects.filter(pk=wf.pk).exists()
    name = wf.table_name
    services.workflow_delete(workflow=wf, actor=scoped.alice, confirm_name="Course")
    assert not Workflow.objects.filter(name="Course").exists()
    assert not table.table_exists(name) and not table.table_exists(f"{name}_v2")
    log = WorkflowLog.objects.get(name="workflow_delete")
    assert log.workflow is None and log.workflow_name == "Course"


def _decorate(wf, account):
    formula = {"condition": "AND", "rules": [{"field": "score", "operator": "less", "value": 50}]}
    flt = Filter.objects.create(account=account, workflow=wf, name="low", formula=formula)
    score = Column.objects.get(workflow=wf, name="score")
    View.objects.create(account=account, workflow=wf, name="v", column_ids=[score.pk], filter=flt)
    action = Action.objects.create(
        account=account,
        workflow=wf,
        name="mail",
        action_type="rubric",
        filter=flt,
        text_content="{{ name }}",
    )
    cond = Condition.objects.create(account=account, action=action, name="c", formula=formula)
    ActionColumn.objects.create(account=account, action=action, column=score, condition=cond)
    RubricCell.objects.create(account=account, action=action, column=score, level=0, feedback="f")
    return action


def test_clone_copies_data_columns_and_everything_built_on_them(make_workflow, scoped):
    wf = make_workflow()
    services.workflow_set_attribute(workflow=wf, actor=scoped.alice, name="term", value="Fall")
    action = _decorate(wf, scoped.account)
    clone = services.workflow_clone(workflow=wf, actor=scoped.sam, name="Course copy")
    assert clone.owner == scoped.sam and clone.attributes == {"term": "Fall"}
    assert table.read_frame(clone).equals(table.read_frame(wf))
    assert [c.name for c in columns_of(clone)] == [c.name for c in columns_of(wf)]
    assert {c.pk for c in columns_of(clone)}.isdisjoint({c.pk for c in columns_of(wf)})
    new_score = Column.objects.get(workflow=clone, name="score")
    view = View.objects.get(workflow=clone)
    assert view.column_ids == [new_score.pk] and view.filter.workflow == clone
    new_action = Action.objects.get(workflow=clone)
    assert new_action.public_id != action.public_id and new_action.filter.workflow == clone
    item = ActionColumn.objects.get(action=new_action)
    assert item.column == new_score and item.condition.action == new_action
    assert RubricCell.objects.get(action=new_action).column == new_score
    rid = services.row_insert(workflow=clone, actor=scoped.sam, values={"email": "x@y.org"})
    assert rid == 7 and table.count_rows(wf) == 6
    with pytest.raises(services.FeedbackError, match="already a workflow"):
        services.workflow_clone(workflow=wf, actor=scoped.sam, name="Course copy")


def test_flush_removes_data_columns_views_filters_and_actions(make_workflow, scoped):
    wf = make_workflow()
    _decorate(wf, scoped.account)
    services.workflow_flush(workflow=wf, actor=scoped.alice)
    wf.refresh_from_db()
    assert (wf.nrows, wf.ncols) == (0, 0)
    assert not Column.objects.filter(workflow=wf).exists()
    assert not Filter.objects.filter(workflow=wf).exists()
    assert not View.objects.filter(workflow=wf).exists()
    assert not Action.objects.filter(workflow=wf).exists()
    assert table.count_rows(wf) == 0
    assert WorkflowLog.objects.filter(workflow=wf, name="workflow_data_flush").exists()


def test_load_refuses_bad_keys_and_values_naming_rows(make_workflow, scoped):
    wf = make_workflow()
    before = table.read_frame(wf)
    cases = [
        ({"email": ["a", None, "c"]}, ["email"], None, r"empty values in rows 2"),
        ({"email": ["a", "b", "a"]}, ["email"], None, r"repeated values in rows 1, 3"),
        ({"email": ["a"]}, [], None, "at least one key"),
        ({"email": ["a"]}, ["id"], None, "“id” is not in the data"),
        ({"email": ["a", "b"], "n": ["1", "x"]}, ["email"], {"n": "integer"}, r"“n”: rows 2"),
        ({"email": ["a"], "__x": [1]}, ["email"], None, "two underscores"),
    ]
    for data, keys, types, message in cases:
        with pytest.raises(services.FeedbackError, match=message) as info:
            services.table_load(
                workflow=wf, actor=scoped.alice, frame=pl.DataFrame(data), keys=keys, types=types
            )
        assert info.value.errors
    assert table.read_frame(wf).equals(before)
    with pytest.raises(services.FeedbackError) as info:
        services.table_load(
            workflow=wf,
            actor=scoped.alice,
            frame=pl.DataFrame({"email": ["a", "b", "a"]}),
            keys=["email"],
        )
    assert info.value.errors[0] == {
        "row": 1,
        "column": "email",
        "message": info.value.errors[0]["message"],
    }


def test_load_types_text_and_keeps_column_ids(make_workflow, scoped):
    wf = make_workflow()
    score_id = Column.objects.get(workflow=wf, name="score").pk
    frame = pl.DataFrame(
        {
            "email": ["a@x", "b@x"],
            "score": ["1.5", ""],
            "ok": ["yes", "No"],
            "at": ["2024-01-02 03:04:05+02:00", "2024-01-02T10:00:00Z"],
        }
    )
    services.table_load(
        workflow=wf,
        actor=scoped.alice,
        frame=frame,
        keys=["email"],
        types={"score": "double", "ok": "boolean", "at": "datetime"},
    )
    assert Column.objects.get(workflow=wf, name="score").pk == score_id
    got = table.read_frame(wf)
    assert got["score"].to_list() == [1.5, None]
    assert got["ok"].to_list() == [True, False]
    assert got["at"].to_list() == [
        dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 10, 0, tzinfo=UTC),
    ]


def test_rows_insert_update_delete_with_key_rules(make_workflow, scoped):
    wf = make_workflow()
    rid = services.row_insert(
        workflow=wf,
        actor=scoped.alice,
        values={"email": "zoe@x.org", "attempts": "2", "submitted": "2024-05-01T10:00:00+02:00"},
    )
    row = table.fetch_rows(wf, columns_of(wf), where=f"{table.qn('_rid')} = %s", params=[rid])[0]
    assert row["attempts"] == 2 and row["submitted"] == dt.datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert wf.nrows == 7
    bad = [
        ({"email": "ana@example.org"}, "already has the value"),
        ({"name": "x"}, "“email” needs a value"),
        ({"email": "q", "attempts": "2.5"}, "“attempts”.*whole number"),
        ({"email": "q", "passed": "maybe"}, "“passed”.*true or false"),
        ({"email": "q", "submitted": "yesterday"}, "“submitted”.*date and time"),
        ({"email": "q", "ghost": 1}, "no column named “ghost”"),
    ]
    for values, message in bad:
        with pytest.raises(services.FeedbackError, match=message):
            services.row_insert(workflow=wf, actor=scoped.alice, values=values)
    assert table.count_rows(wf) == 7
    with pytest.raises(services.FeedbackError, match="already has the value"):
        services.row_update(
            workflow=wf,
            actor=scoped.alice,
            key_column="email",
            key_value="zoe@x.org",
            values={"email": "ana@example.org"},
        )
    with pytest.raises(services.FeedbackError, match="needs a value"):
        services.row_update(
            workflow=wf,
            actor=scoped.alice,
            key_column="email",
            key_value="zoe@x.org",
            values={"email": ""},
        )
    services.row_update(
        workflow=wf,
        actor=scoped.alice,
        key_column="email",
        key_value="zoe@x.org",
        values={"email": "zoe@y.org", "score": 3},
    )
    with pytest.raises(services.RowNotFound):
        services.row_delete(
            workflow=wf, actor=scoped.alice, key_column="email", key_value="zoe@x.org"
        )
    services.row_delete(workflow=wf, actor=scoped.alice, key_column="email", key_value="zoe@y.org")
    wf.refresh_from_db()
    assert wf.nrows == 6 and table.count_rows(wf) == 6
    assert [
        log.name for log in WorkflowLog.objects.filter(workflow=wf, name__startswith="row_")
    ] == [
        "row_delete",
        "row_update",
        "row_create",
    ]
    assert connection.vendor in {"sqlite", "postgresql"}
