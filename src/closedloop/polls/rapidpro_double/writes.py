"""Write endpoints of the double (contacts, flow starts, broadcasts) and start processing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .records import Ids, make_contact, make_message, make_run, ref
from .state import DoubleState, NotFound, ParamError

MAX_ITEMS = 100
TOO_MANY = f"Ensure this field has no more than {MAX_ITEMS} elements."
URN_SCHEMES = {
    "tel", "whatsapp", "twitter", "twitterid", "facebook", "telegram", "mailto", "ext",
    "viber", "line", "discord", "instagram", "jiochat", "wechat", "fcm", "freshchat", "vk",
    "rocketchat", "webchat", "slack",
}  # fmt: skip
TEL_RE = re.compile(r"^\+\d{6,15}$")
LANG_RE = re.compile(r"^[a-z]{3}$")

# a responder answers a started contact: (start, contact, flow) -> None (no reply) or
# {"values": {key: input}, "exit_type": "completed"|None}
Responder = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, Any] | None]


def valid_urn(urn: Any) -> bool:
    if not isinstance(urn, str) or ":" not in urn:
        return False
    scheme, path = urn.split(":", 1)
    if scheme not in URN_SCHEMES or not path.strip():
        return False
    if scheme == "tel":
        return bool(TEL_RE.match(path))
    return True


def _list(body: dict[str, Any], key: str, errors: dict[str, list[str]]) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errors[key] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return []
    if len(value) > MAX_ITEMS:
        errors[key] = [TOO_MANY]
        return []
    return value


def _recipients(
    state: DoubleState, ids: Ids, body: dict[str, Any], errors: dict[str, list[str]]
) -> tuple[list[dict], list[dict], list[str]]:
    contacts, groups, urns = [], [], []
    for uuid in _list(body, "contacts", errors):
        contact = state.contact(str(uuid))
        if contact is None:
            errors.setdefault("contacts", []).append(f"No such object: {uuid}")
        else:
            contacts.append(contact)
    for item in _list(body, "groups", errors):
        group = state.group(str(item))
        if group is None:
            errors.setdefault("groups", []).append(f"No such object: {item}")
        else:
            groups.append(group)
    for urn in _list(body, "urns", errors):
        if not valid_urn(urn):
            errors.setdefault("urns", []).append(f"Invalid URN: {urn}")
        else:
            urns.append(urn)
    return contacts, groups, urns


def _resolve(
    state: DoubleState, ids: Ids, contacts: list[dict], groups: list[dict], urns: list[str]
) -> list[dict[str, Any]]:
    """Distinct contacts reached: given contacts, members of groups, contacts of urns
    (created when unknown, as RapidPro does)."""
    seen: dict[str, dict[str, Any]] = {c["uuid"]: c for c in contacts}
    wanted = {g["uuid"] for g in groups}
    if wanted:
        for contact in state.contacts:
            if any(g.get("uuid") in wanted for g in contact.get("groups") or []):
                seen.setdefault(contact["uuid"], contact)
    for urn in urns:
        contact = state.contact_by_urn(urn) or make_contact(state, ids, None, [urn])
        seen.setdefault(contact["uuid"], contact)
    return list(seen.values())


# --- contacts -----------------------------------------------------------------------------


def _lookup(state: DoubleState, query: dict[str, str]) -> dict[str, Any] | None:
    if "uuid" in query:
        return state.contact(query["uuid"])
    if "urn" in query:
        return state.contact_by_urn(query["urn"])
    return None


def post_contact(
    state: DoubleState, ids: Ids, query: dict[str, str], body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    existing = None
    if "uuid" in query or "urn" in query:
        existing = _lookup(state, query)
        if existing is None:
            raise NotFound("contact")
    errors: dict[str, list[str]] = {}
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 128):
        errors["name"] = ["Ensure this field has no more than 128 characters."]
    language = body.get("language")
    if language is not None and (not isinstance(language, str) or not LANG_RE.match(language)):
        errors["language"] = ["Not a valid ISO639-3 language code."]
    urns = body.get("urns")
    if urns is not None:
        if not isinstance(urns, list):
            errors["urns"] = ["Expected a list of items."]
        else:
            for urn in urns:
                if not valid_urn(urn):
                    errors.setdefault("urns", []).append(
                        f"Invalid URN: {urn}. Ensure phone numbers contain country codes."
                    )
                else:
                    owner = state.contact_by_urn(urn)
                    if owner is not None and owner is not existing:
                        errors.setdefault("urns", []).append(
                            f"URN belongs to another contact: {urn}"
                        )
    groups = None
    if body.get("groups") is not None:
        groups = []
        raw = body["groups"] if isinstance(body["groups"], list) else [body["groups"]]
        for item in raw:
            group = state.group(str(item))
            if group is None:
                errors.setdefault("groups", []).append(f"No such object: {item}")
            elif group.get("query"):
                errors.setdefault("groups", []).append(
                    f"Contact group must not be query based: {group['name']}"
                )
            else:
                groups.append(group)
    fields = body.get("fields")
    if fields is not None:
        known = {f["key"] for f in state.fields}
        if not isinstance(fields, dict):
            errors["fields"] = ["Expected a dictionary of items."]
        else:
            for key in fields:
                if key not in known:
                    errors.setdefault("fields", []).append(f"Invalid contact field key: {key}")
    if errors:
        raise ParamError(errors)
    if existing is None:
        contact = make_contact(
            state,
            ids,
            name,
            urns or [],
            groups=groups or [],
            fields=fields or {},
            language=language,
        )
        return 201, contact
    if "name" in body:
        existing["name"] = name
    if "language" in body:
        existing["language"] = language
    if urns is not None:
        existing["urns"] = list(urns)
    if groups is not None:
        existing["groups"] = [ref(g) for g in groups]
    if fields:
        existing.setdefault("fields", {}).update(fields)
    existing["modified_on"] = state.now()
    state.reindex()
    return 200, existing


def delete_contact(state: DoubleState, query: dict[str, str]) -> None:
    contact = _lookup(state, query)
    if contact is None:
        raise NotFound("contact")
    state.contacts.remove(contact)
    contact["modified_on"] = state.now()
    state.deleted_contacts.append(contact)
    state.reindex()


# --- flow starts --------------------------------------------------------------------------


def post_flow_start(state: DoubleState, ids: Ids, body: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    flow_uuid = body.get("flow")
    flow = state.flow(str(flow_uuid)) if flow_uuid else None
    if not flow_uuid:
        errors["flow"] = ["This field is required."]
    elif flow is None:
        errors["flow"] = [f"No such object: {flow_uuid}"]
    contacts, groups, urns = _recipients(state, ids, body, errors)
    if not errors and not (contacts or groups or urns):
        errors["non_field_errors"] = ["Must specify at least one group, contact or URN"]
    params = body.get("params", body.get("extra"))
    if params is not None and not isinstance(params, dict):
        errors["params"] = ["Must be a valid JSON object"]
    if errors:
        raise ParamError(errors)
    assert flow is not None
    now = state.now()
    start = {
        "uuid": ids(),
        "flow": ref(flow),
        "status": "pending",
        "progress": {"total": -1, "started": 0},
        "groups": [ref(g) for g in groups],
        "contacts": [ref(c) for c in contacts],
        "urns": list(urns),
        "restart_participants": bool(body.get("restart_participants", True)),
        "exclude_active": bool(body.get("exclude_active", False)),
        "params": params,
        "extra": params,
        "created_on": now,
        "modified_on": now,
    }
    state.flow_starts.append(start)
    return start


def process_starts(state: DoubleState, ids: Ids, responder: Responder | None = None) -> int:
    """Create the runs of every pending flow start (each carrying ``start.uuid``); the
    start becomes ``complete``. Returns the number of runs created."""
    created = 0
    for start in state.flow_starts:
        if start.get("status") != "pending":
            continue
        flow = state.flow(start["flow"]["uuid"])
        if flow is None:
            start["status"] = "failed"
            continue
        contacts = [state.contact(c["uuid"]) for c in start.get("contacts", [])]
        groups = [state.group(g["uuid"]) for g in start.get("groups", [])]
        reached = _resolve(
            state,
            ids,
            [c for c in contacts if c],
            [g for g in groups if g],
            start.get("urns", []),
        )
        busy: set[str] = set()
        if not start.get("restart_participants", True) or start.get("exclude_active"):
            for run in state.runs:
                same_flow = run["flow"]["uuid"] == flow["uuid"]
                if (same_flow and not start.get("restart_participants", True)) or (
                    start.get("exclude_active") and run.get("exit_type") is None
                ):
                    busy.add(run["contact"]["uuid"])
        count = 0
        for contact in reached:
            if contact.get("status") != "active" or contact["uuid"] in busy:
                continue
            answer = responder(start, contact, flow) if responder else None
            values = (answer or {}).get("values") or {}
            exit_type = (answer or {}).get("exit_type", "completed" if values else None)
            make_run(
                state,
                ids,
                flow["uuid"],
                contact["uuid"],
                values,
                exit_type=exit_type,
                start_uuid=start["uuid"],
                created_on=state.now(),
            )
            count += 1
        start["status"] = "complete"
        start["progress"] = {"total": count, "started": count}
        start["modified_on"] = state.now()
        created += count
    if created:
        state.reindex()
    return created


# --- broadcasts ---------------------------------------------------------------------------


def post_broadcast(state: DoubleState, ids: Ids, body: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    base = state.org.get("primary_language") or "eng"
    text = body.get("text")
    if isinstance(text, str) and text.strip():
        translations = {base: text}
    elif isinstance(text, dict) and text and all(isinstance(v, str) for v in text.values()):
        translations = dict(text)
        base = base if base in translations else next(iter(translations))
    else:
        translations = {}
        errors["text"] = ["This field is required."]
    contacts, groups, urns = _recipients(state, ids, body, errors)
    if not errors and not (contacts or groups or urns):
        errors["non_field_errors"] = ["Must provide either contacts, groups or URNs."]
    if errors:
        raise ParamError(errors)
    now = state.now()
    reached = _resolve(state, ids, contacts, groups, urns)
    broadcast = {
        "uuid": ids(),
        "status": "queued",
        "progress": {"total": len(reached), "started": len(reached)},
        "urns": list(urns),
        "contacts": [ref(c) for c in contacts],
        "groups": [ref(g) for g in groups],
        "text": translations,
        "attachments": {},
        "base_language": base,
        "created_on": now,
    }
    state.broadcasts.append(broadcast)
    for contact in reached:
        if contact.get("status") in ("blocked", "stopped"):
            continue
        message_text = translations.get(contact.get("language") or "", translations[base])
        make_message(state, ids, contact, message_text, direction="out", created_on=now)
    state.reindex()
    return broadcast
