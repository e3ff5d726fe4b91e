"""Action pages: the list, create, the editor with live preview and conditions, survey /
rubric / TODO settings, clone, delete, "send a test to myself" and the ZIP download."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import select_template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import actions as services
from closedloop.feedback import conditions as conds
from closedloop.feedback import filters as filter_services
from closedloop.feedback import render as rendering
from closedloop.feedback import reports, selectors
from closedloop.feedback.models import (
    IN_ACTION_TYPES,
    Action,
    ActionColumn,
    ActionType,
    Condition,
    DataType,
    Filter,
    TextFormat,
)
from closedloop.feedback.services import ConflictError, FeedbackError
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    membership_of,
    posted_version,
    workflow_context,
)

TYPE_ICONS: dict[str, str] = {
    ActionType.PERSONALIZED_TEXT: "file-earmark-richtext",
    ActionType.EMAIL: "envelope",
    ActionType.SMS: "phone",
    ActionType.JSON: "braces",
    ActionType.CANVAS_EMAIL: "mortarboard",
    ActionType.RUBRIC: "grid-3x3",
    ActionType.EMAIL_REPORT: "envelope-paper",
    ActionType.JSON_REPORT: "filetype-json",
    ActionType.SURVEY: "ui-checks",
    ActionType.TODO_LIST: "check2-square",
}
SUBJECT_TYPES = {ActionType.EMAIL, ActionType.CANVAS_EMAIL, ActionType.EMAIL_REPORT}
URL_TYPES = {ActionType.JSON, ActionType.JSON_REPORT}
ITEM_TYPES = {
    ActionType.EMAIL,
    ActionType.SMS,
    ActionType.CANVAS_EMAIL,
    ActionType.PERSONALIZED_TEXT,
    ActionType.RUBRIC,
}
SERVED_TYPES = {
    ActionType.PERSONALIZED_TEXT,
    ActionType.RUBRIC,
    ActionType.SURVEY,
    ActionType.TODO_LIST,
}


def _email(request: HttpRequest) -> str:
    return str(getattr(request.user, "email", "") or "")


def _load_action(request: HttpRequest, wid: int, aid: int, need: selectors.Need = "view") -> Action:
    return selectors.get_action(membership_of(request), wid, aid, need)


def run_url(action: Action) -> str | None:
    """Part of delivery: the run form, if installed."""
    for args in ((action.workflow_id, action.pk), (action.pk,)):
        try:
            return reverse("feedback:run_create", args=args)
        except NoReverseMatch:
            continue
    return None


def type_choices() -> list[tuple[str, str, str]]:
    enabled = set(services.enabled_types())
    return [(t.value, str(t.label), TYPE_ICONS[t]) for t in ActionType if t.value in enabled]


# --- list and create ----------------------------------------------------------------------


@member_required
def action_list(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    items = list(
        Action.objects.filter(workflow=workflow)
        .select_related("filter")
        .annotate(last_run=Max("runs__created_at"), n_conditions=Count("conditions", distinct=True))
        .order_by("name")
    )
    for item in items:
        item.icon = TYPE_ICONS.get(item.action_type, "lightning")
    context = workflow_context(
        workflow,
        "actions",
        actions_out=[a for a in items if a.action_type not in IN_ACTION_TYPES],
        actions_in=[a for a in items if a.action_type in IN_ACTION_TYPES],
        types=type_choices(),
        filters=list(Filter.objects.filter(workflow=workflow).order_by("name")),
    )
    return render(request, "feedback/actions/action_list.html", context)


@member_required
def action_create(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    values = {
        "name": request.POST.get("name", "").strip(),
        "action_type": request.POST.get("action_type") or request.GET.get("type", ""),
        "description": request.POST.get("description", ""),
        "filter": request.POST.get("filter") or None,
    }
    error = None
    if request.method == "POST":
        try:
            action = services.safe_create(
                workflow=workflow,
                actor=request.user,
                name=values["name"],
                action_type=values["action_type"],
                description=values["description"],
                filter=int(values["filter"]) if values["filter"] else None,
            )
        except (FeedbackError, ValueError) as exc:
            error = error_text(exc)
        else:
            messages.success(
                request, _("The action “%(name)s” was created.") % {"name": action.name}
            )
            return redirect("feedback:action_edit", wid=workflow.pk, aid=action.pk)
    context = workflow_context(
        workflow,
        "actions",
        values=values,
        error=error,
        types=type_choices(),
        filters=list(Filter.objects.filter(workflow=workflow).order_by("name")),
    )
    return render(
        request, "feedback/actions/action_create.html", context, status=400 if error else 200
    )


# --- editor ---------------------------------------------------------------------------------


def _dt_or_none(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    value = parse_datetime(raw)
    if value is None:
        raise FeedbackError(_("“%(v)s” is not a date and time.") % {"v": raw})
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _posted_fields(request: HttpRequest, action: Action) -> dict[str, Any]:
    post = request.POST
    fields: dict[str, Any] = {
        "name": post.get("name", action.name),
        "description": post.get("description", ""),
        "filter": int(post["filter"]) if post.get("filter") else None,
    }
    if "text_content" in post:
        fields["text_content"] = post.get("text_content", "").replace("\r\n", "\n")
        fields["text_format"] = post.get("text_format", action.text_format)
    if action.action_type in SUBJECT_TYPES:
        fields["subject"] = post.get("subject", "")
    if action.action_type in URL_TYPES:
        fields["target_url"] = post.get("target_url", "").strip()
        if post.get("token"):
            fields["token"] = post["token"]
        if post.get("clear_token"):
            fields["token"] = ""
    options: dict[str, Any] = {}
    for key in ("item_column", "key_column", "cc", "bcc", "email_to"):
        if key in post:
            options[key] = post.get(key, "").strip()
    if "attach_views" in post or action.action_type == ActionType.EMAIL_REPORT:
        options["attach_views"] = [int(v) for v in post.getlist("attach_views") if v.isdigit()]
    if options:
        fields["options"] = options
    if action.action_type in SERVED_TYPES:
        fields["serve_enabled"] = bool(post.get("serve_enabled"))
        fields["active_from"] = _dt_or_none(post.get("active_from"))
        fields["active_to"] = _dt_or_none(post.get("active_to"))
    if action.action_type in IN_ACTION_TYPES:
        fields["shuffle"] = bool(post.get("shuffle"))
    return fields


def _editor_context(action: Action, **extra: Any) -> dict[str, Any]:
    workflow = action.workflow
    columns = selectors.columns_of(workflow)
    conditions = list(Condition.objects.filter(action=action).order_by("position", "id"))
    kind = action.action_type
    question_rows: list[dict[str, Any]] = []
    if kind in (ActionType.SURVEY, ActionType.TODO_LIST, ActionType.RUBRIC):
        chosen = {ac.column_id: ac for ac in ActionColumn.objects.filter(action=action)}
        for column in columns:
            if kind == ActionType.TODO_LIST and column.data_type != DataType.BOOLEAN:
                continue
            if kind == ActionType.RUBRIC and len(column.categories or []) < 2:
                continue
            if kind == ActionType.SURVEY and column.is_key:
                continue
            ac = chosen.get(column.pk)
            question_rows.append(
                {
                    "column": column,
                    "chosen": ac is not None,
                    "position": ac.position if ac else "",
                    "condition_id": ac.condition_id if ac else None,
                    "changes_allowed": ac.changes_allowed if ac else True,
                }
            )
        question_rows.sort(key=lambda r: (not r["chosen"], r["position"] or 0))
    serve_url = reverse("feedback:serve", args=[action.public_id])
    return workflow_context(
        workflow,
        "actions",
        action=action,
        icon=TYPE_ICONS.get(kind, "lightning"),
        columns=columns,
        attributes=sorted((workflow.attributes or {}).keys()),
        conditions=conditions,
        filters=list(Filter.objects.filter(workflow=workflow).order_by("name")),
        views=list(workflow.views.order_by("name")),
        formats=TextFormat.choices,
        has_subject=kind in SUBJECT_TYPES,
        has_url=kind in URL_TYPES,
        has_item=kind in ITEM_TYPES,
        is_in=kind in IN_ACTION_TYPES,
        is_served=kind in SERVED_TYPES,
        is_report=kind in rendering.REPORT_TYPES,
        has_text=kind != ActionType.TODO_LIST,
        item_column=rendering.item_column_name(action),
        key_columns=[c for c in columns if c.is_key],
        question_rows=question_rows,
        rubric=services.rubric_grid(action) if kind == ActionType.RUBRIC else [],
        serve_url=serve_url,
        entry_url=reverse("feedback:action_entry", args=[workflow.pk, action.pk])
        if kind in IN_ACTION_TYPES
        else None,
        run_url=run_url(action) if action.is_out else None,
        ex_value="{{ column name }}",
        ex_if="{% if condition %}…{% else %}…{% endif %}",
        ex_report='{% report "Column A" "Column B" %}',
        ex_json="{{ column name }}",
        **extra,
    )


@member_required
def action_edit(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    action = _load_action(request, wid, aid)
    error = None
    conflict = False
    if request.method == "POST":
        if getattr(action.workflow, "user_role", None) not in ("owner", "editor"):
            raise PermissionDenied
        try:
            services.action_update(
                action=action,
                actor=request.user,
                expected_version=posted_version(request),
                **_posted_fields(request, action),
            )
        except ConflictError as exc:
            conflict, error = True, error_text(exc)
        except (FeedbackError, ValueError) as exc:
            error = error_text(exc)
        else:
            messages.success(request, _("The action was saved."))
            return redirect("feedback:action_edit", wid=wid, aid=aid)
    problems = services.validate(action) if not error else []
    context = _editor_context(
        action,
        error=error,
        conflict=conflict,
        problems=problems,
        posted=request.POST if error else None,
    )
    return render(
        request, "feedback/actions/action_edit.html", context, status=400 if error else 200
    )


@member_required
def action_preview(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """The live preview (an htmx fragment): GET shows the saved action; POST previews the
    editor's unsaved text without storing it."""
    action = _load_action(request, wid, aid)
    source = request.POST if request.method == "POST" else request.GET
    if request.method == "POST":
        for field in ("text_content", "subject", "text_format"):
            if field in request.POST:
                setattr(action, field, request.POST[field].replace("\r\n", "\n"))
        if "filter" in request.POST:
            raw = request.POST.get("filter")
            action.filter = (
                Filter.objects.filter(workflow=action.workflow, pk=raw).first() if raw else None
            )
    try:
        index = int(source.get("row", "1") or 1)
    except ValueError:
        index = 1
    options = {"item_column": source["item_column"]} if source.get("item_column") else None
    try:
        result = rendering.preview_row(action, index, options)
    except Exception as exc:  # noqa: BLE001 - an unsaved draft must never break the page
        if isinstance(exc, (PermissionDenied, Http404)):
            raise
        result = {"error": str(exc), "total": 0, "index": 0}
    context = {
        "action": action,
        "workflow": action.workflow,
        "p": result,
        "preview_url": reverse("feedback:action_preview", args=[wid, aid]),
        "is_html": action.text_format in ("html", "markdown")
        and action.action_type not in rendering.PLAIN_TYPES | rendering.JSON_TYPES,
    }
    return render(request, "feedback/actions/_preview.html", context)


