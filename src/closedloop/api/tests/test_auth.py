"""Authentication, account selection, the error shape and the docs."""

from __future__ import annotations

import pytest
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.utils import timezone

from closedloop.api.tests.conftest import ApiClient, assert_error

pytestmark = pytest.mark.django_db


def test_it_answers_a_valid_token(world, api_as):
    response = api_as(world.alice).get("/me")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "alice@example.org"
    assert body["account"]["slug"] == "ministry-a"
    assert body["role"] == "admin"
    assert body["scope"] == []
    assert [m["account"]["slug"] for m in body["memberships"]] == ["ministry-a"]


def test_it_records_when_a_token_was_used(world, token_for):
    from closedloop.accounts.models import ApiToken

    raw = token_for(world.alice)
    ApiClient(Client(), raw).get("/me")
    assert ApiToken.objects.get(user=world.alice).last_used_at is not None


def test_it_refuses_a_revoked_token(world, token_for):
    from closedloop.accounts.models import ApiToken

    raw = token_for(world.alice)
    ApiToken.objects.filter(user=world.alice).update(revoked_at=timezone.now())
    assert_error(ApiClient(Client(), raw).get("/me"), 401)


def test_it_refuses_a_token_of_an_inactive_user(world, token_for):
    raw = token_for(world.alice)
    world.alice.is_active = False
    world.alice.save()
    assert_error(ApiClient(Client(), raw).get("/me"), 401)


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer ", "Basic YWxpY2U6cHc=", "garbage"])
def test_it_refuses_a_garbage_authorization_header(world, header):
    response = Client().get("/api/v1/me", headers={"Authorization": header})
    assert_error(response, 401)


def test_anonymous_gets_401_with_the_error_shape(world):
    body = assert_error(Client().get("/api/v1/orgunits"), 401)
    assert "token" in body["detail"]


def test_a_wrong_token_is_not_rescued_by_a_session(world, client):
    client.force_login(world.alice)
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert_error(response, 401)


def test_it_answers_a_session_user(world, client):
    client.force_login(world.bob)
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"


