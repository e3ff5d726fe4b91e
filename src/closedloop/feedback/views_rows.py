"""Row pages: add a row, edit or delete one row found by its key."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import selectors, services
from closedloop.feedback import table as tbl
from closedloop.feedback.forms import RowForm, row_field_name, row_initial
from closedloop.feedback.models import Column, Workflow
from closedloop.feedback.views_table import has_table, key_text, row_query
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    posted_version,
    workflow_context,
)


def find_row(
    workflow: Workflow, columns: list[Column], key_name: str, raw_value: str
) -> tuple[Column, Any, dict[str, Any]]:
    """The key column, the typed key value and the row it names (404 if none)."""
    key = next((c for c in columns if c.is_key and c.name == key_name), None)
    if key is None or not has_table(workflow, columns):
        raise Http404
    try:
        value = services.coerce_value(key, raw_value)
    except services.FeedbackError:
        raise Http404 from None
    if value is None:
        raise Http404
    rows = tbl.fetch_rows(
        workflow,
        columns,
        where=f"{tbl.qn(key.physical)} = %s",
        params=[tbl.to_db(key.data_type, value)],
        limit=1,
    )
    if not rows:
        raise Http404
    return key, value, rows[0]


def _typed_values(form: RowForm) -> dict[str, Any] | None:
    """Column name → typed value; None (and field errors on the form) when any is wrong."""
    ok = form.is_valid()
    values: dict[str, Any] = {}
    for name, raw in form.raw_values().items():
        column = next(c for c in form.columns if c.name == name)
        if row_field_name(column) in form.errors:
            continue
        try:
            values[name] = services.coerce_value(column, raw)
        except services.FeedbackError as exc:
            form.add_error(row_field_name(column), error_text(exc))
            ok = False
    return values if ok else None


def _service_error_to_form(form: RowForm, exc: services.FeedbackError) -> None:
    by_name = {c.name: c for c in form.columns}
    placed = False
    for item in exc.errors or []:
        column = by_name.get(item.get("column") or "")
        if column is not None:
            form.add_error(row_field_name(column), item.get("message") or exc.message)
            placed = True
    if not placed:
        form.add_error(None, error_text(exc))


def _row_page(
    request: HttpRequest,
    workflow: Workflow,
    form: RowForm,
    *,
    key: Column | None = None,
    key_value: Any = None,
    status: int = 200,
    conflict: bool = False,
) -> HttpResponse:
    context = workflow_context(
        workflow,
        "table",
        form=form,
        fields=[(c, form.bound_for(c)) for c in form.columns],
        key=key,
        key_value=key_text(key_value) if key_value is not None else "",
        row_query=row_query(key, key_value) if key is not None else "",
        conflict=conflict,
    )
    return render(request, "feedback/row_form.html", context, status=status)


@member_required
def row_add(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    columns = selectors.columns_of(workflow)
    if not columns:
        messages.info(request, _("Load data first: the table has no columns yet."))
        return redirect("feedback:table", wid=workflow.pk)
    if request.method != "POST":
        form = RowForm(columns=columns, initial={"version": workflow.version})
        return _row_page(request, workflow, form)
    form = RowForm(request.POST, columns=columns)
    if (values := _typed_values(form)) is None:
        return _row_page(request, workflow, form, status=400)
    try:
        services.row_insert(
            workflow=workflow,
            actor=request.user,
            values=values,
            expected_version=posted_version(request),
        )
    except services.ConflictError:
        return _row_page(request, workflow, form, status=409, conflict=True)
    except services.FeedbackError as exc:
        _service_error_to_form(form, exc)
        return _row_page(request, workflow, form, status=400)
    messages.success(request, _("The row was added."))
    if "add_another" in request.POST:
        return redirect("feedback:row_add", wid=workflow.pk)
    return redirect("feedback:table", wid=workflow.pk)


@member_required
def row_edit(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "view" if request.method != "POST" else "edit")
    columns = selectors.columns_of(workflow)
    data = request.POST if request.method == "POST" else request.GET
    key, key_value, row = find_row(workflow, columns, data.get("key", ""), data.get("value", ""))
    if request.method != "POST":
        initial = {**row_initial(columns, row), "version": workflow.version}
        form = RowForm(columns=columns, initial=initial)
        if workflow.user_role == "viewer":  # type: ignore[attr-defined]
            for field in form.fields.values():
                field.disabled = True
        return _row_page(request, workflow, form, key=key, key_value=key_value)
    form = RowForm(request.POST, columns=columns)
    if (values := _typed_values(form)) is None:
        return _row_page(request, workflow, form, key=key, key_value=key_value, status=400)
    try:
        services.row_update(
            workflow=workflow,
            actor=request.user,
            key_column=key.name,
            key_value=key_value,
            values=values,
            expected_version=posted_version(request),
        )
    except services.ConflictError:
        return _row_page(
            request, workflow, form, key=key, key_value=key_value, status=409, conflict=True
        )
    except services.FeedbackError as exc:
        _service_error_to_form(form, exc)
        return _row_page(request, workflow, form, key=key, key_value=key_value, status=400)
    messages.success(request, _("The row was saved."))
    return redirect("feedback:table", wid=workflow.pk)


@member_required
@require_POST
def row_delete(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    columns = selectors.columns_of(workflow)
    key, key_value, _row = find_row(
        workflow, columns, request.POST.get("key", ""), request.POST.get("value", "")
    )
    try:
        services.row_delete(
            workflow=workflow,
            actor=request.user,
            key_column=key.name,
            key_value=key_value,
            expected_version=posted_version(request),
        )
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect(f"{_row_url(workflow)}?{row_query(key, key_value)}")
    messages.success(request, _("The row %(key)s was deleted.") % {"key": key_text(key_value)})
    return redirect("feedback:table", wid=workflow.pk)


def _row_url(workflow: Workflow) -> str:
    from django.urls import reverse

    return reverse("feedback:row_edit", args=[workflow.pk])
