"""Sync of a RapidPro connection's metadata: flows → polls and questions, groups, fields,
boundaries, messages; and :func:`sync_connection`, which runs every step in order.

Contacts live in :mod:`closedloop.polls.sync_contacts` (people side in ``sync_people``),
boundaries in ``sync_boundaries``, messages in ``sync_messages``; runs in
:mod:`closedloop.polls.ingest`.

Every step loads what it already has in one query, compares, and writes only rows that
changed (bulk), so a second sync with nothing new in RapidPro writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from closedloop.polls.client import batches, call, client_for, fetch_all
from closedloop.polls.models import (
    Connection,
    ContactGroup,
    DataField,
    Poll,
    Question,
)
from closedloop.polls.rules import guess_type, localized_name, rules_from_router
from closedloop.polls.sync_boundaries import sync_boundaries
from closedloop.polls.sync_common import assign, log
from closedloop.polls.sync_contacts import fetch_contacts, sync_contacts
from closedloop.polls.sync_messages import sync_messages

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_STEPS",
    "fetch_contacts",
    "sync_boundaries",
    "sync_connection",
    "sync_contacts",
    "sync_fields",
    "sync_flows",
    "sync_groups",
    "sync_messages",
    "sync_questions",
]

ALL_STEPS: tuple[str, ...] = (
    "flows",
    "groups",
    "fields",
    "boundaries",
    "contacts",
    "runs",
    "messages",
)
#: flows RapidPro creates for one-off messages; never polls
SINGLE_MESSAGE_PREFIX = "Single Message"
#: flows per definitions request (each uuid is a query parameter)
DEFINITIONS_BATCH = 25


# --- flows → polls and questions ----------------------------------------------------


def sync_flows(connection: Connection, ctx: Any = None) -> dict[str, int]:
    """Poll rows for every flow; questions for the active polls.

    ``is_active`` (chosen as a poll) and custom names are never touched; a flow that
    vanished from RapidPro keeps its poll with ``is_present=False``.
    """
    client = client_for(connection)
    flows = {
        flow.uuid: flow
        for flow in fetch_all(client.get_flows())
        if flow.uuid and not (flow.name or "").startswith(SINGLE_MESSAGE_PREFIX)
    }
    now = timezone.now()
    created, updated = [], []
    with transaction.atomic():
        existing = {p.flow_uuid: p for p in Poll.objects.filter(connection=connection)}
        for uuid, flow in flows.items():
            values = {
                "rapidpro_name": (flow.name or uuid)[:255],
                "archived": bool(flow.archived),
                "is_present": True,
                "flow_type": (flow.type or "")[:20],
            }
            poll = existing.get(uuid)
            if poll is None:
                created.append(
                    Poll(
                        account_id=connection.account_id,
                        connection=connection,
                        flow_uuid=uuid,
                        last_synced_at=now,
                        **values,
                    )
                )
            elif assign(poll, values):
                poll.last_synced_at = poll.updated_at = now
                updated.append(poll)
        vanished = 0
        for uuid, poll in existing.items():
            if uuid not in flows and poll.is_present:
                poll.is_present = False
                poll.last_synced_at = poll.updated_at = now
                updated.append(poll)
                vanished += 1
        Poll.objects.bulk_create(created)
        Poll.objects.bulk_update(
            updated,
            [
                "rapidpro_name",
                "archived",
                "is_present",
                "flow_type",
                "last_synced_at",
                "updated_at",
            ],
        )
    counts = {
        "flows": len(flows),
        "polls_created": len(created),
        "polls_updated": len(updated) - vanished,
        "polls_vanished": vanished,
    }
    active = list(
        Poll.objects.filter(connection=connection, is_active=True, is_present=True).order_by("pk")
    )
    counts.update(sync_questions(connection, active, flows=flows, ctx=ctx))
    return counts


def _routers(client: Any, flow_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Node uuid → spec-13 router of every node of these flows (legacy exports: none)."""
    routers: dict[str, dict[str, Any]] = {}
    for batch in batches(flow_uuids, DEFINITIONS_BATCH):
        export = call(client.get_definitions, flows=batch)
        for flow in getattr(export, "flows", None) or []:
            if not isinstance(flow, dict):
                continue
            for node in flow.get("nodes") or []:
                if isinstance(node, dict) and isinstance(node.get("router"), dict):
                    routers[str(node.get("uuid"))] = node["router"]
    return routers


