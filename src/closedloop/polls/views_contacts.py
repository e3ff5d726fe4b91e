"""Contacts pages: list with participation icons, detail, create / edit / delete (pushed to
RapidPro by jobs), and participation across polls (contacts × poll runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from closedloop.accounts.access import member_required, membership_of
from closedloop.accounts.models import Membership
from closedloop.people.selectors import unit_path_labels
from closedloop.polls import outbound_contacts, selectors
from closedloop.polls import selectors_contacts as reads
from closedloop.polls.forms_contacts import ContactForm
from closedloop.polls.models import Contact, ContactGroup, Poll
from closedloop.polls.outbound import OutboundError

PAGE_SIZE = 50
MATRIX_PAGE_SIZE = 50
MATRIX_RUNS = 8
ICON_RUNS = 3

View = Callable[..., HttpResponse]


def require_act(membership: Membership) -> None:
    if not selectors.can_act(membership):
        raise PermissionDenied(_("You can look at contacts but not change or message them."))


def _choice(membership: Membership, params: Any) -> tuple[ContactGroup | None, ContactGroup | None]:
    panel = selectors.get_panel(membership, params["panel"]) if params.get("panel") else None
    cohort = None
    if params.get("cohort"):
        cohort = reads.get_cohort_group(params["cohort"])
        if cohort is None:
            raise Http404
    return panel, cohort


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --- list and detail ----------------------------------------------------------------------


@member_required
def contact_list(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    panel, cohort = _choice(membership, request.GET)
    q = request.GET.get("q", "").strip()
    contacts = reads.search_contacts(membership, q, panel, cohort)
    page = Paginator(contacts, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    pollruns = reads.latest_pollruns(membership, ICON_RUNS)
    context = {
        "page": page,
        "rows": reads.participation_rows(rows, pollruns),
        "pollruns": pollruns,
        "q": q,
        "panel": panel,
        "cohort": cohort,
        "panels": selectors.visible_panels(membership).order_by("name"),
        "cohorts": reads.cohort_groups(),
        "query": _query_without_page(request),
        "can_act": selectors.can_act(membership),
        "is_filtered": bool(q or panel or cohort),
    }
    template = "polls/contacts/contact_list.html"
    if getattr(request, "htmx", None) and request.htmx.target == "contact-results":  # type: ignore[attr-defined]
        template += "#results"
    return render(request, template, context)


@member_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    contact = selectors.get_contact(membership, pk)
    unit = contact.org_unit
    path = unit_path_labels([unit]).get(unit.pk, "") if unit else ""
    fields = reads.visible_fields(contact.account_id, contact.connection_id)
    cohorts = list(reads.cohort_groups().filter(uuid__in=contact.group_uuids))
    context = {
        "contact": contact,
        "panel_path": f"{path} › {unit.name}" if path and unit else (unit.name if unit else ""),
        "cohorts": cohorts,
        "field_values": [(f.label, (contact.fields or {}).get(f.key)) for f in fields],
        "phones": [u for u in contact.urns if str(u).startswith("tel:")],
        "other_urns": [u for u in contact.urns if not str(u).startswith("tel:")],
        "local_only": outbound_contacts.is_local_only(contact),
        "can_act": selectors.can_act(membership),
        **reads.contact_history(membership, contact),
    }
    return render(request, "polls/contacts/contact_detail.html", context)


# --- create, edit, delete -----------------------------------------------------------------


def _form_page(
    request: HttpRequest, form: ContactForm, contact: Contact | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "polls/contacts/contact_form.html",
        {"form": form, "contact": contact},
        status=status,
    )


@member_required
@require_http_methods(["GET", "POST"])
def contact_create(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    require_act(membership)
    fields = reads.visible_fields(request.account)  # type: ignore[attr-defined]
    form = ContactForm(
        request.POST if request.method == "POST" else None, membership=membership, fields=fields
    )
    if request.method != "POST":
        return _form_page(request, form, None)
    if form.is_valid():
        try:
            contact = outbound_contacts.contact_create(actor=request.user, **form.service_kwargs())
        except OutboundError as exc:
            form.add_service_error(exc.message, exc.field)
        else:
            messages.success(
                request,
                _("%(name)s was saved; it is being added in RapidPro.") % {"name": contact.name},
            )
            return redirect("polls:contact_detail", pk=contact.pk)
    return _form_page(request, form, None, status=400)


@member_required
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    contact = selectors.get_contact(membership, pk)
    require_act(membership)
    fields = reads.visible_fields(contact.account_id, contact.connection_id)
    form = ContactForm(
        request.POST if request.method == "POST" else None,
        membership=membership,
        fields=fields,
        contact=contact,
    )
    if request.method != "POST":
        return _form_page(request, form, contact)
    if form.is_valid():
        try:
            outbound_contacts.contact_update(
                actor=request.user, contact=contact, **form.service_kwargs()
            )
        except OutboundError as exc:
            form.add_service_error(exc.message, exc.field)
        else:
            messages.success(request, _("Saved; the change is being sent to RapidPro."))
            return redirect("polls:contact_detail", pk=contact.pk)
    return _form_page(request, form, contact, status=400)


@member_required
@require_http_methods(["GET", "POST"])
def contact_delete(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    contact = selectors.get_contact(membership, pk)
    require_act(membership)
    if request.method == "POST":
        outbound_contacts.contact_delete(actor=request.user, contact=contact)
        messages.success(
            request,
            _("%(name)s was removed; it is being deleted in RapidPro.") % {"name": contact.name},
        )
        return redirect("polls:contact_list")
    return render(request, "polls/contacts/contact_confirm_delete.html", {"contact": contact})


# --- participation across polls -----------------------------------------------------------


@member_required
def participation(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    panel, cohort = _choice(membership, request.GET)
    poll = None
    if request.GET.get("poll"):
        poll = selectors.get_poll(membership, request.GET["poll"])
    pollruns = reads.latest_pollruns(membership, MATRIX_RUNS, poll.pk if poll else None)
    contacts = reads.search_contacts(membership, request.GET.get("q", ""), panel, cohort)
    page = Paginator(contacts, MATRIX_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = reads.participation_rows(list(page.object_list), pollruns)
    totals = [
        sum(1 for _c, cells in rows if cells[i].status in ("C", "P")) for i in range(len(pollruns))
    ]
    context = {
        "page": page,
        "rows": rows,
        "pollruns": pollruns,
        "totals": totals,
        "poll": poll,
        "panel": panel,
        "cohort": cohort,
        "q": request.GET.get("q", ""),
        "polls": Poll.objects.filter(is_active=True).order_by("rapidpro_name"),
        "panels": selectors.visible_panels(membership).order_by("name"),
        "cohorts": reads.cohort_groups(),
        "query": _query_without_page(request),
    }
    return render(request, "polls/contacts/participation.html", context)
