"""API: polls, questions, poll runs, their responses, participation and one-run summary.

Read-only; every member of the account may read. Supervisors see universal poll runs and
the regional / propagated ones started inside their subtrees; every count and response
is limited to the contacts of their panels (``selectors.panel_unit_ids``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of
from closedloop.api.errors import field_error
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS
from closedloop.polls import selectors, stats
from closedloop.polls.models import (
    Answer,
    Poll,
    PollRun,
    PollRunType,
    Question,
    QuestionType,
    Response,
    ResponseStatus,
)
from closedloop.polls.schemas import (
    ParticipationOut,
    PollDetailOut,
    PollFilters,
    PollOut,
    PollRunFilters,
    PollRunOut,
    PollRunSummaryOut,
    QuestionFilters,
    QuestionOut,
    ResponseFilters,
    ResponseOut,
)

router = Router(tags=["polls"])


# --- polls and questions -------------------------------------------------------------


def _polls(membership: Membership) -> QuerySet[Poll]:
    questions = (
        Question.objects.filter(poll=OuterRef("pk"), is_present=True, is_hidden=False)
        .order_by()
        .values("poll")
        .annotate(n=Count("pk"))
        .values("n")
    )
    runs = selectors.visible_pollruns(membership).filter(poll=OuterRef("pk")).order_by()
    return (
        selectors.active_polls()
        .select_related("connection")
        .annotate(
            question_count=Subquery(questions, output_field=IntegerField()),
            pollrun_count=Subquery(
                runs.values("poll").annotate(n=Count("pk")).values("n"),
                output_field=IntegerField(),
            ),
            last_conducted=Subquery(runs.values("poll").annotate(m=Max("local_date")).values("m")),
        )
    )


def _poll(poll: Poll) -> dict[str, Any]:
    return {
        "id": poll.pk,
        "name": poll.display_name,
        "rapidpro_name": poll.rapidpro_name,
        "flow_uuid": poll.flow_uuid,
        "connection": {"id": poll.connection_id, "name": poll.connection.name},
        "is_present": poll.is_present,
        "question_count": getattr(poll, "question_count", None) or 0,
        "pollrun_count": getattr(poll, "pollrun_count", None) or 0,
        "last_conducted": getattr(poll, "last_conducted", None),
    }


def _question(question: Question) -> dict[str, Any]:
    return {
        "id": question.pk,
        "poll": {"id": question.poll_id, "name": question.poll.display_name},
        "name": question.display_name,
        "rapidpro_name": question.rapidpro_name,
        "result_key": question.result_key,
        "type": question.type,
        "categories": question.categories,
        "rules": question.rules,
        "order": question.order,
    }


@router.get("/polls/polls", response={200: Page[PollOut], **ERRORS}, summary="Polls")
def list_polls(
    request: HttpRequest, filters: Query[PollFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """The account's active polls with their visible question and poll-run counts."""
    qs = _polls(membership_of(request))
    if filters.search.strip():
        search = filters.search.strip()
        qs = qs.filter(Q(name__icontains=search) | Q(name="", rapidpro_name__icontains=search))
    return paginate(qs.order_by("rapidpro_name", "pk"), page, _poll)


@router.get("/polls/polls/{poll_id}", response={200: PollDetailOut, **ERRORS}, summary="A poll")
def get_poll(request: HttpRequest, poll_id: int) -> dict[str, Any]:
    """A poll with its visible questions in order."""
    membership = membership_of(request)
    poll = selectors.get_poll(membership, poll_id)
    poll = _polls(membership).get(pk=poll.pk)
    questions = selectors.visible_questions(poll).select_related("poll")
    return {**_poll(poll), "questions": [_question(q) for q in questions]}


def _questions() -> QuerySet[Question]:
    return Question.objects.filter(
        poll__is_active=True, is_present=True, is_hidden=False
    ).select_related("poll")


@router.get("/polls/questions", response={200: Page[QuestionOut], **ERRORS}, summary="Questions")
def list_questions(
    request: HttpRequest, filters: Query[QuestionFilters], page: Query[PageParams]
) -> dict[str, Any]:
    membership_of(request)
    qs = _questions()
    if filters.poll is not None:
        qs = qs.filter(poll_id=filters.poll)
    if filters.type:
        if filters.type not in QuestionType.values:
            raise field_error("type", _("Choose open, categorical or numeric."))
        qs = qs.filter(type=filters.type)
    return paginate(qs.order_by("poll__rapidpro_name", "poll_id", "order", "pk"), page, _question)


@router.get(
    "/polls/questions/{question_id}", response={200: QuestionOut, **ERRORS}, summary="A question"
)
def get_question(request: HttpRequest, question_id: int) -> dict[str, Any]:
    return _question(selectors.get_question(membership_of(request), question_id))


# --- poll runs -----------------------------------------------------------------------


def _pollruns(membership: Membership) -> QuerySet[PollRun]:
    unit_ids = selectors.panel_unit_ids(membership)
    scope = Q(responses__is_active=True) & selectors.unit_filter(unit_ids, "responses__org_unit_id")
    return (
        selectors.visible_pollruns(membership)
        .select_related("poll", "panel", "org_unit")
        .annotate(
            participants=Count("responses", filter=scope),
            complete=Count(
                "responses", filter=scope & Q(responses__status=ResponseStatus.COMPLETE)
            ),
            partial=Count("responses", filter=scope & Q(responses__status=ResponseStatus.PARTIAL)),
        )
    )


