"""Run pages: the run form (options → exclude recipients → confirm → start), the runs of a
workflow, one run's live progress and per-recipient status, re-send and cancel, the
account's outbox, and the read-tracking pixel."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from closedloop.accounts.models import Role
from closedloop.core.tenancy import scopes_disabled
from closedloop.feedback import channels as ch
from closedloop.feedback import outbox, runs, selectors
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    Action,
    ActionRun,
    ActionType,
    Channel,
    Column,
    Delivery,
    DeliveryStatus,
    RunStatus,
    Workflow,
)
from closedloop.feedback.services import FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    membership_of,
    workflow_context,
)

PAGE_SIZE = 50
OUTBOX_PAGE_SIZE = 20
FINISHED = {RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED}
OPTION_FIELDS = (
    "item_column", "subject", "cc", "bcc", "send_confirmation", "track_read", "html_only",
    "email_to", "target_url", "token", "canvas_instance",
)  # fmt: skip
CHECKBOXES = {"send_confirmation", "track_read", "html_only"}
STATUS_FILTERS = ("queued", "sending", "sent", "failed", "cancelled", "opened")
#: a transparent 1×1 GIF
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _run_or_404(workflow: Workflow, rid: Any) -> ActionRun:
    try:
        return ActionRun.objects.select_related("action", "started_by", "schedule").get(
            pk=int(rid), action__workflow=workflow
        )
    except (ActionRun.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


# --- the run form ---------------------------------------------------------------------------


def _posted_options(request: HttpRequest, action: Action) -> dict[str, Any]:
    data = request.POST
    options: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        if name in CHECKBOXES:
            options[name] = data.get(name) == "on"
        elif name in data:
            options[name] = data.get(name, "").strip()
    options["exclude_values"] = data.getlist("exclude")
    return options


def _initial_options(action: Action) -> dict[str, Any]:
    from django.conf import settings

    saved = dict(action.options or {})
    for key in ("cc", "bcc", "email_to"):
        if isinstance(saved.get(key), list):
            saved[key] = " ".join(saved[key])
    return {
        "item_column": saved.get("item_column") or _guess_item_column(action),
        "subject": action.subject,
        "cc": saved.get("cc", ""),
        "bcc": saved.get("bcc", ""),
        "email_to": saved.get("email_to", ""),
        "target_url": action.target_url,
        "send_confirmation": bool(saved.get("send_confirmation")),
        "track_read": bool(saved.get("track_read")),
        "html_only": bool(saved.get("html_only", settings.EMAIL_HTML_ONLY)),
        "canvas_instance": saved.get("canvas_instance", ""),
        "exclude_values": [],
    }


def _guess_item_column(action: Action) -> str:
    """A sensible first choice: a column named like the channel's address, else the key."""
    hint = {ActionType.SMS: "phone", ActionType.CANVAS_EMAIL: "canvas"}.get(
        action.action_type, "email"
    )  # type: ignore[call-overload]
    columns = list(Column.objects.filter(workflow_id=action.workflow_id).order_by("position", "id"))
    named = next((c for c in columns if hint in c.name.lower()), None)
    key = next((c for c in columns if c.is_key), None)
    chosen = named or key
    return chosen.name if chosen is not None else ""


