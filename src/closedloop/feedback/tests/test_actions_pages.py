"""Action pages: list, create, editor, live preview, conditions, questions, rubric, clone,
delete, test mail, ZIP, data entry — and who may see or change them."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core import mail
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import actions, filters
from closedloop.feedback.models import Action, ActionColumn, Condition, ShareRole, WorkflowShare


def low_score():
    return {
        "condition": "AND",
        "not": False,
        "valid": True,
        "rules": [
            {"id": "score", "field": "score", "type": "double", "operator": "less", "value": 50}
        ],
    }


@pytest.fixture
def setup(make_workflow, world):
    workflow = make_workflow()
    with account_scope(world.account):
        action = actions.action_create(
            workflow=workflow,
            actor=world.alice,
            name="Mail",
            action_type="email",
            text_content="<p>Hi {{ name }}</p>",
            subject="Hello {{ name }}",
        )
        filters.condition_create(action=action, actor=world.alice, name="Low", formula=low_score())
    return workflow, action


def url(name, *args):
    return reverse(f"feedback:{name}", args=args)


def test_list_groups_actions_and_keeps_queries_flat(
    setup, world, client_for, django_assert_max_num_queries
):
    workflow, action = setup
    with account_scope(world.account):
        for i in range(5):
            actions.action_create(
                workflow=workflow, actor=world.alice, name=f"S{i}", action_type="survey"
            )
    client = client_for(world.alice)
    with django_assert_max_num_queries(25):
        response = client.get(url("action_list", workflow.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="action-row"') == 6
    assert "Mail" in body and "Never run" in body


def test_create_edit_and_refuse_a_broken_template(setup, world, client_for):
    workflow, _action = setup
    client = client_for(world.alice)
    response = client.post(
        url("action_create", workflow.pk), {"name": "Page", "action_type": "personalized_text"}
    )
    assert response.status_code == 302
    with account_scope(world.account):
        created = Action.objects.get(workflow=workflow, name="Page")
    edit = url("action_edit", workflow.pk, created.pk)
    assert response["Location"] == edit
    page = client.get(edit)
    assert page.status_code == 200 and 'data-testid="preview"' in page.content.decode()
    workflow.refresh_from_db()
    bad = client.post(
        edit,
        {
            "name": "Page",
            "text_content": "{{ settings.SECRET_KEY }}",
            "text_format": "html",
            "version": workflow.version,
        },
    )
    assert bad.status_code == 400
    assert "settings.SECRET_KEY" in bad.content.decode()
    with account_scope(world.account):
        created.refresh_from_db()
    assert "SECRET" not in created.text_content
    good = client.post(
        edit,
        {
            "name": "Page",
            "text_content": "<p>{{ email }}</p>",
            "text_format": "html",
            "version": workflow.version,
        },
    )
    assert good.status_code == 302
    # a stale version is a conflict, nothing is saved
    stale = client.post(
        edit,
        {
            "name": "Page",
            "text_content": "<p>old</p>",
            "text_format": "html",
            "version": workflow.version,
        },
    )
    assert stale.status_code == 400 and 'data-testid="conflict"' in stale.content.decode()
    with account_scope(world.account):
        created.refresh_from_db()
    assert created.text_content == "<p>{{ email }}</p>"


def test_live_preview_steps_rows_and_previews_unsaved_text(setup, world, client_for):
    workflow, action = setup
    client = client_for(world.alice)
    preview = url("action_preview", workflow.pk, action.pk)
    first = client.post(
        preview,
        {
            "row": 1,
            "text_content": "<p>{% if Low %}LOW{% endif %} {{ name }}</p>",
            "subject": "S {{ email }}",
            "text_format": "html",
        },
    )
    body = first.content.decode()
    assert "Message 1 of 6" in body and " Ana</p>" in body and "S ana@example.org" in body
    assert 'data-testid="preview-all-false"' in body
    second = client.post(
        preview, {"row": 2, "text_content": "<p>{% if Low %}LOW{% endif %} {{ name }}</p>"}
    )
    assert "LOW Ben" in second.content.decode()
    broken = client.post(preview, {"text_content": "{% if Nope %}"})
    assert 'data-testid="preview-error"' in broken.content.decode()
    saved = client.get(preview + "?row=3")
    assert "Hi Chloé" in saved.content.decode()
    with account_scope(world.account):
        action.refresh_from_db()
    assert action.text_content == "<p>Hi {{ name }}</p>"  # previews never save


def test_conditions_are_created_edited_counted_and_deleted(setup, world, client_for):
    workflow, action = setup
    client = client_for(world.alice)
    page = client.get(url("action_condition_create", workflow.pk, action.pk))
    assert page.status_code == 200 and "data-cl-builder" in page.content.decode()
    formula = {
        "condition": "AND",
        "not": False,
        "valid": True,
        "rules": [
            {
                "id": "passed",
                "field": "passed",
                "type": "boolean",
                "operator": "equal",
                "value": True,
            }
        ],
    }
    response = client.post(
        url("action_condition_create", workflow.pk, action.pk),
        {"name": "Passed", "formula": json.dumps(formula)},
    )
    assert response.status_code == 302
    with account_scope(world.account):
        condition = Condition.objects.get(action=action, name="Passed")
    assert condition.selected_count == 3
    count = client.post(
        url("action_condition_count", workflow.pk, action.pk),
        data=json.dumps({"formula": low_score()}),
        content_type="application/json",
    )
    assert count.json() == {"count": 2}
    bad = client.post(
        url("action_condition_edit", workflow.pk, action.pk, condition.pk),
        {"name": "Passed", "formula": "{not json"},
    )
    assert bad.status_code == 400
    editor = client.get(url("action_edit", workflow.pk, action.pk)).content.decode()
    assert editor.count('data-testid="condition-row"') == 2
    client.post(url("action_condition_delete", workflow.pk, action.pk, condition.pk))
    with account_scope(world.account):
        assert not Condition.objects.filter(pk=condition.pk).exists()


def test_survey_questions_and_rubric_editor(make_workflow, world, client_for):
    workflow = make_workflow(
        data={"email": ["a@x.org", "b@x.org"], "Essay": ["good", None], "Mood": ["ok", None]}
    )
    with account_scope(world.account):
        from closedloop.feedback import columns as column_services
        from closedloop.feedback.models import Column

        essay = Column.objects.get(workflow=workflow, name="Essay")
        column_services.column_update(column=essay, actor=world.alice, categories=["poor", "good"])
        survey = actions.action_create(
            workflow=workflow, actor=world.alice, name="S", action_type="survey"
        )
        rubric = actions.action_create(
            workflow=workflow, actor=world.alice, name="R", action_type="rubric"
        )
        mood = Column.objects.get(workflow=workflow, name="Mood")
    client = client_for(world.alice)
    page = client.get(url("action_edit", workflow.pk, survey.pk)).content.decode()
    assert page.count('data-testid="question-row"') == 2  # the key column is not offered
    client.post(
        url("action_questions", workflow.pk, survey.pk),
        {
            "q_column": [essay.pk, mood.pk],
            f"q_use_{mood.pk}": "1",
            f"q_position_{mood.pk}": "1",
            f"q_use_{essay.pk}": "1",
            f"q_position_{essay.pk}": "2",
            f"q_changes_{essay.pk}": "1",
        },
    )
    with account_scope(world.account):
        rows = list(ActionColumn.objects.filter(action=survey).order_by("position"))
    assert [(r.column.name, r.changes_allowed) for r in rows] == [("Mood", False), ("Essay", True)]
    client.post(
        url("action_questions", workflow.pk, rubric.pk),
        {"q_column": [essay.pk], f"q_use_{essay.pk}": "1"},
    )
    page = client.get(url("action_edit", workflow.pk, rubric.pk)).content.decode()
    assert page.count('data-testid="rubric-feedback"') == 2
    client.post(
        url("action_rubric", workflow.pk, rubric.pk),
        {
            f"cell_{essay.pk}_0_feedback": "Try again",
            f"cell_{essay.pk}_1_feedback": "Great essay",
        },
    )
    preview = client.get(url("action_preview", workflow.pk, rubric.pk)).content.decode()
    assert "Great essay" in preview


def test_clone_delete_test_mail_and_zip(setup, world, client_for, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    workflow, action = setup
    client = client_for(world.alice)
    response = client.post(url("action_send_test", workflow.pk, action.pk))
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["alice@example.org"] and sent.subject == "[Test] Hello Ana"
    assert sent.alternatives[0][0] == "<p>Hi Ana</p>"
    zipped = client.post(
        url("action_zip", workflow.pk, action.pk),
        {"file_column": "email", "file_suffix": "fb.html"},
    )
    assert zipped["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    assert sorted(names)[0] == "ana@example.org_fb.html" and len(names) == 6
    bad_zip = client.post(
        url("action_zip", workflow.pk, action.pk), {"moodle": "1", "fullname_column": "nope"}
    )
    assert bad_zip.status_code == 400
    cloned = client.post(url("action_clone", workflow.pk, action.pk))
    assert cloned.status_code == 302
    with account_scope(world.account):
        copy = Action.objects.get(workflow=workflow, name="Copy of Mail")
    assert client.get(url("action_delete", workflow.pk, copy.pk)).status_code == 200
    client.post(url("action_delete", workflow.pk, copy.pk))
    with account_scope(world.account):
        assert not Action.objects.filter(pk=copy.pk).exists()


def test_outsiders_get_404_and_viewers_403_on_writes(setup, world, client_for):
    workflow, action = setup
    pages = [
        url("action_list", workflow.pk),
        url("action_edit", workflow.pk, action.pk),
        url("action_preview", workflow.pk, action.pk),
        url("action_zip", workflow.pk, action.pk),
        url("action_condition_create", workflow.pk, action.pk),
    ]
    writes = [
        url("action_create", workflow.pk),
        url("action_edit", workflow.pk, action.pk),
        url("action_clone", workflow.pk, action.pk),
        url("action_delete", workflow.pk, action.pk),
        url("action_send_test", workflow.pk, action.pk),
        url("action_questions", workflow.pk, action.pk),
        url("action_condition_create", workflow.pk, action.pk),
    ]
    charlie = client_for(world.charlie)
    for page in pages:
        assert charlie.get(page).status_code == 404, page
    bob = client_for(world.bob)  # a member of the account, but the workflow is not shared
    for page in pages:
        assert bob.get(page).status_code == 404, page
    with account_scope(world.account):
        WorkflowShare.objects.create(
            account=world.account, workflow=workflow, user=world.bob, role=ShareRole.VIEWER
        )
    assert bob.get(url("action_edit", workflow.pk, action.pk)).status_code == 200
    for page in writes:
        assert bob.post(page, {"name": "x", "action_type": "email"}).status_code == 403, page
    with account_scope(world.account):
        assert Action.objects.filter(workflow=workflow).count() == 1
        WorkflowShare.objects.filter(user=world.bob).update(role=ShareRole.EDITOR)
    assert bob.post(url("action_clone", workflow.pk, action.pk)).status_code == 302
    # another workflow's action id is not found through this workflow
    other = charlie.get(url("action_edit", workflow.pk + 1000, action.pk))
    assert other.status_code == 404
