from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from closedloop.core.tenancy import account_scope

SESSION_KEY = "closedloop_account_id"


class AccountMiddleware:
    """Sets ``request.account`` and ``request.membership`` and opens the tenant scope.

    The current account is the one chosen with the account switcher (kept in the
    session), else the user's first active membership. Without one, no scope is
    opened, so any tenant query fails loudly instead of leaking.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from closedloop.accounts.selectors import current_membership

        membership = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership = current_membership(user, request.session.get(SESSION_KEY))
        request.membership = membership  # type: ignore[attr-defined]
        request.account = membership.account if membership else None  # type: ignore[attr-defined]
        if membership is None:
            return self.get_response(request)
        with account_scope(membership.account):
            return self.get_response(request)
