"""Authenticating personal API tokens. The API imports :func:`user_for_token`."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from closedloop.accounts.models import ApiToken, User, hash_token

#: ``last_used_at`` is written at most this often per token.
LAST_USED_PRECISION = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 200


def user_for_token(raw: str) -> User | None:
    """The active user owning the unrevoked token ``raw``, else None."""
    raw = (raw or "").strip()
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    stale = now - LAST_USED_PRECISION
    if token.last_used_at is None or token.last_used_at < stale:
        # conditional, so concurrent requests write once
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
        ).update(last_used_at=now)
    return token.user
