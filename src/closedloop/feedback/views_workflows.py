"""Workflow pages: the list, create, settings (rename, attributes, sharing, clone, flush,
delete), star and presence. Also the helpers every workflow page of this part uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.accounts.access import member_required, membership_of
from closedloop.accounts.models import Membership
from closedloop.feedback import selectors, services
from closedloop.feedback.forms import (
    AttributeForm,
    CloneForm,
    DeleteForm,
    ShareForm,
    WorkflowForm,
)
from closedloop.feedback.models import Workflow, WorkflowShare, WorkflowStar

View = Callable[..., HttpResponseBase]
LIST_PAGE_SIZE = 50


def load_workflow(request: HttpRequest, wid: int, need: selectors.Need = "view") -> Workflow:
    return selectors.get_workflow(membership_of(request), wid, need)


def can_edit(workflow: Workflow) -> bool:
    return getattr(workflow, "user_role", None) in ("owner", "editor")


def is_owner(workflow: Workflow) -> bool:
    return getattr(workflow, "user_role", None) == "owner"


def posted_version(request: HttpRequest) -> int | None:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return None


def error_text(exc: Exception) -> str:
    """The user-facing message of a service error, with its row/column details."""
    message = str(getattr(exc, "message", "") or exc)
    details = []
    for item in getattr(exc, "errors", None) or []:
        if not isinstance(item, dict):
            continue
        bits = []
        if item.get("row") is not None:
            bits.append(_("row %(row)s") % {"row": item["row"]})
        if item.get("column"):
            bits.append(_("column “%(column)s”") % {"column": item["column"]})
        text = item.get("message", "")
        if text and text not in message:
            details.append(f"{', '.join(bits)}: {text}" if bits else text)
    if details:
        message = f"{message} ({'; '.join(details[:5])})"
    return message


def workflow_context(workflow: Workflow, active_tab: str, **extra: Any) -> dict[str, Any]:
    return {
        "workflow": workflow,
        "active_tab": active_tab,
        "can_edit": can_edit(workflow),
        "is_owner": is_owner(workflow),
        **extra,
    }


# --- list and create -------------------------------------------------------------------


def _listed_workflows(membership: Membership, q: str) -> QuerySet[Workflow]:
    user_id = membership.user_id
    qs = selectors.visible_workflows(membership).select_related("owner")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    return qs.annotate(
        is_starred=Exists(WorkflowStar.objects.filter(workflow=OuterRef("pk"), user_id=user_id)),
        shared_role=WorkflowShare.objects.filter(workflow=OuterRef("pk"), user_id=user_id).values(
            "role"
        )[:1],
    ).order_by("-is_starred", "name", "pk")


@member_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    q = request.GET.get("q", "").strip()
    page = Paginator(_listed_workflows(membership, q), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "workflows": list(page.object_list),
        "q": q,
        "can_create": selectors.can_create_workflows(membership),
        "user_id": membership.user_id,
    }
    template = "feedback/workflow_list.html"
    if getattr(request, "htmx", None) and request.htmx.target == "workflow-results":  # type: ignore[attr-defined]
        template += "#results"
    return render(request, template, context)


@member_required
def workflow_create(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    if not selectors.can_create_workflows(membership):
        raise PermissionDenied(_("Your role does not allow creating workflows."))
    form = WorkflowForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workflow = services.workflow_create(
                account=membership.account,
                actor=request.user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except services.FeedbackError as exc:
            form.add_error("name", error_text(exc))
        else:
            messages.success(request, _("Workflow %(name)s was created.") % {"name": workflow.name})
            return redirect("feedback:table", wid=workflow.pk)
    return render(request, "feedback/workflow_create.html", {"form": form})


@member_required
def workflow_detail(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    return redirect("feedback:table", wid=workflow.pk)


# --- star and presence -----------------------------------------------------------------


@member_required
@require_POST
def workflow_star(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    starred = request.POST.get("starred", "1") not in ("0", "false", "")
    services.workflow_star(workflow=workflow, user=request.user, starred=starred)
    if getattr(request, "htmx", None):
        return render(
            request, "feedback/workflow_star.html", {"workflow": workflow, "starred": starred}
        )
    return redirect(request.POST.get("next") or "feedback:workflow_list")


@member_required
@require_POST
def workflow_presence(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    others = services.presence_touch(workflow=workflow, user=request.user)
    return render(request, "feedback/workflow_presence.html", {"others": others})


# --- settings --------------------------------------------------------------------------


def _settings_forms(workflow: Workflow) -> dict[str, Any]:
    return {
        "form": WorkflowForm(
            initial={
                "name": workflow.name,
                "description": workflow.description,
                "version": workflow.version,
            }
        ),
        "attribute_form": AttributeForm(initial={"version": workflow.version}),
        "share_form": ShareForm(),
        "clone_form": CloneForm(initial={"name": _("Copy of %(name)s") % {"name": workflow.name}}),
        "delete_form": DeleteForm(),
    }


def _settings_page(
    request: HttpRequest, workflow: Workflow, status: int = 200, **bound: Any
) -> HttpResponse:
    forms = {**_settings_forms(workflow), **bound}
    shares = list(workflow.shares.select_related("user").order_by("user__email"))
    context = workflow_context(
        workflow,
        "settings",
        attributes=sorted((workflow.attributes or {}).items()),
        shares=shares,
        can_clone=selectors.can_create_workflows(membership_of(request)),
        **forms,
    )
    return render(request, "feedback/workflow_settings.html", context, status=status)


@member_required
def workflow_settings(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    if request.method != "POST":
        return _settings_page(request, workflow)
    workflow = load_workflow(request, wid, "own")
    form = WorkflowForm(request.POST)
    if form.is_valid():
        try:
            services.workflow_update(
                workflow=workflow,
                actor=request.user,
                expected_version=form.cleaned_data["version"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except services.ConflictError:
            return _settings_page(request, workflow, 409, form=form, conflict=True)
        except services.FeedbackError as exc:
            form.add_error("name", error_text(exc))
        else:
            messages.success(request, _("The workflow was saved."))
            return redirect("feedback:workflow_settings", wid=workflow.pk)
    return _settings_page(request, workflow, 400, form=form)


@member_required
@require_POST
def workflow_attribute_set(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    form = AttributeForm(request.POST)
    if form.is_valid():
        try:
            services.bump_version(workflow, form.cleaned_data["version"])
            services.workflow_set_attribute(
                workflow=workflow,
                actor=request.user,
                name=form.cleaned_data["name"].strip(),
                value=form.cleaned_data["value"],
            )
        except services.ConflictError:
            return _settings_page(request, workflow, 409, attribute_form=form, conflict=True)
        except services.FeedbackError as exc:
            form.add_error("name", error_text(exc))
        else:
            messages.success(
                request, _("Attribute %(name)s was saved.") % {"name": form.cleaned_data["name"]}
            )
            return redirect("feedback:workflow_settings", wid=workflow.pk)
    return _settings_page(request, workflow, 400, attribute_form=form)


@member_required
@require_POST
def workflow_attribute_delete(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    name = request.POST.get("name", "")
    if name not in (workflow.attributes or {}):
        raise Http404
    services.workflow_delete_attribute(workflow=workflow, actor=request.user, name=name)
    messages.success(request, _("Attribute %(name)s was removed.") % {"name": name})
    return redirect("feedback:workflow_settings", wid=workflow.pk)


@member_required
@require_POST
def workflow_share(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "own")
    form = ShareForm(request.POST)
    if form.is_valid():
        try:
            services.workflow_share(
                workflow=workflow,
                actor=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except services.FeedbackError as exc:
            form.add_error("email", error_text(exc))
        else:
            messages.success(
                request,
                _("The workflow is now shared with %(email)s.")
                % {"email": form.cleaned_data["email"]},
            )
            return redirect("feedback:workflow_settings", wid=workflow.pk)
    return _settings_page(request, workflow, 400, share_form=form)


@member_required
@require_POST
def workflow_unshare(request: HttpRequest, wid: int, user_id: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "own")
    share = workflow.shares.filter(user_id=user_id).select_related("user").first()
    if share is None:
        raise Http404
    services.workflow_unshare(workflow=workflow, actor=request.user, user=share.user)
    messages.success(request, _("%(email)s no longer has access.") % {"email": share.user.email})
    return redirect("feedback:workflow_settings", wid=workflow.pk)


@member_required
@require_POST
def workflow_clone(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    if not selectors.can_create_workflows(membership_of(request)):
        raise PermissionDenied(_("Your role does not allow creating workflows."))
    form = CloneForm(request.POST)
    if form.is_valid():
        try:
            copy = services.workflow_clone(
                workflow=workflow, actor=request.user, name=form.cleaned_data["name"]
            )
        except services.FeedbackError as exc:
            form.add_error("name", error_text(exc))
        else:
            messages.success(request, _("Workflow %(name)s was created.") % {"name": copy.name})
            return redirect("feedback:table", wid=copy.pk)
    return _settings_page(request, workflow, 400, clone_form=form)


@member_required
@require_POST
def workflow_flush(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    try:
        services.workflow_flush(workflow=workflow, actor=request.user)
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect("feedback:workflow_settings", wid=workflow.pk)
    messages.success(request, _("All the data of the workflow was removed."))
    return redirect("feedback:table", wid=workflow.pk)


@member_required
@require_POST
def workflow_delete(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "own")
    form = DeleteForm(request.POST)
    if form.is_valid():
        typed = form.cleaned_data["confirm_name"].strip()
        if typed != workflow.name:
            form.add_error("confirm_name", _("The name you typed does not match the workflow's."))
        else:
            name = workflow.name
            try:
                services.workflow_delete(workflow=workflow, actor=request.user, confirm_name=typed)
            except services.FeedbackError as exc:
                form.add_error("confirm_name", error_text(exc))
            else:
                messages.success(request, _("Workflow %(name)s was deleted.") % {"name": name})
                return redirect("feedback:workflow_list")
    return _settings_page(request, workflow, 400, delete_form=form)
