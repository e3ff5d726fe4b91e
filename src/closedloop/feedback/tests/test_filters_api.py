"""Filters, conditions and views through the API: counts, errors, tenancy and sharing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from closedloop.api.tests.conftest import ApiClient, assert_error
from closedloop.feedback.models import Action, Column, Condition, Filter, View, WorkflowShare

LOW = {"condition": "AND", "not": False, "valid": True, "rules": [
    {"id": "score", "field": "score", "type": "double", "input": "number", "operator": "less", "value": "50"}
]}  # fmt: skip
PASSED = {"condition": "AND", "rules": [{"field": "passed", "operator": "equal", "value": True}]}


@pytest.fixture
def api_as(world):
    from closedloop.accounts.services import token_create

    def make(user):
        _token, raw = token_create(user=user, name="test")
        return ApiClient(Client(), raw)

    return make


@pytest.fixture
def wf(make_workflow):
    return make_workflow()


def share(world, workflow, user, role):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        WorkflowShare.objects.create(account=world.account, workflow=workflow, user=user, role=role)


def scoped_query(world, fn):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        return fn()


def test_post_filter_returns_it_with_its_count(world, wf, api_as):
    response = api_as(world.alice).post(
        f"/workflows/{wf.pk}/filters", {"name": "Low", "formula": LOW}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Low" and body["count"] == 2 and body["id"]
    assert body["formula"] == LOW and body["formula_text"] == "score < “50”"


def test_filters_list_read_update_delete(world, wf, api_as, django_assert_max_num_queries):
    client = api_as(world.alice)
    for i in range(5):
        client.post(f"/workflows/{wf.pk}/filters", {"name": f"f{i}", "formula": LOW})
    with django_assert_max_num_queries(12):
        listed = client.get(f"/workflows/{wf.pk}/filters", limit=3)
    assert listed.json()["count"] == 5 and len(listed.json()["items"]) == 3
    fid = listed.json()["items"][0]["id"]
    assert client.get(f"/workflows/{wf.pk}/filters/{fid}").json()["count"] == 2

    put = client.client.put(
        f"/api/v1/workflows/{wf.pk}/filters/{fid}",
        json.dumps({"name": "Passed", "formula": PASSED}),
        content_type="application/json",
        headers=client.headers,
    )
    assert put.status_code == 200, put.content
    assert (put.json()["name"], put.json()["count"]) == ("Passed", 3)
    patched = client.patch(f"/workflows/{wf.pk}/filters/{fid}", {"description": "who passed"})
    assert patched.json()["description"] == "who passed" and patched.json()["name"] == "Passed"
    assert client.delete(f"/workflows/{wf.pk}/filters/{fid}").status_code == 204
    assert_error(client.get(f"/workflows/{wf.pk}/filters/{fid}"), 404)


@pytest.mark.parametrize(
    ("formula", "field", "words"),
    [
        ({"condition": "AND", "rules": [{"field": "score", "operator": "less", "value": "abc"}]},
         "formula.score", "score: 'abc' is not a number"),
        ({"condition": "AND", "rules": [{"field": "nope", "operator": "is_null"}]},
         "formula.nope", "no column"),
        ({"condition": "AND", "rules": [{"field": "name", "operator": "less", "value": "b"}]},
         "formula.name", "does not apply"),
        ({"condition": "XOR", "rules": []}, "formula", "AND or OR"),
    ],
)  # fmt: skip
def test_bad_formulas_are_400_naming_the_field_and_change_nothing(
    world, wf, api_as, formula, field, words
):
    client = api_as(world.alice)
    version = wf.version
    body = assert_error(
        client.post(f"/workflows/{wf.pk}/filters", {"name": "X", "formula": formula}), 400, field
    )
    assert words in body["errors"][0]["message"]
    assert scoped_query(world, lambda: Filter.objects.filter(workflow=wf).count()) == 0
    wf.refresh_from_db()
    assert wf.version == version


def test_duplicate_names_and_schema_errors(world, wf, api_as):
    client = api_as(world.alice)
    client.post(f"/workflows/{wf.pk}/filters", {"name": "Low", "formula": LOW})
    assert_error(
        client.post(f"/workflows/{wf.pk}/filters", {"name": "Low", "formula": {}}), 400, "name"
    )
    assert_error(client.post(f"/workflows/{wf.pk}/filters", {"formula": {}}), 422, "name")
    assert_error(
        client.post(f"/workflows/{wf.pk}/filters", {"name": "S", "formula": "x"}), 422, "formula"
    )


def test_tenancy_and_sharing_rules(world, wf, api_as):
    path = f"/workflows/{wf.pk}/filters"
    fid = api_as(world.alice).post(path, {"name": "Low", "formula": LOW}).json()["id"]
    # another account, and a member it was not shared with: 404 for everything
    for outsider in (world.charlie, world.bob):
        client = api_as(outsider)
        assert_error(client.get(path), 404)
        assert_error(client.get(f"{path}/{fid}"), 404)
        assert_error(client.post(path, {"name": "Mine", "formula": {}}), 404)
        assert_error(client.delete(f"{path}/{fid}"), 404)
        assert_error(client.get(f"/workflows/{wf.pk}/views"), 404)
    # a viewer reads but may not write
    share(world, wf, world.bob, "viewer")
    bob = api_as(world.bob)
    assert bob.get(path).json()["count"] == 1
    assert bob.get(f"{path}/{fid}").status_code == 200
    assert_error(bob.post(path, {"name": "Mine", "formula": {}}), 403)
    assert_error(bob.patch(f"{path}/{fid}", {"name": "Renamed"}), 403)
    assert_error(bob.delete(f"{path}/{fid}"), 403)
    assert_error(bob.post(f"/workflows/{wf.pk}/views", {"name": "V"}), 403)
    # an editor writes
    share(world, wf, world.sam, "editor")
    sam = api_as(world.sam)
    assert sam.post(path, {"name": "Sam's", "formula": PASSED}).status_code == 201
    assert sam.patch(f"{path}/{fid}", {"name": "Renamed"}).status_code == 200
    assert sam.delete(f"{path}/{fid}").status_code == 204
    assert scoped_query(world, lambda: list(Filter.objects.values_list("name", flat=True))) == [
        "Sam's"
    ]


@pytest.fixture
def action(world, wf):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        low = Filter.objects.create(account=world.account, workflow=wf, name="Low", formula=LOW)
        return Action.objects.create(
            account=world.account, workflow=wf, name="Mail", action_type="email", filter=low
        )


def test_conditions_crud_with_counts_within_the_action_filter(
    world, wf, action, api_as, django_assert_max_num_queries
):
    client = api_as(world.alice)
    path = f"/workflows/{wf.pk}/actions/{action.pk}/conditions"
    failed = {
        "condition": "AND",
        "rules": [{"field": "passed", "operator": "equal", "value": False}],
    }
    created = client.post(path, {"name": "failed", "formula": failed})
    assert created.status_code == 201, created.content
    assert created.json()["count"] == 2 and created.json()["position"] == 1
    client.post(path, {"name": "all", "formula": {}})
    with django_assert_max_num_queries(12):
        listed = client.get(path).json()
    assert [(c["name"], c["count"]) for c in listed["items"]] == [("failed", 2), ("all", 2)]
    cid = created.json()["id"]
    assert client.get(f"{path}/{cid}").json()["name"] == "failed"
    patched = client.patch(f"{path}/{cid}", {"formula": PASSED})
    assert patched.json()["count"] == 0
    assert_error(client.patch(f"{path}/{cid}", {"name": "score"}), 400, "name")
    assert_error(client.post(path, {"name": "all", "formula": {}}), 400, "name")
    assert_error(client.post(path, {"name": "x" * 64, "formula": {}}), 422, "name")
    assert_error(
        client.post(
            path,
            {
                "name": "bad",
                "formula": {"rules": [{"field": "passed", "operator": "contains", "value": "t"}]},
            },
        ),
        400,
        "formula.passed",
    )
    assert client.delete(f"{path}/{cid}").status_code == 204
    assert_error(client.get(f"{path}/{cid}"), 404)
    assert_error(client.get(f"/workflows/{wf.pk}/actions/999999/conditions"), 404)


def test_conditions_tenancy(world, wf, action, api_as):
    path = f"/workflows/{wf.pk}/actions/{action.pk}/conditions"
    cid = api_as(world.alice).post(path, {"name": "c", "formula": PASSED}).json()["id"]
    for outsider in (world.charlie, world.bob):
        assert_error(api_as(outsider).get(path), 404)
        assert_error(api_as(outsider).post(path, {"name": "d", "formula": {}}), 404)
    share(world, wf, world.bob, "viewer")
    assert api_as(world.bob).get(f"{path}/{cid}").status_code == 200
    assert_error(api_as(world.bob).post(path, {"name": "d", "formula": {}}), 403)
    assert_error(api_as(world.bob).delete(f"{path}/{cid}"), 403)
    assert scoped_query(world, lambda: Condition.objects.count()) == 1


def test_views_crud(world, wf, api_as, make_workflow, django_assert_max_num_queries):
    client = api_as(world.alice)
    columns = scoped_query(
        world, lambda: dict(Column.objects.filter(workflow=wf).values_list("name", "pk"))
    )
    fid = client.post(f"/workflows/{wf.pk}/filters", {"name": "Low", "formula": LOW}).json()["id"]
    path = f"/workflows/{wf.pk}/views"
    created = client.post(
        path, {"name": "Scores", "column_ids": [columns["email"], columns["score"]], "filter": fid}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["columns"] == ["email", "score"] and body["filter"] == {"id": fid, "name": "Low"}
    vid = body["id"]
    client.post(path, {"name": "All"})
    with django_assert_max_num_queries(12):
        assert client.get(path).json()["count"] == 2
    assert client.get(f"{path}/{vid}").json()["name"] == "Scores"
    assert_error(client.post(path, {"name": "X", "column_ids": [999999]}), 400, "column_ids")
    assert_error(client.post(path, {"name": "X", "filter": 999999}), 400, "filter")
    assert_error(client.post(path, {"name": "Scores"}), 400, "name")
    patched = client.patch(f"{path}/{vid}", {"filter": None})
    assert patched.json()["filter"] is None and patched.json()["columns"] == ["email", "score"]
    assert client.patch(f"{path}/{vid}", {"column_ids": [columns["name"]]}).json()["columns"] == [
        "name"
    ]
    assert client.delete(f"{path}/{vid}").status_code == 204
    assert scoped_query(world, lambda: list(View.objects.values_list("name", flat=True))) == ["All"]