def _form_context(
    workflow: Workflow, action: Action, options: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    from closedloop.feedback import canvas

    kind = action.action_type
    return workflow_context(
        workflow,
        "actions",
        action=action,
        options=options,
        columns=list(Column.objects.filter(workflow=workflow).order_by("position", "id")),
        kind=kind,
        is_email=kind in runs.EMAIL_TYPES,
        is_report=kind in runs.REPORT_TYPES,
        has_item=kind
        in runs.EMAIL_TYPES | {ActionType.SMS, ActionType.CANVAS_EMAIL, ActionType.JSON},
        has_subject=kind in runs.EMAIL_TYPES | {ActionType.EMAIL_REPORT, ActionType.CANVAS_EMAIL},
        has_copies=kind in runs.EMAIL_TYPES | {ActionType.EMAIL_REPORT},
        has_url=kind in (ActionType.JSON, ActionType.JSON_REPORT),
        canvas_instances=sorted(canvas.instances()) if kind == ActionType.CANVAS_EMAIL else [],
        **extra,
    )


@member_required
def run_create(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """Step 1 the options, step 2 recipients to exclude, step 3 the summary, then start."""
    action = selectors.get_action(membership_of(request), wid, aid, need="edit")
    workflow = action.workflow
    if action.action_type not in runs.SENDING_TYPES:
        raise Http404
    if request.method != "POST":
        return render(request, "feedback/runs/run_form.html",
                      _form_context(workflow, action, _initial_options(action), step="options"))  # fmt: skip
    options = _posted_options(request, action)
    step = request.POST.get("step", "exclude")
    try:
        clean = runs.validate_run_options(action, options, actor=request.user)
    except FeedbackError as exc:
        context = _form_context(workflow, action, options, step="options", error=error_text(exc),
                                error_field=exc.field)  # fmt: skip
        return render(request, "feedback/runs/run_form.html", context, status=400)
    if (
        step == "exclude"
        and clean.get("item_column")
        and action.action_type not in runs.REPORT_TYPES
    ):
        values = runs.recipients_preview(action, clean["item_column"])
        context = _form_context(workflow, action, options, step="exclude", recipients=values,
                                excluded=set(clean["exclude_values"]))  # fmt: skip
        return render(request, "feedback/runs/run_form.html", context)
    if step in ("exclude", "confirm"):
        return render(
            request,
            "feedback/runs/run_form.html",
            _confirm_context(workflow, action, options, clean),
        )
    try:
        run = runs.start_run(action=action, actor=request.user, options=options)
    except FeedbackError as exc:
        context = _form_context(workflow, action, options, step="options", error=error_text(exc),
                                error_field=exc.field)  # fmt: skip
        return render(request, "feedback/runs/run_form.html", context, status=400)
    messages.success(request, _("The run started: messages are being queued and sent."))
    return redirect("feedback:run_detail", wid=workflow.pk, rid=run.pk)


def _confirm_context(
    workflow: Workflow, action: Action, options: dict[str, Any], clean: dict[str, Any]
) -> dict[str, Any]:
    from closedloop.feedback import render as rendering

    excluded = set(clean["exclude_values"])
    if action.action_type in runs.REPORT_TYPES:
        total, sample = 1, [str(clean.get("email_to") or clean.get("target_url") or "")]
    else:
        recipients = (
            runs.recipients_preview(action, clean["item_column"])
            if clean.get("item_column")
            else []
        )
        kept = [r for r in recipients if r not in excluded]
        total = max(0, rendering.count_messages(action) - (len(recipients) - len(kept)))
        sample = kept[:10]
    return _form_context(
        workflow, action, options, step="confirm", clean=clean, total=total, sample=sample,
        excluded=sorted(excluded),
    )  # fmt: skip


# --- runs -----------------------------------------------------------------------------------


@member_required
def run_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    qs = runs.runs_with_counts(
        ActionRun.objects.filter(action__workflow=workflow).select_related(
            "action", "started_by", "schedule"
        )
    ).order_by("-created_at", "-id")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "feedback/runs/run_list.html", workflow_context(workflow, "runs", page=page)
    )


def _progress_context(run: ActionRun) -> dict[str, Any]:
    counts = outbox.run_counts(run)
    total = counts["total_rows"] or run.total
    done = counts["sent"] + counts["failed"] + counts["cancelled"]
    return {
        "run": run,
        "counts": counts,
        "percent": int(100 * done / total) if total else (100 if run.status in FINISHED else 0),
        "finished": run.status in FINISHED,
        "chart": {
            "labels": [
                str(_("sent")),
                str(_("failed")),
                str(_("queued")),
                str(_("sending")),
                str(_("cancelled")),
            ],
            "values": [
                counts["sent"],
                counts["failed"],
                counts["queued"],
                counts["sending"],
                counts["cancelled"],
            ],
            "opened": counts["opened"],
            "opened_label": _("%(n)s opened") % {"n": counts["opened"]},
        },
    }


def _deliveries_context(request: HttpRequest, run: ActionRun) -> dict[str, Any]:
    status = request.GET.get("status", "")
    q = request.GET.get("q", "").strip()
    qs = Delivery.objects.filter(run=run).only(
        "id", "recipient", "row_key", "status", "attempts", "error", "sent_at", "opened_at", "open_count",
        "next_attempt_at",
    )  # fmt: skip
    if status == "opened":
        qs = qs.filter(opened_at__isnull=False)
    elif status in STATUS_FILTERS:
        qs = qs.filter(status=status)
    else:
        status = ""
    if q:
        qs = qs.filter(Q(recipient__icontains=q) | Q(row_key__icontains=q))
    page = Paginator(qs.order_by("id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return {"deliveries": page, "status": status, "q": q, "statuses": STATUS_FILTERS}


@never_cache
@member_required
def run_detail(request: HttpRequest, wid: int, rid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    run = _run_or_404(workflow, rid)
    part = request.GET.get("part", "")
    if part == "progress":
        return render(request, "feedback/runs/run_detail.html#progress",
                      {**workflow_context(workflow, "runs"), **_progress_context(run)})  # fmt: skip
    if part == "deliveries":
        return render(request, "feedback/runs/run_detail.html#deliveries",
                      {**workflow_context(workflow, "runs", run=run), **_deliveries_context(request, run)})  # fmt: skip
    context = {
        **workflow_context(workflow, "runs"),
        **_progress_context(run),
        **_deliveries_context(request, run),
        "options": {
            k: v
            for k, v in (run.options or {}).items()
            if k not in ("token_encrypted", "exclude_values")
        },
        "excluded": (run.options or {}).get("exclude_values") or [],
    }
    return render(request, "feedback/runs/run_detail.html", context)


@require_POST
@member_required
def resend_failed(request: HttpRequest, wid: int, rid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    run = _run_or_404(workflow, rid)
    count = runs.resend_failed(run=run, actor=request.user)
    if count:
        messages.success(request, _("%(n)s failed messages are queued again.") % {"n": count})
    else:
        messages.info(request, _("No message of this run has failed."))
    return redirect("feedback:run_detail", wid=workflow.pk, rid=run.pk)


@require_POST
@member_required
def run_cancel(request: HttpRequest, wid: int, rid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, need="edit")
    run = _run_or_404(workflow, rid)
    count = runs.cancel_queued(run=run, actor=request.user)
    messages.success(request, _("%(n)s queued messages were cancelled.") % {"n": count})
    return redirect("feedback:run_detail", wid=workflow.pk, rid=run.pk)


# --- the outbox -----------------------------------------------------------------------------


@member_required
def outbox_page(request: HttpRequest) -> HttpResponse:
    """Every message of the workflows this user may see, newest first, with its body."""
    membership = membership_of(request)
    visible = selectors.visible_workflows(membership).values("pk")
    qs = Delivery.objects.filter(run__action__workflow__in=visible).select_related(
        "run__action__workflow"
    )
    channel = request.GET.get("channel", "")
    if channel in Channel.values:
        qs = qs.filter(channel=channel)
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(Q(recipient__icontains=q) | Q(subject__icontains=q))
    page = Paginator(qs.order_by("-id"), OUTBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "feedback/runs/outbox.html",
        {"page": page, "q": q, "channel": channel, "is_admin": membership.role == Role.ADMIN},
    )


# --- read tracking --------------------------------------------------------------------------


@never_cache
def track_read(request: HttpRequest, token: str) -> HttpResponse:
    """The tracking pixel: counts an open of the delivery named by the signed token."""
    delivery_id = ch.read_token(token)
    if delivery_id is not None:
        record_open(delivery_id)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-cache, no-store, must-revalidate, max-age=0"
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


def record_open(delivery_id: int) -> bool:
    """Count one open: the delivery, the run's EmailRead column, the workflow log."""
    from django.db import connection, transaction

    from closedloop.feedback import table

    with scopes_disabled():
        delivery = (
            Delivery.objects.select_related("run__action__workflow", "run__started_by")
            .filter(pk=delivery_id, status=DeliveryStatus.SENT)
            .first()
        )
        if delivery is None:
            return False
        run = delivery.run
        workflow = run.action.workflow
        now = timezone.now()
        with transaction.atomic():
            Delivery.objects.filter(pk=delivery.pk).update(
                open_count=F("open_count") + 1, opened_at=delivery.opened_at or now
            )
            column = (
                Column.objects.filter(workflow=workflow, name=run.track_column).first()
                if run.track_column
                else None
            )
            if column is not None and delivery.rid:
                qn = connection.ops.quote_name
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {qn(workflow.table_name)} SET {qn(column.physical)} = "
                        f"COALESCE({qn(column.physical)}, 0) + 1 WHERE {qn(table.ROW_ID)} = %s",
                        [delivery.rid],
                    )
            log_event(
                workflow,
                None,
                "action_email_read",
                {"run": run.pk, "delivery": delivery.pk, "to": delivery.recipient,
                 "column": run.track_column, "count": delivery.open_count + 1},
            )  # fmt: skip
    return True
