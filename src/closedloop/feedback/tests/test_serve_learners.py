"""Served actions: a logged-in learner (no membership needed) sees only their row, inside the
active window; surveys show the questions their conditions allow, write answers through
the row services, respect changes_allowed and shuffle; TODO lists; instructor data entry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.core.testing.factories import UserFactory
from closedloop.feedback import actions, filters, table
from closedloop.feedback.models import Column, WorkflowLog


def passed_rule():
    return {
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


@pytest.fixture
def learner(db):
    with scopes_disabled():
        return UserFactory(email="Ben@Example.org", full_name="Ben Learner")


@pytest.fixture
def course(make_workflow):
    data = {
        "email": ["ana@example.org", "ben@example.org", "chloe@example.org"],
        "name": ["Ana", "Ben", "Chloé"],
        "passed": [True, False, True],
        "Feeling": [None, None, "fine"],
        "Hours": [None, 3, None],
        "Done reading": [False, False, True],
    }
    return make_workflow(
        data=data, types={"passed": "boolean", "Hours": "integer", "Done reading": "boolean"}
    )


def serve_url(action):
    return reverse("feedback:serve", args=[action.public_id])


def values_of(workflow, email):
    with account_scope(workflow.account_id):
        columns = list(Column.objects.filter(workflow=workflow))
        rows = table.fetch_rows(workflow, columns, where="c1 = %s", params=[email])
    return rows[0]


def test_a_learner_without_membership_sees_only_their_personalized_text(
    course, world, learner, client_for
):
    with account_scope(world.account):
        action = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Page",
            action_type="personalized_text",
            text_content="<p>Hi {{ name }}</p>",
            serve_enabled=True,
        )
    client = client_for(learner)
    response = client.get(serve_url(action))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hi Ben" in body and "Ana" not in body and "Chloé" not in body


def test_not_served_unknown_or_other_learners_get_a_clear_404(course, world, learner, client_for):
    with account_scope(world.account):
        action = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Page",
            action_type="personalized_text",
            text_content="<p>Hi {{ name }}</p>",
        )
    client = client_for(learner)
    assert client.get(serve_url(action)).status_code == 404  # serving is off
    with account_scope(world.account):
        actions.action_update(action=action, actor=world.alice, serve_enabled=True)
    stranger = client_for(world.charlie)  # another account's admin, no row here
    response = stranger.get(serve_url(action))
    assert response.status_code == 404
    assert 'data-testid="serve-message"' in response.content.decode()
    assert "Ana" not in response.content.decode()
    anonymous = client_for(learner)
    anonymous.logout()
    assert anonymous.get(serve_url(action)).status_code == 302  # to the login page


def test_outside_the_active_window_shows_a_message(course, world, learner, client_for):
    now = timezone.now()
    with account_scope(world.account):
        action = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Page",
            action_type="personalized_text",
            serve_enabled=True,
            active_from=now + dt.timedelta(days=1),
            active_to=now + dt.timedelta(days=2),
        )
    response = client_for(learner).get(serve_url(action))
    assert response.status_code == 200
    assert 'data-testid="serve-message"' in response.content.decode()
    assert "Ben" not in response.content.decode().split('data-testid="serve-message"')[1]


def test_survey_shows_allowed_questions_and_writes_answers(course, world, learner, client_for):
    with account_scope(world.account):
        survey = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Survey",
            action_type="survey",
            serve_enabled=True,
        )
        passed = filters.condition_create(
            action=survey, actor=world.alice, name="Passed", formula=passed_rule()
        )
        actions.action_set_columns(
            action=survey,
            actor=world.alice,
            items=[
                {"column": "Feeling"},
                {"column": "Hours", "changes_allowed": False},
                {"column": "name", "condition": passed.name},
            ],
        )
    client = client_for(learner)
    page = client.get(serve_url(survey)).content.decode()
    assert page.count('data-testid="question"') == 2  # Ben did not pass: no "name" question
    assert 'data-column="name"' not in page
    hours = page.split('data-column="Hours"')[1].split('data-testid="question"')[0]
    assert " disabled" in hours and "cannot be changed" in hours  # answered and locked
    response = client.post(
        serve_url(survey),
        {
            f"q{_col(course, 'Feeling').pk}": "happy",
            f"q{_col(course, 'Hours').pk}": "99",
            f"q{_col(course, 'name').pk}": "Hacker",
        },
    )
    assert response.status_code == 302
    row = values_of(course, "ben@example.org")
    assert row["Feeling"] == "happy"
    assert row["Hours"] == 3  # changes not allowed
    assert row["name"] == "Ben"  # not shown to Ben, so not written
    assert values_of(course, "ana@example.org")["Feeling"] is None
    with account_scope(world.account):
        assert WorkflowLog.objects.filter(workflow=course, name="row_update", user=learner).exists()


def test_survey_validates_types_and_changes_nothing_on_error(course, world, client_for):
    with account_scope(world.account):
        survey = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Survey",
            action_type="survey",
            serve_enabled=True,
        )
        actions.action_set_columns(
            action=survey, actor=world.alice, items=[{"column": "Feeling"}, {"column": "Hours"}]
        )
        ana = UserFactory(email="ana@example.org")
    client = client_for(ana)
    response = client.post(
        serve_url(survey),
        {f"q{_col(course, 'Feeling').pk}": "ok", f"q{_col(course, 'Hours').pk}": "three"},
    )
    assert response.status_code == 400
    assert "Hours" in response.content.decode()
    assert values_of(course, "ana@example.org")["Feeling"] is None


def test_shuffle_is_stable_per_learner(course, world, learner, client_for):
    with account_scope(world.account):
        survey = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Survey",
            action_type="survey",
            serve_enabled=True,
            shuffle=True,
        )
        actions.action_set_columns(
            action=survey,
            actor=world.alice,
            items=[{"column": c} for c in ("name", "passed", "Feeling", "Hours", "Done reading")],
        )
    client = client_for(learner)

    def order():
        page = client.get(serve_url(survey)).content.decode()
        return [part.split('"')[0] for part in page.split('data-column="')[1:]]

    first = order()
    assert sorted(first) == sorted(["name", "passed", "Feeling", "Hours", "Done reading"])
    assert order() == first
    assert first != ["name", "passed", "Feeling", "Hours", "Done reading"]


def test_todo_list_is_a_checklist(course, world, learner, client_for):
    with account_scope(world.account):
        todo = actions.action_create(
            workflow=course,
            actor=world.alice,
            name="Todo",
            action_type="todo_list",
            serve_enabled=True,
        )
        actions.action_set_columns(
            action=todo, actor=world.alice, items=[{"column": "Done reading"}]
        )
    client = client_for(learner)
    page = client.get(serve_url(todo)).content.decode()
    assert 'type="checkbox"' in page
    client.post(serve_url(todo), {f"q{_col(course, 'Done reading').pk}": "1"})
    assert values_of(course, "ben@example.org")["Done reading"] is True


def test_instructors_enter_data_per_row_and_others_cannot(course, world, client_for):
    with account_scope(world.account):
        survey = actions.action_create(
            workflow=course, actor=world.alice, name="Survey", action_type="survey"
        )
        actions.action_set_columns(
            action=survey, actor=world.alice, items=[{"column": "Feeling"}, {"column": "Hours"}]
        )
    entry = reverse("feedback:action_entry", args=[course.pk, survey.pk])
    client = client_for(world.alice)
    page = client.get(entry).content.decode()
    assert page.count('data-testid="entry-row"') == 3
    response = client.post(
        entry,
        {
            "key": "chloe@example.org",
            f"q{_col(course, 'Feeling').pk}": "great",
            f"q{_col(course, 'Hours').pk}": "7",
        },
    )
    assert response.status_code == 302
    row = values_of(course, "chloe@example.org")
    assert row["Feeling"] == "great" and row["Hours"] == 7
    client.post(entry, {"key": "chloe@example.org", f"q{_col(course, 'Hours').pk}": "x"})
    assert values_of(course, "chloe@example.org")["Hours"] == 7
    assert client_for(world.charlie).get(entry).status_code == 404
    assert client_for(world.bob).get(entry).status_code == 404


def _col(workflow, name):
    with account_scope(workflow.account_id):
        return Column.objects.get(workflow=workflow, name=name)
