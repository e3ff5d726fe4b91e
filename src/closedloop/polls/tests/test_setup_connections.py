"""Setup pages: connections (create / test / edit / delete) and the sync-health panel."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from closedloop.core.crypto import decrypt
from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.polls import testing as t
from closedloop.polls.models import Answer, Connection, Contact, Poll, Response

pytestmark = pytest.mark.django_db

SECRET = "s3cret-token-value-1234567890"


def _connections(account):
    with account_scope(account):
        return list(Connection.objects.order_by("pk"))


def _post_create(client, fake, **overrides):
    data = {
        "name": "Main RapidPro",
        "host_url": fake.url,
        "token": fake.token,
        "sync_interval_minutes": 30,
    } | overrides
    return client.post(reverse("polls:connection_create"), data)


# --- who may see setup ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "sam", "charlie"])
def test_setup_pages_are_404_for_anyone_but_admins_and_managers(polls_world, client_for, who):
    w = polls_world
    client = client_for(getattr(w.w, who))
    pk = w.connection.pk
    urls = [
        reverse("polls:setup"),
        reverse("polls:settings"),
        reverse("polls:connection_create"),
        reverse("polls:connection_edit", args=[pk]),
        reverse("polls:connection_delete", args=[pk]),
        reverse("polls:connection_health", args=[pk]),
        reverse("polls:connection_setup", args=[pk]),
        reverse("polls:connection_step", args=[pk, "panels"]),
        reverse("polls:connection_step", args=[pk, "sync"]),
        reverse("polls:poll_edit", args=[w.poll.pk]),
    ]
    if who == "charlie":  # his own setup pages open, account A's objects stay 404
        urls = urls[3:]
    for url in urls:
        assert client.get(url).status_code == 404, url
    for name in (
        "connection_test",
        "connection_sync",
        "connection_fetch_runs",
        "connection_refresh",
    ):
        assert client.post(reverse(f"polls:{name}", args=[pk])).status_code == 404, name
    response = client.post(
        reverse("polls:connection_delete", args=[pk]), {"confirm_name": "RapidPro"}
    )
    assert response.status_code == 404
    assert len(_connections(w.w.account)) == 1


def test_charlie_sees_only_his_own_connections(polls_world, client_for):
    response = client_for(polls_world.w.charlie).get(reverse("polls:setup"))
    assert response.status_code == 200
    assert "Other RapidPro" in response.content.decode()
    assert (
        "Test workspace" not in response.content.decode()
        or "Other RapidPro" in response.content.decode()
    )
    assert (
        reverse("polls:connection_edit", args=[polls_world.connection.pk])
        not in response.content.decode()
    )


def test_manager_may_set_up(polls_world, client_for):
    from closedloop.accounts.models import Role

    with scopes_disabled():
        polls_world.w.bob_membership.role = Role.MANAGER
        polls_world.w.bob_membership.save()
    assert client_for(polls_world.w.bob).get(reverse("polls:setup")).status_code == 200


# --- create / test ----------------------------------------------------------------------


def test_create_tests_the_connection_and_stores_the_token_encrypted(
    world, client_for, fake_rapidpro
):
    client = client_for(world.alice)
    response = _post_create(client, fake_rapidpro)
    [connection] = _connections(world.account)
    assert response.status_code == 302
    assert response["Location"] == reverse("polls:connection_step", args=[connection.pk, "panels"])
    assert connection.workspace_name == fake_rapidpro.state.org["name"]
    assert connection.token_encrypted != fake_rapidpro.token
    assert fake_rapidpro.token not in connection.token_encrypted
    assert decrypt(connection.token_encrypted) == fake_rapidpro.token
    assert connection.host_url == fake_rapidpro.url.rstrip("/")
    assert connection.next_sync_at is not None
    with account_scope(world.account):
        entry = AuditEntry.objects.get(object_type="polls.connection", action="create")
    assert fake_rapidpro.token not in str(entry.changes)
    page = client.get(response["Location"], follow=True).content.decode()
    assert fake_rapidpro.state.org["name"] in page


def test_token_never_appears_in_any_page(world, client_for, fake_rapidpro):
    fake_rapidpro.token = SECRET  # the double now accepts only this token
    client = client_for(world.alice)
    assert _post_create(client, fake_rapidpro).status_code == 302
    [connection] = _connections(world.account)
    pages = [
        reverse("polls:setup"),
        reverse("polls:connection_edit", args=[connection.pk]),
        reverse("polls:connection_delete", args=[connection.pk]),
        reverse("polls:connection_health", args=[connection.pk]),
        *[
            reverse("polls:connection_step", args=[connection.pk, s])
            for s in ("panels", "cohorts", "flows", "fields", "sync")
        ],
    ]
    for url in pages:
        body = client.get(url).content.decode()
        assert SECRET not in body, url
    body = client.post(
        reverse("polls:connection_test", args=[connection.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert SECRET not in body and "works" in body
    # a failing edit re-renders the form without echoing the typed token
    response = client.post(
        reverse("polls:connection_edit", args=[connection.pk]),
        {
            "name": "Main",
            "host_url": fake_rapidpro.url,
            "token": SECRET + "-wrong",
            "sync_interval_minutes": 30,
        },
    )
    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_bad_token_saves_nothing_and_says_why(world, client_for, fake_rapidpro):
    response = _post_create(client_for(world.alice), fake_rapidpro, token="wrong-token")
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["token"]
    assert _connections(world.account) == []


def test_unreachable_host_saves_nothing(world, client_for, fake_rapidpro):
    response = _post_create(client_for(world.alice), fake_rapidpro, host_url="http://127.0.0.1:9")
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors.get("host_url") or errors.get("token")
    assert _connections(world.account) == []


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org", "http://"])
def test_invalid_url_is_a_field_error(world, client_for, fake_rapidpro, url):
    response = _post_create(client_for(world.alice), fake_rapidpro, host_url=url)
    assert response.status_code == 200
    assert "host_url" in response.context["form"].errors
    assert _connections(world.account) == []


def test_duplicate_name_is_a_field_error(polls_world, client_for, fake_rapidpro):
    response = _post_create(client_for(polls_world.w.alice), fake_rapidpro, name="rapidpro")
    assert "already exists" in " ".join(response.context["form"].errors["name"])
    assert len(_connections(polls_world.w.account)) == 1


def test_missing_token_on_create_is_required(world, client_for, fake_rapidpro):
    response = _post_create(client_for(world.alice), fake_rapidpro, token="")
    assert "token" in response.context["form"].errors
    assert _connections(world.account) == []


def test_check_button_tests_what_was_typed(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    url = reverse("polls:connection_check")
    ok = client.post(
        url, {"host_url": fake_rapidpro.url, "token": fake_rapidpro.token}
    ).content.decode()
    assert fake_rapidpro.state.org["name"] in ok and "alert-success" in ok
    bad = client.post(url, {"host_url": fake_rapidpro.url, "token": "nope"}).content.decode()
    assert "alert-danger" in bad and "nope" not in bad
    assert _connections(world.account) == []


def test_test_button_on_a_stored_connection(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    _post_create(client, fake_rapidpro)
    [connection] = _connections(world.account)
    response = client.post(reverse("polls:connection_test", args=[connection.pk]), follow=True)
    assert fake_rapidpro.state.org["name"] in response.content.decode()
    fake_rapidpro.stop()
    response = client.post(
        reverse("polls:connection_test", args=[connection.pk]), HTTP_HX_REQUEST="true"
    )
    assert "alert-danger" in response.content.decode()


# --- edit ---------------------------------------------------------------------------------


def test_edit_with_empty_token_keeps_it(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    _post_create(client, fake_rapidpro)
    [connection] = _connections(world.account)
    stored = connection.token_encrypted
    response = client.post(
        reverse("polls:connection_edit", args=[connection.pk]),
        {
            "name": "Renamed",
            "host_url": fake_rapidpro.url,
            "token": "",
            "sync_interval_minutes": 60,
        },
    )
    assert response.status_code == 302
    [connection] = _connections(world.account)
    assert (connection.name, connection.sync_interval_minutes) == ("Renamed", 60)
    assert connection.token_encrypted == stored


def test_edit_with_a_bad_new_token_changes_nothing(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    _post_create(client, fake_rapidpro)
    [before] = _connections(world.account)
    response = client.post(
        reverse("polls:connection_edit", args=[before.pk]),
        {
            "name": "Renamed",
            "host_url": fake_rapidpro.url,
            "token": "bad",
            "sync_interval_minutes": 60,
        },
    )
    assert response.status_code == 200 and response.context["form"].errors["token"]
    [after] = _connections(world.account)
    assert (after.name, after.token_encrypted, after.sync_interval_minutes) == (
        before.name,
        before.token_encrypted,
        before.sync_interval_minutes,
    )


def test_edit_with_a_good_new_token_replaces_it(world, client_for, fake_rapidpro):
    client = client_for(world.alice)
    _post_create(client, fake_rapidpro)
    [connection] = _connections(world.account)
    fake_rapidpro.token = "rotated-token"
    response = client.post(
        reverse("polls:connection_edit", args=[connection.pk]),
        {
            "name": connection.name,
            "host_url": fake_rapidpro.url,
            "token": "rotated-token",
            "sync_interval_minutes": 30,
        },
    )
    assert response.status_code == 302
    [connection] = _connections(world.account)
    assert decrypt(connection.token_encrypted) == "rotated-token"


# --- delete -------------------------------------------------------------------------------


def test_delete_warns_with_counts_and_needs_the_typed_name(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    url = reverse("polls:connection_delete", args=[w.connection.pk])
    page = client.get(url)
    assert page.context["counts"] == {"polls": 1, "contacts": 4, "responses": 6, "messages": 0}
    assert "6 responses" in page.content.decode()
    wrong = client.post(url, {"confirm_name": "rapidpro"})
    assert wrong.status_code == 200 and wrong.context["form"].errors["confirm_name"]
    assert len(_connections(w.w.account)) == 1
    done = client.post(url, {"confirm_name": "RapidPro"})
    assert done.status_code == 302
    with account_scope(w.w.account):
        assert not Connection.objects.exists()
        assert not Poll.objects.exists() and not Contact.objects.exists()
        assert not Response.objects.exists() and not Answer.objects.exists()
    with account_scope(w.w.other_account):  # the other account keeps everything
        assert Answer.objects.count() == 1


# --- health panel -------------------------------------------------------------------------


def test_health_panel_shows_backoff_error_and_counts(polls_world, client_for):
    w = polls_world
    now = timezone.now()
    with account_scope(w.w.account):
        Connection.objects.filter(pk=w.connection.pk).update(
            consecutive_failures=3,
            next_sync_at=now + dt.timedelta(hours=2, minutes=1),
            last_error="RapidPro answered 500",
            last_error_at=now - dt.timedelta(minutes=5),
            last_success_at=now - dt.timedelta(days=1),
            last_counts={"contacts": 12, "runs": 34},
        )
    body = client_for(w.w.alice).get(reverse("polls:setup")).content.decode()
    assert "retrying in 2\xa0hours" in body and "after 3 failures" in body
    assert "RapidPro answered 500" in body
    assert "contacts: 12" in body and "runs: 34" in body
    assert "Failing" in body


def test_health_panel_shows_the_running_job_with_progress(polls_world, client_for):
    w = polls_world
    with scopes_disabled():
        job = Job.objects.create(
            account=w.w.account,
            kind="polls.sync",
            title="Sync RapidPro",
            status=JobStatus.RUNNING,
            params={"connection_id": w.connection.pk},
            progress_done=1,
            progress_total=4,
            message="Reading contacts",
        )
        Job.objects.create(  # another account's job is not shown
            account=w.w.other_account,
            kind="polls.sync",
            status=JobStatus.RUNNING,
            params={"connection_id": w.other_connection.pk},
        )
    response = client_for(w.w.alice).get(reverse("polls:connection_health", args=[w.connection.pk]))
    body = response.content.decode()
    assert "25 %" in body and "Reading contacts" in body
    assert reverse("jobs:detail", args=[job.pk]) in body
    assert 'hx-trigger="every 2s"' in body


def test_setup_page_query_count_does_not_grow_with_connections(
    polls_world, client_for, django_assert_max_num_queries
):
    w = polls_world
    client = client_for(w.w.alice)
    client.get(reverse("polls:setup"))
    with account_scope(w.w.account):
        for i in range(5):
            t.make_connection(w.w.account, name=f"Extra {i}")
    with django_assert_max_num_queries(14):
        assert client.get(reverse("polls:setup")).status_code == 200


# --- sync now / fetch older runs ------------------------------------------------------------


def test_sync_now_queues_a_sync_job(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    response = client.post(reverse("polls:connection_sync", args=[w.connection.pk]), follow=True)
    assert response.status_code == 200
    with account_scope(w.w.account):
        job = Job.objects.filter(kind="polls.sync").first()
    assert job.params["connection_id"] == w.connection.pk
    assert job.created_by == w.w.alice


def test_fetch_older_runs_queues_a_job_for_the_user(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    bad = client.post(
        reverse("polls:connection_fetch_runs", args=[w.connection.pk]), {"days": "0"}, follow=True
    )
    assert "between 1 and 3660" in bad.content.decode()
    client.post(reverse("polls:connection_fetch_runs", args=[w.connection.pk]), {"days": "45"})
    with account_scope(w.w.account):
        job = Job.objects.filter(kind="polls.fetch_runs").first()
    assert job.params == {"connection_id": w.connection.pk, "days": 45}
    assert job.created_by == w.w.alice
