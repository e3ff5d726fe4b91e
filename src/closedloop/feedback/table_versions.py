"""Previous versions of a workflow's table, kept for undo (see :mod:`table`).

``snapshot_version`` copies the live table to ``fbw_<pk>_v<n>`` (``CREATE TABLE ... AS
SELECT``, so no index or constraint names clash) with a :class:`TableVersion` holding the
column metadata; ``undo_last`` rebuilds the live table from the newest copy and restores
the Column rows with their ids. Import these from :mod:`closedloop.feedback.table`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from closedloop.feedback.models import Column, TableVersion, Workflow, column_snapshot
from closedloop.feedback.table import (
    ROW_ID,
    SEARCH,
    count_rows,
    create_table,
    drop_table,
    is_postgres,
    mark_fresh,
    physical_columns,
    qn,
    table_exists,
    write_frame,
)

# --- versions and undo ---------------------------------------------------------------------


def snapshot_version(workflow: Workflow, *, label: str, actor: Any) -> TableVersion | None:
    """Copy the current table to ``fbw_<pk>_v<n>`` with its column metadata (for undo).

    Records the Column rows as they are now, limited to those physically in the table;
    call it before changing the metadata of existing columns. Older versions beyond
    ``FEEDBACK_TABLE_VERSIONS`` are dropped."""
    live = workflow.table_name
    if not table_exists(live):
        return None
    present = set(physical_columns(live))
    columns = [
        c
        for c in Column.objects.filter(workflow=workflow).order_by("position", "id")
        if c.physical in present
    ]
    number = workflow.table_version + 1
    name = f"{live}_v{number}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {qn(name)}")
        cursor.execute(f"CREATE TABLE {qn(name)} AS SELECT * FROM {qn(live)}")
    version = TableVersion.objects.create(
        account_id=workflow.account_id,
        workflow=workflow,
        number=number,
        table_name=name,
        columns=[column_snapshot(c) for c in columns],
        nrows=count_rows(workflow),
        label=label[:200],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    workflow.table_version = number
    Workflow.objects.filter(pk=workflow.pk).update(table_version=number)
    prune_versions(workflow)
    return version


def prune_versions(workflow: Workflow) -> None:
    keep = int(getattr(settings, "FEEDBACK_TABLE_VERSIONS", 5))
    old = list(TableVersion.objects.filter(workflow=workflow).order_by("-number")[keep:])
    for version in old:
        drop_table(workflow, table_name=version.table_name)
    if old:
        TableVersion.objects.filter(pk__in=[v.pk for v in old]).delete()


def replace_table(
    workflow: Workflow,
    columns: list[Column],
    frame: pl.DataFrame,
    *,
    label: str,
    actor: Any,
    snapshot: bool = True,
) -> None:
    """Swap in a new table built from ``frame`` (typed, named by Column.name), keeping
    the current one as a version first (unless ``snapshot`` is False because the caller
    already took it). Runs in the caller's transaction; updates nrows/ncols."""
    with transaction.atomic():
        if snapshot:
            snapshot_version(workflow, label=label, actor=actor)
        drop_table(workflow)
        create_table(workflow, columns)
        written = write_frame(workflow, columns, frame)
        mark_fresh(workflow)
        workflow.nrows = written
        workflow.ncols = len(columns)
        if columns:
            workflow.next_slot = max(workflow.next_slot, max(c.slot for c in columns) + 1)
        Workflow.objects.filter(pk=workflow.pk).update(
            nrows=workflow.nrows, ncols=workflow.ncols, next_slot=workflow.next_slot
        )


def _column_from_snapshot(workflow: Workflow, data: dict[str, Any]) -> Column:
    def when(value: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(value) if value else None

    return Column(
        pk=data["id"],
        account_id=workflow.account_id,
        workflow=workflow,
        name=data["name"],
        slot=data["slot"],
        data_type=data["data_type"],
        is_key=data["is_key"],
        position=data["position"],
        description=data["description"],
        categories=data["categories"],
        active_from=when(data["active_from"]),
        active_to=when(data["active_to"]),
        in_viz=data["in_viz"],
    )


def restore_columns(workflow: Workflow, snapshot: list[dict[str, Any]]) -> list[Column]:
    """Make the workflow's Column rows exactly ``snapshot`` (same ids, names, slots...)."""
    wanted = [_column_from_snapshot(workflow, d) for d in snapshot]
    ids = {c.pk for c in wanted}
    Column.objects.filter(workflow=workflow).exclude(pk__in=ids).delete()
    existing = {c.pk: c for c in Column.objects.filter(workflow=workflow)}
    # park names and slots first so the unique constraints hold while values move around
    offset = 1_000_000
    for column in existing.values():
        Column.objects.filter(pk=column.pk).update(
            name=f"__undo{column.pk}", slot=column.slot + offset
        )
    for column in wanted:
        if column.pk in existing:
            column.save(force_update=True)
        else:
            column.save(force_insert=True)
    return wanted


def undo_last(workflow: Workflow, *, actor: Any) -> TableVersion:
    """Restore the newest kept version: table data and column metadata, exactly.

    One transaction; bumps the workflow version, logs ``workflow_restore`` and refreshes
    counts. Raises ``FeedbackError`` when there is nothing to undo."""
    from closedloop.feedback import services
    from closedloop.feedback.logs import log_event
    from closedloop.feedback.values import FeedbackError

    with transaction.atomic():
        version = TableVersion.objects.filter(workflow=workflow).order_by("-number").first()
        if version is None:
            raise FeedbackError(_("There is no earlier version of the table to restore."))
        columns = restore_columns(workflow, version.columns)
        drop_table(workflow)
        create_table(workflow, columns)
        names = [qn(ROW_ID)] + [qn(c.physical) for c in columns] + [qn(SEARCH)]
        live = qn(workflow.table_name)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {live} ({', '.join(names)}) "
                f"SELECT {', '.join(names)} FROM {qn(version.table_name)}"
            )
            if is_postgres():
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                    f"COALESCE((SELECT MAX({qn(ROW_ID)}) FROM {live}), 0) + 1, false)",
                    [workflow.table_name, ROW_ID],
                )
        drop_table(workflow, table_name=version.table_name)
        version.delete()
        workflow.nrows = count_rows(workflow)
        workflow.ncols = len(columns)
        top = max((c.slot for c in columns), default=0)
        workflow.next_slot = max(workflow.next_slot, top + 1)
        Workflow.objects.filter(pk=workflow.pk).update(
            nrows=workflow.nrows,
            ncols=workflow.ncols,
            next_slot=workflow.next_slot,
            version=F("version") + 1,
        )
        workflow.refresh_from_db(fields=["version"])
        log_event(
            workflow,
            actor,
            "workflow_restore",
            {"label": version.label, "number": version.number, "nrows": workflow.nrows},
        )
        services.refresh_after_data_change(workflow, search=False)
    return version
