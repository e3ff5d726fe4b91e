"""Scheduling of syncs: due connections, the lock, the persisted back-off, the beat task,
the ``polls.sync`` job and the ``sync_polls`` command."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.runtime import execute_job
from closedloop.polls import scheduler, tasks_sync
from closedloop.polls import testing as t
from closedloop.polls.models import Connection, Poll
from closedloop.polls.tests.sync_helpers import arrange, connect

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def fresh(conn: Connection) -> Connection:
    with scopes_disabled():
        return Connection.objects.get(pk=conn.pk)


@pytest.fixture
def conn(world: Any) -> Connection:
    with account_scope(world.account):
        return t.make_connection(world.account)


def test_backoff_doubles_per_failure_and_is_capped_at_one_day(conn: Connection) -> None:
    waits = []
    for failures in range(1, 11):
        at = NOW + dt.timedelta(days=failures)
        scheduler.release(conn, ok=False, error=f"boom {failures}", now=at)
        row = fresh(conn)  # persisted in the database, not in memory or a cache
        assert row.consecutive_failures == failures
        assert row.last_error == f"boom {failures}" and row.last_error_at == at
        waits.append(int((row.next_sync_at - at).total_seconds() // 60))
    # 30 min × 2^n: 1 h, 2 h, 4 h, 8 h, 16 h, then one day
    assert waits == [60, 120, 240, 480, 960, 1440, 1440, 1440, 1440, 1440]


def test_backoff_uses_the_connection_interval_and_the_configured_cap(
    conn: Connection, settings: Any
) -> None:
    settings.POLLS_BACKOFF_MAX_SECONDS = 3 * 3600
    with scopes_disabled():
        Connection.objects.filter(pk=conn.pk).update(sync_interval_minutes=10)
    row = fresh(conn)
    assert [scheduler.backoff_seconds(row, n) // 60 for n in range(0, 6)] == [
        10,
        20,
        40,
        80,
        160,
        180,
    ]
    assert scheduler.backoff_seconds(row, 500) == 3 * 3600


def test_success_resets_the_backoff(conn: Connection) -> None:
    for _ in range(3):
        scheduler.release(conn, ok=False, error="down", now=NOW)
    scheduler.release(fresh(conn), ok=True, counts={"flows": 2}, now=NOW)
    row = fresh(conn)
    assert row.consecutive_failures == 0
    assert row.next_sync_at == NOW + dt.timedelta(minutes=30)
    assert row.last_success_at == NOW and row.last_counts == {"flows": 2}
    assert row.last_error == "down"  # history stays for the health panel
    assert row.sync_locked_until is None and row.sync_job_id is None


def test_a_long_retry_after_pushes_the_next_sync_further(conn: Connection) -> None:
    scheduler.release(conn, ok=False, error="429", retry_after=5 * 3600, now=NOW)
    assert fresh(conn).next_sync_at == NOW + dt.timedelta(hours=5)


def test_the_lock_prevents_overlap_and_expires(conn: Connection, settings: Any) -> None:
    settings.POLLS_SYNC_LOCK_SECONDS = 600
    other = fresh(conn)
    assert scheduler.acquire_lock(conn, now=NOW) is True
    assert scheduler.acquire_lock(other, now=NOW + MINUTE) is False
    assert fresh(conn).sync_locked_until == NOW + dt.timedelta(minutes=10)
    # the holder died: after the lock time anyone may take it
    assert scheduler.acquire_lock(other, now=NOW + dt.timedelta(minutes=11)) is True
    scheduler.release(other, ok=True, now=NOW + dt.timedelta(minutes=12))
    assert scheduler.acquire_lock(conn, now=NOW + dt.timedelta(minutes=13)) is True


def test_a_lock_held_by_a_finished_job_can_be_taken(world: Any, conn: Connection) -> None:
    with scopes_disabled():
        dead = Job.objects.create(account=world.account, kind="polls.sync", status=JobStatus.FAILED)
        live = Job.objects.create(
            account=world.account, kind="polls.sync", status=JobStatus.RUNNING
        )
    assert scheduler.acquire_lock(conn, live) is True
    assert scheduler.acquire_lock(fresh(conn)) is False
    with scopes_disabled():
        Connection.objects.filter(pk=conn.pk).update(sync_job=dead)
    assert scheduler.acquire_lock(fresh(conn)) is True


def test_due_connections(world: Any, conn: Connection) -> None:
    with account_scope(world.account):
        later = t.make_connection(world.account, name="later")
        locked = t.make_connection(world.account, name="locked")
        off = t.make_connection(world.account, name="off")
        stale_lock = t.make_connection(world.account, name="stale lock")
    with scopes_disabled():
        Connection.objects.filter(pk=conn.pk).update(next_sync_at=NOW - MINUTE)
        Connection.objects.filter(pk=later.pk).update(next_sync_at=NOW + MINUTE)
        Connection.objects.filter(pk=locked.pk).update(sync_locked_until=NOW + MINUTE)
        Connection.objects.filter(pk=off.pk).update(is_active=False)
        Connection.objects.filter(pk=stale_lock.pk).update(sync_locked_until=NOW - MINUTE)
    with account_scope(world.other_account):
        other = t.make_connection(world.other_account, name="B")
    names = [c.name for c in scheduler.due_connections(NOW)]
    assert sorted(names) == sorted([conn.name, "stale lock", other.name])
    world.other_account.is_active = False
    world.other_account.save()
    assert other.name not in [c.name for c in scheduler.due_connections(NOW)]


def test_the_beat_task_queues_one_job_per_due_connection_and_never_twice(
    world: Any, conn: Connection
) -> None:
    with account_scope(world.account):
        later = t.make_connection(world.account, name="later")
    with scopes_disabled():
        Connection.objects.filter(pk=later.pk).update(
            next_sync_at=timezone.now() + dt.timedelta(hours=1)
        )
    first = tasks_sync.sync_due()
    second = tasks_sync.sync_due()  # the next beat, while the job waits for a worker
    assert len(first["queued"]) == 1 and second["queued"] == []
    with scopes_disabled():
        job = Job.objects.get(pk=first["queued"][0])
        row = Connection.objects.get(pk=conn.pk)
    assert job.kind == "polls.sync" and job.params == {"connection_id": conn.pk}
    assert job.status == JobStatus.QUEUED and job.account_id == world.account.pk
    assert row.sync_job_id == job.pk and row.sync_locked_until > timezone.now()
    assert "RapidPro" in job.title


def test_the_sync_job_syncs_and_records_success(world: Any, fake_rapidpro: Any) -> None:
    arrange(fake_rapidpro)
    conn = connect(world, fake_rapidpro)
    job = scheduler.enqueue_sync(conn, steps=["flows", "groups"], run_now=True)
    assert job is not None
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.result["flows"] == 2 and finished.result["groups"] == 6
    row = fresh(conn)
    assert row.consecutive_failures == 0 and row.last_success_at is not None
    assert row.sync_locked_until is None and row.sync_job_id is None
    assert row.next_sync_at > timezone.now() + dt.timedelta(minutes=29)
    assert row.last_counts["flows"] == 2
    with account_scope(world.account):
        assert Poll.objects.filter(connection=conn).count() == 2


def test_a_bad_token_fails_the_job_with_a_clear_error_and_backs_off(
    world: Any, fake_rapidpro: Any
) -> None:
    with account_scope(world.account):
        conn = t.make_connection(world.account, host_url=fake_rapidpro.url, token="revoked")
    job = scheduler.enqueue_sync(conn, run_now=True)
    finished = execute_job(job.pk)
    assert finished.status == JobStatus.FAILED
    assert "RapidPro refused the API token" in finished.error
    assert "Traceback" not in finished.error
    row = fresh(conn)
    assert row.consecutive_failures == 1
    assert "RapidPro refused the API token" in row.last_error
    assert row.next_sync_at > timezone.now() + dt.timedelta(minutes=59)
    assert row.sync_locked_until is None
    # the beat does not retry before the back-off ends
    assert conn.pk not in [c.pk for c in scheduler.due_connections()]


def test_a_job_without_the_lock_does_nothing(world: Any, fake_rapidpro: Any) -> None:
    conn = connect(world, fake_rapidpro)
    assert scheduler.acquire_lock(conn)  # e.g. a run fetch is in progress
    with scopes_disabled():
        job = Job.objects.create(
            account=world.account, kind="polls.sync", params={"connection_id": conn.pk}
        )
    finished = execute_job(job.pk)
    assert finished.status == JobStatus.FAILED and "Another sync" in finished.error
    assert fake_rapidpro.state.requests == []
    assert fresh(conn).consecutive_failures == 0


def test_a_sync_of_another_accounts_connection_is_refused(world: Any, fake_rapidpro: Any) -> None:
    conn = connect(world, fake_rapidpro)
    with scopes_disabled():
        job = Job.objects.create(
            account=world.other_account, kind="polls.sync", params={"connection_id": conn.pk}
        )
    finished = execute_job(job.pk)
    assert finished.status == JobStatus.FAILED and "no longer exists" in finished.error
    assert fake_rapidpro.state.requests == []


def test_request_sync_returns_the_running_job_instead_of_a_second_one(
    world: Any, conn: Connection
) -> None:
    first = scheduler.request_sync(conn, world.alice)
    second = scheduler.request_sync(fresh(conn), world.alice)
    assert first.pk == second.pk
    assert first.created_by_id == world.alice.pk
    with scopes_disabled():
        assert Job.objects.filter(kind="polls.sync").count() == 1
        Job.objects.filter(pk=first.pk).update(status=JobStatus.FAILED)  # its worker died
    third = scheduler.request_sync(fresh(conn), world.alice)
    assert third.pk != first.pk


def test_the_sync_polls_command(world: Any, fake_rapidpro: Any, capsys: Any) -> None:
    arrange(fake_rapidpro)
    connect(world, fake_rapidpro)
    call_command("sync_polls", account=world.account.slug, connection="RapidPro", steps="flows")
    out = capsys.readouterr().out
    assert "RapidPro: flows 2" in out
    with pytest.raises(CommandError, match="No connection named"):
        call_command("sync_polls", account=world.account.slug, connection="nope")
    with pytest.raises(CommandError, match="Unknown steps"):
        call_command("sync_polls", account=world.account.slug, steps="flows,bogus")
    with pytest.raises(CommandError, match="No account"):
        call_command("sync_polls", account="missing")
