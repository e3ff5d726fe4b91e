"""Schedules: beat entries, windows and locks, incremental runs, the pages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from closedloop.core.tenancy import account_scope
from closedloop.feedback import schedules, services
from closedloop.feedback.models import ActionRun, Delivery, Schedule
from closedloop.feedback.services import FeedbackError

UTC = dt.UTC


@pytest.fixture
def action(make_workflow, world, settings):
    from closedloop.feedback.actions import action_create

    settings.EMAIL_OUTBOX_ONLY = True
    workflow = make_workflow()
    with account_scope(world.account):
        return action_create(workflow=workflow, actor=world.alice, name="Weekly nudge", action_type="email",
                             text_content="<p>Hi {{ name }}</p>", subject="Nudge")  # fmt: skip


def make(action: Any, world: Any, **values: Any) -> Schedule:
    defaults = {"name": "Weekly", "action": action, "frequency": "0 8 * * 1",
                "execute_start": timezone.now() - dt.timedelta(minutes=1),
                "payload": {"item_column": "email"}}  # fmt: skip
    with account_scope(world.account):
        return schedules.schedule_create(
            workflow=action.workflow, actor=world.alice, **{**defaults, **values}
        )


def test_a_repeating_schedule_gets_a_crontab_beat_entry(action, world):
    schedule = make(action, world)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "closedloop.feedback.run_schedule" and json.loads(task.args) == [
        schedule.pk
    ]
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "0", "8", "*", "*", "1")  # fmt: skip
    assert task.enabled and not task.one_off and task.clocked is None
    with account_scope(world.account):
        schedules.schedule_update(schedule=schedule, actor=world.alice, frequency="15 6 * * *")
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour) == ("15", "6")
    with account_scope(world.account):
        schedules.schedule_pause(schedule=schedule, actor=world.alice, paused=True)
    task.refresh_from_db()
    assert not task.enabled
    with account_scope(world.account):
        schedules.schedule_delete(schedule=schedule, actor=world.alice)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_a_one_off_schedule_gets_a_clocked_entry(action, world):
    at = timezone.now() + dt.timedelta(hours=3)
    schedule = make(action, world, frequency="", execute_start=at, incremental=True)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.one_off and task.clocked.clocked_time == at and task.crontab is None
    assert not schedule.incremental  # only repeating schedules are incremental


@pytest.mark.parametrize(
    ("frequency", "field"),
    [
        ("", "execute_start"),
        ("* * *", "frequency"),
        ("0 25 * * *", "frequency"),
        ("0 8 * * mon-xyz", "frequency"),
    ],
)
def test_bad_schedules_are_refused_by_field(action, world, frequency, field):
    with pytest.raises(FeedbackError) as caught:
        make(action, world, frequency=frequency, execute_start=None)
    assert caught.value.field == field
    with account_scope(world.account):
        assert not Schedule.objects.exists()
    assert not PeriodicTask.objects.filter(task="closedloop.feedback.run_schedule").exists()


def test_next_runs_and_a_readable_description(action, world):
    schedule = make(
        action, world, execute_start=None, execute_until=dt.datetime(2031, 1, 20, tzinfo=UTC)
    )
    now = dt.datetime(2030, 12, 31, 12, 0, tzinfo=UTC)  # a Tuesday
    assert schedules.next_runs(schedule, 4, now=now) == [
        dt.datetime(2031, 1, 6, 8, 0, tzinfo=UTC),
        dt.datetime(2031, 1, 13, 8, 0, tzinfo=UTC),
    ]  # the end of the window cuts the list
    assert "Monday" in schedules.describe("0 8 * * 1") and "08:00" in schedules.describe(
        "0 8 * * 1"
    )


def test_it_runs_inside_its_window_once_at_a_time(
    action, world, django_capture_on_commit_callbacks
):
    schedule = make(action, world)
    with account_scope(world.account):
        Schedule.objects.filter(pk=schedule.pk).update(status="executing")
    assert schedules.execute_schedule(schedule.pk) == "busy"
    with account_scope(world.account):
        Schedule.objects.filter(pk=schedule.pk).update(status="pending")
    early = timezone.now() - dt.timedelta(days=1)
    assert schedules.execute_schedule(schedule.pk, now=early) == "early"
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules.execute_schedule(schedule.pk) == "ran"
    with account_scope(world.account):
        schedule.refresh_from_db()
        run = ActionRun.objects.get(schedule=schedule)
        assert schedule.status == "pending" and "started" in schedule.last_outcome
        assert Delivery.objects.filter(run=run, status="sent").count() == 6
    late = timezone.now() + dt.timedelta(days=400)
    with account_scope(world.account):
        Schedule.objects.filter(pk=schedule.pk).update(execute_until=late - dt.timedelta(days=1))
    assert schedules.execute_schedule(schedule.pk, now=late) == "expired"
    with account_scope(world.account):
        schedule.refresh_from_db()
    assert schedule.status == "done"
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


def test_incremental_runs_reach_only_new_rows(action, world, django_capture_on_commit_callbacks):
    schedule = make(action, world, incremental=True)
    with django_capture_on_commit_callbacks(execute=True):
        schedules.execute_schedule(schedule.pk)
    with account_scope(world.account):
        services.row_insert(workflow=action.workflow, actor=world.alice,
                            values={"email": "new@example.org", "name": "Newcomer"})  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        schedules.execute_schedule(schedule.pk)
    with account_scope(world.account):
        first, second = ActionRun.objects.filter(schedule=schedule).order_by("id")
        assert Delivery.objects.filter(run=first).count() == 6
        assert list(Delivery.objects.filter(run=second).values_list("recipient", flat=True)) == [
            "new@example.org"
        ]


def test_a_one_off_run_ends_done_and_its_entry_is_disabled(
    action, world, django_capture_on_commit_callbacks
):
    schedule = make(
        action, world, frequency="", execute_start=timezone.now() + dt.timedelta(seconds=10)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules.execute_schedule(schedule.pk) == "ran"
    with account_scope(world.account):
        schedule.refresh_from_db()
    assert schedule.status == "done"
    assert schedules.execute_schedule(schedule.pk) == "busy"


def test_a_failing_operation_is_recorded(action, world):
    schedule = make(
        action, world, frequency="", execute_start=timezone.now() + dt.timedelta(seconds=10)
    )
    with account_scope(world.account):
        Schedule.objects.filter(pk=schedule.pk).update(action=None, operation_type="action_run")
    assert schedules.execute_schedule(schedule.pk) == "failed"
    with account_scope(world.account):
        schedule.refresh_from_db()
    assert schedule.status == "done_error" and "deleted" in schedule.last_outcome


# --- pages --------------------------------------------------------------------------------


def test_schedule_pages_respect_tenancy_and_sharing(action, world, client_for):
    schedule = make(action, world)
    wid = action.workflow_id
    urls = [reverse("feedback:schedule_list", args=[wid]), reverse("feedback:schedule_create", args=[wid]),
            reverse("feedback:schedule_edit", args=[wid, schedule.pk]),
            reverse("feedback:schedule_delete", args=[wid, schedule.pk])]  # fmt: skip
    for user in (world.charlie, world.bob):
        for url in urls:
            assert client_for(user).get(url).status_code == 404, (user, url)
    with account_scope(world.account):
        services.workflow_share(
            workflow=action.workflow, actor=world.alice, email=world.bob.email, role="viewer"
        )
    bob = client_for(world.bob)
    assert bob.get(urls[0]).status_code == 200
    for url in urls[1:]:
        assert bob.get(url).status_code == 403
    assert bob.post(urls[3]).status_code == 403


def test_the_list_shows_next_runs_and_last_outcomes(action, world, client_for, django_assert_max_num_queries,
                                                    django_capture_on_commit_callbacks):  # fmt: skip
    schedule = make(action, world)
    make(action, world, name="Daily", frequency="0 7 * * *")
    with django_capture_on_commit_callbacks(execute=True):
        schedules.execute_schedule(schedule.pk)
    client = client_for(world.alice)
    url = reverse("feedback:schedule_list", args=[action.workflow_id])
    client.get(url)
    with django_assert_max_num_queries(14):
        page = client.get(url).content.decode()
    assert page.count('data-testid="schedule-row"') == 2
    assert page.count("<li>") >= 6  # three next runs each
    assert "6 sent, 0 failed of 6" in page


def test_create_and_edit_through_the_form(action, world, client_for):
    client = client_for(world.alice)
    url = reverse("feedback:schedule_create", args=[action.workflow_id])
    assert client.get(url).status_code == 200
    form = {"name": "Mondays", "operation_type": "action_run", "action": action.pk, "item_column": "email",
            "repeat": "on", "frequency": "0 9 * * 1", "execute_start": "2030-01-01T08:00",
            "incremental": "on"}  # fmt: skip
    bad = client.post(url, {**form, "frequency": "0 9 * *"})
    assert bad.status_code == 400 and "five fields" in bad.content.decode()
    assert client.post(url, form).status_code == 302
    with account_scope(world.account):
        schedule = Schedule.objects.get()
    assert schedule.incremental and schedule.frequency == "0 9 * * 1"
    assert schedule.execute_start == dt.datetime(
        2030, 1, 1, 8, 0, tzinfo=UTC
    )  # account time zone UTC
    edit = reverse("feedback:schedule_edit", args=[action.workflow_id, schedule.pk])
    assert (
        client.post(edit, {**form, "name": "Mondays 10", "frequency": "0 10 * * 1"}).status_code
        == 302
    )
    with account_scope(world.account):
        schedule.refresh_from_db()
    assert (
        schedule.name == "Mondays 10"
        and PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.hour == "10"
    )
    delete = reverse("feedback:schedule_delete", args=[action.workflow_id, schedule.pk])
    assert client.post(delete).status_code == 302
    with account_scope(world.account):
        assert not Schedule.objects.exists()
