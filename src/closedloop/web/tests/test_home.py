from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.core.testing.factories import make_person
from closedloop.jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def _stat(response, testid: str) -> str:
    html = response.content.decode()
    start = html.index(f'data-testid="{testid}">') + len(f'data-testid="{testid}">')
    return html[start : html.index("<", start)].strip()


def test_it_redirects_anonymous_visitors_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_counts_the_whole_tree_and_people_for_an_admin(world, client_for):
    with account_scope(world.account):
        make_person(world.account, "Nia", world.school_n1)
        make_person(world.account, "Sol", world.school_s1)
    response = client_for(world.alice).get("/")
    assert response.status_code == 200
    assert _stat(response, "unit-count") == "7"
    assert _stat(response, "people-count") == "2"
    assert 'id="units-by-type-data"' in response.content.decode()


def test_a_supervisor_counts_only_his_subtree(world, client_for):
    with account_scope(world.account):
        make_person(world.account, "Nia", world.school_n1)
        make_person(world.account, "Sol", world.school_s1)
    response = client_for(world.sam).get("/")
    assert _stat(response, "unit-count") == "3"  # North, Northvale, Northvale Primary
    assert _stat(response, "people-count") == "1"
    assert "Southport" not in response.content.decode()


def test_an_outsider_sees_only_his_own_account(world, client_for):
    with account_scope(world.account):
        Job.objects.create(account=world.account, kind="x", title="Secret import of A")
    response = client_for(world.charlie).get("/")
    body = response.content.decode()
    assert _stat(response, "unit-count") == "1"
    assert "Secret import of A" not in body
    assert "Ministry B" in body


def test_recent_jobs_link_to_their_pages_and_count_running_ones(world, client_for):
    with account_scope(world.account):
        job = Job.objects.create(
            account=world.account, kind="x", title="Import schools", status=JobStatus.RUNNING
        )
    response = client_for(world.alice).get("/")
    assert f'href="/jobs/{job.pk}/"' in response.content.decode()
    assert _stat(response, "running-jobs") == "1"


def test_an_empty_account_gets_an_invitation_to_import(world, client_for):
    from closedloop.accounts.models import Role
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.core.testing.factories import AccountFactory, MembershipFactory, UserFactory

    with scopes_disabled():
        empty = AccountFactory(name="Empty", slug="empty")
        user = UserFactory(email="new@example.org")
        MembershipFactory(account=empty, user=user, role=Role.ADMIN)
    body = client_for(user).get("/").content.decode()
    assert "No org units yet." in body
    assert "/registry/import/" in body


def test_the_home_page_does_not_grow_queries_with_jobs(
    world, client_for, django_assert_max_num_queries
):
    client = client_for(world.alice)
    with account_scope(world.account):
        for n in range(8):
            Job.objects.create(
                account=world.account, kind="x", title=f"job {n}", created_by=world.alice
            )
    with django_assert_max_num_queries(14):
        assert client.get("/").status_code == 200
