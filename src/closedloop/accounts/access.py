"""Access helpers every app's views share: who is asking, in which account.

``AccountMiddleware`` sets ``request.membership`` and ``request.account``; a view for tenant
data wraps itself in :func:`member_required`, so a visitor without a membership of the
current account gets the same 404 as for a missing object.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from closedloop.accounts.models import Account, Membership

View = Callable[..., Any]


def membership_of(request: HttpRequest) -> Membership:
    """The requesting user's membership of the current account (404 without one)."""
    membership = getattr(request, "membership", None)
    if membership is None:
        raise Http404
    return membership  # type: ignore[no-any-return]


def account_of(request: HttpRequest) -> Account:
    return request.account  # type: ignore[attr-defined,no-any-return]


def member_required(view: View) -> View:
    """Logged in with a membership of the current account (else 404: tenant data)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        membership_of(request)
        return view(request, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapped
