"""Contact sync: RapidPro contacts of the panel and cohort groups → ``Contact`` + ``Person``.

Which contacts: members of the groups used as panels or cohorts. A first (or ``full``)
sync lists them group by group, or lists every contact and keeps the members when that
takes fewer requests; later syncs list only contacts modified since the watermark
``Connection.contacts_after`` (inclusive, so the newest one is read again, harmlessly),
plus in full any newly tracked group none of whose members is known yet.

Each page is written in bulk with a fixed number of queries (existing rows loaded by
uuid in one query, ``bulk_create`` / ``bulk_update`` of what changed, identifiers
diffed per page). Placement is then reconciled for every contact of the connection in
a few queries: the panel (the deepest org unit among the contact's panel groups),
``is_active`` (status active and still in a tracked group) and people cohorts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.people.models import CustomField, Person
from closedloop.polls.client import Pages, client_for, fetch_all
from closedloop.polls.models import (
    Connection,
    Contact,
    ContactGroup,
    ContactStatus,
    DataField,
    GroupRole,
)
from closedloop.polls.sync_common import assign
from closedloop.polls.sync_people import (
    Remote,
    ensure_custom_fields,
    existing_people,
    merged_fields,
    sync_identifiers,
)

#: RapidPro's page size, to estimate how many requests a listing takes
PAGE_SIZE = 250
#: contacts read one by one per call (runs of unknown contacts, placeholders to complete);
#: the API filters by one uuid per request, so more wait for the next sync
FETCH_ONE_BY_ONE_LIMIT = 100
CONTACT_FIELDS = [
    "name",
    "language",
    "status",
    "urns",
    "group_uuids",
    "fields",
    "modified_on",
    "last_seen_on",
    "panel_id",
    "org_unit_id",
    "is_active",
    "updated_at",
]
PERSON_FIELDS = ["name", "language", "fields", "org_unit_id", "is_active", "updated_at"]
CohortLink = Person.cohorts.through


@dataclass
class _Group:
    pk: int
    role: str
    org_unit_id: int | None
    depth: int
    cohort_id: int | None


@dataclass
class _State:
    connection: Connection
    tracked: dict[str, _Group]
    field_defs: dict[str, tuple[str, str]]
    known_custom_fields: set[str]
    counts: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    newest: dt.datetime | None = None

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def placement(
        self, group_uuids: Iterable[str], status: str
    ) -> tuple[int | None, int | None, bool]:
        """(panel id, org unit id, active) from the contact's groups and status."""
        panel: _Group | None = None
        in_tracked = False
        for uuid in group_uuids:
            group = self.tracked.get(uuid)
            if group is None:
                continue
            in_tracked = True
            if group.role != GroupRole.PANEL:
                continue
            if panel is None or group.depth > panel.depth:
                panel = group
        active = in_tracked and status == ContactStatus.ACTIVE
        if panel is None:
            return None, None, active
        return panel.pk, panel.org_unit_id, active


def _tracked_groups(connection: Connection) -> dict[str, _Group]:
    rows = ContactGroup.objects.filter(
        connection=connection, is_present=True, role__in=[GroupRole.PANEL, GroupRole.COHORT]
    ).values_list("uuid", "pk", "role", "org_unit_id", "org_unit__depth", "cohort_id", "count")
    return {
        uuid: _Group(pk, role, unit_id, depth if unit_id else -1, cohort_id)
        for uuid, pk, role, unit_id, depth, cohort_id, _count in rows
    }


def _requests(count: int) -> int:
    return max(1, math.ceil(count / PAGE_SIZE))


def _plan(
    connection: Connection, state: _State, full: bool, local_groups: set[str]
) -> list[dict[str, Any]]:
    """The listings to read: ``[{"group": uuid} | {"after": dt} | {}]``."""
    counts = dict(
        ContactGroup.objects.filter(connection=connection, is_present=True).values_list(
            "uuid", "count"
        )
    )
    all_requests = _requests(sum(counts.values()))

    def whole(groups: list[str]) -> list[dict[str, Any]]:
        if not groups:
            return []
        per_group = sum(_requests(counts.get(g, 0)) for g in groups)
        if per_group <= all_requests:
            return [{"group": g} for g in groups]
        return [{}]

    tracked = list(state.tracked)
    if full or connection.contacts_after is None:
        return whole(tracked)
    missing = [g for g in tracked if counts.get(g, 0) > 0 and g not in local_groups]
    listings = whole(missing)
    if {} in listings:
        return [{}]
    return [{"after": connection.contacts_after}, *listings]


