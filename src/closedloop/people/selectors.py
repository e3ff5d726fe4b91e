"""Reads of people that depend on who is asking.

A supervisor (a membership with org-unit scope) sees only the people placed in his
subtrees; people without an org unit are visible only to unscoped members.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from closedloop.accounts.models import Membership
from closedloop.core.models import AuditEntry
from closedloop.people.models import Cohort, CustomField, Identifier, Person
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import ids_in_path, upper_bound
from closedloop.registry.selectors import restrict_to_scope, scope_paths, subtree_q


def visible_people(membership: Membership) -> QuerySet[Person]:
    return restrict_to_scope(Person.objects.all(), membership, "org_unit__")


def get_person(membership: Membership, pk: Any) -> Person:
    """The person if this membership may see them; otherwise the same 404 as a missing one."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    person = (
        visible_people(membership)
        .select_related("org_unit")
        .prefetch_related("identifiers", "cohorts")
        .filter(pk=pk)
        .first()
    )
    if person is None:
        raise Http404
    return person


def search_people(
    membership: Membership,
    q: str = "",
    org_unit: OrgUnit | None = None,
    cohort: Cohort | int | None = None,
    active: bool | None = None,
) -> QuerySet[Person]:
    """People matching ``q`` in their name or any identifier, one row per person."""
    qs = visible_people(membership)
    q = (q or "").strip()
    if q:
        matching_identifier = Identifier.objects.filter(person=OuterRef("pk"), value__icontains=q)
        qs = qs.filter(Q(name__icontains=q) | Q(Exists(matching_identifier)))
    if org_unit is not None:
        qs = qs.filter(
            org_unit__path__gte=org_unit.path, org_unit__path__lt=upper_bound(org_unit.path)
        )
    if cohort is not None:
        qs = qs.filter(
            Exists(
                Person.cohorts.through.objects.filter(
                    person_id=OuterRef("pk"), cohort_id=getattr(cohort, "pk", cohort)
                )
            )
        )
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.select_related("org_unit").prefetch_related("identifiers", "cohorts")


def unit_path_labels(units: list[OrgUnit | None]) -> dict[int, str]:
    """``{unit id: "Atlantis › North"}``: the names above each unit, in one query."""
    ancestor_ids: set[int] = set()
    for unit in units:
        if unit is not None:
            ancestor_ids.update(ids_in_path(unit.path)[:-1])
    names = dict(OrgUnit.objects.filter(pk__in=ancestor_ids).values_list("pk", "name"))
    labels = {}
    for unit in units:
        if unit is not None:
            labels[unit.pk] = " › ".join(names.get(i, "…") for i in ids_in_path(unit.path)[:-1])
    return labels


def cohorts_with_counts(membership: Membership) -> QuerySet[Cohort]:
    """Cohorts with ``member_count``: the members this membership may see."""
    paths = scope_paths(membership)
    members = Q() if paths is None else subtree_q(paths, "people__org_unit__")
    return Cohort.objects.annotate(
        member_count=Count("people", filter=members, distinct=True)
    ).order_by("name", "pk")


def all_cohorts() -> QuerySet[Cohort]:
    return Cohort.objects.all()


def custom_fields() -> QuerySet[CustomField]:
    return CustomField.objects.all()


def person_history(person: Person, limit: int = 50) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(object_type="people.person", object_id=str(person.pk))
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )
