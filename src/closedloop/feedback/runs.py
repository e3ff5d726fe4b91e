"""Action runs: validate the run form, queue every message as a delivery, send them.

``start_run`` checks the options for the action's type and creates the
:class:`ActionRun` and its Job. The job renders the messages (``render.iter_messages``),
inserts them as ``queued`` deliveries in batches inside one transaction — so a crash
while rendering leaves no half-queued run — and then hands the run to the outbox.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.crypto import encrypt
from closedloop.feedback import channels as ch
from closedloop.feedback import outbox
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    Action,
    ActionRun,
    ActionType,
    Column,
    DataType,
    Delivery,
    DeliveryStatus,
    RunStatus,
    Schedule,
)
from closedloop.feedback.services import FeedbackError
from closedloop.jobs.runtime import JobContext, JobError, enqueue_job, execute_job, register_job

RUN_KIND = "feedback.run_action"
INSERT_BATCH = 2000
TRACK_PREFIX = "EmailRead_"

EMAIL_TYPES = {ActionType.EMAIL, ActionType.RUBRIC}
SENDING_TYPES = {
    ActionType.EMAIL,
    ActionType.RUBRIC,
    ActionType.SMS,
    ActionType.JSON,
    ActionType.CANVAS_EMAIL,
    ActionType.EMAIL_REPORT,
    ActionType.JSON_REPORT,
}
REPORT_TYPES = {ActionType.EMAIL_REPORT, ActionType.JSON_REPORT}
#: run options an action may keep as its defaults (its editor saves them in Action.options)
RUN_DEFAULTS = {"item_column", "cc", "bcc", "email_to", "send_confirmation", "track_read",
                "html_only", "canvas_instance"}  # fmt: skip


# --- options --------------------------------------------------------------------------------


def _flag(options: dict[str, Any], name: str, default: bool = False) -> bool:
    value = options.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "on", "yes"}
    return bool(value)


def _addresses(options: dict[str, Any], name: str) -> str:
    raw = options.get(name) or ""
    if isinstance(raw, list | tuple):
        raw = " ".join(str(v) for v in raw)
    good, bad = ch.split_addresses(str(raw))
    if bad:
        raise FeedbackError(
            _("“%(value)s” is not a valid email address.") % {"value": bad[0]}, field=name
        )
    return " ".join(good)


def _exclude_values(options: dict[str, Any]) -> list[str]:
    raw = options.get("exclude_values") or []
    if isinstance(raw, str):
        raw = raw.split()
    return sorted({str(v).strip() for v in raw if str(v).strip()})


def _column(action: Action, name: Any, field: str, *, required: bool = True) -> Column | None:
    name = str(name or "").strip()
    if not name:
        if required:
            raise FeedbackError(_("Choose the column that holds the recipients."), field=field)
        return None
    column = Column.objects.filter(workflow_id=action.workflow_id, name=name).first()
    if column is None:
        raise FeedbackError(_("There is no column named “%(name)s”.") % {"name": name}, field=field)
    return column


def validate_run_options(action: Action, options: dict[str, Any], *, actor: Any) -> dict[str, Any]:
    """The run form's fields, checked and normalised for ``action``'s type (FeedbackError
    names the field that is wrong)."""
    kind = action.action_type
    if kind not in SENDING_TYPES:
        raise FeedbackError(
            _("A “%(type)s” action is not sent; learners open it or you download it.")
            % {"type": action.get_action_type_display()},
            field="action",
        )
    saved = {k: v for k, v in (action.options or {}).items() if k in RUN_DEFAULTS}
    options = {**saved, **{k: v for k, v in (options or {}).items() if v is not None}}
    clean: dict[str, Any] = {"exclude_values": _exclude_values(options)}
    if kind in EMAIL_TYPES | {ActionType.SMS, ActionType.CANVAS_EMAIL, ActionType.JSON}:
        default_item = (action.options or {}).get("item_column")
        required = kind != ActionType.JSON
        column = _column(action, options.get("item_column") or default_item, "item_column",
                         required=required)  # fmt: skip
        clean["item_column"] = column.name if column else ""
    if kind in EMAIL_TYPES | {ActionType.EMAIL_REPORT, ActionType.CANVAS_EMAIL}:
        subject = str(options.get("subject") or action.subject or "").strip()
        if not subject:
            raise FeedbackError(_("Write a subject."), field="subject")
        clean["subject"] = subject
    if kind in EMAIL_TYPES | {ActionType.EMAIL_REPORT}:
        clean["cc"] = _addresses(options, "cc")
        clean["bcc"] = _addresses(options, "bcc")
        clean["send_confirmation"] = _flag(options, "send_confirmation")
        clean["html_only"] = _flag(options, "html_only", settings.EMAIL_HTML_ONLY)
    if kind in EMAIL_TYPES:
        clean["track_read"] = _flag(options, "track_read")
    if kind == ActionType.EMAIL_REPORT:
        clean["email_to"] = _addresses(options, "email_to")
        if not clean["email_to"]:
            raise FeedbackError(_("Give at least one address to send the report to."),
                                field="email_to")  # fmt: skip
    if kind in (ActionType.JSON, ActionType.JSON_REPORT):
        url = str(options.get("target_url") or action.target_url or "").strip()
        if not re.match(r"^https?://[^\s/]+", url):
            raise FeedbackError(_("Give the http(s) address to send the JSON to."),
                                field="target_url")  # fmt: skip
        clean["target_url"] = url
        token = str(options.get("token") or "").strip()
        if token:
            clean["token_encrypted"] = encrypt(token)
        elif not action.token_encrypted:
            raise FeedbackError(_("Give the bearer token the receiving service expects."),
                                field="token")  # fmt: skip
    if kind == ActionType.CANVAS_EMAIL:
        clean["canvas_instance"] = _canvas_instance(options, actor)
    _check_templates(action, clean)
    return clean


def _canvas_instance(options: dict[str, Any], actor: Any) -> str:
    from closedloop.feedback import canvas

    names = sorted(canvas.instances())
    name = str(options.get("canvas_instance") or (names[0] if len(names) == 1 else "")).strip()
    if name not in names:
        raise FeedbackError(_("Choose a Canvas instance."), field="canvas_instance")
    from closedloop.feedback.models import OAuthToken

    if not OAuthToken.objects.filter(user=actor, instance_name=name).exists():
        raise FeedbackError(
            _("Connect your Canvas account (%(name)s) before sending.") % {"name": name},
            field="canvas_instance",
        )
    return name


def _check_templates(action: Action, clean: dict[str, Any]) -> None:
    from closedloop.feedback import render
    from closedloop.feedback.conditions import ConditionError
    from closedloop.feedback.templating import TemplateError

    try:
        render.prepare(action, _render_options(clean))
    except TemplateError as exc:
        raise FeedbackError(_("The message cannot be rendered: %s") % exc, field="subject") from exc
    except ConditionError as exc:
        raise FeedbackError(_("A condition is not valid: %s") % exc, field="action") from exc


def _render_options(options: dict[str, Any]) -> dict[str, Any]:
    rendered = {k: v for k, v in options.items() if k != "token_encrypted"}
    rendered["with_text"] = not options.get("html_only", True)
    return rendered


# --- starting -----------------------------------------------------------------------------


def start_run(
    *,
    action: Action,
    actor: Any,
    options: dict[str, Any],
    schedule: Schedule | None = None,
    run_now: bool = False,
) -> ActionRun:
    """Check the options, create the run and its job (sent when the transaction commits;
    with ``run_now`` it runs here). Raises FeedbackError for bad options."""
    clean = validate_run_options(action, options, actor=actor)
    with transaction.atomic():
        track_column = ""
        if clean.get("track_read"):
            track_column = _add_track_column(action, actor)
            clean["track_column"] = track_column
        run = ActionRun.objects.create(
            account_id=action.account_id,
            action=action,
            schedule=schedule,
            started_by=actor if getattr(actor, "pk", None) else None,
            options=clean,
            track_column=track_column,
        )
        job = enqueue_job(
            account=action.account_id,
            kind=RUN_KIND,
            params={"run_id": run.pk},
            title=_("Send “%(action)s”") % {"action": action.name},
            created_by=actor,
            run_now=run_now,
        )
        run.job = job
        run.save(update_fields=["job"])
    from closedloop.feedback.tasks_delivery import ensure_outbox_sweep

    ensure_outbox_sweep()
    if run_now:
        execute_job(job.pk)
        run.refresh_from_db()
    return run


def _add_track_column(action: Action, actor: Any) -> str:
    from closedloop.feedback.columns import column_add

    taken = set(
        Column.objects.filter(workflow_id=action.workflow_id).values_list("name", flat=True)
    )
    n = 1
    while f"{TRACK_PREFIX}{n}" in taken:
        n += 1
    name = f"{TRACK_PREFIX}{n}"
    column_add(
        workflow=action.workflow,
        actor=actor,
        name=name,
        data_type=DataType.INTEGER,
        initial=0,
        description=_("Times the email of “%(action)s” was opened") % {"action": action.name},
    )
    return name


# --- the job ------------------------------------------------------------------------------


@register_job(RUN_KIND)
def run_action_job(ctx: JobContext) -> dict[str, Any]:
    run = ActionRun.objects.select_related("action__workflow", "started_by").get(
        pk=ctx.params["run_id"]
    )
    if run.status == RunStatus.PREPARING:
        try:
            queue_messages(run, ctx)
        except FeedbackError as exc:
            ActionRun.objects.filter(pk=run.pk).update(
                status=RunStatus.FAILED, finished_at=timezone.now()
            )
            raise JobError(str(exc)) from exc
    from closedloop.feedback.tasks_delivery import continue_later

    worker = ctx.job.worker or "local"
    result = outbox.deliver_run(run.pk, worker=worker, job_id=ctx.job.pk)
    continue_later(run.pk, result)
    counts = outbox.run_counts(run.pk)
    ctx.progress(counts["sent"] + counts["failed"], counts["total_rows"], force=True)
    return {"run": run.pk, **{k: counts[k] for k in ("sent", "failed", "queued", "opened")}}


def exclusions(run: ActionRun) -> set[str]:
    """Recipients to skip: the chosen ones, and for incremental schedules everyone an
    earlier run of the same schedule already reached."""
    excluded = set((run.options or {}).get("exclude_values") or [])
    schedule = run.schedule
    if schedule is not None and schedule.incremental:
        excluded |= set(
            Delivery.objects.filter(run__schedule=schedule, status=DeliveryStatus.SENT)
            .exclude(run=run)
            .values_list("recipient", flat=True)
            .distinct()
        )
    return excluded


def queue_messages(run: ActionRun, ctx: JobContext | None = None) -> int:
    """Render every message and insert them as queued deliveries (one transaction)."""
    from closedloop.feedback import render
    from closedloop.feedback.conditions import ConditionError
    from closedloop.feedback.templating import TemplateError

    action = run.action
    options = _render_options(run.options or {})
    channel = outbox.channel_kind(action.action_type)
    excluded = exclusions(run)
    if ctx:
        ctx.progress(0, render.count_messages(action), _("Rendering the messages."), force=True)
    total = 0
    try:
        with transaction.atomic():
            batch: list[Delivery] = []
            for message in render.iter_messages(action, options=options, exclude=excluded):
                batch.append(_delivery(run, channel, message))
                if len(batch) >= INSERT_BATCH:
                    total += _insert(batch)
                    batch = []
                    if ctx:
                        ctx.check_cancelled()
                        ctx.progress(total, message=_("Queued %(n)s messages.") % {"n": total})
            total += _insert(batch)
            ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.SENDING, total=total)
            log_event(
                action.workflow,
                run.started_by,
                f"action_run_{action.action_type}",
                {
                    "action": action.name,
                    "action_id": action.pk,
                    "run": run.pk,
                    "messages": total,
                    "excluded": len(excluded),
                    "schedule": run.schedule_id,
                    "options": {k: v for k, v in (run.options or {}).items()
                                if k not in ("token_encrypted", "exclude_values")},
                },
            )  # fmt: skip
    except (TemplateError, ConditionError) as exc:
        raise FeedbackError(_("The messages cannot be rendered: %s") % exc) from exc
    run.status, run.total = RunStatus.SENDING, total
    if ctx:
        ctx.progress(0, total, _("Sending %(n)s messages.") % {"n": total}, force=True)
    return total


def _delivery(run: ActionRun, channel: str, message: Any) -> Delivery:
    extra = {"text": message.text} if message.text and message.text != message.body else {}
    return Delivery(
        account_id=run.account_id,
        run_id=run.pk,
        channel=channel,
        recipient=(message.recipient or "")[:320],
        row_key=(message.row_key or "")[:255],
        rid=message.rid or None,
        subject=message.subject or "",
        body=message.body or "",
        extra=extra,
    )


def _insert(batch: list[Delivery]) -> int:
    if batch:
        Delivery.objects.bulk_create(batch, batch_size=INSERT_BATCH)
    return len(batch)


# --- after the run, re-sending, cancelling -------------------------------------------------


def after_run_finished(run: ActionRun) -> None:
    """Log the outcome; mail the summary to the sender if asked."""
    counts = outbox.run_counts(run.pk)
    workflow = run.action.workflow
    log_event(
        workflow,
        run.started_by,
        "action_email_sent" if run.action.action_type in EMAIL_TYPES else "action_run_done",
        {"action": run.action.name, "run": run.pk, "sent": counts["sent"],
         "failed": counts["failed"]},
    )  # fmt: skip
    if (run.options or {}).get("send_confirmation") and run.started_by is not None:
        send_confirmation(run, counts)


def send_confirmation(run: ActionRun, counts: dict[str, int]) -> bool:
    """The summary email to the person who started the run (from a template)."""
    context = {
        "run": run,
        "action": run.action,
        "workflow": run.action.workflow,
        "counts": counts,
        "url": settings.BASE_URL.rstrip("/") + f"/feedback/{run.action.workflow_id}/runs/{run.pk}/",
    }
    body = render_to_string("feedback/runs/confirmation_email.html", context)
    subject = _("Sent: %(action)s (%(sent)s of %(total)s)") % {
        "action": run.action.name,
        "sent": counts["sent"],
        "total": counts["total_rows"],
    }
    assert run.started_by is not None
    message = ch.Outgoing(id=0, run_id=run.pk, recipient=run.started_by.email, subject=subject,
                          body=body)  # fmt: skip
    conf = ch.EmailSettings(from_address=str(settings.DEFAULT_FROM_EMAIL), html_only=True)
    channel: ch.Channel = (
        ch.ConsoleOutbox(conf) if settings.EMAIL_OUTBOX_ONLY else ch.SmtpChannel(conf)
    )
    channel.open()
    try:
        return channel.send([message])[0].ok
    finally:
        channel.close()


def resend_failed(*, run: ActionRun, actor: Any) -> int:
    """Queue the run's failed messages again; returns how many."""
    with transaction.atomic():
        count = Delivery.objects.filter(run=run, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.QUEUED,
            attempts=0,
            next_attempt_at=None,
            claim_token="",
            error="",
        )
        if count:
            ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.SENDING, finished_at=None)
            log_event(
                run.action.workflow, actor, "action_run_resend", {"run": run.pk, "messages": count}
            )
            from closedloop.feedback.tasks_delivery import kick_run

            transaction.on_commit(lambda: kick_run(run.pk))
    run.refresh_from_db()
    return count


