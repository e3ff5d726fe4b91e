"""The people side of the contact sync: what RapidPro contacts look like to closedloop,
the person each contact is (reused when the RapidPro uuid or phone is already known),
identifiers from URNs, merged custom fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from closedloop.people.models import CustomField, Identifier, Person
from closedloop.people.services import PeopleError, normalise_phone
from closedloop.polls.models import Contact, ContactStatus

RAPIDPRO_SYSTEM = "rapidpro"
PHONE: str = Identifier.Kind.PHONE.value
EXTERNAL: str = Identifier.Kind.EXTERNAL.value
#: RapidPro field types → people custom field types
FIELD_TYPES = {"number": CustomField.Type.NUMBER, "datetime": CustomField.Type.DATE}


@dataclass
class Remote:
    """What closedloop keeps of one RapidPro contact (API drift tolerated)."""

    uuid: str
    name: str
    language: str
    status: str
    urns: list[str]
    group_uuids: list[str]
    fields: dict[str, Any]
    modified_on: dt.datetime | None
    last_seen_on: dt.datetime | None

    @classmethod
    def of(cls, item: Any) -> Remote:
        status = str(getattr(item, "status", None) or ContactStatus.ACTIVE)
        if status not in ContactStatus.values:
            status = ContactStatus.ACTIVE
        groups = [g.uuid for g in (getattr(item, "groups", None) or []) if getattr(g, "uuid", None)]
        fields = getattr(item, "fields", None)
        return cls(
            uuid=str(item.uuid)[:36],
            name=str(getattr(item, "name", None) or "")[:255],
            language=str(getattr(item, "language", None) or "")[:3],
            status=status,
            urns=[str(u) for u in (getattr(item, "urns", None) or []) if u],
            group_uuids=[str(g) for g in groups],
            fields=fields if isinstance(fields, dict) else {},
            modified_on=getattr(item, "modified_on", None),
            last_seen_on=getattr(item, "last_seen_on", None),
        )

    @property
    def person_name(self) -> str:
        if self.name:
            return self.name
        if self.urns:
            return self.urns[0].partition(":")[2][:255] or self.uuid
        return self.uuid


def identifiers_of(remote: Remote) -> set[tuple[str, str, str]]:
    """(kind, system, value) the contact's URNs and uuid give its person."""
    found: set[tuple[str, str, str]] = {(EXTERNAL, RAPIDPRO_SYSTEM, remote.uuid)}
    for urn in remote.urns:
        found.add(urn_identifier(urn))
    return found


def urn_identifier(urn: str) -> tuple[str, str, str]:
    scheme, _sep, path = urn.partition(":")
    scheme = scheme.lower()
    if scheme == "tel":
        try:
            return (PHONE, "", normalise_phone(urn))
        except PeopleError:
            pass  # a local number RapidPro kept as typed: still an id in RapidPro
    return (EXTERNAL, f"{RAPIDPRO_SYSTEM}-{scheme}"[:60], path[:255])


def merged_fields(current: dict[str, Any], remote: dict[str, Any]) -> dict[str, Any]:
    """RapidPro's keys overwrite (a cleared value removes the key); other keys are kept."""
    merged = dict(current or {})
    for key, value in remote.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def existing_people(new: list[Remote]) -> dict[str, Person]:
    """New contacts whose person already exists (same RapidPro uuid or phone, not yet
    tied to another contact): contact uuid → that person."""
    if not new:
        return {}
    wanted = {remote.uuid: identifiers_of(remote) for remote in new}
    values = {value for idents in wanted.values() for _k, _s, value in idents}
    rows = Identifier.objects.filter(
        Q(kind=Identifier.Kind.EXTERNAL, system=RAPIDPRO_SYSTEM)
        | Q(kind=Identifier.Kind.PHONE, system=""),
        value__in=list(values),
    ).values_list("kind", "system", "value", "person_id")
    owner = {(kind, system, value): pid for kind, system, value, pid in rows}
    if not owner:
        return {}
    taken = set(
        Contact.objects.filter(person_id__in=set(owner.values())).values_list(
            "person_id", flat=True
        )
    )
    chosen: dict[str, int] = {}
    used: set[int] = set(taken)
    for remote in new:
        idents = sorted(wanted[remote.uuid], key=lambda i: i[0] != EXTERNAL)
        for ident in idents:
            pid = owner.get(ident)
            if pid is not None and pid not in used:
                chosen[remote.uuid] = pid
                used.add(pid)
                break
    people = Person.objects.in_bulk(set(chosen.values()))
    return {uuid: people[pid] for uuid, pid in chosen.items() if pid in people}


def sync_identifiers(
    account_id: int,
    remotes: dict[str, Remote],
    persons: dict[str, int],
    old_urns: dict[str, list[str]],
) -> None:
    """Add the identifiers the URNs give; drop the ones of URNs removed in RapidPro."""
    if not persons:
        return
    current: dict[int, dict[tuple[str, str, str], int]] = {}
    for pk, pid, kind, system, value in Identifier.objects.filter(
        person_id__in=list(persons.values())
    ).values_list("pk", "person_id", "kind", "system", "value"):
        current.setdefault(pid, {})[(kind, system, value)] = pk
    create: list[Identifier] = []
    remove: list[int] = []
    for uuid, pid in persons.items():
        wanted = identifiers_of(remotes[uuid])
        have = current.get(pid, {})
        for old in old_urns.get(uuid, []):
            ident = urn_identifier(old)
            if ident not in wanted and ident in have:
                remove.append(have[ident])
        for kind, system, value in wanted - set(have):
            create.append(
                Identifier(
                    account_id=account_id,
                    person_id=pid,
                    kind=kind,
                    system=system,
                    value=value,
                )
            )
    if remove:
        Identifier.objects.filter(pk__in=remove).delete()
    # another person may hold the same phone: that one keeps it (no duplicate-key error)
    Identifier.objects.bulk_create(create, ignore_conflicts=True)


def ensure_custom_fields(
    account_id: int,
    remotes: Iterable[Remote],
    known: set[str],
    field_defs: dict[str, tuple[str, str]],
) -> None:
    """A people custom field for every RapidPro field our contacts carry a value in."""
    keys = {
        key
        for remote in remotes
        for key, value in remote.fields.items()
        if value not in (None, "") and key not in known
    }
    if not keys:
        return
    CustomField.objects.bulk_create(
        [
            CustomField(
                account_id=account_id,
                key=key[:64],
                label=field_defs.get(key, (key, "text"))[0][:200],
                type=FIELD_TYPES.get(field_defs.get(key, (key, "text"))[1], CustomField.Type.TEXT),
            )
            for key in sorted(keys)
        ],
        ignore_conflicts=True,
    )
    known.update(keys)
