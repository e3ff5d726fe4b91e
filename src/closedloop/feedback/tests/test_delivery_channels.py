# ruff: noqa: F811 - fixtures imported from test_delivery_support
"""JSON, SMS and Canvas channels against local servers (no internet)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from closedloop.core.channels import SmsOutcome, sms_senders
from closedloop.core.crypto import decrypt, encrypt
from closedloop.core.tenancy import account_scope
from closedloop.feedback.models import Delivery, OAuthToken
from closedloop.feedback.runs import start_run
from closedloop.feedback.services import FeedbackError
from closedloop.feedback.tests.test_delivery_support import http_server, smtp_server  # noqa: F401

PEOPLE = {
    "email": ["ana@example.org", "ben@example.org", "chloe@example.org"],
    "name": ["Ana", "Ben", "Chloé"],
    "phone": ["+250 788 000 001", "+250788000002", "12"],
    "canvas_id": ["101", "102", "103"],
}
TYPES = {"email": "string", "name": "string", "phone": "string", "canvas_id": "string"}


def make_action(make_workflow: Any, world: Any, action_type: str, text: str, **fields: Any) -> Any:
    from closedloop.feedback.actions import action_create

    workflow = make_workflow(name=f"WF {action_type}", data=PEOPLE, types=TYPES)
    with account_scope(world.account):
        return action_create(workflow=workflow, actor=world.alice, name=action_type, action_type=action_type,
                             text_content=text, **fields)  # fmt: skip


def run(action: Any, world: Any, **options: Any) -> Any:
    with account_scope(world.account):
        return start_run(action=action, actor=world.alice, options=options, run_now=True)


def outcome(run_: Any, world: Any) -> dict[str, tuple[str, str]]:
    with account_scope(world.account):
        return {d.recipient: (d.status, d.error) for d in Delivery.objects.filter(run=run_)}


# --- JSON ---------------------------------------------------------------------------------


def test_json_is_posted_with_the_bearer_token(make_workflow, world, http_server):
    action = make_action(make_workflow, world, "json", '{"email": {{ email }}, "name": {{ name }}}',
                         target_url=http_server.url + "/hook")  # fmt: skip
    done = run(action, world, token="s3cret", item_column="email")
    assert {s for s, _e in outcome(done, world).values()} == {"sent"}
    bodies = [json.loads(r["body"]) for r in http_server.requests]
    assert {"email": "chloe@example.org", "name": "Chloé"} in bodies
    assert all(r["headers"]["Authorization"] == "Bearer s3cret" for r in http_server.requests)
    assert "s3cret" not in json.dumps(done.options)  # stored encrypted only


def test_json_retries_429_and_5xx_and_fails_4xx(make_workflow, world, http_server, settings):
    action = make_action(make_workflow, world, "json", '{"email": {{ email }}}',
                         target_url=http_server.url + "/hook", token="t")  # fmt: skip
    http_server.replies = [(503, {"error": "down"}), (429, {}), (404, {"error": "no such hook"})]
    done = run(action, world, item_column="email")
    result = outcome(done, world)
    assert result["ana@example.org"][0] == "queued" and "503" in result["ana@example.org"][1]
    assert result["ben@example.org"][0] == "queued" and "429" in result["ben@example.org"][1]
    assert result["chloe@example.org"][0] == "failed" and "404" in result["chloe@example.org"][1]


def test_json_transfer_off_only_logs(make_workflow, world, http_server, settings):
    settings.EXECUTE_ACTION_JSON_TRANSFER = False
    action = make_action(make_workflow, world, "json", '{"a": 1}', target_url=http_server.url + "/hook",
                         token="t")  # fmt: skip
    done = run(action, world)
    assert {s for s, _e in outcome(done, world).values()} == {"sent"}
    assert http_server.requests == []


def test_json_needs_an_address_and_a_token(make_workflow, world):
    action = make_action(make_workflow, world, "json", '{"a": 1}')
    with pytest.raises(FeedbackError) as caught:
        run(action, world, target_url="ftp://x")
    assert caught.value.field == "target_url"
    with pytest.raises(FeedbackError) as caught:
        run(action, world, target_url="https://example.org/hook")
    assert caught.value.field == "token"


# --- SMS ----------------------------------------------------------------------------------


def test_sms_over_http(make_workflow, world, http_server, settings):
    settings.SMS_TRANSPORT = "http"
    settings.SMS_HTTP_URL = http_server.url + "/sms"
    settings.SMS_HTTP_TOKEN = "gw-token"
    action = make_action(make_workflow, world, "sms", "Hi {{ name }}")
    done = run(action, world, item_column="phone")
    sent = [json.loads(r["body"]) for r in http_server.requests]
    assert {"to": "+250788000001", "text": "Hi Ana"} in sent
    assert http_server.requests[0]["headers"]["Authorization"] == "Bearer gw-token"
    assert outcome(done, world)["12"][0] == "failed"  # not a phone number


def test_sms_through_an_smtp_gateway(make_workflow, world, smtp_server, settings):
    settings.SMS_TRANSPORT = "email"
    settings.SMS_EMAIL_DOMAIN = "sms.example.net"
    action = make_action(make_workflow, world, "sms", "Hi {{ name }}")
    run(action, world, item_column="phone")
    assert sorted(smtp_server.to()) == [
        "+250788000001@sms.example.net",
        "+250788000002@sms.example.net",
    ]
    message = smtp_server.received[0].message
    assert message.get_content_type() == "text/plain" and message.get_content().strip().startswith(
        "Hi "
    )


def test_sms_through_rapidpro_needs_a_registered_connection(make_workflow, world, settings):
    settings.SMS_TRANSPORT = "rapidpro"
    action = make_action(make_workflow, world, "sms", "Hi {{ name }}")
    done = run(action, world, item_column="phone")
    assert {e for _s, e in outcome(done, world).values()} == {
        "No RapidPro connection configured for this account."
    }


def test_sms_through_a_registered_rapidpro_sender_in_batches(make_workflow, world, settings):
    settings.SMS_TRANSPORT = "rapidpro"
    batches: list[list[Any]] = []

    class Sender:
        batch_size = 100

        def send(self, messages: list[Any]) -> list[SmsOutcome]:
            batches.append(list(messages))
            return [SmsOutcome(ok=True, provider_id=f"m{i}") for i, _m in enumerate(messages)]

    sms_senders.register("test-rapidpro", lambda account: Sender())
    try:
        action = make_action(make_workflow, world, "sms", "Hi {{ name }}")
        done = run(action, world, item_column="phone")
    finally:
        sms_senders.unregister("test-rapidpro")
    assert len(batches) == 1 and [m.to for m in batches[0]] == ["+250788000001", "+250788000002"]
    assert outcome(done, world)["+250788000002"][0] == "sent"


# --- Canvas -------------------------------------------------------------------------------


class CanvasDouble:
    """Canvas's token endpoint and Conversations API with their real payload shapes."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.valid = {"tok-1"}
        self.issued = 0
        self.conversations: list[dict[str, list[str]]] = []
        server.routes["/login/oauth2/token"] = self.token
        server.routes["/api/v1/conversations"] = self.conversation

    def token(self, request: dict[str, Any]) -> tuple[int, Any]:
        form = parse_qs(request["body"])
        if form.get("client_secret") != ["cs"]:
            return 401, {"error": "invalid_client"}
        self.issued += 1
        access = f"tok-{self.issued + 1}"
        self.valid = {access}
        body = {"access_token": access, "token_type": "Bearer", "user": {"id": 42, "name": "Alice"},
                "expires_in": 3600}  # fmt: skip
        if form["grant_type"] == ["authorization_code"]:
            if form.get("code") != ["the-code"]:
                return 400, {"error": "invalid_grant"}
            body["refresh_token"] = "refresh-1"
        elif form.get("refresh_token") != ["refresh-1"]:
            return 400, {"error": "invalid_grant"}
        return 200, body

    def conversation(self, request: dict[str, Any]) -> tuple[int, Any]:
        token = request["headers"].get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return 401, {"errors": [{"message": "Invalid access token."}]}
        form = parse_qs(request["body"])
        self.conversations.append(form)
        n = len(self.conversations)
        return 201, [{"id": 9000 + n, "subject": form["subject"][0], "workflow_state": "read",
                      "last_message": form["body"][0], "participants": [{"id": 42}]}]  # fmt: skip


