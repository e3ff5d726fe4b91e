from __future__ import annotations

import pytest
from django.http import Http404

from closedloop.people.models import Person
from closedloop.people.selectors import (
    cohorts_with_counts,
    get_person,
    search_people,
    unit_path_labels,
    visible_people,
)
from closedloop.people.services import cohort_create, person_create, person_update


def names(qs):
    return sorted(p.name for p in qs)


def test_an_admin_sees_everyone(scoped, people):
    assert names(visible_people(scoped.alice_membership)) == [
        "Ann North",
        "Nia Nowhere",
        "Sol South",
    ]


def test_a_supervisor_sees_only_his_subtree_and_never_unplaced_people(scoped, people):
    assert names(visible_people(scoped.sam_membership)) == ["Ann North"]


def test_a_supervisor_gets_404_for_a_person_outside_his_subtree(scoped, people):
    assert get_person(scoped.sam_membership, people["ann"].pk) == people["ann"]
    for pk in (people["sol"].pk, people["nia"].pk, 999999, "abc"):
        with pytest.raises(Http404):
            get_person(scoped.sam_membership, pk)


def test_a_supervisor_without_any_scope_sees_nobody(scoped, people):
    scoped.sam_membership.scope.clear()
    scoped.sam_membership.__dict__.pop("_scope_paths", None)
    assert names(visible_people(scoped.sam_membership)) == []


def test_search_matches_names_and_identifiers_without_duplicate_rows(scoped, people):
    w = scoped
    person_update(
        account=w.account,
        actor=None,
        person=people["ann"],
        emails=["ann@example.org", "ann.n@example.org"],
        external_ids=["moodle:ann-1"],
    )
    assert names(search_people(w.alice_membership, "ann")) == ["Ann North"]
    assert search_people(w.alice_membership, "ann").count() == 1
    assert names(search_people(w.alice_membership, "+250788000001")) == ["Ann North"]
    assert names(search_people(w.alice_membership, "SOUTH")) == ["Sol South"]
    assert names(search_people(w.sam_membership, "sol")) == []


def test_search_filters_by_org_unit_subtree_cohort_and_activity(scoped, people):
    w = scoped
    cohort = cohort_create(account=w.account, actor=None, name="Class 1")
    person_update(
        account=w.account, actor=None, person=people["sol"], cohorts=[cohort], is_active=False
    )
    assert names(search_people(w.alice_membership, org_unit=w.region_north)) == ["Ann North"]
    assert names(search_people(w.alice_membership, org_unit=w.country)) == [
        "Ann North",
        "Sol South",
    ]
    assert names(search_people(w.alice_membership, cohort=cohort)) == ["Sol South"]
    assert names(search_people(w.alice_membership, active=False)) == ["Sol South"]
    assert names(search_people(w.alice_membership, active=True)) == ["Ann North", "Nia Nowhere"]


def test_search_loads_units_identifiers_and_cohorts_in_constant_queries(
    scoped, people, django_assert_num_queries
):
    for i in range(10):
        person_create(
            account=scoped.account,
            actor=None,
            name=f"P{i}",
            org_unit=scoped.school_n1,
            emails=[f"p{i}@example.org"],
        )
    with django_assert_num_queries(4):  # scope + people + identifiers + cohorts
        rows = list(search_people(scoped.alice_membership))
        for person in rows:
            _ = person.org_unit and person.org_unit.name
            _ = [i.value for i in person.identifiers.all()]
            _ = [c.name for c in person.cohorts.all()]


def test_unit_path_labels_names_every_ancestor(scoped):
    labels = unit_path_labels([scoped.school_n1, None, scoped.country])
    assert labels == {
        scoped.school_n1.pk: "Atlantis › North › Northvale",
        scoped.country.pk: "",
    }


def test_cohort_counts_only_count_members_the_supervisor_may_see(scoped, people):
    w = scoped
    cohort = cohort_create(account=w.account, actor=None, name="Class 1")
    for person in people.values():
        person_update(account=w.account, actor=None, person=person, cohorts=[cohort])
    cohort_create(account=w.account, actor=None, name="A first")
    assert [c.name for c in cohorts_with_counts(w.alice_membership)] == ["A first", "Class 1"]
    assert {c.name: c.member_count for c in cohorts_with_counts(w.alice_membership)} == {
        "Class 1": 3,
        "A first": 0,
    }
    assert {c.name: c.member_count for c in cohorts_with_counts(w.sam_membership)} == {
        "Class 1": 1,
        "A first": 0,
    }
    assert Person.objects.count() == 3
