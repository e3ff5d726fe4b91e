"""Inbox (latest message per contact), conversations with replies, the message log, and the
messages API — scoped like every polls page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from closedloop.core.tenancy import account_scope
from closedloop.polls import outbound
from closedloop.polls import testing as t
from closedloop.polls.models import Audience, Broadcast, Message
from closedloop.polls.tests.outbound_helpers import posts, wire

# inside the default 30-day inbox window, whatever day the tests run
T0 = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=0)


def _message(pw, contact, text, minutes, direction="in"):
    return Message.objects.create(
        account=pw.w.account,
        connection=pw.connection,
        uuid=t.new_uuid(),
        contact=contact,
        urn=contact.urns[0],
        direction=direction,
        text=text,
        created_on=T0 + dt.timedelta(minutes=minutes),
    )


@pytest.fixture
def inbox_world(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        _message(pw, pw.ana, "Ana first", 1)
        _message(pw, pw.ana, "Ana latest", 30)
        _message(pw, pw.ben, "Ben asks", 10)
        _message(pw, pw.ben, "We answered Ben", 20, direction="out")
        _message(pw, pw.cara, "Cara in the south", 40)
    return pw


def _inbox_rows(html):
    return re.findall(
        r'data-testid="inbox-row" data-contact="(\d+)">.*?<strong>([^<]+)</strong>.*?</i> ([^<]+)</div>',
        html,
        re.S,
    )


def test_the_inbox_shows_the_latest_message_per_contact(inbox_world, client_for):
    pw = inbox_world
    html = client_for(pw.w.alice).get(reverse("polls:inbox")).content.decode()
    rows = [(name, text.strip()) for _pk, name, text in _inbox_rows(html)]
    assert rows == [
        ("Cara", "Cara in the south"),
        ("Ana", "Ana latest"),
        ("Ben", "We answered Ben"),
    ]


def test_the_inbox_is_scoped_and_query_bounded(
    inbox_world, client_for, django_assert_max_num_queries
):
    pw = inbox_world
    client = client_for(pw.w.sam)
    client.get(reverse("polls:inbox"))
    with account_scope(pw.w.account):
        for i in range(40):
            contact = t.make_contact(
                pw.connection, f"Extra {i:02}", pw.north, phone=f"+25078810{i:04}"
            )
            _message(pw, contact, f"hello {i}", 100 + i)
    with django_assert_max_num_queries(12):
        html = client.get(reverse("polls:inbox")).content.decode()
    names = [name for _pk, name, _text in _inbox_rows(html)]
    assert len(names) == 30 and "Cara" not in names and names[0] == "Extra 39"


def test_the_conversation_lists_a_contacts_messages_oldest_first(inbox_world, client_for):
    pw = inbox_world
    html = (
        client_for(pw.w.bob).get(reverse("polls:conversation", args=[pw.ben.pk])).content.decode()
    )
    assert html.index("Ben asks") < html.index("We answered Ben")
    assert 'data-testid="reply-form"' not in html  # Bob only reads


def test_viewer_and_outsiders_cannot_reply(inbox_world, client_for):
    pw = inbox_world
    url = reverse("polls:conversation", args=[pw.ana.pk])
    assert client_for(pw.w.bob).post(url, {"text": "hi"}).status_code == 403
    assert client_for(pw.w.charlie).post(url, {"text": "hi"}).status_code == 404
    sam = client_for(pw.w.sam)
    assert (
        sam.post(reverse("polls:conversation", args=[pw.cara.pk]), {"text": "hi"}).status_code
        == 404
    )
    with account_scope(pw.w.account):
        assert not Broadcast.objects.exists()


def test_replying_sends_and_shows_the_message(inbox_world, client_for, fake_rapidpro):
    pw = inbox_world
    wire(pw, fake_rapidpro)
    client = client_for(pw.w.sam)
    response = client.post(reverse("polls:conversation", args=[pw.ana.pk]), {"text": "We hear you"})
    assert response.status_code == 302
    html = client.get(reverse("polls:conversation", args=[pw.ana.pk])).content.decode()
    assert "We hear you" in html
    (body,) = posts(fake_rapidpro, "broadcasts")
    assert body["contacts"] == [pw.ana.uuid]


def test_an_empty_reply_is_refused(inbox_world, client_for):
    pw = inbox_world
    response = client_for(pw.w.alice).post(
        reverse("polls:conversation", args=[pw.ana.pk]), {"text": ""}
    )
    assert response.status_code == 400
    assert "text" in response.context["form"].errors


def test_the_message_log_lists_broadcasts_scoped(inbox_world, client_for):
    pw = inbox_world
    with account_scope(pw.w.account):
        outbound.broadcast(
            connection=pw.connection,
            text="To the south",
            audience=Audience.CONTACT,
            contacts=[pw.cara],
            user=pw.w.alice,
            run_now=True,
        )
        outbound.broadcast(
            connection=pw.connection,
            text="To the north",
            audience=Audience.CONTACT,
            contacts=[pw.ana],
            user=pw.w.alice,
            run_now=True,
        )
    html = client_for(pw.w.alice).get(reverse("polls:message_log")).content.decode()
    assert html.count('data-testid="broadcast-row"') == 2
    sam = client_for(pw.w.sam).get(reverse("polls:message_log")).content.decode()
    assert "To the north" in sam and "To the south" not in sam
    other = client_for(pw.w.charlie).get(reverse("polls:message_log")).content.decode()
    assert "To the north" not in other


def test_refresh_is_for_acting_roles(inbox_world, client_for):
    assert client_for(inbox_world.w.bob).post(reverse("polls:inbox_refresh")).status_code == 403


# --- API ----------------------------------------------------------------------------------


def test_api_inbox_and_messages(inbox_world, client_for, django_assert_max_num_queries):
    pw = inbox_world
    client = client_for(pw.w.sam)
    client.get("/api/v1/polls/inbox")  # the first call creates the account's polls settings
    with django_assert_max_num_queries(10):
        body = client.get("/api/v1/polls/inbox").json()
    assert body["count"] == 2
    assert [i["message"]["text"] for i in body["items"]] == ["Ana latest", "We answered Ben"]
    messages = client.get("/api/v1/polls/messages", {"contact": pw.ben.pk}).json()
    assert [m["text"] for m in messages["items"]] == ["We answered Ben", "Ben asks"]
    assert client.get("/api/v1/polls/messages", {"contact": pw.cara.pk}).status_code == 404
    assert client.get("/api/v1/polls/messages", {"direction": "sideways"}).status_code == 400
    other = client_for(pw.w.charlie).get("/api/v1/polls/messages").json()
    assert other["count"] == 0


def test_api_send_to_non_respondents(inbox_world, client_for, fake_rapidpro):
    pw = inbox_world
    wire(pw, fake_rapidpro)
    client = client_for(pw.w.alice)
    payload = {"text": "Please answer", "audience": "non_respondents", "pollrun": pw.run1.pk}
    response = client.post("/api/v1/polls/broadcasts", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["recipient_count"] == 1 and data["status"] == "pending"
    with account_scope(pw.w.account):
        record = Broadcast.objects.get(pk=data["id"])
        assert [c.name for c in record.recipients.all()] == ["Dan"]
    listed = client.get("/api/v1/polls/broadcasts").json()
    assert listed["items"][0]["id"] == data["id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "x", "audience": "everyone", "pollrun": 0}, "audience"),
        ({"text": "x", "audience": "all"}, "pollrun"),
        ({"text": "   ", "audience": "all", "pollrun": "RUN"}, "text"),
        ({"text": "x", "audience": "contact", "contacts": []}, "contacts"),
    ],
)
def test_api_send_reports_the_bad_field(inbox_world, client_for, payload, field):
    pw = inbox_world
    payload = {k: (pw.run1.pk if v == "RUN" else v) for k, v in payload.items()}
    response = client_for(pw.w.alice).post(
        "/api/v1/polls/broadcasts", payload, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    with account_scope(pw.w.account):
        assert not Broadcast.objects.exists()


def test_api_send_and_reply_are_refused_to_the_viewer_and_outsiders(inbox_world, client_for):
    pw = inbox_world
    payload = {"text": "x", "audience": "all", "pollrun": pw.run1.pk}
    bob = client_for(pw.w.bob)
    assert (
        bob.post("/api/v1/polls/broadcasts", payload, content_type="application/json").status_code
        == 403
    )
    reply_url = f"/api/v1/polls/contacts/{pw.ana.pk}/reply"
    assert bob.post(reply_url, {"text": "x"}, content_type="application/json").status_code == 403
    charlie = client_for(pw.w.charlie)
    assert (
        charlie.post(reply_url, {"text": "x"}, content_type="application/json").status_code == 404
    )
    assert (
        charlie.post(
            "/api/v1/polls/broadcasts", payload, content_type="application/json"
        ).status_code
        == 404
    )
    sam = client_for(pw.w.sam)
    cara_url = f"/api/v1/polls/contacts/{pw.cara.pk}/reply"
    assert sam.post(cara_url, {"text": "x"}, content_type="application/json").status_code == 404


def test_refresh_fetches_messages_now(polls_world, client_for, fake_rapidpro):
    pw = polls_world
    wire(pw, fake_rapidpro)
    fake_rapidpro.add_message(pw.dan.uuid, "When is the next meeting?", direction="in")
    response = client_for(pw.w.alice).post(reverse("polls:inbox_refresh"), follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "When is the next meeting?" in html
    with account_scope(pw.w.account):
        assert Message.objects.get(text="When is the next meeting?").contact_id == pw.dan.pk


def test_the_inbox_lists_conversations_of_the_inbox_window(inbox_world, client_for):
    pw = inbox_world
    with account_scope(pw.w.account):
        _message(pw, pw.dan, "An old question", -60 * 24 * 40)
    html = client_for(pw.w.alice).get(reverse("polls:inbox")).content.decode()
    assert "An old question" not in html
    conversation = client_for(pw.w.alice).get(reverse("polls:conversation", args=[pw.dan.pk]))
    assert "An old question" in conversation.content.decode()
