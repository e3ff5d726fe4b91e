"""Participation: one poll run by panel or cohort, contacts × poll runs, home figures.

Only active responses count (the newest per contact per poll run). Participants are all
of them (empty + partial + complete); completion % = complete ÷ participants × 100.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.polls import selectors
from closedloop.polls.models import (
    Contact,
    ContactGroup,
    GroupRole,
    Poll,
    PollRun,
    Response,
    ResponseStatus,
)
from closedloop.polls.stats_charts import unit_names
from closedloop.polls.stats_filters import account_today

E, P, C = ResponseStatus.EMPTY, ResponseStatus.PARTIAL, ResponseStatus.COMPLETE
ACTIVE_DAYS = 30
TOP = 5


def _status_counts() -> dict[str, Any]:
    return {
        "empty": Count("pk", filter=Q(status=E)),
        "partial": Count("pk", filter=Q(status=P)),
        "complete": Count("pk", filter=Q(status=C)),
    }


def _row(pk: int | None, name: str, counts: dict[str, Any]) -> dict[str, Any]:
    total = counts["empty"] + counts["partial"] + counts["complete"]
    return {
        "id": pk,
        "name": name,
        "empty": counts["empty"],
        "partial": counts["partial"],
        "complete": counts["complete"],
        "total": total,
        "completion": round(counts["complete"] * 100.0 / total, 2) if total else None,
    }


def cohort_groups() -> dict[int, ContactGroup]:
    """people Cohort id → the RapidPro group used as that cohort."""
    groups = ContactGroup.objects.filter(role=GroupRole.COHORT, cohort__isnull=False)
    return {g.cohort_id: g for g in groups.order_by("name")}  # type: ignore[misc]


def participation(
    pollrun: PollRun, unit_ids: list[int] | None, by: str = "panel"
) -> list[dict[str, Any]]:
    """``[{"id", "name", "empty", "partial", "complete", "total", "completion"}]``.

    ``by="panel"``: one row per panel org unit (``id`` is the org unit's; contacts without
    a panel under ``id`` null). ``by="cohort"``: one row per cohort group (``id`` is the
    ContactGroup's); a contact in two cohorts counts in both, contacts in none are left
    out. Rows ordered by name.
    """
    base = Response.objects.filter(
        selectors.unit_filter(unit_ids), pollrun_id=pollrun.pk, is_active=True
    )
    rows: list[dict[str, Any]] = []
    if by == "cohort":
        groups = cohort_groups()
        grouped = (
            base.filter(contact__person__cohorts__in=list(groups))
            .values("contact__person__cohorts")
            .annotate(**_status_counts())
            .order_by()
        )
        for found in grouped:
            group = groups[found["contact__person__cohorts"]]
            rows.append(_row(group.pk, group.name, found))
    else:
        grouped = base.values("org_unit_id").annotate(**_status_counts()).order_by()
        found_rows = list(grouped)
        names = unit_names({r["org_unit_id"] for r in found_rows})
        rows = [_row(r["org_unit_id"], names.get(r["org_unit_id"], ""), r) for r in found_rows]
    rows.sort(key=lambda r: (r["id"] is None, r["name"].lower(), r["id"] or 0))
    return rows


def participation_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {k: sum(r[k] for r in rows) for k in ("empty", "partial", "complete")}
    return _row(None, _("Total"), counts)


def participation_matrix(
    membership: Membership,
    pollruns: list[PollRun] | QuerySet[PollRun],
    contacts_qs: QuerySet[Contact] | list[Contact],
) -> dict[int, dict[int, str | None]]:
    """``{contact id: {pollrun id: "C" | "P" | "E" | None}}`` — the active response's
    status of each contact in each poll run (``None``: no response). One query."""
    run_ids: list[int] = [r.pk if isinstance(r, PollRun) else int(r) for r in pollruns]
    contact_ids: list[int]
    if isinstance(contacts_qs, QuerySet):
        contact_ids = list(contacts_qs.values_list("pk", flat=True))
    else:
        contact_ids = [c.pk if isinstance(c, Contact) else int(c) for c in contacts_qs]
    matrix: dict[int, dict[int, str | None]] = {cid: dict.fromkeys(run_ids) for cid in contact_ids}
    if not run_ids or not contact_ids:
        return matrix
    found = (
        selectors.visible_responses(membership)
        .filter(pollrun_id__in=run_ids, contact_id__in=contact_ids, is_active=True)
        .values_list("contact_id", "pollrun_id", "status")
        .order_by()
    )
    for contact_id, pollrun_id, status in found:
        matrix[contact_id][pollrun_id] = status
    return matrix


def recent_pollruns(membership: Membership, limit: int = TOP) -> list[dict[str, Any]]:
    """The newest visible poll runs with participants (E+P+C) and responses (C, P).

    The ``limit`` newest runs are picked first (index on ``conducted_on``), then their
    active responses are counted in ONE ``GROUP BY pollrun`` restricted to those runs —
    never a count over every poll run of the account.
    """
    runs = list(
        selectors.visible_pollruns(membership)
        .select_related("poll", "panel")
        .order_by("-conducted_on", "-pk")[:limit]
    )
    if not runs:
        return []
    counts = {
        row["pollrun_id"]: row
        for row in Response.objects.filter(
            selectors.unit_filter(selectors.panel_unit_ids(membership)),
            pollrun_id__in=[run.pk for run in runs],
            is_active=True,
        )
        .values("pollrun_id")
        .annotate(
            participants=Count("pk"),
            complete=Count("pk", filter=Q(status=C)),
            partial=Count("pk", filter=Q(status=P)),
        )
        .order_by()
    }
    zero = {"participants": 0, "complete": 0, "partial": 0}
    return [
        {
            "id": run.pk,
            "poll": {"id": run.poll_id, "name": run.poll.display_name},
            "type": run.type,
            "date": run.local_date.isoformat(),
            "conducted_on": run.conducted_on.isoformat(),
            "panel": {"id": run.panel_id, "name": run.panel.name} if run.panel else None,
            "participants": counts.get(run.pk, zero)["participants"],
            "responses": counts.get(run.pk, zero)["complete"],
            "partial": counts.get(run.pk, zero)["partial"],
        }
        for run in runs
    ]


def _recent_responses(membership: Membership, days: int) -> QuerySet[Response]:
    """Non-empty active responses of the last ``days`` account-local days in scope.

    ``poll_id IN (the account's polls)`` restricts nothing (every response belongs to one
    of them) but turns the date condition into one range per poll on the
    ``(account, poll, local_date)`` index instead of a scan of every response.
    """
    since = account_today(membership.account) - dt.timedelta(days=days - 1)
    poll_ids = list(Poll.objects.values_list("pk", flat=True))
    return Response.objects.filter(
        selectors.unit_filter(selectors.panel_unit_ids(membership)),
        poll_id__in=poll_ids,
        local_date__gte=since,
        is_active=True,
        status__in=[P, C],
    )


def active_groups(
    membership: Membership, days: int = ACTIVE_DAYS, limit: int = TOP
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Most active panels and cohorts: distinct contacts with a non-empty active response
    in the last ``days`` days (account-local), top ``limit`` each."""
    base = _recent_responses(membership, days)
    by_unit = list(
        base.exclude(org_unit_id=None)
        .values("org_unit_id")
        .annotate(contacts=Count("contact_id", distinct=True))
        .order_by("-contacts", "org_unit_id")[:limit]
    )
    names = unit_names({r["org_unit_id"] for r in by_unit})
    panels = [
        {"id": r["org_unit_id"], "name": names.get(r["org_unit_id"], ""), "contacts": r["contacts"]}
        for r in by_unit
    ]
    groups = cohort_groups()
    cohorts: list[dict[str, Any]] = []
    if not groups:
        return panels, cohorts
    # the window's contacts first, then their cohorts (not every cohort member's responses)
    by_cohort = (
        Contact.objects.filter(pk__in=base.values("contact_id"), person__cohorts__in=list(groups))
        .values("person__cohorts")
        .annotate(contacts=Count("pk", distinct=True))
        .order_by("-contacts", "person__cohorts")[:limit]
    )
    for r in by_cohort:
        group = groups[r["person__cohorts"]]
        cohorts.append({"id": group.pk, "name": group.name, "contacts": r["contacts"]})
    return panels, cohorts


def home_figures(membership: Membership) -> dict[str, Any]:
    """``{"recent_pollruns": [{"id", "poll": {id, name}, "type", "date", "conducted_on",
    "panel", "participants", "responses" (complete), "partial"}], "active_panels": [{"id"
    (org unit), "name", "contacts"}], "active_cohorts": [{"id" (group), "name",
    "contacts"}], "featured_indicator": id | null, "days": 30}``."""
    panels, cohorts = active_groups(membership)
    settings_row = selectors.polls_settings(membership.account)
    return {
        "recent_pollruns": recent_pollruns(membership),
        "active_panels": panels,
        "active_cohorts": cohorts,
        "featured_indicator": settings_row.featured_indicator_id,
        "days": ACTIVE_DAYS,
    }
