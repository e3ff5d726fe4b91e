"""Every write to the registry goes through these functions (one transaction each, audited)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.deletion import Collector, ProtectedError
from django.db.models.functions import Concat, Length, Substr
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.registry.geometry import prepare_geometry, validate_point
from closedloop.registry.models import DataSource, OrgUnit, OrgUnitType, SourceVersion
from closedloop.registry.paths import child_path, upper_bound

AUDITED_FIELDS = (
    "name",
    "type",
    "parent",
    "code",
    "ref",
    "validation_status",
    "latitude",
    "longitude",
    "altitude",
    "accuracy",
    "opening_date",
    "closing_date",
    "aliases",
    "extra",
)
EDITABLE_FIELDS = set(AUDITED_FIELDS) - {"parent"} | {"geometry"}


class RegistryError(ValueError):
    """A change the registry refuses, with a message for the user."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def default_version(account: Any) -> SourceVersion:
    """The account's default source and version, created on first use."""
    account_id = getattr(account, "pk", account)
    version = SourceVersion.objects.filter(is_default=True).select_related("source").first()
    if version:
        return version
    source, _created = DataSource.objects.get_or_create(
        account_id=account_id, name="Default", defaults={"is_default": True}
    )
    version, _created = SourceVersion.objects.get_or_create(
        account_id=account_id, source=source, number=1, defaults={"is_default": True}
    )
    return version


def orgunit_type_create(
    *,
    account: Any,
    actor: Any,
    name: str,
    short_name: str = "",
    depth: int | None = None,
    sub_types: list[OrgUnitType] | None = None,
) -> OrgUnitType:
    name = name.strip()
    if not name:
        raise RegistryError(_("A type needs a name."), "name")
    if OrgUnitType.objects.filter(name__iexact=name).exists():
        raise RegistryError(_("A type named “%(name)s” already exists.") % {"name": name}, "name")
    with transaction.atomic():
        unit_type = OrgUnitType.objects.create(
            account_id=getattr(account, "pk", account),
            name=name,
            short_name=short_name.strip(),
            depth=depth,
        )
        if sub_types:
            unit_type.sub_types.set(sub_types)
    return unit_type


def _apply_geometry(unit: OrgUnit, geojson: dict[str, Any] | None) -> None:
    prepared = prepare_geometry(geojson)
    if prepared is None:
        unit.geometry = unit.simplified_geometry = None
        unit.bbox_min_lon = unit.bbox_min_lat = unit.bbox_max_lon = unit.bbox_max_lat = None
        return
    unit.geometry = prepared.geojson
    unit.simplified_geometry = prepared.simplified
    unit.bbox_min_lon, unit.bbox_min_lat, unit.bbox_max_lon, unit.bbox_max_lat = prepared.bbox


def _check_type_allowed(parent: OrgUnit | None, unit_type: OrgUnitType | None) -> None:
    if parent is None or unit_type is None or parent.type is None:
        return
    allowed = list(parent.type.sub_types.all())
    if allowed and unit_type not in allowed:
        raise RegistryError(
            _("A %(type)s cannot be placed under a %(parent)s.")
            % {"type": unit_type.name, "parent": parent.type.name},
            "type",
        )


def orgunit_create(
    *,
    account: Any,
    actor: Any,
    name: str,
    parent: OrgUnit | None = None,
    type: OrgUnitType | None = None,
    version: SourceVersion | None = None,
    **fields: Any,
) -> OrgUnit:
    name = (name or "").strip()
    if not name:
        raise RegistryError(_("An org unit needs a name."), "name")
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"unknown org-unit fields: {sorted(unknown)}")
    lat, lon = validate_point(fields.pop("latitude", None), fields.pop("longitude", None))
    geojson = fields.pop("geometry", None)
    _check_type_allowed(parent, type)
    with transaction.atomic():
        unit = OrgUnit(
            account_id=getattr(account, "pk", account),
            version=version or (parent.version if parent else default_version(account)),
            name=name,
            parent=parent,
            type=type,
            latitude=lat,
            longitude=lon,
            path="",
            depth=(parent.depth + 1) if parent else 1,
            **fields,
        )
        _apply_geometry(unit, geojson)
        unit.save()
        unit.path = child_path(parent.path if parent else "", unit.pk)
        OrgUnit.objects.filter(pk=unit.pk).update(path=unit.path)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=unit,
            after=snapshot(unit, AUDITED_FIELDS),
        )
    return unit


