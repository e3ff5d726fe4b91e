"""Org-unit types, org units and groups through the API."""

from __future__ import annotations

import pytest

from closedloop.api.tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def names(response):
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["items"]]


# ---------------------------------------------------------------- types


def test_it_lists_types(world, api_as):
    body = api_as(world.bob).get("/orgunit-types").json()
    assert body["count"] == 4
    assert [t["name"] for t in body["items"]] == ["Country", "Region", "District", "School"]


def test_admin_creates_a_type_with_sub_types(world, api_as):
    school = world.school_n1.type
    response = api_as(world.alice).post(
        "/orgunit-types", {"name": "Cluster", "depth": 4, "sub_types": [school.pk]}
    )
    assert response.status_code == 201, response.content
    assert response.json()["sub_types"] == [school.pk]


def test_a_duplicate_type_name_is_a_400_on_name(world, api_as):
    assert_error(api_as(world.alice).post("/orgunit-types", {"name": "region"}), 400, "name")


def test_a_sub_type_of_another_account_is_a_400(world, api_as):
    other_type = world.other_root.type
    response = api_as(world.alice).post(
        "/orgunit-types", {"name": "Cluster", "sub_types": [other_type.pk]}
    )
    assert_error(response, 400, "sub_types")


def test_viewer_cannot_create_a_type(world, api_as):
    assert_error(api_as(world.bob).post("/orgunit-types", {"name": "Cluster"}), 403)


def test_outsider_does_not_see_our_types(world, api_as):
    assert [t["name"] for t in api_as(world.charlie).get("/orgunit-types").json()["items"]] == [
        "Country"
    ]


# ---------------------------------------------------------------- list


def test_it_lists_units_by_name(world, api_as):
    assert names(api_as(world.bob).get("/orgunits")) == [
        "Atlantis",
        "North",
        "Northvale",
        "Northvale Primary",
        "South",
        "Southport",
        "Southport Clinic",
    ]


def test_list_items_carry_type_parent_and_path(world, api_as):
    item = api_as(world.bob).get("/orgunits", search="NP1").json()["items"][0]
    w = world
    assert item["name"] == "Northvale Primary"
    assert item["type"] == {"id": w.school_n1.type_id, "name": "School"}
    assert item["parent_id"] == w.district_n1.pk
    assert item["path_ids"] == [w.country.pk, w.region_north.pk, w.district_n1.pk, w.school_n1.pk]
    assert item["depth"] == 4
    assert (item["latitude"], item["longitude"]) == (1.5, 30.1)


def test_search_matches_name_code_and_ref_in_any_case(world, api_as):
    client = api_as(world.alice)
    client.patch(f"/orgunits/{world.school_s1.pk}", {"ref": "DHIS-XYZ"})
    assert names(client.get("/orgunits", search="SOUTHPORT")) == ["Southport", "Southport Clinic"]
    assert names(client.get("/orgunits", search="np1")) == ["Northvale Primary"]
    assert names(client.get("/orgunits", search="dhis-x")) == ["Southport Clinic"]


def test_parent_filter_gives_direct_children(world, api_as):
    client = api_as(world.bob)
    assert names(client.get("/orgunits", parent=world.country.pk)) == ["North", "South"]
    assert names(client.get("/orgunits", parent=world.country.pk, search="nor")) == ["North"]


def test_type_and_status_filters(world, api_as):
    client = api_as(world.alice)
    client.patch(f"/orgunits/{world.school_n1.pk}", {"validation_status": "valid"})
    school_type = world.school_n1.type_id
    assert names(client.get("/orgunits", type=school_type)) == [
        "Northvale Primary",
        "Southport Clinic",
    ]
    assert names(client.get("/orgunits", status="valid")) == ["Northvale Primary"]


def test_pagination_limit_and_offset(world, api_as):
    body = api_as(world.bob).get("/orgunits", limit=2, offset=1).json()
    assert body["count"] == 7
    assert [u["name"] for u in body["items"]] == ["North", "Northvale"]


def test_pagination_past_the_end_is_empty(world, api_as):
    body = api_as(world.bob).get("/orgunits", offset=100).json()
    assert body == {"count": 7, "items": []}


def test_pagination_defaults_to_50(world, api_as, settings):
    from closedloop.api.pagination import DEFAULT_LIMIT

    assert DEFAULT_LIMIT == 50
    schema = api_as(world.bob).client.get("/api/v1/openapi.json").json()
    params = schema["paths"]["/api/v1/orgunits"]["get"]["parameters"]
    limit = next(p for p in params if p["name"] == "limit")
    assert limit["schema"]["default"] == 50