@member_required
@require_POST
def action_questions(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """Survey questions, rubric criteria or TODO items (checked rows of the editor's table)."""
    action = _load_action(request, wid, aid, "edit")
    items: list[tuple[int, int, dict[str, Any]]] = []
    for column_id in request.POST.getlist("q_column"):
        if not request.POST.get(f"q_use_{column_id}"):
            continue
        try:
            position = int(request.POST.get(f"q_position_{column_id}") or 0)
        except ValueError:
            position = 0
        condition_id = request.POST.get(f"q_condition_{column_id}")
        condition = (
            Condition.objects.filter(action=action, pk=condition_id).first()
            if condition_id
            else None
        )
        items.append(
            (
                position or 10_000,
                len(items),
                {
                    "column": int(column_id),
                    "condition": condition.name if condition else None,
                    "changes_allowed": bool(request.POST.get(f"q_changes_{column_id}")),
                },
            )
        )
    items.sort(key=lambda t: (t[0], t[1]))
    try:
        services.action_set_columns(action=action, actor=request.user, items=[t[2] for t in items])
    except FeedbackError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, _("Saved."))
    return redirect("feedback:action_edit", wid=wid, aid=aid)


@member_required
@require_POST
def action_rubric(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    action = _load_action(request, wid, aid, "edit")
    cells = []
    for entry in services.rubric_grid(action):
        column = entry["column"]
        for level in entry["levels"]:
            prefix = f"cell_{column.pk}_{level['level']}"
            cells.append(
                {
                    "column": column.name,
                    "level": level["level"],
                    "description": request.POST.get(f"{prefix}_description", ""),
                    "feedback": request.POST.get(f"{prefix}_feedback", ""),
                }
            )
    try:
        services.rubric_set_cells(action=action, actor=request.user, cells=cells)
    except FeedbackError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, _("The rubric was saved."))
    return redirect("feedback:action_edit", wid=wid, aid=aid)


