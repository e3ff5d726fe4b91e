"""Scheduled operations: one-off or repeating (crontab) runs of an action, an SQL or
table-source refresh, or a plugin, inside a start/end window.

Each :class:`Schedule` owns one django-celery-beat ``PeriodicTask`` (a
``ClockedSchedule`` for one-off runs, a ``CrontabSchedule`` for repeating ones) that
calls ``closedloop.feedback.run_schedule``. The task runs the schedule only inside its
window, takes it with a conditional status update (so two beats never run it twice)
and puts a repeating schedule back to pending afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    OUT_ACTION_TYPES,
    Action,
    OperationType,
    Schedule,
    ScheduleStatus,
    Workflow,
)
from closedloop.feedback.services import FeedbackError

TASK_NAME = "closedloop.feedback.run_schedule"
FIELDS = (
    "name",
    "description",
    "operation_type",
    "action",
    "payload",
    "execute_start",
    "execute_until",
    "frequency",
    "incremental",
)


# --- crontab --------------------------------------------------------------------------------


def parse_crontab(text: str, tz: dt.tzinfo | None = None) -> crontab:
    """A 5-field crontab (minute hour day-of-month month day-of-week); FeedbackError if not."""
    parts = (text or "").split()
    if len(parts) != 5:
        raise FeedbackError(
            _("Write five fields: minute hour day-of-month month day-of-week (e.g. “0 8 * * 1”)."),
            field="frequency",
        )
    minute, hour, dom, month, dow = parts
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=dom,
            month_of_year=month,
            day_of_week=dow,
            nowfun=(lambda: timezone.now().astimezone(tz)) if tz else None,
        )
    except (ValueError, TypeError) as exc:
        raise FeedbackError(
            _("“%(text)s” is not a valid crontab: %(error)s") % {"text": text, "error": exc},
            field="frequency",
        ) from exc


def describe(text: str) -> str:
    """ "0 8 * * 1" → "At 08:00 AM, only on Monday"."""
    if not text:
        return _("Once")
    try:
        from cron_descriptor import ExpressionDescriptor, Options

        options = Options()
        options.use_24hour_time_format = True
        return str(ExpressionDescriptor(text, options).get_description())
    except Exception:  # the descriptor is only for display
        return text


def zone_of(schedule: Schedule) -> zoneinfo.ZoneInfo:
    name = getattr(schedule.account, "time_zone", "") or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def next_runs(
    schedule: Schedule, count: int = 3, now: dt.datetime | None = None
) -> list[dt.datetime]:
    """The next ``count`` times the schedule will run (within its window)."""
    now = now or timezone.now()
    if schedule.status in (ScheduleStatus.DONE, ScheduleStatus.DONE_ERROR, ScheduleStatus.PAUSED):
        return []
    if not schedule.frequency:
        start = schedule.execute_start
        return [start] if start and start >= now - dt.timedelta(minutes=1) else []
    tz = zone_of(schedule)
    try:
        cron = parse_crontab(schedule.frequency, tz)
    except FeedbackError:
        return []
    out: list[dt.datetime] = []
    cursor = max(now, schedule.execute_start or now).astimezone(tz)
    for _i in range(count):
        nxt = _next_after(cron, cursor)
        if schedule.execute_until and nxt > schedule.execute_until:
            break
        out.append(nxt)
        cursor = nxt
    return out


def _next_after(cron: crontab, last: dt.datetime) -> dt.datetime:
    """The first minute strictly after ``last`` that the crontab matches."""
    start = last.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    # walk day by day to a matching date, then pick the first matching hour and minute
    day = start
    for _d in range(366 * 5):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (day.isoweekday() % 7) in cron.day_of_week
        ):
            for hour in sorted(cron.hour):
                for minute in sorted(cron.minute):
                    candidate = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
                    if candidate >= start:
                        return candidate
        day = (day + dt.timedelta(days=1)).replace(hour=0, minute=0)
    return start


# --- validation -----------------------------------------------------------------------------


def _clean(
    workflow: Workflow, actor: Any, values: dict[str, Any], instance: Schedule | None
) -> dict[str, Any]:
    name = str(values.get("name") or "").strip()
    if not name:
        raise FeedbackError(_("Give the schedule a name."), field="name")
    taken = Schedule.objects.filter(workflow=workflow, name=name)
    if instance is not None:
        taken = taken.exclude(pk=instance.pk)
    if taken.exists():
        raise FeedbackError(_("There is already a schedule named “%(name)s”.") % {"name": name},
                            field="name")  # fmt: skip
    op = values.get("operation_type") or OperationType.ACTION_RUN
    if op not in OperationType.values:
        raise FeedbackError(_("Choose what the schedule does."), field="operation_type")
    start, until = values.get("execute_start"), values.get("execute_until")
    frequency = " ".join(str(values.get("frequency") or "").split())
    if frequency:
        parse_crontab(frequency)
    elif start is None:
        raise FeedbackError(_("A one-off schedule needs a start time."), field="execute_start")
    if start and until and until <= start:
        raise FeedbackError(_("The end must be after the start."), field="execute_until")
    now = timezone.now()
    if until and until <= now:
        raise FeedbackError(_("The end is already in the past."), field="execute_until")
    if not frequency and start and start < now - dt.timedelta(minutes=5) and instance is None:
        raise FeedbackError(_("The start is already in the past."), field="execute_start")
    payload = values.get("payload") or {}
    if not isinstance(payload, dict):
        raise FeedbackError(_("The options must be a JSON object."), field="payload")
    action = values.get("action")
    if op == OperationType.ACTION_RUN:
        if not isinstance(action, Action) or action.workflow_id != workflow.pk:
            raise FeedbackError(_("Choose the action to run."), field="action")
        if action.action_type not in OUT_ACTION_TYPES:
            raise FeedbackError(_("Only actions that send messages can be scheduled."),
                                field="action")  # fmt: skip
        from closedloop.feedback.runs import validate_run_options

        payload = {**payload, **validate_run_options(action, payload, actor=actor)}
        payload.pop("token", None)
    else:
        action = None
        if op == OperationType.PLUGIN_RUN and not payload.get("plugin_key"):
            raise FeedbackError(_("Name the plugin to run (plugin_key)."), field="payload")
    return {
        "name": name,
        "description": str(values.get("description") or ""),
        "operation_type": op,
        "action": action,
        "payload": payload,
        "execute_start": start,
        "execute_until": until,
        "frequency": frequency,
        "incremental": bool(values.get("incremental")) and bool(frequency),
    }


# --- services -------------------------------------------------------------------------------


def schedule_create(*, workflow: Workflow, actor: Any, **values: Any) -> Schedule:
    clean = _clean(workflow, actor, values, None)
    with transaction.atomic():
        schedule = Schedule.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            created_by=actor if getattr(actor, "pk", None) else None,
            **clean,
        )
        sync_beat(schedule)
        log_event(workflow, actor, "schedule_create", _log_payload(schedule))
    return schedule


def schedule_update(*, schedule: Schedule, actor: Any, **values: Any) -> Schedule:
    current = {f: getattr(schedule, f) for f in FIELDS}
    current.update(values)
    clean = _clean(schedule.workflow, actor, current, schedule)
    with transaction.atomic():
        for field, value in clean.items():
            setattr(schedule, field, value)
        if schedule.status in (ScheduleStatus.DONE, ScheduleStatus.DONE_ERROR):
            schedule.status = ScheduleStatus.PENDING  # edited: it may run again
        schedule.save()
        sync_beat(schedule)
        log_event(schedule.workflow, actor, "schedule_edit", _log_payload(schedule))
    return schedule


def schedule_delete(*, schedule: Schedule, actor: Any) -> None:
    with transaction.atomic():
        task = schedule.periodic_task
        log_event(schedule.workflow, actor, "schedule_delete", _log_payload(schedule))
        schedule.delete()
        if task is not None:
            task.delete()


def schedule_pause(*, schedule: Schedule, actor: Any, paused: bool) -> Schedule:
    with transaction.atomic():
        schedule.status = ScheduleStatus.PAUSED if paused else ScheduleStatus.PENDING
        schedule.save(update_fields=["status", "updated_at"])
        sync_beat(schedule)
    return schedule


def _log_payload(schedule: Schedule) -> dict[str, Any]:
    return {
        "schedule": schedule.pk,
        "name": schedule.name,
        "operation_type": schedule.operation_type,
        "action": schedule.action_id,
        "frequency": schedule.frequency,
        "execute_start": schedule.execute_start.isoformat() if schedule.execute_start else None,
        "execute_until": schedule.execute_until.isoformat() if schedule.execute_until else None,
        "incremental": schedule.incremental,
    }


def sync_beat(schedule: Schedule) -> None:
    """Create or update the schedule's beat entry (clocked for one-off, crontab else)."""
    from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

    task = schedule.periodic_task
    if task is None:
        task = PeriodicTask(name=f"feedback schedule {schedule.pk}", task=TASK_NAME)
    old_clocked = task.clocked
    if schedule.frequency:
        minute, hour, dom, month, dow = schedule.frequency.split()
        cron, _c = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=dom,
            month_of_year=month,
            day_of_week=dow,
            timezone=zone_of(schedule),
        )
        task.crontab, task.clocked, task.one_off = cron, None, False
    else:
        clocked = ClockedSchedule.objects.create(clocked_time=schedule.execute_start)
        task.crontab, task.clocked, task.one_off = None, clocked, True
    task.interval = None
    task.args = json.dumps([schedule.pk])
    task.start_time = schedule.execute_start
    task.expires = schedule.execute_until
    task.enabled = schedule.status in (ScheduleStatus.PENDING, ScheduleStatus.EXECUTING)
    task.description = f"{schedule.workflow.name}: {schedule.name}"[:200]
    task.save()
    if old_clocked is not None and old_clocked != task.clocked:
        old_clocked.delete()
    if schedule.periodic_task_id != task.pk:
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=task)
        schedule.periodic_task = task