def test_limit_above_the_maximum_is_refused(world, api_as, settings):
    settings.API_MAX_PAGE_SIZE = 3
    client = api_as(world.bob)
    assert client.get("/orgunits", limit=3).status_code == 200
    body = assert_error(client.get("/orgunits", limit=4), 422, "limit")
    assert "at most 3" in body["errors"][0]["message"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "x"}, {"offset": -1}])
def test_bad_pagination_values_are_refused(world, api_as, params):
    field = next(iter(params))
    assert_error(api_as(world.bob).get("/orgunits", **params), 422, field)


def test_unit_list_query_count_does_not_grow(world, api_as, django_assert_max_num_queries):
    client = api_as(world.alice)
    for i in range(20):
        client.post(
            "/orgunits",
            {
                "name": f"School {i}",
                "parent": world.district_n1.pk,
                "type": world.school_n1.type_id,
            },
        )
    # auth (token + membership) + count + page
    with django_assert_max_num_queries(6):
        body = client.get("/orgunits", limit=100).json()
    assert body["count"] == 27


def test_supervisor_lists_only_his_subtree(world, api_as):
    assert names(api_as(world.sam).get("/orgunits")) == ["North", "Northvale", "Northvale Primary"]


def test_supervisor_search_stays_in_his_subtree(world, api_as):
    assert names(api_as(world.sam).get("/orgunits", search="south")) == []
    assert names(api_as(world.sam).get("/orgunits", parent=world.country.pk)) == ["North"]


def test_outsider_never_sees_our_units_in_lists(world, api_as):
    client = api_as(world.charlie)
    assert names(client.get("/orgunits")) == ["Elsewhere"]
    assert names(client.get("/orgunits", parent=world.country.pk)) == []


# ---------------------------------------------------------------- detail


def test_it_shows_a_unit_in_detail(world, api_as):
    body = api_as(world.bob).get(f"/orgunits/{world.school_n1.pk}").json()
    assert body["code"] == "NP1"
    assert body["aliases"] == [] and body["extra"] == {}
    assert body["geometry"] is None
    assert "opening_date" in body and "closing_date" in body


def test_outsider_gets_404_on_our_unit(world, api_as):
    missing = assert_error(api_as(world.charlie).get("/orgunits/999999"), 404)
    ours = assert_error(api_as(world.charlie).get(f"/orgunits/{world.country.pk}"), 404)
    assert ours == missing


def test_supervisor_gets_404_outside_his_subtree(world, api_as):
    client = api_as(world.sam)
    assert client.get(f"/orgunits/{world.school_n1.pk}").status_code == 200
    assert_error(client.get(f"/orgunits/{world.school_s1.pk}"), 404)
    assert_error(client.get(f"/orgunits/{world.country.pk}"), 404)


# ---------------------------------------------------------------- create


def test_admin_creates_a_unit(world, api_as):
    from closedloop.core.models import AuditEntry
    from closedloop.core.tenancy import account_scope

    payload = {
        "name": "Hilltop School",
        "parent": world.district_n1.pk,
        "type": world.school_n1.type_id,
        "code": "HS1",
        "latitude": 1.0,
        "longitude": 30.0,
        "aliases": ["Hilltop"],
        "extra": {"pupils": 120},
        "opening_date": "2020-01-06",
    }
    response = api_as(world.alice).post("/orgunits", payload)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["path_ids"][-2:] == [world.district_n1.pk, body["id"]]
    assert body["depth"] == 4
    assert body["opening_date"] == "2020-01-06"
    assert body["extra"] == {"pupils": 120}
    with account_scope(world.account):
        entry = AuditEntry.objects.get(object_type="registry.orgunit", object_id=str(body["id"]))
    assert entry.actor_id == world.alice.pk


def test_create_with_geometry_stores_it(world, api_as):
    square = {"type": "Polygon", "coordinates": [[[30, 1], [31, 1], [31, 2], [30, 2], [30, 1]]]}
    response = api_as(world.alice).post("/orgunits", {"name": "Zone", "geometry": square})
    assert response.status_code == 201, response.content
    assert response.json()["geometry"]["type"] == "Polygon"


