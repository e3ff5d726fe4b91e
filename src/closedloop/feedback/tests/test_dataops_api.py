"""The table API: GET (JSON / CSV), PUT (load or replace), POST merge; errors and access."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback import table as storage
from closedloop.feedback.models import Column


class Api:
    def __init__(self, token: str) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get("/api/v1" + path, params, headers=self.headers)

    def send(
        self, method: str, path: str, body: Any, content_type: str = "application/json"
    ) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return getattr(self.client, method)(
            "/api/v1" + path, data, content_type=content_type, headers=self.headers
        )


@pytest.fixture
def api_as(world: Any) -> Any:
    from closedloop.accounts.services import token_create

    def make(user: Any) -> Api:
        _token, raw = token_create(user=user, name="test")
        return Api(raw)

    return make


@pytest.fixture
def course(make_workflow: Any) -> Any:
    return make_workflow()


def rows_of(workflow: Any) -> dict[str, dict[str, Any]]:
    with account_scope(workflow.account_id):
        return {r["email"]: r for r in storage.read_frame(workflow).to_dicts()}


def test_the_table_reads_as_json_records_and_as_csv(
    api_as: Any, world: Any, course: Any, django_assert_max_num_queries: Any
) -> None:
    api = api_as(world.alice)
    with django_assert_max_num_queries(12):
        response = api.get(f"/workflows/{course.pk}/table")
    assert response.status_code == 200
    body = response.json()
    assert body["columns"][0] == {"name": "email", "type": "string", "is_key": True}
    assert body["records"][0] == {
        "email": "ana@example.org", "name": "Ana", "score": 91.5, "attempts": 1, "passed": True,
        "submitted": "2024-03-01T09:00:00+00:00",
    }  # fmt: skip
    csv = api.get(f"/workflows/{course.pk}/table", format="csv")
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0] == "email,name,score,attempts,passed,submitted"
    assert lines[1] == "ana@example.org,Ana,91.5,1,true,2024-03-01T09:00:00+00:00"


def test_put_then_get_round_trips_csv_typed_like_the_wizard(api_as: Any, world: Any) -> None:
    with account_scope(world.account):
        workflow = services.workflow_create(account=world.account, actor=world.alice, name="API")
    api = api_as(world.alice)
    body = "sid,name,joined,ok\n1,Ann,2024-01-02T10:00:00Z,true\n2,Bo,,false\n"
    response = api.send("put", f"/workflows/{workflow.pk}/table?keys=sid", body, "text/csv")
    assert response.status_code == 200, response.content
    assert response.json()["columns"] == [
        {"name": "sid", "type": "integer", "is_key": True},
        {"name": "name", "type": "string", "is_key": False},
        {"name": "joined", "type": "datetime", "is_key": False},
        {"name": "ok", "type": "boolean", "is_key": False},
    ]
    again = api.get(f"/workflows/{workflow.pk}/table", format="csv").content.decode()
    replaced = api.send("put", f"/workflows/{workflow.pk}/table?keys=sid", again, "text/csv")
    assert replaced.status_code == 200 and replaced.json()["nrows"] == 2
    records = api.get(f"/workflows/{workflow.pk}/table").json()["records"]
    assert records == [
        {"sid": 1, "name": "Ann", "joined": "2024-01-02T10:00:00+00:00", "ok": True},
        {"sid": 2, "name": "Bo", "joined": None, "ok": False},
    ]


def test_put_json_records_with_keys(api_as: Any, world: Any, course: Any) -> None:
    api = api_as(world.alice)
    response = api.send(
        "put",
        f"/workflows/{course.pk}/table",
        {"records": [{"id": "a", "n": 1}, {"id": "b", "n": 2.5}], "keys": ["id"]},
    )
    assert response.status_code == 200, response.content
    with account_scope(world.account):
        assert [(c.name, c.data_type) for c in Column.objects.filter(workflow=course)] == [
            ("id", "string"),
            ("n", "double"),
        ]


def test_put_refuses_duplicate_keys_with_their_rows(api_as: Any, world: Any, course: Any) -> None:
    api = api_as(world.alice)
    before = rows_of(course)
    response = api.send(
        "put", f"/workflows/{course.pk}/table?keys=id", "id,x\n1,a\n2,b\n1,c\n", "text/csv"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == (
        "The key column “id” of the new data has values that appear more than once: “1” in rows 2, 4."
    )
    assert body["errors"] == [{"field": "id", "message": "Row 2: Duplicate key “1”."}]
    response = api.send("put", f"/workflows/{course.pk}/table", "id,x\n1,a\n", "text/csv")
    assert response.status_code == 400 and response.json()["detail"].startswith(
        "Choose at least one key column"
    )
    assert rows_of(course) == before


def test_merge_with_csv_returns_the_counts(api_as: Any, world: Any, course: Any) -> None:
    api = api_as(world.alice)
    body = "email,bonus\nana@example.org,2\nzed@example.org,1\n"
    response = api.send(
        "post",
        f"/workflows/{course.pk}/table/merge?how=outer&left_on=email&right_on=email",
        body,
        "text/csv",
    )
    assert response.status_code == 200, response.content
    counts = response.json()
    assert {k: counts[k] for k in ("added", "updated", "unchanged", "dropped")} == {
        "added": 1, "updated": 1, "unchanged": 5, "dropped": 0,
    }  # fmt: skip
    assert [(c["name"], c["tag"]) for c in counts["columns"]] == [
        ("email", "key"),
        ("bonus", "new"),
    ]
    assert rows_of(course)["zed@example.org"]["bonus"] == 1


def test_merge_with_json_options_in_the_body(api_as: Any, world: Any, course: Any) -> None:
    api = api_as(world.alice)
    response = api.send(
        "post",
        f"/workflows/{course.pk}/table/merge",
        {
            "records": [{"mail": "ben@example.org", "score": 50}],
            "how": "inner",
            "left_on": "email",
            "right_on": "mail",
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["dropped"] == 5
    assert list(rows_of(course)) == ["ben@example.org"]


def test_merge_errors_name_rows_and_columns_and_change_nothing(
    api_as: Any, world: Any, course: Any
) -> None:
    api = api_as(world.alice)
    before = rows_of(course)
    response = api.send(
        "post", f"/workflows/{course.pk}/table/merge?left_on=email&right_on=email",
        "email,attempts\nana@example.org,x\n", "text/csv",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "attempts", "message": "Row 2: “x” is not integers."}
    ]
    response = api.send(
        "post",
        f"/workflows/{course.pk}/table/merge?left_on=nope&right_on=email",
        "email\na@x.org\n",
        "text/csv",
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "left_on"
    response = api.send("post", f"/workflows/{course.pk}/table/merge", {"rows": []})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "records"
    response = api.send("post", f"/workflows/{course.pk}/table/merge", b"<xml/>", "application/xml")
    assert response.status_code == 415
    response = api.send(
        "post", f"/workflows/{course.pk}/table/merge?right_on=email", b"\x00\x01" * 300, "text/csv"
    )
    assert response.status_code == 400 and "binary data" in response.json()["detail"]
    assert rows_of(course) == before


def test_dry_run_merges_change_nothing(api_as: Any, world: Any, course: Any) -> None:
    api = api_as(world.alice)
    before = rows_of(course)
    response = api.send(
        "post",
        f"/workflows/{course.pk}/table/merge?right_on=email&dry_run=true",
        "email,x\nnew@x.org,1\n",
        "text/csv",
    )
    assert response.json()["added"] == 1
    assert rows_of(course) == before


def test_viewers_get_403_and_outsiders_404(api_as: Any, world: Any, course: Any) -> None:
    charlie = api_as(world.charlie)
    assert charlie.get(f"/workflows/{course.pk}/table").status_code == 404
    assert (
        charlie.send(
            "put", f"/workflows/{course.pk}/table?keys=a", "a\n1\n", "text/csv"
        ).status_code
        == 404
    )
    bob = api_as(world.bob)
    assert bob.get(f"/workflows/{course.pk}/table").status_code == 404
    with account_scope(world.account):
        services.workflow_share(
            workflow=course, actor=world.alice, email=world.bob.email, role="viewer"
        )
    assert bob.get(f"/workflows/{course.pk}/table").status_code == 200
    assert (
        bob.send("put", f"/workflows/{course.pk}/table?keys=a", "a\n1\n", "text/csv").status_code
        == 403
    )
    merge = bob.send(
        "post", f"/workflows/{course.pk}/table/merge?right_on=email", "email\na@x.org\n", "text/csv"
    )
    assert merge.status_code == 403
    with account_scope(world.account):
        services.workflow_share(
            workflow=course, actor=world.alice, email=world.bob.email, role="editor"
        )
    merge = bob.send(
        "post", f"/workflows/{course.pk}/table/merge?right_on=email", "email\na@x.org\n", "text/csv"
    )
    assert merge.status_code == 200


def test_the_endpoints_are_in_the_openapi_document(api_as: Any, world: Any) -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/workflows/{workflow_id}/table" in paths
    merge = paths["/api/v1/workflows/{workflow_id}/table/merge"]["post"]
    assert set(merge["requestBody"]["content"]) == {"text/csv", "application/json"}