def sync_questions(
    connection: Connection,
    polls: Iterable[Poll],
    *,
    flows: dict[str, Any] | None = None,
    ctx: Any = None,
) -> dict[str, int]:
    """Question rows of ``polls`` from their flows' results and v13 router cases.

    Custom names, hidden flags and user-chosen types (``type_overridden``) survive;
    results that vanished from a flow keep their question with ``is_present=False``.
    """
    polls = [p for p in polls if p.is_present]
    if not polls:
        return {"questions": 0, "questions_created": 0, "questions_vanished": 0}
    client = client_for(connection)
    if flows is None:
        flows = {}
        for batch in batches([p.flow_uuid for p in polls], DEFINITIONS_BATCH):
            for flow in fetch_all(client.get_flows(uuid=batch)):
                flows[flow.uuid] = flow
    polls = [p for p in polls if p.flow_uuid in flows]
    routers = _routers(client, [p.flow_uuid for p in polls])
    now = timezone.now()
    created, updated, total, vanished = [], [], 0, 0
    with transaction.atomic():
        existing: dict[tuple[int, str], Question] = {
            (q.poll_id, q.result_key): q for q in Question.objects.filter(poll__in=polls)
        }
        seen: set[tuple[int, str]] = set()
        for poll in polls:
            for order, result in enumerate(flows[poll.flow_uuid].results or []):
                if not result.key:
                    continue
                key = str(result.key)[:128]
                seen.add((poll.pk, key))
                total += 1
                values = _question_values(result, order, routers)
                question = existing.get((poll.pk, key))
                if question is None:
                    created.append(
                        Question(
                            account_id=connection.account_id,
                            poll=poll,
                            result_key=key,
                            **values,
                        )
                    )
                    continue
                if question.type_overridden:
                    values.pop("type")
                if assign(question, values):
                    question.updated_at = now
                    updated.append(question)
        for ident, question in existing.items():
            if ident not in seen and question.is_present:
                question.is_present = False
                question.updated_at = now
                updated.append(question)
                vanished += 1
        Question.objects.bulk_create(created)
        Question.objects.bulk_update(
            updated,
            [
                "rapidpro_name",
                "type",
                "categories",
                "node_uuids",
                "rules",
                "order",
                "is_present",
                "updated_at",
            ],
        )
    log(ctx, _("Questions: %(n)s in %(polls)s polls.") % {"n": total, "polls": len(polls)})
    return {
        "questions": total,
        "questions_created": len(created),
        "questions_vanished": vanished,
    }


