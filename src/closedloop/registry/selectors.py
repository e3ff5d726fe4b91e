"""Reads of the registry that depend on who is asking.

A membership with org-unit scope (a supervisor) sees only those subtrees, everywhere:
lists, search, map, API and exports all start from :func:`visible_units`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from closedloop.accounts.models import Membership, Role
from closedloop.registry.models import OrgUnit, OrgUnitType
from closedloop.registry.paths import upper_bound


def scope_paths(membership: Membership) -> list[str] | None:
    """The paths of the subtrees a membership is limited to; None means the whole tree."""
    if hasattr(membership, "_scope_paths"):
        cached: list[str] | None = membership._scope_paths
        return cached
    paths: list[str] | None = list(
        OrgUnit.objects.filter(pk__in=membership.scope.values("pk")).values_list("path", flat=True)
    )
    if not paths and membership.role != Role.SUPERVISOR:
        paths = None
    if paths:
        # drop subtrees nested in another scoped subtree
        paths = sorted(paths)
        kept: list[str] = []
        for path in paths:
            if not any(path.startswith(root) for root in kept):
                kept.append(path)
        paths = kept
    membership._scope_paths = paths  # type: ignore[attr-defined]
    return paths


def subtree_q(paths: list[str], prefix: str = "") -> Q:
    q = Q(pk__in=[])
    for path in paths:
        q |= Q(**{f"{prefix}path__gte": path, f"{prefix}path__lt": upper_bound(path)})
    return q


def restrict_to_scope(qs: QuerySet[Any], membership: Membership, prefix: str = "") -> QuerySet[Any]:
    """Limit any queryset reaching an org unit through ``prefix`` (e.g. ``org_unit__``)."""
    paths = scope_paths(membership)
    if paths is None:
        return qs
    return qs.filter(subtree_q(paths, prefix))


def visible_units(membership: Membership) -> QuerySet[OrgUnit]:
    return restrict_to_scope(OrgUnit.objects.all(), membership)


def get_unit(membership: Membership, pk: Any) -> OrgUnit:
    """The unit if this membership may see it; otherwise the same 404 as a missing one."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    unit = visible_units(membership).select_related("type", "parent").filter(pk=pk).first()
    if unit is None:
        raise Http404
    return unit


def descendants(unit: OrgUnit, include_self: bool = False) -> QuerySet[OrgUnit]:
    qs = OrgUnit.objects.filter(path__gte=unit.path, path__lt=upper_bound(unit.path))
    if not include_self:
        qs = qs.exclude(pk=unit.pk)
    return qs


def count_descendants(unit: OrgUnit) -> int:
    return descendants(unit, include_self=True).count() - 1


def ancestors(unit: OrgUnit) -> list[OrgUnit]:
    """Root first, the unit itself excluded, in one query."""
    from closedloop.registry.paths import ids_in_path

    ids = ids_in_path(unit.path)[:-1]
    by_id = {u.pk: u for u in OrgUnit.objects.filter(pk__in=ids)}
    return [by_id[i] for i in ids if i in by_id]


def roots_for(membership: Membership) -> QuerySet[OrgUnit]:
    """The top of what a membership sees: the tree's roots, or a supervisor's subtrees."""
    paths = scope_paths(membership)
    if paths is None:
        return OrgUnit.objects.filter(parent__isnull=True)
    return OrgUnit.objects.filter(path__in=paths)


def unit_types() -> QuerySet[OrgUnitType]:
    return OrgUnitType.objects.all().order_by("depth", "name")
