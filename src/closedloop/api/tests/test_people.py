"""People through the API: search, create, change, delete — scoped for supervisors."""

from __future__ import annotations

import pytest

from closedloop.api.tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(world):
    """Ann in North's school, Sue in South's clinic, Nia with no org unit, Ned inactive."""
    from closedloop.core.tenancy import account_scope
    from closedloop.people.services import cohort_create, person_create

    a = world.account
    with account_scope(a):
        grade = cohort_create(account=a, actor=None, name="Grade 5")
        ann = person_create(
            account=a,
            actor=None,
            name="Ann North",
            org_unit=world.school_n1,
            emails=["ann@example.org"],
            phones=["+250788000001"],
            cohorts=[grade],
            external_ids=[("moodle", "u-17")],
        )
        sue = person_create(account=a, actor=None, name="Sue South", org_unit=world.school_s1)
        nia = person_create(account=a, actor=None, name="Nia Nowhere")
        ned = person_create(
            account=a, actor=None, name="Ned North", org_unit=world.district_n1, is_active=False
        )
    return {"ann": ann, "sue": sue, "nia": nia, "ned": ned, "grade": grade}


def names(response):
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["items"]]


def test_it_lists_people_with_their_identifiers(world, people, api_as):
    body = api_as(world.bob).get("/people").json()
    assert body["count"] == 4
    ann = body["items"][0]
    assert ann["name"] == "Ann North"
    assert ann["org_unit"] == {"id": world.school_n1.pk, "name": "Northvale Primary"}
    assert ann["emails"] == ["ann@example.org"]
    assert ann["phones"] == ["tel:+250788000001"]
    assert ann["external_ids"] == [{"system": "moodle", "value": "u-17"}]
    assert ann["cohorts"] == [{"id": people["grade"].pk, "name": "Grade 5"}]


def test_search_matches_names_and_identifier_values(world, people, api_as):
    client = api_as(world.bob)
    assert names(client.get("/people", search="north")) == ["Ann North", "Ned North"]
    assert names(client.get("/people", search="ANN@EXAMPLE")) == ["Ann North"]
    assert names(client.get("/people", search="u-17")) == ["Ann North"]


def test_filters_by_subtree_cohort_and_active(world, people, api_as):
    client = api_as(world.bob)
    assert names(client.get("/people", org_unit=world.region_north.pk)) == [
        "Ann North",
        "Ned North",
    ]
    assert names(client.get("/people", cohort=people["grade"].pk)) == ["Ann North"]
    assert names(client.get("/people", active="false")) == ["Ned North"]
    assert names(client.get("/people", active="true", org_unit=world.region_north.pk)) == [
        "Ann North"
    ]


def test_filter_by_a_unit_of_another_account_is_a_400(world, people, api_as):
    response = api_as(world.alice).get("/people", org_unit=world.other_root.pk)
    assert_error(response, 400, "org_unit")


def test_people_list_query_count_does_not_grow(
    world, people, api_as, django_assert_max_num_queries
):
    from closedloop.core.tenancy import account_scope
    from closedloop.people.services import person_create

    with account_scope(world.account):
        for i in range(15):
            person_create(
                account=world.account,
                actor=None,
                name=f"Kid {i}",
                org_unit=world.school_n1,
                emails=[f"kid{i}@example.org"],
                cohorts=[people["grade"]],
            )
    client = api_as(world.alice)
    client.get("/me")
    # token, membership, scope paths, count, page, identifiers, cohorts
    with django_assert_max_num_queries(7):
        body = client.get("/people", limit=100).json()
    assert body["count"] == 19


def test_supervisor_sees_only_people_in_his_subtree(world, people, api_as):
    client = api_as(world.sam)
    assert names(client.get("/people")) == ["Ann North", "Ned North"]
    assert names(client.get("/people", search="south")) == []


def test_supervisor_gets_404_on_people_outside_his_subtree(world, people, api_as):
    client = api_as(world.sam)
    assert client.get(f"/people/{people['ann'].pk}").status_code == 200
    assert_error(client.get(f"/people/{people['sue'].pk}"), 404)
    assert_error(client.get(f"/people/{people['nia'].pk}"), 404)  # no org unit: not his
    assert_error(client.patch(f"/people/{people['sue'].pk}", {"name": "X"}), 404)
    assert_error(client.delete(f"/people/{people['sue'].pk}"), 404)


