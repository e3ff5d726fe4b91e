"""Plugin pages and API: the admin list (enable, disable, verify again, errors), the
per-workflow run form that queues a Job, tenancy and sharing, query counts."""

from __future__ import annotations

import pytest
from django.test import Client

from closedloop.core.tenancy import account_scope
from closedloop.feedback import plugins, table
from closedloop.feedback.models import PluginSetting, WorkflowShare
from closedloop.jobs.models import Job

from .test_plugins_run import GOOD, write_plugin

pytestmark = pytest.mark.django_db


@pytest.fixture
def plugin_dir(tmp_path, settings):
    folder = tmp_path / "plugins"
    folder.mkdir()
    settings.DATAOPS_PLUGIN_DIRECTORY = str(folder)
    write_plugin(folder, "doubler", GOOD)
    write_plugin(folder, "broken", "x = 1\n")
    return folder


@pytest.fixture
def api_as(world):
    from closedloop.accounts.services import token_create

    def make(user):
        _token, raw = token_create(user=user, name="test")
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return make


def setting(world, key):
    with account_scope(world.account):
        return PluginSetting.objects.filter(plugin_key=key).first()


def test_the_admin_list_shows_plugins_errors_and_status(
    world, plugin_dir, client_for, django_assert_max_num_queries
):
    client = client_for(world.alice)
    with django_assert_max_num_queries(8):
        page = client.get("/feedback/plugins/")
    assert page.status_code == 200
    text = page.content.decode()
    for key in ("rounding", "linear_model", "doubler", "broken"):
        assert f'data-testid="plugin-{key}"' in text
    assert "defines no plugin class" in text


def test_enable_disable_and_verify_again(world, plugin_dir, client_for):
    client = client_for(world.alice)
    assert client.post("/feedback/plugins/doubler/enable/").status_code == 302
    assert setting(world, "doubler").enabled
    (plugin_dir / "doubler.py").write_text(GOOD + "\n# changed\n")
    page = client.get("/feedback/plugins/").content.decode()
    assert "changed: verify again" in page
    client.post("/feedback/plugins/doubler/enable/")
    assert setting(world, "doubler").verified_hash == plugins.file_hash(plugin_dir / "doubler.py")
    client.post("/feedback/plugins/doubler/disable/")
    assert not setting(world, "doubler").enabled
    response = client.post("/feedback/plugins/broken/enable/", follow=True)
    assert "has errors and cannot be enabled" in response.content.decode()
    assert client.get("/feedback/plugins/doubler/enable/").status_code == 405


def test_only_admins_manage_plugins_and_only_in_their_account(world, plugin_dir, client):
    for user in (world.bob, world.sam):
        client.force_login(user)
        assert client.get("/feedback/plugins/").status_code == 404
        assert client.post("/feedback/plugins/doubler/enable/").status_code == 404
    assert setting(world, "doubler") is None
    client.force_login(world.charlie)
    assert client.post("/feedback/plugins/doubler/enable/").status_code == 302
    assert setting(world, "doubler") is None  # Charlie's account, not A
    with account_scope(world.other_account):
        assert PluginSetting.objects.get(plugin_key="doubler").enabled


def test_the_run_form_queues_a_job_and_merges(
    world, make_workflow, client_for, django_capture_on_commit_callbacks
):
    workflow = make_workflow()
    with account_scope(world.account):
        plugins.plugin_enable(account=world.account, actor=world.alice, key="rounding")
    client = client_for(world.alice)
    page = client.get(f"/feedback/{workflow.pk}/plugins/?plugin=rounding")
    assert page.status_code == 200
    assert b'data-testid="plugin-run-form"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/feedback/{workflow.pk}/plugins/",
            {"plugin": "rounding", "key": "email", "input_columns": ["score"],
             "param_decimals": "0", "param_mode": "half_to_even", "suffix": "_r"},
        )  # fmt: skip
    assert response.status_code == 302
    with account_scope(world.account):
        job = Job.objects.get(kind=plugins.JOB_KIND)
        assert response["Location"] == f"/jobs/{job.pk}/"
        assert job.status == "succeeded", job.error
        assert table.read_frame(workflow)["score_r"].to_list() == [
            92.0,
            48.0,
            75.0,
            None,
            62.0,
            30.0,
        ]


def test_the_run_form_shows_errors(world, make_workflow, client_for):
    workflow = make_workflow()
    client = client_for(world.alice)
    page = client.get(f"/feedback/{workflow.pk}/plugins/")
    assert b'data-testid="no-plugins"' in page.content
    with account_scope(world.account):
        plugins.plugin_enable(account=world.account, actor=world.alice, key="rounding")
    response = client.post(
        f"/feedback/{workflow.pk}/plugins/", {"plugin": "rounding", "key": "email"}
    )
    assert response.status_code == 400
    assert "Choose at least one input column" in response.content.decode()
    response = client.post(f"/feedback/{workflow.pk}/plugins/", {"plugin": "nope", "key": "email"})
    assert "Choose an enabled plugin" in response.content.decode()


def test_the_run_page_follows_tenancy_and_sharing(world, make_workflow, client):
    workflow = make_workflow()
    url = f"/feedback/{workflow.pk}/plugins/"
    for user in (world.charlie, world.bob):
        client.force_login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"plugin": "rounding"}).status_code == 404
    with account_scope(world.account):
        WorkflowShare.objects.create(
            account=world.account, workflow=workflow, user=world.bob, role="viewer"
        )
    client.force_login(world.bob)
    assert client.get(url).status_code == 403
    with account_scope(world.account):
        WorkflowShare.objects.filter(workflow=workflow).update(role="editor")
    assert client.get(url).status_code == 200


def test_api_lists_plugins_and_runs_one(
    world,
    make_workflow,
    plugin_dir,
    api_as,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    workflow = make_workflow()
    alice = api_as(world.alice)
    with django_assert_max_num_queries(8):
        listing = alice.get("/api/v1/plugins")
    assert listing.status_code == 200
    by_key = {p["key"]: p for p in listing.json()}
    assert by_key["rounding"]["status"] == "disabled"
    assert by_key["broken"]["status"] == "invalid" and by_key["broken"]["errors"]
    bob_view = {p["key"]: p for p in api_as(world.bob).get("/api/v1/plugins").json()}
    assert bob_view["broken"]["errors"] == []  # errors are for admins
    body = {"plugin_key": "rounding", "key": "email", "input_columns": ["attempts"]}
    response = alice.post(
        f"/api/v1/workflows/{workflow.pk}/plugins/run", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "not enabled" in response.json()["detail"]
    with account_scope(world.account):
        plugins.plugin_enable(account=world.account, actor=world.alice, key="rounding")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(
            f"/api/v1/workflows/{workflow.pk}/plugins/run", body, content_type="application/json"
        )
    assert response.status_code == 202, response.content
    with account_scope(world.account):
        job = Job.objects.get(pk=response.json()["job_id"])
        assert job.status == "succeeded", job.error
    for user in (world.charlie, world.bob):
        response = api_as(user).post(
            f"/api/v1/workflows/{workflow.pk}/plugins/run", body, content_type="application/json"
        )
        assert response.status_code == 404
