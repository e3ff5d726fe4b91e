"""The home dashboard: what the account holds and what is happening, in a few queries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from closedloop.accounts.models import Membership
from closedloop.jobs.models import JobStatus
from closedloop.jobs.selectors import visible_jobs
from closedloop.people.selectors import visible_people
from closedloop.registry.models import OrgUnitType
from closedloop.registry.selectors import visible_units


def home_context(membership: Membership) -> dict[str, Any]:
    units = visible_units(membership)
    by_type = {
        row["type"]: row["n"] for row in units.values("type").annotate(n=Count("id")).order_by()
    }
    types = [
        {"type": unit_type, "count": by_type.get(unit_type.pk, 0)}
        for unit_type in OrgUnitType.objects.order_by("depth", "name")
    ]
    jobs = visible_jobs(membership)
    return {
        "unit_types": types,
        "untyped_count": by_type.get(None, 0),
        "unit_count": sum(by_type.values()),
        "people_count": visible_people(membership).count(),
        "running_jobs": jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).count(),
        "recent_jobs": list(jobs.select_related("created_by").order_by("-created_at")[:8]),
        "chart": {
            "labels": [str(row["type"].name) for row in types],
            "values": [row["count"] for row in types],
        },
        "can_edit": membership.can_edit,
    }
