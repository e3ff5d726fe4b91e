"""The subtree map page and its GeoJSON endpoint."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.core.testing.factories import make_unit
from closedloop.registry import views

pytestmark = pytest.mark.django_db

SQUARE = {"type": "Polygon", "coordinates": [[[30, 1], [31, 1], [31, 2], [30, 2], [30, 1]]]}


def data(client, **params):
    response = client.get(reverse("registry:map_data"), params)
    return response, (response.json() if response["Content-Type"] == "application/json" else None)


def names(payload):
    return sorted(f["properties"]["name"] for f in payload["features"])


def test_the_map_page_has_a_container_and_its_config(world, client_for):
    response = client_for(world.alice).get(reverse("registry:map"), {"root": world.country.pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="orgunit-map"' in html
    assert f"/registry/map/data/?root={world.country.pk}" in html
    assert "leaflet.js" in html and "registry/map.js" in html
    assert "<script>" not in html  # CSP: no inline scripts


def test_without_a_tile_url_the_map_gets_none(world, client_for):
    html = client_for(world.alice).get(reverse("registry:map")).content.decode()
    assert '"tile_url": ""' in html


@override_settings(MAP_TILE_URL="https://tiles.example.org/{z}/{x}/{y}.png")
def test_the_tile_url_is_passed_to_the_script(world, client_for):
    html = client_for(world.alice).get(reverse("registry:map")).content.decode()
    assert "https://tiles.example.org/{z}/{x}/{y}.png" in html


def test_map_data_is_geojson_of_units_with_points_or_shapes(world, client_for):
    with account_scope(world.account):
        make_unit(world.account, "Shaped", world.region_north, geometry=SQUARE)
    response, payload = data(client_for(world.alice), root=world.country.pk)
    assert response.status_code == 200
    assert payload["type"] == "FeatureCollection"
    assert names(payload) == ["Northvale Primary", "Shaped", "Southport Clinic"]
    point = next(f for f in payload["features"] if f["properties"]["name"] == "Northvale Primary")
    assert point["geometry"] == {"type": "Point", "coordinates": [30.1, 1.5]}
    assert point["properties"]["type"] == "School"
    assert point["properties"]["url"] == reverse("registry:detail", args=[world.school_n1.pk])
    shape = next(f for f in payload["features"] if f["properties"]["name"] == "Shaped")
    assert shape["geometry"]["type"] == "Polygon"
    assert payload["capped"] is False
    assert {t["name"] for t in payload["types"]} == {"School"}


def test_map_data_is_limited_to_the_root_subtree(world, client_for):
    _, payload = data(client_for(world.alice), root=world.region_south.pk)
    assert names(payload) == ["Southport Clinic"]


def test_map_data_filters_by_bbox(world, client_for):
    client = client_for(world.alice)
    _, payload = data(client, bbox="29,0,31,2")
    assert names(payload) == ["Northvale Primary"]
    response, _ = data(client, bbox="a,b,c")
    assert response.status_code == 400
    response, _ = data(client, bbox="31,0,29,2")
    assert response.status_code == 400


def test_map_data_for_the_supervisor_covers_only_his_subtree(world, client_for):
    client = client_for(world.sam)
    _, payload = data(client)
    assert names(payload) == ["Northvale Primary"]
    response, _ = data(client, root=world.region_south.pk)
    assert response.status_code == 404
    response, _ = data(client, root=world.country.pk)
    assert response.status_code == 404
    assert client.get(reverse("registry:map"), {"root": world.region_south.pk}).status_code == 404


def test_outsider_gets_404_for_map_and_data(world, client_for):
    client = client_for(world.charlie)
    assert client.get(reverse("registry:map"), {"root": world.country.pk}).status_code == 404
    response, _ = data(client, root=world.country.pk)
    assert response.status_code == 404
    _, payload = data(client)
    assert names(payload) == []


def test_map_data_is_capped_and_says_so(world, client_for, monkeypatch):
    monkeypatch.setattr(views, "MAP_MAX_FEATURES", 1)
    _, payload = data(client_for(world.alice))
    assert len(payload["features"]) == 1
    assert payload["capped"] is True
    assert payload["limit"] == 1


def test_map_data_query_count_does_not_grow_with_units(
    world, client_for, django_assert_max_num_queries
):
    with account_scope(world.account):
        for i in range(40):
            make_unit(
                world.account,
                f"Post {i}",
                world.district_n1,
                latitude=1.0,
                longitude=30.0 + i / 100,
            )
    client = client_for(world.alice)
    with django_assert_max_num_queries(8):
        _, payload = data(client, root=world.country.pk)
    assert len(payload["features"]) == 42


def test_detail_map_config_is_valid_json(world, client_for):
    html = client_for(world.alice).get(reverse("registry:detail", args=[world.school_n1.pk]))
    text = html.content.decode()
    marker = 'id="unit-map-config" type="application/json">'
    start = text.index(marker) + len(marker)
    config = json.loads(text[start : text.index("</script>", start)])
    assert config["features"]["features"][0]["properties"]["name"] == "Northvale Primary"
