"""Actions through the API: CRUD, preview row N, run now (a Job), errors, tenancy, sharing."""

from __future__ import annotations

import pytest
from django.test import Client

from closedloop.api.tests.conftest import ApiClient, assert_error
from closedloop.core.tenancy import account_scope
from closedloop.feedback.models import Action, ActionRun, ShareRole, WorkflowShare

LOW = {"condition": "AND", "not": False, "valid": True, "rules": [
    {"id": "score", "field": "score", "type": "double", "operator": "less", "value": 50}
]}  # fmt: skip


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


def create(api, wf, **body):
    body.setdefault("name", "Mail")
    body.setdefault("action_type", "email")
    return api.post(f"/workflows/{wf.pk}/actions", body)


def test_create_read_update_list_and_delete(world, wf, api_as, django_assert_max_num_queries):
    api = api_as(world.alice)
    response = create(
        api,
        wf,
        text_content="<p>Hi {{ name }}</p>",
        subject="Hello {{ name }}",
        options={"item_column": "email", "cc": "tutor@example.org"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["action_type"] == "email" and body["options"]["cc"] == ["tutor@example.org"]
    assert body["serve_url"].startswith("/feedback/serve/")
    aid = body["id"]
    patched = api.patch(
        f"/workflows/{wf.pk}/actions/{aid}", {"text_content": "<p>Bye {{ name }}</p>"}
    )
    assert patched.status_code == 200 and patched.json()["text_content"] == "<p>Bye {{ name }}</p>"
    assert patched.json()["subject"] == "Hello {{ name }}"
    for i in range(4):
        create(api, wf, name=f"S{i}", action_type="survey", columns=[{"column": "name"}])
    with django_assert_max_num_queries(12):
        listed = api.get(f"/workflows/{wf.pk}/actions")
    assert listed.json()["count"] == 5
    assert listed.json()["items"][1]["columns"] == [
        {"column": "name", "condition": None, "changes_allowed": True}
    ]
    assert api.get(f"/workflows/{wf.pk}/actions/{aid}").json()["name"] == "Mail"
    assert api.delete(f"/workflows/{wf.pk}/actions/{aid}").status_code == 204
    assert_error(api.get(f"/workflows/{wf.pk}/actions/{aid}"), 404)


def test_bad_input_names_the_field_and_changes_nothing(world, wf, api_as):
    api = api_as(world.alice)
    assert_error(create(api, wf, text_content="{{ settings.SECRET_KEY }}"), 400, "text_content")
    assert_error(create(api, wf, subject="{% if x %}"), 400, "subject")
    assert_error(create(api, wf, action_type="fax"), 400, "action_type")
    assert_error(
        create(api, wf, action_type="json", target_url="file:///etc/passwd"), 400, "target_url"
    )
    assert_error(
        create(api, wf, action_type="survey", columns=[{"column": "nope"}]), 400, "columns"
    )
    assert_error(api.post(f"/workflows/{wf.pk}/actions", {"action_type": "email"}), 422, "name")
    with account_scope(world.account):
        assert not Action.objects.filter(workflow=wf).exists()
    aid = create(api, wf).json()["id"]
    assert_error(
        api.patch(f"/workflows/{wf.pk}/actions/{aid}", {"text_content": "{{ nope }}"}),
        400,
        "text_content",
    )
    assert create(api, wf).status_code == 400  # same name


def test_preview_returns_the_rendered_row_and_conditions(world, wf, api_as):
    api = api_as(world.alice)
    aid = create(api, wf, text_content="<p>{{ name }}</p>", subject="S {{ score }}").json()["id"]
    with account_scope(world.account):
        from closedloop.feedback import filters

        filters.condition_create(
            action=Action.objects.get(pk=aid), actor=world.alice, name="Low", formula=LOW
        )
    response = api.get(f"/workflows/{wf.pk}/actions/{aid}/preview", row=2)
    assert response.status_code == 200
    body = response.json()
    assert body["index"] == 2 and body["total"] == 6
    assert body["body"] == "<p>Ben</p>" and body["subject"] == "S 48"
    assert body["conditions"] == {"Low": True} and body["next_all_false"] == 3
    assert body["recipient"] == "ben@example.org"


def test_run_now_returns_the_job(world, wf, api_as, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    api = api_as(world.alice)
    aid = create(api, wf, text_content="<p>{{ name }}</p>", subject="Hi").json()["id"]
    response = api.post(f"/workflows/{wf.pk}/actions/{aid}/run", {"item_column": "email"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["job"]["id"] and body["job"]["kind"]
    with account_scope(world.account):
        assert ActionRun.objects.get(pk=body["run_id"]).action_id == aid
    survey = create(api, wf, name="S", action_type="survey").json()["id"]
    assert_error(api.post(f"/workflows/{wf.pk}/actions/{survey}/run", {}), 400)


def test_outsiders_404_viewers_403_editors_write(world, wf, api_as):
    aid = create(api_as(world.alice), wf).json()["id"]
    charlie = api_as(world.charlie)
    assert_error(charlie.get(f"/workflows/{wf.pk}/actions"), 404)
    assert_error(charlie.get(f"/workflows/{wf.pk}/actions/{aid}/preview"), 404)
    bob = api_as(world.bob)
    assert_error(bob.get(f"/workflows/{wf.pk}/actions/{aid}"), 404)  # not shared
    with account_scope(world.account):
        WorkflowShare.objects.create(
            account=world.account, workflow=wf, user=world.bob, role=ShareRole.VIEWER
        )
    assert bob.get(f"/workflows/{wf.pk}/actions/{aid}").status_code == 200
    assert_error(create(bob, wf, name="B"), 403)
    assert_error(bob.patch(f"/workflows/{wf.pk}/actions/{aid}", {"name": "X"}), 403)
    assert_error(bob.delete(f"/workflows/{wf.pk}/actions/{aid}"), 403)
    assert_error(bob.post(f"/workflows/{wf.pk}/actions/{aid}/run", {}), 403)
    with account_scope(world.account):
        WorkflowShare.objects.filter(user=world.bob).update(role=ShareRole.EDITOR)
    assert bob.patch(f"/workflows/{wf.pk}/actions/{aid}", {"name": "X"}).status_code == 200
