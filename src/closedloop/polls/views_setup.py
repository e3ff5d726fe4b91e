"""Polls setup pages (admins and managers; anyone else gets 404): connections with their
sync-health panel, the per-connection setup wizard (panels, cohorts, flows, fields, sync),
account polls settings and poll editing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from closedloop.accounts.access import account_of, membership_of
from closedloop.jobs.models import Job, JobStatus
from closedloop.polls import selectors, services
from closedloop.polls.forms import ConfirmNameForm, ConnectionForm, FetchRunsForm, SettingsForm
from closedloop.polls.models import (
    Connection,
    Poll,
    Question,
    QuestionType,
)
from closedloop.polls.services import SetupError

View = Callable[..., HttpResponse]
#: registries up to this size get a plain select per panel row; larger ones a search box
UNIT_SELECT_LIMIT = 300
SYNC_KINDS = ("polls.sync", "polls.fetch_runs")
STEPS = ("panels", "cohorts", "flows", "fields", "sync")


def setup_required(view: View) -> View:
    """Logged in as an admin or manager of the current account; anyone else gets 404."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not selectors.can_setup(membership_of(request)):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


# --- the sync-health panel -------------------------------------------------------------


@dataclass
class Health:
    connection: Connection
    job: Job | None
    state: str  # never | ok | failing | running | paused
    backoff: str = ""
    counts: list[tuple[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        c = self.connection
        job = self.job
        return {
            "state": self.state,
            "last_success_at": c.last_success_at,
            "last_error_at": c.last_error_at,
            "last_error": c.last_error,
            "consecutive_failures": c.consecutive_failures,
            "next_sync_at": c.next_sync_at,
            "backoff": self.backoff,
            "last_counts": c.last_counts or {},
            "job": (
                {
                    "id": job.pk,
                    "kind": job.kind,
                    "status": job.status,
                    "percent": job.percent,
                    "message": job.message,
                }
                if job is not None
                else None
            ),
        }


def running_jobs(connections: list[Connection]) -> dict[int, Job]:
    """The unfinished sync or fetch job of each connection (one query)."""
    wanted = {c.pk for c in connections}
    found: dict[int, Job] = {}
    jobs = Job.objects.filter(
        kind__in=SYNC_KINDS, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).order_by("-created_at")
    for job in jobs[:200]:
        pk = (job.params or {}).get("connection_id")
        if pk in wanted and pk not in found:
            found[pk] = job
    return found


def connection_health(
    connection: Connection, job: Job | None, now: dt.datetime | None = None
) -> Health:
    now = now or timezone.now()
    if job is not None:
        state = "running"
    elif not connection.is_active:
        state = "paused"
    elif connection.consecutive_failures:
        state = "failing"
    elif connection.last_success_at:
        state = "ok"
    else:
        state = "never"
    backoff = ""
    if connection.consecutive_failures and connection.next_sync_at:
        wait = (
            timeuntil(connection.next_sync_at, now) if connection.next_sync_at > now else _("now")
        )
        backoff = _("retrying in %(wait)s after %(count)s failures") % {
            "wait": wait,
            "count": connection.consecutive_failures,
        }
        if connection.consecutive_failures == 1:
            backoff = _("retrying in %(wait)s after 1 failure") % {"wait": wait}
    counts = sorted((connection.last_counts or {}).items())
    return Health(connection=connection, job=job, state=state, backoff=backoff, counts=counts)


def _health_for(connection: Connection) -> Health:
    return connection_health(connection, running_jobs([connection]).get(connection.pk))


# --- connections ------------------------------------------------------------------------


@setup_required
@require_GET
def setup(request: HttpRequest) -> HttpResponse:
    connections = list(Connection.objects.order_by("name"))
    jobs = running_jobs(connections)
    polls = list(
        Poll.objects.filter(is_active=True)
        .select_related("connection")
        .annotate(question_count=Count("questions", filter=Q(questions__is_present=True)))
        .order_by("rapidpro_name")
    )
    context = {
        "healths": [connection_health(c, jobs.get(c.pk)) for c in connections],
        "polls": polls,
        "settings": selectors.polls_settings(account_of(request)),
        "fetch_form": FetchRunsForm(),
    }
    return render(request, "polls/setup/setup.html", context)


@setup_required
def connection_create(request: HttpRequest) -> HttpResponse:
    from django.conf import settings

    form = ConnectionForm(
        request.POST or None, initial={"sync_interval_minutes": settings.POLLS_SYNC_MINUTES}
    )
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_create(
                account=account_of(request), user=request.user, **form.cleaned_data
            )
        except SetupError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                _(
                    "Connected to the RapidPro workspace “%(workspace)s”. Now choose panels, cohorts and polls."
                )
                % {"workspace": connection.workspace_name or connection.name},
            )
            return redirect("polls:connection_step", pk=connection.pk, step="panels")
    form.style_widgets()
    return render(request, "polls/setup/connection_form.html", {"form": form, "connection": None})


@setup_required
def connection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.get_connection(membership_of(request), pk)
    initial = {
        "name": connection.name,
        "host_url": connection.host_url,
        "sync_interval_minutes": connection.sync_interval_minutes,
    }
    form = ConnectionForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.connection_update(
                connection=connection, user=request.user, **form.cleaned_data
            )
        except SetupError as exc:
            connection.refresh_from_db()
            form.add_service_error(exc)
        else:
            messages.success(request, _("The connection was saved."))
            return redirect("polls:setup")
    form.style_widgets()
    return render(
        request, "polls/setup/connection_form.html", {"form": form, "connection": connection}
    )


@setup_required
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.get_connection(membership_of(request), pk)
    form = ConfirmNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.connection_delete(
                connection=connection,
                user=request.user,
                confirm_name=form.cleaned_data["confirm_name"],
            )
        except SetupError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("The connection and its polls data were deleted."))
            return redirect("polls:setup")
    form.style_widgets()
    context = {
        "connection": connection,
        "form": form,
        "counts": services.connection_data_counts(connection),
    }
    return render(request, "polls/setup/connection_delete.html", context)


