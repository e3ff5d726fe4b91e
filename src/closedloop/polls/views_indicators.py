"""Indicator pages: recent indicators, create/edit/delete, the indicator page (chart of
follow-up sums against a baseline or goal line, summary table, scoped to the member's
panels), the sandbox sample data and the XLSX export.

Everyone in the account may look at indicators; admins, managers and supervisors may
change them (others get 403); other accounts get 404.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from closedloop.accounts.access import member_required
from closedloop.polls import selectors, services, stats
from closedloop.polls.forms import IndicatorForm, SampleDataForm, numeric_questions
from closedloop.polls.models import Indicator, SampleAnswer
from closedloop.polls.services import SetupError
from closedloop.polls.views_setup import account_of, membership_of

View = Callable[..., HttpResponse]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SAMPLE_CONTACT_CHOICES = 500


def actor_required(view: View) -> View:
    """Admins, managers and supervisors change indicators; viewers get 403."""

    @member_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not selectors.can_act(membership_of(request)):
            raise PermissionDenied(_("You can look at indicators but not change them."))
        return view(request, *args, **kwargs)

    return wrapped


@member_required
@require_GET
def indicator_list(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    indicators = list(
        selectors.visible_indicators(membership).order_by("-end_date", "-created_at", "name")
    )
    featured = selectors.polls_settings(account_of(request)).featured_indicator_id
    context = {
        "indicators": indicators,
        "featured_id": featured,
        "can_act": selectors.can_act(membership),
    }
    return render(request, "polls/indicators/indicator_list.html", context)


def _unit_ids(request: HttpRequest) -> list[int] | None:
    return selectors.panel_unit_ids(membership_of(request))


def _chart(indicator: Indicator, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "dates": [p["date"] for p in data["follow_up"]],
        "sums": [p["sum"] for p in data["follow_up"]],
        "rates": [p["response_rate"] for p in data["follow_up"]],
        "baseline": data["baseline"],
        "goal": data["goal"],
        "sample": bool(data.get("sample")),
        "labels": {
            "follow_up": _("Follow-up"),
            "baseline": _("Baseline"),
            "goal": _("Goal"),
            "y_axis": indicator.y_axis_title or indicator.follow_up_question.display_name,
            "sample": _("Sample data"),
        },
    }


@member_required
@require_GET
def indicator_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    indicator = selectors.get_indicator(membership, pk)
    unit_ids = _unit_ids(request)
    data = stats.indicator_data(indicator, unit_ids)
    can_act = selectors.can_act(membership)
    sample_count = SampleAnswer.objects.filter(indicator=indicator).count()
    context = {
        "indicator": indicator,
        "data": data,
        "summary": data["summary"],
        "chart": _chart(indicator, data),
        "can_act": can_act,
        "sample_count": sample_count,
        "sample_form": _sample_form(request, indicator) if can_act else None,
        "scoped": unit_ids is not None,
    }
    return render(request, "polls/indicators/indicator_detail.html", context)


def _sample_form(request: HttpRequest, indicator: Indicator, data: Any = None) -> SampleDataForm:
    contacts = selectors.visible_contacts(membership_of(request)).filter(is_active=True)
    form = SampleDataForm(
        data,
        contacts=contacts.order_by("name", "pk")[:SAMPLE_CONTACT_CHOICES]
        if data is None
        else contacts,
        initial={"days": max(1, min(7, (indicator.end_date - indicator.start_date).days))},
    )
    form.style_widgets()
    return form


@actor_required
def indicator_create(request: HttpRequest) -> HttpResponse:
    form = IndicatorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            indicator = services.indicator_create(
                account=account_of(request), user=request.user, **form.service_kwargs()
            )
        except SetupError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("The indicator was created."))
            return redirect("polls:indicator_detail", pk=indicator.pk)
    form.style_widgets()
    return render(
        request, "polls/indicators/indicator_form.html", {"form": form, "indicator": None}
    )


@actor_required
def indicator_edit(request: HttpRequest, pk: int) -> HttpResponse:
    indicator = selectors.get_indicator(membership_of(request), pk)
    form = IndicatorForm(request.POST or None, indicator=indicator)
    if request.method == "POST" and form.is_valid():
        try:
            services.indicator_update(
                indicator=indicator, user=request.user, **form.service_kwargs()
            )
        except SetupError as exc:
            indicator.refresh_from_db()
            form.add_service_error(exc)
        else:
            messages.success(request, _("The indicator was saved."))
            return redirect("polls:indicator_detail", pk=indicator.pk)
    form.style_widgets()
    return render(
        request, "polls/indicators/indicator_form.html", {"form": form, "indicator": indicator}
    )


@actor_required
def indicator_delete(request: HttpRequest, pk: int) -> HttpResponse:
    indicator = selectors.get_indicator(membership_of(request), pk)
    if request.method == "POST":
        services.indicator_delete(indicator=indicator, user=request.user)
        messages.success(request, _("The indicator was deleted."))
        return redirect("polls:indicator_list")
    return render(request, "polls/indicators/indicator_delete.html", {"indicator": indicator})


@actor_required
@require_GET
def indicator_questions(request: HttpRequest) -> HttpResponse:
    """Options of the question select that follows a poll select (htmx)."""
    prefix = "follow_up" if request.GET.get("follow_up_poll") is not None else "baseline"
    poll_id = request.GET.get(f"{prefix}_poll", "")
    questions = numeric_questions(poll_id) if poll_id.isdigit() else []
    return render(
        request,
        "polls/indicators/_question_options.html",
        {"questions": questions, "chosen": request.GET.get(f"{prefix}_question", "")},
    )


# --- the sandbox -----------------------------------------------------------------------


@actor_required
@require_POST
def sample_generate(request: HttpRequest, pk: int) -> HttpResponse:
    indicator = selectors.get_indicator(membership_of(request), pk)
    form = _sample_form(request, indicator, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            count = services.sample_data_generate(
                indicator=indicator,
                minimum=data["minimum"],
                maximum=data["maximum"],
                contacts=form.chosen_contacts(),
                days=data["days"],
                user=request.user,
            )
        except SetupError as exc:
            form.add_service_error(exc)
        else:
            if not indicator.use_sample_data:
                services.indicator_set_sample_mode(
                    indicator=indicator, use_sample_data=True, user=request.user
                )
            messages.success(
                request,
                _("%(count)s sample values were generated and are shown.") % {"count": count},
            )
            return redirect("polls:indicator_detail", pk=indicator.pk)
    form.style_widgets()
    messages.error(
        request,
        _("No sample data was generated: %(errors)s")
        % {"errors": " ".join(str(e) for errs in form.errors.values() for e in errs)},
    )
    return redirect("polls:indicator_detail", pk=indicator.pk)


@actor_required
@require_POST
def sample_clear(request: HttpRequest, pk: int) -> HttpResponse:
    indicator = selectors.get_indicator(membership_of(request), pk)
    services.sample_data_clear(indicator=indicator, user=request.user)
    messages.success(request, _("The sample data was cleared; real answers are shown."))
    return redirect("polls:indicator_detail", pk=indicator.pk)


@actor_required
@require_POST
def sample_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    indicator = selectors.get_indicator(membership_of(request), pk)
    wanted = request.POST.get("use_sample_data") == "1"
    try:
        services.indicator_set_sample_mode(
            indicator=indicator, use_sample_data=wanted, user=request.user
        )
    except SetupError as exc:
        messages.error(request, exc.message)
    return redirect("polls:indicator_detail", pk=indicator.pk)


# --- export -------------------------------------------------------------------------------


@member_required
@require_GET
def indicator_export(request: HttpRequest, pk: int) -> HttpResponse:
    from openpyxl import Workbook

    indicator = selectors.get_indicator(membership_of(request), pk)
    data = stats.indicator_data(indicator, _unit_ids(request))
    summary = data["summary"]
    book = Workbook(write_only=True)
    sheet = book.create_sheet(_("Indicator")[:31])
    if data.get("sample"):
        sheet.append([_("Sample data — not real answers")])
    sheet.append([_("Indicator"), indicator.name])
    sheet.append([_("From"), indicator.start_date, _("to"), indicator.end_date])
    sheet.append([_("Baseline question"), str(indicator.baseline_question)])
    sheet.append([_("Follow-up question"), str(indicator.follow_up_question)])
    sheet.append([])
    sheet.append([_("Date"), _("Follow-up sum"), _("Response rate (%)"), _("Baseline"), _("Goal")])
    for point in data["follow_up"]:
        sheet.append(
            [point["date"], point["sum"], point["response_rate"], data["baseline"], data["goal"]]
        )
    sheet.append([])
    sheet.append([_("Summary")])
    for label, key in (
        (_("Dates"), "dates"),
        (_("Baseline"), "baseline"),
        (_("Baseline response rate (%)"), "baseline_response_rate"),
        (_("Follow-up mean"), "follow_up_mean"),
        (_("Follow-up standard deviation"), "follow_up_stdev"),
        (_("Follow-up response rate (%)"), "follow_up_response_rate"),
    ):
        sheet.append([label, summary.get(key)])
    buffer = io.BytesIO()
    book.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX)
    name = slugify(indicator.name) or "indicator"
    response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    return response
