# ruff: noqa: F811 - fixtures imported from test_delivery_support
"""The outbox against a real SMTP server: formats, copies, bursts, retries, permanent
failures, reconnects, racing claimers and crash recovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from closedloop.core.tenancy import account_scope
from closedloop.feedback import outbox
from closedloop.feedback.models import ActionRun, Delivery, RunStatus
from closedloop.feedback.runs import start_run
from closedloop.feedback.tests.test_delivery_support import (  # noqa: F401 - fixtures
    SmtpRecorder,
    smtp_server,
)

BODY = "<p>Dear {{ name }}, your score is {{ score }}.</p>"


@pytest.fixture
def course(make_workflow, world):
    workflow = make_workflow()
    from closedloop.feedback.actions import action_create

    with account_scope(world.account):
        action = action_create(
            workflow=workflow,
            actor=world.alice,
            name="Midterm feedback",
            action_type="email",
            text_content=BODY,
            subject="Your midterm, {{ name }}",
        )
    return action


def run(action: Any, world: Any, **options: Any) -> ActionRun:
    with account_scope(world.account):
        return start_run(
            action=action,
            actor=world.alice,
            options={"item_column": "email", **options},
            run_now=True,
        )


def statuses(run_: ActionRun) -> dict[str, str]:
    return dict(Delivery.objects.filter(run=run_).values_list("recipient", "status"))


def test_it_sends_html_only_messages_with_subject_and_body_in_their_places(
    course, world, smtp_server
):
    done = run(course, world, html_only=True)
    assert done.status == RunStatus.DONE and done.total == 6
    assert len(smtp_server.received) == 6
    by_to = {r.rcpt_tos[0]: r for r in smtp_server.received}
    msg = by_to["chloe@example.org"].message
    assert msg["Subject"] == "Your midterm, Chloé"
    assert msg["From"] == "alice@example.org"
    assert msg.get_content_type() == "text/html"
    assert "Dear Chloé, your score is 75.25" in msg.get_content()
    assert msg["Message-ID"].startswith("<delivery-")
    with account_scope(world.account):
        assert set(statuses(done).values()) == {"sent"}
        assert outbox.run_counts(done)["sent"] == 6


def test_it_sends_text_and_html_parts_when_not_html_only(course, world, smtp_server):
    run(course, world, html_only=False)
    msg = smtp_server.received[0].message
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Dear Ana" in plain and "<p>" not in plain
    assert "<p>Dear Ana" in html
    assert msg["Subject"] == "Your midterm, Ana"


def test_cc_bcc_and_the_override_sender(course, world, smtp_server, settings):
    settings.EMAIL_OVERRIDE_FROM = "Course team <team@example.org>"
    run(course, world, cc="ta@example.org", bcc="audit@example.org head@example.org")
    first = smtp_server.received[0]
    assert first.rcpt_tos == [
        "ana@example.org",
        "ta@example.org",
        "audit@example.org",
        "head@example.org",
    ]
    assert first.message["Cc"] == "ta@example.org"
    assert first.message["Bcc"] is None  # blind copies are not in the headers
    assert first.message["From"] == "Course team <team@example.org>"
    assert first.mail_from == "team@example.org"


def test_bad_cc_is_refused_before_anything_is_queued(course, world, smtp_server):
    from closedloop.feedback.services import FeedbackError

    with pytest.raises(FeedbackError) as caught:
        run(course, world, cc="ta@example.org not-an-address")
    assert caught.value.field == "cc" and "not-an-address" in caught.value.message
    with account_scope(world.account):
        assert not ActionRun.objects.exists()


def test_excluded_recipients_get_nothing(course, world, smtp_server):
    done = run(course, world, exclude_values=["ben@example.org", "eve@example.org"])
    assert done.total == 4
    assert sorted(smtp_server.to()) == [
        "ana@example.org", "chloe@example.org", "dan@example.org", "femi@example.org",
    ]  # fmt: skip


def test_bursts_reschedule_the_sender_instead_of_sleeping(course, world, smtp_server, settings):
    settings.EMAIL_BURST = 4
    settings.EMAIL_BURST_PAUSE = 30
    from closedloop.feedback import tasks_delivery

    with (
        mock.patch("time.sleep") as slept,
        mock.patch.object(tasks_delivery.deliver_run_task, "apply_async") as later,
        mock.patch.object(tasks_delivery, "_eager", return_value=False),
    ):
        done = run(course, world)
        assert len(smtp_server.received) == 4
        assert later.call_count == 1
        (args, kwargs), call_kwargs = later.call_args[0], later.call_args[1]
        assert args == (done.pk,) and call_kwargs["countdown"] == 30
        assert not slept.called
        # the continuation, holding the lease, sends the rest
        tasks_delivery.deliver_run_task.run(done.pk, **kwargs)
    assert len(smtp_server.received) == 6
    done.refresh_from_db()
    assert done.status == RunStatus.DONE


def test_a_burst_pause_keeps_other_senders_off_the_run(course, world, smtp_server, settings):
    settings.EMAIL_BURST = 2
    settings.EMAIL_BURST_PAUSE = 60
    done = run(course, world)  # eager: the continuation is left to the sweep
    assert len(smtp_server.received) == 2
    assert outbox.deliver_run(done.pk).skipped  # the lease still holds through the pause
    assert len(smtp_server.received) == 2


def test_a_temporary_refusal_is_retried_with_back_off(course, world, smtp_server, settings):
    settings.DELIVERY_RETRY_SECONDS = 60
    smtp_server.data_replies = ["451 4.3.0 Mailbox busy, try later"]
    done = run(course, world)
    with account_scope(world.account):
        retry = Delivery.objects.get(run=done, status="queued")
        assert retry.attempts == 1 and "451" in retry.error
        assert 55 <= (retry.next_attempt_at - timezone.now()).total_seconds() <= 61
    assert len(smtp_server.received) == 5
    # not due yet: a sender leaves it alone
    assert outbox.deliver_run(done.pk).sent == 0
    with account_scope(world.account):
        Delivery.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    result = outbox.deliver_run(done.pk)
    assert result.sent == 1 and result.finished
    assert len(smtp_server.received) == 6
    with account_scope(world.account):
        retry.refresh_from_db()
        assert retry.status == "sent" and retry.attempts == 2 and retry.error == ""


def test_the_back_off_doubles_and_gives_up_after_the_last_attempt(
    course, world, smtp_server, settings
):
    settings.DELIVERY_RETRY_SECONDS = 10
    settings.DELIVERY_MAX_ATTEMPTS = 3
    assert [outbox.retry_delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    smtp_server.reject = set()
    smtp_server.data_replies = ["452 4.2.2 Over quota"] * 3
    course.filter = None
    done = run(
        course,
        world,
        exclude_values=[f"{n}@example.org" for n in ("ben", "chloe", "dan", "eve", "femi")],
    )
    for _attempt in range(2):
        with account_scope(world.account):
            Delivery.objects.filter(run=done, status="queued").update(
                next_attempt_at=timezone.now()
            )
        outbox.deliver_run(done.pk)
    with account_scope(world.account):
        gave_up = Delivery.objects.get(run=done)
    assert gave_up.status == "failed" and gave_up.attempts == 3
    assert "3 attempts" in gave_up.error and "452" in gave_up.error
    done.refresh_from_db()
    assert done.status == RunStatus.DONE


def test_a_permanent_refusal_fails_at_once(course, world, smtp_server):
    smtp_server.reject = {"dan@example.org"}
    done = run(course, world)
    with account_scope(world.account):
        dan = Delivery.objects.get(run=done, recipient="dan@example.org")
        counts = outbox.run_counts(done)
    assert dan.status == "failed" and dan.attempts == 1 and "550" in dan.error
    assert counts["sent"] == 5 and counts["failed"] == 1


def test_an_invalid_address_fails_without_reaching_the_server(make_workflow, world, smtp_server):
    from closedloop.feedback.actions import action_create

    data = {"email": ["good@example.org", "not an address", "x@y"], "name": ["A", "B", "C"]}
    workflow = make_workflow(
        name="Bad addresses", data=data, types={"email": "string", "name": "string"}
    )
    with account_scope(world.account):
        action = action_create(workflow=workflow, actor=world.alice, name="Hello",
                               action_type="email", text_content="Hi", subject="Hi")  # fmt: skip
    done = run(action, world)
    with account_scope(world.account):
        st = statuses(done)
    assert st == {"good@example.org": "sent", "not an address": "failed", "x@y": "failed"}
    assert smtp_server.to() == ["good@example.org"]


def test_it_reconnects_when_the_server_limits_messages_per_session(course, world, smtp_server):
    smtp_server.per_session_limit = 2
    done = run(course, world)
    assert len(smtp_server.received) == 6
    assert smtp_server.sessions >= 3
    done.refresh_from_db()
    with account_scope(world.account):
        assert outbox.run_counts(done)["sent"] == 6


def test_it_reconnects_proactively_after_n_messages(course, world, smtp_server, settings):
    settings.EMAIL_MESSAGES_PER_CONNECTION = 4
    run(course, world)
    assert len(smtp_server.received) == 6 and smtp_server.sessions == 2


def test_an_unreachable_server_requeues_the_claim_for_later(course, world, settings):
    from closedloop.feedback.tests.test_delivery_support import free_port

    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_OUTBOX_ONLY = False
    done = run(course, world)
    with account_scope(world.account):
        counts = outbox.run_counts(done)
        rows = list(Delivery.objects.filter(run=done))
    assert counts["queued"] == 6 and counts["sending"] == 0
    assert sum(r.attempts for r in rows) == 1  # only the one that tried to connect
    assert all(r.next_attempt_at and r.next_attempt_at > timezone.now() for r in rows)


def make_queued(run_: ActionRun, world: Any, n: int) -> list[Delivery]:
    with account_scope(world.account):
        return Delivery.objects.bulk_create(
            [
                Delivery(
                    account=world.account,
                    run=run_,
                    channel="email",
                    recipient=f"p{i}@example.org",
                    subject=f"S{i}",
                    body=f"<p>B{i}</p>",
                )
                for i in range(n)
            ]  # fmt: skip
        )


@pytest.fixture
def empty_run(course, world):
    with account_scope(world.account):
        return ActionRun.objects.create(
            account=world.account, action=course, started_by=world.alice,
            status=RunStatus.SENDING, options={},
        )  # fmt: skip


def test_two_claimers_never_get_the_same_row(empty_run, world):
    make_queued(empty_run, world, 50)
    with account_scope(world.account):
        first = outbox.claim(empty_run.pk, limit=30, worker="w1")
        second = outbox.claim(empty_run.pk, limit=30, worker="w2")
        # a racer who read the same ids before the first UPDATE gets none of them
        taken = {d.pk for d in first}
        late = Delivery.objects.filter(pk__in=taken, status="queued").update(status="sending")
    assert late == 0
    assert len(first) == 30 and len(second) == 20
    assert not taken & {d.pk for d in second}


def test_racing_claimers_in_threads_split_the_rows(transactional_db, empty_run, world):
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent connections need a database server (run on PostgreSQL)")
    make_queued(empty_run, world, 300)
    got: list[list[int]] = [[], [], []]
    barrier = threading.Barrier(3)

    def claimer(slot: int) -> None:
        barrier.wait()
        try:
            with account_scope(world.account):
                while rows := outbox.claim(empty_run.pk, limit=7, worker=f"w{slot}"):
                    got[slot].extend(r.pk for r in rows)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for ids in got for pk in ids]
    assert len(everything) == len(set(everything)) == 300


def test_a_stale_sending_row_is_failed_not_resent_and_the_rest_requeued(
    empty_run, world, smtp_server
):
    rows = make_queued(empty_run, world, 5)
    with account_scope(world.account):
        claimed = outbox.claim(empty_run.pk, limit=3, worker="dead@host")
        # the worker died while sending the first of its claim
        Delivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            claimed_at=timezone.now() - timedelta(seconds=outbox.STALE_CLAIM_SECONDS + 5)
        )
    result = outbox.recover_stale_claims()
    assert result == {"failed": 1, "requeued": 2}
    with account_scope(world.account):
        first = Delivery.objects.get(pk=claimed[0].pk)
        assert first.status == "failed" and "not retried automatically" in first.error
        assert Delivery.objects.filter(run=empty_run, status="queued").count() == 4
    outbox.deliver_run(empty_run.pk)
    assert sorted(smtp_server.to()) == sorted(r.recipient for r in rows[1:])


def test_claims_of_a_worker_whose_heartbeat_stopped_are_recovered(empty_run, world, settings):
    from closedloop.jobs.models import WorkerHeartbeat

    make_queued(empty_run, world, 2)
    WorkerHeartbeat.objects.create(
        hostname="gone@host", seen_at=timezone.now() - timedelta(hours=1)
    )
    WorkerHeartbeat.objects.create(hostname="alive@host", seen_at=timezone.now())
    with account_scope(world.account):
        outbox.claim(empty_run.pk, limit=1, worker="alive@host")
        outbox.claim(empty_run.pk, limit=1, worker="gone@host")
    assert outbox.recover_stale_claims() == {"failed": 1, "requeued": 0}
    with account_scope(world.account):
        assert Delivery.objects.get(claimed_by="alive@host").status == "sending"


def test_a_restarted_worker_recovers_its_previous_claims_at_once(empty_run, world):
    make_queued(empty_run, world, 4)
    with account_scope(world.account):
        outbox.claim(empty_run.pk, limit=4, worker="w@host")
    assert outbox.recover_stale_claims(restarted_worker="w@host") == {"failed": 1, "requeued": 3}


def test_resend_failed_queues_them_again_and_sends(
    course, world, smtp_server, django_capture_on_commit_callbacks
):
    from closedloop.feedback.runs import resend_failed

    smtp_server.reject = {"dan@example.org", "eve@example.org"}
    done = run(course, world)
    smtp_server.reject = set()
    with account_scope(world.account), django_capture_on_commit_callbacks(execute=True):
        assert resend_failed(run=done, actor=world.alice) == 2
    with account_scope(world.account):
        assert outbox.run_counts(done)["sent"] == 6
    done.refresh_from_db()
    assert done.status == RunStatus.DONE
    assert sorted(smtp_server.to()).count("dan@example.org") == 1


def test_outbox_only_marks_sent_without_smtp(course, world, settings, caplog):
    settings.EMAIL_OUTBOX_ONLY = True
    with caplog.at_level("INFO", logger="closedloop.feedback.outbox"):
        done = run(course, world)
    with account_scope(world.account):
        assert outbox.run_counts(done)["sent"] == 6
    assert "ana@example.org" in caplog.text


def test_the_confirmation_summary_goes_to_the_sender(course, world, smtp_server):
    run(course, world, send_confirmation=True)
    assert len(smtp_server.received) == 7
    summary = [r for r in smtp_server.received if r.rcpt_tos == ["alice@example.org"]][0].message
    assert "Midterm feedback" in summary["Subject"] and "6" in summary["Subject"]
    assert "6" in summary.get_content()
