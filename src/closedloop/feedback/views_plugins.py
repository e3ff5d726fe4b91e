"""Plugin pages: the account admin's list (enable, disable, verify again, errors) and a
workflow's "run a plugin" form, which queues a Job and shows its progress page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from closedloop.feedback import plugins
from closedloop.feedback.models import Column
from closedloop.feedback.values import FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    membership_of,
)


def _admin(request: HttpRequest) -> Any:
    membership = membership_of(request)
    if not membership.is_admin:
        raise Http404
    return membership


@member_required
@require_GET
def plugin_list(request: HttpRequest) -> HttpResponse:
    membership = _admin(request)
    chosen = plugins.settings_by_key(membership.account)
    rows = [
        {"info": info, "status": plugins.plugin_status(info, chosen.get(info.key))}
        for info in plugins.discover()
    ]
    return render(request, "feedback/plugins/list.html", {"rows": rows})


def _toggle(request: HttpRequest, key: str, enable: bool) -> HttpResponse:
    membership = _admin(request)
    try:
        if enable:
            plugins.plugin_enable(account=membership.account, actor=request.user, key=key)
            messages.success(
                request, _("Plugin “%(key)s” enabled (its files are verified).") % {"key": key}
            )
        else:
            plugins.plugin_disable(account=membership.account, actor=request.user, key=key)
            messages.success(request, _("Plugin “%(key)s” disabled.") % {"key": key})
    except FeedbackError as exc:
        messages.error(request, error_text(exc))
    return redirect("feedback:plugin_list")


@member_required
@require_POST
def plugin_enable(request: HttpRequest, key: str) -> HttpResponse:
    """Enable (or verify again after a change) a plugin for the account."""
    return _toggle(request, key, True)


@member_required
@require_POST
def plugin_disable(request: HttpRequest, key: str) -> HttpResponse:
    return _toggle(request, key, False)


def _run_params(request: HttpRequest, info: plugins.PluginInfo) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for param in info.parameters:
        raw = request.POST.get(f"param_{param.name}")
        if param.type == "boolean":
            raw = "true" if raw else "false"
        if raw not in (None, ""):
            parameters[param.name] = raw
    return {
        "key": request.POST.get("key", ""),
        "input_columns": request.POST.getlist("input_columns"),
        "parameters": parameters,
        "suffix": request.POST.get("suffix", info.output_suffix),
    }


@member_required
@require_http_methods(["GET", "POST"])
def plugin_run(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    available = plugins.runnable_plugins(workflow.account)
    key = request.POST.get("plugin") or request.GET.get("plugin") or ""
    info = next((p for p in available if p.key == key), None)
    errors: list[str] = []
    posted: dict[str, Any] = {}
    if request.method == "POST":
        if info is None:
            errors.append(_("Choose an enabled plugin."))
        else:
            posted = _run_params(request, info)
            try:
                job = plugins.run_plugin(
                    workflow=workflow, actor=request.user, plugin_key=info.key, params=posted
                )
            except FeedbackError as exc:
                errors.append(error_text(exc))
            else:
                messages.success(request, _("The plugin is running; this page shows its progress."))
                return redirect("jobs:detail", pk=job.pk)
    columns = list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
    context = {
        "workflow": workflow,
        "active_tab": "data",
        "available": available,
        "info": info,
        "columns": columns,
        "keys": [c for c in columns if c.is_key],
        "errors": errors,
        "posted": posted,
        "chosen_inputs": set(posted.get("input_columns") or []),
    }
    return render(request, "feedback/plugins/run.html", context, status=400 if errors else 200)
