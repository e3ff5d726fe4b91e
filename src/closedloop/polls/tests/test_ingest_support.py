"""Helpers of the run-ingest tests: API-v2 run dicts, table snapshots, write counting."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from closedloop.core.tenancy import account_scope

_counter = itertools.count(1)


def run_uuid() -> str:
    return f"00000000-0000-4000-8000-{next(_counter):012d}"


def run(
    flow_uuid: str,
    contact: Any,
    values: dict[str, Any] | None = None,
    *,
    uuid: str | None = None,
    created: str = "2026-11-16T08:00:00+00:00",
    modified: str | None = None,
    exit_type: str | None = "completed",
    start: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """A run as RapidPro's API v2 sends it. ``values``: {key: value | (value, category)};
    value times are one minute apart after ``created``; ``modified`` defaults to the last
    value time + 1 minute."""
    created_on = dt.datetime.fromisoformat(created)
    out: dict[str, Any] = {}
    for i, (key, item) in enumerate((values or {}).items(), start=1):
        value, category = item if isinstance(item, tuple) else (item, None)
        at = (created_on + dt.timedelta(minutes=i)).isoformat()
        out[key] = {
            "name": key.title(),
            "value": value,
            "category": category,
            "node": f"node-{key}",
            "time": at,
            "input": str(value),
        }
    last = created_on + dt.timedelta(minutes=len(out) + 1)
    contact_uuid = contact if isinstance(contact, str) else contact.uuid
    contact_name = name if name is not None else getattr(contact, "name", "")
    return {
        "uuid": uuid or run_uuid(),
        "flow": {"uuid": flow_uuid, "name": "Health check"},
        "contact": {"uuid": contact_uuid, "urn": "tel:+250788000009", "name": contact_name},
        "start": {"uuid": start} if start else None,
        "responded": bool(out),
        "path": [{"node": v["node"], "time": v["time"]} for v in out.values()],
        "values": out,
        "created_on": created_on.isoformat(),
        "modified_on": modified or last.isoformat(),
        "exited_on": last.isoformat() if exit_type else None,
        "exit_type": exit_type,
    }


def snapshot(account: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the ingest writes, for before/after comparisons."""
    from closedloop.people.models import Person
    from closedloop.polls.models import Answer, Contact, PollRun, Response, WordCount

    with account_scope(account):
        return {
            "pollruns": list(PollRun.objects.order_by("id").values_list()),
            "responses": list(Response.objects.order_by("id").values_list()),
            "answers": list(Answer.objects.order_by("id").values_list()),
            "words": list(WordCount.objects.order_by("id").values_list()),
            "contacts": list(Contact.objects.order_by("id").values_list("id", "uuid", "name")),
            "people": list(Person.objects.order_by("id").values_list("id", "name")),
        }


class WriteCounter(CaptureQueriesContext):
    """Counts INSERT / UPDATE / DELETE statements run inside the block."""

    def __init__(self) -> None:
        super().__init__(connection)

    @property
    def writes(self) -> list[str]:
        verbs = ("INSERT", "UPDATE", "DELETE", "COPY")
        return [
            q["sql"] for q in self.captured_queries if q["sql"].lstrip().upper().startswith(verbs)
        ]
