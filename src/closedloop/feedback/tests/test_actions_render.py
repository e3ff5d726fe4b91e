"""Rendering: conditions decided in SQL (counts == messages), preview stepping, next
all-false, every action type creatable and previewable, rubric and reports."""

from __future__ import annotations

import json

import pytest

from closedloop.feedback import actions, filters, render, reports
from closedloop.feedback.models import Action, ActionType, Column, Condition, WorkflowLog
from closedloop.feedback.services import FeedbackError


def rule(field, operator, value=None, type_="string"):
    return {"id": field, "field": field, "type": type_, "operator": operator, "value": value}


def group(*rules, condition="AND"):
    return {"condition": condition, "not": False, "valid": True, "rules": list(rules)}


@pytest.fixture
def course(make_workflow, scoped):
    return make_workflow()


def email_action(workflow, actor, **kwargs):
    kwargs.setdefault("text_content", "<p>Hi {{ name }}</p>")
    kwargs.setdefault("subject", "Score {{ score }}")
    return actions.action_create(
        workflow=workflow,
        actor=actor,
        name=kwargs.pop("name", "Mail"),
        action_type="email",
        **kwargs,
    )


def test_condition_counts_equal_the_messages_showing_their_text_including_nulls(course, scoped):
    action = email_action(course, scoped.alice)
    # score is NULL for dan: every rule over score is UNKNOWN there, so false in text too
    formulas = {
        "Low": group(rule("score", "less", 50, "double")),
        "NotHigh": group(rule("score", "not_equal", 91.5, "double")),
        "Passed": group(rule("passed", "equal", True, "boolean")),
        "NotPassed": {**group(rule("passed", "equal", True, "boolean")), "not": True},
        "NameNotA": group(rule("name", "not_begins_with", "A")),
    }
    for name, formula in formulas.items():
        filters.condition_create(action=action, actor=scoped.alice, name=name, formula=formula)
    text = "".join(f"{{% if {n} %}}[{n}]{{% endif %}}" for n in formulas)
    actions.action_update(action=action, actor=scoped.alice, text_content=text)
    messages = list(render.iter_messages(action))
    assert len(messages) == 6 == render.count_messages(action)
    for condition in Condition.objects.filter(action=action):
        shown = sum(1 for m in messages if f"[{condition.name}]" in m.body)
        flagged = sum(1 for m in messages if m.conditions[condition.name])
        assert shown == flagged == condition.selected_count, condition.name
    dan = next(m for m in messages if m.recipient == "dan@example.org")
    assert not dan.conditions["Low"] and not dan.conditions["NotHigh"]
    assert not dan.conditions["Passed"] and not dan.conditions["NotPassed"]


def test_messages_follow_the_filter_subject_recipient_and_exclusions(course, scoped):
    passed = filters.filter_create(
        workflow=course,
        actor=scoped.alice,
        name="Passed",
        formula=group(rule("passed", "equal", True, "boolean")),
    )
    action = email_action(course, scoped.alice, filter=passed)
    messages = list(render.iter_messages(action, exclude={"EVE@example.org"}, batch=1))
    assert [m.recipient for m in messages] == ["ana@example.org", "chloe@example.org"]
    assert messages[0].subject == "Score 91.5"
    assert messages[0].body == "<p>Hi Ana</p>"
    assert messages[0].row_key == "ana@example.org"
    with_text = list(render.iter_messages(action, options={"with_text": True}))
    assert with_text[0].text == "Hi Ana"


def test_preview_steps_and_finds_the_next_row_where_every_condition_is_false(course, scoped):
    action = email_action(course, scoped.alice)
    filters.condition_create(
        action=action,
        actor=scoped.alice,
        name="Low",
        formula=group(rule("score", "less", 50, "double")),
    )
    filters.condition_create(
        action=action,
        actor=scoped.alice,
        name="Top",
        formula=group(rule("score", "greater", 90, "double")),
    )
    first = render.preview_row(action, 1)
    assert first["index"] == 1 and first["total"] == 6
    assert first["conditions"] == {"Low": False, "Top": True}
    # rows: ana 91.5 (Top), ben 48 (Low), chloe 75.25 (none), dan NULL (none) ...
    assert first["next_all_false"] == 3
    third = render.preview_row(action, 3)
    assert third["recipient"] == "chloe@example.org"
    assert third["next_all_false"] == 4  # dan: NULL score makes both conditions not TRUE
    last = render.preview_row(action, 99)
    assert last["index"] == 6
    assert last["next_all_false"] == 3  # wraps round
    assert render.preview_row(action, 0)["index"] == 1


