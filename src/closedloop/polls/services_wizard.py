"""Setup-wizard writes: which flows are polls, which RapidPro groups are panels (linked
to an org unit, or one created under a parent) or cohorts, which contact fields are
visible. All or nothing, audited. Re-exported by :mod:`closedloop.polls.services`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.people.models import Cohort, Person
from closedloop.polls.models import Connection, Contact, ContactGroup, DataField, GroupRole, Poll
from closedloop.polls.selectors import polls_settings
from closedloop.polls.services_base import SetupError, _id
from closedloop.registry.models import OrgUnit

# --- the setup wizard ----------------------------------------------------------------------


def set_poll_selection(
    *, connection: Connection, flow_uuids: Iterable[str], user: Any
) -> dict[str, int]:
    """Exactly the flows in ``flow_uuids`` are polls of this connection."""
    wanted = set(flow_uuids)
    known = set(Poll.objects.filter(connection=connection).values_list("flow_uuid", flat=True))
    unknown = sorted(wanted - known)
    if unknown:
        raise SetupError(
            _("There is no flow %(uuid)s in this connection; refresh the list from RapidPro.")
            % {"uuid": unknown[0]},
            "flows",
        )
    polls = Poll.objects.filter(connection=connection)
    with transaction.atomic():
        changed = list(polls.filter(is_active=False, flow_uuid__in=wanted)) + list(
            polls.filter(is_active=True).exclude(flow_uuid__in=wanted)
        )
        for poll in changed:
            record_audit(
                account=connection.account_id,
                actor=user,
                action=AuditEntry.Action.UPDATE,
                obj=poll,
                before={"is_active": poll.is_active},
                after={"is_active": not poll.is_active},
            )
        polls.filter(flow_uuid__in=wanted).update(is_active=True)
        polls.exclude(flow_uuid__in=wanted).update(is_active=False)
    return {"selected": len(wanted), "changed": len(changed)}


RoleChoice = tuple[str, int | None]


def _unit_type_under(parent: OrgUnit | None) -> Any:
    if parent is None or parent.type is None:
        return None
    sub_types = list(parent.type.sub_types.all()[:2])
    return sub_types[0] if len(sub_types) == 1 else None


def _check_roles(
    connection: Connection, roles: Mapping[int, RoleChoice]
) -> tuple[dict[int, ContactGroup], dict[int, OrgUnit], dict[int, Cohort]]:
    groups = {
        g.pk: g for g in ContactGroup.objects.filter(connection=connection, pk__in=list(roles))
    }
    for group_id in roles:
        if group_id not in groups:
            raise SetupError(
                _("There is no group %(id)s in this connection.") % {"id": group_id},
                f"group_{group_id}",
            )
    unit_ids = {v for r, v in roles.values() if r in ("panel", "panel_new") and v is not None}
    units = {
        u.pk: u
        for u in OrgUnit.objects.filter(
            account_id=connection.account_id, pk__in=unit_ids
        ).select_related("type")
    }
    cohort_ids = {v for r, v in roles.values() if r == "cohort" and v is not None}
    cohorts = {
        c.pk: c for c in Cohort.objects.filter(account_id=connection.account_id, pk__in=cohort_ids)
    }
    for group_id, (role, value) in roles.items():
        group = groups[group_id]
        field = f"group_{group_id}"
        if role not in ("", "panel", "panel_new", "cohort"):
            raise SetupError(_("“%(role)s” is not a role for a group.") % {"role": role}, field)
        if role == "panel" and value is None:
            raise SetupError(
                _("Choose the org unit the panel “%(group)s” stands for.") % {"group": group.name},
                field,
            )
        if role in ("panel", "panel_new") and value is not None and value not in units:
            raise SetupError(
                _("Group “%(group)s”: there is no org unit with id %(id)s.")
                % {"group": group.name, "id": value},
                field,
            )
        if role == "cohort" and value is not None and value not in cohorts:
            raise SetupError(
                _("Group “%(group)s”: there is no cohort with id %(id)s.")
                % {"group": group.name, "id": value},
                field,
            )
    return groups, units, cohorts


def _new_unit_for(group: ContactGroup, parent: OrgUnit | None, user: Any) -> OrgUnit:
    from closedloop.registry.services import RegistryError, orgunit_create

    siblings = OrgUnit.objects.filter(account_id=group.account_id, name__iexact=group.name.strip())
    siblings = (
        siblings.filter(parent=parent)
        if parent is not None
        else siblings.filter(parent__isnull=True)
    )
    if siblings.exists():
        raise SetupError(
            _("An org unit named “%(name)s” already exists there; link the panel to it instead.")
            % {"name": group.name},
            f"group_{group.pk}",
        )
    try:
        return orgunit_create(
            account=group.account_id,
            actor=user,
            name=group.name,
            parent=parent,
            type=_unit_type_under(parent),
        )
    except RegistryError as exc:
        raise SetupError(str(exc), f"group_{group.pk}") from None


def _cohort_for(group: ContactGroup, user: Any) -> Cohort:
    existing = Cohort.objects.filter(account_id=group.account_id, name__iexact=group.name).first()
    if existing is not None:
        return existing
    cohort = Cohort.objects.create(account_id=group.account_id, name=group.name[:200])
    record_audit(
        account=group.account_id,
        actor=user,
        action=AuditEntry.Action.CREATE,
        obj=cohort,
        after={"name": cohort.name},
    )
    return cohort


def set_group_roles(
    *, connection: Connection, roles: Mapping[int, RoleChoice], user: Any
) -> dict[str, int]:
    """Use RapidPro groups as panels (→ org units) or cohorts (→ people cohorts).

    ``roles``: ``{group_id: ("panel", org_unit_id) | ("panel_new", parent_unit_id | None)
    | ("cohort", cohort_id | None) | ("", None)}``. ``panel_new`` creates an org unit named
    like the group under the parent; a cohort ``None`` links (or creates) the cohort named
    like the group. Groups not in ``roles`` keep their role. All or nothing.
    """
    groups, units, cohorts = _check_roles(connection, roles)
    changed = 0
    with transaction.atomic():
        for group_id, (role, value) in roles.items():
            group = groups[group_id]
            before = snapshot(group, ("role", "org_unit", "cohort"))
            new_unit: OrgUnit | None = None
            new_cohort: Cohort | None = None
            if role == "panel":
                new_unit = units[value] if value is not None else None
            elif role == "panel_new":
                parent = units[value] if value is not None else None
                if (
                    group.role == GroupRole.PANEL
                    and group.org_unit is not None
                    and (
                        group.org_unit.parent_id == _id(parent)
                        and group.org_unit.name.lower() == group.name.lower()
                    )
                ):
                    new_unit = group.org_unit  # created before; keep it
                else:
                    new_unit = _new_unit_for(group, parent, user)
            elif role == "cohort":
                new_cohort = cohorts[value] if value is not None else _cohort_for(group, user)
            group.role = GroupRole.PANEL if role in ("panel", "panel_new") else role
            group.org_unit = new_unit
            group.cohort = new_cohort
            after = snapshot(group, ("role", "org_unit", "cohort"))
            if after == before:
                continue
            changed += 1
            group.save(update_fields=["role", "org_unit", "cohort", "updated_at"])
            _follow_panel(group)
            record_audit(
                account=connection.account_id,
                actor=user,
                action=AuditEntry.Action.UPDATE,
                obj=group,
                before=before,
                after=after,
            )
    return {"changed": changed}


def _follow_panel(group: ContactGroup) -> None:
    """Contacts placed by this group follow its new org unit (or lose it)."""
    contacts = Contact.objects.filter(panel=group)
    if group.role == GroupRole.PANEL and group.org_unit_id is not None:
        Person.objects.filter(rapidpro_contact__panel=group).update(org_unit_id=group.org_unit_id)
        contacts.update(org_unit_id=group.org_unit_id)
    else:
        Person.objects.filter(rapidpro_contact__panel=group).update(org_unit_id=None)
        contacts.update(panel=None, org_unit_id=None)


def set_visible_fields(*, connection: Connection, keys: Iterable[str], user: Any) -> dict[str, int]:
    """Exactly these contact fields are shown on contact pages and offered as filters."""
    wanted = set(keys)
    fields = DataField.objects.filter(connection=connection)
    unknown = sorted(wanted - set(fields.values_list("key", flat=True)))
    if unknown:
        raise SetupError(
            _("There is no contact field “%(key)s” in this connection.") % {"key": unknown[0]},
            "fields",
        )
    with transaction.atomic():
        fields.filter(key__in=wanted).update(is_visible=True)
        fields.exclude(key__in=wanted).update(is_visible=False)
        row = polls_settings(connection.account_id)
        mine = set(DataField.objects.filter(connection=connection).values_list("key", flat=True))
        others = [k for k in row.visible_fields if k not in mine]
        before = {"visible_fields": list(row.visible_fields)}
        row.visible_fields = sorted(set(others) | wanted)
        row.save(update_fields=["visible_fields"])
        record_audit(
            account=connection.account_id,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=row,
            before=before,
            after={"visible_fields": row.visible_fields},
        )
    return {"visible": len(wanted)}
