"""People pages: list and search, detail, create/edit/delete, cohorts, custom fields, import."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models.deletion import ProtectedError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from closedloop.accounts.access import member_required
from closedloop.accounts.models import Account, Membership
from closedloop.core.tabular import TabularError, preview, read_table
from closedloop.jobs.runtime import enqueue_job
from closedloop.people import selectors, services
from closedloop.people.forms import (
    CohortForm,
    CustomFieldForm,
    MappingForm,
    PersonForm,
    UploadForm,
)
from closedloop.people.models import Cohort, Identifier
from closedloop.people.sections import render_sections
from closedloop.people.tasks import JOB_KIND
from closedloop.registry.selectors import ancestors, get_unit

PAGE_SIZE = 50
PREVIEW_ROWS = 10

View = Callable[..., HttpResponse]


def editor_required(view: View) -> View:
    @member_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _membership(request).can_edit:
            raise PermissionDenied(_("You can look at people but not change them."))
        return view(request, *args, **kwargs)

    return wrapped


def admin_required(view: View) -> View:
    @member_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _membership(request).is_admin:
            raise PermissionDenied(_("Only administrators manage custom fields."))
        return view(request, *args, **kwargs)

    return wrapped


def _membership(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined,no-any-return]


def _account(request: HttpRequest) -> Account:
    return request.account  # type: ignore[attr-defined,no-any-return]


# --- list and detail ------------------------------------------------------------------


def _filters(request: HttpRequest) -> dict[str, Any]:
    membership = _membership(request)
    params = request.GET
    org_unit = get_unit(membership, params["org_unit"]) if params.get("org_unit") else None
    cohort = None
    if params.get("cohort"):
        cohort = Cohort.objects.filter(pk=_int_or_404(params["cohort"])).first()
        if cohort is None:
            raise Http404
    active = {"yes": True, "no": False}.get(params.get("active", ""))
    return {
        "q": params.get("q", "").strip(),
        "org_unit": org_unit,
        "cohort": cohort,
        "active": active,
    }


def _int_or_404(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Http404 from None


@member_required
def person_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    filters = _filters(request)
    people = selectors.search_people(membership, **filters)
    page = Paginator(people, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    labels = selectors.unit_path_labels([p.org_unit for p in rows])
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": [(p, labels.get(p.org_unit_id, "")) for p in rows],
        "filters": filters,
        "cohorts": selectors.all_cohorts(),
        "query": query.urlencode(),
        "can_edit": membership.can_edit,
        "is_filtered": any(v not in (None, "") for v in filters.values()),
    }
    template = "people/person_list.html"
    if getattr(request, "htmx", None) and request.htmx.target == "people-results":  # type: ignore[attr-defined]
        template += "#results"
    return render(request, template, context)


@member_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    person = selectors.get_person(membership, pk)
    identifiers = list(person.identifiers.all())
    definitions = {f.key: f for f in selectors.custom_fields()}
    context = {
        "person": person,
        "emails": [i for i in identifiers if i.kind == Identifier.Kind.EMAIL],
        "phones": [i for i in identifiers if i.kind == Identifier.Kind.PHONE],
        "external_ids": [i for i in identifiers if i.kind == Identifier.Kind.EXTERNAL],
        "breadcrumbs": ancestors(person.org_unit) if person.org_unit else [],
        "custom_values": [
            (definitions[k].label if k in definitions else k, v)
            for k, v in (person.fields or {}).items()
        ],
        "sections": render_sections(request, person),
        "can_edit": membership.can_edit,
    }
    return render(request, "people/person_detail.html", context)


# --- create, edit, delete -------------------------------------------------------------


@editor_required
def person_create(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    form = PersonForm(request.POST or None, membership=membership)
    if request.method == "POST" and form.is_valid():
        try:
            person = services.person_create(
                account=_account(request),
                actor=request.user,
                **form.service_kwargs(),
            )
        except services.PeopleError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("%(name)s was added.") % {"name": person.name})
            return redirect("people:detail", pk=person.pk)
    form.style_widgets()
    return render(request, "people/person_form.html", {"form": form, "person": None})


@editor_required
def person_edit(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    person = selectors.get_person(membership, pk)
    form = PersonForm(request.POST or None, membership=membership, person=person)
    if request.method == "POST" and form.is_valid():
        try:
            person = services.person_update(
                account=_account(request),
                actor=request.user,
                person=person,
                **form.service_kwargs(),
            )
        except services.PeopleError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request, _("Your changes to %(name)s were saved.") % {"name": person.name}
            )
            return redirect("people:detail", pk=person.pk)
    form.style_widgets()
    return render(request, "people/person_form.html", {"form": form, "person": person})


@editor_required
def person_delete(request: HttpRequest, pk: int) -> HttpResponse:
    person = selectors.get_person(_membership(request), pk)
    if request.method == "POST":
        name = person.name
        try:
            services.person_delete(account=_account(request), actor=request.user, person=person)
        except ProtectedError:
            messages.error(
                request,
                _("%(name)s cannot be deleted: other records still point at them.")
                % {"name": name},
            )
            return redirect("people:detail", pk=person.pk)
        messages.success(request, _("%(name)s was deleted.") % {"name": name})
        return redirect("people:list")
    return render(request, "people/person_confirm_delete.html", {"person": person})


# --- cohorts and custom fields --------------------------------------------------------


@member_required
def cohort_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    form = CohortForm(request.POST or None)
    if request.method == "POST":
        if not membership.can_edit:
            raise PermissionDenied
        if form.is_valid():
            try:
                cohort = services.cohort_create(
                    account=_account(request),
                    actor=request.user,
                    **form.cleaned_data,
                )
            except services.PeopleError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, _("Cohort %(name)s was created.") % {"name": cohort.name})
                return redirect("people:cohorts")
    form.style_widgets()
    context = {
        "cohorts": selectors.cohorts_with_counts(membership),
        "form": form,
        "can_edit": membership.can_edit,
    }
    return render(request, "people/cohort_list.html", context)


@admin_required
def custom_field_list(request: HttpRequest) -> HttpResponse:
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            field = services.custom_field_create(
                account=_account(request),
                actor=request.user,
                **form.cleaned_data,
            )
        except services.PeopleError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request, _("Custom field %(label)s was created.") % {"label": field.label}
            )
            return redirect("people:fields")
    form.style_widgets()
    return render(
        request,
        "people/custom_field_list.html",
        {"fields": selectors.custom_fields(), "form": form},
    )


# --- import ---------------------------------------------------------------------------


def _upload_dir(account_id: int, token: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads" / str(account_id) / token


def _stored_upload(request: HttpRequest, token: uuid.UUID) -> Path:
    """The file uploaded under ``token`` for this account; 404 for anything else."""
    folder = _upload_dir(_account(request).pk, str(token))
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    if not files:
        raise Http404
    return files[0]


@editor_required
def import_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        token = str(uuid.uuid4())
        folder = _upload_dir(_account(request).pk, token)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (get_valid_filename(upload.name) or "upload.csv")
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        try:
            read_table(path, filename=upload.name)
        except TabularError as exc:
            path.unlink(missing_ok=True)
            folder.rmdir()
            form.add_error("file", str(exc))
        else:
            return redirect("people:import_map", token=token)
    form.style_widgets()
    return render(request, "people/import_upload.html", {"form": form})


@editor_required
def import_map(request: HttpRequest, token: uuid.UUID) -> HttpResponse:
    path = _stored_upload(request, token)
    try:
        table = read_table(path)
    except TabularError as exc:
        messages.error(request, str(exc))
        return redirect("people:import")
    form = MappingForm(request.POST or None, columns=table.columns)
    if request.method == "POST" and form.is_valid():
        job = enqueue_job(
            account=_account(request),
            kind=JOB_KIND,
            params={"file": str(path.resolve()), "filename": path.name, "options": form.options()},
            title=_("Import people from %(file)s") % {"file": path.name},
            created_by=request.user,
        )
        return redirect(_job_url(job.pk))
    form.style_widgets()
    context = {
        "form": form,
        "preview": preview(table, PREVIEW_ROWS),
        "filename": path.name,
        "role_fields": [form[name] for name in MappingForm.ROLE_FIELDS],
        "extra_fields": [form[name] for name, _column in form.extra_names],
        "has_custom_fields": selectors.custom_fields().exists(),
    }
    return render(request, "people/import_map.html", context)


def _job_url(job_id: int) -> str:
    try:
        return reverse("jobs:detail", args=[job_id])
    except NoReverseMatch:
        return f"/jobs/{job_id}/"
