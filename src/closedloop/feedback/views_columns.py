"""Column pages: add (plain, random, formula), edit, rename, change type, clone, delete,
move. The column services (``feedback.columns``) do the work and log it."""

from __future__ import annotations

from typing import Any

from django import forms as djforms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import columns as column_services
from closedloop.feedback import selectors, services
from closedloop.feedback.forms import (
    ColumnAddForm,
    ColumnCloneForm,
    ColumnEditForm,
    ColumnRenameForm,
    ColumnTypeForm,
    FormulaColumnForm,
    RandomColumnForm,
)
from closedloop.feedback.models import Column, Workflow
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    posted_version,
    workflow_context,
)


def _column(workflow: Workflow, cid: int) -> Column:
    column = Column.objects.filter(workflow=workflow, pk=cid).first()
    if column is None:
        raise Http404
    column.workflow = workflow  # keeps user_role, saves a query
    return column


def _place_error(form: djforms.Form, exc: services.FeedbackError, default: str | None) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else default, error_text(exc))


# --- add -------------------------------------------------------------------------------


def _add_page(
    request: HttpRequest,
    workflow: Workflow,
    status: int = 200,
    active: str = "plain",
    **bound: Any,
) -> HttpResponse:
    columns = selectors.columns_of(workflow)
    initial = {"version": workflow.version}
    context = workflow_context(
        workflow,
        "table",
        add_form=bound.get("add_form") or ColumnAddForm(initial=initial),
        random_form=bound.get("random_form") or RandomColumnForm(initial=initial),
        formula_form=bound.get("formula_form")
        or FormulaColumnForm(initial=initial, columns=columns),
        active=active,
        conflict=bound.get("conflict", False),
    )
    return render(request, "feedback/column_add.html", context, status=status)