def _new_state(connection: Connection) -> _State:
    field_defs = {
        key: (label, value_type)
        for key, label, value_type in DataField.objects.filter(connection=connection).values_list(
            "key", "label", "value_type"
        )
    }
    return _State(
        connection=connection,
        tracked=_tracked_groups(connection),
        field_defs=field_defs,
        known_custom_fields=set(CustomField.objects.values_list("key", flat=True)),
        newest=connection.contacts_after,
    )


def _read_one_by_one(client: Any, uuids: Iterable[str]) -> list[Remote]:
    remotes: list[Remote] = []
    for uuid in list(dict.fromkeys(uuids))[:FETCH_ONE_BY_ONE_LIMIT]:
        remotes.extend(Remote.of(item) for item in fetch_all(client.get_contacts(uuid=uuid)))
    return remotes


def fetch_contacts(connection: Connection, uuids: Iterable[str]) -> dict[str, Contact]:
    """Read these contacts from RapidPro now, whatever their groups (the run ingest asks
    for contacts it does not know yet); returns the stored ``Contact`` rows by uuid.

    The watermark does not move: the next contact sync still reads every change.
    """
    uuids = [str(u) for u in uuids if u]
    if not uuids:
        return {}
    state = _new_state(connection)
    remotes = _read_one_by_one(client_for(connection), uuids)
    _upsert_page(state, remotes, keep_all=True)
    found = [r.uuid for r in remotes]
    return {c.uuid: c for c in Contact.objects.filter(connection=connection, uuid__in=found)}


def sync_contacts(connection: Connection, ctx: Any = None, full: bool = False) -> dict[str, int]:
    """Sync the contacts of the panel and cohort groups (see the module docstring)."""
    client = client_for(connection)
    state = _new_state(connection)
    local_groups: set[str] = set()
    local_count = 0
    for uuids in Contact.objects.filter(connection=connection).values_list(
        "group_uuids", flat=True
    ):
        local_count += 1
        local_groups.update(uuids or [])
    listings = _plan(connection, state, full, local_groups)
    read = 0
    for listing in listings:
        pages = Pages(client.get_contacts(**listing))
        for page in pages:
            _upsert_page(state, [Remote.of(item) for item in page if item.uuid])
            read += len(page)
            if ctx is not None:
                ctx.progress(read, None, _("Contacts: %(n)s read.") % {"n": read})
    deleted: set[str] = set()
    if local_count:  # contacts created by this sync cannot have been deleted before it
        after = connection.contacts_after
        for page in Pages(client.get_contacts(deleted=True, after=after)):
            deleted.update(_mark_deleted(state, page))
    if not any("after" in listing for listing in listings):
        _strip_unseen(state, listings, deleted)
    # contacts created as placeholders (a run arrived before the contact): complete them
    placeholders = (
        Contact.objects.filter(connection=connection, modified_on__isnull=True)
        .exclude(status=ContactStatus.DELETED)
        .values_list("uuid", flat=True)[: FETCH_ONE_BY_ONE_LIMIT * 2]
    )
    missing = [u for u in placeholders if u not in state.seen and u not in deleted]
    if missing:
        asked = missing[:FETCH_ONE_BY_ONE_LIMIT]
        remotes = _read_one_by_one(client, asked)
        _upsert_page(state, remotes, keep_all=True)
        gone = set(asked) - {r.uuid for r in remotes}
        if gone:  # RapidPro no longer has them
            Contact.objects.filter(connection=connection, uuid__in=list(gone)).update(
                status=ContactStatus.DELETED, is_active=False, updated_at=timezone.now()
            )
    counts = _reconcile(state)
    if state.newest != connection.contacts_after:
        connection.contacts_after = state.newest
        Connection.objects.filter(pk=connection.pk).update(contacts_after=state.newest)
    result = {
        "contacts_read": read,
        "contacts_created": state.counts.get("contacts_created", 0),
        "contacts_updated": state.counts.get("contacts_updated", 0),
        "contacts_deleted": len(deleted),
        **counts,
    }
    if ctx is not None:
        ctx.log(
            _(
                "Contacts: %(read)s read, %(created)s new, %(updated)s updated; "
                "%(active)s active, %(unplaced)s without a panel."
            )
            % {
                "read": read,
                "created": result["contacts_created"],
                "updated": result["contacts_updated"],
                "active": counts["contacts"],
                "unplaced": counts["contacts_unplaced"],
            }
        )
    return result


def _note_modified(state: _State, modified_on: dt.datetime | None) -> None:
    if modified_on is not None and (state.newest is None or modified_on > state.newest):
        state.newest = modified_on


