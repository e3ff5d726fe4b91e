"""Polls dashboards: home, poll list, poll detail (charts, map, filters), start a poll.

Figures come from :mod:`closedloop.polls.stats` (server-rendered tables and summaries);
the charts fetch their series from the polls API with the same filters (``charts.js``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from closedloop.accounts.access import member_required, membership_of
from closedloop.accounts.models import Membership
from closedloop.jobs import selectors as job_selectors
from closedloop.polls import selectors
from closedloop.polls.forms_dashboards import StartPollForm
from closedloop.polls.models import (
    Broadcast,
    Connection,
    ContactGroup,
    DataField,
    GroupRole,
    Indicator,
    Poll,
    Question,
    QuestionType,
)

View = Callable[..., HttpResponseBase]

#: date windows of the filters form (``stats.parse_filters`` understands these keys)
WINDOWS = [
    ("month", gettext_lazy("This month")),
    ("30d", gettext_lazy("Last 30 days")),
    ("60d", gettext_lazy("Last 60 days")),
    ("90d", gettext_lazy("Last 90 days")),
    ("6m", gettext_lazy("Last 6 months")),
    ("12m", gettext_lazy("Last 12 months")),
    ("custom", gettext_lazy("Custom dates")),
]
API_PREFIX = "/api/v1/polls"
INDICATOR_CANDIDATES = 5


# --- access ---------------------------------------------------------------------------


def require_act(membership: Membership) -> None:
    if not selectors.can_act(membership):
        raise PermissionDenied(_("You can look at polls but not start them or send messages."))


def url_or_empty(name: str, *args: Any) -> str:
    """A URL of another part of the module that may not be there yet."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def stats_module() -> Any:
    from closedloop.polls import stats

    return stats


# --- filters --------------------------------------------------------------------------


def visible_fields() -> list[tuple[str, str]]:
    """(key, label) of the contact fields offered as filters."""
    from closedloop.core.tenancy import current_account_id

    keys: dict[str, str] = {}
    for key, label in DataField.objects.filter(is_visible=True).values_list("key", "label"):
        keys.setdefault(key, label)
    account_id = current_account_id()
    if account_id is not None:
        for key in selectors.polls_settings(account_id).visible_fields or []:
            keys.setdefault(str(key), str(key))
    return sorted(keys.items(), key=lambda item: item[1].lower())


def filter_params(params: QueryDict, fields: list[tuple[str, str]]) -> dict[str, str]:
    """The filter parameters of a query string, normalised (empty ones dropped)."""
    out: dict[str, str] = {}
    window = str(params.get("window", ""))
    if window in dict(WINDOWS):
        out["window"] = window
    if window == "custom":
        for key in ("start", "end"):
            if params.get(key):
                out[key] = str(params.get(key))
    for key in ("panel", "cohort"):
        value = str(params.get(key, "")).strip()
        if value:
            out[key] = value
    if "panel" in out:
        out["sub"] = "0" if params.get("sub") == "0" else "1"
    for key, _label in fields:
        value = str(params.get(f"field.{key}", "")).strip()
        if value:
            out[f"field.{key}"] = value
    return out


