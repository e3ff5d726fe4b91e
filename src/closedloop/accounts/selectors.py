from __future__ import annotations

from typing import Any

from closedloop.accounts.models import Membership


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
