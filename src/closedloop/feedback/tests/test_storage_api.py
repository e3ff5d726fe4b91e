"""API for workflows, columns, rows, logs and undo: tenancy, sharing, errors, queries."""

from __future__ import annotations

import polars as pl
import pytest
from django.test import Client

from closedloop.api.tests.conftest import ApiClient, assert_error
from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.models import Column, Workflow

pytestmark = pytest.mark.django_db


def api(user):
    client = Client()
    client.force_login(user)
    return ApiClient(client)


@pytest.fixture
def course(world, make_workflow):
    return make_workflow()


def share(world, workflow, user, role):
    with account_scope(world.account):
        services.workflow_share(workflow=workflow, actor=world.alice, email=user.email, role=role)


def column_id(workflow, name):
    with account_scope(workflow.account_id):
        return Column.objects.get(workflow=workflow, name=name).pk


def test_create_returns_the_workflow_with_its_id(world):
    response = api(world.alice).post("/workflows", {"name": "Biology 101"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Biology 101" and body["role"] == "owner" and body["nrows"] == 0
    with account_scope(world.account):
        assert Workflow.objects.get(pk=body["id"]).owner == world.alice
    assert_error(api(world.alice).post("/workflows", {"name": "Biology 101"}), 400, "name")
    assert_error(api(world.alice).post("/workflows", {}), 422, "name")
    assert_error(api(world.bob).post("/workflows", {"name": "Mine"}), 403)


def test_outsiders_get_404(world, course):
    for user in (world.charlie, world.bob):
        client = api(user)
        assert_error(client.get(f"/workflows/{course.pk}"), 404)
        assert_error(client.get(f"/workflows/{course.pk}/columns"), 404)
        assert_error(client.get(f"/workflows/{course.pk}/rows/email/ana@example.org"), 404)
        assert_error(client.get(f"/workflows/{course.pk}/logs"), 404)
        assert_error(client.patch(f"/workflows/{course.pk}", {"description": "x"}), 404)
        assert_error(client.post(f"/workflows/{course.pk}/rows", {"values": {"email": "z"}}), 404)
        assert_error(client.delete(f"/workflows/{course.pk}"), 404)
        assert_error(client.post(f"/workflows/{course.pk}/undo"), 404)
        assert course.pk not in [w["id"] for w in client.get("/workflows").json()["items"]]


def test_a_viewer_share_reads_but_cannot_write(world, course):
    share(world, course, world.bob, "viewer")
    bob = api(world.bob)
    body = bob.get(f"/workflows/{course.pk}").json()
    assert body["role"] == "viewer"
    assert [w["id"] for w in bob.get("/workflows").json()["items"]] == [course.pk]
    assert bob.get(f"/workflows/{course.pk}/rows/email/ana@example.org").status_code == 200
    assert_error(bob.patch(f"/workflows/{course.pk}", {"description": "x"}), 403)
    assert_error(bob.post(f"/workflows/{course.pk}/columns", {"name": "x"}), 403)
    cid = column_id(course, "score")
    assert_error(bob.patch(f"/workflows/{course.pk}/columns/{cid}", {"description": "x"}), 403)
    assert_error(bob.delete(f"/workflows/{course.pk}/columns/{cid}"), 403)
    assert_error(bob.post(f"/workflows/{course.pk}/rows", {"values": {"email": "z@x"}}), 403)
    assert_error(
        bob.patch(f"/workflows/{course.pk}/rows/email/ana@example.org", {"values": {"name": "A"}}),
        403,
    )
    assert_error(bob.delete(f"/workflows/{course.pk}/rows/email/ana@example.org"), 403)
    assert_error(bob.post(f"/workflows/{course.pk}/undo"), 403)


def test_an_editor_share_writes_but_cannot_rename_or_delete(world, make_workflow):
    course = make_workflow(owner=world.sam)
    share(world, course, world.bob, "editor")
    bob = api(world.bob)
    response = bob.patch(f"/workflows/{course.pk}", {"description": "Notes"})
    assert response.status_code == 200 and response.json()["description"] == "Notes"
    assert_error(bob.patch(f"/workflows/{course.pk}", {"name": "Other"}), 403)
    assert_error(bob.delete(f"/workflows/{course.pk}"), 403)
    sam = api(world.sam)
    assert sam.patch(f"/workflows/{course.pk}", {"name": "Other"}).json()["name"] == "Other"
    assert sam.delete(f"/workflows/{course.pk}").status_code == 204
    with account_scope(world.account):
        assert not Workflow.objects.filter(pk=course.pk).exists()


def test_update_put_and_conflicts(world, course):
    alice = api(world.alice)
    body = alice.get(f"/workflows/{course.pk}").json()
    response = alice.client.put(
        f"/api/v1/workflows/{course.pk}",
        {
            "name": "Course",
            "description": "New",
            "attributes": {"term": "Fall"},
            "version": body["version"],
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["attributes"] == {"term": "Fall"}
    stale = alice.patch(f"/workflows/{course.pk}", {"description": "x", "version": body["version"]})
    assert_error(stale, 409)
    assert_error(alice.patch(f"/workflows/{course.pk}", {"attributes": {"score": 1}}), 400)


def test_columns_api(world, course):
    alice = api(world.alice)
    base = f"/workflows/{course.pk}/columns"
    listed = alice.get(base).json()
    assert listed["count"] == 6 and listed["items"][0]["name"] == "email"
    made = alice.post(base, {"name": "bonus", "data_type": "integer", "initial": 2})
    assert made.status_code == 201, made.content
    cid = made.json()["id"]
    assert alice.get(f"{base}/{cid}").json()["data_type"] == "integer"
    changed = alice.patch(
        f"{base}/{cid}", {"name": "extra", "data_type": "double", "position": 1, "description": "d"}
    ).json()
    assert (changed["name"], changed["data_type"], changed["position"]) == ("extra", "double", 1)
    renamed = alice.post(f"{base}/{cid}/rename", {"name": "extra points"})
    assert renamed.json()["name"] == "extra points"
    assert_error(alice.post(base, {"name": "it's"}), 400, "name")
    assert_error(alice.post(base, {"name": "x", "data_type": "money"}), 422, "data_type")
    assert_error(alice.post(base, {"name": "x", "data_type": "integer", "initial": "a"}), 400, "x")
    email = column_id(course, "email")
    assert_error(alice.delete(f"{base}/{email}"), 400)
    formula = alice.post(base, {"name": "total", "formula": {"op": "sum", "inputs": ["score"]}})
    assert formula.status_code == 201 and formula.json()["data_type"] == "double"
    rnd = alice.post(base, {"name": "grp", "random": {"values": ["A", "B"], "seed": 1}})
    assert rnd.status_code == 201 and rnd.json()["categories"] == ["A", "B"]
    assert alice.delete(f"{base}/{cid}").status_code == 204
    assert_error(alice.get(f"{base}/{cid}"), 404)


def test_rows_api(world, course):
    alice = api(world.alice)
    base = f"/workflows/{course.pk}/rows"
    row = alice.get(f"{base}/email/ana@example.org").json()["values"]
    assert row["score"] == 91.5 and row["submitted"].startswith("2024-03-01T09:00:00")
    made = alice.post(
        base, {"values": {"email": "zoe@example.org", "score": "88", "passed": "yes"}}
    )
    assert made.status_code == 201, made.content
    assert made.json()["values"]["score"] == 88.0 and made.json()["values"]["passed"] is True
    assert_error(alice.post(base, {"values": {"email": "zoe@example.org"}}), 400, "email")
    assert_error(alice.post(base, {"values": {"name": "No key"}}), 400, "email")
    assert_error(alice.post(base, {"values": {"email": "q@x", "score": "many"}}), 400, "score")
    assert_error(alice.post(base, {"values": {"email": "q@x", "nope": 1}}), 400, "nope")
    edited = alice.patch(f"{base}/email/zoe@example.org", {"values": {"attempts": 3}})
    assert edited.status_code == 200 and edited.json()["values"]["attempts"] == 3
    assert_error(alice.get(f"{base}/email/nobody@example.org"), 404)
    assert_error(alice.get(f"{base}/name/Ana"), 400)
    assert alice.delete(f"{base}/email/zoe@example.org").status_code == 204
    assert_error(alice.delete(f"{base}/email/zoe@example.org"), 404)
    course.refresh_from_db()
    assert course.nrows == 6


def test_logs_and_undo_api(world, course):
    alice = api(world.alice)
    with account_scope(world.account):
        services.table_load(
            workflow=course,
            actor=world.alice,
            frame=pl.DataFrame({"email": ["a@x"]}),
            keys=["email"],
            label="second",
        )
    logs = alice.get(f"/workflows/{course.pk}/logs", name="workflow_data_upload").json()
    assert logs["count"] == 2 and logs["items"][0]["payload"]["label"] == "second"
    assert logs["items"][0]["user"] == "alice@example.org"
    assert alice.get(f"/workflows/{course.pk}/logs", limit=1).json()["count"] > 2
    assert (
        alice.get(f"/workflows/{course.pk}/logs", since="2999-01-01T00:00:00Z").json()["count"] == 0
    )
    undone = alice.post(f"/workflows/{course.pk}/undo")
    assert undone.status_code == 200, undone.content
    assert undone.json()["label"] == "second" and undone.json()["nrows"] == 6
    alice.post(f"/workflows/{course.pk}/undo")
    assert_error(alice.post(f"/workflows/{course.pk}/undo"), 400)


def test_list_query_count_does_not_grow(world, make_workflow, django_assert_max_num_queries):
    for n in range(5):
        wf = make_workflow(name=f"W{n}", owner=world.sam)
        share(world, wf, world.bob, "viewer" if n % 2 else "editor")
    bob = api(world.bob)
    with django_assert_max_num_queries(8):
        body = bob.get("/workflows").json()
    assert body["count"] == 5
    assert sorted(w["role"] for w in body["items"]) == ["editor"] * 3 + ["viewer"] * 2
    with django_assert_max_num_queries(8):
        assert bob.get(f"/workflows/{wf.pk}/columns").json()["count"] == 6
    with django_assert_max_num_queries(8):
        assert bob.get(f"/workflows/{wf.pk}/logs").status_code == 200