def _question_values(result: Any, order: int, routers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    node_uuids = [str(n) for n in (result.node_uuids or []) if n]
    categories = [localized_name(c) for c in (result.categories or [])]
    router = next((routers[n] for n in node_uuids if n in routers), None)
    rules = rules_from_router(router) if router else []
    cases = router.get("cases") if router else None
    question_type = guess_type(categories, rules, cases if isinstance(cases, list) else None)
    return {
        "rapidpro_name": str(result.name or result.key)[:255],
        "type": str(question_type),
        "categories": categories,
        "node_uuids": node_uuids,
        "rules": rules,
        "order": order,
        "is_present": True,
    }


# --- groups and fields ----------------------------------------------------------------


def sync_groups(connection: Connection, ctx: Any = None) -> dict[str, int]:
    """ContactGroup rows (uuid, name, query, count); roles chosen in closedloop are kept."""
    client = client_for(connection)
    groups = {
        g.uuid: g
        for g in fetch_all(client.get_groups())
        if g.uuid and not getattr(g, "system", False)
    }
    now = timezone.now()
    created, updated, vanished = [], [], 0
    with transaction.atomic():
        existing = {g.uuid: g for g in ContactGroup.objects.filter(connection=connection)}
        for uuid, group in groups.items():
            values = {
                "name": (group.name or uuid)[:255],
                "query": group.query or "",
                "count": max(int(group.count or 0), 0),
                "is_present": True,
            }
            row = existing.get(uuid)
            if row is None:
                created.append(
                    ContactGroup(
                        account_id=connection.account_id,
                        connection=connection,
                        uuid=uuid,
                        **values,
                    )
                )
            elif assign(row, values):
                row.updated_at = now
                updated.append(row)
        for uuid, row in existing.items():
            if uuid not in groups and row.is_present:
                row.is_present = False
                row.updated_at = now
                updated.append(row)
                vanished += 1
        ContactGroup.objects.bulk_create(created)
        ContactGroup.objects.bulk_update(
            updated, ["name", "query", "count", "is_present", "updated_at"]
        )
    log(ctx, _("Groups: %(n)s.") % {"n": len(groups)})
    return {"groups": len(groups), "groups_created": len(created), "groups_vanished": vanished}


def sync_fields(connection: Connection, ctx: Any = None) -> dict[str, int]:
    """DataField rows (key, label, type); fields deleted in RapidPro are removed."""
    client = client_for(connection)
    fields = {f.key: f for f in fetch_all(client.get_fields()) if f.key}
    created, updated = [], []
    with transaction.atomic():
        existing = {f.key: f for f in DataField.objects.filter(connection=connection)}
        for key, field in fields.items():
            values = {
                "label": str(field.name or key)[:255],
                "value_type": str(field.type or "text")[:20],
            }
            row = existing.get(key)
            if row is None:
                created.append(
                    DataField(
                        account_id=connection.account_id,
                        connection=connection,
                        key=key[:64],
                        **values,
                    )
                )
            elif assign(row, values):
                updated.append(row)
        gone = [row.pk for key, row in existing.items() if key not in fields]
        DataField.objects.bulk_create(created)
        DataField.objects.bulk_update(updated, ["label", "value_type"])
        if gone:
            DataField.objects.filter(pk__in=gone).delete()
    log(ctx, _("Contact fields: %(n)s.") % {"n": len(fields)})
    return {"fields": len(fields), "fields_created": len(created), "fields_removed": len(gone)}


# --- everything ---------------------------------------------------------------------------


def _fetch_runs_step(connection: Connection, ctx: Any) -> dict[str, int] | None:
    try:
        from closedloop.polls import ingest
    except ImportError:
        ingest = None  # type: ignore[assignment]
    fetch = getattr(ingest, "fetch_runs", None)
    if fetch is None:
        log(ctx, _("Runs were not fetched: the run ingest is not available."), "warning")
        return None
    result = dict(fetch(connection, ctx) or {})
    # the ingest's own names ("created", "contacts_created", ...) → "runs_…"
    return {
        key if key.startswith("runs") else f"runs_{key}": value for key, value in result.items()
    }


def _update_workspace(connection: Connection) -> None:
    org = call(client_for(connection).get_org)
    values = {
        "workspace_name": str(getattr(org, "name", "") or "")[:200],
        "workspace_timezone": str(getattr(org, "timezone", "") or "")[:64],
    }
    if values["workspace_name"] and assign(connection, values):
        Connection.objects.filter(pk=connection.pk).update(**values)


STEP_LABELS: dict[str, Any] = {
    "flows": gettext_lazy("Polls and questions"),
    "groups": gettext_lazy("Groups"),
    "fields": gettext_lazy("Contact fields"),
    "boundaries": gettext_lazy("Boundaries"),
    "contacts": gettext_lazy("Contacts"),
    "runs": gettext_lazy("Runs"),
    "messages": gettext_lazy("Messages"),
}


def sync_connection(
    connection: Connection,
    ctx: Any = None,
    steps: Sequence[str] = ALL_STEPS,
    *,
    full: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Run the sync ``steps`` in their fixed order; returns (and stores) the counts.

    ``full`` re-reads every tracked contact instead of the changes since the last sync.
    ``on_step`` is called before each step (the scheduler extends its lock there).
    """
    unknown = [s for s in steps if s not in ALL_STEPS]
    if unknown:
        raise ValueError(f"unknown sync steps: {', '.join(unknown)}")
    wanted = [s for s in ALL_STEPS if s in steps]
    counts: dict[str, int] = {}
    _update_workspace(connection)
    for index, step in enumerate(wanted):
        if ctx is not None:
            ctx.check_cancelled()
            ctx.progress(
                index, len(wanted), _("%(step)s…") % {"step": STEP_LABELS[step]}, force=True
            )
        if on_step is not None:
            on_step(step)
        result: dict[str, int] | None
        if step == "flows":
            result = sync_flows(connection, ctx)
        elif step == "groups":
            result = sync_groups(connection, ctx)
        elif step == "fields":
            result = sync_fields(connection, ctx)
        elif step == "boundaries":
            result = sync_boundaries(connection, ctx)
        elif step == "contacts":
            result = sync_contacts(connection, ctx, full=full)
        elif step == "runs":
            result = _fetch_runs_step(connection, ctx)
        else:
            result = sync_messages(connection, ctx)
        for key, value in (result or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                counts[key] = int(value)
    if ctx is not None:
        ctx.progress(len(wanted), len(wanted), _("Sync finished."), force=True)
    Connection.objects.filter(pk=connection.pk).update(last_counts=counts)
    connection.last_counts = counts
    return counts
