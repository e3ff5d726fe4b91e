"""API: RapidPro connections (admins and managers only; the token is write-only)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from closedloop.core.crypto import decrypt
from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.polls import testing as t
from closedloop.polls.models import Connection

pytestmark = pytest.mark.django_db

API = "/api/v1/polls/connections"
SECRET = "api-secret-token-0987654321"


def _post(client, url, data=None):
    return client.post(url, json.dumps(data or {}), content_type="application/json")


def _patch(client, url, data):
    return client.patch(url, json.dumps(data), content_type="application/json")


def _stored(account):
    with account_scope(account):
        return list(Connection.objects.order_by("pk"))


def test_create_tests_first_and_never_echoes_the_token(world, client_for, fake_rapidpro):
    fake_rapidpro.token = SECRET
    client = client_for(world.alice)
    response = _post(client, API, {"name": "Main", "host_url": fake_rapidpro.url, "token": SECRET})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_token"] is True and "token" not in body
    assert body["workspace_name"] == fake_rapidpro.state.org["name"]
    assert SECRET not in response.content.decode()
    [connection] = _stored(world.account)
    assert connection.token_encrypted != SECRET and decrypt(connection.token_encrypted) == SECRET
    pk = connection.pk
    for response in (
        client.get(API),
        client.get(f"{API}/{pk}"),
        client.get(f"{API}/{pk}/health"),
        _post(client, f"{API}/{pk}/test"),
        _patch(client, f"{API}/{pk}", {"name": "Renamed"}),
        _patch(client, f"{API}/{pk}", {"token": SECRET + "x"}),  # refused, not echoed
    ):
        assert SECRET not in response.content.decode()
    assert client.get(f"{API}/{pk}/openapi").status_code == 404  # no stray routes


def test_create_errors_save_nothing(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    cases = [
        ({"name": "A", "host_url": fake_rapidpro.url, "token": "wrong"}, 400, "token"),
        ({"name": "A", "host_url": "not a url", "token": "x"}, 400, "host_url"),
        ({"name": "", "host_url": fake_rapidpro.url, "token": fake_rapidpro.token}, 400, "name"),
        ({"name": "A", "host_url": fake_rapidpro.url}, 422, "token"),
        (
            {"name": "A", "host_url": fake_rapidpro.url, "token": "t", "sync_interval_minutes": 1},
            422,
            "sync_interval_minutes",
        ),
    ]
    for data, status, field in cases:
        response = _post(client, API, data)
        assert response.status_code == status, (data, response.content)
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert _stored(world.account) == []


def test_duplicate_name(polls_world, client_for, fake_rapidpro):
    client = client_for(polls_world.w.alice)
    data = {"name": "RAPIDPRO", "host_url": fake_rapidpro.url, "token": fake_rapidpro.token}
    response = _post(client, API, data)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"


def test_list_and_detail(polls_world, client_for, django_assert_max_num_queries):
    w = polls_world
    with account_scope(w.w.account):
        for i in range(4):
            t.make_connection(w.w.account, name=f"Extra {i}")
    client = client_for(w.w.alice)
    client.get(API)
    with django_assert_max_num_queries(6):
        body = client.get(API).json()
    assert body["count"] == 5
    assert "Other RapidPro" not in json.dumps(body)
    one = client.get(f"{API}/{w.connection.pk}").json()
    assert one["name"] == "RapidPro" and one["has_token"] is True
    assert "token-123" not in json.dumps(body) + json.dumps(one)


@pytest.mark.parametrize("who", ["bob", "sam", "charlie"])
def test_others_get_404(polls_world, client_for, who):
    w = polls_world
    client = client_for(getattr(w.w, who))
    pk = w.connection.pk
    if who != "charlie":
        assert client.get(API).status_code == 404
        assert (
            _post(client, API, {"name": "x", "host_url": "http://x.org", "token": "t"}).status_code
            == 404
        )
    assert client.get(f"{API}/{pk}").status_code == 404
    assert _patch(client, f"{API}/{pk}", {"name": "Stolen"}).status_code == 404
    assert client.delete(f"{API}/{pk}").status_code == 404
    assert _post(client, f"{API}/{pk}/test").status_code == 404
    assert _post(client, f"{API}/{pk}/sync").status_code == 404
    assert client.get(f"{API}/{pk}/health").status_code == 404
    [connection] = _stored(w.w.account)
    assert connection.name == "RapidPro"


def test_charlie_lists_only_his_account(polls_world, client_for):
    body = client_for(polls_world.w.charlie).get(API).json()
    assert [c["name"] for c in body["items"]] == ["Other RapidPro"]


def test_patch_keeps_token_unless_given_and_tests_new_ones(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    pk = _post(
        client, API, {"name": "Main", "host_url": fake_rapidpro.url, "token": fake_rapidpro.token}
    ).json()["id"]
    [before] = _stored(world.account)
    response = _patch(
        client, f"{API}/{pk}", {"name": "Renamed", "sync_interval_minutes": 15, "token": ""}
    )
    assert response.status_code == 200
    [after] = _stored(world.account)
    assert (after.name, after.sync_interval_minutes) == ("Renamed", 15)
    assert after.token_encrypted == before.token_encrypted
    bad = _patch(client, f"{API}/{pk}", {"name": "Again", "token": "wrong"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "token"
    [unchanged] = _stored(world.account)
    assert unchanged.name == "Renamed" and unchanged.token_encrypted == before.token_encrypted
    paused = _patch(client, f"{API}/{pk}", {"is_active": False}).json()
    assert paused["is_active"] is False


def test_test_endpoint(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    pk = _post(
        client, API, {"name": "Main", "host_url": fake_rapidpro.url, "token": fake_rapidpro.token}
    ).json()["id"]
    ok = _post(client, f"{API}/{pk}/test").json()
    assert ok["ok"] is True and ok["workspace"] == fake_rapidpro.state.org["name"]
    fake_rapidpro.token = "rotated"
    refused = _post(client, f"{API}/{pk}/test").json()
    assert refused["ok"] is False and refused["error"]


def test_delete(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    assert client.delete(f"{API}/{w.connection.pk}").status_code == 204
    assert _stored(w.w.account) == []
    assert len(_stored(w.w.other_account)) == 1


def test_sync_returns_the_job(polls_world, client_for):
    w = polls_world
    response = _post(client_for(w.w.alice), f"{API}/{w.connection.pk}/sync")
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == "polls.sync" and job["created_by"] == "alice@example.org"
    with account_scope(w.w.account):
        assert Job.objects.get(pk=job["id"]).params["connection_id"] == w.connection.pk
    # asking again while it is queued returns the same job (the connection is locked)
    again = _post(client_for(w.w.alice), f"{API}/{w.connection.pk}/sync").json()
    assert again["id"] == job["id"]


def test_health(polls_world, client_for):
    w = polls_world
    now = timezone.now()
    with account_scope(w.w.account):
        Connection.objects.filter(pk=w.connection.pk).update(
            consecutive_failures=2,
            next_sync_at=now + dt.timedelta(minutes=61),
            last_error="boom",
            last_error_at=now,
            last_counts={"runs": 5},
        )
    client = client_for(w.w.alice)
    body = client.get(f"{API}/{w.connection.pk}/health").json()
    assert body["state"] == "failing" and body["consecutive_failures"] == 2
    assert (
        body["backoff"].startswith("retrying in 1\xa0hour")
        and "after 2 failures" in body["backoff"]
    )
    assert body["last_error"] == "boom" and body["last_counts"] == {"runs": 5}
    assert body["job"] is None
    with scopes_disabled():
        job = Job.objects.create(
            account=w.w.account,
            kind="polls.sync",
            status=JobStatus.RUNNING,
            params={"connection_id": w.connection.pk},
            progress_done=1,
            progress_total=2,
        )
    body = client.get(f"{API}/{w.connection.pk}/health").json()
    assert (
        body["state"] == "running" and body["job"]["id"] == job.pk and body["job"]["percent"] == 50
    )


def test_in_openapi(client_for, world):
    schema = client_for(world.alice).get("/api/v1/openapi.json").json()
    assert "/api/v1/polls/connections/{connection_id}/health" in schema["paths"]
    props = schema["components"]["schemas"]["ConnectionOut"]["properties"]
    assert "token" not in props and "has_token" in props