def filter_context(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    """Parsed filters plus what the filters form needs to show them again."""
    stats = stats_module()
    fields = visible_fields()
    params = filter_params(request.GET, fields)
    if "panel" in params:
        selectors.get_panel(membership, params["panel"])  # 404 outside the member's scope
    if "cohort" in params:
        _cohort_or_404(params["cohort"])
    from closedloop.polls.stats_filters import FilterError

    error = None
    try:
        filters = stats.parse_filters(membership, params)
    except FilterError as exc:
        error = {"field": exc.field, "message": exc.message}
        filters = stats.parse_filters(membership, {})
    return {
        "filters": filters,
        "filter_error": error,
        "filter_values": params,
        "filter_query": urlencode(params),
        "windows": WINDOWS,
        "window": params.get("window", "month"),
        "panels": list(selectors.visible_panels(membership).order_by("name")),
        "cohorts": list(ContactGroup.objects.filter(role=GroupRole.COHORT).order_by("name")),
        "fields": [
            {"key": key, "label": label, "value": params.get(f"field.{key}", "")}
            for key, label in fields
        ],
        "filtered": bool(params),
    }


def _cohort_or_404(value: str) -> ContactGroup:
    try:
        pk = int(value)
    except ValueError:
        raise Http404 from None
    cohort = ContactGroup.objects.filter(pk=pk, role=GroupRole.COHORT).first()
    if cohort is None:
        raise Http404
    return cohort


# --- home -----------------------------------------------------------------------------


def featured_indicator(membership: Membership) -> tuple[Indicator | None, dict[str, Any] | None]:
    """The account's featured indicator, else the newest indicator that has data."""
    stats = stats_module()
    unit_ids = selectors.panel_unit_ids(membership)
    chosen = selectors.polls_settings(membership.account_id).featured_indicator_id
    indicators = selectors.visible_indicators(membership)
    if chosen:
        indicator = indicators.filter(pk=chosen).first()
        if indicator is not None:
            return indicator, stats.indicator_data(indicator, unit_ids)
    for indicator in indicators.order_by("-end_date", "-pk")[:INDICATOR_CANDIDATES]:
        data = stats.indicator_data(indicator, unit_ids)
        if data.get("follow_up"):
            return indicator, data
    return None, None


def _indicator_chart(indicator: Indicator, data: dict[str, Any]) -> dict[str, Any]:
    follow_up = data.get("follow_up") or []
    return {
        "kind": "indicator",
        "dates": [str(point.get("date")) for point in follow_up],
        "values": [point.get("sum") for point in follow_up],
        "baseline": data.get("baseline"),
        "goal": data.get("goal", indicator.goal),
        "labels": {
            "values": indicator.y_axis_title or _("Follow-up"),
            "baseline": _("Baseline"),
            "goal": _("Goal"),
        },
    }


@member_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    has_connection = Connection.objects.exists()
    context: dict[str, Any] = {
        "has_connection": has_connection,
        "can_act": selectors.can_act(membership),
        "can_setup": selectors.can_setup(membership),
        "setup_url": url_or_empty("polls:setup"),
    }
    if has_connection:
        stats = stats_module()
        figures = stats.home_figures(membership)
        indicator, data = featured_indicator(membership)
        context.update(
            figures=figures,
            recent_pollruns=figures.get("recent_pollruns", []),
            active_panels=figures.get("active_panels", []),
            active_cohorts=figures.get("active_cohorts", []),
            indicator=indicator,
            indicator_data=data,
            indicator_chart=_indicator_chart(indicator, data) if indicator and data else None,
            indicator_url=url_or_empty("polls:indicator_detail", indicator.pk) if indicator else "",
            has_polls=Poll.objects.filter(is_active=True).exists(),
        )
    return render(request, "polls/home.html", context)


# --- polls ----------------------------------------------------------------------------


@member_required
@require_GET
def poll_list(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    polls = list(selectors.active_polls().select_related("connection").order_by("rapidpro_name"))
    ids = [poll.pk for poll in polls]
    questions = dict(
        Question.objects.filter(poll_id__in=ids, is_present=True, is_hidden=False)
        .values("poll_id")
        .annotate(n=Count("pk"))
        .values_list("poll_id", "n")
    )
    dates = {
        row["poll_id"]: row
        for row in selectors.visible_pollruns(membership)
        .filter(poll_id__in=ids)
        .values("poll_id")
        .annotate(dates=Count("local_date", distinct=True), last=Max("local_date"))
    }
    rows = [
        {
            "poll": poll,
            "questions": questions.get(poll.pk, 0),
            "dates": dates.get(poll.pk, {}).get("dates", 0),
            "last": dates.get(poll.pk, {}).get("last"),
        }
        for poll in polls
    ]
    return render(
        request,
        "polls/poll_list.html",
        {
            "rows": rows,
            "has_connection": Connection.objects.exists(),
            "can_act": selectors.can_act(membership),
            "can_setup": selectors.can_setup(membership),
            "setup_url": url_or_empty("polls:setup"),
        },
    )


def _question_card(question: Question, query: str) -> dict[str, Any]:
    """A card's frame; its figures (series, summary, words) come from the chart API, so
    the page costs no aggregate and the cards load in parallel."""
    api = f"{API_PREFIX}/questions/{question.pk}"
    return {
        "question": question,
        "type": question.type,
        "chart_src": f"{api}/chart" + (f"?{query}" if query else ""),
    }


@member_required
@require_GET
def poll_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    poll = selectors.get_poll(membership, pk)
    context = filter_context(request, membership)
    filters, query = context["filters"], context["filter_query"]
    questions = list(selectors.visible_questions(poll))
    tab = "map" if request.GET.get("tab") == "map" else "charts"
    if tab == "charts":
        context["cards"] = [_question_card(q, query) for q in questions]
    else:
        mappable = [q for q in questions if q.type != QuestionType.OPEN]
        chosen = next((q for q in mappable if str(q.pk) == request.GET.get("q")), None)
        chosen = chosen or (mappable[0] if mappable else None)
        context.update(
            map_questions=mappable,
            map_question=chosen,
            map_data=stats_module().map_data(chosen, filters) if chosen else None,
            map_labels={
                "value": _("Average"),
                "count": _("Answers"),
                "no_data": _("No answers"),
                "no_location": _("No place on the map has a location yet."),
            },
        )
    context.update(
        poll=poll,
        tab=tab,
        pollrun_url=reverse("polls:pollrun_detail", args=[0]),
        can_act=selectors.can_act(membership),
        can_setup=selectors.can_setup(membership),
        edit_url=url_or_empty("polls:poll_edit", poll.pk),
        export_url=reverse("polls:poll_export", args=[poll.pk]) + (f"?{query}" if query else ""),
        labels={
            "sum": _("Sum"),
            "average": _("Average"),
            "response_rate": _("Response rate (%)"),
            "answers": _("Answers"),
            "share": _("Share (%)"),
            "no_data": _("No answers in this window."),
            "error": _("The chart could not be loaded."),
        },
    )
    return render(request, "polls/poll_detail.html", context)


# --- start a poll ---------------------------------------------------------------------


@member_required
@require_http_methods(["GET", "POST"])
def poll_start(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    require_act(membership)
    polls = selectors.active_polls().order_by("rapidpro_name")
    panels = selectors.visible_panels(membership).order_by("name")
    initial = {}
    if request.GET.get("poll"):
        initial["poll"] = selectors.get_poll(membership, request.GET["poll"]).pk
    form = StartPollForm(
        request.POST if request.method == "POST" else None,
        polls=polls,
        panels=panels,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        from closedloop.polls import outbound

        poll = form.cleaned_data["poll"]
        panel = selectors.get_panel(membership, form.cleaned_data["panel"].pk)
        try:
            job = outbound.start_poll(
                poll=poll,
                panel=panel,
                propagate=bool(form.cleaned_data["propagate"]),
                user=request.user,
            )
        except outbound.OutboundError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(
                request,
                _("Starting %(poll)s for %(panel)s.") % {"poll": poll.display_name, "panel": panel},
            )
            return redirect("polls:job", pk=job.pk)
    return render(
        request,
        "polls/start.html",
        {"form": form, "has_panels": panels.exists(), "has_polls": polls.exists()},
        status=400 if request.method == "POST" else 200,
    )


# --- job progress ---------------------------------------------------------------------


def _job_context(membership: Membership, pk: int) -> dict[str, Any]:
    job = job_selectors.get_job(membership, pk)
    if not job.kind.startswith("polls."):
        raise Http404
    params = job.params or {}
    pollrun_id = params.get("pollrun_id")
    if pollrun_id is None and params.get("broadcast_id"):
        pollrun_id = (
            Broadcast.objects.filter(pk=params["broadcast_id"])
            .values_list("pollrun_id", flat=True)
            .first()
        )
    back = reverse("polls:pollrun_detail", args=[pollrun_id]) if pollrun_id else ""
    return {"job": job, "back_url": back, "pollruns_url": reverse("polls:pollrun_list")}


@member_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Progress of a job the polls pages started (start, restart, message, fetch)."""
    context = _job_context(membership_of(request), pk)
    template = "polls/job.html#live" if request.headers.get("HX-Request") else "polls/job.html"
    return render(request, template, context)