# --- running --------------------------------------------------------------------------------


def execute_schedule(schedule_id: int, now: dt.datetime | None = None) -> str:
    """Run the schedule if it is inside its window and nobody else is; returns what happened."""
    now = now or timezone.now()
    with scopes_disabled():
        account_id = (
            Schedule.objects.filter(pk=schedule_id).values_list("account_id", flat=True).first()
        )
    if account_id is None:
        return "missing"
    with account_scope(account_id):
        schedule = Schedule.objects.select_related(
            "workflow", "action", "created_by", "account"
        ).get(pk=schedule_id)
        if schedule.execute_start and now < schedule.execute_start - dt.timedelta(seconds=30):
            return "early"
        if schedule.execute_until and now > schedule.execute_until:
            Schedule.objects.filter(pk=schedule.pk, status=ScheduleStatus.PENDING).update(
                status=ScheduleStatus.DONE
            )
            sync_beat(Schedule.objects.get(pk=schedule.pk))
            return "expired"
        taken = Schedule.objects.filter(pk=schedule.pk, status=ScheduleStatus.PENDING).update(
            status=ScheduleStatus.EXECUTING
        )
        if not taken:
            return "busy"
        repeating = bool(schedule.frequency)
        try:
            outcome = _operate(schedule)
            ok = True
        except Exception as exc:  # the outcome is shown on the schedule list
            outcome, ok = _("Failed: %s") % exc, False
        if repeating:
            status = ScheduleStatus.PENDING
        else:
            status = ScheduleStatus.DONE if ok else ScheduleStatus.DONE_ERROR
        Schedule.objects.filter(pk=schedule.pk).update(
            status=status, last_run_at=now, last_outcome=str(outcome)[:2000]
        )
        log_event(
            schedule.workflow,
            schedule.created_by,
            "schedule_run",
            {
                "schedule": schedule.pk,
                "name": schedule.name,
                "ok": ok,
                "outcome": str(outcome)[:500],
            },
        )
        if not repeating:
            sync_beat(Schedule.objects.get(pk=schedule.pk))
        return "ran" if ok else "failed"


