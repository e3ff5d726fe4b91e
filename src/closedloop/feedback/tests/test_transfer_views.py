"""Export and import pages and API: downloads, uploads with errors, tenancy and sharing."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from closedloop.core.tenancy import account_scope
from closedloop.feedback.models import Action, Workflow, WorkflowShare

from .test_transfer_roundtrip import build_rich_workflow, export

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_as(world):
    from closedloop.accounts.services import token_create

    def make(user):
        _token, raw = token_create(user=user, name="test")
        client = Client(headers={"Authorization": f"Bearer {raw}"})
        return client

    return make


@pytest.fixture
def wf(world, make_workflow):
    return build_rich_workflow(world, make_workflow)


def share(world, workflow, user, role):
    with account_scope(world.account):
        WorkflowShare.objects.create(account=world.account, workflow=workflow, user=user, role=role)


def workflow_names(world) -> set[str]:
    with account_scope(world.account):
        return set(Workflow.objects.values_list("name", flat=True))


def upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


# -- pages ---------------------------------------------------------------------------


def test_the_export_page_lists_actions_and_downloads_a_zip(world, wf, client_for):
    client = client_for(world.alice)
    page = client.get(f"/feedback/{wf.pk}/export/")
    assert page.status_code == 200
    assert b"Week 3 email" in page.content
    with account_scope(world.account):
        rubric = Action.objects.get(workflow=wf, name="Rubric")
    response = client.post(
        f"/feedback/{wf.pk}/export/", {"actions": [rubric.pk], "what": "workflow"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="course.zip"' in response["Content-Disposition"]
    meta = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("workflow.json"))
    assert [a["name"] for a in meta["actions"]] == ["Rubric"]
    response = client.post(
        f"/feedback/{wf.pk}/export/", {"actions": [rubric.pk], "what": "actions"}
    )
    assert json.loads(response.content)["format"] == "closedloop-actions"


def test_the_import_page_creates_the_workflow(world, wf, client_for):
    data = export(world, wf)
    client = client_for(world.alice)
    assert client.get("/feedback/import/").status_code == 200
    response = client.post("/feedback/import/", {"name": "Imported", "file": upload(data, "c.zip")})
    assert response.status_code == 302
    with account_scope(world.account):
        imported = Workflow.objects.get(name="Imported")
    assert response["Location"] == f"/feedback/{imported.pk}/"
    assert imported.owner == world.alice and imported.nrows == 6


def test_the_import_page_shows_the_error_and_keeps_nothing(world, wf, client_for):
    client = client_for(world.alice)
    response = client.post("/feedback/import/", {"name": "Bad", "file": upload(b"hello", "x.zip")})
    assert response.status_code == 400
    assert b'data-testid="import-errors"' in response.content
    assert "neither a closedloop export" in response.content.decode()
    pickled = gzip.compress(json.dumps({"columns": [], "data_frame": "gASVAAAA"}).encode())
    response = client.post("/feedback/import/", {"name": "Bad", "file": upload(pickled, "x.gz")})
    assert response.status_code == 400
    assert "never opens pickles" in response.content.decode()
    response = client.post("/feedback/import/", {"name": "Bad"})
    assert "Choose the file" in response.content.decode()
    assert "Bad" not in workflow_names(world)


def test_an_oversized_upload_is_refused_unread(world, client_for, settings):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 100
    client = client_for(world.alice)
    response = client.post(
        "/feedback/import/", {"name": "Big", "file": upload(b"x" * 500, "big.zip")}
    )
    assert response.status_code == 400
    assert "larger than" in response.content.decode()


def test_import_actions_page(world, wf, make_workflow, client_for):
    target = make_workflow(name="Target")
    with account_scope(world.account):
        from closedloop.feedback import transfer

        ids = [Action.objects.get(workflow=wf, name="Week 3 email").pk]
        data = transfer.actions_export(workflow=wf, actor=world.alice, action_ids=ids)
    client = client_for(world.alice)
    assert client.get(f"/feedback/{target.pk}/actions/import/").status_code == 200
    response = client.post(
        f"/feedback/{target.pk}/actions/import/", {"file": upload(data, "a.json")}
    )
    assert response.status_code == 302
    response = client.post(
        f"/feedback/{target.pk}/actions/import/", {"file": upload(data, "a.json")}
    )
    assert response.status_code == 400
    assert "exists already" in response.content.decode()


def test_pages_follow_tenancy_and_sharing(world, wf, client, make_workflow):
    data = export(world, wf)
    export_url = f"/feedback/{wf.pk}/export/"
    actions_url = f"/feedback/{wf.pk}/actions/import/"
    # Charlie (another account) and Bob (viewer, not shared): 404
    for user in (world.charlie, world.bob):
        client.force_login(user)
        assert client.get(export_url).status_code == 404
        assert client.post(export_url, {"what": "workflow"}).status_code == 404
        assert client.get(actions_url).status_code == 404
    # Bob cannot create workflows at all: the import page is not his
    client.force_login(world.bob)
    assert client.get("/feedback/import/").status_code == 404
    # a viewer share exports but does not import actions
    share(world, wf, world.bob, "viewer")
    assert client.post(export_url, {"what": "workflow"}).status_code == 200
    assert client.get(actions_url).status_code == 403
    # an editor share imports actions
    with account_scope(world.account):
        WorkflowShare.objects.filter(workflow=wf, user=world.bob).update(role="editor")
    assert client.get(actions_url).status_code == 200
    # Charlie imports into his own account only
    client.force_login(world.charlie)
    response = client.post(
        "/feedback/import/", {"name": "Charlie's", "file": upload(data, "c.zip")}
    )
    assert response.status_code == 302
    assert "Charlie's" not in workflow_names(world)
    with account_scope(world.other_account):
        assert Workflow.objects.get(name="Charlie's").account == world.other_account


def test_anonymous_users_are_sent_to_login(client, wf):
    assert client.get(f"/feedback/{wf.pk}/export/").status_code == 302
    assert client.get("/feedback/import/").status_code == 302


# -- API -----------------------------------------------------------------------------


def test_api_export_and_import_round_trip(world, wf, api_as):
    alice = api_as(world.alice)
    response = alice.get(f"/api/v1/workflows/{wf.pk}/export")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    response = alice.post(
        "/api/v1/workflows/import", {"name": "Via API", "file": upload(response.content, "w.zip")}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Via API" and body["nrows"] == 6
    assert sorted(body["actions"]) == ["Check-in", "Rubric", "Week 3 email"]
    assert any("paused" in n for n in body["notes"])


def test_api_export_of_chosen_actions(world, wf, api_as):
    with account_scope(world.account):
        rubric = Action.objects.get(workflow=wf, name="Rubric")
    response = api_as(world.alice).get(f"/api/v1/workflows/{wf.pk}/export?actions={rubric.pk}")
    meta = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("workflow.json"))
    assert [a["name"] for a in meta["actions"]] == ["Rubric"]
    response = api_as(world.alice).get(f"/api/v1/workflows/{wf.pk}/export?actions=x")
    assert response.status_code == 400
    response = api_as(world.alice).get(f"/api/v1/workflows/{wf.pk}/export/actions")
    assert response.status_code == 200 and response.json()["format"] == "closedloop-actions"


def test_api_import_errors_use_the_error_shape(world, wf, api_as):
    alice = api_as(world.alice)
    meta = {"format": "closedloop-workflow", "version": 1, "columns": [
        {"name": "email", "data_type": "string", "is_key": True}],
        "views": [{"name": "V", "columns": ["ghost"]}]}  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("workflow.json", json.dumps(meta))
        archive.writestr("data.csv", "email\na@x.org\n")
    response = alice.post(
        "/api/v1/workflows/import", {"name": "X", "file": upload(buffer.getvalue(), "w.zip")}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "workflow.json: view “V”: uses the unknown column “ghost”."
    assert body["errors"][0]["field"] == "view “V”"
    assert "X" not in workflow_names(world)
    response = alice.post("/api/v1/workflows/import", {"name": "X"})
    assert response.status_code == 422


def test_api_follows_tenancy_and_sharing(world, wf, api_as):
    data = export(world, wf)
    for user in (world.charlie, world.bob):
        api = api_as(user)
        assert api.get(f"/api/v1/workflows/{wf.pk}/export").status_code == 404
        assert api.get(f"/api/v1/workflows/{wf.pk}/export/actions").status_code == 404
        response = api.post(
            f"/api/v1/workflows/{wf.pk}/actions/import", {"file": upload(b"{}", "a.json")}
        )
        assert response.status_code == 404
    bob = api_as(world.bob)
    response = bob.post(
        "/api/v1/workflows/import", {"name": "Bob's", "file": upload(data, "w.zip")}
    )
    assert response.status_code == 403
    share(world, wf, world.bob, "viewer")
    assert bob.get(f"/api/v1/workflows/{wf.pk}/export").status_code == 200
    response = bob.post(
        f"/api/v1/workflows/{wf.pk}/actions/import", {"file": upload(b"{}", "a.json")}
    )
    assert response.status_code == 403
    with account_scope(world.account):
        WorkflowShare.objects.filter(workflow=wf, user=world.bob).update(role="editor")
    response = bob.post(
        f"/api/v1/workflows/{wf.pk}/actions/import", {"file": upload(b"{}", "a.json")}
    )
    assert response.status_code == 400
    assert "not a closedloop actions export" in response.json()["detail"]
    charlie = api_as(world.charlie)
    response = charlie.post(
        "/api/v1/workflows/import", {"name": "Mine", "file": upload(data, "w.zip")}
    )
    assert response.status_code == 201
    assert "Mine" not in workflow_names(world)
