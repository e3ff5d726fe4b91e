"""Arranging the RapidPro double and a connection for the sync tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from closedloop.core.tenancy import account_scope
from closedloop.people.models import Cohort
from closedloop.polls import testing as t
from closedloop.polls.models import Connection, ContactGroup, GroupRole

CHILDREN = {
    "key": "children",
    "name": "Children",
    "type": "numeric",
    "categories": ["Few", "Many"],
    "cases": [
        {"type": "has_number_between", "arguments": [0, 2], "category": "Few"},
        {"type": "has_number_gte", "arguments": [3], "category": "Many"},
    ],
}
COLOR = {"key": "color", "name": "Color", "type": "categorical", "categories": ["Red", "Blue"]}
COMMENT = {"key": "comment", "name": "Comment", "type": "open"}

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[30.0, -2.0], [30.5, -2.0], [30.5, -1.5], [30.0, -1.5], [30.0, -2.0]]],
}


@dataclass
class Remote:
    """The double's arranged objects (API dicts)."""

    north: dict[str, Any]
    northvale: dict[str, Any]
    south: dict[str, Any]
    teachers: dict[str, Any]
    parents: dict[str, Any]
    customers: dict[str, Any]
    health: dict[str, Any]
    other_flow: dict[str, Any]


def arrange(fake: Any) -> Remote:
    """Groups, fields, flows and boundaries like a TracPro workspace (no contacts)."""
    remote = Remote(
        north=fake.add_group("North panel"),
        northvale=fake.add_group("Northvale panel"),
        south=fake.add_group("South panel"),
        teachers=fake.add_group("Teachers"),
        parents=fake.add_group("Parents"),
        customers=fake.add_group("Customers"),
        health=fake.add_flow("Health check", [CHILDREN, COLOR, COMMENT]),
        other_flow=fake.add_flow("Registration", [{"key": "name", "type": "open"}]),
    )
    fake.add_flow("Single Message (42)", [])
    fake.add_field("district", "District", "text")
    fake.add_field("age", "Age", "number")
    fake.add_field("birth", "Birth date", "datetime")
    country = fake.add_boundary("R1", "Atlantis", 0, geometry=SQUARE)
    fake.add_boundary("R2", "North", 1, parent=country, geometry=SQUARE)
    fake.add_boundary("R3", "South", 1, parent=country, geometry=None)
    return remote


def connect(world: Any, fake: Any, name: str = "RapidPro") -> Connection:
    with account_scope(world.account):
        return t.make_connection(world.account, name=name, host_url=fake.url, token=fake.token)


def choose(world: Any, conn: Connection, remote: Remote) -> None:
    """Panels North/Northvale/South on the registry's units, cohorts Teachers/Parents."""
    with account_scope(world.account):
        groups = {g.uuid: g for g in ContactGroup.objects.filter(connection=conn)}
        for group, unit in (
            (remote.north, world.region_north),
            (remote.northvale, world.district_n1),
            (remote.south, world.region_south),
        ):
            row = groups[group["uuid"]]
            row.role, row.org_unit = GroupRole.PANEL, unit
            row.save()
        for group in (remote.teachers, remote.parents):
            row = groups[group["uuid"]]
            cohort, _ = Cohort.objects.get_or_create(account=world.account, name=group["name"])
            row.role, row.cohort = GroupRole.COHORT, cohort
            row.save()


def activate(world: Any, conn: Connection, *flow_uuids: str) -> None:
    from closedloop.polls.models import Poll

    with account_scope(world.account):
        Poll.objects.filter(connection=conn, flow_uuid__in=flow_uuids).update(is_active=True)


def requests_to(fake: Any, endpoint: str) -> list[dict[str, Any]]:
    """Query params of the double's GET requests to ``endpoint`` (e.g. "contacts")."""
    return [
        params
        for method, path, params in fake.state.requests
        if method == "GET" and path == f"/api/v2/{endpoint}.json"
    ]