# --- one page -----------------------------------------------------------------------------


def _upsert_page(state: _State, remotes: list[Remote], *, keep_all: bool = False) -> None:
    """Write one page of RapidPro contacts (a fixed number of queries).

    Contacts outside the tracked groups are skipped unless already known (or ``keep_all``).
    """
    connection = state.connection
    by_uuid: dict[str, Remote] = {}
    for remote in remotes:
        by_uuid[remote.uuid] = remote
        _note_modified(state, remote.modified_on)
    if not by_uuid:
        return
    now = timezone.now()
    with transaction.atomic():
        existing = {
            c.uuid: c
            for c in Contact.objects.filter(connection=connection, uuid__in=list(by_uuid))
            .select_related("person")
            .order_by()
        }
        keep = {
            uuid: remote
            for uuid, remote in by_uuid.items()
            if keep_all or uuid in existing or any(g in state.tracked for g in remote.group_uuids)
        }
        state.seen.update(keep)
        old_urns = {uuid: list(existing[uuid].urns or []) for uuid in keep if uuid in existing}
        new = [remote for uuid, remote in keep.items() if uuid not in existing]
        reused = existing_people(new)
        people_created: list[Person] = []
        contacts_created: list[Contact] = []
        person_updates: dict[int, Person] = {}
        for remote in new:
            panel_id, unit_id, active = state.placement(remote.group_uuids, remote.status)
            person = reused.get(remote.uuid)
            if person is None:
                person = Person(
                    account_id=connection.account_id,
                    name=remote.person_name,
                    org_unit_id=unit_id,
                    language=remote.language,
                    fields=merged_fields({}, remote.fields),
                    is_active=active,
                )
                people_created.append(person)
            elif assign(person, _person_values(person, remote, unit_id, active)):
                person.updated_at = now
                person_updates[person.pk] = person
            contacts_created.append(
                Contact(
                    account_id=connection.account_id,
                    connection=connection,
                    person=person,
                    uuid=remote.uuid,
                    **_contact_values(remote, panel_id, unit_id, active),
                )
            )
        Person.objects.bulk_create(people_created)
        for contact in contacts_created:
            contact.person_id = contact.person.pk
        Contact.objects.bulk_create(contacts_created)
        contact_updates: list[Contact] = []
        for uuid, remote in keep.items():
            known = existing.get(uuid)
            if known is None or known.push_pending:
                continue  # new, or local edits waiting to reach RapidPro
            contact = known
            panel_id, unit_id, active = state.placement(remote.group_uuids, remote.status)
            if assign(contact, _contact_values(remote, panel_id, unit_id, active)):
                contact.updated_at = now
                contact_updates.append(contact)
            person = contact.person
            if assign(person, _person_values(person, remote, unit_id, active)):
                person.updated_at = now
                person_updates[person.pk] = person
        Contact.objects.bulk_update(contact_updates, CONTACT_FIELDS)
        Person.objects.bulk_update(list(person_updates.values()), PERSON_FIELDS)
        persons = {uuid: c.person_id for uuid, c in existing.items() if uuid in keep}
        persons.update({c.uuid: c.person_id for c in contacts_created})
        sync_identifiers(connection.account_id, keep, persons, old_urns)
        ensure_custom_fields(
            connection.account_id, keep.values(), state.known_custom_fields, state.field_defs
        )
    state.add("contacts_created", len(contacts_created))
    state.add("contacts_updated", len(contact_updates))


def _contact_values(
    remote: Remote, panel_id: int | None, unit_id: int | None, active: bool
) -> dict[str, Any]:
    return {
        "name": remote.name,
        "language": remote.language,
        "status": remote.status,
        "urns": remote.urns,
        "group_uuids": remote.group_uuids,
        "fields": {k: v for k, v in remote.fields.items() if v is not None},
        "modified_on": remote.modified_on,
        "last_seen_on": remote.last_seen_on,
        "panel_id": panel_id,
        "org_unit_id": unit_id,
        "is_active": active,
    }


def _person_values(
    person: Person, remote: Remote, unit_id: int | None, active: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": remote.person_name,
        "language": remote.language,
        "fields": merged_fields(person.fields, remote.fields),
        "is_active": active,
    }
    if unit_id is not None:
        values["org_unit_id"] = unit_id  # unplaced: keep what the registry/people set
    return values


# --- deletions, departures and placement --------------------------------------------------


