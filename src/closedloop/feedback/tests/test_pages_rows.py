"""Row pages (add, edit, delete by key) and column pages (add, random, formula, edit,
rename, type, clone, delete, move): happy paths, bad input and roles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import table
from closedloop.feedback.models import Column, Workflow
from closedloop.feedback.tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(shared_course):
    return shared_course


def columns(world, workflow) -> dict[str, Column]:
    with account_scope(world.account):
        return {c.name: c for c in Column.objects.filter(workflow=workflow)}


def field(world, workflow, name: str) -> str:
    return f"col_{columns(world, workflow)[name].pk}"


def rows(world, workflow) -> dict[str, dict]:
    with account_scope(world.account):
        wf = Workflow.objects.get(pk=workflow.pk)
        frame = table.read_frame(wf)
    return {r["email"]: r for r in frame.to_dicts()}


def row_post(world, workflow, **values) -> dict[str, str]:
    data = {field(world, workflow, name): value for name, value in values.items()}
    with account_scope(world.account):
        data["version"] = str(Workflow.objects.get(pk=workflow.pk).version)
    return data


# --- rows ------------------------------------------------------------------------------


def test_the_add_row_form_has_typed_inputs(world, course, client_for):
    html = client_for(world.sam).get(reverse("feedback:row_add", args=[course.pk])).content.decode()
    ids = columns(world, course)
    assert f'name="col_{ids["attempts"].pk}" step="1"' in html or 'step="1"' in html
    assert 'type="datetime-local"' in html
    assert '<option value="true">true</option>' in html  # boolean select


def test_adding_a_row(world, course, client_for):
    data = row_post(
        world,
        course,
        email="gus@example.org",
        name="Gus",
        score="55.5",
        attempts="2",
        passed="true",
        submitted="2024-03-07T10:30",
    )
    response = client_for(world.sam).post(reverse("feedback:row_add", args=[course.pk]), data)
    assert response.status_code == 302
    gus = rows(world, course)["gus@example.org"]
    assert (gus["score"], gus["attempts"], gus["passed"]) == (55.5, 2, True)
    assert gus["submitted"].isoformat().startswith("2024-03-07")


def test_a_wrong_type_names_the_column_and_adds_nothing(world, course, client_for):
    data = row_post(world, course, email="gus@example.org", attempts="lots", score="x")
    response = client_for(world.sam).post(reverse("feedback:row_add", args=[course.pk]), data)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-column="attempts"' in html and "Column “attempts”" in html
    assert 'data-column="score"' in html
    assert 'value="gus@example.org"' in html  # the input is kept
    assert "gus@example.org" not in rows(world, course)


def test_a_duplicate_key_is_refused(world, course, client_for):
    data = row_post(world, course, email="ana@example.org", name="Another Ana")
    response = client_for(world.alice).post(reverse("feedback:row_add", args=[course.pk]), data)
    assert response.status_code == 400
    assert "already has the value" in response.content.decode()
    assert rows(world, course)["ana@example.org"]["name"] == "Ana"


def test_editing_a_row_by_its_key(world, course, client_for):
    client = client_for(world.sam)
    url = reverse("feedback:row_edit", args=[course.pk])
    form = client.get(url, {"key": "email", "value": "ben@example.org"}).content.decode()
    assert 'value="Ben"' in form and 'value="48.0"' in form
    data = row_post(
        world,
        course,
        email="ben@example.org",
        name="Benjamin",
        score="50",
        attempts="3",
        passed="false",
        submitted="",
    )
    data.update({"key": "email", "value": "ben@example.org"})
    assert client.post(url, data).status_code == 302
    ben = rows(world, course)["ben@example.org"]
    assert (ben["name"], ben["score"], ben["submitted"]) == ("Benjamin", 50.0, None)


def test_a_bad_edit_changes_nothing(world, course, client_for):
    data = row_post(world, course, email="ben@example.org", attempts="3.5", passed="maybe")
    data.update({"key": "email", "value": "ben@example.org"})
    response = client_for(world.sam).post(reverse("feedback:row_edit", args=[course.pk]), data)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-column="attempts"' in html and 'data-column="passed"' in html
    assert rows(world, course)["ben@example.org"]["attempts"] == 3
    assert rows(world, course)["ben@example.org"]["name"] == "Ben"


def test_a_stale_row_form_reports_the_conflict(world, course, client_for):
    data = row_post(world, course, email="zed@example.org")
    data["version"] = "1"
    response = client_for(world.sam).post(reverse("feedback:row_add", args=[course.pk]), data)
    assert response.status_code == 409 and 'data-testid="conflict"' in response.content.decode()
    assert "zed@example.org" not in rows(world, course)


def test_deleting_a_row(world, course, client_for):
    response = client_for(world.sam).post(
        reverse("feedback:row_delete", args=[course.pk]),
        {"key": "email", "value": "dan@example.org"},
    )
    assert response.status_code == 302
    assert "dan@example.org" not in rows(world, course) and len(rows(world, course)) == 5


def test_an_unknown_key_is_404(world, course, client_for):
    url = reverse("feedback:row_edit", args=[course.pk])
    client = client_for(world.alice)
    assert client.get(url, {"key": "email", "value": "nobody@example.org"}).status_code == 404
    assert client.get(url, {"key": "name", "value": "Ana"}).status_code == 404  # not a key


def test_viewers_see_the_row_read_only_and_cannot_change_it(world, course):
    bob = login(world.bob)
    url = reverse("feedback:row_edit", args=[course.pk])
    html = bob.get(url, {"key": "email", "value": "ana@example.org"}).content.decode()
    assert "disabled" in html and 'data-testid="row-save"' not in html
    assert 'data-testid="row-delete"' not in html
    data = row_post(world, course, email="ana@example.org", name="Hacked")
    data.update({"key": "email", "value": "ana@example.org"})
    assert bob.post(url, data).status_code == 403
    assert bob.post(reverse("feedback:row_delete", args=[course.pk]), data).status_code == 403
    assert (
        login(world.charlie).get(url, {"key": "email", "value": "ana@example.org"}).status_code
        == 404
    )
    assert rows(world, course)["ana@example.org"]["name"] == "Ana"


# --- columns ---------------------------------------------------------------------------


def _version(world, workflow) -> str:
    with account_scope(world.account):
        return str(Workflow.objects.get(pk=workflow.pk).version)


def test_adding_a_column_with_an_initial_value(world, course, client_for):
    response = client_for(world.sam).post(
        reverse("feedback:column_add", args=[course.pk]),
        {
            "kind": "plain",
            "name": "tutor group",
            "data_type": "integer",
            "initial_value": "3",
            "version": _version(world, course),
        },
    )
    assert response.status_code == 302
    assert {r["tutor group"] for r in rows(world, course).values()} == {3}


def test_a_bad_initial_value_names_the_column_and_adds_nothing(world, course, client_for):
    response = client_for(world.sam).post(
        reverse("feedback:column_add", args=[course.pk]),
        {
            "kind": "plain",
            "name": "tutor group",
            "data_type": "integer",
            "initial_value": "three",
            "version": _version(world, course),
        },
    )
    assert response.status_code == 400 and "tutor group" in response.content.decode()
    assert "tutor group" not in columns(world, course)


def test_random_and_formula_columns(world, course, client_for):
    client = client_for(world.sam)
    url = reverse("feedback:column_add", args=[course.pk])
    response = client.post(
        url,
        {
            "kind": "random",
            "name": "variant",
            "values": "A, B",
            "seed": "4",
            "version": _version(world, course),
        },
    )
    assert response.status_code == 302
    assert {r["variant"] for r in rows(world, course).values()} == {"A", "B"}
    response = client.post(
        url,
        {
            "kind": "formula",
            "name": "total",
            "op": "sum",
            "inputs": ["score", "attempts"],
            "version": _version(world, course),
        },
    )
    assert response.status_code == 302
    assert rows(world, course)["ana@example.org"]["total"] == 92.5
    response = client.post(
        url, {"kind": "random", "name": "v2", "version": _version(world, course)}
    )
    assert response.status_code == 400 and "Give the values" in response.content.decode()


def test_editing_renaming_and_retyping_a_column(world, course, client_for):
    client = client_for(world.sam)
    attempts = columns(world, course)["attempts"]
    args = [course.pk, attempts.pk]
    html = client.get(reverse("feedback:column_edit", args=args)).content.decode()
    assert 'data-testid="column-rename-form"' in html
    response = client.post(
        reverse("feedback:column_edit", args=args),
        {
            "description": "Quiz attempts",
            "categories": "0-4",
            "in_viz": "on",
            "version": _version(world, course),
        },
    )
    assert response.status_code == 302
    assert columns(world, course)["attempts"].categories == [0, 1, 2, 3, 4]
    bad = client.post(
        reverse("feedback:column_edit", args=args),
        {"categories": "1, 2", "version": _version(world, course)},
    )
    assert bad.status_code == 400  # 0, 3 and 4 are in the data
    response = client.post(
        reverse("feedback:column_rename", args=args),
        {"new_name": "tries", "version": _version(world, course)},
    )
    assert response.status_code == 302 and "tries" in columns(world, course)
    response = client.post(
        reverse("feedback:column_change_type", args=[course.pk, columns(world, course)["name"].pk]),
        {"data_type": "integer", "version": _version(world, course)},
    )
    assert response.status_code == 400  # "Ana" is no number
    assert columns(world, course)["name"].data_type == "string"


def test_cloning_moving_and_deleting_a_column(world, course, client_for):
    client = client_for(world.alice)
    score = columns(world, course)["score"]
    response = client.post(
        reverse("feedback:column_clone", args=[course.pk, score.pk]),
        {"name": "score copy", "version": _version(world, course)},
    )
    assert response.status_code == 302
    assert rows(world, course)["ana@example.org"]["score copy"] == 91.5
    client.post(
        reverse("feedback:column_move", args=[course.pk, score.pk]),
        {"direction": "left", "version": _version(world, course)},
    )
    with account_scope(world.account):
        order = list(
            Column.objects.filter(workflow=course)
            .order_by("position")
            .values_list("name", flat=True)
        )
    assert order[:3] == ["email", "score", "name"]
    response = client.post(
        reverse("feedback:column_delete", args=[course.pk, columns(world, course)["email"].pk]),
        {"version": _version(world, course)},
    )
    assert response.status_code == 400 and "only key" in response.content.decode()
    response = client.post(
        reverse(
            "feedback:column_delete", args=[course.pk, columns(world, course)["score copy"].pk]
        ),
        {"version": _version(world, course)},
    )
    assert response.status_code == 302 and "score copy" not in columns(world, course)


def test_column_pages_are_for_editors_only(world, course, make_workflow):
    score = columns(world, course)["score"]
    bob = login(world.bob)
    assert bob.get(reverse("feedback:column_edit", args=[course.pk, score.pk])).status_code == 403
    for name in ("column_rename", "column_delete", "column_move", "column_clone"):
        url = reverse(f"feedback:{name}", args=[course.pk, score.pk])
        assert bob.post(url, {"new_name": "x", "name": "x"}).status_code == 403, name
        assert login(world.charlie).post(url).status_code == 404
    private = make_workflow(name="Private")
    other = columns(world, private)["score"]
    assert bob.get(reverse("feedback:column_edit", args=[private.pk, other.pk])).status_code == 404
    # a column of another workflow through this one's URL
    alice = login(world.alice)
    assert alice.get(reverse("feedback:column_edit", args=[course.pk, other.pk])).status_code == 404
    assert "score" in columns(world, course)