@pytest.fixture
def canvas(http_server, settings):
    settings.CANVAS_INFO_DICT = json.dumps({"Test Canvas": {
        "domain_port": http_server.url.removeprefix("http://"),
        "client_id": "ci", "client_secret": "cs",
        "authorize_url": http_server.url + "/login/oauth2/auth",
        "access_token_url": http_server.url + "/login/oauth2/token",
        "conversation_url": http_server.url + "/api/v1/conversations",
        "aux_params": {},
    }})  # fmt: skip
    settings.CANVAS_TOKEN_EXPIRY_SLACK = 600
    return CanvasDouble(http_server)


def test_oauth_authorize_and_callback_store_the_token_encrypted(world, client_for, canvas):
    from django.urls import reverse

    client = client_for(world.alice)
    response = client.get(
        reverse("feedback:canvas_authorize", args=["Test Canvas"]), {"next": "/feedback/"}
    )
    assert response.status_code == 302
    query = parse_qs(urlparse(response["Location"]).query)
    assert query["client_id"] == ["ci"] and query["response_type"] == ["code"]
    back = client.get(
        reverse("feedback:canvas_callback"), {"code": "the-code", "state": query["state"][0]}
    )
    assert back.status_code == 302 and back["Location"] == "/feedback/"
    with account_scope(world.account):
        token = OAuthToken.objects.get(user=world.alice, instance_name="Test Canvas")
    assert (
        decrypt(token.access_token_encrypted) == "tok-2"
        and "tok-2" not in token.access_token_encrypted
    )
    assert decrypt(token.refresh_token_encrypted) == "refresh-1"
    forged = client.get(
        reverse("feedback:canvas_callback"), {"code": "the-code", "state": "forged"}
    )
    assert forged.status_code == 404
    assert (
        client_for(world.charlie)
        .get(reverse("feedback:canvas_authorize", args=["Nope"]))
        .status_code
        == 404
    )


