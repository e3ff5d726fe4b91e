"""Sync of RapidPro's admin boundaries, and their geometry onto the panels' org units."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.polls.client import Pages, client_for
from closedloop.polls.models import Boundary, Connection, ContactGroup, GroupRole
from closedloop.polls.sync_common import assign, log
from closedloop.registry.geometry import GeometryError, prepare_geometry
from closedloop.registry.models import OrgUnit


def _geometry_dict(geometry: Any) -> dict[str, Any] | None:
    if geometry is None:
        return None
    if isinstance(geometry, dict):
        found = geometry
    else:
        found = {"type": geometry.type, "coordinates": geometry.coordinates}
    if not found.get("type") or found.get("coordinates") is None:
        return None
    return found


def _plain(value: Any) -> Any:
    """JSON-normalised copy (tuples → lists) to compare geometries."""
    return json.loads(json.dumps(value)) if value is not None else None


def sync_boundaries(connection: Connection, ctx: Any = None) -> dict[str, int]:
    """Boundary rows, and their geometry onto the panels' org units that have none.

    A panel's org unit takes the geometry of the boundary named like the unit or like the
    panel group (case-insensitive, the highest level first). A unit whose geometry came
    from an earlier boundary sync follows RapidPro's changes; one drawn or imported in
    the registry is never overwritten.
    """
    client = client_for(connection)
    boundaries: dict[str, Any] = {}
    for page in Pages(client.get_boundaries(geometry=True)):
        for item in page:
            if item.osm_id:
                boundaries[str(item.osm_id)] = item
    previous: dict[str, Any] = {}
    created, updated = [], []
    with transaction.atomic():
        existing = {b.osm_id: b for b in Boundary.objects.filter(connection=connection)}
        for osm_id, item in boundaries.items():
            parent = getattr(item.parent, "osm_id", None) if item.parent else None
            values = {
                "name": str(item.name or osm_id)[:255],
                "level": max(int(item.level or 0), 0),
                "parent_osm_id": str(parent or "")[:64],
                "geometry": _geometry_dict(item.geometry),
            }
            row = existing.get(osm_id)
            if row is None:
                created.append(
                    Boundary(
                        account_id=connection.account_id,
                        connection=connection,
                        osm_id=osm_id[:64],
                        **values,
                    )
                )
                continue
            previous[osm_id] = row.geometry
            if assign(row, values):
                updated.append(row)
        gone = [row.pk for osm_id, row in existing.items() if osm_id not in boundaries]
        Boundary.objects.bulk_create(created)
        Boundary.objects.bulk_update(updated, ["name", "level", "parent_osm_id", "geometry"])
        if gone:
            Boundary.objects.filter(pk__in=gone).delete()
        mapped = _geometry_onto_units(connection, boundaries, previous, ctx)
    log(
        ctx,
        _("Boundaries: %(n)s; geometry copied onto %(units)s org units.")
        % {"n": len(boundaries), "units": mapped},
    )
    return {"boundaries": len(boundaries), "boundary_units": mapped}


def _geometry_onto_units(
    connection: Connection, boundaries: dict[str, Any], previous: dict[str, Any], ctx: Any
) -> int:
    by_name: dict[str, tuple[str, Any]] = {}
    for osm_id, item in sorted(boundaries.items(), key=lambda kv: int(kv[1].level or 0)):
        geometry = _geometry_dict(item.geometry)
        if geometry is not None:
            by_name.setdefault(str(item.name or "").strip().lower(), (osm_id, geometry))
    if not by_name:
        return 0
    panels = ContactGroup.objects.filter(
        connection=connection, role=GroupRole.PANEL, org_unit__isnull=False
    ).select_related("org_unit")
    units: dict[int, OrgUnit] = {}
    for panel in panels:
        unit = panel.org_unit
        assert unit is not None
        if unit.pk in units:
            continue
        match = by_name.get(unit.name.strip().lower()) or by_name.get(panel.name.strip().lower())
        if match is None:
            continue
        osm_id, geometry = match
        came_from_rapidpro = unit.geometry is not None and _plain(unit.geometry) in (
            _plain(_prepared(previous.get(osm_id))),
            _plain(_prepared(geometry)),
        )
        if unit.geometry is not None and not came_from_rapidpro:
            continue
        try:
            prepared = prepare_geometry(geometry)
        except GeometryError as exc:
            log(ctx, _("Boundary of %(unit)s not used: %(error)s") % {"unit": unit, "error": exc})
            continue
        if prepared is None or _plain(prepared.geojson) == _plain(unit.geometry):
            continue
        unit.geometry = _plain(prepared.geojson)
        unit.simplified_geometry = _plain(prepared.simplified)
        unit.bbox_min_lon, unit.bbox_min_lat, unit.bbox_max_lon, unit.bbox_max_lat = prepared.bbox
        units[unit.pk] = unit
    OrgUnit.objects.bulk_update(
        list(units.values()),
        [
            "geometry",
            "simplified_geometry",
            "bbox_min_lon",
            "bbox_min_lat",
            "bbox_max_lon",
            "bbox_max_lat",
        ],
    )
    return len(units)


def _prepared(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        prepared = prepare_geometry(geometry)
    except GeometryError:
        return None
    return prepared.geojson if prepared else None
