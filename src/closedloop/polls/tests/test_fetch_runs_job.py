"""Job ``polls.fetch_runs`` and ``closedloop fetch-runs``: back-fill, summary email, errors."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.feedback.tests.test_delivery_support import smtp_server  # noqa: F401 - fixture
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.polls import testing as t
from closedloop.polls.ingest_jobs import FETCH_RUNS_JOB
from closedloop.polls.models import Connection, Contact, Response


@pytest.fixture
def mail_server(smtp_server: Any, settings: Any) -> Any:  # noqa: F811
    """The real SMTP server fixture, with Django's SMTP backend (tests default to locmem)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    return smtp_server


@pytest.fixture
def arranged(world: Any, fake_rapidpro: Any) -> dict[str, Any]:
    """Three runs in the double: two 3 days ago, one 20 days ago (outside a 7-day fill)."""
    server = fake_rapidpro
    flow = server.add_flow(
        "Health check", questions=[{"key": "children", "name": "Children", "type": "numeric"}]
    )
    with account_scope(world.account):
        connection = t.make_connection(
            world.account, name="Main", host_url=server.url, token=server.token
        )
        poll = t.make_poll(connection, "Health check", flow_uuid=flow["uuid"])
        t.make_question(poll, "children")
    now = timezone.now().replace(microsecond=0)
    for i, days in enumerate((3, 3, 20)):
        contact = server.add_contact(f"Person {i}", [f"tel:+25078811{i:04d}"])
        at = now - dt.timedelta(days=days, minutes=i)
        server.add_run(
            flow["uuid"], contact["uuid"], {"children": str(i + 1)}, created_on=at, modified_on=at
        )
    return {"server": server, "connection": connection, "world": world}


def _responses(world: Any) -> int:
    with account_scope(world.account):
        return Response.objects.count()


def test_command_backfills_and_prints_the_summary(arranged: dict[str, Any]) -> None:
    out = io.StringIO()
    call_command(
        "fetch_runs", "--account", "ministry-a", "--connection", "Main", "--days", "7", stdout=out
    )
    text = out.getvalue()
    assert "2 runs read in 1 pages: 2 new" in text
    assert _responses(arranged["world"]) == 2
    with scopes_disabled():
        job = Job.objects.get(kind=FETCH_RUNS_JOB)
    assert job.status == JobStatus.SUCCEEDED
    assert job.params == {"connection_id": arranged["connection"].pk, "days": 7}
    assert (job.result["created"], job.result["days"]) == (2, 7)
    # the lock taken for the fetch was given back
    arranged["connection"].refresh_from_db()
    assert arranged["connection"].sync_locked_until is None


def test_command_incremental_without_days(arranged: dict[str, Any]) -> None:
    out = io.StringIO()
    call_command("fetch_runs", "--account", "ministry-a", "--connection", "Main", stdout=out)
    assert _responses(arranged["world"]) == 3
    assert "3 new" in out.getvalue()


def test_command_errors(arranged: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="No account has the slug “nope”"):
        call_command("fetch_runs", "--account", "nope", "--connection", "Main")
    with pytest.raises(CommandError, match="no RapidPro connection named “Other”.*Main"):
        call_command("fetch_runs", "--account", "ministry-a", "--connection", "Other")
    with pytest.raises(CommandError, match="--days must be between 0 and 3650"):
        call_command(
            "fetch_runs", "--account", "ministry-a", "--connection", "Main", "--days", "-1"
        )
    # account B cannot reach account A's connection by name
    with pytest.raises(CommandError, match="no RapidPro connection named"):
        call_command("fetch_runs", "--account", "ministry-b", "--connection", "Main")
    assert _responses(arranged["world"]) == 0
    with scopes_disabled():
        assert not Job.objects.filter(kind=FETCH_RUNS_JOB).exists()


def test_job_emails_the_requesting_user(arranged: dict[str, Any], mail_server: Any) -> None:
    world = arranged["world"]
    job = enqueue_job(
        account=world.account,
        kind=FETCH_RUNS_JOB,
        params={"connection_id": arranged["connection"].pk, "days": 30},
        created_by=world.alice,
        run_now=True,
    )
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED
    assert finished.result["created"] == 3
    assert mail_server.to() == ["alice@example.org"]
    message = mail_server.received[0].data.decode()
    assert "Subject: Runs fetched from Main" in message
    assert "3 runs read in 1 pages: 3 new" in message


def test_failed_fetch_is_reported_and_emailed(arranged: dict[str, Any], mail_server: Any) -> None:
    world = arranged["world"]
    arranged["server"].fail_next(status=500, times=5)
    job = enqueue_job(
        account=world.account,
        kind=FETCH_RUNS_JOB,
        params={"connection_id": arranged["connection"].pk, "days": 30},
        created_by=world.alice,
        run_now=True,
    )
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.FAILED
    assert "HTTP 500" in finished.error
    assert "Subject: Fetching runs from Main failed" in mail_server.received[0].data.decode()
    arranged["connection"].refresh_from_db()
    assert arranged["connection"].sync_locked_until is None


@pytest.mark.parametrize(
    ("days", "error"),
    [
        (-2, "between 0 and 3650"),
        (4000, "between 0 and 3650"),
        ("abc", "whole number of days"),
        (1.5, "whole number of days"),
    ],
)
def test_job_rejects_bad_days(arranged: dict[str, Any], days: Any, error: str) -> None:
    world = arranged["world"]
    job = enqueue_job(
        account=world.account,
        kind=FETCH_RUNS_JOB,
        params={"connection_id": arranged["connection"].pk, "days": days},
        run_now=True,
    )
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.FAILED
    assert error in finished.error
    assert _responses(world) == 0


def test_job_cannot_use_another_accounts_connection(arranged: dict[str, Any]) -> None:
    world = arranged["world"]
    job = enqueue_job(
        account=world.other_account,
        kind=FETCH_RUNS_JOB,
        params={"connection_id": arranged["connection"].pk, "days": 7},
        run_now=True,
    )
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.FAILED
    assert "does not exist" in finished.error
    assert _responses(world) == 0


def test_job_refuses_while_a_sync_holds_the_lock(arranged: dict[str, Any]) -> None:
    world = arranged["world"]
    with account_scope(world.account):
        Connection.objects.filter(pk=arranged["connection"].pk).update(
            sync_locked_until=timezone.now() + dt.timedelta(minutes=10)
        )
    job = enqueue_job(
        account=world.account,
        kind=FETCH_RUNS_JOB,
        params={"connection_id": arranged["connection"].pk, "days": 7},
        run_now=True,
    )
    finished = execute_job(job.pk)
    assert finished is not None and finished.status == JobStatus.FAILED
    assert "is running" in finished.error
    assert _responses(world) == 0
    with account_scope(world.account):
        # the other holder's lock is left alone
        assert Connection.objects.get(pk=arranged["connection"].pk).sync_locked_until is not None
        assert not Contact.objects.exists()