def cancel_queued(*, run: ActionRun, actor: Any) -> int:
    """Cancel the messages not sent yet (a message being sent right now still leaves)."""
    with transaction.atomic():
        count = Delivery.objects.filter(run=run, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.CANCELLED, claim_token=""
        )
        ActionRun.objects.filter(
            pk=run.pk, status__in=[RunStatus.SENDING, RunStatus.PREPARING]
        ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
        log_event(
            run.action.workflow, actor, "action_run_cancel", {"run": run.pk, "messages": count}
        )
        if run.job_id:
            from closedloop.jobs.models import Job
            from closedloop.jobs.runtime import cancel_job

            job = Job.objects.filter(pk=run.job_id).first()
            if job is not None:
                cancel_job(job)
    run.refresh_from_db()
    return count


def runs_with_counts(qs: QuerySet[ActionRun]) -> QuerySet[ActionRun]:
    """Runs annotated with their delivery counts (one query for a whole list)."""
    return qs.annotate(**outbox.count_expressions("deliveries__"))


def recipients_preview(action: Action, item_column: str, limit: int = 5000) -> list[str]:
    """The distinct recipient values a run would reach (for the exclude step), in SQL."""
    from closedloop.feedback import conditions, table

    columns = list(Column.objects.filter(workflow_id=action.workflow_id))
    column = next((c for c in columns if c.name == item_column), None)
    if column is None:
        return []
    predicate = conditions.compile_formula(
        action.filter.formula if action.filter else None, columns
    )
    rows = table.fetch_rows(
        action.workflow, [column], where=predicate.sql, params=predicate.params, limit=limit
    )
    seen: dict[str, None] = {}
    for row in rows:
        value = row.get(column.name)
        if value not in (None, ""):
            seen.setdefault(str(value).strip(), None)
    return list(seen)