@member_required
def column_add(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    if request.method != "POST":
        return _add_page(request, workflow, active=request.GET.get("kind", "plain"))
    kind = request.POST.get("kind", "plain")
    handler = {"plain": _add_plain, "random": _add_random, "formula": _add_formula}.get(kind)
    if handler is None:
        raise Http404
    return handler(request, workflow)


def _run(
    request: HttpRequest,
    workflow: Workflow,
    form: djforms.Form,
    form_key: str,
    kind: str,
    call: Any,
) -> HttpResponse:
    """Check the version, run the service, and answer (page with errors or redirect)."""
    try:
        column = call(posted_version(request))
    except services.ConflictError:
        return _add_page(request, workflow, 409, kind, **{form_key: form, "conflict": True})
    except services.FeedbackError as exc:
        _place_error(form, exc, "name")
        return _add_page(request, workflow, 400, kind, **{form_key: form})
    messages.success(request, _("Column %(name)s was added.") % {"name": column.name})
    return redirect("feedback:table", wid=workflow.pk)


def _add_plain(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    form = ColumnAddForm(request.POST)
    if not form.is_valid():
        return _add_page(request, workflow, 400, "plain", add_form=form)
    data = form.cleaned_data
    initial = data["initial_value"].strip() or None
    return _run(
        request,
        workflow,
        form,
        "add_form",
        "plain",
        lambda version: column_services.column_add(
            workflow=workflow,
            actor=request.user,
            name=data["name"],
            data_type=data["data_type"],
            initial=initial,
            is_key=data["is_key"],
            description=data["description"],
            categories=form.category_list() or None,
            expected_version=version,
        ),
    )


def _add_random(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    form = RandomColumnForm(request.POST)
    if not form.is_valid():
        return _add_page(request, workflow, 400, "random", random_form=form)
    data = form.cleaned_data
    values = data["value_list"] or None
    int_range = None if values else (data["int_from"], data["int_to"])
    return _run(
        request,
        workflow,
        form,
        "random_form",
        "random",
        lambda version: column_services.column_add_random(
            workflow=workflow,
            actor=request.user,
            name=data["name"],
            values=values,
            int_range=int_range,
            seed=data["seed"],
            expected_version=version,
        ),
    )


def _add_formula(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    form = FormulaColumnForm(request.POST, columns=selectors.columns_of(workflow))
    if not form.is_valid():
        return _add_page(request, workflow, 400, "formula", formula_form=form)
    data = form.cleaned_data
    return _run(
        request,
        workflow,
        form,
        "formula_form",
        "formula",
        lambda version: column_services.column_add_formula(
            workflow=workflow,
            actor=request.user,
            name=data["name"],
            op=data["op"],
            inputs=list(data["inputs"]),
            expected_version=version,
        ),
    )


# --- edit one column ---------------------------------------------------------------------


def _edit_page(
    request: HttpRequest,
    workflow: Workflow,
    column: Column,
    status: int = 200,
    **bound: Any,
) -> HttpResponse:
    version = {"version": workflow.version}
    context = workflow_context(
        workflow,
        "table",
        column=column,
        edit_form=bound.get("edit_form")
        or ColumnEditForm(initial=ColumnEditForm.initial_for(column, workflow.version)),
        rename_form=bound.get("rename_form")
        or ColumnRenameForm(initial={**version, "new_name": column.name}),
        type_form=bound.get("type_form")
        or ColumnTypeForm(initial={**version, "data_type": column.data_type}),
        clone_form=bound.get("clone_form")
        or ColumnCloneForm(
            initial={**version, "name": _("Copy of %(name)s") % {"name": column.name}}
        ),
        delete_error=bound.get("delete_error", ""),
        conflict=bound.get("conflict", False),
    )
    return render(request, "feedback/column_edit.html", context, status=status)


def _column_op(
    request: HttpRequest,
    workflow: Workflow,
    column: Column,
    form: djforms.Form,
    form_key: str,
    call: Any,
    success: str,
    default_field: str | None,
) -> HttpResponse:
    if not form.is_valid():
        return _edit_page(request, workflow, column, 400, **{form_key: form})
    try:
        call(form.cleaned_data, posted_version(request))
    except services.ConflictError:
        return _edit_page(request, workflow, column, 409, **{form_key: form, "conflict": True})
    except services.FeedbackError as exc:
        if form_key == "delete":
            return _edit_page(request, workflow, column, 400, delete_error=error_text(exc))
        _place_error(form, exc, default_field)
        return _edit_page(request, workflow, column, 400, **{form_key: form})
    messages.success(request, success)
    return redirect("feedback:table", wid=workflow.pk)


@member_required
def column_edit(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    if request.method != "POST":
        return _edit_page(request, workflow, column)
    form = ColumnEditForm(request.POST)

    def update(data: dict[str, Any], version: int | None) -> None:
        column_services.column_update(
            column=column,
            actor=request.user,
            expected_version=version,
            description=data["description"],
            categories=form.category_list(),
            is_key=data["is_key"],
            in_viz=data["in_viz"],
            active_from=data["active_from"],
            active_to=data["active_to"],
        )

    return _column_op(
        request,
        workflow,
        column,
        form,
        "edit_form",
        update,
        _("Column %(name)s was saved.") % {"name": column.name},
        "categories",
    )


@member_required
@require_POST
def column_rename(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    old = column.name
    return _column_op(
        request,
        workflow,
        column,
        ColumnRenameForm(request.POST),
        "rename_form",
        lambda d, version: column_services.column_rename(
            column=column, actor=request.user, new_name=d["new_name"], expected_version=version
        ),
        _("Column %(old)s is now called %(new)s, in every filter, condition and message.")
        % {"old": old, "new": request.POST.get("new_name", "")},
        "new_name",
    )


@member_required
@require_POST
def column_change_type(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    return _column_op(
        request,
        workflow,
        column,
        ColumnTypeForm(request.POST),
        "type_form",
        lambda d, version: column_services.column_change_type(
            column=column, actor=request.user, data_type=d["data_type"], expected_version=version
        ),
        _("The type of column %(name)s was changed.") % {"name": column.name},
        "data_type",
    )


@member_required
@require_POST
def column_clone(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    return _column_op(
        request,
        workflow,
        column,
        ColumnCloneForm(request.POST),
        "clone_form",
        lambda d, version: column_services.column_clone(
            column=column, actor=request.user, name=d["name"], expected_version=version
        ),
        _("Column %(name)s was copied.") % {"name": column.name},
        "name",
    )


class _ConfirmForm(djforms.Form):
    version = djforms.IntegerField(required=False)
    force = djforms.BooleanField(required=False)


@member_required
@require_POST
def column_delete(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    return _column_op(
        request,
        workflow,
        column,
        _ConfirmForm(request.POST),
        "delete",
        lambda d, version: column_services.column_delete(
            column=column, actor=request.user, force=d["force"], expected_version=version
        ),
        _("Column %(name)s was deleted.") % {"name": column.name},
        None,
    )


@member_required
@require_POST
def column_move(request: HttpRequest, wid: int, cid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    column = _column(workflow, cid)
    ordered = selectors.columns_of(workflow)
    index = next(i for i, c in enumerate(ordered) if c.pk == column.pk)
    direction = request.POST.get("direction")
    if direction == "left":
        target = max(0, index - 1)
    elif direction == "right":
        target = min(len(ordered) - 1, index + 1)
    else:
        try:
            target = max(0, min(len(ordered) - 1, int(request.POST.get("position", "")) - 1))
        except ValueError:
            raise Http404 from None
    if target != index:
        try:
            column_services.column_move(
                column=column,
                actor=request.user,
                position=target + 1,
                expected_version=posted_version(request),
            )
        except services.FeedbackError as exc:
            messages.error(request, error_text(exc))
    back = request.POST.get("next", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("feedback:table", wid=workflow.pk)
