"""Who is calling, and in which account.

Every operation authenticates with a personal API token (``Authorization: Bearer``)
or the Django session (CSRF-checked for unsafe methods). Once the user is known, the
same helper picks the account — the ``X-Account`` header (a slug), else the session's
account, else the user's first membership — sets ``request.account`` and
``request.membership`` and opens the tenant scope for the rest of the request,
including the serialization of the response. Handlers read the membership with
:func:`membership_of`; there is no other way in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils.translation import gettext as _
from ninja.errors import AuthenticationError, HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from closedloop.accounts.middleware import SESSION_KEY
from closedloop.accounts.models import Membership, Role
from closedloop.accounts.tokens import user_for_token
from closedloop.api.errors import forbidden
from closedloop.core.tenancy import account_scope

ACCOUNT_HEADER = "X-Account"
_STACK_ATTR = "_closedloop_api_scope"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}


def _choose_membership(request: HttpRequest, user: Any, from_session: bool) -> Membership:
    memberships = Membership.objects.filter(
        user=user, is_active=True, account__is_active=True
    ).select_related("account", "user")
    slug = request.headers.get(ACCOUNT_HEADER, "").strip()
    if slug:
        chosen = memberships.filter(account__slug=slug).first()
        if chosen is None:
            raise Http404
        return chosen
    if from_session:
        current = getattr(request, "membership", None)
        if current is not None and current.user_id == user.pk:
            return current  # type: ignore[no-any-return]
        session_account = request.session.get(SESSION_KEY)
        if session_account:
            chosen = memberships.filter(account_id=session_account).first()
            if chosen:
                return chosen
    first = memberships.order_by("account__name").first()
    if first is None:
        raise forbidden(_("You are not a member of any active account."))
    return first


def enter_account(request: HttpRequest, user: Any, from_session: bool) -> Any:
    """Pick the account for this request and open its scope until the response is built."""
    stack: ExitStack | None = getattr(request, _STACK_ATTR, None)
    if stack is None:
        raise RuntimeError("API operation without with_account_scope; see api/auth.py")
    membership = _choose_membership(request, user, from_session)
    request.membership = membership  # type: ignore[attr-defined]
    request.account = membership.account  # type: ignore[attr-defined]
    stack.enter_context(account_scope(membership.account))
    return user


def with_account_scope(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wraps each operation's whole run (auth, handler, serialization) — see NinjaAPI setup."""

    @wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with ExitStack() as stack:
            setattr(request, _STACK_ATTR, stack)
            try:
                return run(request, *args, **kwargs)
            finally:
                delattr(request, _STACK_ATTR)

    return wrapper


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``. A header that is there but wrong is a 401."""

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get(self.header)
        if not header:
            return None
        scheme, _sep, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise AuthenticationError(
                message=_("The Authorization header must be “Bearer <token>”.")
            )
        return self.authenticate(request, raw.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = user_for_token(token)
        if user is None:
            raise AuthenticationError(message=_("This API token is not valid or was revoked."))
        return enter_account(request, user, from_session=False)


class SessionAuth(APIKeyCookie):
    """The logged-in browser session; unsafe methods must pass Django's CSRF check."""

    param_name = "sessionid"

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request):
            raise HttpError(403, "CSRF check Failed")
        return enter_account(request, user, from_session=True)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover
        return None  # __call__ does the work


def membership_of(request: HttpRequest) -> Membership:
    membership = getattr(request, "membership", None)
    if membership is None or getattr(request, _STACK_ATTR, None) is None:
        raise RuntimeError("no API account resolved for this request")
    return membership  # type: ignore[no-any-return]


def require_editor(request: HttpRequest) -> Membership:
    """The membership, if it may change the registry and people; else 403."""
    membership = membership_of(request)
    if not membership.can_edit:
        raise forbidden(_("Your role can read but not change data in this account."))
    return membership


def require_roles(request: HttpRequest, *roles: Role) -> Membership:
    membership = membership_of(request)
    if membership.role not in roles:
        raise forbidden()
    return membership
