"""The feedback part of the demo: a course of ~300 learners built from demo people.

"Classroom Assessment (CPD 2026)" is a continuing-professional-development course taken
by the demo account's teachers and health workers (the people who have an email
address). Its table holds their midterm score, forum participation and video engagement;
the workflow has a personalized email with several conditions, a survey, a rubric and a
weekly incremental schedule. In the demo, mail stays in the in-app outbox.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import polars as pl

COURSE_NAME = "Classroom Assessment (CPD 2026)"
LEARNERS = 300
INSTRUCTOR_EMAIL = "instructor@demo.closedloop.org"

EMAIL_TEXT = """<p>Dear {{ given name }},</p>
<p>Your midterm score in <em>{{ course }}</em> was <strong>{{ midterm }}</strong>.</p>
{% if Excellent midterm %}<p>Excellent work: you are among the strongest in the course.
Consider mentoring a colleague in the forum this week.</p>{% endif %}
{% if Low midterm %}<p>This score is below the pass mark of 50. Please book a
session with your tutor, {{ tutor }}, before the end of week 8.</p>{% endif %}
{% if Quiet in the forum %}<p>We have not seen you in the discussion forum yet.
Posting one question or answer a week makes a real difference.</p>
{% else %}<p>Thank you for your {{ forum posts }} forum posts.</p>{% endif %}
{% if Few videos %}<p>You have watched {{ video minutes }} minutes of the lecture
videos; the week 5 and 6 videos cover most of the final exam.</p>{% endif %}
<p>Best wishes,<br>{{ instructor }}</p>"""


def build_feedback_demo(account: Any, users: dict[str, Any], result: Any, seed: int = 2026) -> None:
    from closedloop.accounts.models import Membership
    from closedloop.feedback import actions, filters, services
    from closedloop.feedback.models import Column, Schedule
    from closedloop.people.models import Identifier

    instructor = users[INSTRUCTOR_EMAIL]
    rng = random.Random(seed)
    emails = list(
        Identifier.objects.filter(account=account, kind="email")
        .order_by("value")
        .values_list("value", "person__name", "person__org_unit__name")[:LEARNERS]
    )
    if not emails:
        return
    tutors = ["Ms Uwase", "Mr Habimana", "Dr Nkurunziza", "Mme Mukamana"]
    start = dt.datetime(2026, 9, 7, 8, 0, tzinfo=dt.UTC)
    rows: dict[str, list[Any]] = {
        "email": [],
        "SID": [],
        "name": [],
        "given name": [],
        "school": [],
        "tutorial group": [],
        "tutor": [],
        "midterm": [],
        "forum posts": [],
        "video minutes": [],
        "attended workshop": [],
        "last login": [],
    }
    for i, (email, name, unit) in enumerate(emails):
        group = rng.choice(["A", "B", "C", "D"])
        ability = rng.gauss(0, 1)
        midterm = max(0.0, min(100.0, round(62 + 16 * ability + rng.gauss(0, 8), 1)))
        rows["email"].append(email)
        rows["SID"].append(26000 + i)
        rows["name"].append(name)
        rows["given name"].append(name.split(" ")[0])
        rows["school"].append(unit or "")
        rows["tutorial group"].append(group)
        rows["tutor"].append(tutors["ABCD".index(group)])
        rows["midterm"].append(None if rng.random() < 0.03 else midterm)
        rows["forum posts"].append(max(0, int(rng.gauss(3 + 2 * ability, 3))))
        rows["video minutes"].append(round(max(0.0, rng.gauss(95 + 40 * ability, 45)), 1))
        rows["attended workshop"].append(rng.random() < 0.7)
        rows["last login"].append(
            start + dt.timedelta(days=rng.randint(0, 70), minutes=rng.randint(0, 900))
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "email": pl.String,
            "SID": pl.Int64,
            "name": pl.String,
            "given name": pl.String,
            "school": pl.String,
            "tutorial group": pl.String,
            "tutor": pl.String,
            "midterm": pl.Float64,
            "forum posts": pl.Int64,
            "video minutes": pl.Float64,
            "attended workshop": pl.Boolean,
            "last login": pl.Datetime("us", "UTC"),
        },
    )
    workflow = services.workflow_create(
        account=account,
        actor=instructor,
        name=COURSE_NAME,
        description="Midterm feedback, check-in survey and lab rubric for the CPD course.",
        attributes={"course": "Classroom Assessment", "instructor": "Irene Instructor"},
    )
    services.table_load(workflow=workflow, actor=instructor, frame=frame, keys=["email", "SID"])
    if Membership.objects.filter(account=account, user__email="admin@demo.closedloop.org").exists():
        services.workflow_share(
            workflow=workflow, actor=instructor, email="viewer@demo.closedloop.org", role="viewer"
        )
    from closedloop.feedback import columns as column_services

    column_services.column_update(
        column=Column.objects.get(workflow=workflow, name="tutorial group"),
        actor=instructor,
        categories=["A", "B", "C", "D"],
    )
    active = filters.filter_create(
        workflow=workflow,
        actor=instructor,
        name="Has a midterm score",
        formula=_group([_rule("midterm", "double", "is_not_null", None)]),
    )
    email = actions.action_create(
        workflow=workflow,
        actor=instructor,
        name="Midterm feedback",
        action_type="email",
        description="Personalized midterm feedback with advice.",
        text_content="<p>Dear {{ given name }},</p>",
        subject="{{ course }}: your midterm, {{ given name }}",
        filter=active,
        options={"item_column": "email"},
    )
    for name, rule in [
        ("Excellent midterm", _rule("midterm", "double", "greater_or_equal", "85")),
        ("Low midterm", _rule("midterm", "double", "less", "50")),
        ("Quiet in the forum", _rule("forum posts", "integer", "equal", "0")),
        ("Few videos", _rule("video minutes", "double", "less", "45")),
        ("Skipped workshop", _rule("attended workshop", "boolean", "equal", "false")),
    ]:
        filters.condition_create(action=email, actor=instructor, name=name, formula=_group([rule]))
    actions.action_update(action=email, actor=instructor, text_content=EMAIL_TEXT)
    _demo_survey(workflow, instructor)
    _demo_rubric(workflow, instructor)
    Schedule.objects.filter(workflow=workflow).delete()
    from closedloop.feedback import schedules

    schedules.schedule_create(
        workflow=workflow,
        actor=instructor,
        name="Weekly feedback to new learners",
        operation_type="action_run",
        action=email,
        payload={"item_column": "email", "subject": email.subject},
        frequency="0 8 * * 1",
        execute_start=dt.datetime.now(dt.UTC),
        execute_until=dt.datetime.now(dt.UTC) + dt.timedelta(weeks=16),
        incremental=True,
    )
    result.counts.setdefault("feedback", {})["learners_in_a_feedback_workflow"] = frame.height


def _demo_survey(workflow: Any, actor: Any) -> None:
    from closedloop.feedback import actions
    from closedloop.feedback import columns as column_services

    confidence = column_services.column_add(
        workflow=workflow,
        actor=actor,
        name="confidence",
        data_type="integer",
        categories=[1, 2, 3, 4, 5],
        description="How confident do you feel about the final exam? (1 = not at all, 5 = very)",
    )
    help_topic = column_services.column_add(
        workflow=workflow,
        actor=actor,
        name="help wanted",
        data_type="string",
        categories=["Nothing", "Rubrics", "Feedback", "Question design"],
        description="Which topic would you like help with?",
    )
    now = dt.datetime.now(dt.UTC)
    survey = actions.action_create(
        workflow=workflow,
        actor=actor,
        name="Week 6 check-in",
        action_type="survey",
        description="Two questions for every learner; answers go into the table.",
        text_content="<p>Please answer two short questions about the course.</p>",
        serve_enabled=True,
        active_from=now - dt.timedelta(days=1),
        active_to=now + dt.timedelta(days=60),
    )
    actions.action_set_columns(
        action=survey,
        actor=actor,
        items=[{"column": confidence.name}, {"column": help_topic.name}],
    )


def _demo_rubric(workflow: Any, actor: Any) -> None:
    from closedloop.feedback import actions
    from closedloop.feedback import columns as column_services

    levels = ["Beginning", "Developing", "Proficient"]
    method = column_services.column_add(
        workflow=workflow, actor=actor, name="lab method", data_type="string", categories=levels
    )
    analysis = column_services.column_add(
        workflow=workflow, actor=actor, name="lab analysis", data_type="string", categories=levels
    )
    rubric = actions.action_create(
        workflow=workflow,
        actor=actor,
        name="Lab report rubric",
        action_type="rubric",
        description="Feedback from the lab report rubric.",
        text_content=(
            "<p>Dear {{ given name }}, here is the feedback on your lab report.</p>{% rubric %}"
        ),
    )
    _grade_lab_reports(workflow, [method, analysis], levels)
    actions.action_set_columns(
        action=rubric, actor=actor, items=[{"column": method.name}, {"column": analysis.name}]
    )
    cells = {
        method.name: [
            ("States the question only.", "Describe how you collected your evidence."),
            ("Describes the method.", "Justify why the method answers the question."),
            ("Method is clear and justified.", "Your method is exemplary."),
        ],
        analysis.name: [
            ("Lists results.", "Explain what your results mean."),
            ("Interprets results.", "Link your interpretation to the literature."),
            ("Insightful analysis.", "Excellent analysis, well argued."),
        ],
    }
    actions.rubric_set_cells(
        action=rubric,
        actor=actor,
        cells=[
            {"column": name, "level": level, "description": text, "feedback": feedback}
            for name, levels in cells.items()
            for level, (text, feedback) in enumerate(levels)
        ],
    )


def _grade_lab_reports(workflow: Any, criteria: list[Any], levels: list[str]) -> None:
    """Most learners have handed in their lab report and been graded on both criteria."""
    from closedloop.feedback import table

    rng = random.Random(7)
    rids = table.read_frame(workflow, [], with_rid=True)["_rid"].to_list()
    for column in criteria:
        graded = [rid for rid in rids if rng.random() < 0.85]
        values = [levels[min(2, int(rng.triangular(0, 3, 2)))] for _ in graded]
        table.set_column_values(workflow, column, graded, values)
    from closedloop.feedback.services import refresh_after_data_change

    refresh_after_data_change(workflow, {c.name for c in criteria})


def _rule(field: str, type_: str, operator: str, value: Any) -> dict[str, Any]:
    return {"id": field, "field": field, "type": type_, "operator": operator, "value": value}


def _group(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"condition": "AND", "not": False, "valid": True, "rules": rules}


def purge_feedback_demo(account: Any) -> None:
    """Drop the per-workflow tables of the account (a raw delete of rows leaves them)."""
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.feedback import table
    from closedloop.feedback.models import Workflow

    with scopes_disabled():
        for workflow in Workflow.objects.filter(account=account):
            table.drop_all_tables(workflow)
