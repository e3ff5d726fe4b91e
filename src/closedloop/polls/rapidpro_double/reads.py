"""GET endpoints of the double: filters, paging and serialization of each collection."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .state import LISTINGS, DoubleState, NotFound, ParamError, norm_time

Params = dict[str, list[str]]
Predicate = Callable[[dict[str, Any]], bool]

# optional fields dropped from each object when the double plays "API drift" (never the
# list/dict fields the reference client requires: groups, labels, path, values …)
DRIFT_DROP: dict[str, tuple[str, ...]] = {
    "contacts": ("notes", "last_seen_on", "flow"),
    "runs": ("exited_on",),
    "flows": ("expires", "parent_refs", "modified_on", "type"),
    "messages": ("modified_on", "type"),
    "groups": ("system", "status"),
    "fields": ("featured", "priority", "usages"),
    "broadcasts": ("progress", "status"),
    "flow_starts": ("progress", "extra", "exclude_active"),
    "boundaries": ("aliases",),
}
OUTBOX = {"initializing", "pending", "queued", "errored"}
SENT = {"wired", "sent", "delivered", "read"}
TRUE = {"1", "true", "True", "yes"}
FALSE = {"0", "false", "False", "no"}


def one(params: Params, key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def flag(params: Params, key: str) -> bool | None:
    value = one(params, key)
    if value is None or value == "":
        return None
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ParamError({key: ["Must be a boolean."]})


def stamp_param(params: Params, key: str) -> str | None:
    value = one(params, key)
    if not value:
        return None
    try:
        return norm_time(value.replace(" ", "+"))
    except ValueError:
        raise ParamError({key: ["Must be an ISO8601 datetime."]}) from None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def drifted(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """The item as a newer server might send it: an unknown field added, optional ones gone."""
    out = {k: v for k, v in item.items() if k not in DRIFT_DROP.get(name, ())}
    out["new_field"] = {"added_in": "a newer RapidPro"}
    if name == "runs" and isinstance(out.get("values"), dict):
        out["values"] = {
            key: {**{k: v for k, v in value.items() if k != "input"}, "new_field": True}
            for key, value in out["values"].items()
        }
    return out


def _predicate(state: DoubleState, name: str, params: Params) -> Predicate | None:
    tests: list[Predicate] = []
    uuid = one(params, "uuid")
    if uuid:
        tests.append(lambda item: item.get("uuid") == uuid)
    if name == "flows":
        ftype = one(params, "type")
        if ftype:
            tests.append(lambda item: item.get("type") == ftype)
        archived = flag(params, "archived")
        if archived is not None:
            tests.append(lambda item: bool(item.get("archived")) == archived)
    elif name in ("groups", "labels"):
        gname = one(params, "name")
        if gname:
            low = gname.lower()
            tests.append(lambda item: str(item.get("name", "")).lower() == low)
    elif name == "fields":
        key = one(params, "key")
        if key:
            tests.append(lambda item: item.get("key") == key)
    elif name == "contacts":
        urn = one(params, "urn")
        if urn:
            tests.append(lambda item: urn in (item.get("urns") or []))
        group_ref = one(params, "group")
        if group_ref:
            group = state.group(group_ref)
            wanted = group["uuid"] if group else None
            tests.append(
                lambda item: any(g.get("uuid") == wanted for g in item.get("groups") or [])
            )
    elif name == "runs":
        flows = {f for f in params.get("flow", []) if f}
        if flows:
            tests.append(lambda item: (item.get("flow") or {}).get("uuid") in flows)
        contact = one(params, "contact")
        if contact:
            tests.append(lambda item: (item.get("contact") or {}).get("uuid") == contact)
        responded = flag(params, "responded")
        if responded is not None:
            tests.append(lambda item: bool(item.get("responded")) == responded)
    elif name == "messages":
        contact = one(params, "contact")
        if contact:
            tests.append(lambda item: (item.get("contact") or {}).get("uuid") == contact)
        folder = (one(params, "folder") or "").lower()
        if folder:
            tests.append(_folder_test(folder))
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda item: all(test(item) for test in tests)


def _folder_test(folder: str) -> Predicate:
    def incoming(m: dict[str, Any]) -> bool:
        return m.get("direction") == "in" and m.get("visibility") != "deleted"

    tests: dict[str, Predicate] = {
        "inbox": lambda m: incoming(m) and m.get("visibility") == "visible" and not m.get("flow"),
        "flows": lambda m: incoming(m) and m.get("visibility") == "visible" and bool(m.get("flow")),
        "archived": lambda m: incoming(m) and m.get("visibility") == "archived",
        "incoming": incoming,
        "outbox": lambda m: m.get("direction") == "out" and m.get("status") in OUTBOX,
        "sent": lambda m: m.get("direction") == "out" and m.get("status") in SENT,
        "failed": lambda m: m.get("direction") == "out" and m.get("status") == "failed",
    }
    return tests.get(folder, lambda m: False)


def _deleted_view(contact: dict[str, Any]) -> dict[str, Any]:
    return {
        "uuid": contact["uuid"],
        "name": None,
        "status": None,
        "language": None,
        "urns": [],
        "groups": [],
        "notes": [],
        "fields": {},
        "flow": None,
        "created_on": contact.get("created_on"),
        "modified_on": contact.get("modified_on"),
        "last_seen_on": None,
    }


def get_list(
    state: DoubleState,
    name: str,
    params: Params,
    *,
    base_url: str,
    page_size: int,
    drift: bool,
) -> bytes:
    """The JSON page ``{"next", "previous", "results"}`` of a list endpoint."""
    listing = LISTINGS.get(name)
    if listing is None:
        raise NotFound(name)
    items: list[dict[str, Any]] = getattr(state, listing.attr)
    index_name = name
    deleted = name == "contacts" and flag(params, "deleted")
    if deleted:
        items, index_name = state.deleted_contacts, "deleted_contacts"
    predicate = _predicate(state, name, params)
    page, next_cursor, prev_cursor = state.page(
        index_name,
        items,
        listing.order,
        predicate=predicate,
        reverse=bool(flag(params, "reverse")),
        before=stamp_param(params, "before"),
        after=stamp_param(params, "after"),
        cursor=one(params, "cursor"),
        page_size=page_size,
    )
    transform = _transform(state, name, params, deleted=bool(deleted))
    cacheable = transform is None
    blobs = []
    for item, position in page:
        data = state.blob(index_name, item, position) if cacheable else None
        if data is None:
            shown = transform(item) if transform else item
            if drift:
                shown = drifted(name, shown)
            data = dumps(shown)
            if cacheable:
                state.keep_blob(index_name, position, data)
        blobs.append(data)
    links = []
    for cursor in (next_cursor, prev_cursor):
        if cursor is None:
            links.append(b"null")
            continue
        query = [(k, v) for k, values in params.items() if k != "cursor" for v in values]
        query.append(("cursor", cursor))
        links.append(dumps(f"{base_url}/api/v2/{name}.json?{urlencode(query)}"))
    return (
        b'{"next":'
        + links[0]
        + b',"previous":'
        + links[1]
        + b',"results":['
        + b",".join(blobs)
        + b"]}"
    )


def _transform(
    state: DoubleState, name: str, params: Params, *, deleted: bool
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    if deleted:
        return _deleted_view
    if name == "groups":
        counts = Counter(g.get("uuid") for c in state.contacts for g in c.get("groups") or [])
        return lambda group: {**group, "count": counts.get(group["uuid"], 0)}
    if name == "boundaries" and not flag(params, "geometry"):
        return lambda boundary: {**boundary, "geometry": None}
    return None


def get_org(state: DoubleState, drift: bool) -> bytes:
    org = dict(state.org)
    if drift:
        org["new_field"] = "drift"
        org.pop("anon", None)
    return dumps(org)


def get_definitions(state: DoubleState, params: Params, drift: bool) -> bytes:
    wanted = [f for f in params.get("flow", []) if f]
    flows = [
        state.definitions[flow["uuid"]]
        for flow in state.flows
        if flow["uuid"] in state.definitions and (not wanted or flow["uuid"] in wanted)
    ]
    body: dict[str, Any] = {
        "version": "13",
        "site": "https://rapidpro.example",
        "flows": flows,
        "campaigns": [],
        "triggers": [],
        "fields": [],
        "groups": [],
    }
    if drift:
        body["new_field"] = []
    return dumps(body)
