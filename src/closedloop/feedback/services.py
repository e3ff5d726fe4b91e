"""Workflow-level writes: create, update, clone, delete, flush, attributes, stars,
sharing, presence, loading a whole table, and single-row edits.

Every write runs in one transaction, logs a :class:`WorkflowLog` event and bumps
``Workflow.version`` (the optimistic lock: callers that built a form on version ``n``
pass ``expected_version=n`` and get :class:`ConflictError` when someone else wrote in
between). Errors a user can cause raise :class:`FeedbackError` whose ``errors`` say which
row and column were wrong; nothing is left half-written.

Permissions (owner / editor / viewer) are checked by the callers through
``selectors.get_workflow(membership, pk, need=...)``: renaming and deleting need "own".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.feedback import table
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    COLUMN_NAME_MAX,
    Column,
    ShareRole,
    TableVersion,
    Workflow,
    WorkflowPresence,
    WorkflowShare,
    WorkflowStar,
)
from closedloop.feedback.values import (
    FALSE_WORDS,
    TRUE_WORDS,
    ConflictError,
    FeedbackError,
    RowNotFound,
    coerce_value,
    parse_datetime,
)

PRESENCE_SECONDS = 60
WORKFLOW_FIELDS = {"name", "description", "attributes"}


# --- versions and refreshes ----------------------------------------------------------------


def bump_version(workflow: Workflow, expected: int | None = None) -> int:
    """Increment the workflow's version; ConflictError if it is no longer ``expected``."""
    qs = Workflow.objects.filter(pk=workflow.pk)
    if expected is not None:
        qs = qs.filter(version=expected)
    if not qs.update(version=F("version") + 1):
        raise ConflictError(
            _(
                "Someone else changed this workflow while you were editing it. "
                "Reload the page to see their changes, then try again."
            )
        )
    workflow.version = Workflow.objects.filter(pk=workflow.pk).values_list("version", flat=True)[0]
    return workflow.version


def refresh_after_data_change(
    workflow: Workflow,
    columns: set[str] | None = None,
    *,
    rids: Iterable[int] | None = None,
    search: bool = True,
) -> None:
    """After data changed in place: recompute the search text (of ``rids`` only, when
    given) and the filters' and conditions' counts (those using ``columns``)."""
    if search and not table.consume_fresh(workflow):
        table.refresh_search(workflow, rids=list(rids) if rids is not None else None)
    try:
        from closedloop.feedback.conditions import refresh_counts
    except ImportError:  # pragma: no cover - conditions not installed
        return
    refresh_counts(workflow, columns)


