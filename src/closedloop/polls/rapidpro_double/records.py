"""Builders of API-v2-shaped records (flows, groups, fields, contacts, runs, messages …).

Used by ``FakeRapidPro.add_*``, the write endpoints and the generator, so that every record
has the shape a current RapidPro server returns.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from .flows import Categorizer, build_flow, categorizers
from .state import DoubleState, iso, parse_time

EXIT_TYPES = {"completed", "interrupted", "expired", "failed", None}
CONTACT_STATUSES = {"active", "blocked", "stopped", "archived"}


class Ids:
    """Deterministic uuid4-shaped ids from a seed."""

    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def __call__(self) -> str:
        bits = self.rng.getrandbits(128)
        # the version-4 / RFC 4122 variant bits, as uuid.UUID(int=..., version=4) sets them
        bits = (bits & ~(0xF000 << 64)) | (4 << 76)
        bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def when(value: str | dt.datetime | None, state: DoubleState) -> str:
    if value is None:
        return state.now()
    if isinstance(value, dt.datetime):
        return iso(value)
    return iso(parse_time(value))


def ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"uuid": obj["uuid"], "name": obj.get("name")}


def contact_ref(contact: dict[str, Any]) -> dict[str, Any]:
    urns = contact.get("urns") or []
    return {"uuid": contact["uuid"], "urn": urns[0] if urns else None, "name": contact.get("name")}


def make_flow(
    state: DoubleState,
    ids: Ids,
    name: str,
    questions: list[dict[str, Any]],
    *,
    uuid: str | None = None,
    archived: bool = False,
    created_on: str | dt.datetime | None = None,
) -> dict[str, Any]:
    flow_uuid = uuid or ids()
    results, definition = build_flow(
        new_uuid=ids,
        flow_uuid=flow_uuid,
        name=name,
        questions=questions,
        language=state.org.get("primary_language") or "eng",
    )
    stamp = when(created_on, state)
    flow = {
        "uuid": flow_uuid,
        "name": name,
        "type": "message",
        "archived": archived,
        "labels": [],
        "expires": 10080,
        "runs": {
            "active": 0,
            "waiting": 0,
            "completed": 0,
            "interrupted": 0,
            "expired": 0,
            "failed": 0,
        },
        "results": results,
        "parent_refs": [],
        "created_on": stamp,
        "modified_on": stamp,
    }
    with state.lock:
        state.flows.append(flow)
        state.definitions[flow_uuid] = definition
    return flow


def make_group(
    state: DoubleState, ids: Ids, name: str, *, uuid: str | None = None, query: str | None = None
) -> dict[str, Any]:
    group = {
        "uuid": uuid or ids(),
        "name": name,
        "query": query,
        "status": "ready",
        "system": False,
        "count": 0,
    }
    with state.lock:
        state.groups.append(group)
    return group


def make_field(state: DoubleState, key: str, name: str | None = None, type: str = "text") -> dict:
    field = {
        "key": key,
        "name": name or key.replace("_", " ").title(),
        "type": type,
        "featured": False,
        "priority": 0,
        "usages": {"campaign_events": 0, "flows": 0, "groups": 0},
    }
    with state.lock:
        state.fields.append(field)
        for contact in state.contacts:
            contact.setdefault("fields", {}).setdefault(key, None)
    return field


def make_contact(
    state: DoubleState,
    ids: Ids,
    name: str | None,
    urns: list[str] | None = None,
    *,
    groups: list[Any] | None = None,
    fields: dict[str, Any] | None = None,
    language: str | None = "eng",
    status: str = "active",
    uuid: str | None = None,
    created_on: str | dt.datetime | None = None,
    modified_on: str | dt.datetime | None = None,
    last_seen_on: str | dt.datetime | None = None,
) -> dict[str, Any]:
    """``groups`` are group dicts, uuids or names (created when missing)."""
    if status not in CONTACT_STATUSES:
        raise ValueError(f"status must be one of {sorted(CONTACT_STATUSES)}")
    group_refs = []
    for item in groups or []:
        if isinstance(item, dict):
            group = item
        else:
            group = state.group(str(item)) or make_group(state, ids, str(item))
        group_refs.append(ref(group))
    all_fields = {f["key"]: None for f in state.fields}
    all_fields.update(fields or {})
    created = when(created_on, state)
    contact = {
        "uuid": uuid or ids(),
        "name": name,
        "status": status,
        "language": language,
        "urns": list(urns or []),
        "groups": group_refs,
        "notes": [],
        "fields": all_fields,
        "flow": None,
        "created_on": created,
        "modified_on": when(modified_on, state) if modified_on else created,
        "last_seen_on": when(last_seen_on, state) if last_seen_on else None,
    }
    with state.lock:
        state.contacts.append(contact)
    return contact


def _categorizers(state: DoubleState, flow_uuid: str) -> dict[str, Categorizer]:
    definition = state.definitions.get(flow_uuid) or {}
    cache = state.categorizer_cache
    hit = cache.get(flow_uuid)
    if hit is None or hit[0] != id(definition):
        hit = (id(definition), categorizers(definition))
        cache[flow_uuid] = hit
    return hit[1]


def make_run(
    state: DoubleState,
    ids: Ids,
    flow_uuid: str,
    contact_uuid: str,
    values: dict[str, Any] | None = None,
    *,
    exit_type: str | None = "completed",
    start_uuid: str | None = None,
    uuid: str | None = None,
    created_on: str | dt.datetime | None = None,
    modified_on: str | dt.datetime | None = None,
    step_seconds: int = 30,
) -> dict[str, Any]:
    """A run of ``flow_uuid`` by ``contact_uuid``. ``values`` maps result keys to the
    contact's input (str or number), categorised with the flow's router cases like
    RapidPro does; a dict value is used as the value object itself (merged over defaults).
    """
    if exit_type not in EXIT_TYPES:
        raise ValueError(f"exit_type must be one of {EXIT_TYPES}")
    flow = state.flow(flow_uuid)
    if flow is None:
        raise KeyError(f"no flow {flow_uuid}")
    contact = state.contact(contact_uuid) or next(
        (c for c in state.deleted_contacts if c["uuid"] == contact_uuid), None
    )
    if contact is None:
        raise KeyError(f"no contact {contact_uuid}")
    cats = _categorizers(state, flow_uuid)
    created = parse_time(when(created_on, state))
    out_values: dict[str, Any] = {}
    path = []
    offset = 0
    for key, raw in (values or {}).items():
        cat = cats.get(key)
        offset += step_seconds
        stamp = iso(created + dt.timedelta(seconds=offset))
        node = cat.node_uuid if cat else ids()
        if isinstance(raw, dict):
            value = {"name": cat.name if cat else key, "value": None, "category": None}
            value.update({"node": node, "time": stamp, "input": None})
            value.update(raw)
        else:
            text = str(raw)
            val, category = cat(text) if cat else (text, "All Responses")
            value = {
                "name": cat.name if cat else key,
                "value": val,
                "category": category,
                "node": node,
                "time": stamp,
                "input": text,
            }
        out_values[key] = value
        path.append({"node": value["node"], "time": value["time"]})
    if not path:
        first = next(iter(cats.values()), None)
        if first is not None:
            path.append({"node": first.node_uuid, "time": iso(created)})
    modified = (
        when(modified_on, state) if modified_on else iso(created + dt.timedelta(seconds=offset + 5))
    )
    run = {
        "uuid": uuid or ids(),
        "flow": ref(flow),
        "contact": contact_ref(contact),
        "start": {"uuid": start_uuid} if start_uuid else None,
        "responded": bool(out_values),
        "path": path,
        "values": out_values,
        "created_on": iso(created),
        "modified_on": modified,
        "exited_on": modified if exit_type else None,
        "exit_type": exit_type,
    }
    with state.lock:
        state.runs.append(run)
        counts = flow.setdefault("runs", {})
        bucket = exit_type or "active"
        counts[bucket] = counts.get(bucket, 0) + 1
    return run


def make_message(
    state: DoubleState,
    ids: Ids,
    contact: dict[str, Any],
    text: str,
    *,
    direction: str = "in",
    status: str | None = None,
    visibility: str = "visible",
    flow: dict[str, Any] | None = None,
    created_on: str | dt.datetime | None = None,
    urn: str | None = None,
    uuid: str | None = None,
) -> dict[str, Any]:
    created = when(created_on, state)
    outgoing = direction == "out"
    channel = state.channel
    message: dict[str, Any] = {
        "uuid": uuid or ids(),
        "contact": ref(contact),
        "urn": urn or (contact.get("urns") or [None])[0],
        "channel": ref(channel) if channel else None,
        "direction": direction,
        "type": "text",
        "status": status or ("wired" if outgoing else "handled"),
        "visibility": visibility,
        "text": text,
        "labels": [],
        "attachments": [],
        "quick_replies": [],
        "flow": ref(flow) if flow else None,
        "created_on": created,
        "sent_on": created if outgoing else None,
        "modified_on": created,
    }
    with state.lock:
        state.messages.append(message)
    return message


def make_boundary(
    state: DoubleState,
    osm_id: str,
    name: str,
    level: int,
    *,
    parent: dict[str, Any] | None = None,
    aliases: list[str] | None = None,
    geometry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    boundary = {
        "osm_id": osm_id,
        "name": name,
        "level": level,
        "parent": {"osm_id": parent["osm_id"], "name": parent["name"]} if parent else None,
        "aliases": list(aliases or []),
        "geometry": geometry,
    }
    with state.lock:
        state.boundaries.append(boundary)
    return boundary
