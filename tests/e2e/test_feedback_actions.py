"""In Chromium: the action editor's live preview and insert buttons, and a survey served to
a learner on a phone."""

from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.core.testing.factories import UserFactory
from closedloop.feedback import actions, filters
from closedloop.feedback.tests import conftest as feedback_fixtures

make_workflow = feedback_fixtures.make_workflow

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def low():
    return {"condition": "AND", "not": False, "valid": True,
            "rules": [{"id": "score", "field": "score", "type": "double", "operator": "less", "value": 50}]}  # fmt: skip


def test_the_editor_previews_as_you_type_and_steps_through_rows(
    world, make_workflow, new_page, log_in, shot
):
    workflow = make_workflow()
    with account_scope(world.account):
        action = actions.action_create(
            workflow=workflow,
            actor=world.alice,
            name="Midterm feedback",
            action_type="email",
            subject="Your midterm, {{ name }}",
            text_content="<p>Dear {{ name }},</p>",
        )
        filters.condition_create(action=action, actor=world.alice, name="Low score", formula=low())
        actions.action_update(
            action=action,
            actor=world.alice,
            text_content="<p>Dear {{ name }},</p>\n{% if Low score %}<p>Let us meet this week.</p>{% else %}<p>Well done.</p>{% endif %}",
        )
    page = new_page()
    log_in(page, world.alice.email, world.password)
    page.goto(f"/feedback/{workflow.pk}/actions/{action.pk}/")
    body = page.locator('[data-testid="preview-body"]')
    body.wait_for()
    assert "Dear Ana" in body.inner_text() and "Well done" in body.inner_text()
    page.click('[data-testid="preview-next"]')
    expect(body).to_contain_text("Ben")
    assert "Let us meet" in body.inner_text()
    # insert a column at the cursor: the preview follows without saving
    text = page.locator('[data-testid="text-content"]')
    text.click()
    page.keyboard.press("Control+End")
    page.select_option('[data-testid="insert-column-select"]', "attempts")
    page.click('[data-testid="insert-column"]')
    assert "{{ attempts }}" in text.input_value()
    expect(body).to_contain_text("Let us meet this week.3")
    shot(page, "feedback-action-editor")
    page.set_viewport_size(PHONE)
    shot(page, "feedback-action-editor-phone")


def test_a_learner_answers_a_survey_on_a_phone(world, make_workflow, new_page, log_in, shot):
    workflow = make_workflow()
    with scopes_disabled():
        learner = UserFactory(email="ben@example.org", full_name="Ben")
    with account_scope(world.account):
        from closedloop.feedback import columns as column_services

        column_services.column_add(workflow=workflow, actor=world.alice, name="How do you feel?",
                                   data_type="string", categories=["great", "ok", "lost"])  # fmt: skip
        column_services.column_add(
            workflow=workflow, actor=world.alice, name="Hours studied", data_type="integer"
        )
        column_services.column_add(
            workflow=workflow, actor=world.alice, name="Read the notes", data_type="boolean"
        )
        survey = actions.action_create(
            workflow=workflow,
            actor=world.alice,
            name="Week 5 check-in",
            action_type="survey",
            serve_enabled=True,
            text_content="<p>Hi {{ name }}, three quick questions.</p>",
        )
        actions.action_set_columns(action=survey, actor=world.alice, items=[
            {"column": "How do you feel?"}, {"column": "Hours studied"}, {"column": "Read the notes"},
        ])  # fmt: skip
    page = new_page(viewport=PHONE)
    log_in(page, learner.email, world.password)
    page.goto(f"/feedback/serve/{survey.public_id}/")
    page.locator('[data-testid="served-survey"]').wait_for()
    assert "Hi Ben" in page.inner_text("body")
    shot(page, "feedback-survey-phone")
    page.select_option('[data-column="How do you feel?"] select', "great")
    page.fill('[data-column="Hours studied"] input', "4")
    page.check('[data-column="Read the notes"] input')
    page.click('[data-testid="submit-survey"]')
    page.wait_for_selector(".alert-success")
    assert page.locator('[data-column="Hours studied"] input').input_value() == "4"
    shot(page, "feedback-survey-phone-saved")