def _actor_or_none(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


# --- workflows -----------------------------------------------------------------------------


def _clean_workflow_name(account: Any, name: Any, exclude: int | None = None) -> str:
    clean = str(name or "").strip()
    if not clean:
        raise FeedbackError(_("A workflow needs a name."), field="name")
    if len(clean) > 200:
        raise FeedbackError(_("The name can have at most 200 characters."), field="name")
    clash = Workflow.objects.filter(account=account, name=clean)
    if exclude:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise FeedbackError(
            _("There is already a workflow named “%(name)s”.") % {"name": clean}, field="name"
        )
    return clean


def _clean_attributes(attributes: Any) -> dict[str, Any]:
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise FeedbackError(
            _("Attributes must be a mapping of names to values."), field="attributes"
        )
    for key in attributes:
        if not str(key).strip() or len(str(key)) > COLUMN_NAME_MAX:
            raise FeedbackError(
                _("Attribute names must have 1 to %(n)s characters.") % {"n": COLUMN_NAME_MAX},
                field="attributes",
            )
    return {str(k).strip(): v for k, v in attributes.items()}


def workflow_create(
    *,
    account: Any,
    actor: Any,
    name: str,
    description: str = "",
    attributes: dict[str, Any] | None = None,
) -> Workflow:
    with transaction.atomic():
        workflow = Workflow.objects.create(
            account=account,
            owner=actor,
            name=_clean_workflow_name(account, name),
            description=description or "",
            attributes=_clean_attributes(attributes),
        )
        table.create_table(workflow, [])
        log_event(workflow, actor, "workflow_create", {"name": workflow.name})
    return workflow


def workflow_update(
    *, workflow: Workflow, actor: Any, expected_version: int | None = None, **fields: Any
) -> Workflow:
    """Change name, description and/or attributes (renaming needs the owner: callers
    check with ``get_workflow(..., need="own")``)."""
    unknown = set(fields) - WORKFLOW_FIELDS
    if unknown:
        raise FeedbackError(
            _("Unknown workflow field(s): %(f)s.") % {"f": ", ".join(sorted(unknown))}
        )
    with transaction.atomic():
        changes: dict[str, list[Any]] = {}
        if "name" in fields:
            fields["name"] = _clean_workflow_name(workflow.account_id, fields["name"], workflow.pk)
        if "attributes" in fields:
            fields["attributes"] = _clean_attributes(fields["attributes"])
            _check_attribute_names(workflow, fields["attributes"])
        if "description" in fields:
            fields["description"] = str(fields["description"] or "")
        for key, value in fields.items():
            if getattr(workflow, key) != value:
                changes[key] = [getattr(workflow, key), value]
                setattr(workflow, key, value)
        bump_version(workflow, expected_version)
        workflow.save(update_fields=[*fields, "updated_at"])
        if changes:
            name = "workflow_rename" if "name" in changes else "workflow_update"
            log_event(workflow, actor, name, {"changes": changes})
    return workflow


def _check_attribute_names(workflow: Workflow, attributes: dict[str, Any]) -> None:
    clash = set(
        Column.objects.filter(workflow=workflow, name__in=list(attributes)).values_list(
            "name", flat=True
        )
    )
    if clash:
        raise FeedbackError(
            _("“%(name)s” is a column name; an attribute must have a different name.")
            % {"name": sorted(clash)[0]},
            field="attributes",
        )


def workflow_set_attribute(*, workflow: Workflow, actor: Any, name: str, value: Any = None) -> None:
    clean = str(name or "").strip()
    attributes = dict(workflow.attributes)
    attributes[clean] = value
    _clean_attributes({clean: value})
    with transaction.atomic():
        _check_attribute_names(workflow, {clean: value})
        workflow.attributes = attributes
        bump_version(workflow)
        workflow.save(update_fields=["attributes", "updated_at"])
        log_event(workflow, actor, "workflow_attribute_set", {"name": clean, "value": value})


def workflow_delete_attribute(
    *, workflow: Workflow, actor: Any, name: str, value: Any = None
) -> None:
    if name not in workflow.attributes:
        raise FeedbackError(_("There is no attribute named “%(name)s”.") % {"name": name})
    with transaction.atomic():
        attributes = dict(workflow.attributes)
        attributes.pop(name)
        workflow.attributes = attributes
        bump_version(workflow)
        workflow.save(update_fields=["attributes", "updated_at"])
        log_event(workflow, actor, "workflow_attribute_delete", {"name": name})


def workflow_delete(*, workflow: Workflow, actor: Any, confirm_name: str) -> None:
    """Delete the workflow, its table and everything in it; the log rows stay."""
    if str(confirm_name or "").strip() != workflow.name:
        raise FeedbackError(
            _("Type the workflow's name exactly (“%(name)s”) to confirm.")
            % {"name": workflow.name},
            field="confirm_name",
        )
    with transaction.atomic():
        log_event(
            workflow, actor, "workflow_delete", {"name": workflow.name, "nrows": workflow.nrows}
        )
        periodic = [
            pk for pk in workflow.schedules.values_list("periodic_task_id", flat=True) if pk
        ]
        table.drop_all_tables(workflow)
        workflow.delete()
        if periodic:
            from django_celery_beat.models import PeriodicTask

            PeriodicTask.objects.filter(pk__in=periodic).delete()


def workflow_flush(*, workflow: Workflow, actor: Any) -> None:
    """Remove the data, columns, views, filters and actions (the workflow stays)."""
    with transaction.atomic():
        nrows = workflow.nrows
        for version in TableVersion.objects.filter(workflow=workflow):
            table.drop_table(workflow, table_name=version.table_name)
        TableVersion.objects.filter(workflow=workflow).delete()
        workflow.actions.all().delete()
        workflow.views.all().delete()
        workflow.filters.all().delete()
        Column.objects.filter(workflow=workflow).delete()
        table.drop_table(workflow)
        table.create_table(workflow, [])
        workflow.nrows = workflow.ncols = 0
        bump_version(workflow)
        workflow.save(update_fields=["nrows", "ncols", "updated_at"])
        log_event(workflow, actor, "workflow_data_flush", {"nrows": nrows})


def workflow_undo(*, workflow: Workflow, actor: Any) -> TableVersion:
    """Restore the table (data and columns) as before the last data operation."""
    return table.undo_last(workflow, actor=actor)


def workflow_star(*, workflow: Workflow, user: Any, starred: bool) -> None:
    if starred:
        WorkflowStar.objects.get_or_create(
            account_id=workflow.account_id, workflow=workflow, user=user
        )
    else:
        WorkflowStar.objects.filter(workflow=workflow, user=user).delete()


def workflow_share(*, workflow: Workflow, actor: Any, email: str, role: str) -> WorkflowShare:
    """Share with an active member of the workflow's account, as editor or viewer."""
    if role not in (ShareRole.EDITOR, ShareRole.VIEWER):
        raise FeedbackError(_("The role must be editor or viewer."), field="role")
    address = str(email or "").strip().lower()
    membership = (
        Membership.objects.filter(
            account_id=workflow.account_id, user__email__iexact=address, is_active=True
        )
        .select_related("user")
        .first()
    )
    if membership is None:
        raise FeedbackError(
            _("%(email)s is not a member of this account.") % {"email": email}, field="email"
        )
    user = membership.user
    if user.pk == workflow.owner_id:
        raise FeedbackError(_("The owner already has access to the workflow."), field="email")
    with transaction.atomic():
        share, _created = WorkflowShare.objects.update_or_create(
            workflow=workflow,
            user=user,
            defaults={"role": role, "account_id": workflow.account_id},
        )
        log_event(workflow, actor, "workflow_share", {"email": user.email, "role": role})
    return share


def workflow_unshare(*, workflow: Workflow, actor: Any, user: Any) -> None:
    with transaction.atomic():
        deleted, _detail = WorkflowShare.objects.filter(workflow=workflow, user=user).delete()
        if deleted:
            log_event(workflow, actor, "workflow_unshare", {"email": user.email})


def presence_touch(*, workflow: Workflow, user: Any) -> list[Any]:
    """Record that ``user`` has the workflow open; the others seen in the last minute."""
    now = timezone.now()
    WorkflowPresence.objects.update_or_create(
        workflow=workflow,
        user=user,
        defaults={"last_seen": now, "account_id": workflow.account_id},
    )
    since = now - dt.timedelta(seconds=PRESENCE_SECONDS)
    seen = (
        WorkflowPresence.objects.filter(workflow=workflow, last_seen__gte=since)
        .exclude(user=user)
        .select_related("user")
        .order_by("user__email")
    )
    return [p.user for p in seen]


# --- loading a whole table -----------------------------------------------------------------

from closedloop.feedback.services_table import (  # noqa: E402
    find_row,
    infer_type,
    row_delete,
    row_insert,
    row_update,
    table_load,
    workflow_clone,
)

__all__ = [
    "FALSE_WORDS",
    "TRUE_WORDS",
    "ConflictError",
    "FeedbackError",
    "RowNotFound",
    "bump_version",
    "coerce_value",
    "find_row",
    "infer_type",
    "parse_datetime",
    "presence_touch",
    "refresh_after_data_change",
    "row_delete",
    "row_insert",
    "row_update",
    "table_load",
    "workflow_clone",
    "workflow_create",
    "workflow_delete",
    "workflow_delete_attribute",
    "workflow_flush",
    "workflow_set_attribute",
    "workflow_share",
    "workflow_star",
    "workflow_undo",
    "workflow_unshare",
    "workflow_update",
]