def _mark_deleted(state: _State, page: list[Any]) -> set[str]:
    """Contacts deleted in RapidPro: status deleted, inactive (data kept)."""
    uuids = set()
    for item in page:
        if item.uuid:
            uuids.add(str(item.uuid))
            _note_modified(state, getattr(item, "modified_on", None))
    if uuids:
        Contact.objects.filter(connection=state.connection, uuid__in=list(uuids)).exclude(
            status=ContactStatus.DELETED
        ).update(status=ContactStatus.DELETED, is_active=False, updated_at=timezone.now())
    return uuids


def _strip_unseen(state: _State, listings: list[dict[str, Any]], deleted: set[str]) -> None:
    """After whole listings: known contacts not seen are no longer in those groups."""
    listed_groups = (
        set(state.tracked) if {} in listings else {g["group"] for g in listings if "group" in g}
    )
    if not listed_groups:
        return
    now = timezone.now()
    updates = []
    rows = Contact.objects.filter(connection=state.connection).values_list(
        "pk", "uuid", "group_uuids"
    )
    for pk, uuid, group_uuids in rows:
        if uuid in state.seen or uuid in deleted:
            continue
        kept = [g for g in group_uuids or [] if g not in listed_groups]
        if kept != list(group_uuids or []):
            updates.append(Contact(pk=pk, group_uuids=kept, updated_at=now))
    Contact.objects.bulk_update(updates, ["group_uuids", "updated_at"], batch_size=1000)


def _reconcile(state: _State) -> dict[str, int]:
    """Panel, org unit, active flag and cohorts of every contact from its stored groups
    (group roles or panel org units may have changed since the contact was read)."""
    connection = state.connection
    now = timezone.now()
    contacts = list(
        Contact.objects.filter(connection=connection).values_list(
            "pk", "person_id", "group_uuids", "status", "panel_id", "org_unit_id", "is_active"
        )
    )
    people = {
        pk: (unit_id, active)
        for pk, unit_id, active in Person.objects.filter(
            rapidpro_contact__connection=connection
        ).values_list("pk", "org_unit_id", "is_active")
    }
    contact_updates: list[Contact] = []
    person_updates: list[Person] = []
    wanted_links: set[tuple[int, int]] = set()
    active_count = unplaced = 0
    for pk, person_id, group_uuids, status, panel_id, unit_id, is_active in contacts:
        new_panel, new_unit, active = state.placement(group_uuids or [], status)
        if (new_panel, new_unit, active) != (panel_id, unit_id, is_active):
            contact_updates.append(
                Contact(
                    pk=pk,
                    panel_id=new_panel,
                    org_unit_id=new_unit,
                    is_active=active,
                    updated_at=now,
                )
            )
        person_unit, person_active = people.get(person_id, (None, True))
        target_unit = new_unit if new_unit is not None else person_unit
        if (target_unit, active) != (person_unit, person_active):
            person_updates.append(
                Person(pk=person_id, org_unit_id=target_unit, is_active=active, updated_at=now)
            )
        if active:
            active_count += 1
            unplaced += new_unit is None
        for uuid in group_uuids or []:
            group = state.tracked.get(uuid)
            if group is not None and group.cohort_id is not None:
                wanted_links.add((person_id, group.cohort_id))
    with transaction.atomic():
        Contact.objects.bulk_update(
            contact_updates, ["panel_id", "org_unit_id", "is_active", "updated_at"], batch_size=1000
        )
        Person.objects.bulk_update(
            person_updates, ["org_unit_id", "is_active", "updated_at"], batch_size=1000
        )
        _reconcile_cohorts(state, wanted_links)
    return {
        "contacts": active_count,
        "contacts_unplaced": unplaced,
        "contacts_inactive": len(contacts) - active_count,
    }


def _reconcile_cohorts(state: _State, wanted: set[tuple[int, int]]) -> None:
    cohort_ids = {g.cohort_id for g in state.tracked.values() if g.cohort_id is not None}
    if not cohort_ids:
        return
    have = set(
        CohortLink.objects.filter(
            cohort_id__in=cohort_ids,
            person__rapidpro_contact__connection=state.connection,
        ).values_list("person_id", "cohort_id")
    )
    CohortLink.objects.bulk_create(
        [CohortLink(person_id=p, cohort_id=c) for p, c in sorted(wanted - have)],
        ignore_conflicts=True,
        batch_size=1000,
    )
    by_cohort: dict[int, list[int]] = {}
    for person_id, cohort_id in have - wanted:
        by_cohort.setdefault(cohort_id, []).append(person_id)
    for cohort_id, person_ids in by_cohort.items():
        for start in range(0, len(person_ids), 500):
            CohortLink.objects.filter(
                cohort_id=cohort_id, person_id__in=person_ids[start : start + 500]
            ).delete()