def test_preview_reports_template_errors_instead_of_failing(course, scoped):
    action = email_action(course, scoped.alice)
    action.text_content = "{{ missing }}"
    result = render.preview_row(action, 1)
    assert "missing" in result["error"]


def test_every_action_type_can_be_created_validated_and_previewed(course, scoped):
    for kind in ActionType.values:
        action = actions.action_create(
            workflow=course, actor=scoped.alice, name=f"A {kind}", action_type=kind
        )
        assert (
            actions.validate(action) == []
            or kind == ActionType.EMAIL_REPORT
            or kind == ActionType.JSON_REPORT
        )
        if action.is_out:
            preview = render.preview_row(action, 1)
            assert preview["total"] >= 1, kind
    assert WorkflowLog.objects.filter(workflow=course, name="action_create").count() == len(
        ActionType.values
    )


def test_disabled_types_and_bad_input_are_refused_and_nothing_is_stored(course, scoped, settings):
    settings.DISABLED_ACTIONS = ["todo_list"]
    with pytest.raises(FeedbackError, match="disabled"):
        actions.action_create(
            workflow=course, actor=scoped.alice, name="T", action_type="todo_list"
        )
    with pytest.raises(FeedbackError) as caught:
        actions.action_create(
            workflow=course,
            actor=scoped.alice,
            name="M",
            action_type="email",
            text_content="{% if Nope %}x{% endif %}",
        )
    assert caught.value.errors[0]["column"] == "text_content"
    with pytest.raises(FeedbackError) as caught:
        actions.action_create(
            workflow=course, actor=scoped.alice, name="M", action_type="email", subject="{{ nope }}"
        )
    assert caught.value.errors[0]["column"] == "subject"
    with pytest.raises(FeedbackError):
        actions.action_create(
            workflow=course, actor=scoped.alice, name="J", action_type="json", target_url="ftp://x"
        )
    with pytest.raises(FeedbackError):
        actions.action_create(
            workflow=course,
            actor=scoped.alice,
            name="R",
            action_type="email_report",
            options={"email_to": "not-an-address"},
        )
    assert not Action.objects.filter(workflow=course).exists()


def test_updates_bump_the_version_and_check_conflicts(course, scoped):
    from closedloop.feedback.services import ConflictError

    action = email_action(course, scoped.alice)
    course.refresh_from_db()
    version = course.version
    actions.action_update(
        action=action, actor=scoped.alice, expected_version=version, text_content="<p>New</p>"
    )
    course.refresh_from_db()
    assert course.version == version + 1
    with pytest.raises(ConflictError):
        actions.action_update(
            action=action, actor=scoped.alice, expected_version=version, text_content="<p>x</p>"
        )
    action.refresh_from_db()
    assert action.text_content == "<p>New</p>"


def test_json_action_stores_the_token_encrypted_and_renders_json(course, scoped):
    from closedloop.core.crypto import decrypt

    action = actions.action_create(
        workflow=course,
        actor=scoped.alice,
        name="J",
        action_type="json",
        text_content='{"who": {{ email }}, "score": {{ score }}, "ok": {{ passed }}}',
        target_url="https://example.org/hook",
        token="s3cret",
    )
    assert action.token_encrypted and "s3cret" not in action.token_encrypted
    assert decrypt(action.token_encrypted) == "s3cret"
    bodies = [json.loads(m.body) for m in render.iter_messages(action)]
    assert bodies[0] == {"who": "ana@example.org", "score": 91.5, "ok": True}
    assert bodies[3]["score"] is None


def test_clone_copies_conditions_and_questions(course, scoped):
    action = email_action(course, scoped.alice)
    filters.condition_create(
        action=action,
        actor=scoped.alice,
        name="Low",
        formula=group(rule("score", "less", 50, "double")),
    )
    actions.action_update(
        action=action, actor=scoped.alice, text_content="{% if Low %}low{% endif %}"
    )
    copy = actions.action_clone(action=action, actor=scoped.alice, name="Copy")
    assert copy.pk != action.pk and copy.public_id != action.public_id
    assert list(copy.conditions.values_list("name", flat=True)) == ["Low"]
    assert [m.body for m in render.iter_messages(copy)] == [
        m.body for m in render.iter_messages(action)
    ]
    with pytest.raises(FeedbackError):
        actions.action_clone(action=action, actor=scoped.alice, name="Copy")


