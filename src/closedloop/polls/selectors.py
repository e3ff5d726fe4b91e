"""Reads of the polls module that depend on who is asking.

Scoping rule (the registry's): a supervisor sees only the panels whose org unit lies in
his subtrees, the contacts of those panels, their responses and answers, and the poll
runs started for those panels; universal poll runs are visible to everyone but their
responses are filtered to the visible panels. Admins and unscoped members see all.

Hot aggregates filter answers by ``org_unit_id IN (...)``: :func:`panel_unit_ids` gives
that list (a few hundred ids at most), ``None`` meaning "no restriction".
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from closedloop.accounts.models import Membership, Role
from closedloop.polls.models import (
    Connection,
    Contact,
    ContactGroup,
    GroupRole,
    Indicator,
    Poll,
    PollRun,
    PollRunType,
    PollsSettings,
    Question,
    Response,
)
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import upper_bound
from closedloop.registry.selectors import restrict_to_scope, scope_paths

#: roles that may act (start polls, message contacts, edit contacts and indicators)
ACTING_ROLES = {Role.ADMIN, Role.MANAGER, Role.SUPERVISOR}
#: roles that may configure connections, choose flows and groups, change settings
SETUP_ROLES = {Role.ADMIN, Role.MANAGER}


def can_act(membership: Membership) -> bool:
    return membership.role in ACTING_ROLES


def can_setup(membership: Membership) -> bool:
    return membership.role in SETUP_ROLES


def polls_settings(account: Any) -> PollsSettings:
    """The account's polls settings row (created with defaults on first use)."""
    account_id = getattr(account, "pk", account)
    found = PollsSettings.objects.filter(account_id=account_id).first()
    if found is None:
        from django.conf import settings

        found, _ = PollsSettings.objects.get_or_create(
            account_id=account_id, defaults={"inbox_days": settings.POLLS_INBOX_DAYS}
        )
    return found


# --- panels -------------------------------------------------------------------------


def visible_panels(membership: Membership) -> QuerySet[ContactGroup]:
    """Panel groups (linked to an org unit) inside the member's subtrees."""
    panels = ContactGroup.objects.filter(role=GroupRole.PANEL, org_unit__isnull=False)
    return restrict_to_scope(panels, membership, "org_unit__").select_related("org_unit")


def get_panel(membership: Membership, pk: Any) -> ContactGroup:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    panel = visible_panels(membership).filter(pk=pk).first()
    if panel is None:
        raise Http404
    return panel


def panel_unit_ids(
    membership: Membership, panel: ContactGroup | None = None, include_sub: bool = True
) -> list[int] | None:
    """Org-unit ids whose answers the member may see, narrowed to ``panel``.

    ``None``: no restriction (an unscoped member and no panel chosen). With a panel, its
    org unit and (``include_sub``) every panel org unit below it, always within scope.
    """
    paths = scope_paths(membership)
    if panel is None:
        if paths is None:
            return None
        return list(visible_panels(membership).values_list("org_unit_id", flat=True).distinct())
    unit = panel.org_unit
    if unit is None:
        return []
    if not include_sub:
        ids = [unit.pk]
    else:
        ids = list(
            visible_panels(membership)
            .filter(org_unit__path__gte=unit.path, org_unit__path__lt=upper_bound(unit.path))
            .values_list("org_unit_id", flat=True)
            .distinct()
        )
        if unit.pk not in ids:
            ids.append(unit.pk)
    if paths is not None:
        allowed = set(visible_panels(membership).values_list("org_unit_id", flat=True).distinct())
        ids = [i for i in ids if i in allowed]
    return ids


def unit_filter(unit_ids: list[int] | None, field: str = "org_unit_id") -> Q:
    """``Q`` limiting rows to ``unit_ids`` (``None``: everything)."""
    if unit_ids is None:
        return Q()
    return Q(**{f"{field}__in": unit_ids})


# --- connections, polls, questions, poll runs ---------------------------------------


def get_connection(membership: Membership, pk: Any) -> Connection:
    """Connections are configured by admins and managers only; anyone else gets 404."""
    if not can_setup(membership):
        raise Http404
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    found = Connection.objects.filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


def active_polls() -> QuerySet[Poll]:
    return Poll.objects.filter(is_active=True)


def get_poll(membership: Membership, pk: Any, active_only: bool = True) -> Poll:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    qs = active_polls() if active_only else Poll.objects.all()
    poll = qs.select_related("connection").filter(pk=pk).first()
    if poll is None:
        raise Http404
    return poll


def visible_questions(poll: Poll, include_hidden: bool = False) -> QuerySet[Question]:
    qs = Question.objects.filter(poll=poll, is_present=True)
    if not include_hidden:
        qs = qs.filter(is_hidden=False)
    return qs.order_by("order", "pk")


def get_question(membership: Membership, pk: Any) -> Question:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    question = Question.objects.filter(pk=pk, poll__is_active=True).select_related("poll").first()
    if question is None:
        raise Http404
    return question


def visible_pollruns(membership: Membership) -> QuerySet[PollRun]:
    """Universal poll runs, plus regional/propagated ones started inside the member's scope."""
    runs = PollRun.objects.filter(poll__is_active=True)
    paths = scope_paths(membership)
    if paths is None:
        return runs
    scoped = restrict_to_scope(OrgUnit.objects.all(), membership).values("pk")
    return runs.filter(Q(type=PollRunType.UNIVERSAL) | Q(org_unit__in=scoped))


def get_pollrun(membership: Membership, pk: Any) -> PollRun:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    run = visible_pollruns(membership).select_related("poll", "panel", "org_unit").filter(pk=pk)
    found = run.first()
    if found is None:
        raise Http404
    return found


# --- contacts and responses ---------------------------------------------------------


def visible_contacts(membership: Membership) -> QuerySet[Contact]:
    """Contacts in the member's panels (contacts without a panel: unscoped members only)."""
    return restrict_to_scope(Contact.objects.all(), membership, "org_unit__")


def get_contact(membership: Membership, pk: Any) -> Contact:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    found = visible_contacts(membership).select_related("person", "panel").filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


def visible_responses(membership: Membership) -> QuerySet[Response]:
    return restrict_to_scope(Response.objects.all(), membership, "org_unit__")


def visible_indicators(membership: Membership) -> QuerySet[Indicator]:
    """Indicators are account-wide definitions; their figures are scoped when computed."""
    return Indicator.objects.select_related(
        "baseline_question__poll", "follow_up_question__poll"
    ).filter(baseline_question__poll__is_active=True, follow_up_question__poll__is_active=True)


def get_indicator(membership: Membership, pk: Any) -> Indicator:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    found = visible_indicators(membership).filter(pk=pk).first()
    if found is None:
        raise Http404
    return found
