"""The demo course workflow: built from demo people, with every kind of action."""

from __future__ import annotations

import pytest

from closedloop.accounts.models import Account
from closedloop.core.demo import DEMO_SLUG, delete_demo, load_demo
from closedloop.core.tenancy import account_scope
from closedloop.feedback import render, table
from closedloop.feedback.demo import COURSE_NAME
from closedloop.feedback.models import Action, Condition, Schedule, Workflow
from closedloop.people.models import Identifier


@pytest.fixture
def demo_workflow(db):
    load_demo(size="small")
    account = Account.objects.get(slug=DEMO_SLUG)
    with account_scope(account):
        yield Workflow.objects.get(name=COURSE_NAME)


def test_the_course_is_built_from_demo_people_with_emails(demo_workflow):
    frame = table.read_frame(demo_workflow)
    emails = set(
        Identifier.objects.filter(account=demo_workflow.account, kind="email").values_list(
            "value", flat=True
        )
    )
    assert 100 <= frame.height <= 300
    assert set(frame["email"].to_list()) <= emails
    assert frame["email"].n_unique() == frame.height
    assert {"midterm", "forum posts", "video minutes", "confidence", "lab method"} <= set(
        frame.columns
    )


def test_it_has_an_email_with_conditions_a_survey_a_rubric_and_an_incremental_schedule(
    demo_workflow,
):
    types = set(Action.objects.filter(workflow=demo_workflow).values_list("action_type", flat=True))
    assert {"email", "survey", "rubric"} <= types
    email = Action.objects.get(workflow=demo_workflow, action_type="email")
    conditions = Condition.objects.filter(action=email)
    assert conditions.count() >= 4
    assert all(0 <= c.selected_count <= demo_workflow.nrows for c in conditions)
    assert any(c.selected_count > 0 for c in conditions)
    schedule = Schedule.objects.get(workflow=demo_workflow)
    assert schedule.incremental and schedule.frequency and schedule.action == email


def test_every_demo_message_renders_and_condition_counts_match_the_messages(demo_workflow):
    email = Action.objects.get(workflow=demo_workflow, action_type="email")
    messages = list(render.iter_messages(email, options={"item_column": "email"}))
    assert len(messages) == email.filter.selected_count
    for condition in Condition.objects.filter(action=email):
        shown = sum(1 for m in messages if m.conditions[condition.name])
        assert shown == condition.selected_count, condition.name
    assert all(m.subject.startswith("Classroom Assessment: your midterm") for m in messages)


def test_deleting_the_demo_drops_the_workflow_tables(demo_workflow):
    name = demo_workflow.table_name
    assert table.table_exists(name)
    delete_demo()
    assert not table.table_exists(name)