def test_bad_geometry_is_a_400_on_geometry(world, api_as):
    response = api_as(world.alice).post(
        "/orgunits", {"name": "Zone", "geometry": {"type": "Polygon", "coordinates": [[[500, 1]]]}}
    )
    assert_error(response, 400, "geometry")


def test_half_a_point_is_a_400(world, api_as):
    assert_error(
        api_as(world.alice).post("/orgunits", {"name": "Z", "latitude": 1}), 400, "latitude"
    )


def test_blank_name_is_a_400_on_name(world, api_as):
    assert_error(api_as(world.alice).post("/orgunits", {"name": "   "}), 400, "name")


def test_unknown_parent_is_a_400_on_parent(world, api_as):
    assert_error(
        api_as(world.alice).post("/orgunits", {"name": "X", "parent": 999999}), 400, "parent"
    )


def test_parent_of_another_account_is_refused_like_a_missing_one(world, api_as):
    client = api_as(world.alice)
    theirs = assert_error(
        client.post("/orgunits", {"name": "X", "parent": world.other_root.pk}), 400
    )
    missing = assert_error(client.post("/orgunits", {"name": "X", "parent": 999999}), 400)
    assert theirs["detail"].replace(str(world.other_root.pk), "N") == missing["detail"].replace(
        "999999", "N"
    )


def test_unknown_type_is_a_400_on_type(world, api_as):
    response = api_as(world.alice).post(
        "/orgunits", {"name": "X", "type": world.other_root.type_id}
    )
    assert_error(response, 400, "type")


def test_type_not_allowed_under_parent_is_a_400(world, api_as):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        world.region_north.type.sub_types.set([world.district_n1.type])
    response = api_as(world.alice).post(
        "/orgunits", {"name": "X", "parent": world.region_north.pk, "type": world.school_n1.type_id}
    )
    assert_error(response, 400, "type")


def test_viewer_cannot_create_a_unit(world, api_as):
    assert_error(api_as(world.bob).post("/orgunits", {"name": "X"}), 403)


def test_supervisor_creates_inside_his_subtree_only(world, api_as):
    client = api_as(world.sam)
    ok = client.post("/orgunits", {"name": "New school", "parent": world.district_n1.pk})
    assert ok.status_code == 201
    assert_error(
        client.post("/orgunits", {"name": "X", "parent": world.district_s1.pk}), 400, "parent"
    )
    assert_error(client.post("/orgunits", {"name": "X"}), 403)


# ---------------------------------------------------------------- update


