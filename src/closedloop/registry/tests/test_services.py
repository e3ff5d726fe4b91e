"""The registry's write services: create, update, move, delete, with their audit trail."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from closedloop.core.models import AuditEntry
from closedloop.core.testing.factories import make_person
from closedloop.registry.geometry import GeometryError
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import child_path
from closedloop.registry.services import (
    RegistryError,
    orgunit_create,
    orgunit_delete,
    orgunit_move,
    orgunit_type_create,
    orgunit_update,
)


def audit_for(unit: OrgUnit) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(object_type="registry.orgunit", object_id=str(unit.pk)).order_by(
            "id"
        )
    )


def test_create_sets_path_and_depth_and_writes_an_audit_entry(scoped):
    w = scoped
    unit = orgunit_create(
        account=w.account,
        actor=w.alice,
        name="  New School ",
        parent=w.district_n1,
        latitude="1,25",
        longitude=30,
    )
    assert unit.name == "New School"
    assert unit.path == child_path(w.district_n1.path, unit.pk)
    assert unit.depth == 4 and (unit.latitude, unit.longitude) == (1.25, 30.0)
    [entry] = audit_for(unit)
    assert entry.action == "create" and entry.actor_id == w.alice.pk
    assert entry.changes["name"] == [None, "New School"]


@pytest.mark.parametrize(("lat", "lon"), [(1.5, None), (None, 30), (91, 30), (1, 181), ("abc", 30)])
def test_create_refuses_bad_coordinates_and_writes_nothing(scoped, lat, lon):
    before = OrgUnit.objects.count()
    with pytest.raises(GeometryError):
        orgunit_create(
            account=scoped.account,
            actor=scoped.alice,
            name="X",
            parent=scoped.district_n1,
            latitude=lat,
            longitude=lon,
        )
    assert OrgUnit.objects.count() == before


def test_create_refuses_an_empty_name(scoped):
    with pytest.raises(RegistryError) as caught:
        orgunit_create(account=scoped.account, actor=scoped.alice, name="   ")
    assert caught.value.field == "name"


def test_create_refuses_a_type_not_allowed_under_the_parent(scoped):
    w = scoped
    w.district_n1.type.sub_types.set([w.school_n1.type])
    with pytest.raises(RegistryError, match="cannot be placed under"):
        orgunit_create(
            account=w.account,
            actor=w.alice,
            name="Odd",
            parent=w.district_n1,
            type=w.region_north.type,
        )


def test_update_audits_only_what_changed(scoped):
    w = scoped
    orgunit_update(account=w.account, actor=w.bob, unit=w.school_n1, code="NP9")
    orgunit_update(account=w.account, actor=w.bob, unit=w.school_n1, code="NP9")
    entries = [e for e in audit_for(w.school_n1) if e.action == "update"]
    assert len(entries) == 1
    assert entries[0].changes == {"code": ["NP1", "NP9"]}


def test_move_recomputes_the_whole_subtree_in_one_update(scoped):
    w = scoped
    with CaptureQueriesContext(connection) as ctx:
        orgunit_move(
            account=w.account, actor=w.alice, unit=w.district_n1, new_parent=w.region_south
        )
    path_updates = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("UPDATE") and '"path"' in q["sql"]
    ]
    assert len(path_updates) == 1
    district = OrgUnit.objects.get(pk=w.district_n1.pk)
    school = OrgUnit.objects.get(pk=w.school_n1.pk)
    assert district.parent_id == w.region_south.pk
    assert district.path == child_path(w.region_south.path, district.pk)
    assert school.path == child_path(district.path, school.pk)
    assert (district.depth, school.depth) == (3, 4)
    assert audit_for(district)[-1].changes["parent"] == [w.region_north.pk, w.region_south.pk]


def test_move_to_the_top_makes_a_root(scoped):
    w = scoped
    orgunit_move(account=w.account, actor=w.alice, unit=w.region_north, new_parent=None)
    school = OrgUnit.objects.get(pk=w.school_n1.pk)
    assert school.depth == 3 and school.path.startswith(child_path("", w.region_north.pk))


def test_move_under_its_own_descendant_is_refused(scoped):
    w = scoped
    with pytest.raises(RegistryError, match="under itself"):
        orgunit_move(
            account=w.account, actor=w.alice, unit=w.region_north, new_parent=w.district_n1
        )
    assert OrgUnit.objects.get(pk=w.region_north.pk).parent_id == w.country.pk


def test_delete_is_refused_with_the_reasons(scoped):
    w = scoped
    make_person(w.account, "Ada", org_unit=w.school_n1)
    with pytest.raises(RegistryError) as caught:
        orgunit_delete(account=w.account, actor=w.alice, unit=w.district_n1)
    assert "1 child unit(s) are under it" in str(caught.value)
    with pytest.raises(RegistryError) as caught:
        orgunit_delete(account=w.account, actor=w.alice, unit=w.school_n1)
    assert "1 " in str(caught.value) and "point at it" in str(caught.value)
    assert OrgUnit.objects.filter(pk=w.school_n1.pk).exists()


def test_delete_of_a_free_leaf_is_audited(scoped):
    w = scoped
    unit_id = w.school_s1.pk
    orgunit_delete(account=w.account, actor=w.alice, unit=w.school_s1)
    assert not OrgUnit.objects.filter(pk=unit_id).exists()
    entry = AuditEntry.objects.filter(object_id=str(unit_id), action="delete").get()
    assert entry.changes["name"] == ["Southport Clinic", None]


def test_type_names_are_unique_ignoring_case(scoped):
    with pytest.raises(RegistryError, match="already exists"):
        orgunit_type_create(account=scoped.account, actor=scoped.alice, name="school")


@pytest.mark.parametrize("pk", [0, 1, 35, 36, 1295, 46656, 123_456_789, 36**6 - 1])
def test_path_segments_are_six_base36_digits_that_sort_like_the_ids(pk):
    from closedloop.registry.paths import encode_segment, ids_in_path

    segment = encode_segment(pk)
    assert len(segment) == 7 and segment.endswith(".")
    assert ids_in_path(segment) == [pk]
    assert segment < encode_segment(pk + 1) if pk + 1 < 36**6 else True


def test_ids_beyond_six_digits_are_refused():
    from closedloop.registry.paths import encode_segment

    with pytest.raises(ValueError):
        encode_segment(36**6)
    with pytest.raises(ValueError):
        encode_segment(-1)
