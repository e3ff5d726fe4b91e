"""Workflow pages: list, create, settings (rename, attributes, sharing, clone, flush,
delete), star and presence — with the owner / editor / viewer / outsider rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.models import Workflow, WorkflowLog, WorkflowShare, WorkflowStar
from closedloop.feedback.tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(shared_course):
    return shared_course


def _reload(world, workflow):
    with account_scope(world.account):
        return Workflow.objects.get(pk=workflow.pk)


# --- list ------------------------------------------------------------------------------


def test_the_list_shows_starred_workflows_first_with_size_owner_and_shared_badge(
    world, course, make_workflow, client_for
):
    other = make_workflow(name="Another course", owner=world.sam)
    with account_scope(world.account):
        services.workflow_star(workflow=other, user=world.alice, starred=True)
    html = client_for(world.alice).get(reverse("feedback:workflow_list")).content.decode()
    assert html.index("Another course") < html.index(">Course<")
    assert "6 rows × 6 columns" in html
    assert "Sam Supervisor" in html
    # Bob sees only what was shared with him, with the badge
    html = client_for(world.bob).get(reverse("feedback:workflow_list")).content.decode()
    assert ">Course<" in html and "Another course" not in html
    assert 'data-testid="shared-badge"' in html and "read only" in html
    assert 'data-testid="workflow-create"' not in html  # viewers cannot create


def test_the_list_searches_by_name_and_serves_the_htmx_fragment(world, course, client_for):
    client = client_for(world.alice)
    html = client.get(reverse("feedback:workflow_list"), {"q": "nothing like it"}).content.decode()
    assert "No workflow matches" in html
    fragment = client.get(
        reverse("feedback:workflow_list"),
        {"q": "cour"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="workflow-results",
    ).content.decode()
    assert ">Course<" in fragment and '<nav class="navbar' not in fragment


def test_the_empty_list_explains_workflows_and_offers_to_create_one(world, client_for):
    html = client_for(world.alice).get(reverse("feedback:workflow_list")).content.decode()
    assert "No workflows yet" in html and "personalized messages" in html
    assert reverse("feedback:workflow_create") in html


def test_the_list_query_count_does_not_grow_with_workflows(
    world, make_workflow, client_for, django_assert_max_num_queries
):
    for n in range(8):
        make_workflow(name=f"Course {n}")
    client = client_for(world.alice)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("feedback:workflow_list"))
    assert response.content.decode().count('data-testid="workflow-card"') == 8


def test_charlie_sees_no_workflow_of_another_account(world, course, client_for):
    html = client_for(world.charlie).get(reverse("feedback:workflow_list")).content.decode()
    assert "Course" not in html


# --- create ----------------------------------------------------------------------------


def test_creating_a_workflow_opens_its_empty_table(world, client_for):
    client = client_for(world.sam)
    response = client.post(
        reverse("feedback:workflow_create"), {"name": "Biology 101", "description": "Term 1"}
    )
    with account_scope(world.account):
        workflow = Workflow.objects.get(name="Biology 101")
    assert response.status_code == 302
    assert response.url == reverse("feedback:table", args=[workflow.pk])
    html = client.get(response.url).content.decode()
    assert 'data-testid="table-empty"' in html and "No data yet" in html


def test_creating_a_workflow_with_a_taken_name_says_so(world, course, client_for):
    response = client_for(world.alice).post(reverse("feedback:workflow_create"), {"name": "Course"})
    assert response.status_code == 200
    assert "already a workflow named" in response.content.decode()


def test_a_viewer_cannot_create_workflows(world, client_for):
    client = client_for(world.bob)
    assert client.get(reverse("feedback:workflow_create")).status_code == 403
    assert client.post(reverse("feedback:workflow_create"), {"name": "X"}).status_code == 403


# --- settings: who may see and do what ---------------------------------------------------


def test_settings_render_for_owner_editor_and_viewer_with_their_controls(world, course, client_for):
    url = reverse("feedback:workflow_settings", args=[course.pk])
    owner = client_for(world.alice).get(url).content.decode()
    assert 'data-testid="workflow-update-form"' in owner and 'data-testid="delete-form"' in owner
    assert 'data-testid="share-form"' in owner
    editor = client_for(world.sam).get(url).content.decode()
    assert 'data-testid="attribute-form"' in editor and 'data-testid="flush"' in editor
    assert 'data-testid="delete-form"' not in editor and 'data-testid="share-form"' not in editor
    viewer = client_for(world.bob).get(url).content.decode()
    for marker in ("attribute-form", "flush", "delete-form", "share-form", "workflow-update-form"):
        assert f'data-testid="{marker}"' not in viewer


def test_outsiders_get_404_on_every_workflow_page(world, course, make_workflow, client_for):
    private = make_workflow(name="Private")
    pages = ["workflow_settings", "table", "stats", "log_list", "workflow_detail"]
    charlie = login(world.charlie)
    for name in pages:
        assert charlie.get(reverse(f"feedback:{name}", args=[course.pk])).status_code == 404
    bob = login(world.bob)
    for name in pages:
        assert bob.get(reverse(f"feedback:{name}", args=[private.pk])).status_code == 404
    posts = ["workflow_settings", "workflow_flush", "workflow_delete", "workflow_star"]
    for name in posts:
        assert bob.post(reverse(f"feedback:{name}", args=[private.pk])).status_code == 404
        assert charlie.post(reverse(f"feedback:{name}", args=[course.pk])).status_code == 404


def test_viewers_and_editors_cannot_do_what_their_role_forbids(world, course, client_for):
    bob = login(world.bob)
    for name in ("workflow_settings", "workflow_attribute_set", "workflow_flush", "workflow_share"):
        response = bob.post(reverse(f"feedback:{name}", args=[course.pk]), {"name": "x"})
        assert response.status_code == 403, name
    sam = client_for(world.sam)
    for name in ("workflow_settings", "workflow_share", "workflow_delete"):
        response = sam.post(reverse(f"feedback:{name}", args=[course.pk]), {"name": "x"})
        assert response.status_code == 403, name
    assert _reload(world, course).name == "Course" and _reload(world, course).nrows == 6


# --- settings: the changes -------------------------------------------------------------


def test_the_owner_renames_and_describes_the_workflow(world, course, client_for):
    client = client_for(world.alice)
    response = client.post(
        reverse("feedback:workflow_settings", args=[course.pk]),
        {"name": "Course 2024", "description": "Spring term", "version": course.version},
    )
    assert response.status_code == 302
    workflow = _reload(world, course)
    assert (workflow.name, workflow.description) == ("Course 2024", "Spring term")


def test_a_stale_form_reports_the_conflict_and_keeps_the_input(world, course, client_for):
    stale = course.version
    with account_scope(world.account):
        services.workflow_update(workflow=course, actor=world.sam, description="Sam was here")
    response = client_for(world.alice).post(
        reverse("feedback:workflow_settings", args=[course.pk]),
        {"name": "My new name", "description": "mine", "version": stale},
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert 'data-testid="conflict"' in html and "changed by someone else" in html
    assert 'value="My new name"' in html
    assert _reload(world, course).name == "Course"


def test_attributes_are_set_and_removed_by_editors(world, course, client_for):
    client = client_for(world.sam)
    url = reverse("feedback:workflow_attribute_set", args=[course.pk])
    assert client.post(url, {"name": "course code", "value": "BIO-101"}).status_code == 302
    assert _reload(world, course).attributes == {"course code": "BIO-101"}
    # a column name cannot be an attribute
    response = client.post(url, {"name": "email", "value": "x"})
    assert response.status_code == 400 and "column name" in response.content.decode()
    delete = reverse("feedback:workflow_attribute_delete", args=[course.pk])
    assert client.post(delete, {"name": "course code"}).status_code == 302
    assert _reload(world, course).attributes == {}


def test_sharing_adds_and_removes_people(world, make_workflow, client_for):
    workflow = make_workflow(name="Chemistry")
    client = client_for(world.alice)
    url = reverse("feedback:workflow_share", args=[workflow.pk])
    assert client.post(url, {"email": world.bob.email, "role": "viewer"}).status_code == 302
    with account_scope(world.account):
        assert WorkflowShare.objects.get(workflow=workflow).role == "viewer"
    response = client.post(url, {"email": world.charlie.email, "role": "editor"})
    assert (
        response.status_code == 400 and "not a member of this account" in response.content.decode()
    )
    remove = reverse("feedback:workflow_unshare", args=[workflow.pk, world.bob.pk])
    assert client.post(remove).status_code == 302
    with account_scope(world.account):
        assert not WorkflowShare.objects.filter(workflow=workflow).exists()
    assert (
        client_for(world.bob).get(reverse("feedback:table", args=[workflow.pk])).status_code == 404
    )


def test_cloning_copies_the_table_under_a_new_name(world, course, client_for):
    response = client_for(world.sam).post(
        reverse("feedback:workflow_clone", args=[course.pk]), {"name": "Course copy"}
    )
    with account_scope(world.account):
        copy = Workflow.objects.get(name="Course copy")
    assert response.url == reverse("feedback:table", args=[copy.pk])
    assert (copy.nrows, copy.ncols, copy.owner_id) == (6, 6, world.sam.pk)


def test_flushing_empties_the_table(world, course, client_for):
    response = client_for(world.sam).post(reverse("feedback:workflow_flush", args=[course.pk]))
    assert response.status_code == 302
    assert _reload(world, course).nrows == 0


def test_deleting_needs_the_exact_name(world, course, client_for):
    client = client_for(world.alice)
    url = reverse("feedback:workflow_delete", args=[course.pk])
    response = client.post(url, {"confirm_name": "course"})
    assert response.status_code == 400 and "does not match" in response.content.decode()
    assert _reload(world, course)
    assert client.post(url, {"confirm_name": "Course"}).url == reverse("feedback:workflow_list")
    with account_scope(world.account):
        assert not Workflow.objects.filter(pk=course.pk).exists()
        assert WorkflowLog.objects.filter(name="workflow_delete").exists()


# --- star and presence -----------------------------------------------------------------


def test_star_toggle_answers_htmx_with_the_new_button(world, course, client_for):
    client = client_for(world.bob)
    url = reverse("feedback:workflow_star", args=[course.pk])
    html = client.post(url, {"starred": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "bi-star-fill" in html and 'aria-pressed="true"' in html
    with account_scope(world.account):
        assert WorkflowStar.objects.filter(workflow=course, user=world.bob).exists()
    client.post(url, {"starred": "0"}, HTTP_HX_REQUEST="true")
    with account_scope(world.account):
        assert not WorkflowStar.objects.filter(workflow=course, user=world.bob).exists()


def test_presence_lists_the_others_who_have_it_open(world, course, client_for):
    url = reverse("feedback:workflow_presence", args=[course.pk])
    assert "Also open" not in client_for(world.sam).post(url).content.decode()
    html = client_for(world.alice).post(url).content.decode()
    assert "Also open:" in html and "Sam Supervisor" in html
    page = client_for(world.alice).get(reverse("feedback:table", args=[course.pk])).content.decode()
    assert 'hx-trigger="load, every 20s"' in page
