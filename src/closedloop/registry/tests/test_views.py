"""Registry pages: tree, children, search, detail, create / edit / move / delete, export."""

from __future__ import annotations

import pytest
from django.urls import reverse

from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope
from closedloop.core.testing.factories import make_person, make_unit
from closedloop.jobs.models import Job
from closedloop.registry.models import OrgUnit

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"registry:{name}", args=args)


def htmx_get(client, path, target=""):
    headers = {"HTTP_HX_REQUEST": "true"}
    if target:
        headers["HTTP_HX_TARGET"] = target
    return client.get(path, **headers)


def reload(unit):
    with account_scope(unit.account_id):
        return OrgUnit.objects.get(pk=unit.pk)


# ---------------------------------------------------------------- tree


def test_it_shows_the_roots_with_their_child_counts(world, client_for):
    response = client_for(world.alice).get(url("tree"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="tree-node"' in html
    assert "Atlantis" in html
    assert "2 children" in html
    assert "Elsewhere" not in html
    assert 'data-testid="orgunit-search"' in html


def test_a_supervisor_sees_only_his_subtree_at_the_top_of_the_tree(world, client_for):
    html = client_for(world.sam).get(url("tree")).content.decode()
    assert "North" in html
    assert "Atlantis" not in html
    assert "South" not in html
    assert "New top-level unit" not in html


def test_a_viewer_sees_no_edit_buttons_on_the_tree(world, client_for):
    html = client_for(world.bob).get(url("tree")).content.decode()
    assert "Atlantis" in html
    assert 'href="/registry/import/"' not in html


def test_the_tree_shows_an_empty_state_without_units(world, client_for):
    from closedloop.accounts.models import Role
    from closedloop.core.testing.factories import AccountFactory, MembershipFactory, UserFactory

    empty = AccountFactory(name="Empty", slug="empty")
    dora = UserFactory(email="dora@example.org")
    MembershipFactory(account=empty, user=dora, role=Role.ADMIN)
    response = client_for(dora).get(url("tree"))
    assert response.status_code == 200
    assert 'data-testid="tree-empty"' in response.content.decode()


def test_anonymous_users_are_sent_to_the_login_page(world, client):
    response = client.get(url("tree"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_children_are_loaded_as_a_partial_for_htmx(world, client_for):
    response = htmx_get(client_for(world.alice), url("children", world.country.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert html.count('data-testid="tree-node"') == 2
    assert "North" in html and "South" in html
    assert "Region" in html


def test_children_without_htmx_redirect_to_the_detail_page(world, client_for):
    response = client_for(world.alice).get(url("children", world.country.pk))
    assert response.status_code == 302
    assert response["Location"] == url("detail", world.country.pk)


def test_children_query_count_does_not_grow_with_the_number_of_children(
    world, client_for, django_assert_max_num_queries
):
    with account_scope(world.account):
        for i in range(30):
            make_unit(world.account, f"District {i}", world.region_north)
    client = client_for(world.alice)
    with django_assert_max_num_queries(8):
        response = htmx_get(client, url("children", world.region_north.pk))
    assert response.content.decode().count('data-testid="tree-node"') == 31


def test_the_supervisor_gets_404_for_children_outside_his_subtree(world, client_for):
    client = client_for(world.sam)
    assert htmx_get(client, url("children", world.region_south.pk)).status_code == 404
    assert htmx_get(client, url("children", world.country.pk)).status_code == 404
    assert htmx_get(client, url("children", world.region_north.pk)).status_code == 200


def test_outsider_gets_404_for_children(world, client_for):
    response = htmx_get(client_for(world.charlie), url("children", world.country.pk))
    assert response.status_code == 404


# ---------------------------------------------------------------- search


def test_search_matches_name_code_and_ref_case_insensitively(world, client_for):
    with account_scope(world.account):
        make_unit(world.account, "Hilltop", world.district_n1, ref="EXT-777")
    client = client_for(world.alice)
    html = client.get(url("search"), {"q": "northvale prim"}).content.decode()
    assert "Northvale Primary" in html
    assert (
        client.get(url("search"), {"q": "sc1"}).content.decode().count('data-testid="search-hit"')
        == 1
    )
    assert "Hilltop" in client.get(url("search"), {"q": "ext-77"}).content.decode()


def test_search_shows_the_path_of_each_hit(world, client_for):
    html = client_for(world.alice).get(url("search"), {"q": "Northvale Primary"}).content.decode()
    assert "Atlantis › North › Northvale" in html


def test_search_filters_by_type_and_status(world, client_for):
    client = client_for(world.alice)
    school_type = world.school_n1.type_id
    html = client.get(url("search"), {"type": school_type}).content.decode()
    assert html.count('data-testid="search-hit"') == 2
    html = client.get(url("search"), {"q": "north", "type": school_type}).content.decode()
    assert html.count('data-testid="search-hit"') == 1
    html = client.get(url("search"), {"status": "valid"}).content.decode()
    assert 'data-testid="search-empty"' in html


def test_search_with_nothing_asked_shows_a_prompt(world, client_for):
    response = client_for(world.alice).get(url("search"))
    assert response.status_code == 200
    assert 'data-testid="search-hit"' not in response.content.decode()


def test_search_ignores_an_unknown_type_instead_of_failing(world, client_for):
    response = client_for(world.alice).get(url("search"), {"type": "999999", "q": "north"})
    assert response.status_code == 200


def test_search_for_htmx_returns_only_the_results(world, client_for):
    response = htmx_get(
        client_for(world.alice), url("search") + "?q=north", target="search-results"
    )
    html = response.content.decode()
    assert "<html" not in html
    assert 'data-testid="search-hit"' in html


def test_search_hides_what_the_supervisor_may_not_see(world, client_for):
    html = client_for(world.sam).get(url("search"), {"q": "o"}).content.decode()
    assert "Northvale Primary" in html
    assert "Southport" not in html
    # the path stops at his scope: the country above it is not named
    assert "Atlantis" not in html


def test_search_outsider_finds_nothing_of_another_account(world, client_for):
    html = client_for(world.charlie).get(url("search"), {"q": "north"}).content.decode()
    assert 'data-testid="search-hit"' not in html


def test_search_is_paginated_with_a_bounded_number_of_queries(
    world, client_for, django_assert_max_num_queries
):
    with account_scope(world.account):
        for i in range(60):
            make_unit(world.account, f"Kiosk {i:02d}", world.district_n1)
    client = client_for(world.alice)
    with django_assert_max_num_queries(10):
        response = client.get(url("search"), {"q": "kiosk"})
    html = response.content.decode()
    assert html.count('data-testid="search-hit"') == 50
    assert "60 units found" in html
    page2 = client.get(url("search"), {"q": "kiosk", "page": 2}).content.decode()
    assert page2.count('data-testid="search-hit"') == 10


# ---------------------------------------------------------------- detail


def test_detail_shows_breadcrumbs_children_counts_and_history(world, client_for):
    with account_scope(world.account):
        make_person(world.account, "Pat", world.region_north)
    response = client_for(world.alice).get(url("detail", world.region_north.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert url("detail", world.country.pk) in html  # breadcrumb to the country
    assert "Northvale" in html
    assert 'data-testid="type-counts"' in html
    assert "District" in html and "School" in html
    assert 'data-testid="people-count"' in html
    assert f'?org_unit={world.region_north.pk}">1</a>' in html
    assert "Created" in html  # the audit entry of its creation
    assert 'data-testid="edit-unit"' in html


def test_detail_of_a_unit_with_a_point_has_a_map(world, client_for):
    html = client_for(world.alice).get(url("detail", world.school_n1.pk)).content.decode()
    assert 'data-testid="orgunit-map"' in html
    assert '"coordinates": [30.1, 1.5]' in html


def test_detail_is_read_only_for_a_viewer(world, client_for):
    html = client_for(world.bob).get(url("detail", world.region_north.pk)).content.decode()
    assert "Northvale" in html
    assert 'data-testid="edit-unit"' not in html
    assert 'data-testid="delete-unit"' not in html


def test_detail_for_the_supervisor_inside_and_outside_his_subtree(world, client_for):
    client = client_for(world.sam)
    assert client.get(url("detail", world.school_n1.pk)).status_code == 200
    assert client.get(url("detail", world.school_s1.pk)).status_code == 404
    assert client.get(url("detail", world.country.pk)).status_code == 404


def test_outsider_gets_404_on_the_detail_page(world, client_for):
    client = client_for(world.charlie)
    assert client.get(url("detail", world.country.pk)).status_code == 404
    assert client.get(url("detail", 99999999)).status_code == 404


# ---------------------------------------------------------------- create / edit


def test_it_creates_a_child_through_the_form(world, client_for):
    client = client_for(world.alice)
    assert client.get(url("create") + f"?parent={world.district_n1.pk}").status_code == 200
    response = client.post(
        url("create") + f"?parent={world.district_n1.pk}",
        {
            "name": "New School",
            "type": world.school_n1.type_id,
            "code": "NS",
            "validation_status": "new",
            "latitude": "1.1",
            "longitude": "30.2",
        },
    )
    assert response.status_code == 302
    with account_scope(world.account):
        unit = OrgUnit.objects.get(name="New School")
        assert unit.parent_id == world.district_n1.pk
        assert unit.path.startswith(world.district_n1.path)
        assert (unit.latitude, unit.longitude) == (1.1, 30.2)
        assert AuditEntry.objects.filter(object_id=str(unit.pk), action="create").exists()
    assert response["Location"] == url("detail", unit.pk)


def test_create_refuses_one_coordinate_without_the_other(world, client_for):
    response = client_for(world.alice).post(
        url("create") + f"?parent={world.district_n1.pk}",
        {"name": "Half", "validation_status": "new", "latitude": "1.1"},
    )
    assert response.status_code == 200
    assert "Give both latitude and longitude" in response.content.decode()
    with account_scope(world.account):
        assert not OrgUnit.objects.filter(name="Half").exists()


def test_create_refuses_bad_geometry(world, client_for):
    client = client_for(world.alice)
    for text, message in [
        ("{not json", "not valid JSON"),
        ('{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}', "not usable"),
        ("[1, 2]", "GeoJSON geometry object"),
    ]:
        response = client.post(
            url("create") + f"?parent={world.district_n1.pk}",
            {"name": "Shape", "validation_status": "new", "geometry": text},
        )
        assert message in response.content.decode()
    with account_scope(world.account):
        assert not OrgUnit.objects.filter(name="Shape").exists()


def test_create_accepts_a_polygon_and_stores_its_bbox(world, client_for):
    polygon = '{"type": "Polygon", "coordinates": [[[30, 1], [31, 1], [31, 2], [30, 2], [30, 1]]]}'
    response = client_for(world.alice).post(
        url("create") + f"?parent={world.region_north.pk}",
        {"name": "Shaped", "validation_status": "new", "geometry": polygon},
    )
    assert response.status_code == 302
    with account_scope(world.account):
        unit = OrgUnit.objects.get(name="Shaped")
    assert (unit.bbox_min_lon, unit.bbox_max_lat) == (30, 2)


def test_a_type_the_parent_does_not_allow_becomes_a_form_error(world, client_for):
    with account_scope(world.account):
        world.district_n1.type.sub_types.set([world.school_n1.type])
    response = client_for(world.alice).post(
        url("create") + f"?parent={world.district_n1.pk}",
        {"name": "Odd", "type": world.region_north.type_id, "validation_status": "new"},
    )
    assert response.status_code == 200
    assert "cannot be placed under" in response.content.decode()


def test_a_viewer_cannot_create_edit_move_or_delete(world, client_for):
    client = client_for(world.bob)
    pk = world.district_n1.pk
    assert client.get(url("create") + f"?parent={pk}").status_code == 403
    assert client.get(url("edit", pk)).status_code == 403
    assert (
        client.post(url("edit", pk), {"name": "Hacked", "validation_status": "new"}).status_code
        == 403
    )
    assert client.get(url("move", pk)).status_code == 403
    assert client.post(url("delete", world.school_n1.pk)).status_code == 403
    assert reload(world.district_n1).name == "Northvale"
    assert reload(world.school_n1)


def test_the_supervisor_cannot_create_a_top_level_unit(world, client_for):
    response = client_for(world.sam).post(
        url("create"), {"name": "Root", "validation_status": "new"}
    )
    assert response.status_code == 403


def test_the_supervisor_edits_inside_his_subtree_only(world, client_for):
    client = client_for(world.sam)
    data = {"name": "Northvale Renamed", "validation_status": "valid"}
    assert client.post(url("edit", world.district_n1.pk), data).status_code == 302
    assert reload(world.district_n1).name == "Northvale Renamed"
    assert client.get(url("edit", world.district_s1.pk)).status_code == 404
    assert client.post(url("edit", world.district_s1.pk), data).status_code == 404
    assert client.get(url("create") + f"?parent={world.district_s1.pk}").status_code == 404
    assert reload(world.district_s1).name == "Southport"


def test_edit_records_the_change_in_the_history(world, client_for):
    client = client_for(world.alice)
    form = client.get(url("edit", world.school_n1.pk)).content.decode()
    assert 'value="Northvale Primary"' in form
    response = client.post(
        url("edit", world.school_n1.pk),
        {
            "name": "Northvale Primary",
            "code": "NP2",
            "validation_status": "valid",
            "type": world.school_n1.type_id,
            "latitude": "1.5",
            "longitude": "30.1",
        },
    )
    assert response.status_code == 302
    html = client.get(url("detail", world.school_n1.pk)).content.decode()
    assert "NP1" in html and "NP2" in html


def test_outsider_gets_404_on_every_form(world, client_for):
    client = client_for(world.charlie)
    pk = world.district_n1.pk
    assert client.get(url("create") + f"?parent={pk}").status_code == 404
    assert client.get(url("edit", pk)).status_code == 404
    assert client.get(url("move", pk)).status_code == 404
    assert client.get(url("delete", pk)).status_code == 404
    assert client.post(url("delete", world.school_n1.pk)).status_code == 404
    assert reload(world.school_n1)


# ---------------------------------------------------------------- move


def test_moving_through_the_form_recomputes_the_paths_of_the_subtree(world, client_for):
    client = client_for(world.alice)
    assert client.get(url("move", world.district_n1.pk)).status_code == 200
    response = client.post(url("move", world.district_n1.pk), {"new_parent": world.region_south.pk})
    assert response.status_code == 302
    district, school = reload(world.district_n1), reload(world.school_n1)
    assert district.parent_id == world.region_south.pk
    assert district.path.startswith(world.region_south.path)
    assert school.path.startswith(district.path)
    assert school.depth == 4


def test_moving_under_its_own_descendant_is_refused_with_a_message(world, client_for):
    response = client_for(world.alice).post(
        url("move", world.region_north.pk), {"new_parent": world.school_n1.pk}
    )
    assert response.status_code == 200
    assert "cannot be moved under itself" in response.content.decode()
    assert reload(world.region_north).parent_id == world.country.pk


def test_moving_without_choosing_a_parent_is_an_error(world, client_for):
    response = client_for(world.alice).post(url("move", world.district_n1.pk), {})
    assert "Choose the new parent" in response.content.decode()


def test_an_admin_can_make_a_unit_top_level(world, client_for):
    response = client_for(world.alice).post(url("move", world.district_n1.pk), {"make_root": "on"})
    assert response.status_code == 302
    district = reload(world.district_n1)
    assert district.parent_id is None
    assert district.depth == 1


def test_the_supervisor_cannot_move_a_unit_out_of_his_subtree(world, client_for):
    client = client_for(world.sam)
    response = client.post(url("move", world.school_n1.pk), {"new_parent": world.district_s1.pk})
    assert response.status_code == 200
    assert "outside your area" in response.content.decode()
    assert client.post(url("move", world.school_n1.pk), {"make_root": "on"}).status_code == 200
    assert reload(world.school_n1).parent_id == world.district_n1.pk
    assert client.get(url("move", world.district_s1.pk)).status_code == 404
    assert client.get(url("move", world.region_north.pk)).status_code == 403


def test_parent_options_list_visible_units_except_the_moving_subtree(world, client_for):
    client = client_for(world.alice)
    html = htmx_get(client, url("parent_options") + f"?q=north&exclude={world.region_north.pk}")
    assert 'data-testid="parent-option"' not in html.content.decode()
    html = htmx_get(client, url("parent_options") + f"?q=south&exclude={world.district_n1.pk}")
    assert html.content.decode().count('data-testid="parent-option"') == 3
    html = htmx_get(client_for(world.sam), url("parent_options") + "?q=south").content.decode()
    assert 'data-testid="parent-empty"' in html


# ---------------------------------------------------------------- delete


def test_deleting_a_leaf_after_confirmation(world, client_for):
    client = client_for(world.alice)
    page = client.get(url("delete", world.school_n1.pk)).content.decode()
    assert 'data-testid="confirm-delete"' in page
    response = client.post(url("delete", world.school_n1.pk))
    assert response.status_code == 302
    assert response["Location"] == url("detail", world.district_n1.pk)
    with account_scope(world.account):
        assert not OrgUnit.objects.filter(pk=world.school_n1.pk).exists()


def test_a_refused_delete_shows_the_reasons(world, client_for):
    with account_scope(world.account):
        make_person(world.account, "Pat", world.school_n1)
    client = client_for(world.alice)
    page = client.get(url("delete", world.district_n1.pk)).content.decode()
    assert 'data-testid="delete-blockers"' in page
    assert "1 child unit(s) are under it" in page
    response = client.post(url("delete", world.school_n1.pk))
    assert response.status_code == 400
    assert "cannot be deleted" in response.content.decode()
    assert "point at it" in response.content.decode()
    assert reload(world.school_n1)


def test_the_supervisor_cannot_delete_outside_his_subtree(world, client_for):
    client = client_for(world.sam)
    assert client.post(url("delete", world.school_s1.pk)).status_code == 404
    assert reload(world.school_s1)
    assert client.post(url("delete", world.school_n1.pk)).status_code == 302


# ---------------------------------------------------------------- export


def test_export_enqueues_a_job_for_the_subtree_and_redirects_to_it(world, client_for):
    response = client_for(world.alice).post(
        url("export"),
        {"root": world.region_north.pk, "format": "xlsx", "status": "new", "q": "vale"},
    )
    with account_scope(world.account):
        job = Job.objects.get(kind="registry.export_orgunits")
    assert job.params == {
        "root": world.region_north.pk,
        "format": "xlsx",
        "filters": {"status": "new", "search": "vale"},
    }
    assert response.status_code == 302
    assert response["Location"].endswith(f"/jobs/{job.pk}/")


def test_a_supervisor_export_without_root_is_limited_to_his_subtree(world, client_for):
    client_for(world.sam).post(url("export"), {"format": "csv"})
    with account_scope(world.account):
        job = Job.objects.get(kind="registry.export_orgunits")
    assert job.params["root"] == world.region_north.pk


def test_export_refuses_what_it_cannot_see_or_a_bad_format(world, client_for):
    assert (
        client_for(world.sam).post(url("export"), {"root": world.region_south.pk}).status_code
        == 404
    )
    assert (
        client_for(world.charlie).post(url("export"), {"root": world.country.pk}).status_code == 404
    )
    assert client_for(world.alice).post(url("export"), {"format": "pdf"}).status_code == 404
    assert client_for(world.alice).put(url("export")).status_code == 405
    with account_scope(world.account):
        assert not Job.objects.filter(kind="registry.export_orgunits").exists()


def test_a_small_subtree_downloads_at_once_as_csv(world, client_for):
    response = client_for(world.alice).get(url("export"), {"root": world.region_north.pk})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="orgunits-North.csv"'
    text = response.content.decode("utf-8-sig")
    assert "Northvale Primary" in text
    assert "Southport" not in text


def test_the_direct_download_respects_scope_and_filters(world, client_for):
    sam = client_for(world.sam)
    assert sam.get(url("export"), {"root": world.region_south.pk}).status_code == 404
    text = sam.get(url("export"), {"format": "csv"}).content.decode("utf-8-sig")
    assert "Northvale" in text and "Southport" not in text
    alice = client_for(world.alice)
    text = alice.get(url("export"), {"q": "clinic"}).content.decode("utf-8-sig")
    assert "Southport Clinic" in text and "Northvale Primary" not in text
    xlsx = alice.get(url("export"), {"format": "xlsx"})
    assert xlsx.content[:2] == b"PK"


def test_outsider_gets_404_on_the_direct_download(world, client_for):
    response = client_for(world.charlie).get(url("export"), {"root": world.country.pk})
    assert response.status_code == 404


def test_a_large_subtree_is_not_downloaded_directly(world, client_for, monkeypatch):
    from closedloop.registry import views

    monkeypatch.setattr(views, "DIRECT_EXPORT_LIMIT", 1)
    response = client_for(world.alice).get(url("export"), {"root": world.region_north.pk})
    assert response.status_code == 302
    assert response["Location"] == url("detail", world.region_north.pk)
