"""Export and import pages: a workflow to a zip (choosing the actions), actions only to
JSON; a new workflow from a closedloop zip or an OnTask export (+ its CSV); actions into
an existing workflow."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from closedloop.feedback import selectors, transfer
from closedloop.feedback.models import Action
from closedloop.feedback.values import FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    membership_of,
)


def _download(data: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _workflow_url(workflow_id: int) -> str:
    try:
        return reverse("feedback:workflow_detail", args=[workflow_id])
    except NoReverseMatch:  # pragma: no cover - the pages part provides it
        return f"/feedback/{workflow_id}/"


def _chosen(request: HttpRequest, workflow: Any) -> list[int]:
    wanted = {int(v) for v in request.POST.getlist("actions") if v.isdigit()}
    return list(
        Action.objects.filter(workflow=workflow, pk__in=wanted).values_list("pk", flat=True)
    )


@member_required
@require_http_methods(["GET", "POST"])
def export_workflow(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "view")
    actions = list(Action.objects.filter(workflow=workflow).order_by("name"))
    if request.method == "POST":
        ids = _chosen(request, workflow)
        user = request.user
        if request.POST.get("what") == "actions":
            if not ids:
                messages.error(request, _("Choose at least one action to export."))
                return redirect("feedback:export_workflow", wid=workflow.pk)
            data = transfer.actions_export(workflow=workflow, actor=user, action_ids=ids)
            return _download(
                data, f"{slugify(workflow.name) or 'workflow'}-actions.json", "application/json"
            )
        data = transfer.workflow_export(workflow=workflow, actor=user, action_ids=ids)
        return _download(data, f"{slugify(workflow.name) or 'workflow'}.zip", "application/zip")
    return render(
        request,
        "feedback/transfer/export.html",
        {"workflow": workflow, "actions": actions, "active_tab": "settings"},
    )


def _upload(request: HttpRequest, field: str) -> tuple[bytes | None, str, str | None]:
    """(content, file name, error) of an uploaded file, refusing oversized ones unread."""
    upload: UploadedFile | None = request.FILES.get(field)
    if upload is None:
        return None, "", None
    if upload.size and upload.size > settings.DATAOPS_MAX_UPLOAD_SIZE:
        return (
            None,
            upload.name or "",
            _("%(name)s is larger than the %(mb)s MB allowed.")
            % {
                "name": upload.name,
                "mb": round(settings.DATAOPS_MAX_UPLOAD_SIZE / 1_048_576, 1),
            },
        )
    return upload.read(), upload.name or field, None


@member_required
@require_http_methods(["GET", "POST"])
def import_workflow(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    if not selectors.can_create_workflows(membership):
        raise Http404
    context: dict[str, Any] = {"name": request.POST.get("name", ""), "errors": []}
    if request.method == "POST":
        data, file_name, error = _upload(request, "file")
        csv_data, csv_name, csv_error = _upload(request, "csv")
        error = error or csv_error
        if data is None and not error:
            error = _("Choose the file to import.")
        if error:
            context["errors"] = [error]
        else:
            try:
                result = transfer.workflow_import(
                    account=membership.account, actor=request.user, name=context["name"],
                    data=data or b"", file_name=file_name, csv_data=csv_data,
                    csv_name=csv_name or "data.csv",
                )  # fmt: skip
            except FeedbackError as exc:
                context["errors"] = [error_text(exc)]
            else:
                messages.success(
                    request, _("Imported as “%(name)s”.") % {"name": result.workflow.name}
                )
                for note in result.notes:
                    messages.info(request, note)
                return redirect(_workflow_url(result.workflow.pk))
    status = 400 if context["errors"] else 200
    return render(request, "feedback/transfer/import.html", context, status=status)


@member_required
@require_http_methods(["GET", "POST"])
def import_actions(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    context: dict[str, Any] = {"workflow": workflow, "errors": [], "active_tab": "actions"}
    if request.method == "POST":
        data, file_name, error = _upload(request, "file")
        if data is None and not error:
            error = _("Choose the file to import.")
        if error:
            context["errors"] = [error]
        else:
            try:
                result = transfer.actions_import(
                    workflow=workflow, actor=request.user, data=data or b"", file_name=file_name
                )
            except FeedbackError as exc:
                context["errors"] = [error_text(exc)]
            else:
                messages.success(
                    request,
                    _("Imported: %(names)s.")
                    % {"names": ", ".join(a.name for a in result.actions)},
                )
                return redirect(_workflow_url(workflow.pk))
    status = 400 if context["errors"] else 200
    return render(request, "feedback/transfer/import_actions.html", context, status=status)
