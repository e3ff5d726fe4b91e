"""Small builders of polls data for tests and benchmarks (direct ORM, no RapidPro).

They fill the denormalized columns the way the ingest does (answers copy the response's
poll run, contact, org unit, local date and active flag), so the aggregates can be tested
on hand-made data with hand-computed expectations.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from closedloop.core.crypto import encrypt
from closedloop.people.models import Cohort, Person
from closedloop.polls.models import (
    Answer,
    Connection,
    Contact,
    ContactGroup,
    GroupRole,
    Poll,
    PollRun,
    PollRunType,
    Question,
    QuestionType,
    Response,
    ResponseStatus,
)

UTC = dt.UTC


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def make_connection(
    account: Any,
    name: str = "RapidPro",
    host_url: str = "http://127.0.0.1:9",
    token: str = "token-123",
) -> Connection:
    return Connection.objects.create(
        account=account,
        name=name,
        host_url=host_url,
        token_encrypted=encrypt(token),
        workspace_name="Test workspace",
    )


def make_panel(connection: Connection, name: str, org_unit: Any) -> ContactGroup:
    return ContactGroup.objects.create(
        account_id=connection.account_id,
        connection=connection,
        uuid=new_uuid(),
        name=name,
        role=GroupRole.PANEL,
        org_unit=org_unit,
    )


def make_cohort_group(connection: Connection, name: str) -> ContactGroup:
    cohort, _ = Cohort.objects.get_or_create(account_id=connection.account_id, name=name)
    return ContactGroup.objects.create(
        account_id=connection.account_id,
        connection=connection,
        uuid=new_uuid(),
        name=name,
        role=GroupRole.COHORT,
        cohort=cohort,
    )


def make_poll(connection: Connection, name: str, flow_uuid: str | None = None) -> Poll:
    return Poll.objects.create(
        account_id=connection.account_id,
        connection=connection,
        flow_uuid=flow_uuid or new_uuid(),
        rapidpro_name=name,
        is_active=True,
    )


def make_question(
    poll: Poll,
    key: str,
    type: str = QuestionType.NUMERIC,
    *,
    name: str = "",
    categories: list[str] | None = None,
    rules: list[dict[str, Any]] | None = None,
    order: int = 0,
) -> Question:
    return Question.objects.create(
        account_id=poll.account_id,
        poll=poll,
        result_key=key,
        rapidpro_name=name or key.title(),
        type=type,
        categories=categories or [],
        rules=rules or [],
        order=order,
        node_uuids=[new_uuid()],
    )


def make_contact(
    connection: Connection,
    name: str,
    panel: ContactGroup | None = None,
    cohorts: Sequence[ContactGroup] = (),
    language: str = "eng",
    phone: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Contact:
    unit = panel.org_unit if panel is not None else None
    person = Person.objects.create(
        account_id=connection.account_id,
        name=name,
        org_unit=unit,
        language=language,
        fields=dict(fields or {}),
    )
    if cohorts:
        person.cohorts.set([g.cohort for g in cohorts if g.cohort is not None])
    return Contact.objects.create(
        account_id=connection.account_id,
        connection=connection,
        person=person,
        uuid=new_uuid(),
        name=name,
        language=language,
        panel=panel,
        org_unit=unit,
        urns=[f"tel:{phone}"] if phone else [],
        fields=dict(fields or {}),
        group_uuids=[g.uuid for g in ([panel] if panel else []) + list(cohorts)],
    )


def make_pollrun(
    poll: Poll,
    day: dt.date,
    type: str = PollRunType.UNIVERSAL,
    panel: ContactGroup | None = None,
    hour: int = 9,
) -> PollRun:
    return PollRun.objects.create(
        account_id=poll.account_id,
        poll=poll,
        type=type,
        conducted_on=dt.datetime.combine(day, dt.time(hour), tzinfo=UTC),
        local_date=day,
        panel=panel,
        org_unit=panel.org_unit if panel is not None else None,
    )


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def make_response(
    pollrun: PollRun,
    contact: Contact,
    answers: dict[Question, Any] | None = None,
    *,
    status: str | None = None,
    at: dt.datetime | None = None,
    active: bool = True,
    categories: dict[Question, str] | None = None,
) -> Response:
    """A response with ``answers`` ({question: value}); status defaults to complete when
    every visible question is answered, partial when some are, empty when none are."""
    answers = answers or {}
    at = at or pollrun.conducted_on + dt.timedelta(minutes=5)
    if status is None:
        status = ResponseStatus.PARTIAL if answers else ResponseStatus.EMPTY
    response = Response.objects.create(
        account_id=pollrun.account_id,
        pollrun=pollrun,
        poll_id=pollrun.poll_id,
        contact=contact,
        run_uuid=new_uuid(),
        status=status,
        is_active=active,
        created_on=at,
        updated_on=at,
        modified_on=at,
        local_date=pollrun.local_date,
        org_unit_id=contact.org_unit_id,
        exit_type="completed" if status == ResponseStatus.COMPLETE else "",
        exited_on=at if status == ResponseStatus.COMPLETE else None,
    )
    categories = categories or {}
    Answer.objects.bulk_create(
        [
            Answer(
                account_id=pollrun.account_id,
                response=response,
                question=question,
                pollrun=pollrun,
                contact=contact,
                org_unit_id=contact.org_unit_id,
                is_active=active,
                local_date=pollrun.local_date,
                value=str(value),
                value_number=_number(value),
                day_sum=_number(value),
                category=categories.get(question, "" if _number(value) is None else "Other")
                if question.type != QuestionType.OPEN
                else "",
                submitted_on=at,
            )
            for question, value in answers.items()
        ]
    )
    return response