def test_admin_updates_a_unit(world, api_as):
    response = api_as(world.alice).patch(
        f"/orgunits/{world.school_n1.pk}",
        {"name": "Northvale Primary School", "aliases": ["NPS"], "closing_date": "2030-07-01"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Northvale Primary School"
    assert body["aliases"] == ["NPS"]
    assert body["code"] == "NP1"  # untouched fields stay


def test_patch_can_clear_the_type(world, api_as):
    body = api_as(world.alice).patch(f"/orgunits/{world.school_n1.pk}", {"type": None}).json()
    assert body["type"] is None


def test_patch_with_a_bad_status_is_a_422(world, api_as):
    response = api_as(world.alice).patch(
        f"/orgunits/{world.school_n1.pk}", {"validation_status": "ok"}
    )
    assert_error(response, 422, "validation_status")


def test_viewer_cannot_update_a_unit(world, api_as):
    assert_error(api_as(world.bob).patch(f"/orgunits/{world.school_n1.pk}", {"name": "X"}), 403)


def test_supervisor_updates_inside_and_gets_404_outside(world, api_as):
    client = api_as(world.sam)
    assert client.patch(f"/orgunits/{world.school_n1.pk}", {"code": "N"}).status_code == 200
    assert_error(client.patch(f"/orgunits/{world.school_s1.pk}", {"code": "S"}), 404)


def test_outsider_gets_404_when_updating_our_unit(world, api_as):
    assert_error(api_as(world.charlie).patch(f"/orgunits/{world.country.pk}", {"name": "X"}), 404)


# ---------------------------------------------------------------- move


def test_admin_moves_a_subtree(world, api_as):
    client = api_as(world.alice)
    response = client.post(
        f"/orgunits/{world.district_n1.pk}/move", {"parent": world.region_south.pk}
    )
    assert response.status_code == 200, response.content
    school = client.get(f"/orgunits/{world.school_n1.pk}").json()
    assert school["path_ids"][:3] == [world.country.pk, world.region_south.pk, world.district_n1.pk]


def test_moving_under_a_descendant_is_a_400_on_parent(world, api_as):
    response = api_as(world.alice).post(
        f"/orgunits/{world.region_north.pk}/move", {"parent": world.school_n1.pk}
    )
    assert_error(response, 400, "parent")


def test_admin_moves_a_unit_to_the_top(world, api_as):
    body = (
        api_as(world.alice).post(f"/orgunits/{world.district_n1.pk}/move", {"parent": None}).json()
    )
    assert body["parent_id"] is None and body["depth"] == 1


def test_move_needs_the_parent_key(world, api_as):
    assert_error(
        api_as(world.alice).post(f"/orgunits/{world.district_n1.pk}/move", {}), 422, "parent"
    )


def test_supervisor_cannot_move_a_unit_outside_his_scope(world, api_as):
    client = api_as(world.sam)
    url = f"/orgunits/{world.school_n1.pk}/move"
    assert_error(client.post(url, {"parent": world.district_s1.pk}), 400, "parent")
    assert_error(client.post(url, {"parent": None}), 403)
    assert_error(
        client.post(f"/orgunits/{world.school_s1.pk}/move", {"parent": world.district_n1.pk}), 404
    )
    assert client.get(f"/orgunits/{world.school_n1.pk}").json()["parent_id"] == world.district_n1.pk


def test_supervisor_moves_inside_his_scope(world, api_as):
    client = api_as(world.sam)
    response = client.post(
        f"/orgunits/{world.school_n1.pk}/move", {"parent": world.region_north.pk}
    )
    assert response.status_code == 200
    assert response.json()["depth"] == 3


def test_viewer_cannot_move(world, api_as):
    url = f"/orgunits/{world.school_n1.pk}/move"
    assert_error(api_as(world.bob).post(url, {"parent": world.region_north.pk}), 403)


# ---------------------------------------------------------------- descendants


def test_it_lists_descendants_in_tree_order(world, api_as):
    client = api_as(world.bob)
    assert names(client.get(f"/orgunits/{world.region_north.pk}/descendants")) == [
        "Northvale",
        "Northvale Primary",
    ]
    assert names(client.get(f"/orgunits/{world.country.pk}/descendants", depth=1)) == [
        "North",
        "South",
    ]
    school_type = world.school_n1.type_id
    assert names(client.get(f"/orgunits/{world.country.pk}/descendants", type=school_type)) == [
        "Northvale Primary",
        "Southport Clinic",
    ]


def test_descendants_are_paginated(world, api_as):
    body = api_as(world.bob).get(f"/orgunits/{world.country.pk}/descendants", limit=2).json()
    assert body["count"] == 6 and len(body["items"]) == 2


def test_supervisor_gets_404_on_descendants_outside_his_scope(world, api_as):
    client = api_as(world.sam)
    assert_error(client.get(f"/orgunits/{world.country.pk}/descendants"), 404)
    assert names(client.get(f"/orgunits/{world.region_north.pk}/descendants")) == [
        "Northvale",
        "Northvale Primary",
    ]


def test_outsider_gets_404_on_descendants(world, api_as):
    assert_error(api_as(world.charlie).get(f"/orgunits/{world.country.pk}/descendants"), 404)


# ---------------------------------------------------------------- groups


def test_admin_creates_and_lists_groups(world, api_as):
    client = api_as(world.alice)
    response = client.post("/groups", {"name": "Rural", "code": "R", "units": [world.school_n1.pk]})
    assert response.status_code == 201, response.content
    assert client.get("/groups").json() == {
        "count": 1,
        "items": [{"id": response.json()["id"], "name": "Rural", "code": "R"}],
    }


def test_duplicate_group_is_a_409(world, api_as):
    client = api_as(world.alice)
    client.post("/groups", {"name": "Rural"})
    assert_error(client.post("/groups", {"name": "rural"}), 409, "name")


def test_group_with_a_unit_out_of_scope_is_a_400(world, api_as):
    response = api_as(world.sam).post("/groups", {"name": "Mixed", "units": [world.school_s1.pk]})
    assert_error(response, 400, "units")


def test_viewer_cannot_create_a_group(world, api_as):
    assert_error(api_as(world.bob).post("/groups", {"name": "Rural"}), 403)


def test_outsider_never_sees_our_groups(world, api_as):
    api_as(world.alice).post("/groups", {"name": "Rural"})
    assert api_as(world.charlie).get("/groups").json() == {"count": 0, "items": []}