def test_rubric_feedback_follows_each_learners_level(make_workflow, scoped):
    workflow = make_workflow(
        data={"email": ["a@x.org", "b@x.org", "c@x.org"], "Essay": ["good", "poor", None]},
    )
    from closedloop.feedback import columns as column_services

    essay = Column.objects.get(workflow=workflow, name="Essay")
    column_services.column_update(column=essay, actor=scoped.alice, categories=["poor", "good"])
    action = actions.action_create(
        workflow=workflow,
        actor=scoped.alice,
        name="R",
        action_type="rubric",
        text_content="<p>Feedback</p>{% rubric %}",
    )
    actions.action_set_columns(action=action, actor=scoped.alice, items=[{"column": "Essay"}])
    actions.rubric_set_cells(
        action=action,
        actor=scoped.alice,
        cells=[
            {"column": "Essay", "level": 0, "description": "Poor", "feedback": "Rewrite <it>"},
            {"column": "Essay", "level": 1, "description": "Good", "feedback": "Well argued"},
        ],
    )
    bodies = {m.recipient: m.body for m in render.iter_messages(action)}
    assert "Well argued" in bodies["a@x.org"]
    assert "Rewrite &lt;it&gt;" in bodies["b@x.org"]
    assert "Essay" not in bodies["c@x.org"]
    with pytest.raises(FeedbackError):
        actions.rubric_set_cells(
            action=action, actor=scoped.alice, cells=[{"column": "Essay", "level": 5}]
        )
    with pytest.raises(FeedbackError, match="categories"):
        actions.action_set_columns(action=action, actor=scoped.alice, items=[{"column": "email"}])


def test_reports_are_one_message_with_tables_or_value_lists(course, scoped):
    passed = filters.filter_create(
        workflow=course,
        actor=scoped.alice,
        name="Passed",
        formula=group(rule("passed", "equal", True, "boolean")),
    )
    email = actions.action_create(
        workflow=course,
        actor=scoped.alice,
        name="ER",
        action_type="email_report",
        filter=passed,
        text_content='<p>Passed</p>{% report "name" "score" %}',
        subject="Report",
        options={"email_to": "boss@example.org"},
    )
    messages = list(render.iter_messages(email))
    assert len(messages) == 1 and render.count_messages(email) == 1
    assert messages[0].recipient == "boss@example.org"
    assert messages[0].body.count("<tr>") == 4  # header + 3 passed learners
    assert "<td>Chloé</td><td>75.25</td>" in messages[0].body
    as_json = actions.action_create(
        workflow=course,
        actor=scoped.alice,
        name="JR",
        action_type="json_report",
        filter=passed,
        text_content='{"data": {% report "name" "score" %}}',
        target_url="https://example.org/r",
    )
    body = json.loads(next(render.iter_messages(as_json)).body)
    assert body == {"data": {"name": ["Ana", "Chloé", "Eve"], "score": [91.5, 75.25, 62.0]}}


def test_view_csv_and_zip_names(course, scoped):
    import io
    import zipfile

    view = filters.view_create(
        workflow=course,
        actor=scoped.alice,
        name="V",
        column_ids=list(
            Column.objects.filter(workflow=course, name__in=["email", "score"]).values_list(
                "pk", flat=True
            )
        ),
    )
    data = reports.view_csv(view).decode("utf-8-sig")
    assert data.splitlines()[0] == "email,score"
    assert len(data.splitlines()) == 7
    action = actions.action_create(
        workflow=course,
        actor=scoped.alice,
        name="P",
        action_type="personalized_text",
        text_content="<p>{{ name }}</p>",
    )
    archive = zipfile.ZipFile(io.BytesIO(reports.personalized_zip(action, file_column="email")))
    assert "ana@example.org_feedback.html" in archive.namelist()
    moodle = zipfile.ZipFile(
        io.BytesIO(
            reports.personalized_zip(
                action,
                file_column="email",
                moodle=True,
                fullname_column="name",
                participant_column="attempts",
            )
        )
    )
    assert "Ana_1_assignsubmission_file_feedback.html" in moodle.namelist()
    assert "<p>Ana</p>" in moodle.read("Ana_1_assignsubmission_file_feedback.html").decode()
