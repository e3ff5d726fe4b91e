"""API: people. A supervisor sees and changes only the people placed in his subtrees."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models.deletion import ProtectedError
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of, require_editor
from closedloop.api.errors import ApiError, field_error, forbidden
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS, Ref
from closedloop.people import selectors, services
from closedloop.people.models import Cohort, Identifier, Person
from closedloop.registry.models import OrgUnit
from closedloop.registry.selectors import scope_paths, visible_units

router = Router(tags=["people"])


class ExternalIdIO(Schema):
    system: str = Field("", max_length=60)
    value: str = Field(..., max_length=255)


class PersonOut(Schema):
    id: int
    name: str
    org_unit: Ref | None
    language: str
    is_active: bool
    fields: dict[str, Any]
    emails: list[str]
    phones: list[str]
    external_ids: list[ExternalIdIO]
    cohorts: list[Ref]
    created_at: dt.datetime
    updated_at: dt.datetime


class PersonIn(Schema):
    name: str = Field(..., max_length=255)
    org_unit: int | None = None
    language: str = Field("", max_length=10)
    is_active: bool = True
    emails: list[str] = []
    phones: list[str] = Field([], description="International form, e.g. +250788123456.")
    external_ids: list[ExternalIdIO] = []
    cohorts: list[str] = Field([], description="Names of existing cohorts.")
    fields: dict[str, Any] = Field({}, description="Values of the account's custom fields.")


class PersonPatch(PersonIn):
    """Only the keys sent change; a list sent replaces the current one."""

    name: str = Field("", max_length=255)


class PeopleFilters(Schema):
    search: str = Field("", max_length=200, description="Name or any identifier contains.")
    org_unit: int | None = Field(None, description="People anywhere in this unit's subtree.")
    cohort: int | None = Field(None, description="Members of this cohort id.")
    active: bool | None = None


def _person(person: Person) -> dict[str, Any]:
    identifiers = list(person.identifiers.all())
    by_kind = {kind: [i for i in identifiers if i.kind == kind] for kind in Identifier.Kind}
    unit = person.org_unit
    return {
        "id": person.pk,
        "name": person.name,
        "org_unit": {"id": unit.pk, "name": unit.name} if unit else None,
        "language": person.language,
        "is_active": person.is_active,
        "fields": person.fields,
        "emails": sorted(i.value for i in by_kind[Identifier.Kind.EMAIL]),
        "phones": sorted(i.value for i in by_kind[Identifier.Kind.PHONE]),
        "external_ids": [
            {"system": i.system, "value": i.value} for i in by_kind[Identifier.Kind.EXTERNAL]
        ],
        "cohorts": [{"id": c.pk, "name": c.name} for c in person.cohorts.all()],
        "created_at": person.created_at,
        "updated_at": person.updated_at,
    }


def _unit_or_error(membership: Membership, pk: int | None) -> OrgUnit | None:
    """The org unit a person is placed in. Scoped members must place everyone in scope."""
    if pk is None:
        if scope_paths(membership) is not None:
            raise forbidden(_("Your scope allows only people placed in your org units."))
        return None
    unit = visible_units(membership).filter(pk=pk).first()
    if unit is None:
        raise field_error("org_unit", _("There is no org unit with id %(id)s.") % {"id": pk})
    return unit


def _cohorts_or_error(names: list[str]) -> list[Cohort]:
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    lowered = {n.lower() for n in wanted}
    matches = Cohort.objects.annotate(lname=Lower("name")).filter(lname__in=lowered)
    found = {c.name.lower(): c for c in matches}
    missing = [n for n in wanted if n.lower() not in found]
    if missing:
        raise field_error(
            "cohorts", _("There is no cohort named “%(name)s”.") % {"name": missing[0]}
        )
    return [found[n.lower()] for n in wanted]


def _service_values(membership: Membership, values: dict[str, Any]) -> dict[str, Any]:
    """Request values → service arguments (ids to objects, external ids to pairs)."""
    if "org_unit" in values:
        values["org_unit"] = _unit_or_error(membership, values["org_unit"])
    if "cohorts" in values:
        values["cohorts"] = _cohorts_or_error(values["cohorts"])
    if "external_ids" in values:
        values["external_ids"] = [(e["system"], e["value"]) for e in values["external_ids"]]
    return values


def _reload(membership: Membership, person: Person) -> dict[str, Any]:
    return _person(selectors.get_person(membership, person.pk))


@router.get("/people", response={200: Page[PersonOut], **ERRORS}, summary="Search people")
def list_people(
    request: HttpRequest, filters: Query[PeopleFilters], page: Query[PageParams]
) -> dict[str, Any]:
    membership = membership_of(request)
    unit = _unit_or_error(membership, filters.org_unit) if filters.org_unit else None
    qs = selectors.search_people(
        membership, filters.search, org_unit=unit, cohort=filters.cohort, active=filters.active
    )
    return paginate(qs.order_by("name", "pk"), page, _person)


@router.post("/people", response={201: PersonOut, **WRITE_ERRORS}, summary="Add a person")
def create_person(request: HttpRequest, payload: PersonIn) -> Status[dict[str, Any]]:
    membership = require_editor(request)
    values = _service_values(membership, payload.dict())
    person = services.person_create(account=membership.account, actor=membership.user, **values)
    return Status(201, _reload(membership, person))


@router.get("/people/{person_id}", response={200: PersonOut, **ERRORS}, summary="One person")
def get_person(request: HttpRequest, person_id: int) -> dict[str, Any]:
    return _person(selectors.get_person(membership_of(request), person_id))


@router.patch(
    "/people/{person_id}", response={200: PersonOut, **WRITE_ERRORS}, summary="Change a person"
)
def update_person(request: HttpRequest, person_id: int, payload: PersonPatch) -> dict[str, Any]:
    membership = require_editor(request)
    person = selectors.get_person(membership, person_id)
    values = _service_values(membership, payload.dict(exclude_unset=True))
    person = services.person_update(
        account=membership.account, actor=membership.user, person=person, **values
    )
    return _reload(membership, person)


@router.delete(
    "/people/{person_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a person"
)
def delete_person(request: HttpRequest, person_id: int) -> Status[None]:
    membership = require_editor(request)
    person = selectors.get_person(membership, person_id)
    try:
        services.person_delete(account=membership.account, actor=membership.user, person=person)
    except ProtectedError:
        raise ApiError(
            409, _("This person cannot be deleted: other records still point at them.")
        ) from None
    return Status(204, None)
