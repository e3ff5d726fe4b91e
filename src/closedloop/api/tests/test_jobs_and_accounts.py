"""Jobs and members through the API."""

from __future__ import annotations

import pytest

from closedloop.api.tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(world):
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.jobs.models import Job, JobStatus

    with scopes_disabled():
        export = Job.objects.create(
            account=world.account,
            kind="registry.export",
            title="Export",
            created_by=world.alice,
            params={"format": "csv"},
        )
        done = Job.objects.create(
            account=world.account,
            kind="people.import",
            status=JobStatus.SUCCEEDED,
            created_by=world.alice,
            result={"rows": 3},
        )
        sams = Job.objects.create(
            account=world.account,
            kind="registry.export",
            created_by=world.sam,
            status=JobStatus.RUNNING,
        )
        theirs = Job.objects.create(account=world.other_account, kind="registry.export")
    return {"export": export, "done": done, "sams": sams, "theirs": theirs}


def ids(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_it_lists_the_accounts_jobs_newest_first(world, jobs, api_as):
    body = api_as(world.bob).get("/jobs").json()
    assert body["count"] == 3
    assert [j["id"] for j in body["items"]] == [jobs["sams"].pk, jobs["done"].pk, jobs["export"].pk]
    assert body["items"][2]["created_by"] == "alice@example.org"


def test_it_filters_jobs_by_status_and_kind(world, jobs, api_as):
    client = api_as(world.alice)
    assert ids(client.get("/jobs", status="succeeded")) == [jobs["done"].pk]
    assert ids(client.get("/jobs", kind="registry.export")) == [jobs["sams"].pk, jobs["export"].pk]
    assert_error(client.get("/jobs", status="sleeping"), 422, "status")


def test_jobs_list_query_count_does_not_grow(world, jobs, api_as, django_assert_max_num_queries):
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.jobs.models import Job

    with scopes_disabled():
        for i in range(20):
            Job.objects.create(account=world.account, kind=f"k{i}", created_by=world.bob)
    client = api_as(world.alice)
    client.get("/me")
    with django_assert_max_num_queries(5):
        assert client.get("/jobs", limit=100).json()["count"] == 23


def test_it_shows_a_job_with_its_log_and_result(world, jobs, api_as):
    body = api_as(world.bob).get(f"/jobs/{jobs['done'].pk}").json()
    assert body["result"] == {"rows": 3}
    assert body["status"] == "succeeded" and body["percent"] == 100
    assert body["log"] == []


def test_outsider_gets_404_on_our_jobs(world, jobs, api_as):
    client = api_as(world.charlie)
    assert ids(client.get("/jobs")) == [jobs["theirs"].pk]
    assert_error(client.get(f"/jobs/{jobs['export'].pk}"), 404)
    assert_error(client.post(f"/jobs/{jobs['export'].pk}/cancel"), 404)


def test_supervisor_sees_only_his_own_jobs(world, jobs, api_as):
    client = api_as(world.sam)
    assert ids(client.get("/jobs")) == [jobs["sams"].pk]
    assert_error(client.get(f"/jobs/{jobs['export'].pk}"), 404)


def test_admin_cancels_a_queued_job(world, jobs, api_as):
    response = api_as(world.alice).post(f"/jobs/{jobs['export'].pk}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"


def test_supervisor_asks_his_running_job_to_stop(world, jobs, api_as):
    body = api_as(world.sam).post(f"/jobs/{jobs['sams'].pk}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_viewer_cannot_cancel(world, jobs, api_as):
    assert_error(api_as(world.bob).post(f"/jobs/{jobs['export'].pk}/cancel"), 403)


def test_cancelling_a_finished_job_is_a_409(world, jobs, api_as):
    assert_error(api_as(world.alice).post(f"/jobs/{jobs['done'].pk}/cancel"), 409)


def test_admin_lists_members(world, api_as):
    body = api_as(world.alice).get("/members").json()
    assert body["count"] == 3
    by_email = {m["user"]["email"]: m for m in body["items"]}
    assert set(by_email) == {"alice@example.org", "bob@example.org", "sam@example.org"}
    assert by_email["sam@example.org"]["scope"] == [world.region_north.pk]
    assert by_email["bob@example.org"]["role"] == "viewer"


def test_members_are_paginated(world, api_as):
    body = api_as(world.alice).get("/members", limit=1, offset=2).json()
    assert body["count"] == 3 and len(body["items"]) == 1


@pytest.mark.parametrize("who", ["bob", "sam"])
def test_members_are_for_admins_and_managers_only(world, api_as, who):
    assert_error(api_as(getattr(world, who)).get("/members"), 403)


def test_outsider_sees_only_his_own_members(world, api_as):
    body = api_as(world.charlie).get("/members").json()
    assert [m["user"]["email"] for m in body["items"]] == ["charlie@example.org"]
