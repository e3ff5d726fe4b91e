"""Filter and view pages: lists with readable formulas and counts, the visual builder, the
live-count endpoint, and the column-subset views."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from closedloop.feedback import conditions, filters, selectors
from closedloop.feedback.conditions import ConditionError
from closedloop.feedback.filters import FilterError
from closedloop.feedback.models import Filter, View, Workflow
from closedloop.feedback.views_workflows import (
    load_workflow,
    member_required,
    membership_of,
    posted_version,
    workflow_context,
)

try:  # the storage part's conflict error (optimistic lock)
    from closedloop.feedback.services import ConflictError
except ImportError:  # pragma: no cover
    ConflictError = type("ConflictError", (Exception,), {})  # type: ignore[assignment,misc]


class FilterForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=filters.NAME_MAX)
    description = forms.CharField(
        label=gettext_lazy("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    formula = forms.CharField(required=False, widget=forms.HiddenInput)
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean_formula(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("formula") or ""
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError(
                _("The rules could not be read; please rebuild them.")
            ) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The rules could not be read; please rebuild them."))
        return value


class ViewForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=filters.NAME_MAX)
    description = forms.CharField(
        label=gettext_lazy("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    columns = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Columns"),
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Choose none to show every column."),
        required=False,
    )
    filter = forms.TypedChoiceField(
        label=gettext_lazy("Filter"), coerce=int, empty_value=None, required=False
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, workflow: Workflow, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        columns_field = cast(forms.ChoiceField, self.fields["columns"])
        filter_field = cast(forms.ChoiceField, self.fields["filter"])
        columns_field.choices = [(c.pk, c.name) for c in selectors.columns_of(workflow)]
        filter_field.choices = [("", _("Every row"))] + [
            (f.pk, f.name) for f in Filter.objects.filter(workflow=workflow).order_by("name")
        ]
        self.fields["filter"].widget.attrs["class"] = "form-select"
        for name in ("name", "description"):
            self.fields[name].widget.attrs["class"] = "form-control"


def _style(form: forms.Form) -> None:
    for name in ("name", "description"):
        form.fields[name].widget.attrs["class"] = "form-control"


def _get_filter(workflow: Workflow, fid: int) -> Filter:
    item = Filter.objects.filter(workflow=workflow, pk=fid).first()
    if item is None:
        raise Http404
    item.workflow = workflow
    return item


def _get_view(workflow: Workflow, vid: int) -> View:
    item = View.objects.filter(workflow=workflow, pk=vid).select_related("filter").first()
    if item is None:
        raise Http404
    item.workflow = workflow
    return item


def _apply_error(form: forms.Form, exc: ConditionError) -> None:
    if isinstance(exc, FilterError) and exc.field in form.fields:
        form.add_error(exc.field, exc.message)
    elif isinstance(exc, FilterError) and exc.field == "column_ids" and "columns" in form.fields:
        form.add_error("columns", exc.message)
    else:
        form.add_error("formula" if "formula" in form.fields else None, str(exc))


# --- filters ------------------------------------------------------------------------------


def _lists_context(workflow: Workflow) -> dict[str, Any]:
    filter_rows = list(Filter.objects.filter(workflow=workflow).order_by("name"))
    column_names = {c.pk: c.name for c in selectors.columns_of(workflow)}
    views = list(View.objects.filter(workflow=workflow).select_related("filter").order_by("name"))
    for view in views:
        view.column_names = [column_names[i] for i in view.column_ids if i in column_names]  # type: ignore[attr-defined]
    for item in filter_rows:
        item.formula_text = conditions.formula_to_text(item.formula)  # type: ignore[attr-defined]
    return {"filters": filter_rows, "views": views}


@member_required
def filter_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    context = workflow_context(workflow, "filters", section="filters", **_lists_context(workflow))
    return render(request, "feedback/filters/list.html", context)


@member_required
def view_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    context = workflow_context(workflow, "filters", section="views", **_lists_context(workflow))
    return render(request, "feedback/filters/list.html", context)


def _filter_page(
    request: HttpRequest, workflow: Workflow, form: FilterForm, item: Filter | None, **extra: Any
) -> HttpResponse:
    formula: Any = form.data.get("formula") if form.is_bound else (item.formula if item else {})
    context = workflow_context(
        workflow,
        "filters",
        form=form,
        item=item,
        formula=formula or {},
        columns=selectors.columns_of(workflow),
        **extra,
    )
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "feedback/filters/filter_form.html", context, status=status)


def _save_filter(request: HttpRequest, workflow: Workflow, item: Filter | None) -> HttpResponse:
    form = FilterForm(request.POST)
    _style(form)
    if not form.is_valid():
        return _filter_page(request, workflow, form, item)
    data = form.cleaned_data
    user = membership_of(request).user
    try:
        if item is None:
            item = filters.filter_create(
                workflow=workflow,
                actor=user,
                name=data["name"],
                formula=data["formula"],
                description=data["description"],
                expected_version=posted_version(request),
            )
            messages.success(request, _("Filter “%(name)s” created.") % {"name": item.name})
        else:
            item = filters.filter_update(
                filter=item,
                actor=user,
                name=data["name"],
                formula=data["formula"],
                description=data["description"],
                expected_version=posted_version(request),
            )
            messages.success(request, _("Filter “%(name)s” saved.") % {"name": item.name})
    except ConflictError:
        return _filter_page(request, workflow, form, item, conflict=True)
    except ConditionError as exc:
        _apply_error(form, exc)
        return _filter_page(request, workflow, form, item)
    return redirect("feedback:filter_list", workflow.pk)


@member_required
def filter_create(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    if request.method == "POST":
        return _save_filter(request, workflow, None)
    form = FilterForm(initial={"version": workflow.version})
    _style(form)
    return _filter_page(request, workflow, form, None)


@member_required
def filter_edit(request: HttpRequest, wid: int, fid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    item = _get_filter(workflow, fid)
    if request.method == "POST":
        return _save_filter(request, workflow, item)
    form = FilterForm(
        initial={
            "name": item.name,
            "description": item.description,
            "version": workflow.version,
        }
    )
    _style(form)
    return _filter_page(request, workflow, form, item)


@member_required
@require_POST
def filter_delete(request: HttpRequest, wid: int, fid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    item = _get_filter(workflow, fid)
    try:
        filters.filter_delete(
            filter=item, actor=membership_of(request).user, expected_version=posted_version(request)
        )
    except ConflictError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Filter “%(name)s” deleted.") % {"name": item.name})
    return redirect("feedback:filter_list", workflow.pk)


@member_required
@require_POST
def filter_count(request: HttpRequest, wid: int) -> JsonResponse:
    """The builder's live count: POST ``{"formula": …, "action": id?}`` (JSON) →
    ``{"count": n}`` or ``{"error": "…", "field": "…"}`` (400)."""
    membership = membership_of(request)
    workflow = load_workflow(request, wid)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": _("The request body is not valid JSON.")}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": _("Send a JSON object.")}, status=400)
    formula = body.get("formula", body if "rules" in body else {})
    within = None
    if body.get("action") not in (None, ""):
        action = selectors.get_action(membership, workflow.pk, body["action"])
        within = action.filter.formula if action.filter else None
    if formula and not isinstance(formula, dict):
        return JsonResponse({"error": _("The formula must be a JSON object.")}, status=400)
    try:
        count = conditions.count_matching(workflow, formula or None, within=within)
    except ConditionError as exc:
        return JsonResponse({"error": str(exc), "field": exc.field}, status=400)
    return JsonResponse({"count": count})


# --- views --------------------------------------------------------------------------------


def _view_page(
    request: HttpRequest, workflow: Workflow, form: ViewForm, item: View | None, **extra: Any
) -> HttpResponse:
    context = workflow_context(workflow, "filters", form=form, item=item, **extra)
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "feedback/filters/view_form.html", context, status=status)


def _save_view(request: HttpRequest, workflow: Workflow, item: View | None) -> HttpResponse:
    form = ViewForm(request.POST, workflow=workflow)
    if not form.is_valid():
        return _view_page(request, workflow, form, item)
    data = form.cleaned_data
    chosen = set(data["columns"])
    ordered = [c.pk for c in selectors.columns_of(workflow) if c.pk in chosen]
    the_filter = _get_filter(workflow, data["filter"]) if data["filter"] else None
    user = membership_of(request).user
    try:
        if item is None:
            item = filters.view_create(
                workflow=workflow,
                actor=user,
                name=data["name"],
                column_ids=ordered,
                filter=the_filter,
                description=data["description"],
                expected_version=posted_version(request),
            )
            messages.success(request, _("View “%(name)s” created.") % {"name": item.name})
        else:
            item = filters.view_update(
                view=item,
                actor=user,
                name=data["name"],
                column_ids=ordered,
                filter=the_filter,
                description=data["description"],
                expected_version=posted_version(request),
            )
            messages.success(request, _("View “%(name)s” saved.") % {"name": item.name})
    except ConflictError:
        return _view_page(request, workflow, form, item, conflict=True)
    except ConditionError as exc:
        _apply_error(form, exc)
        return _view_page(request, workflow, form, item)
    return redirect("feedback:view_list", workflow.pk)


@member_required
def view_create(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    if request.method == "POST":
        return _save_view(request, workflow, None)
    form = ViewForm(workflow=workflow, initial={"version": workflow.version})
    return _view_page(request, workflow, form, None)


@member_required
def view_edit(request: HttpRequest, wid: int, vid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    item = _get_view(workflow, vid)
    if request.method == "POST":
        return _save_view(request, workflow, item)
    form = ViewForm(
        workflow=workflow,
        initial={
            "name": item.name,
            "description": item.description,
            "columns": item.column_ids,
            "filter": item.filter_id,
            "version": workflow.version,
        },
    )
    return _view_page(request, workflow, form, item)


@member_required
@require_POST
def view_delete(request: HttpRequest, wid: int, vid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    item = _get_view(workflow, vid)
    try:
        filters.view_delete(
            view=item, actor=membership_of(request).user, expected_version=posted_version(request)
        )
    except ConflictError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("View “%(name)s” deleted.") % {"name": item.name})
    return redirect("feedback:view_list", workflow.pk)