def test_session_post_without_csrf_token_is_refused(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    response = client.post(
        "/api/v1/orgunit-types", {"name": "Clinic"}, content_type="application/json"
    )
    assert_error(response, 403)


def test_session_post_with_csrf_token_is_accepted(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    token_value = _get_new_csrf_string()
    client.cookies["csrftoken"] = token_value
    response = client.post(
        "/api/v1/orgunit-types",
        {"name": "Clinic"},
        content_type="application/json",
        headers={"X-CSRFToken": token_value},
    )
    assert response.status_code == 201, response.content


def test_token_post_needs_no_csrf_token(world, token_for):
    client = ApiClient(Client(enforce_csrf_checks=True), token_for(world.alice))
    assert client.post("/orgunit-types", {"name": "Clinic"}).status_code == 201


def test_x_account_switches_the_account(world, api_as):
    from closedloop.accounts.models import Role
    from closedloop.core.testing.factories import MembershipFactory

    MembershipFactory(account=world.other_account, user=world.alice, role=Role.VIEWER)
    client = api_as(world.alice, account="ministry-b")
    body = client.get("/me").json()
    assert body["account"]["slug"] == "ministry-b"
    assert body["role"] == "viewer"
    names = [u["name"] for u in client.get("/orgunits").json()["items"]]
    assert names == ["Elsewhere"]


def test_x_account_of_another_tenant_is_404(world, api_as):
    assert_error(api_as(world.alice, account="ministry-b").get("/me"), 404)


def test_x_account_that_does_not_exist_is_404(world, api_as):
    assert_error(api_as(world.alice, account="no-such-account").get("/orgunits"), 404)


def test_x_account_of_an_inactive_membership_is_404(world, api_as):
    from closedloop.accounts.models import Role
    from closedloop.core.testing.factories import MembershipFactory

    m = MembershipFactory(account=world.other_account, user=world.alice, role=Role.ADMIN)
    m.is_active = False
    m.save()
    assert_error(api_as(world.alice, account="ministry-b").get("/me"), 404)


def test_session_user_gets_the_account_chosen_in_the_session(world, client):
    from closedloop.accounts.middleware import SESSION_KEY
    from closedloop.accounts.models import Role
    from closedloop.core.testing.factories import MembershipFactory

    MembershipFactory(account=world.other_account, user=world.alice, role=Role.MANAGER)
    client.force_login(world.alice)
    session = client.session
    session[SESSION_KEY] = world.other_account.pk
    session.save()
    assert client.get("/api/v1/me").json()["account"]["slug"] == "ministry-b"
    response = client.get("/api/v1/me", headers={"X-Account": "ministry-a"})
    assert response.json()["account"]["slug"] == "ministry-a"


def test_a_user_without_membership_gets_403(world, api_as):
    from closedloop.core.testing.factories import UserFactory

    assert_error(api_as(UserFactory(email="nobody@example.org")).get("/me"), 403)


def test_supervisor_sees_his_scope_in_me(world, api_as):
    body = api_as(world.sam).get("/me").json()
    assert body["role"] == "supervisor"
    assert body["scope"] == [world.region_north.pk]


def test_validation_errors_name_the_field(world, api_as):
    body = assert_error(api_as(world.alice).post("/orgunits", {"parent": "x"}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"name", "parent"}


def test_nested_validation_errors_name_the_path(world, api_as):
    payload = {"name": "Ann", "external_ids": [{"system": "moodle"}]}
    assert_error(api_as(world.alice).post("/people", payload), 422, "external_ids.0.value")


def test_query_validation_errors_name_the_parameter(world, api_as):
    assert_error(api_as(world.alice).get("/orgunits", status="maybe"), 422, "status")


def test_broken_json_is_a_400_with_the_error_shape(world, api_as):
    assert_error(api_as(world.alice).post("/orgunits", "{not json"), 400)


def test_missing_object_is_a_404_with_the_error_shape(world, api_as):
    body = assert_error(api_as(world.alice).get("/orgunits/999999"), 404)
    assert body["errors"] == []


def test_unknown_api_path_is_a_404(world, api_as):
    assert api_as(world.alice).get("/no-such-thing").status_code == 404


def test_openapi_json_lists_every_endpoint(world, client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    expected = {
        "/api/v1/me",
        "/api/v1/members",
        "/api/v1/orgunit-types",
        "/api/v1/orgunits",
        "/api/v1/orgunits/{unit_id}",
        "/api/v1/orgunits/{unit_id}/move",
        "/api/v1/orgunits/{unit_id}/descendants",
        "/api/v1/groups",
        "/api/v1/people",
        "/api/v1/people/{person_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
    }
    assert expected <= set(paths)
    assert set(paths["/api/v1/orgunits/{unit_id}"]) == {"get", "patch"}
    assert set(paths["/api/v1/people/{person_id}"]) == {"get", "patch", "delete"}


def test_docs_page_renders_without_a_cdn(world, client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "<script>" not in html  # only external scripts: the site's CSP allows no inline code


def test_every_operation_requires_authentication(world, client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    operations = [op for methods in paths.values() for op in methods.values()]
    assert operations
    for operation in operations:
        schemes = {name for entry in operation["security"] for name in entry}
        assert schemes == {"TokenAuth", "SessionAuth"}, operation["operationId"]


def test_every_operation_runs_inside_the_account_scope_wrapper(world):
    from closedloop.api.auth import with_account_scope
    from closedloop.api.urls import api

    operations = [
        operation
        for bound in api._get_bound_routers()
        for path_view in bound.path_operations.values()
        for operation in path_view.operations
    ]
    assert len(operations) >= 18
    for operation in operations:
        assert operation.run.__wrapped__ is not None, operation.view_func.__name__
        assert operation.run.__code__ is with_account_scope(lambda r: r).__code__
