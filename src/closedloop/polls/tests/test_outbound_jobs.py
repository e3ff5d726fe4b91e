"""Poll starts, restarts, broadcasts and replies against the RapidPro double.

Expected audiences are hand-computed from ``polls_world``: run1 has ana complete, ben
partial, cara complete, dan empty → respondents Ana, Ben, Cara; non-respondents Dan.
"""

from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import JobStatus
from closedloop.polls import client as rp_client
from closedloop.polls import outbound
from closedloop.polls import testing as t
from closedloop.polls.models import (
    Audience,
    Broadcast,
    Contact,
    FlowStart,
    Message,
    PollRun,
    PollRunType,
    ResponseStatus,
)
from closedloop.polls.tests.outbound_helpers import posts, run, wire


@pytest.fixture
def rp(polls_world, fake_rapidpro):
    wire(polls_world, fake_rapidpro)
    return polls_world


@pytest.fixture
def no_sleep(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(rp_client, "sleep", waits.append)
    return waits


def _uuids(server, bodies, key="contacts"):
    return [sorted(body[key]) for body in bodies]


# --- start ----------------------------------------------------------------------------------


def test_starting_a_poll_for_a_panel_starts_its_contacts_and_links_the_start(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        job = outbound.start_poll(poll=rp.poll, panel=rp.north, propagate=False, user=rp.w.alice)
        pollrun = PollRun.objects.get(pk=job.params["pollrun_id"])
        assert pollrun.type == PollRunType.REGIONAL
        assert pollrun.org_unit_id == rp.w.region_north.pk
        assert pollrun.panel_id == rp.north.pk
        assert pollrun.created_by_id == rp.w.alice.pk
        done = run(job)
        assert done.status == JobStatus.SUCCEEDED, done.error
        start = FlowStart.objects.get(pollrun=pollrun)
    bodies = posts(fake_rapidpro, "flow_starts")
    assert len(bodies) == 1
    assert bodies[0]["contacts"] == [rp.ana.uuid]  # North panel only: Ana
    assert bodies[0]["flow"] == rp.poll.flow_uuid
    assert bodies[0]["restart_participants"] in (True, 1)
    assert start.uuid == fake_rapidpro.state.flow_starts[0]["uuid"]
    assert start.contact_count == 1 and not start.restart
    # the double's runs come back carrying the start uuid the ingest maps to this poll run
    fake_rapidpro.process_starts()
    assert {r["start"]["uuid"] for r in fake_rapidpro.state.runs} == {start.uuid}


def test_a_propagated_start_includes_the_sub_panels(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        job = outbound.start_poll(poll=rp.poll, panel=rp.north, propagate=True, user=rp.w.alice)
        assert run(job).status == JobStatus.SUCCEEDED
        pollrun = PollRun.objects.get(pk=job.params["pollrun_id"])
    assert pollrun.type == PollRunType.PROPAGATED
    (body,) = posts(fake_rapidpro, "flow_starts")
    assert sorted(body["contacts"]) == sorted([rp.ana.uuid, rp.ben.uuid])


def test_a_start_is_sent_in_batches_of_at_most_100_with_a_429_honoured(rp, fake_rapidpro, no_sleep):
    with account_scope(rp.w.account):
        for i in range(230):
            contact = t.make_contact(rp.connection, f"Extra {i:03}", rp.south)
            fake_rapidpro.add_contact(contact.name, [], uuid=contact.uuid)
        job = outbound.start_poll(poll=rp.poll, panel=rp.south, propagate=False, user=rp.w.alice)
        fake_rapidpro.throttle(times=1, retry_after=3)
        done = run(job)
        assert done.status == JobStatus.SUCCEEDED, done.error
        starts = list(FlowStart.objects.filter(pollrun_id=job.params["pollrun_id"]))
    bodies = posts(fake_rapidpro, "flow_starts")
    # the throttled request is retried: 4 POSTs logged, 3 accepted
    assert [len(b["contacts"]) for b in bodies] == [100, 100, 100, 32]
    assert no_sleep == [3]
    assert sorted(s.contact_count for s in starts) == [32, 100, 100]
    started = {u for b in bodies[1:] for u in b["contacts"]}
    assert len(started) == 232  # Cara, Dan and the 230 extra South contacts, once each


def test_a_start_failing_midway_keeps_the_accepted_batches_and_fails_the_job(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        for i in range(150):
            contact = t.make_contact(rp.connection, f"Extra {i:03}", rp.south)
            fake_rapidpro.add_contact(contact.name, [], uuid=contact.uuid)
        job = outbound.start_poll(poll=rp.poll, panel=rp.south, propagate=False, user=rp.w.alice)
        original = rp_client.call
        calls = []

        def failing_second(fn, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                fake_rapidpro.fail_next(status=400)
            return original(fn, *args, **kwargs)

        rp_client.call = failing_second
        try:
            done = run(job)
        finally:
            rp_client.call = original
        assert done.status == JobStatus.FAILED
        assert "100 of 152" in done.error
        assert FlowStart.objects.filter(pollrun_id=job.params["pollrun_id"]).count() == 1


def test_start_refuses_a_group_that_is_not_a_panel(rp):
    with account_scope(rp.w.account):
        with pytest.raises(outbound.OutboundError) as err:
            outbound.start_poll(poll=rp.poll, panel=rp.teachers, propagate=False, user=None)
        assert err.value.field == "panel"
        assert not PollRun.objects.filter(type=PollRunType.REGIONAL).exists()


# --- restart --------------------------------------------------------------------------------


def test_restart_starts_only_contacts_who_did_not_complete(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        extra = t.make_contact(rp.connection, "Eve", rp.south, phone="+250788000009")
        fake_rapidpro.add_contact("Eve", list(extra.urns), uuid=extra.uuid)
        pollrun = t.make_pollrun(rp.poll, rp.run2.local_date, PollRunType.REGIONAL, rp.south)
        t.make_response(pollrun, rp.cara, {rp.q_children: 4}, status=ResponseStatus.COMPLETE)
        t.make_response(pollrun, rp.dan, {rp.q_children: 1}, status=ResponseStatus.PARTIAL)
        job = outbound.restart(pollrun=pollrun, user=rp.w.alice)
        assert run(job).status == JobStatus.SUCCEEDED
        start = FlowStart.objects.get(pollrun=pollrun)
    (body,) = posts(fake_rapidpro, "flow_starts")
    # Cara completed; Dan is partial and Eve never answered
    assert sorted(body["contacts"]) == sorted([rp.dan.uuid, extra.uuid])
    assert body["restart_participants"] in (True, 1)
    assert start.restart and start.contact_count == 2


def test_only_the_newest_started_run_of_a_panel_can_be_restarted(rp):
    with account_scope(rp.w.account):
        older = t.make_pollrun(rp.poll, rp.run1.local_date, PollRunType.REGIONAL, rp.south)
        t.make_pollrun(rp.poll, rp.run2.local_date, PollRunType.REGIONAL, rp.south)
        with pytest.raises(outbound.OutboundError):
            outbound.restart(pollrun=older, user=rp.w.alice)
        with pytest.raises(outbound.OutboundError):
            outbound.restart(pollrun=rp.run1, user=rp.w.alice)  # universal


# --- broadcasts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        (Audience.ALL, ["ana", "ben", "cara", "dan"]),
        (Audience.RESPONDENTS, ["ana", "ben", "cara"]),
        (Audience.NON_RESPONDENTS, ["dan"]),
    ],
)
def test_broadcast_audiences_of_a_universal_run(rp, fake_rapidpro, audience, expected):
    with account_scope(rp.w.account):
        record = outbound.broadcast(
            connection=rp.connection,
            text="Thank you",
            audience=audience,
            pollrun=rp.run1,
            user=rp.w.alice,
        )
        assert record.recipient_count == len(expected)
        done = run(record.job)
        assert done.status == JobStatus.SUCCEEDED, done.error
        record.refresh_from_db()
    (body,) = posts(fake_rapidpro, "broadcasts")
    assert sorted(body["contacts"]) == sorted(getattr(rp, n).uuid for n in expected)
    assert body["text"] == "Thank you"
    assert record.status == Broadcast.Status.SENT
    assert record.rapidpro_uuids == [fake_rapidpro.state.broadcasts[0]["uuid"]]


def test_a_supervisor_messages_only_contacts_in_his_scope(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        record = outbound.broadcast(
            connection=rp.connection,
            text="Hello North",
            audience=Audience.ALL,
            pollrun=rp.run1,
            user=rp.w.sam,
        )
        assert sorted(c.name for c in record.recipients.all()) == ["Ana", "Ben"]
        with pytest.raises(outbound.OutboundError):
            # Dan (South) is the only non-respondent: nothing for Sam to send
            outbound.broadcast(
                connection=rp.connection,
                text="Hello",
                audience=Audience.NON_RESPONDENTS,
                pollrun=rp.run1,
                user=rp.w.sam,
            )


def test_non_respondents_of_a_regional_run_include_contacts_without_a_response(rp):
    with account_scope(rp.w.account):
        pollrun = t.make_pollrun(rp.poll, rp.run2.local_date, PollRunType.PROPAGATED, rp.north)
        t.make_response(pollrun, rp.ana, {rp.q_children: 2}, status=ResponseStatus.COMPLETE)
        contacts = outbound.audience_contacts(pollrun, Audience.NON_RESPONDENTS, None)
        assert [c.name for c in contacts] == ["Ben"]


def test_broadcast_batches_of_100_and_a_failure_keeps_the_partial_success(
    rp, fake_rapidpro, no_sleep
):
    with account_scope(rp.w.account):
        pollrun = t.make_pollrun(rp.poll, rp.run2.local_date, PollRunType.REGIONAL, rp.south)
        extra = []
        for i in range(250):
            contact = t.make_contact(rp.connection, f"Extra {i:03}", rp.south)
            fake_rapidpro.add_contact(contact.name, [], uuid=contact.uuid)
            extra.append(contact)
        record = outbound.broadcast(
            connection=rp.connection,
            text="Please answer",
            audience=Audience.NON_RESPONDENTS,
            pollrun=pollrun,
            user=rp.w.alice,
        )
        assert record.recipient_count == 252
        original = rp_client.call
        calls = []

        def third_fails(fn, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                fake_rapidpro.fail_next(status=503, times=1)
            return original(fn, *args, **kwargs)

        rp_client.call = third_fails
        try:
            done = run(record.job)
        finally:
            rp_client.call = original
        record.refresh_from_db()
    assert done.status == JobStatus.FAILED
    assert record.status == Broadcast.Status.FAILED
    assert "200 of 252" in record.error and "503" in record.error
    assert len(record.rapidpro_uuids) == 2
    sizes = [len(b["contacts"]) for b in posts(fake_rapidpro, "broadcasts")]
    assert sizes == [100, 100, 52]  # the third was refused by the server


def test_broadcast_refuses_empty_text_and_changes_nothing(rp):
    with account_scope(rp.w.account):
        with pytest.raises(outbound.OutboundError) as err:
            outbound.broadcast(
                connection=rp.connection,
                text="  ",
                audience=Audience.ALL,
                pollrun=rp.run1,
                user=None,
            )
        assert err.value.field == "text"
        assert not Broadcast.objects.exists()


def test_reply_sends_one_message_and_fetches_the_conversation(rp, fake_rapidpro):
    fake_rapidpro.add_message(rp.ana.uuid, "Is the water safe?", direction="in")
    fake_rapidpro.add_message(rp.ben.uuid, "Hello", direction="in")
    with account_scope(rp.w.account):
        record = outbound.reply(contact=rp.ana, text="Yes, boil it first.", user=rp.w.alice)
        assert record.status == Broadcast.Status.SENT
        assert record.audience == Audience.CONTACT
        assert list(record.recipients.all()) == [rp.ana]
        texts = list(
            Message.objects.filter(contact=rp.ana)
            .order_by("created_on")
            .values_list("direction", "text")
        )
        assert not Message.objects.filter(contact=rp.ben).exists()
    (body,) = posts(fake_rapidpro, "broadcasts")
    assert body["contacts"] == [rp.ana.uuid]
    assert ("in", "Is the water safe?") in texts
    assert ("out", "Yes, boil it first.") in texts


def test_unreachable_contacts_are_not_messaged(rp):
    with account_scope(rp.w.account):
        Contact.objects.filter(pk=rp.dan.pk).update(status="stopped")
        contacts = outbound.audience_contacts(rp.run1, Audience.ALL, None)
        assert sorted(c.name for c in contacts) == ["Ana", "Ben", "Cara"]
