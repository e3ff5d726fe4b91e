"""API: the caller and the account's members."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema

from closedloop.accounts.models import Membership, Role
from closedloop.accounts.selectors import active_memberships, members_of
from closedloop.api.auth import membership_of, require_roles
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS

router = Router(tags=["accounts"])


class UserOut(Schema):
    id: int
    email: str
    full_name: str
    language: str


class AccountOut(Schema):
    id: int
    slug: str
    name: str
    time_zone: str


class MembershipBrief(Schema):
    account: AccountOut
    role: str


class MeOut(Schema):
    user: UserOut
    account: AccountOut
    role: str
    scope: list[int]
    memberships: list[MembershipBrief]


class MemberOut(Schema):
    id: int
    user: UserOut
    role: str
    is_active: bool
    scope: list[int]


def _account(account: Any) -> dict[str, Any]:
    return {
        "id": account.pk,
        "slug": account.slug,
        "name": account.name,
        "time_zone": account.time_zone,
    }


def _user(user: Any) -> dict[str, Any]:
    return {
        "id": user.pk,
        "email": user.email,
        "full_name": user.full_name,
        "language": user.language,
    }


@router.get("/me", response={200: MeOut, **ERRORS}, summary="Who I am, in which account")
def me(request: HttpRequest) -> dict[str, Any]:
    membership = membership_of(request)
    user = membership.user
    return {
        "user": _user(user),
        "account": _account(membership.account),
        "role": membership.role,
        "scope": sorted(membership.scope.values_list("pk", flat=True)),
        "memberships": [
            {"account": _account(m.account), "role": m.role} for m in active_memberships(user)
        ],
    }


def _member(m: Membership) -> dict[str, Any]:
    return {
        "id": m.pk,
        "user": _user(m.user),
        "role": m.role,
        "is_active": m.is_active,
        "scope": sorted(unit.pk for unit in m.scope.all()),
    }


@router.get("/members", response={200: Page[MemberOut], **ERRORS}, summary="The account's members")
def list_members(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership = require_roles(request, Role.ADMIN, Role.MANAGER)
    return paginate(members_of(membership.account), page, _member)
