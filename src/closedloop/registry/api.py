"""API: org-unit types, org units and groups. Every read starts from the caller's scope."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of, require_editor
from closedloop.api.errors import field_error, forbidden
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS, Ref
from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.registry import selectors, services
from closedloop.registry.models import Group, OrgUnit, OrgUnitType
from closedloop.registry.paths import ids_in_path, upper_bound

router = Router(tags=["registry"])

ValidationStatusIn = Literal["new", "valid", "rejected"]


# ---------------------------------------------------------------- schemas


class TypeOut(Schema):
    id: int
    name: str
    short_name: str
    depth: int | None
    sub_types: list[int]


class TypeIn(Schema):
    name: str = Field(..., max_length=100)
    short_name: str = Field("", max_length=30)
    depth: int | None = Field(None, ge=1, le=50)
    sub_types: list[int] = []


class UnitOut(Schema):
    id: int
    name: str
    type: Ref | None
    parent_id: int | None
    path_ids: list[int] = Field(description="Ancestor ids, root first, the unit itself last.")
    depth: int
    code: str
    ref: str
    validation_status: str
    latitude: float | None
    longitude: float | None


class UnitDetailOut(UnitOut):
    altitude: float | None
    accuracy: float | None
    geometry: dict[str, Any] | None
    opening_date: dt.date | None
    closing_date: dt.date | None
    aliases: list[Any]
    extra: dict[str, Any]
    version_id: int
    created_at: dt.datetime
    updated_at: dt.datetime


class UnitFields(Schema):
    """Fields a client may set on create and change on update."""

    type: int | None = None
    code: str = Field("", max_length=100)
    ref: str = Field("", max_length=200)
    validation_status: ValidationStatusIn = "new"
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    accuracy: float | None = None
    geometry: dict[str, Any] | None = None
    opening_date: dt.date | None = None
    closing_date: dt.date | None = None
    aliases: list[str] = []
    extra: dict[str, Any] = {}


class UnitIn(UnitFields):
    name: str = Field(..., max_length=255)
    parent: int | None = None


class UnitPatch(UnitFields):
    name: str = Field("", max_length=255)


class MoveIn(Schema):
    parent: int | None


class UnitFilters(Schema):
    search: str = Field("", max_length=200, description="Name, code or ref contains (any case).")
    parent: int | None = Field(None, description="Only the direct children of this unit.")
    type: int | None = Field(None, description="Only units of this type id.")
    status: ValidationStatusIn | None = Field(None, description="Validation status.")


class DescendantFilters(Schema):
    type: int | None = Field(None, description="Only units of this type id.")
    depth: int | None = Field(
        None, ge=1, description="At most this many levels below the unit (1 = its children)."
    )


class GroupOut(Schema):
    id: int
    name: str
    code: str


class GroupIn(Schema):
    name: str = Field(..., max_length=200)
    code: str = Field("", max_length=100)
    units: list[int] = []


# ---------------------------------------------------------------- helpers


def _type_ref(unit: OrgUnit) -> dict[str, Any] | None:
    unit_type = unit.type
    return {"id": unit_type.pk, "name": unit_type.name} if unit_type is not None else None


def _unit(unit: OrgUnit) -> dict[str, Any]:
    return {
        "id": unit.pk,
        "name": unit.name,
        "type": _type_ref(unit),
        "parent_id": unit.parent_id,
        "path_ids": ids_in_path(unit.path),
        "depth": unit.depth,
        "code": unit.code,
        "ref": unit.ref,
        "validation_status": unit.validation_status,
        "latitude": unit.latitude,
        "longitude": unit.longitude,
    }


def _unit_detail(unit: OrgUnit) -> dict[str, Any]:
    detail_fields = (
        "altitude",
        "accuracy",
        "geometry",
        "opening_date",
        "closing_date",
        "aliases",
        "extra",
        "version_id",
        "created_at",
        "updated_at",
    )
    return {**_unit(unit), **{name: getattr(unit, name) for name in detail_fields}}


def _visible_unit_or_error(membership: Membership, pk: int, field: str) -> OrgUnit:
    """A unit referenced in a request body: unknown and out-of-scope give the same 400."""
    unit = selectors.visible_units(membership).select_related("type").filter(pk=pk).first()
    if unit is None:
        raise field_error(field, _("There is no org unit with id %(id)s.") % {"id": pk})
    return unit


def _type_or_error(pk: int | None, field: str = "type") -> OrgUnitType | None:
    if pk is None:
        return None
    unit_type = OrgUnitType.objects.filter(pk=pk).first()
    if unit_type is None:
        raise field_error(field, _("There is no org-unit type with id %(id)s.") % {"id": pk})
    return unit_type


def _editable_unit(request: HttpRequest, unit_id: int) -> tuple[Membership, OrgUnit]:
    membership = require_editor(request)
    return membership, selectors.get_unit(membership, unit_id)


def _check_may_create_root(membership: Membership) -> None:
    if selectors.scope_paths(membership) is not None:
        raise forbidden(_("Your scope does not allow units at the top of the tree."))


# ---------------------------------------------------------------- types


def _type(unit_type: OrgUnitType) -> dict[str, Any]:
    return {
        "id": unit_type.pk,
        "name": unit_type.name,
        "short_name": unit_type.short_name,
        "depth": unit_type.depth,
        "sub_types": sorted(t.pk for t in unit_type.sub_types.all()),
    }


@router.get("/orgunit-types", response={200: Page[TypeOut], **ERRORS}, summary="Org-unit types")
def list_types(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership_of(request)
    qs = selectors.unit_types().prefetch_related("sub_types")
    return paginate(qs, page, _type)


@router.post("/orgunit-types", response={201: TypeOut, **WRITE_ERRORS}, summary="Add a type")
def create_type(request: HttpRequest, payload: TypeIn) -> Status[dict[str, Any]]:
    membership = require_editor(request)
    sub_types = [_type_or_error(pk, "sub_types") for pk in payload.sub_types]
    unit_type = services.orgunit_type_create(
        account=membership.account,
        actor=membership.user,
        name=payload.name,
        short_name=payload.short_name,
        depth=payload.depth,
        sub_types=[t for t in sub_types if t is not None],
    )
    return Status(201, _type(unit_type))


# ---------------------------------------------------------------- units


def _filtered_units(membership: Membership, filters: UnitFilters) -> QuerySet[OrgUnit]:
    qs = selectors.visible_units(membership).select_related("type")
    if filters.parent is not None:
        qs = qs.filter(parent_id=filters.parent)
    if filters.type is not None:
        qs = qs.filter(type_id=filters.type)
    if filters.status:
        qs = qs.filter(validation_status=filters.status)
    term = filters.search.strip()
    if term:
        qs = qs.filter(Q(name__icontains=term) | Q(code__icontains=term) | Q(ref__icontains=term))
    return qs.order_by("name", "pk")


@router.get("/orgunits", response={200: Page[UnitOut], **ERRORS}, summary="Search org units")
def list_units(
    request: HttpRequest, filters: Query[UnitFilters], page: Query[PageParams]
) -> dict[str, Any]:
    membership = membership_of(request)
    return paginate(_filtered_units(membership, filters), page, _unit)


@router.post("/orgunits", response={201: UnitDetailOut, **WRITE_ERRORS}, summary="Add an org unit")
def create_unit(request: HttpRequest, payload: UnitIn) -> Status[dict[str, Any]]:
    membership = require_editor(request)
    if payload.parent is None:
        _check_may_create_root(membership)
        parent = None
    else:
        parent = _visible_unit_or_error(membership, payload.parent, "parent")
    fields = payload.dict(exclude={"name", "parent", "type"})
    unit = services.orgunit_create(
        account=membership.account,
        actor=membership.user,
        name=payload.name,
        parent=parent,
        type=_type_or_error(payload.type),
        **fields,
    )
    return Status(201, _unit_detail(selectors.get_unit(membership, unit.pk)))


@router.get("/orgunits/{unit_id}", response={200: UnitDetailOut, **ERRORS}, summary="One org unit")
def get_unit(request: HttpRequest, unit_id: int) -> dict[str, Any]:
    return _unit_detail(selectors.get_unit(membership_of(request), unit_id))


@router.patch(
    "/orgunits/{unit_id}",
    response={200: UnitDetailOut, **WRITE_ERRORS},
    summary="Change an org unit",
)
def update_unit(request: HttpRequest, unit_id: int, payload: UnitPatch) -> dict[str, Any]:
    membership, unit = _editable_unit(request, unit_id)
    changes = payload.dict(exclude_unset=True)
    if "type" in changes:
        changes["type"] = _type_or_error(changes["type"])
    services.orgunit_update(account=membership.account, actor=membership.user, unit=unit, **changes)
    return _unit_detail(selectors.get_unit(membership, unit.pk))


@router.post(
    "/orgunits/{unit_id}/move",
    response={200: UnitDetailOut, **WRITE_ERRORS},
    summary="Move an org unit under another parent",
)
def move_unit(request: HttpRequest, unit_id: int, payload: MoveIn) -> dict[str, Any]:
    membership, unit = _editable_unit(request, unit_id)
    if payload.parent is None:
        _check_may_create_root(membership)
        new_parent = None
    else:
        new_parent = _visible_unit_or_error(membership, payload.parent, "parent")
    services.orgunit_move(
        account=membership.account, actor=membership.user, unit=unit, new_parent=new_parent
    )
    return _unit_detail(selectors.get_unit(membership, unit.pk))


@router.get(
    "/orgunits/{unit_id}/descendants",
    response={200: Page[UnitOut], **ERRORS},
    summary="The units below an org unit",
)
def list_descendants(
    request: HttpRequest, unit_id: int, filters: Query[DescendantFilters], page: Query[PageParams]
) -> dict[str, Any]:
    unit = selectors.get_unit(membership_of(request), unit_id)
    # a visible unit's whole subtree is visible: scopes are subtrees
    qs = OrgUnit.objects.filter(path__gt=unit.path, path__lt=upper_bound(unit.path))
    if filters.type is not None:
        qs = qs.filter(type_id=filters.type)
    if filters.depth is not None:
        qs = qs.filter(depth__lte=unit.depth + filters.depth)
    return paginate(qs.select_related("type").order_by("path"), page, _unit)


# ---------------------------------------------------------------- groups


@router.get("/groups", response={200: Page[GroupOut], **ERRORS}, summary="Org-unit groups")
def list_groups(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    membership_of(request)
    return paginate(Group.objects.order_by("name", "pk").values("id", "name", "code"), page)


def _group_create(*, account: Any, actor: Any, name: str, code: str, units: list[OrgUnit]) -> Group:
    """Stand-in for a ``registry.services.group_create`` (not written yet)."""
    name = name.strip()
    if not name:
        raise field_error("name", _("A group needs a name."))
    if Group.objects.filter(name__iexact=name).exists():
        raise field_error(
            "name", _("A group named “%(name)s” already exists.") % {"name": name}, 409
        )
    with transaction.atomic():
        group = Group.objects.create(
            account_id=getattr(account, "pk", account), name=name, code=code.strip()
        )
        group.units.set(units)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=group,
            after=snapshot(group, ("name", "code")),
        )
    return group


@router.post("/groups", response={201: GroupOut, **WRITE_ERRORS}, summary="Add a group")
def create_group(request: HttpRequest, payload: GroupIn) -> Status[dict[str, Any]]:
    membership = require_editor(request)
    units = [_visible_unit_or_error(membership, pk, "units") for pk in payload.units]
    group = _group_create(
        account=membership.account,
        actor=membership.user,
        name=payload.name,
        code=payload.code,
        units=units,
    )
    return Status(201, {"id": group.pk, "name": group.name, "code": group.code})