# --- delete, clone, test, zip ------------------------------------------------------------


@member_required
def action_delete(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    action = _load_action(request, wid, aid, "edit")
    if request.method == "POST":
        name = action.name
        services.action_delete(action=action, actor=request.user)
        messages.success(request, _("The action “%(name)s” was deleted.") % {"name": name})
        return redirect("feedback:action_list", wid=wid)
    return render(
        request,
        "feedback/actions/action_delete.html",
        workflow_context(action.workflow, "actions", action=action),
    )


@member_required
@require_POST
def action_clone(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    action = _load_action(request, wid, aid, "edit")
    name = request.POST.get("name", "").strip() or _("Copy of %(name)s") % {"name": action.name}
    try:
        copy = services.action_clone(action=action, actor=request.user, name=name[:200])
    except FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect("feedback:action_list", wid=wid)
    messages.success(request, _("“%(name)s” was created.") % {"name": copy.name})
    return redirect("feedback:action_edit", wid=wid, aid=copy.pk)


@member_required
@require_POST
def action_send_test(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """Render the first message and mail it to the current user (not through the outbox)."""
    action = _load_action(request, wid, aid, "edit")
    result = rendering.preview_row(action, 1)
    if result.get("error") or not result.get("total"):
        messages.error(request, result.get("error") or _("There is no row to render."))
        return redirect("feedback:action_edit", wid=wid, aid=aid)
    subject = _("[Test] %(subject)s") % {"subject": result["subject"] or action.name}
    is_html = (
        action.text_format in ("html", "markdown")
        and action.action_type not in rendering.PLAIN_TYPES
    )
    sender = getattr(settings, "EMAIL_OVERRIDE_FROM", "") or settings.DEFAULT_FROM_EMAIL
    send_mail(
        subject,
        result["text"] or result["body"],
        sender,
        [_email(request)],
        html_message=result["body"] if is_html else None,
    )
    messages.success(
        request, _("A test message was sent to %(email)s.") % {"email": _email(request)}
    )
    return redirect("feedback:action_edit", wid=wid, aid=aid)


@member_required
def action_zip(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    action = _load_action(request, wid, aid)
    columns = selectors.columns_of(action.workflow)
    names = {c.name for c in columns}
    source = request.POST if request.method == "POST" else request.GET
    values: dict[str, Any] = {
        "file_column": source.get("file_column") or next((c.name for c in columns if c.is_key), ""),
        "file_suffix": source.get("file_suffix") or "feedback.html",
        "moodle": bool(source.get("moodle")),
        "fullname_column": source.get("fullname_column", ""),
        "participant_column": source.get("participant_column", ""),
    }
    error = None
    if request.method == "POST":
        wanted = [values["file_column"]]
        if values["moodle"]:
            wanted = [values["fullname_column"], values["participant_column"]]
        missing = [n or "—" for n in wanted if n not in names]
        if missing:
            error = _("Choose existing columns (“%(name)s” is not one).") % {"name": missing[0]}
        else:
            try:
                data = reports.personalized_zip(
                    action,
                    file_column=str(values["file_column"]),
                    file_suffix=str(values["file_suffix"]),
                    moodle=bool(values["moodle"]),
                    fullname_column=str(values["fullname_column"]),
                    participant_column=str(values["participant_column"]),
                )
            except Exception as exc:  # noqa: BLE001 - template/condition errors shown in the form
                error = str(exc)
            else:
                response = HttpResponse(data, content_type="application/zip")
                filename = f"action-{action.pk}.zip"
                response["Content-Disposition"] = f'attachment; filename="{filename}"'
                return response
    context = workflow_context(
        action.workflow, "actions", action=action, columns=columns, values=values, error=error
    )
    return render(
        request, "feedback/actions/action_zip.html", context, status=400 if error else 200
    )


# --- conditions ---------------------------------------------------------------------------


def _builder_template() -> str | None:
    try:
        return select_template(["feedback/builder/widget.html"]).template.name
    except Exception:  # noqa: BLE001 - Part of the filters pages; fall back to JSON
        return None


def _formula_from_post(request: HttpRequest) -> Any:
    raw = request.POST.get("formula", "")
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise FeedbackError(_("The condition is not valid JSON."), field="formula") from None


@member_required
def action_condition_edit(
    request: HttpRequest, wid: int, aid: int, cid: int | None = None
) -> HttpResponse:
    action = _load_action(request, wid, aid, "edit" if request.method == "POST" else "view")
    condition = None
    if cid is not None:
        condition = Condition.objects.filter(action=action, pk=cid).first()
        if condition is None:
            raise Http404
    error = None
    values: dict[str, Any] = {
        "name": request.POST.get("name", condition.name if condition else ""),
        "description": request.POST.get("description", condition.description if condition else ""),
        "formula": condition.formula if condition else {},
    }
    if request.method == "POST":
        try:
            formula = _formula_from_post(request)
            values["formula"] = formula
            if condition is None:
                filter_services.condition_create(
                    action=action,
                    actor=request.user,
                    name=values["name"],
                    formula=formula,
                    description=values["description"],
                    expected_version=posted_version(request),
                )
            else:
                filter_services.condition_update(
                    condition=condition,
                    actor=request.user,
                    name=values["name"],
                    formula=formula,
                    description=values["description"],
                    expected_version=posted_version(request),
                )
        except (FeedbackError, conds.ConditionError) as exc:
            error = error_text(exc)
        else:
            messages.success(request, _("The condition was saved."))
            return redirect("feedback:action_edit", wid=wid, aid=aid)
    columns = selectors.columns_of(action.workflow)
    context = workflow_context(
        action.workflow,
        "actions",
        action=action,
        condition=condition,
        values=values,
        error=error,
        builder=_builder_template(),
        columns=columns,
        fields=conds.builder_fields(columns),
        count_url=reverse("feedback:action_condition_count", args=[wid, aid]),
        formula_json=json.dumps(values["formula"] or {}),
    )
    return render(
        request, "feedback/actions/condition_form.html", context, status=400 if error else 200
    )


@member_required
@require_POST
def action_condition_delete(request: HttpRequest, wid: int, aid: int, cid: int) -> HttpResponse:
    action = _load_action(request, wid, aid, "edit")
    condition = Condition.objects.filter(action=action, pk=cid).first()
    if condition is None:
        raise Http404
    filter_services.condition_delete(condition=condition, actor=request.user)
    messages.success(request, _("The condition was deleted."))
    return redirect("feedback:action_edit", wid=wid, aid=aid)


@member_required
@require_POST
def action_condition_count(request: HttpRequest, wid: int, aid: int) -> HttpResponse:
    """Rows of the action's filter matching the posted formula: ``{"count": n}``."""
    action = _load_action(request, wid, aid)
    try:
        body = (
            json.loads(request.body or b"{}")
            if request.content_type == "application/json"
            else None
        )
        formula = (
            (body or {}).get("formula", body) if body is not None else _formula_from_post(request)
        )
        count = conds.count_matching(
            action.workflow, formula or {}, within=action.filter.formula if action.filter else None
        )
    except (conds.ConditionError, FeedbackError, ValueError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"count": count})
