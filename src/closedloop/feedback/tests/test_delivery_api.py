"""API: runs with counts, deliveries, re-send, cancel, schedules CRUD — with tenancy."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.utils import timezone

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.models import ActionRun, Delivery, Schedule
from closedloop.feedback.runs import start_run

API = "/api/v1"


@pytest.fixture
def action(make_workflow, world, settings):
    from closedloop.feedback.actions import action_create

    settings.EMAIL_OUTBOX_ONLY = True
    workflow = make_workflow()
    with account_scope(world.account):
        return action_create(workflow=workflow, actor=world.alice, name="Feedback", action_type="email",
                             text_content="<p>Hello {{ name }}</p>", subject="Hi")  # fmt: skip


def a_run(action: Any, world: Any) -> ActionRun:
    with account_scope(world.account):
        return start_run(
            action=action, actor=world.alice, options={"item_column": "email"}, run_now=True
        )


def post(client: Any, url: str, data: Any) -> Any:
    return client.post(url, json.dumps(data), content_type="application/json")


def patch(client: Any, url: str, data: Any) -> Any:
    return client.patch(url, json.dumps(data), content_type="application/json")


def test_runs_list_and_read_with_counts(action, world, client_for, django_assert_max_num_queries):
    run = a_run(action, world)
    a_run(action, world)
    client = client_for(world.alice)
    with django_assert_max_num_queries(8):
        listed = client.get(f"{API}/workflows/{action.workflow_id}/runs").json()
    assert listed["count"] == 2
    one = client.get(f"{API}/workflows/{action.workflow_id}/runs/{run.pk}").json()
    assert one["counts"] == {"queued": 0, "sending": 0, "sent": 6, "failed": 0, "cancelled": 0, "opened": 0,
                             "total": 6}  # fmt: skip
    assert one["status"] == "done" and one["action"]["name"] == "Feedback"
    assert "token_encrypted" not in one["options"]


def test_deliveries_are_filtered_and_paginated(action, world, client_for):
    run = a_run(action, world)
    with account_scope(world.account):
        Delivery.objects.filter(run=run, recipient="ben@example.org").update(
            status="failed", error="boom"
        )
    client = client_for(world.alice)
    base = f"{API}/workflows/{action.workflow_id}/runs/{run.pk}/deliveries"
    failed = client.get(base, {"status": "failed"}).json()
    assert failed["count"] == 1 and failed["items"][0]["error"] == "boom"
    page = client.get(base, {"limit": 2, "offset": 2}).json()
    assert page["count"] == 6 and len(page["items"]) == 2
    assert client.get(base, {"recipient": "chloe"}).json()["count"] == 1
    bad = client.get(base, {"status": "lost"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


def test_resend_failed_and_cancel(action, world, client_for, django_capture_on_commit_callbacks):
    run = a_run(action, world)
    with account_scope(world.account):
        Delivery.objects.filter(run=run, recipient="ben@example.org").update(status="failed")
    client = client_for(world.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, f"{API}/workflows/{action.workflow_id}/runs/{run.pk}/resend", {})
    assert response.status_code == 200 and response.json() == {"count": 1}
    with account_scope(world.account):
        assert Delivery.objects.get(run=run, recipient="ben@example.org").status == "sent"
    cancelled = post(client, f"{API}/workflows/{action.workflow_id}/runs/{run.pk}/cancel", {})
    assert cancelled.json() == {"count": 0}


def test_outsiders_get_404_and_viewers_cannot_write(action, world, client_for):
    run = a_run(action, world)
    wid = action.workflow_id
    reads = [f"{API}/workflows/{wid}/runs", f"{API}/workflows/{wid}/runs/{run.pk}",
             f"{API}/workflows/{wid}/runs/{run.pk}/deliveries", f"{API}/workflows/{wid}/schedules"]  # fmt: skip
    for user in (world.charlie, world.bob):
        client = client_for(user)
        for url in reads:
            assert client.get(url).status_code == 404, (user, url)
        assert post(client, f"{API}/workflows/{wid}/runs/{run.pk}/resend", {}).status_code == 404
    with account_scope(world.account):
        services.workflow_share(
            workflow=action.workflow, actor=world.alice, email=world.bob.email, role="viewer"
        )
    bob = client_for(world.bob)
    assert bob.get(reads[1]).status_code == 200
    assert post(bob, f"{API}/workflows/{wid}/runs/{run.pk}/resend", {}).status_code == 403
    assert post(bob, f"{API}/workflows/{wid}/schedules", {"name": "x"}).status_code == 403


def test_schedules_crud(action, world, client_for):
    client = client_for(world.alice)
    url = f"{API}/workflows/{action.workflow_id}/schedules"
    start = (timezone.now() + dt.timedelta(days=1)).isoformat()
    created = post(client, url, {"name": "Weekly", "action": action.pk, "frequency": "0 8 * * 1",
                                 "execute_start": start, "incremental": True,
                                 "payload": {"item_column": "email"}})  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["incremental"] and body["frequency"] == "0 8 * * 1"
    assert len(body["next_runs"]) == 3 and "Monday" in body["frequency_text"]
    sid = body["id"]
    changed = patch(client, f"{url}/{sid}", {"frequency": "30 7 * * *"})
    assert changed.status_code == 200 and changed.json()["frequency"] == "30 7 * * *"
    assert client.get(url).json()["count"] == 1
    assert client.delete(f"{url}/{sid}").status_code == 204
    with account_scope(world.account):
        assert not Schedule.objects.exists()


def test_schedule_errors_name_the_field_and_change_nothing(action, world, client_for):
    client = client_for(world.alice)
    url = f"{API}/workflows/{action.workflow_id}/schedules"
    bad_cron = post(client, url, {"name": "X", "action": action.pk, "frequency": "61 * * * *",
                                  "payload": {"item_column": "email"}})  # fmt: skip
    assert bad_cron.status_code == 400 and bad_cron.json()["errors"][0]["field"] == "frequency"
    no_action = post(client, url, {"name": "X", "action": 999999, "frequency": "0 8 * * *"})
    assert no_action.status_code == 400 and no_action.json()["errors"][0]["field"] == "action"
    bad_column = post(client, url, {"name": "X", "action": action.pk, "frequency": "0 8 * * *",
                                    "payload": {"item_column": "nope"}})  # fmt: skip
    assert (
        bad_column.status_code == 400 and bad_column.json()["errors"][0]["field"] == "item_column"
    )
    once_without_start = post(
        client, url, {"name": "X", "action": action.pk, "payload": {"item_column": "email"}}
    )
    assert once_without_start.json()["errors"][0]["field"] == "execute_start"
    with account_scope(world.account):
        assert not Schedule.objects.exists()
