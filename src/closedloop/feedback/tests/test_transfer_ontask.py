"""OnTask exports (gzip-compressed JSON): columns, views, actions with conditions and
filters (old and new layouts), rubric cells; data from a CSV; the embedded pickle is
never executed."""

from __future__ import annotations

import base64
import gzip
import json
import pickle
from pathlib import Path

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
    View,
    Workflow,
)

pytestmark = pytest.mark.django_db


class Booby:
    """Unpickling this would create ``path`` (``open(path, "w")``)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def rule(field: str, op: str, value, kind: str = "double") -> dict:
    return {
        "id": field,
        "field": field,
        "type": kind,
        "input": "number",
        "operator": op,
        "value": value,
    }


def group(*rules: dict) -> dict:
    return {"condition": "AND", "not": False, "valid": True, "rules": list(rules)}


def ontask_workflow(data_frame: str | None = None) -> dict:
    column = {"description_text": "", "in_viz": True, "active_from": None, "active_to": None}
    return {
        "version": "6.1",
        "name": "OnTask course",
        "description_text": "From OnTask",
        "attributes": {"course": "BIO101"},
        "nrows": 3,
        "ncols": 4,
        "query_builder_ops": {},
        "columns": [
            {
                **column,
                "name": "email",
                "data_type": "string",
                "is_key": True,
                "position": 1,
                "categories": [],
            },
            {
                **column,
                "name": "Total",
                "data_type": "double",
                "is_key": False,
                "position": 2,
                "categories": [],
            },
            {
                **column,
                "name": "Level",
                "data_type": "string",
                "is_key": False,
                "position": 3,
                "categories": ["High", "Low"],
            },
            {
                **column,
                "name": "Comment",
                "data_type": "string",
                "is_key": False,
                "position": 4,
                "categories": [],
            },
        ],  # fmt: skip
        "views": [
            {
                "name": "Strugglers",
                "description_text": "",
                "columns": [{"name": "email"}, {"name": "Total"}],
                "formula": group(rule("Total", "less", "50")),
            },
        ],  # fmt: skip
        "actions": [
            {  # before OnTask 7: the filter is among the conditions
                "name": "Feedback week 1",
                "description_text": "",
                "is_out": True,
                "serve_enabled": False,
                "active_from": None,
                "active_to": None,
                "content": "<p>Dear {{ email }}</p>{% if Good %}<p>Great work</p>{% endif %}",
                "target_url": "",
                "conditions": [
                    {
                        "name": "Good",
                        "description_text": "",
                        "formula": group(rule("Total", "greater", "70")),
                        "is_filter": False,
                        "n_rows_selected": 1,
                    },
                    {
                        "name": "filter",
                        "description_text": "",
                        "formula": group(rule("Total", "is_not_null", None)),
                        "is_filter": True,
                        "n_rows_selected": 3,
                    },
                ],
                "columns": [{"name": "email"}, {"name": "Total"}],
            },
            {  # OnTask 7: filter separate, _formula, column/condition pairs
                "name": "Survey",
                "description_text": "Check-in",
                "action_type": "survey",
                "serve_enabled": True,
                "active_from": "2024-01-01T00:00:00Z",
                "active_to": None,
                "text_content": "<p>Tell us</p>",
                "target_url": "",
                "shuffle": True,
                "filter": [
                    {"description_text": "", "_formula": group(rule("Total", "less", "90"))}
                ],
                "conditions": [
                    {
                        "name": "Low",
                        "description_text": "",
                        "_formula": group(rule("Total", "less", "50")),
                    }
                ],
                "column_condition_pair": [
                    {
                        "column": {"name": "Comment"},
                        "condition": {"name": "Low"},
                        "changes_allowed": False,
                    }
                ],
            },
            {
                "name": "Rubric",
                "description_text": "",
                "action_type": "rubric_text",
                "serve_enabled": False,
                "active_from": None,
                "active_to": None,
                "text_content": "<p>Rubric</p>",
                "target_url": "",
                "filter": [],
                "conditions": [],
                "column_condition_pair": [{"column": {"name": "Level"}, "condition": None}],
                "rubric_cells": [
                    {
                        "column": {"name": "Level"},
                        "loa_position": 0,
                        "description_text": "High",
                        "feedback_text": "Keep going",
                    },
                    {
                        "column": {"name": "Level"},
                        "loa_position": 1,
                        "description_text": "Low",
                        "feedback_text": "Ask for help",
                    },
                ],
            },
        ],  # fmt: skip
        "data_frame": data_frame,
    }


CSV = b"email,Total,Level,Comment\nana@example.org,91,High,\nben@example.org,40,Low,late\ncho@example.org,65,High,\n"


def gz(payload) -> bytes:
    return gzip.compress(json.dumps(payload).encode())


def malicious_pickle(path: Path) -> str:
    return base64.b64encode(pickle.dumps(Booby(str(path)))).decode()


def do_import(world, data: bytes, csv: bytes | None = None, name: str = "From OnTask"):
    with account_scope(world.account):
        return transfer.workflow_import(
            account=world.account, actor=world.alice, name=name, data=data,
            file_name="course.gz", csv_data=csv, csv_name="course.csv",
        )  # fmt: skip


def test_a_pickle_without_csv_is_refused_and_never_executed(world, tmp_path):
    marker = tmp_path / "pwned"
    data = gz(ontask_workflow(malicious_pickle(marker)))
    with pytest.raises(transfer.TransferError) as info:
        do_import(world, data)
    message = str(info.value)
    assert message.startswith("course.gz: data_frame:")
    assert "pickle" in message and "never opens pickles" in message
    assert "download it as CSV" in message
    assert not marker.exists()
    with account_scope(world.account):
        assert not Workflow.objects.filter(name="From OnTask").exists()


def test_with_a_csv_the_pickle_is_ignored_and_never_executed(world, tmp_path):
    marker = tmp_path / "pwned"
    result = do_import(world, gz(ontask_workflow(malicious_pickle(marker))), csv=CSV)
    assert not marker.exists()
    assert any("never opened" in note for note in result.notes)
    workflow = result.workflow
    with account_scope(world.account):
        assert workflow.description == "From OnTask"
        assert workflow.attributes == {"course": "BIO101"}
        columns = {c.name: c for c in Column.objects.filter(workflow=workflow)}
        assert {n: c.data_type for n, c in columns.items()} == {
            "email": "string", "Total": "double", "Level": "string", "Comment": "string",
        }  # fmt: skip
        assert columns["email"].is_key and columns["Level"].categories == ["High", "Low"]
        frame = table.read_frame(workflow)
        assert frame["Total"].to_list() == [91.0, 40.0, 65.0]
        assert frame["Comment"].to_list() == [None, "late", None]

        view = View.objects.get(workflow=workflow, name="Strugglers")
        assert view.filter is not None and view.filter.selected_count == 1

        week1 = Action.objects.get(workflow=workflow, name="Feedback week 1")
        assert week1.action_type == "email"
        assert week1.filter is not None and week1.filter.selected_count == 3
        assert list(Condition.objects.filter(action=week1).values_list("name", flat=True)) == [
            "Good"
        ]
        assert "{% if Good %}" in week1.text_content

        survey = Action.objects.get(workflow=workflow, name="Survey")
        assert survey.action_type == "survey" and survey.shuffle and survey.serve_enabled
        assert survey.filter.formula["rules"][0]["operator"] == "less"
        item = ActionColumn.objects.get(action=survey)
        assert (item.column.name, item.condition.name, item.changes_allowed) == (
            "Comment", "Low", False,
        )  # fmt: skip

        rubric = Action.objects.get(workflow=workflow, name="Rubric")
        assert rubric.action_type == "rubric"
        cells = RubricCell.objects.filter(action=rubric).order_by("level")
        assert [(c.level, c.feedback) for c in cells] == [(0, "Keep going"), (1, "Ask for help")]
        assert Filter.objects.filter(workflow=workflow).count() == 3


def test_an_export_without_data_creates_empty_columns(world):
    result = do_import(world, gz(ontask_workflow(None)))
    with account_scope(world.account):
        assert Column.objects.filter(workflow=result.workflow).count() == 4
        assert result.workflow.nrows == 0


def test_the_csv_must_hold_the_declared_columns(world):
    csv = b"email,Total,Level\nana@example.org,91,High\n"
    with pytest.raises(transfer.TransferError, match="course.csv: Comment: is a column"):
        do_import(world, gz(ontask_workflow("gASV")), csv=csv)


def test_extra_csv_columns_are_added(world):
    csv = CSV.replace(b"Comment\n", b"Comment,Forum\n").replace(b",late\n", b",late,3\n")
    csv = csv.replace(b"High,\n", b"High,,1\n")
    result = do_import(world, gz(ontask_workflow(None)), csv=csv)
    assert any("Forum" in note for note in result.notes)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda w: w["actions"][0]["conditions"][0]["formula"]["rules"][0].update(field="Ghost"),
         "course.gz: action “Feedback week 1”: condition “Good”"),
        (lambda w: w["views"][0]["columns"].append({"name": "Ghost"}),
         "view “Strugglers”: uses the unknown column “Ghost”"),
        (lambda w: w["actions"][2]["rubric_cells"][0].update(loa_position=5),
         "rubric level 5 of “Level” does not exist"),
        (lambda w: w["actions"][1]["column_condition_pair"][0].update(column={"name": "Ghost"}),
         "action “Survey”: uses the unknown column “Ghost”"),
        (lambda w: w["columns"][1].update(data_type="complex"), "columns[1] “Total”.data_type"),
    ],
)  # fmt: skip
def test_unknown_references_are_named(world, mutate, fragment):
    payload = ontask_workflow(None)
    mutate(payload)
    with pytest.raises(transfer.TransferError) as info:
        do_import(world, gz(payload), csv=CSV)
    assert fragment in str(info.value)
    with account_scope(world.account):
        assert not Workflow.objects.filter(name="From OnTask").exists()


def test_broken_gzip_and_json_are_refused(world):
    with pytest.raises(transfer.TransferError, match="not a valid gzip file"):
        do_import(world, b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(transfer.TransferError, match="course.gz: is not valid JSON"):
        do_import(world, gzip.compress(b"{nope"))
    with pytest.raises(transfer.TransferError, match="not an OnTask workflow export"):
        do_import(world, gz([1, 2]))


def test_a_gzip_bomb_is_refused(world, settings):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 1_000_000
    bomb = gzip.compress(b" " * 30_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(transfer.TransferError, match="larger than"):
        do_import(world, bomb)


def test_ontask_action_export_into_an_existing_workflow(world, make_workflow):
    workflow = make_workflow(data={"email": ["a@x.org"], "Total": [3.0], "Comment": ["x"]})
    actions = [ontask_workflow()["actions"][1]]
    data = gz(actions)
    with account_scope(world.account):
        result = transfer.actions_import(
            workflow=workflow, actor=world.alice, data=data, file_name="a.gz"
        )
        assert [a.name for a in result.actions] == ["Survey"]
        bad = [dict(actions[0], name="Other", conditions=[
            {"name": "Low", "_formula": group(rule("Ghost", "less", "1"))}])]  # fmt: skip
        with pytest.raises(transfer.TransferError, match="a.gz: action “Other”: condition “Low”"):
            transfer.actions_import(
                workflow=workflow, actor=world.alice, data=gz(bad), file_name="a.gz"
            )
        assert not Action.objects.filter(workflow=workflow, name="Other").exists()
