"""The upload / merge wizard: 1 source, 2 columns, 3 keys and method, 4 preview and run.

The parsed data is staged on disk (``dataops.staging``); the session keeps only the
token. Uploads above ``wizard.JOB_THRESHOLD`` rows run as a Job with a progress page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import services
from closedloop.feedback.dataops import staging, wizard
from closedloop.feedback.dataops.choices import ColumnChoice, apply_choices, default_choices
from closedloop.feedback.dataops.forms import FORMS, HOW_CHOICES, MergeOptionsForm, SQLSourceForm
from closedloop.feedback.dataops.infer import TYPES, as_text
from closedloop.feedback.dataops.sources import (
    ParsedTable,
    load_remote,
    load_sql,
    load_table_source,
    parse_upload,
    xlsx_sheet_names,
)
from closedloop.feedback.models import Column, DataType, TableVersion, Workflow, WorkflowLog
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    membership_of,
    posted_version,
    workflow_context,
)
from closedloop.jobs.models import Job
from closedloop.jobs.runtime import enqueue_job

SAMPLE_VALUES = 3
SESSION_KEY = "feedback_upload"
DATA_LOGS = ["workflow_data_upload", "workflow_data_merge", "workflow_data_failedmerge", "workflow_restore"]  # fmt: skip
SOURCES = [
    (
        "csv",
        _("CSV file"),
        "filetype-csv",
        _("Any delimiter and encoding; lines to skip at the top and bottom."),
    ),  # fmt: skip
    (
        "xlsx",
        _("Excel workbook"),
        "file-earmark-spreadsheet",
        _("An .xlsx file; choose the sheet."),
    ),
    ("json", _("JSON file"), "filetype-json", _("A list of records (objects).")),
    (
        "sql",
        _("SQL connection"),
        "database",
        _("A table or query of a database an administrator set up."),
    ),  # fmt: skip
    (
        "source",
        _("closedloop table"),
        "people",
        _("People and other tables offered by closedloop modules."),
    ),  # fmt: skip
    (
        "s3",
        _("Amazon S3 object"),
        "cloud-arrow-down",
        _("A CSV, Excel or JSON object in a bucket."),
    ),
    ("gsheet", _("Google Sheet"), "google", _("A sheet shared publicly, read as CSV.")),
]


def _user_id(request: HttpRequest) -> int:
    return int(request.user.pk or 0)


def _edit_workflow(request: HttpRequest, wid: int) -> Workflow:
    return load_workflow(request, wid, "edit")


def _staged(request: HttpRequest, workflow: Workflow, token: str) -> staging.Staged:
    return staging.load(
        token,
        account_id=workflow.account_id,
        workflow_id=workflow.pk,
        user_id=_user_id(request),
    )


def _context(workflow: Workflow, step: int, **extra: Any) -> dict[str, Any]:
    steps = [_("Source"), _("Columns"), _("Keys"), _("Preview")]
    if wizard.is_empty(workflow):
        steps = [_("Source"), _("Columns"), _("Preview")]
    return workflow_context(workflow, "data", step=step, steps=steps, **extra)


# --- step 1: the source ----------------------------------------------------------------


@member_required
def upload_start(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "view")
    versions = list(TableVersion.objects.filter(workflow=workflow).select_related("created_by")[:5])
    logs = list(
        WorkflowLog.objects.filter(workflow=workflow, name__in=DATA_LOGS)
        .select_related("user")
        .order_by("-created_at", "-id")[:8]
    )
    context = _context(workflow, 1, sources=SOURCES, versions=versions, logs=logs)
    return render(request, "feedback/dataops/start.html", context)


def _read_source(kind: str, form: Any, request: HttpRequest, workflow: Workflow) -> ParsedTable:
    data = form.cleaned_data
    time_zone = wizard.time_zone_of(workflow)
    if kind in ("csv", "xlsx", "json"):
        raw = data["file"].read()
        options: dict[str, Any] = {"time_zone": time_zone}
        if kind == "csv":
            options.update(
                skip_top=data.get("skip_top") or 0,
                skip_bottom=data.get("skip_bottom") or 0,
                delimiter=data.get("delimiter") or None,
                encoding=data.get("encoding") or None,
            )
        if kind == "xlsx":
            options["sheet"] = data.get("sheet") or None
        parsed = parse_upload(kind, raw, **options)
        if kind == "xlsx" and len(sheets := xlsx_sheet_names(raw)) > 1:
            parsed.notes.append(_("Sheets in the workbook: %(s)s.") % {"s": ", ".join(sheets)})
        return parsed
    if kind == "sql":
        return load_sql(
            data["connection"],
            password=data.get("password") or None,
            table=data.get("table") or None,
            query=data.get("query") or None,
            time_zone=time_zone,
        )
    if kind == "source":
        return load_table_source(
            data["source"],
            account=workflow.account,
            membership=membership_of(request),
            params={"active_only": bool(data.get("active_only"))},
        )
    if kind == "s3":
        return load_remote(
            f"s3://{data['bucket'].strip()}/{data['key'].strip().lstrip('/')}",
            kind=data.get("kind") or "csv",
            access_key=data.get("access_key") or None,
            secret_key=data.get("secret_key") or None,
            region=data.get("region") or None,
            time_zone=time_zone,
        )
    return load_remote(data["url"], kind="csv", time_zone=time_zone)


@member_required
def upload_source(request: HttpRequest, wid: int, kind: str) -> HttpResponse:
    workflow = _edit_workflow(request, wid)
    if kind not in FORMS:
        raise Http404
    form_class = FORMS[kind]
    extra: dict[str, Any] = {"account": workflow.account} if form_class is SQLSourceForm else {}
    form = form_class(request.POST or None, request.FILES or None, **extra)
    if request.method == "POST" and form.is_valid():
        try:
            parsed = _read_source(kind, form, request, workflow)
        except services.FeedbackError as exc:
            form.add_error(None, error_text(exc))
        else:
            token = staging.stage(
                parsed,
                account_id=workflow.account_id,
                workflow_id=workflow.pk,
                user_id=_user_id(request),
                source={"kind": kind},
            )
            request.session[SESSION_KEY] = {"workflow": workflow.pk, "token": token}
            return redirect("feedback:upload_columns", wid=workflow.pk, token=token)
    title = next(label for key, label, _icon, _text in SOURCES if key == kind)
    context = _context(workflow, 1, form=form.style(), kind=kind, source_title=title,
                       has_connections=kind != "sql" or form.fields["connection"].queryset.exists())  # type: ignore[attr-defined]  # fmt: skip
    return render(request, "feedback/dataops/source.html", context)


# --- step 2: columns -----------------------------------------------------------------


def _posted_choices(request: HttpRequest, names: list[str]) -> list[ColumnChoice]:
    post = request.POST
    return [
        ColumnChoice(
            name=name,
            load=post.get(f"load-{i}") == "on",
            rename=post.get(f"rename-{i}", "").strip(),
            data_type=post.get(f"type-{i}", ""),
            is_key=post.get(f"key-{i}") == "on",
        )
        for i, name in enumerate(names)
    ]


def _column_rows(parsed: ParsedTable, choices: list[ColumnChoice]) -> list[dict[str, Any]]:
    candidates = set(parsed.key_candidates())
    rows = []
    for i, choice in enumerate(choices):
        series = parsed.frame.get_column(choice.name)
        sample = as_text(series.drop_nulls().head(SAMPLE_VALUES)).to_list()
        rows.append(
            {
                "index": i,
                "choice": choice,
                "inferred": parsed.types.get(choice.name, "string"),
                "sample": sample,
                "nulls": series.null_count(),
                "can_key": choice.name in candidates,
            }
        )
    return rows


@member_required
def upload_columns(request: HttpRequest, wid: int, token: str) -> HttpResponse:
    workflow = _edit_workflow(request, wid)
    staged = _staged(request, workflow, token)
    parsed = staged.parsed
    stored = staged.state.get("choices")
    choices = [ColumnChoice(**c) for c in stored] if stored else default_choices(parsed)
    error = ""
    if request.method == "POST":
        choices = _posted_choices(request, parsed.frame.columns)
        try:
            apply_choices(
                parsed,
                choices,
                time_zone=wizard.time_zone_of(workflow),
                require_key=wizard.is_empty(workflow),
            )
        except services.FeedbackError as exc:
            error = error_text(exc)
        else:
            staged.save_state(choices=[c.to_dict() for c in choices], merge=None)
            step = "upload_preview" if wizard.is_empty(workflow) else "upload_keys"
            return redirect(f"feedback:{step}", wid=workflow.pk, token=token)
    context = _context(
        workflow,
        2,
        token=token,
        staged=staged,
        nrows=parsed.nrows,
        rows=_column_rows(parsed, choices),
        types=[(t, DataType(t).label) for t in TYPES],
        error=error,
        empty=wizard.is_empty(workflow),
    )
    return render(request, "feedback/dataops/columns.html", context)


# --- step 3: keys and method ---------------------------------------------------------


@member_required
def upload_keys(request: HttpRequest, wid: int, token: str) -> HttpResponse:
    workflow = _edit_workflow(request, wid)
    staged = _staged(request, workflow, token)
    if wizard.is_empty(workflow):
        return redirect("feedback:upload_preview", wid=workflow.pk, token=token)
    try:
        prepared = wizard.prepare(workflow, staged)
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect("feedback:upload_columns", wid=workflow.pk, token=token)
    table_keys = list(
        Column.objects.filter(workflow=workflow, is_key=True).values_list("name", flat=True)
    )
    from closedloop.feedback.dataops.sources import key_candidates

    data_keys = key_candidates(prepared.frame)
    stored = staged.state.get("merge") or {}
    initial = {
        "left_on": stored.get("left_on") or table_keys[0],
        "right_on": stored.get("right_on")
        or next((k for k in table_keys if k in data_keys), data_keys[0] if data_keys else ""),
        "how": stored.get("how", "outer"),
        "clear_with_empty": stored.get("clear_with_empty", False),
    }
    form = MergeOptionsForm(
        request.POST or None, initial=initial, table_keys=table_keys, data_keys=data_keys
    )
    if request.method == "POST" and form.is_valid():
        staged.save_state(merge=form.cleaned_data)
        return redirect("feedback:upload_preview", wid=workflow.pk, token=token)
    context = _context(workflow, 3, token=token, form=form.style(), how_choices=HOW_CHOICES,
                       no_data_keys=not data_keys)  # fmt: skip
    return render(request, "feedback/dataops/keys.html", context)


# --- step 4: preview and run ---------------------------------------------------------


@member_required
def upload_preview(request: HttpRequest, wid: int, token: str) -> HttpResponse:
    workflow = _edit_workflow(request, wid)
    staged = _staged(request, workflow, token)
    empty = wizard.is_empty(workflow)
    if not empty and not staged.state.get("merge"):
        return redirect("feedback:upload_keys", wid=workflow.pk, token=token)
    if request.method == "POST":
        return _confirm(request, workflow, staged)
    error, result = "", None
    try:
        result = wizard.preview(workflow, request.user, staged)
    except services.FeedbackError as exc:
        error = error_text(exc)
    sample_columns = [c for c in (result.columns if result else []) if c.tag != "ignored"]
    context = _context(
        workflow,
        3 if empty else 4,
        token=token,
        result=result,
        error=error,
        empty=empty,
        sample_columns=sample_columns,
        sample=[
            [row.get(c.name) for c in sample_columns] for row in (result.sample if result else [])
        ],
        as_job=staged.parsed.nrows > wizard.JOB_THRESHOLD,
        type_labels={t: DataType(t).label for t in TYPES},
        nrows=staged.parsed.nrows,
    )
    return render(request, "feedback/dataops/preview.html", context)


def _confirm(request: HttpRequest, workflow: Workflow, staged: staging.Staged) -> HttpResponse:
    expected = posted_version(request)
    if staged.parsed.nrows > wizard.JOB_THRESHOLD:
        kind = "feedback.upload" if wizard.is_empty(workflow) else "feedback.merge"
        job = enqueue_job(
            account=workflow.account,
            kind=kind,
            params={
                "workflow": workflow.pk,
                "token": staged.token,
                "user": _user_id(request),
                "expected_version": expected,
            },  # fmt: skip
            title=_("Load data into %(name)s") % {"name": workflow.name},
            created_by=request.user,
        )
        return redirect("feedback:upload_job", wid=workflow.pk, job_id=job.pk)
    try:
        wizard.run(workflow, request.user, staged, expected_version=expected)
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect("feedback:upload_preview", wid=workflow.pk, token=staged.token)
    return redirect("feedback:upload_done", wid=workflow.pk, token=staged.token)


@member_required
def upload_done(request: HttpRequest, wid: int, token: str) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    state = staging.load_state(
        token, account_id=workflow.account_id, workflow_id=workflow.pk, user_id=_user_id(request)
    )
    if not state.get("done"):
        return redirect("feedback:upload_preview", wid=workflow.pk, token=token)
    context = workflow_context(workflow, "data", result=state.get("result") or {})
    return render(request, "feedback/dataops/done.html", context)


def _job_for(workflow: Workflow, job_id: int) -> Job:
    job = Job.objects.filter(pk=job_id, account_id=workflow.account_id).first()
    if job is None or (job.params or {}).get("workflow") != workflow.pk:
        raise Http404
    return job


@member_required
def upload_job(request: HttpRequest, wid: int, job_id: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    job = _job_for(workflow, job_id)
    template = "feedback/dataops/job.html"
    if getattr(request, "htmx", None):
        template += "#live"
    context = workflow_context(workflow, "data", job=job, result=job.result or {},
                               finished=job.status in ("succeeded", "failed", "cancelled"))  # fmt: skip
    return render(request, template, context)


@require_POST
@member_required
def upload_undo(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = _edit_workflow(request, wid)
    try:
        version = services.workflow_undo(workflow=workflow, actor=request.user)
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
        return redirect("feedback:upload_start", wid=workflow.pk)
    messages.success(request, _("The table is back as it was before “%(label)s”.") % {"label": version.label})  # fmt: skip
    return redirect(reverse("feedback:table", args=[workflow.pk]))
