"""Reads of accounts, memberships, tokens and the audit trail that depend on who asks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from closedloop.accounts.models import Account, ApiToken, Membership
from closedloop.core.models import AuditEntry


def active_memberships(user: Any) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user, is_active=True, account__is_active=True)
        .select_related("account")
        .order_by("account__name")
    )


def current_membership(user: Any, account_id: Any = None) -> Membership | None:
    qs = Membership.objects.filter(user=user, is_active=True, account__is_active=True)
    qs = qs.select_related("account", "user")
    if account_id:
        chosen = qs.filter(account_id=account_id).first()
        if chosen:
            return chosen
    return qs.order_by("account__name").first()


def require_admin(request: HttpRequest) -> Membership:
    """The admin membership of the current account; anyone else gets a 404."""
    membership = getattr(request, "membership", None)
    if membership is None or not membership.is_admin:
        raise Http404
    return membership


def members_of(account: Account, search: str = "") -> QuerySet[Membership]:
    from closedloop.registry.models import OrgUnit

    qs = Membership.objects.filter(account=account).select_related("user")
    if search:
        qs = qs.filter(Q(user__email__icontains=search) | Q(user__full_name__icontains=search))
    units = OrgUnit.objects.only("pk", "name").order_by("name")
    return qs.prefetch_related(Prefetch("scope", queryset=units)).order_by(
        "-is_active", "user__email"
    )


def member_for(account: Account, pk: Any) -> Membership:
    """A membership of ``account``; any other id is the same 404 as a missing one."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    membership = members_of(account).filter(pk=pk).first()
    if membership is None:
        raise Http404
    return membership


def scope_unit_candidates(search: str, limit: int = 20) -> list[Any]:
    """Org units of the open account scope whose name or code matches ``search``."""
    from closedloop.registry.models import OrgUnit

    search = search.strip()
    if len(search) < 2:
        return []
    qs = OrgUnit.objects.filter(Q(name__icontains=search) | Q(code__iexact=search))
    return list(qs.select_related("type", "parent").order_by("name")[:limit])


def tokens_for(user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")


def token_for(user: Any, pk: Any) -> ApiToken:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    token = ApiToken.objects.filter(user=user, pk=pk).first()
    if token is None:
        raise Http404
    return token


@dataclass
class AuditFilters:
    object_type: str = ""
    action: str = ""
    actor: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_entries(filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Audit entries of the open account scope, newest first."""
    qs = AuditEntry.objects.select_related("actor")
    if filters.object_type:
        qs = qs.filter(object_type=filters.object_type)
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.actor:
        qs = qs.filter(actor_id=filters.actor)
    if filters.date_from:
        qs = qs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    return qs.order_by("-created_at", "-id")


def audit_object_types() -> list[str]:
    return list(
        AuditEntry.objects.order_by("object_type").values_list("object_type", flat=True).distinct()
    )


def audit_actor_choices(account: Account) -> list[tuple[int, str]]:
    rows = Membership.objects.filter(account=account).order_by("user__email")
    return [(uid, email) for uid, email in rows.values_list("user_id", "user__email")]