def orgunit_update(*, account: Any, actor: Any, unit: OrgUnit, **changes: Any) -> OrgUnit:
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"unknown org-unit fields: {sorted(unknown)}")
    before = snapshot(unit, AUDITED_FIELDS)
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            raise RegistryError(_("An org unit needs a name."), "name")
    if "latitude" in changes or "longitude" in changes:
        unit.latitude, unit.longitude = validate_point(
            changes.pop("latitude", unit.latitude), changes.pop("longitude", unit.longitude)
        )
    if "type" in changes:
        _check_type_allowed(unit.parent, changes["type"])
    with transaction.atomic():
        if "geometry" in changes:
            _apply_geometry(unit, changes.pop("geometry"))
        for key, value in changes.items():
            setattr(unit, key, value)
        unit.save()
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=unit,
            before=before,
            after=snapshot(unit, AUDITED_FIELDS),
        )
    return unit


def orgunit_move(*, account: Any, actor: Any, unit: OrgUnit, new_parent: OrgUnit | None) -> OrgUnit:
    """Re-parent a unit; the paths and depths of its whole subtree change in one UPDATE."""
    if new_parent is not None and new_parent.path.startswith(unit.path):
        raise RegistryError(
            _("A unit cannot be moved under itself or its own descendants."), "parent"
        )
    if new_parent is not None and new_parent.version_id != unit.version_id:
        raise RegistryError(
            _("The new parent belongs to another version of the pyramid."), "parent"
        )
    _check_type_allowed(new_parent, unit.type)
    before = snapshot(unit, AUDITED_FIELDS)
    old_path = unit.path
    new_path = child_path(new_parent.path if new_parent else "", unit.pk)
    depth_delta = ((new_parent.depth + 1) if new_parent else 1) - unit.depth
    with transaction.atomic():
        OrgUnit.objects.filter(pk=unit.pk).update(parent=new_parent)
        OrgUnit.objects.filter(path__gte=old_path, path__lt=upper_bound(old_path)).update(
            path=Concat(Value(new_path), Substr(F("path"), Length(Value(old_path)) + 1)),
            depth=F("depth") + depth_delta,
        )
        unit.refresh_from_db()
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=unit,
            before=before,
            after=snapshot(unit, AUDITED_FIELDS),
        )
    return unit


def deletion_blockers(unit: OrgUnit) -> list[str]:
    """Why a unit cannot be deleted: what still points at it, with counts."""
    reasons = []
    children = OrgUnit.objects.filter(parent=unit).count()
    if children:
        reasons.append(_("%(n)d child unit(s) are under it") % {"n": children})
    collector = Collector(using="default")
    try:
        collector.collect([unit])
    except ProtectedError as exc:
        counts: dict[str, int] = {}
        for obj in exc.protected_objects:
            if isinstance(obj, OrgUnit):
                continue
            label = str(obj._meta.verbose_name_plural)
            counts[label] = counts.get(label, 0) + 1
        reasons += [
            _("%(n)d %(what)s point at it") % {"n": n, "what": what} for what, n in counts.items()
        ]
    return reasons


def orgunit_delete(*, account: Any, actor: Any, unit: OrgUnit) -> None:
    reasons = deletion_blockers(unit)
    if reasons:
        raise RegistryError(
            _("“%(name)s” cannot be deleted: %(reasons)s.")
            % {"name": unit.name, "reasons": "; ".join(reasons)}
        )
    with transaction.atomic():
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.DELETE,
            obj=unit,
            before=snapshot(unit, AUDITED_FIELDS),
        )
        unit.delete()
