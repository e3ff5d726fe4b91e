from __future__ import annotations

from typing import Any

from django.db.models import Count

from closedloop.accounts.models import Membership
from closedloop.jobs.models import Job
from closedloop.people.models import Person
from closedloop.registry.models import OrgUnitType
from closedloop.registry.selectors import restrict_to_scope, visible_units


def home_context(membership: Membership) -> dict[str, Any]:
    units = visible_units(membership)
    by_type = {
        row["type"]: row["n"] for row in units.values("type").annotate(n=Count("id")).order_by()
    }
    types = [
        {"type": t, "count": by_type.get(t.pk, 0)}
        for t in OrgUnitType.objects.order_by("depth", "name")
    ]
    untyped = by_type.get(None, 0)
    people = restrict_to_scope(Person.objects.all(), membership, "org_unit__")
    return {
        "unit_types": types,
        "untyped_count": untyped,
        "unit_count": sum(by_type.values()),
        "people_count": people.count(),
        "recent_jobs": list(Job.objects.select_related("created_by").order_by("-created_at")[:8]),
    }