def test_canvas_messages_refresh_an_expiring_token_first(make_workflow, world, canvas):
    with account_scope(world.account):
        OAuthToken.objects.create(
            account=world.account, user=world.alice, instance_name="Test Canvas",
            access_token_encrypted=encrypt("tok-old"), refresh_token_encrypted=encrypt("refresh-1"),
            expires_at=timezone.now() + dt.timedelta(seconds=120),  # inside the 600 s slack
        )  # fmt: skip
    action = make_action(
        make_workflow, world, "canvas_email", "Well done {{ name }}", subject="Midterm"
    )
    done = run(action, world, item_column="canvas_id", canvas_instance="Test Canvas")
    assert canvas.issued == 1  # refreshed once, before sending
    assert [c["recipients[]"] for c in canvas.conversations] == [["101"], ["102"], ["103"]]
    first = canvas.conversations[0]
    assert first["subject"] == ["Midterm"] and first["body"] == ["Well done Ana"]
    assert first["force_new"] == ["true"] and first["group_conversation"] == ["false"]
    with account_scope(world.account):
        assert sorted(Delivery.objects.filter(run=done).values_list("provider_id", flat=True)) == [
            "9001", "9002", "9003"]  # fmt: skip


def test_canvas_needs_an_authorized_user(make_workflow, world, canvas):
    action = make_action(make_workflow, world, "canvas_email", "x", subject="s")
    with pytest.raises(FeedbackError) as caught:
        run(action, world, item_column="canvas_id", canvas_instance="Test Canvas")
    assert caught.value.field == "canvas_instance"


def test_a_revoked_canvas_token_is_refreshed_once_on_401(make_workflow, world, canvas):
    with account_scope(world.account):
        OAuthToken.objects.create(
            account=world.account, user=world.alice, instance_name="Test Canvas",
            access_token_encrypted=encrypt("tok-revoked"), refresh_token_encrypted=encrypt("refresh-1"),
            expires_at=timezone.now() + dt.timedelta(hours=2),
        )  # fmt: skip
    action = make_action(make_workflow, world, "canvas_email", "x", subject="s")
    done = run(action, world, item_column="canvas_id", canvas_instance="Test Canvas")
    assert canvas.issued == 1 and len(canvas.conversations) == 3
    assert {s for s, _e in outcome(done, world).values()} == {"sent"}
