"""The RapidPro SMS sender offered to other modules through ``core.channels``."""

from __future__ import annotations

import pytest

from closedloop.core.channels import SmsMessage, sms_senders
from closedloop.core.tenancy import account_scope
from closedloop.polls import client as rp_client
from closedloop.polls.models import Connection
from closedloop.polls.sms import RapidProSmsSender
from closedloop.polls.tests.outbound_helpers import posts, wire


@pytest.fixture
def rp(polls_world, fake_rapidpro):
    wire(polls_world, fake_rapidpro)
    return polls_world


def test_the_account_sender_posts_broadcasts_to_the_double(rp, fake_rapidpro):
    sender = sms_senders.for_account(rp.w.account)
    assert isinstance(sender, RapidProSmsSender) and sender.batch_size == 100
    outcomes = sender.send(
        [
            SmsMessage("+250788000001", "Ana, your score is 3"),
            SmsMessage("+250788000002", "Reminder"),
            SmsMessage("250788000003", "Reminder"),
        ]
    )
    assert [o.ok for o in outcomes] == [True, True, True]
    bodies = posts(fake_rapidpro, "broadcasts")
    assert [(b["text"], sorted(b["urns"])) for b in bodies] == [
        ("Ana, your score is 3", ["tel:+250788000001"]),
        ("Reminder", ["tel:+250788000002", "tel:+250788000003"]),
    ]
    assert (
        outcomes[1].provider_id
        == outcomes[2].provider_id
        == fake_rapidpro.state.broadcasts[1]["uuid"]
    )


def test_the_feedback_sms_action_path_finds_it(rp, fake_rapidpro):
    from closedloop.feedback.channels import Outgoing, RapidProSms

    with account_scope(rp.w.account):
        channel = RapidProSms(rp.w.account)
        outcomes = channel.send(
            [Outgoing(id=1, run_id=1, recipient="+250788000004", subject="", body="Hello Dan")]
        )
    assert outcomes[0].ok, outcomes[0].error
    (body,) = posts(fake_rapidpro, "broadcasts")
    assert body["urns"] == ["tel:+250788000004"] and body["text"] == "Hello Dan"


def test_rate_limits_and_server_errors_are_temporary(rp, fake_rapidpro, settings, monkeypatch):
    settings.RAPIDPRO_MAX_RETRIES = 0
    monkeypatch.setattr(rp_client, "sleep", lambda s: None)
    sender = sms_senders.for_account(rp.w.account)
    fake_rapidpro.throttle(times=1, retry_after=30)
    (limited,) = sender.send([SmsMessage("+250788000001", "hi")])
    assert not limited.ok and limited.temporary
    fake_rapidpro.fail_next(status=502)
    (broken,) = sender.send([SmsMessage("+250788000001", "hi")])
    assert not broken.ok and broken.temporary


def test_a_honoured_retry_after_still_sends(rp, fake_rapidpro, monkeypatch):
    waits = []
    monkeypatch.setattr(rp_client, "sleep", waits.append)
    fake_rapidpro.throttle(times=1, retry_after=2)
    (outcome,) = sms_senders.for_account(rp.w.account).send([SmsMessage("+250788000001", "hi")])
    assert outcome.ok and waits == [2]


def test_refused_numbers_are_permanent_failures(rp):
    sender = sms_senders.for_account(rp.w.account)
    bad, empty = sender.send([SmsMessage("+12", "hi"), SmsMessage("", "hi")])
    assert not bad.ok and not bad.temporary and "not a phone number" in bad.error
    assert not empty.ok and not empty.temporary


def test_batches_hold_at_most_100_urns(rp, fake_rapidpro):
    sender = sms_senders.for_account(rp.w.account)
    outcomes = sender.send([SmsMessage(f"+2507880{i:05}", "Same text") for i in range(150)])
    assert all(o.ok for o in outcomes)
    assert [len(b["urns"]) for b in posts(fake_rapidpro, "broadcasts")] == [100, 50]


def test_no_sender_without_an_active_connection(polls_world):
    with account_scope(polls_world.w.account):
        Connection.objects.update(is_active=False)
    assert sms_senders.for_account(polls_world.w.account) is None


def test_a_bad_number_does_not_fail_its_group(rp, fake_rapidpro):
    sender = sms_senders.for_account(rp.w.account)
    good, bad = sender.send([SmsMessage("+250788000001", "Same"), SmsMessage("+1", "Same")])
    assert good.ok and not bad.ok
    (body,) = posts(fake_rapidpro, "broadcasts")
    assert body["urns"] == ["tel:+250788000001"]