@setup_required
@require_POST
def connection_check(request: HttpRequest) -> HttpResponse:
    """The form's "Test connection" button: test what was typed (nothing is saved)."""
    host = request.POST.get("host_url", "")
    token = request.POST.get("token", "").strip()
    pk = request.POST.get("connection", "")
    if not token and pk:
        token = services.connection_token(selectors.get_connection(membership_of(request), pk))
    try:
        host = services.clean_host_url(host)
    except SetupError as exc:
        result: dict[str, Any] = {"ok": False, "error": exc.message}
    else:
        result = (
            dict(services.check_connection(host, token))
            if token
            else {
                "ok": False,
                "error": _("Enter the API token of the RapidPro workspace."),
            }
        )
    return render(request, "polls/setup/_test_result.html", {"result": result})


@setup_required
@require_POST
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.get_connection(membership_of(request), pk)
    result = services.check_connection(connection.host_url, services.connection_token(connection))
    if getattr(request, "htmx", None):
        return render(request, "polls/setup/_test_result.html", {"result": result})
    if result["ok"]:
        messages.success(
            request,
            _("The connection works: workspace “%(workspace)s”.")
            % {"workspace": result["workspace"]},
        )
    else:
        messages.error(request, result["error"])
    return redirect(_back(request, connection))


def _back(request: HttpRequest, connection: Connection) -> str:
    nxt = request.POST.get("next", "")
    if nxt.startswith("/") and not nxt.startswith("//"):
        return nxt
    return reverse("polls:setup")


@setup_required
@require_POST
def connection_sync(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.get_connection(membership_of(request), pk)
    try:
        services.request_sync(connection=connection, user=request.user)
    except SetupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("A sync of %(name)s was queued.") % {"name": connection.name})
    return redirect(_back(request, connection))


@setup_required
@require_POST
def connection_fetch_runs(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.get_connection(membership_of(request), pk)
    form = FetchRunsForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter between 1 and 3660 days."))
        return redirect(_back(request, connection))
    try:
        services.request_fetch_runs(
            connection=connection, user=request.user, days=form.cleaned_data["days"]
        )
    except SetupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Older runs are being fetched; you will get an email when it is done."),
        )
    return redirect(_back(request, connection))


@setup_required
@require_GET
def connection_health_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The health panel alone (htmx polls it while a sync runs)."""
    connection = selectors.get_connection(membership_of(request), pk)
    return render(
        request,
        "polls/setup/_health.html",
        {
            "health": _health_for(connection),
            "fetch_form": FetchRunsForm(),
            "next": request.GET.get("next", ""),
        },
    )


# --- settings and poll editing ------------------------------------------------------------


@setup_required
def settings_edit(request: HttpRequest) -> HttpResponse:
    account = account_of(request)
    row = selectors.polls_settings(account)
    initial = {
        "same_day_rule": row.same_day_rule,
        "inbox_days": row.inbox_days,
        "contact_fields": row.visible_fields,
        "featured_indicator": row.featured_indicator_id,
    }
    form = SettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.settings_update(account=account, user=request.user, **form.service_kwargs())
        except SetupError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("The polls settings were saved."))
            return redirect("polls:setup")
    form.style_widgets()
    return render(request, "polls/setup/settings.html", {"form": form})


@setup_required
def poll_edit(request: HttpRequest, pk: int) -> HttpResponse:
    poll = selectors.get_poll(membership_of(request), pk, active_only=False)
    questions = list(Question.objects.filter(poll=poll).order_by("order", "pk"))
    error = ""
    posted = request.method == "POST"
    if posted:
        rows = [
            {
                "id": q.pk,
                "name": request.POST.get(f"q{q.pk}_name", ""),
                "type": request.POST.get(f"q{q.pk}_type", q.type),
                "is_hidden": bool(request.POST.get(f"q{q.pk}_hidden")),
            }
            for q in questions
        ]
        try:
            services.poll_update(
                poll=poll, name=request.POST.get("name", ""), questions=rows, user=request.user
            )
        except SetupError as exc:
            error = exc.message
        else:
            messages.success(request, _("The poll was saved."))
            return redirect("polls:setup")
    context = {
        "poll": poll,
        "name": request.POST.get("name", "") if posted else poll.name,
        "questions": [
            {
                "q": q,
                "name": request.POST.get(f"q{q.pk}_name", "") if posted else q.name,
                "type": request.POST.get(f"q{q.pk}_type", q.type) if posted else q.type,
                "hidden": bool(request.POST.get(f"q{q.pk}_hidden")) if posted else q.is_hidden,
            }
            for q in questions
        ],
        "types": QuestionType.choices,
        "form_error": error,
    }
    return render(request, "polls/setup/poll_edit.html", context, status=400 if error else 200)
