"""The tenant guard.

Every tenant-owned model uses :class:`TenantManager`; querying it outside
``account_scope(account)`` raises ``ScopeError``. Requests open the scope in
``AccountMiddleware``, tasks open it from their ``account_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models
from django_scopes import ScopedManager, get_scope, scope, scopes_disabled
from django_scopes.exceptions import ScopeError

__all__ = [
    "ScopeError",
    "TenantManager",
    "account_scope",
    "current_account_id",
    "scopes_disabled",
]


def TenantManager(**kwargs: Any) -> models.Manager[Any]:  # noqa: N802 - reads like a class
    manager: models.Manager[Any] = ScopedManager(account="account", **kwargs)
    return manager


@contextmanager
def account_scope(account: Any) -> Iterator[None]:
    """Open the tenant scope for ``account`` (an Account or its id)."""
    with scope(account=account):
        yield


def current_account_id() -> int | None:
    value = get_scope().get("account")
    if value is None:
        return None
    return int(getattr(value, "pk", value))