def test_outsider_gets_404_and_empty_lists(world, people, api_as):
    client = api_as(world.charlie)
    assert client.get("/people").json() == {"count": 0, "items": []}
    assert_error(client.get(f"/people/{people['ann'].pk}"), 404)
    assert_error(client.patch(f"/people/{people['ann'].pk}", {"name": "X"}), 404)
    assert_error(client.delete(f"/people/{people['ann'].pk}"), 404)


def test_it_shows_one_person(world, people, api_as):
    body = api_as(world.bob).get(f"/people/{people['ann'].pk}").json()
    assert body["id"] == people["ann"].pk and body["is_active"] is True


def test_admin_creates_a_person_with_everything(world, people, api_as):
    payload = {
        "name": "Bea Bright",
        "org_unit": world.school_s1.pk,
        "language": "fr",
        "emails": ["Bea@Example.org"],
        "phones": ["+250 788 000 002"],
        "external_ids": [{"system": "rapidpro", "value": "c-1"}],
        "cohorts": ["grade 5"],
    }
    response = api_as(world.alice).post("/people", payload)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["emails"] == ["bea@example.org"]
    assert body["phones"] == ["tel:+250788000002"]
    assert body["cohorts"] == [{"id": people["grade"].pk, "name": "Grade 5"}]
    assert body["org_unit"]["id"] == world.school_s1.pk


def test_custom_field_values_are_checked(world, api_as):
    from closedloop.core.tenancy import account_scope
    from closedloop.people.services import custom_field_create

    with account_scope(world.account):
        custom_field_create(
            account=world.account, actor=None, key="age", label="Age", type="number"
        )
    client = api_as(world.alice)
    ok = client.post("/people", {"name": "Al", "fields": {"age": "12"}})
    assert ok.json()["fields"] == {"age": 12}
    assert_error(
        client.post("/people", {"name": "Al", "fields": {"age": "old"}}), 400, "fields.age"
    )
    assert_error(client.post("/people", {"name": "Al", "fields": {"shoe": 1}}), 400, "fields.shoe")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "X", "emails": ["not-an-email"]}, "emails"),
        ({"name": "X", "phones": ["12"]}, "phones"),
        ({"name": "X", "cohorts": ["No such cohort"]}, "cohorts"),
        ({"name": "X", "org_unit": 999999}, "org_unit"),
        ({"name": "X", "emails": ["ann@example.org"]}, "emails"),
    ],
)
def test_bad_person_input_is_a_400_on_its_field(world, people, api_as, payload, field):
    assert_error(api_as(world.alice).post("/people", payload), 400, field)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "X", "emails": "a@b.org"}, "emails"),
        ({"name": "X", "org_unit": "n"}, "org_unit"),
    ],
)
def test_malformed_person_input_is_a_422_on_its_field(world, api_as, payload, field):
    assert_error(api_as(world.alice).post("/people", payload), 422, field)


def test_viewer_cannot_write_people(world, people, api_as):
    client = api_as(world.bob)
    assert_error(client.post("/people", {"name": "X"}), 403)
    assert_error(client.patch(f"/people/{people['ann'].pk}", {"name": "X"}), 403)
    assert_error(client.delete(f"/people/{people['ann'].pk}"), 403)


def test_supervisor_creates_people_only_in_his_subtree(world, api_as):
    client = api_as(world.sam)
    assert client.post("/people", {"name": "Ok", "org_unit": world.school_n1.pk}).status_code == 201
    assert_error(
        client.post("/people", {"name": "X", "org_unit": world.school_s1.pk}), 400, "org_unit"
    )
    assert_error(client.post("/people", {"name": "X"}), 403)


def test_supervisor_cannot_move_a_person_out_of_his_subtree(world, people, api_as):
    client = api_as(world.sam)
    url = f"/people/{people['ann'].pk}"
    assert_error(client.patch(url, {"org_unit": world.school_s1.pk}), 400, "org_unit")
    assert_error(client.patch(url, {"org_unit": None}), 403)


def test_patch_changes_only_what_is_sent(world, people, api_as):
    url = f"/people/{people['ann'].pk}"
    body = api_as(world.alice).patch(url, {"phones": [], "language": "ar"}).json()
    assert body["phones"] == []
    assert body["language"] == "ar"
    assert body["emails"] == ["ann@example.org"]
    assert body["name"] == "Ann North"


def test_admin_deletes_a_person(world, people, api_as):
    client = api_as(world.alice)
    response = client.delete(f"/people/{people['nia'].pk}")
    assert response.status_code == 204
    assert_error(client.get(f"/people/{people['nia'].pk}"), 404)
