"""Reading RapidPro runs (API-v2 dicts or ``temba_client`` ``Run`` objects) tolerantly.

Only the fields the ingest needs are read; unknown fields are ignored and missing
optional ones (``start``, ``values``, ``exited_on``, ``exit_type``, value ``time``...)
are tolerated, so a server adding or dropping a field does not stop the sync.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

UTC = dt.UTC


@dataclass(slots=True)
class RunValue:
    key: str
    node: str
    value: str
    category: Any
    time: dt.datetime | None


@dataclass(slots=True)
class ParsedRun:
    uuid: str
    flow_uuid: str
    contact_uuid: str
    contact_name: str
    start_uuid: str
    created_on: dt.datetime
    modified_on: dt.datetime
    exited_on: dt.datetime | None
    exit_type: str
    values: list[RunValue] = field(default_factory=list)


def parse_datetime(value: Any) -> dt.datetime | None:
    """An aware datetime from an ISO-8601 string or a datetime (naive means UTC)."""
    if value is None or value == "":
        return None
    if type(value) is str:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return _parse_odd(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    return _parse_odd(value)


def _parse_odd(value: str) -> dt.datetime | None:
    """ISO strings ``fromisoformat`` refuses (e.g. more than 6 fractional digits)."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = ""
        rest = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                rest = tail[i:]
                break
            digits += ch
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_dict(run: dict[str, Any]) -> ParsedRun | None:
    """``parse_run`` for API dicts (the hot path: no attribute probing)."""
    try:
        uuid = run["uuid"]
        flow_uuid = run["flow"]["uuid"]
        contact = run["contact"]
        contact_uuid = contact["uuid"]
    except (KeyError, TypeError):
        return None
    if not uuid or not flow_uuid or not contact_uuid:
        return None
    created_on = parse_datetime(run.get("created_on"))
    modified_on = parse_datetime(run.get("modified_on"))
    created_on = created_on or modified_on
    modified_on = modified_on or created_on
    if created_on is None or modified_on is None:
        return None
    values: list[RunValue] = []
    raw_values = run.get("values")
    if raw_values and isinstance(raw_values, dict):
        for key, item in raw_values.items():
            if not isinstance(item, dict):
                continue
            value = item.get("value")
            stamp = item.get("time")
            values.append(
                RunValue(
                    str(key),
                    item.get("node") or "",
                    value if type(value) is str else _text(value),
                    item.get("category"),
                    parse_datetime(stamp) if stamp else None,
                )
            )
    start = run.get("start")
    exit_type = run.get("exit_type")
    return ParsedRun(
        uuid=str(uuid),
        flow_uuid=str(flow_uuid),
        contact_uuid=str(contact_uuid),
        contact_name=_text(contact.get("name")),
        start_uuid=str(start.get("uuid") or "") if isinstance(start, dict) else "",
        created_on=created_on,
        modified_on=modified_on,
        exited_on=parse_datetime(run.get("exited_on")),
        exit_type=exit_type if type(exit_type) is str else _text(exit_type),
        values=values,
    )


def parse_run(run: Any) -> ParsedRun | None:
    """The fields of one run, or None when it lacks what any run must have."""
    if isinstance(run, dict):
        return _parse_dict(run)
    uuid = _get(run, "uuid")
    flow_uuid = _get(_get(run, "flow"), "uuid")
    contact = _get(run, "contact")
    contact_uuid = _get(contact, "uuid")
    if not uuid or not flow_uuid or not contact_uuid:
        return None
    created_on = parse_datetime(_get(run, "created_on"))
    modified_on = parse_datetime(_get(run, "modified_on"))
    created_on = created_on or modified_on
    modified_on = modified_on or created_on
    if created_on is None or modified_on is None:
        return None
    values: list[RunValue] = []
    raw_values = _get(run, "values") or {}
    items = raw_values.items() if isinstance(raw_values, dict) else []
    for key, item in items:
        if item is None:
            continue
        values.append(
            RunValue(
                key=str(key),
                node=str(_get(item, "node") or ""),
                value=_text(_get(item, "value")),
                category=_get(item, "category"),
                time=parse_datetime(_get(item, "time")),
            )
        )
    return ParsedRun(
        uuid=str(uuid),
        flow_uuid=str(flow_uuid),
        contact_uuid=str(contact_uuid),
        contact_name=_text(_get(contact, "name")),
        start_uuid=str(_get(_get(run, "start"), "uuid") or ""),
        created_on=created_on,
        modified_on=modified_on,
        exited_on=parse_datetime(_get(run, "exited_on")),
        exit_type=_text(_get(run, "exit_type")),
        values=values,
    )