def _ref(obj: Any) -> dict[str, Any] | None:
    return {"id": obj.pk, "name": obj.name} if obj is not None else None


def _pollrun(run: PollRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "poll": {"id": run.poll_id, "name": run.poll.display_name},
        "type": run.type,
        "date": run.local_date,
        "conducted_on": run.conducted_on,
        "panel": _ref(run.panel),
        "org_unit": _ref(run.org_unit),
        "participants": getattr(run, "participants", 0),
        "complete": getattr(run, "complete", 0),
        "partial": getattr(run, "partial", 0),
    }


@router.get("/polls/pollruns", response={200: Page[PollRunOut], **ERRORS}, summary="Poll runs")
def list_pollruns(
    request: HttpRequest, filters: Query[PollRunFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Visible poll runs, newest first, with participants counted within the caller's
    panels."""
    qs = _pollruns(membership_of(request))
    if filters.poll is not None:
        qs = qs.filter(poll_id=filters.poll)
    if filters.start:
        qs = qs.filter(local_date__gte=filters.start)
    if filters.end:
        qs = qs.filter(local_date__lte=filters.end)
    if filters.type:
        if filters.type not in PollRunType.values:
            raise field_error("type", _("Choose universal, regional or propagated."))
        qs = qs.filter(type=filters.type)
    return paginate(qs.order_by("-conducted_on", "-pk"), page, _pollrun)


@router.get(
    "/polls/pollruns/{pollrun_id}", response={200: PollRunOut, **ERRORS}, summary="A poll run"
)
def get_pollrun(request: HttpRequest, pollrun_id: int) -> dict[str, Any]:
    membership = membership_of(request)
    run = selectors.get_pollrun(membership, pollrun_id)
    return _pollrun(_pollruns(membership).get(pk=run.pk))


def _response(response: Response) -> dict[str, Any]:
    contact = response.contact
    return {
        "id": response.pk,
        "run_uuid": response.run_uuid,
        "contact": {"id": contact.pk, "name": contact.name, "uuid": contact.uuid},
        "org_unit": _ref(response.org_unit),
        "status": response.status,
        "is_active": response.is_active,
        "created_on": response.created_on,
        "updated_on": response.updated_on,
        "exit_type": response.exit_type,
        "answers": [
            {
                "question": a.question_id,
                "value": a.value,
                "value_number": a.value_number,
                "category": a.category,
                "submitted_on": a.submitted_on,
            }
            for a in response.answers.all()
        ],
    }


@router.get(
    "/polls/pollruns/{pollrun_id}/responses",
    response={200: Page[ResponseOut], **ERRORS},
    summary="Responses of a poll run",
)
def list_responses(
    request: HttpRequest,
    pollrun_id: int,
    filters: Query[ResponseFilters],
    page: Query[PageParams],
) -> dict[str, Any]:
    """The run's responses of contacts in the caller's panels, answers inline (raw values);
    ``include_inactive`` adds superseded responses."""
    membership = membership_of(request)
    run = selectors.get_pollrun(membership, pollrun_id)
    qs = selectors.visible_responses(membership).filter(pollrun=run)
    if not filters.include_inactive:
        qs = qs.filter(is_active=True)
    if filters.status:
        if filters.status not in ResponseStatus.values:
            raise field_error("status", _("Choose C, P or E."))
        qs = qs.filter(status=filters.status)
    qs = qs.select_related("contact", "org_unit").prefetch_related(
        Prefetch("answers", queryset=Answer.objects.order_by("question__order", "question_id"))
    )
    return paginate(
        qs.order_by("contact__name", "contact_id", "-created_on", "-pk"), page, _response
    )


@router.get(
    "/polls/pollruns/{pollrun_id}/participation",
    response={200: ParticipationOut, **ERRORS},
    summary="Participation of a poll run",
)
def pollrun_participation(request: HttpRequest, pollrun_id: int, by: str = "panel") -> dict:
    """Empty / partial / complete active responses and completion % per panel org unit
    (``by=panel``) or cohort group (``by=cohort``), within the caller's panels."""
    if by not in ("panel", "cohort"):
        raise field_error("by", _("Choose panel or cohort."))
    membership = membership_of(request)
    run = selectors.get_pollrun(membership, pollrun_id)
    rows = stats.participation(run, selectors.panel_unit_ids(membership), by=by)
    if by == "cohort":
        # a contact in two cohorts is in two rows: the total counts responses once
        total = stats.participation(run, selectors.panel_unit_ids(membership), by="panel")
    else:
        total = rows
    return {"pollrun": run.pk, "by": by, "rows": rows, "total": stats.participation_totals(total)}


@router.get(
    "/polls/pollruns/{pollrun_id}/summary",
    response={200: PollRunSummaryOut, **ERRORS},
    summary="One poll run's figures per question",
)
def pollrun_summary(request: HttpRequest, pollrun_id: int) -> dict[str, Any]:
    """Per visible question: numeric → histogram (``bins``), categorical → category
    counts and shares, open → top words — see ``stats.pollrun_summary``."""
    membership = membership_of(request)
    run = selectors.get_pollrun(membership, pollrun_id)
    unit_ids = selectors.panel_unit_ids(membership)
    questions = []
    for question in selectors.visible_questions(run.poll):
        figures = stats.pollrun_summary(run, question, unit_ids)
        questions.append({"id": question.pk, "name": question.display_name, **figures})
    return {"pollrun": run.pk, "questions": questions}
