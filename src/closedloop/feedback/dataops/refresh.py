"""Refreshing a workflow's table from an SQL connection or a table source, with a stored
spec — what the scheduler runs (``OperationType.SQL_REFRESH`` / ``SOURCE_REFRESH``).

Spec (JSON)::

    {"kind": "sql", "connection": 3, "table": "", "query": "",      # table/query optional
     "how": "outer", "left_on": "email", "right_on": "email",
     "columns": ["email", "score"], "clear_with_empty": false}        # columns optional
    {"kind": "table_source", "key": "people", "params": {}, "how": ..., ...}

An empty workflow is loaded instead (the ``right_on`` column becomes the key).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.feedback.dataops.errors import data_error
from closedloop.feedback.dataops.merge import MergeResult, merge_frame
from closedloop.feedback.dataops.sources import ParsedTable, load_table_source
from closedloop.feedback.dataops.sqlconn import get_connection, read_connection
from closedloop.feedback.models import Workflow


def load_spec(*, workflow: Workflow, actor: Any, spec: dict[str, Any]) -> ParsedTable:
    kind = spec.get("kind")
    if kind == "sql":
        connection = get_connection(workflow.account_id, spec.get("connection"), enabled_only=True)
        return read_connection(
            connection,
            table=spec.get("table") or None,
            query=spec.get("query") or None,
            time_zone=workflow.account.time_zone,
        )
    if kind == "table_source":
        membership = (
            Membership.objects.filter(user=actor, account_id=workflow.account_id, is_active=True)
            .select_related("account", "user")
            .first()
        )
        if membership is None:
            raise data_error(_("The person who set up this refresh is no longer a member."))
        return load_table_source(
            str(spec.get("key", "")),
            account=workflow.account,
            membership=membership,
            params=dict(spec.get("params") or {}),
        )
    raise data_error(_("Unknown refresh kind “%(kind)s”.") % {"kind": kind})


def refresh_from_source(*, workflow: Workflow, actor: Any, spec: dict[str, Any]) -> MergeResult:
    parsed = load_spec(workflow=workflow, actor=actor, spec=spec)
    frame = parsed.frame
    wanted = spec.get("columns")
    right_on = spec.get("right_on") or ""
    if wanted:
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise data_error(
                _("The source no longer has the column “%(col)s”.") % {"col": missing[0]},
                column=missing[0],
            )
        frame = frame.select([c for c in frame.columns if c in wanted or c == right_on])
    return merge_frame(
        workflow=workflow,
        actor=actor,
        frame=frame,
        types={c: parsed.types[c] for c in frame.columns},
        how=spec.get("how") or "outer",
        left_on=spec.get("left_on") or right_on,
        right_on=right_on,
        clear_with_empty=bool(spec.get("clear_with_empty")),
        keys=[right_on],
        row_numbers=parsed.row_numbers,
        label=_("refresh from %(source)s")
        % {"source": parsed.notes[0] if parsed.notes else spec.get("kind")},
    )