def _operate(schedule: Schedule) -> str:
    op = schedule.operation_type
    actor = schedule.created_by
    if op == OperationType.ACTION_RUN:
        from closedloop.feedback.runs import start_run

        if schedule.action is None:
            raise FeedbackError(_("The action of this schedule was deleted."))
        run = start_run(action=schedule.action, actor=actor, options=dict(schedule.payload),
                        schedule=schedule)  # fmt: skip
        return _("Run %(id)s started.") % {"id": run.pk}
    if op in (OperationType.SQL_REFRESH, OperationType.SOURCE_REFRESH):
        from closedloop.feedback.dataops.refresh import refresh_from_source

        result = refresh_from_source(
            workflow=schedule.workflow, actor=actor, spec=dict(schedule.payload)
        )
        return _("Refreshed: %(added)s rows added, %(updated)s updated.") % {
            "added": getattr(result, "added", "?"),
            "updated": getattr(result, "updated", "?"),
        }
    if op == OperationType.PLUGIN_RUN:
        from closedloop.feedback.plugins import run_plugin

        payload = dict(schedule.payload)
        job = run_plugin(
            workflow=schedule.workflow,
            actor=actor,
            plugin_key=str(payload.get("plugin_key")),
            params=dict(payload.get("params") or {}),
        )
        return _("Plugin job %(id)s queued.") % {"id": getattr(job, "pk", job)}
    raise FeedbackError(_("Unknown operation %(op)s.") % {"op": op})
