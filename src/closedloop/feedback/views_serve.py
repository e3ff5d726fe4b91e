"""Served actions: what a logged-in learner sees at ``/feedback/serve/<public_id>/`` (their
personalized text, their survey, their TODO list), and the instructors' data-entry table.

Learners may have no membership at all: the action is found by its public id outside any
scope, then its own account's scope is opened for everything else. The learner's row is
the one whose item column (default ``email``) equals their email, case-insensitively.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.feedback import render as rendering
from closedloop.feedback import selectors, surveys, table
from closedloop.feedback.models import IN_ACTION_TYPES, Action, ActionColumn, Column
from closedloop.feedback.services import FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    member_required,
    membership_of,
    workflow_context,
)

ENTRY_PAGE_SIZE = 25


def _message_page(
    request: HttpRequest, action: Action | None, title: str, text: str, status: int
) -> HttpResponse:
    return render(
        request,
        "feedback/serve/message.html",
        {"action": action, "title": title, "text": text},
        status=status,
    )


@login_required
def serve(request: HttpRequest, public_id: UUID) -> HttpResponse:
    with scopes_disabled():
        action = (
            Action.objects.select_related("workflow", "workflow__account")
            .filter(public_id=public_id, serve_enabled=True)
            .first()
        )
    if action is None or not surveys.is_servable(action):
        raise Http404
    with account_scope(action.account_id):
        return _serve_in_scope(request, action)


def _serve_in_scope(request: HttpRequest, action: Action) -> HttpResponse:
    if not surveys.window_open(action.active_from, action.active_to):
        return _message_page(
            request,
            action,
            _("Not open"),
            _("This page is available only between %(start)s and %(end)s.")
            % {"start": _fmt(action.active_from) or "…", "end": _fmt(action.active_to) or "…"},
            200,
        )
    columns = list(Column.objects.filter(workflow=action.workflow).order_by("position", "id"))
    row = surveys.find_learner_row(action, columns, str(getattr(request.user, "email", "")))
    if row is None:
        return _message_page(
            request,
            action,
            _("Nothing for you here"),
            _(
                "There is no information for %(email)s in this page. If you think this is wrong, contact your instructor."
            )
            % {"email": str(getattr(request.user, "email", ""))},
            404,
        )
    if action.action_type in IN_ACTION_TYPES:
        return _serve_survey(request, action, columns, row)
    prepared = rendering.prepare(action)
    prepared.fetch = columns
    rows = rendering._fetch(
        prepared, where=f"{rendering.ROW_ID} = %s", params=[row[rendering.ROW_ID]], limit=1
    )
    if not rows:
        return _message_page(
            request,
            action,
            _("Nothing for you here"),
            _("There is no information for you in this page."),
            404,
        )
    message = rendering._message(prepared, rows[0], with_text=False)
    is_html = action.text_format in ("html", "markdown")
    return render(
        request,
        "feedback/serve/text.html",
        {"action": action, "message": message, "is_html": is_html},
    )


def _fmt(value: Any) -> str:
    from django.utils import formats, timezone

    if value is None:
        return ""
    return str(formats.date_format(timezone.localtime(value), "DATETIME_FORMAT"))


def _serve_survey(
    request: HttpRequest, action: Action, columns: list[Column], row: dict[str, Any]
) -> HttpResponse:
    seed = f"{action.pk}:{request.user.pk}"
    questions = surveys.questions_for(action, row, seed=seed)
    error = None
    if request.method == "POST":
        try:
            values = surveys.answers_from(questions, request.POST, action)
            surveys.save_answers(
                action=action, actor=request.user, row=row, columns=columns, values=values
            )
        except FeedbackError as exc:
            error = error_text(exc)
        else:
            messages.success(request, _("Thank you, your answers were saved."))
            return redirect("feedback:serve", public_id=action.public_id)
    intro = ""
    if action.text_content.strip():
        try:
            prepared = rendering.prepare(action)
            intro = prepared.body.render(row, {})
        except Exception:  # noqa: BLE001 - an intro that does not compile is left out
            intro = ""
    return render(
        request,
        "feedback/serve/survey.html",
        {
            "action": action,
            "questions": questions,
            "intro": intro,
            "error": error,
            "posted": request.POST if error else None,
            "is_todo": action.action_type == "todo_list",
        },
        status=400 if error else 200,
    )


# --- instructor data entry -------------------------------------------------------------------


@member_required
def action_entry(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """A page of rows with the survey's question columns editable inline, one row per form."""
    action = selectors.get_action(
        membership_of(request), wid, aid, "edit" if request.method == "POST" else "view"
    )
    if action.action_type not in IN_ACTION_TYPES:
        raise Http404
    workflow = action.workflow
    columns = selectors.columns_of(workflow)
    try:
        key = surveys.key_column(action, columns)
    except FeedbackError:
        raise Http404 from None
    question_columns = [
        ac.column
        for ac in ActionColumn.objects.filter(action=action)
        .select_related("column")
        .order_by("position", "id")
    ]
    if request.method == "POST":
        values: dict[str, Any] = {}
        try:
            for column in question_columns:
                field = f"q{column.pk}"
                if column.data_type == "boolean" and not column.categories:
                    values[column.name] = bool(request.POST.get(field))
                elif field in request.POST:
                    values[column.name] = surveys.services.coerce_value(column, request.POST[field])
            surveys.services.row_update(
                workflow=workflow,
                actor=request.user,
                key_column=key.name,
                key_value=surveys.services.coerce_value(key, request.POST.get("key", "")),
                values=values,
            )
        except FeedbackError as exc:
            messages.error(request, error_text(exc))
        else:
            messages.success(
                request, _("Row %(key)s was saved.") % {"key": request.POST.get("key", "")}
            )
        return redirect(
            f"{request.path}?page={request.POST.get('page', 1)}&q={request.POST.get('q', '')}"
        )
    q = request.GET.get("q", "").strip()
    search_where, search_params = table.search_sql(columns, q) if q else ("", [])
    total = table.count_rows(workflow, where=search_where, params=search_params)
    page = Paginator(range(total), ENTRY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = (
        table.fetch_rows(
            workflow,
            [key, *question_columns],
            search=q,
            order_by=key,
            offset=(page.number - 1) * ENTRY_PAGE_SIZE,
            limit=ENTRY_PAGE_SIZE,
        )
        if total
        else []
    )
    entry_rows = [
        {
            "key": r[key.name],
            "form_id": f"entry-{i}",
            "cells": [surveys.Question(c, True, r.get(c.name), False) for c in question_columns],
        }
        for i, r in enumerate(rows)
    ]
    context = workflow_context(
        workflow,
        "actions",
        action=action,
        key=key,
        question_columns=question_columns,
        rows=entry_rows,
        page=page,
        q=q,
        total=total,
        vendor=connection.vendor,
    )
    return render(request, "feedback/actions/action_entry.html", context)
