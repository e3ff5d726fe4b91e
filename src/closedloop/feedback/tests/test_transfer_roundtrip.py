"""Export a rich workflow to a zip and import it back: columns, data, filters, views,
actions with conditions, survey questions, rubric cells and schedules all survive."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback import table, transfer
from closedloop.feedback.models import (
    Action,
    ActionColumn,
    Column,
    Condition,
    Filter,
    RubricCell,
    Schedule,
    View,
)

pytestmark = pytest.mark.django_db

LOW = {
    "condition": "AND",
    "not": False,
    "valid": True,
    "rules": [
        {"id": "score", "field": "score", "type": "double", "operator": "less", "value": "60"}
    ],
}
PASSED = {
    "condition": "AND",
    "not": False,
    "valid": True,
    "rules": [
        {"id": "passed", "field": "passed", "type": "boolean", "operator": "equal", "value": True}
    ],
}


def build_rich_workflow(world, make_workflow, name: str = "Course"):
    """The six learners plus a graded column, a filter, a view, an email with two
    conditions, a survey, a rubric and a schedule."""
    from closedloop.feedback import actions, columns, filters, schedules

    workflow = make_workflow(name=name)
    alice = world.alice
    with account_scope(world.account):
        columns.column_add(
            workflow=workflow, actor=alice, name="grade", data_type="string",
            categories=["A", "B", "C"], description="Letter grade",
        )  # fmt: skip
        columns.column_add(workflow=workflow, actor=alice, name="comment", data_type="string")
        score = Column.objects.get(workflow=workflow, name="score")
        columns.column_update(column=score, actor=alice, description="Midterm score")
        low = filters.filter_create(workflow=workflow, actor=alice, name="Low scores", formula=LOW)
        cols = {c.name: c for c in Column.objects.filter(workflow=workflow)}
        filters.view_create(
            workflow=workflow, actor=alice, name="Low view",
            column_ids=[cols["email"].pk, cols["score"].pk], filter=low,
        )  # fmt: skip
        email = actions.action_create(
            workflow=workflow, actor=alice, name="Week 3 email", action_type="email",
            text_content="<p>Hi {{ name }}</p>", subject="Week 3", filter=low,
        )  # fmt: skip
        filters.condition_create(action=email, actor=alice, name="Passed", formula=PASSED)
        filters.condition_create(action=email, actor=alice, name="Low", formula=LOW)
        actions.action_update(
            action=email, actor=alice,
            text_content="<p>Hi {{ name }}</p>{% if Passed %}<p>Well done</p>{% endif %}"
            "{% if Low %}<p>Let us talk</p>{% endif %}",
        )  # fmt: skip
        survey = actions.action_create(
            workflow=workflow, actor=alice, name="Check-in", action_type="survey",
            text_content="<p>How is it going?</p>",
        )  # fmt: skip
        filters.condition_create(action=survey, actor=alice, name="Low", formula=LOW)
        actions.action_set_columns(
            action=survey, actor=alice,
            items=[{"column": "comment", "condition": "Low", "changes_allowed": False}],
        )  # fmt: skip
        rubric = actions.action_create(
            workflow=workflow, actor=alice, name="Rubric", action_type="rubric",
            text_content="<p>{{ name }}</p>",
        )  # fmt: skip
        actions.action_set_columns(action=rubric, actor=alice, items=[{"column": "grade"}])
        actions.rubric_set_cells(
            action=rubric, actor=alice,
            cells=[{"column": "grade", "level": 0, "description": "Excellent", "feedback": "Great"},
                   {"column": "grade", "level": 2, "description": "Poor", "feedback": "Work"}],
        )  # fmt: skip
        schedules.schedule_create(
            workflow=workflow, actor=alice, name="Nightly rounding", operation_type="plugin_run",
            payload={"plugin_key": "rounding", "params": {"key": "email"}, "api_token": "x"},
            execute_start=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), frequency="0 3 * * *",
        )  # fmt: skip
        Action.objects.filter(pk=email.pk).update(token_encrypted="secret-token-cipher")
        workflow.refresh_from_db()
    return workflow


def export(world, workflow, **kwargs) -> bytes:
    with account_scope(world.account):
        return transfer.workflow_export(workflow=workflow, actor=world.alice, **kwargs)


def do_import(world, data: bytes, name: str = "Copy", **kwargs):
    with account_scope(world.account):
        return transfer.workflow_import(
            account=world.account, actor=world.alice, name=name, data=data, **kwargs
        )


def test_the_export_is_json_and_csv_without_secrets(world, make_workflow):
    workflow = build_rich_workflow(world, make_workflow)
    data = export(world, workflow)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["data.csv", "workflow.json"]
    meta = json.loads(archive.read("workflow.json"))
    assert meta["format"] == "closedloop-workflow" and meta["version"] == 1
    assert [c["name"] for c in meta["columns"]][:3] == ["email", "name", "score"]
    text = archive.read("workflow.json").decode()
    assert "secret-token-cipher" not in text and "api_token" not in text
    assert "token_encrypted" not in text and "public_id" not in text
    assert "periodic_task" not in text and "last_run_at" not in text
    csv = archive.read("data.csv").decode()
    assert csv.splitlines()[0] == "email,name,score,attempts,passed,submitted,grade,comment"
    assert "ana@example.org,Ana,91.5,1,true,2024-03-01T09:00:00.000000Z,," in csv
    assert b"pickle" not in data


def test_a_round_trip_keeps_everything(world, make_workflow):
    source = build_rich_workflow(world, make_workflow)
    result = do_import(world, export(world, source), name="Course copy")
    copy = result.workflow
    with account_scope(world.account):
        assert copy.pk != source.pk and copy.name == "Course copy"
        before = table.read_frame(source)
        after = table.read_frame(copy)
        assert after.equals(before)
        src_cols = list(Column.objects.filter(workflow=source).order_by("position"))
        new_cols = list(Column.objects.filter(workflow=copy).order_by("position"))
        fields = ("name", "data_type", "is_key", "position", "description", "categories")
        assert [[getattr(c, f) for f in fields] for c in new_cols] == [
            [getattr(c, f) for f in fields] for c in src_cols
        ]
        low = Filter.objects.get(workflow=copy, name="Low scores")
        assert low.formula == LOW and low.selected_count == 2
        view = View.objects.get(workflow=copy, name="Low view")
        assert view.filter == low
        assert [Column.objects.get(pk=i).name for i in view.column_ids] == ["email", "score"]
        email = Action.objects.get(workflow=copy, name="Week 3 email")
        assert email.filter == low and email.subject == "Week 3"
        assert "{% if Passed %}" in email.text_content
        assert email.token_encrypted == ""
        assert [c.name for c in Condition.objects.filter(action=email)] == ["Passed", "Low"]
        assert Condition.objects.get(action=email, name="Passed").formula == PASSED
        survey_items = ActionColumn.objects.filter(action__workflow=copy, action__name="Check-in")
        assert [(i.column.name, i.condition.name, i.changes_allowed) for i in survey_items] == [
            ("comment", "Low", False)
        ]
        cells = RubricCell.objects.filter(action__workflow=copy).order_by("level")
        assert [(c.column.name, c.level, c.description, c.feedback) for c in cells] == [
            ("grade", 0, "Excellent", "Great"),
            ("grade", 2, "Poor", "Work"),
        ]
        schedule = Schedule.objects.get(workflow=copy)
        assert schedule.status == "paused"
        assert schedule.frequency == "0 3 * * *"
        assert "api_token" not in schedule.payload
    assert any("paused" in note for note in result.notes)


def test_chosen_actions_only(world, make_workflow):
    source = build_rich_workflow(world, make_workflow)
    with account_scope(world.account):
        chosen = [Action.objects.get(workflow=source, name="Rubric").pk]
    copy = do_import(world, export(world, source, action_ids=chosen), name="Only rubric").workflow
    with account_scope(world.account):
        assert list(Action.objects.filter(workflow=copy).values_list("name", flat=True)) == [
            "Rubric"
        ]
        assert Filter.objects.filter(workflow=copy).count() == 1  # filters come along


def test_the_name_defaults_to_the_exported_one_and_collisions_are_refused(world, make_workflow):
    source = build_rich_workflow(world, make_workflow, name="Stats 101")
    data = export(world, source)
    with pytest.raises(transfer.TransferError, match="exists already"):
        do_import(world, data, name="")
    with account_scope(world.account):
        assert Column.objects.filter(workflow__name="Stats 101").count() == 8


def test_an_empty_workflow_round_trips(world):
    from closedloop.feedback import services

    with account_scope(world.account):
        empty = services.workflow_create(account=world.account, actor=world.alice, name="Empty")
    copy = do_import(world, export(world, empty), name="Empty copy").workflow
    with account_scope(world.account):
        assert not Column.objects.filter(workflow=copy).exists()


def test_actions_export_and_import_into_another_workflow(world, make_workflow):
    source = build_rich_workflow(world, make_workflow)
    target = make_workflow(name="Target")
    from closedloop.feedback import columns

    with account_scope(world.account):
        columns.column_add(
            workflow=target, actor=world.alice, name="grade", data_type="string",
            categories=["A", "B", "C"],
        )  # fmt: skip
        ids = list(
            Action.objects.filter(workflow=source, name__in=["Week 3 email", "Rubric"]).values_list(
                "pk", flat=True
            )
        )
        data = transfer.actions_export(workflow=source, actor=world.alice, action_ids=ids)
        result = transfer.actions_import(workflow=target, actor=world.alice, data=data)
        assert sorted(a.name for a in result.actions) == ["Rubric", "Week 3 email"]
        assert Filter.objects.filter(workflow=target, name="Low scores").exists()
        assert Condition.objects.filter(action__workflow=target).count() == 2
        with pytest.raises(transfer.TransferError, match="exists already"):
            transfer.actions_import(workflow=target, actor=world.alice, data=data)
