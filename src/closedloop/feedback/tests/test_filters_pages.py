"""Filter and view pages, the builder widget and its live-count endpoint."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from closedloop.feedback.models import Action, Column, Filter, View, WorkflowShare

LOW = {"condition": "AND", "not": False, "valid": True, "rules": [
    {"id": "score", "field": "score", "type": "double", "input": "number", "operator": "less", "value": "50"}
]}  # fmt: skip
PASSED = {"condition": "AND", "rules": [{"field": "passed", "operator": "equal", "value": True}]}


@pytest.fixture
def wf(make_workflow):
    return make_workflow()


def scoped(world, fn):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        return fn()


def share(world, workflow, user, role):
    scoped(
        world,
        lambda: WorkflowShare.objects.create(
            account=world.account, workflow=workflow, user=user, role=role
        ),
    )


def make_filter(world, wf, name="Low", formula=LOW, count=2):
    return scoped(
        world,
        lambda: Filter.objects.create(
            account=world.account, workflow=wf, name=name, formula=formula, selected_count=count
        ),
    )


def url(name, *args):
    return reverse(f"feedback:{name}", args=args)


def count(client, wf, body):
    return client.post(
        url("filter_count", wf.pk), json.dumps(body), content_type="application/json"
    )


def test_filter_list_shows_readable_rules_and_counts(
    world, wf, client_for, django_assert_max_num_queries
):
    for i in range(5):
        make_filter(world, wf, name=f"Low {i}")
    client = client_for(world.alice)
    with django_assert_max_num_queries(20):
        response = client.get(url("filter_list", wf.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-testid="filter-row"') == 5
    assert "score &lt; “50”" in html
    assert url("filter_create", wf.pk) in html


def test_builder_page_renders_the_widget_with_fields_and_count_url(world, wf, client_for):
    response = client_for(world.alice).get(url("filter_create", wf.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-cl-builder" in html and 'name="formula"' in html
    assert f'data-count-url="{url("filter_count", wf.pk)}"' in html
    assert "feedback/builder.js" in html
    fields = json.loads(
        html.split('id="formula-fields" type="application/json">')[1].split("</script>")[0]
    )
    by_name = {f["name"]: f for f in fields}
    assert by_name["score"]["operators"][:3] == ["equal", "not_equal", "less"]
    assert by_name["passed"]["choices"] == [True, False]
    assert by_name["passed"]["input"] == "select"
    assert "contains" in by_name["name"]["operators"]
    assert "<script>" not in html.replace("<script src=", "")  # no inline code (CSP)


def test_creating_a_filter_through_the_page(world, wf, client_for):
    client = client_for(world.alice)
    response = client.post(
        url("filter_create", wf.pk),
        {"name": "Low", "description": "", "formula": json.dumps(LOW), "version": wf.version},
    )
    assert response.status_code == 302
    item = scoped(world, lambda: Filter.objects.get(workflow=wf))
    assert (item.name, item.selected_count, item.formula) == ("Low", 2, LOW)


def test_a_bad_formula_is_shown_on_the_page_and_nothing_is_saved(world, wf, client_for):
    client = client_for(world.alice)
    bad = {"condition": "AND", "rules": [{"field": "score", "operator": "less", "value": "abc"}]}
    response = client.post(
        url("filter_create", wf.pk),
        {"name": "Low", "formula": json.dumps(bad), "version": wf.version},
    )
    assert response.status_code == 400
    assert "score: &#x27;abc&#x27; is not a number" in response.content.decode()
    response = client.post(url("filter_create", wf.pk), {"name": "Low", "formula": "{not json"})
    assert response.status_code == 400
    assert scoped(world, lambda: Filter.objects.count()) == 0


def test_a_stale_version_shows_the_conflict_notice(world, wf, client_for):
    client = client_for(world.alice)
    stale = wf.version
    client.post(url("filter_create", wf.pk), {"name": "A", "formula": "{}", "version": stale})
    response = client.post(
        url("filter_create", wf.pk), {"name": "B", "formula": "{}", "version": stale}
    )
    assert response.status_code == 200
    assert 'data-testid="conflict"' in response.content.decode()
    assert not scoped(world, lambda: Filter.objects.filter(name="B").exists())


def test_editing_and_deleting_a_filter(world, wf, client_for):
    item = make_filter(world, wf)
    client = client_for(world.alice)
    page = client.get(url("filter_edit", wf.pk, item.pk))
    assert page.status_code == 200 and "Low" in page.content.decode()
    assert "&quot;less&quot;" in page.content.decode()  # the formula in the hidden input
    response = client.post(
        url("filter_edit", wf.pk, item.pk), {"name": "Passed", "formula": json.dumps(PASSED)}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.name, item.selected_count) == ("Passed", 3)
    assert client.post(url("filter_delete", wf.pk, item.pk)).status_code == 302
    assert scoped(world, lambda: Filter.objects.count()) == 0
    assert client.get(url("filter_delete", wf.pk, item.pk)).status_code == 405


def test_the_count_endpoint(world, wf, client_for):
    client = client_for(world.alice)
    assert count(client, wf, {"formula": LOW}).json() == {"count": 2}
    assert count(client, wf, LOW).json() == {"count": 2}  # the formula itself
    assert count(client, wf, {"formula": {}}).json() == {"count": 6}
    bad = count(
        client, wf, {"formula": {"rules": [{"field": "score", "operator": "less", "value": "x"}]}}
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "score: 'x' is not a number", "field": "score"}
    raw = client.post(url("filter_count", wf.pk), "{nope", content_type="application/json")
    assert raw.status_code == 400 and "error" in raw.json()
    # within an action's filter (conditions)
    low = make_filter(world, wf)
    action = scoped(
        world,
        lambda: Action.objects.create(
            account=world.account, workflow=wf, name="Mail", action_type="email", filter=low
        ),
    )
    failed = {"rules": [{"field": "passed", "operator": "equal", "value": "false"}]}
    assert count(client, wf, {"formula": failed}).json() == {"count": 2}
    assert count(client, wf, {"formula": PASSED, "action": action.pk}).json() == {"count": 0}
    assert count(client, wf, {"formula": PASSED, "action": 999999}).status_code == 404
    assert client.get(url("filter_count", wf.pk)).status_code == 405


def test_pages_tenancy_and_sharing(world, wf, client_for):
    item = make_filter(world, wf)
    view = scoped(world, lambda: View.objects.create(account=world.account, workflow=wf, name="V"))
    gets = [
        url("filter_list", wf.pk),
        url("view_list", wf.pk),
        url("filter_create", wf.pk),
        url("filter_edit", wf.pk, item.pk),
        url("view_create", wf.pk),
        url("view_edit", wf.pk, view.pk),
    ]
    for outsider in (world.charlie, world.bob):
        client = client_for(outsider)
        for page in gets:
            assert client.get(page).status_code == 404, page
        assert count(client, wf, {"formula": LOW}).status_code == 404
        assert client.post(url("filter_delete", wf.pk, item.pk)).status_code == 404
    share(world, wf, world.bob, "viewer")
    client = client_for(world.bob)
    listed = client.get(url("filter_list", wf.pk))
    assert listed.status_code == 200
    assert url("filter_create", wf.pk) not in listed.content.decode()
    assert client.get(url("view_list", wf.pk)).status_code == 200
    assert count(client, wf, {"formula": LOW}).json() == {"count": 2}
    for page in gets[2:]:
        assert client.get(page).status_code == 403, page
    assert client.post(url("filter_delete", wf.pk, item.pk)).status_code == 403
    assert client.post(url("view_delete", wf.pk, view.pk)).status_code == 403
    assert scoped(world, lambda: (Filter.objects.count(), View.objects.count())) == (1, 1)
    share(world, wf, world.sam, "editor")
    sam = client_for(world.sam)
    assert sam.get(url("filter_create", wf.pk)).status_code == 200
    assert sam.post(url("filter_delete", wf.pk, item.pk)).status_code == 302


def test_view_pages(world, wf, client_for, django_assert_max_num_queries):
    item = make_filter(world, wf)
    columns = scoped(
        world, lambda: dict(Column.objects.filter(workflow=wf).values_list("name", "pk"))
    )
    client = client_for(world.alice)
    form = client.get(url("view_create", wf.pk))
    assert form.status_code == 200 and form.content.decode().count('name="columns"') == 6
    response = client.post(
        url("view_create", wf.pk),
        {"name": "Scores", "columns": [columns["score"], columns["email"]], "filter": item.pk},
    )
    assert response.status_code == 302
    view = scoped(world, lambda: View.objects.get(workflow=wf))
    assert view.column_ids == [columns["email"], columns["score"]]  # table order
    assert view.filter_id == item.pk
    with django_assert_max_num_queries(20):
        listed = client.get(url("view_list", wf.pk))
    html = listed.content.decode()
    assert 'data-testid="view-row"' in html and "Scores" in html
    bad = client.post(url("view_create", wf.pk), {"name": "Scores", "columns": [columns["email"]]})
    assert bad.status_code == 400 and "already exists" in bad.content.decode()
    bad = client.post(url("view_create", wf.pk), {"name": "X", "columns": [999999]})
    assert bad.status_code == 400
    edited = client.post(
        url("view_edit", wf.pk, view.pk),
        {"name": "Names", "columns": [columns["name"]], "filter": ""},
    )
    assert edited.status_code == 302
    view.refresh_from_db()
    assert (view.name, view.column_ids, view.filter_id) == ("Names", [columns["name"]], None)
    assert client.post(url("view_delete", wf.pk, view.pk)).status_code == 302
    assert scoped(world, lambda: View.objects.count()) == 0
