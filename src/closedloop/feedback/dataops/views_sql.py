"""SQL connection pages, for account administrators: list, create, edit, delete, test.
The password is write-only: it is stored encrypted and never sent back to the browser."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback.dataops import sqlconn
from closedloop.feedback.dataops.errors import FeedbackError
from closedloop.feedback.dataops.forms import SQLConnectionForm
from closedloop.feedback.models import SQLConnection
from closedloop.feedback.views_workflows import error_text, member_required, membership_of

View = Callable[..., HttpResponse]


def admin_required(view: View) -> View:
    @member_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not membership_of(request).is_admin:
            raise PermissionDenied(_("Only account administrators manage SQL connections."))
        return view(request, *args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _add_error(form: SQLConnectionForm, exc: FeedbackError) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, error_text(exc))


@admin_required
def sqlconn_list(request: HttpRequest) -> HttpResponse:
    connections = list(sqlconn.connections_for(membership_of(request).account_id))
    return render(request, "feedback/dataops/sqlconn_list.html", {"connections": connections})


@admin_required
def sqlconn_create(request: HttpRequest) -> HttpResponse:
    form = SQLConnectionForm(request.POST or None, initial={"enabled": True})
    del form.fields["clear_password"]  # nothing stored yet
    if request.method == "POST" and form.is_valid():
        try:
            connection = sqlconn.sqlconn_create(
                account=membership_of(request).account,
                actor=request.user,
                password=form.cleaned_data.get("password") or "",
                **form.service_fields(),
            )
        except FeedbackError as exc:
            _add_error(form, exc)
        else:
            messages.success(
                request, _("Connection %(name)s was created.") % {"name": connection.name}
            )
            return redirect("feedback:sqlconn_list")
    return render(
        request, "feedback/dataops/sqlconn_form.html", {"form": form.style(), "connection": None}
    )


@admin_required
def sqlconn_edit(request: HttpRequest, pk: int) -> HttpResponse:
    connection = sqlconn.get_connection(membership_of(request).account_id, pk)
    initial = {f: getattr(connection, f) for f in sqlconn.AUDITED}
    form = SQLConnectionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            sqlconn.sqlconn_update(
                connection=connection,
                actor=request.user,
                password=form.cleaned_data.get("password") or None,
                clear_password=form.cleaned_data.get("clear_password", False),
                **form.service_fields(),
            )
        except FeedbackError as exc:
            _add_error(form, exc)
        else:
            messages.success(
                request, _("Your changes to %(name)s were saved.") % {"name": connection.name}
            )
            return redirect("feedback:sqlconn_list")
    context = {"form": form.style(), "connection": connection}
    return render(request, "feedback/dataops/sqlconn_form.html", context)


@admin_required
def sqlconn_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = sqlconn.get_connection(membership_of(request).account_id, pk)
    if request.method == "POST":
        name = connection.name
        sqlconn.sqlconn_delete(connection=connection, actor=request.user)
        messages.success(request, _("Connection %(name)s was deleted.") % {"name": name})
        return redirect("feedback:sqlconn_list")
    return render(request, "feedback/dataops/sqlconn_delete.html", {"connection": connection})


@require_POST
@admin_required
def sqlconn_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection: SQLConnection = sqlconn.get_connection(membership_of(request).account_id, pk)
    try:
        text = sqlconn.test_connection(connection, password=request.POST.get("password") or None)
        ok = True
    except FeedbackError as exc:
        text, ok = error_text(exc), False
    context = {"connection": connection, "ok": ok, "text": text}
    return render(request, "feedback/dataops/sqlconn_list.html#test-result", context)
