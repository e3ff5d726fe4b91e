"""Poll run pages: the list (with "fetch older runs"), the detail tabs, message, restart."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from closedloop.accounts.models import Membership
from closedloop.polls import selectors
from closedloop.polls.forms_dashboards import FetchRunsForm, MessageForm
from closedloop.polls.models import (
    Answer,
    Connection,
    PollRun,
    PollRunType,
    Question,
    QuestionType,
    Response,
    ResponseStatus,
)
from closedloop.polls.views_dashboards import (
    member_required,
    membership_of,
    require_act,
    stats_module,
    url_or_empty,
)

PAGE_SIZE = 50
RESPONSES_PAGE_SIZE = 50
FETCH_RUNS_JOB = "polls.fetch_runs"
TABS = ("summary", "participation", "responses")


# --- helpers --------------------------------------------------------------------------


def response_counts(
    pollrun_ids: list[int], unit_ids: list[int] | None
) -> dict[int, dict[str, int]]:
    """{pollrun id: {"participants", "complete", "partial"}} over active responses in scope
    (one query; participants include empty responses)."""
    rows = (
        Response.objects.filter(pollrun_id__in=pollrun_ids, is_active=True)
        .filter(selectors.unit_filter(unit_ids))
        .values("pollrun_id")
        .annotate(
            participants=Count("pk"),
            complete=Count("pk", filter=Q(status=ResponseStatus.COMPLETE)),
            partial=Count("pk", filter=Q(status=ResponseStatus.PARTIAL)),
        )
    )
    return {
        row["pollrun_id"]: {
            "participants": row["participants"],
            "complete": row["complete"],
            "partial": row["partial"],
        }
        for row in rows
    }


NO_COUNTS = {"participants": 0, "complete": 0, "partial": 0}


def restart_allowed(pollrun: PollRun) -> bool:
    """Only the newest regional/propagated poll run of a poll for its panel restarts."""
    if pollrun.type == PollRunType.UNIVERSAL or pollrun.panel_id is None:
        return False
    newest = (
        PollRun.objects.filter(
            poll_id=pollrun.poll_id,
            panel_id=pollrun.panel_id,
            type__in=[PollRunType.REGIONAL, PollRunType.PROPAGATED],
        )
        .order_by("-conducted_on", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    return newest == pollrun.pk


def _pollrun_actions(membership: Membership, pollrun: PollRun) -> dict[str, Any]:
    can_act = selectors.can_act(membership)
    return {
        "can_act": can_act,
        "can_restart": can_act
        and restart_allowed(pollrun)
        and _panel_in_scope(membership, pollrun),
    }


def _panel_in_scope(membership: Membership, pollrun: PollRun) -> bool:
    if pollrun.panel_id is None:
        return False
    try:
        selectors.get_panel(membership, pollrun.panel_id)
    except Http404:
        return False
    return True


# --- list -----------------------------------------------------------------------------


@member_required
@require_http_methods(["GET", "POST"])
def pollrun_list(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    can_setup = selectors.can_setup(membership)
    connections = Connection.objects.filter(is_active=True).order_by("name")
    fetch_form = FetchRunsForm(
        request.POST if request.method == "POST" else None,
        connections=connections if can_setup else connections.none(),
    )
    if request.method == "POST":
        if not can_setup:
            raise PermissionDenied(_("Only administrators and managers fetch older runs."))
        if fetch_form.is_valid():
            from closedloop.jobs.runtime import enqueue_job

            connection = fetch_form.cleaned_data["connection"]
            days = fetch_form.cleaned_data["days"]
            try:
                job = enqueue_job(
                    account=membership.account,
                    kind=FETCH_RUNS_JOB,
                    params={"connection_id": connection.pk, "days": days},
                    title=_("Fetch %(days)s days of runs from %(connection)s")
                    % {"days": days, "connection": connection.name},
                    created_by=request.user,
                )
            except KeyError:
                fetch_form.add_error(None, _("Fetching runs is not available on this server."))
            else:
                messages.success(
                    request, _("Fetching older runs; you will get an email when it is done.")
                )
                return redirect("polls:job", pk=job.pk)
    pollruns = selectors.visible_pollruns(membership).select_related("poll", "panel", "org_unit")
    poll = None
    if request.GET.get("poll"):
        poll = selectors.get_poll(membership, request.GET["poll"])
        pollruns = pollruns.filter(poll=poll)
    page = Paginator(pollruns.order_by("-conducted_on", "-pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    runs = list(page.object_list)
    counts = response_counts([r.pk for r in runs], selectors.panel_unit_ids(membership))
    rows = [{"pollrun": r, **counts.get(r.pk, NO_COUNTS)} for r in runs]
    return render(
        request,
        "polls/pollrun_list.html",
        {
            "page": page,
            "rows": rows,
            "poll": poll,
            "polls": list(selectors.active_polls().order_by("rapidpro_name")),
            "can_setup": can_setup,
            "can_act": selectors.can_act(membership),
            "fetch_form": fetch_form if can_setup else None,
            "pager_query": f"poll={poll.pk}" if poll else "",
        },
        status=400 if request.method == "POST" else 200,
    )


# --- detail ---------------------------------------------------------------------------


def _summary_cards(pollrun: PollRun, questions: list[Question], unit_ids: Any) -> list[Any]:
    stats = stats_module()
    cards = []
    for question in questions:
        data = stats.pollrun_summary(pollrun, question, unit_ids)
        cards.append({"question": question, "data": data, "chart_id": f"summary-{question.pk}"})
    return cards


def responses_page(
    membership: Membership,
    pollrun: PollRun,
    questions: list[Question],
    page_number: Any,
    include_superseded: bool,
) -> tuple[Any, list[dict[str, Any]]]:
    responses = (
        selectors.visible_responses(membership)
        .filter(pollrun=pollrun)
        .select_related("contact", "org_unit")
        .order_by("contact__name", "contact_id", "-created_on", "-pk")
    )
    if not include_superseded:
        responses = responses.filter(is_active=True)
    page = Paginator(responses, RESPONSES_PAGE_SIZE).get_page(page_number)
    items = list(page.object_list)
    values: dict[tuple[int, int], str] = {}
    for response_id, question_id, value in Answer.objects.filter(
        response_id__in=[r.pk for r in items], question_id__in=[q.pk for q in questions]
    ).values_list("response_id", "question_id", "value"):
        values[(response_id, question_id)] = value
    rows = [
        {
            "response": r,
            "values": [values.get((r.pk, q.pk), "") for q in questions],
        }
        for r in items
    ]
    return page, rows


@member_required
@require_GET
def pollrun_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    pollrun = selectors.get_pollrun(membership, pk)
    tab = request.GET.get("tab", "summary")
    if tab not in TABS:
        tab = "summary"
    unit_ids = selectors.panel_unit_ids(membership)
    questions = list(selectors.visible_questions(pollrun.poll))
    counts = response_counts([pollrun.pk], unit_ids).get(pollrun.pk, NO_COUNTS)
    context: dict[str, Any] = {
        "pollrun": pollrun,
        "poll": pollrun.poll,
        "tab": tab,
        "questions": questions,
        "counts": counts,
        "message_log_url": url_or_empty("polls:message_log"),
        "time_zone": getattr(membership.account, "time_zone", "") or "UTC",
        **_pollrun_actions(membership, pollrun),
    }
    if tab == "summary":
        context["cards"] = _summary_cards(pollrun, questions, unit_ids)
    elif tab == "participation":
        by = "cohort" if request.GET.get("by") == "cohort" else "panel"
        context["by"] = by
        context["participation"] = stats_module().participation(pollrun, unit_ids, by=by)
    else:
        superseded = request.GET.get("superseded") == "1"
        page, rows = responses_page(
            membership, pollrun, questions, request.GET.get("page"), superseded
        )
        context.update(
            page=page,
            rows=rows,
            superseded=superseded,
            pager_query="tab=responses" + ("&superseded=1" if superseded else ""),
        )
    return render(request, "polls/pollrun_detail.html", context)


# --- actions --------------------------------------------------------------------------


@member_required
@require_http_methods(["GET", "POST"])
def pollrun_message(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    pollrun = selectors.get_pollrun(membership, pk)
    require_act(membership)
    form = MessageForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        from closedloop.polls import outbound

        try:
            broadcast = outbound.broadcast(
                connection=pollrun.poll.connection,
                text=form.cleaned_data["text"],
                audience=form.cleaned_data["audience"],
                pollrun=pollrun,
                user=request.user,
                membership=membership,
            )
        except outbound.OutboundError as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, str(exc))
        else:
            messages.success(
                request,
                _("Your message is being sent to %(count)s contacts.")
                % {"count": broadcast.recipient_count},
            )
            if broadcast.job_id:
                return redirect("polls:job", pk=broadcast.job_id)
            return redirect(reverse("polls:pollrun_detail", args=[pollrun.pk]))
    return render(
        request,
        "polls/pollrun_message.html",
        {
            "pollrun": pollrun,
            "poll": pollrun.poll,
            "form": form,
            "max_length": form.fields["text"].max_length,  # type: ignore[attr-defined]
        },
        status=400 if request.method == "POST" else 200,
    )


@member_required
@require_POST
def pollrun_restart(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    pollrun = selectors.get_pollrun(membership, pk)
    require_act(membership)
    if pollrun.panel_id is None:
        raise Http404
    selectors.get_panel(membership, pollrun.panel_id)  # 404 outside the member's scope
    if not restart_allowed(pollrun):
        messages.error(
            request,
            _("Only the newest poll run started for a panel can be restarted."),
        )
        return redirect("polls:pollrun_detail", pk=pollrun.pk)
    from closedloop.polls import outbound

    try:
        job = outbound.restart(pollrun=pollrun, user=request.user)
    except outbound.OutboundError as exc:
        messages.error(request, str(exc))
        return redirect("polls:pollrun_detail", pk=pollrun.pk)
    messages.success(request, _("Restarting the poll for contacts who did not complete it."))
    return redirect("polls:job", pk=job.pk)


def question_kind(question: Question) -> str:
    return {
        QuestionType.NUMERIC: "numeric",
        QuestionType.CATEGORICAL: "categorical",
    }.get(question.type, "open")  # type: ignore[call-overload,no-any-return]
