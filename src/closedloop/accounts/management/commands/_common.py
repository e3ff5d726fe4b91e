"""Helpers shared by the account commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from closedloop.accounts.models import Account, Role


def account_by_slug(slug: str) -> Account:
    account = Account.objects.filter(slug=slug).first()
    if account is None:
        known = ", ".join(Account.objects.order_by("slug").values_list("slug", flat=True)[:20])
        raise CommandError(f"No account has the slug “{slug}”. Known slugs: {known or 'none'}.")
    return account


def check_role(role: str) -> str:
    if role not in Role.values:
        raise CommandError(f"“{role}” is not a role. Choose one of: {', '.join(Role.values)}.")
    return role
