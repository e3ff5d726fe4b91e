"""Column services: add, rename, delete, move, clone, change type, categories, keys,
random and formula columns.

Each operation runs in one transaction, changes the physical table with ALTER TABLE (both
SQLite and PostgreSQL support ADD / DROP / RENAME COLUMN; a type change moves the values
to a new physical slot), logs ``column_<verb>`` with its details and bumps the workflow
version. Bad input raises :class:`FeedbackError` naming the column (and the first rows
whose values are wrong); nothing changes then.

Formula columns are computed once, when created, and stored: they do not follow later
changes of their inputs. NULL inputs are skipped (like SQL aggregates): the result is
NULL only when every input is NULL; ``std`` is the sample standard deviation (NULL with
fewer than two values); ``all`` / ``any`` look at the non-NULL booleans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from closedloop.feedback import table
from closedloop.feedback.columns_refs import (
    column_uses,
    propagate_rename,
    remove_from_formulas,
)
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import Column, DataType, View, Workflow
from closedloop.feedback.services import bump_version, refresh_after_data_change
from closedloop.feedback.services_table import (
    check_column_name,
)
from closedloop.feedback.table import qn
from closedloop.feedback.values import FeedbackError, coerce_value

UPDATABLE = {"description", "categories", "is_key", "active_from", "active_to", "in_viz"}
RANGE_RE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")
MAX_CATEGORIES = 1000
MAX_LISTED = 5
NUMERIC_OPS = {"sum", "prod", "max", "min", "mean", "median", "std"}
BOOLEAN_OPS = {"all", "any"}
FORMULA_OPS = NUMERIC_OPS | BOOLEAN_OPS

__all__ = [
    "column_add",
    "column_add_formula",
    "column_add_random",
    "column_change_type",
    "column_clone",
    "column_delete",
    "column_move",
    "column_rename",
    "column_restrict_categories",
    "column_update",
    "column_uses",
    "expand_categories",
    "validate_column_name",
]


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def validate_column_name(name: Any, workflow: Workflow, exclude: Column | None = None) -> str:
    """A valid, unused column name (≤63 characters, no quotes, not starting with ``__``,
    not the name of an attribute)."""
    clean = check_column_name(name)
    clash = Column.objects.filter(workflow=workflow, name=clean)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise FeedbackError(
            _("There is already a column named “%(name)s”.") % {"name": clean},
            column=clean,
            field="name",
        )
    if clean in (workflow.attributes or {}):
        raise FeedbackError(
            _("“%(name)s” is the name of an attribute; choose another name.") % {"name": clean},
            column=clean,
            field="name",
        )
    return clean


def _check_type(data_type: Any) -> str:
    if data_type not in DataType.values:
        raise FeedbackError(
            _("“%(type)s” is not a column type; use one of %(types)s.")
            % {"type": data_type, "types": ", ".join(DataType.values)},
            field="data_type",
        )
    return str(data_type)


def _renumber(ordered: list[Column]) -> None:
    changed = []
    for position, column in enumerate(ordered, 1):
        if column.position != position:
            column.position = position
            changed.append(column)
    if changed:
        Column.objects.bulk_update(changed, ["position"])


def _place(workflow: Workflow, column: Column, position: int | None) -> None:
    others = [c for c in _columns(workflow) if c.pk != column.pk]
    index = len(others) if position is None else max(0, min(int(position) - 1, len(others)))
    others.insert(index, column)
    _renumber(others)


def _new_slot(workflow: Workflow) -> int:
    slot = Workflow.objects.filter(pk=workflow.pk).values_list("next_slot", flat=True)[0]
    Workflow.objects.filter(pk=workflow.pk).update(next_slot=F("next_slot") + 1)
    workflow.next_slot = slot + 1
    return int(slot)


def _set_ncols(workflow: Workflow) -> None:
    workflow.ncols = Column.objects.filter(workflow=workflow).count()
    Workflow.objects.filter(pk=workflow.pk).update(ncols=workflow.ncols)


def _key_label(workflow: Workflow, rids: list[int]) -> str:
    """``email = a, b`` for the rows ``rids`` (the first key column), else row ids."""
    key = Column.objects.filter(workflow=workflow, is_key=True).order_by("position").first()
    if key is None or not rids:
        return ", ".join(str(r) for r in rids)
    marks = ", ".join(["%s"] * len(rids))
    frame = table.read_frame(workflow, [key], where=f"{qn(table.ROW_ID)} IN ({marks})", params=rids)
    return f"{key.name} = " + ", ".join(str(v) for v in frame[key.name].to_list())


# --- categories ----------------------------------------------------------------------------


def expand_categories(raw: Iterable[Any], data_type: str, name: str = "") -> list[Any]:
    """Typed, distinct allowed values; integer ``m - n`` items expand to the range."""
    probe = Column(name=name, data_type=data_type)
    values: list[Any] = []
    for item in raw:
        match = RANGE_RE.match(item) if isinstance(item, str) else None
        if data_type == DataType.INTEGER and match:
            low, high = sorted((int(match[1]), int(match[2])))
            if high - low >= MAX_CATEGORIES:
                raise FeedbackError(
                    _("Column “%(column)s”: the range %(range)s is too long.")
                    % {"column": name, "range": item},
                    column=name,
                    field="categories",
                )
            values.extend(range(low, high + 1))
            continue
        value = coerce_value(probe, item)
        if value is not None:
            values.append(value)
    distinct = list(dict.fromkeys(values))
    if distinct and len(distinct) < 2:
        raise FeedbackError(
            _("Column “%(column)s”: give at least two allowed values.") % {"column": name},
            column=name,
            field="categories",
        )
    if len(distinct) > MAX_CATEGORIES:
        raise FeedbackError(
            _("Column “%(column)s”: at most %(n)s allowed values.")
            % {"column": name, "n": MAX_CATEGORIES},
            column=name,
            field="categories",
        )
    return distinct


def _json_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _distinct_values(column: Column) -> list[Any]:
    phys = qn(column.physical)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT {phys} FROM {qn(column.workflow.table_name)} WHERE {phys} IS NOT NULL"
        )
        return [table.from_db(column.data_type, r[0]) for r in cursor.fetchall()]


def _check_data_within(column: Column, categories: list[Any]) -> None:
    outside = [v for v in _distinct_values(column) if v not in categories]
    if outside:
        raise FeedbackError(
            _(
                "Column “%(column)s”: the table has values that are not allowed: %(values)s. "
                "Add them to the allowed values or change the data first."
            )
            % {"column": column.name, "values": ", ".join(str(v) for v in outside[:MAX_LISTED])},
            column=column.name,
            field="categories",
        )


def _check_key_data(column: Column) -> None:
    phys = qn(column.physical)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) - COUNT({phys}), COUNT({phys}) - COUNT(DISTINCT {phys}) "
            f"FROM {qn(column.workflow.table_name)}"
        )
        nulls, repeats = cursor.fetchone()
    if nulls or repeats:
        raise FeedbackError(
            _(
                "Column “%(column)s” cannot be a key: it has %(nulls)s empty and "
                "%(repeats)s repeated values."
            )
            % {"column": column.name, "nulls": nulls, "repeats": repeats},
            column=column.name,
            field="is_key",
        )


def _other_keys(column: Column) -> bool:
    return (
        Column.objects.filter(workflow_id=column.workflow_id, is_key=True)
        .exclude(pk=column.pk)
        .exists()
    )


# --- add, update ---------------------------------------------------------------------------


def column_add(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    data_type: str,
    initial: Any = None,
    is_key: bool = False,
    description: str = "",
    categories: list[Any] | None = None,
    position: int | None = None,
    active_from: Any = None,
    active_to: Any = None,
    in_viz: bool = True,
    expected_version: int | None = None,
) -> Column:
    """A new column; every row gets ``initial`` (NULL when None, keeping the type)."""
    clean = validate_column_name(name, workflow)
    data_type = _check_type(data_type)
    allowed = expand_categories(categories or [], data_type, clean)
    probe = Column(name=clean, data_type=data_type, categories=allowed)
    value = coerce_value(probe, initial)
    _check_window(clean, active_from, active_to)
    if is_key and (workflow.nrows > 1 or (workflow.nrows == 1 and value is None)):
        raise FeedbackError(
            _("Column “%(column)s” cannot be a key: its values would not be unique.")
            % {"column": clean},
            column=clean,
            field="is_key",
        )
    with transaction.atomic():
        bump_version(workflow, expected_version)
        column = Column.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            name=clean,
            slot=_new_slot(workflow),
            data_type=data_type,
            is_key=is_key,
            description=description or "",
            categories=[_json_value(v) for v in allowed],
            position=9999,
            active_from=active_from,
            active_to=active_to,
            in_viz=in_viz,
        )
        table.add_column(workflow, column)
        if value is not None:
            table.set_column_value(workflow, column, value)
            table.refresh_search(workflow)
        _place(workflow, column, position)
        _set_ncols(workflow)
        log_event(
            workflow,
            actor,
            "column_add",
            {"column": clean, "type": data_type, "initial": _json_value(value), "key": is_key},
        )
    column.refresh_from_db()
    return column


def _check_window(name: str, start: Any, end: Any) -> None:
    if start and end and start > end:
        raise FeedbackError(
            _("Column “%(column)s”: the active window ends before it starts.") % {"column": name},
            column=name,
            field="active_to",
        )


def column_update(
    *, column: Column, actor: Any, expected_version: int | None = None, **fields: Any
) -> Column:
    """Change description, categories, is_key, the active window or in_viz."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise FeedbackError(
            _("These column fields cannot be changed here: %(f)s.")
            % {"f": ", ".join(sorted(unknown))}
        )
    workflow = column.workflow
    changes: dict[str, Any] = {}
    if "categories" in fields:
        allowed = expand_categories(fields["categories"] or [], column.data_type, column.name)
        if allowed:
            _check_data_within(column, allowed)
        fields["categories"] = [_json_value(v) for v in allowed]
    _check_window(
        column.name,
        fields.get("active_from", column.active_from),
        fields.get("active_to", column.active_to),
    )
    with transaction.atomic():
        bump_version(workflow, expected_version)
        if "is_key" in fields and bool(fields["is_key"]) != column.is_key:
            _toggle_key(column, bool(fields["is_key"]))
        for key, value in fields.items():
            if getattr(column, key) != value:
                changes[key] = [_json_value(getattr(column, key)), _json_value(value)]
                setattr(column, key, value)
        column.save()
        if changes:
            log_event(workflow, actor, "column_edit", {"column": column.name, "changes": changes})
    return column


def _toggle_key(column: Column, is_key: bool) -> None:
    if is_key:
        _check_key_data(column)
    elif not _other_keys(column):
        raise FeedbackError(
            _("Column “%(column)s” is the only key; make another column a key first.")
            % {"column": column.name},
            column=column.name,
            field="is_key",
        )
    column.is_key = is_key
    table.set_key_index(column.workflow, column, is_key)


def column_restrict_categories(
    *, column: Column, actor: Any, expected_version: int | None = None
) -> Column:
    """Allowed values := the distinct values now in the column."""
    values = sorted(_distinct_values(column), key=lambda v: (str(type(v)), v))
    return column_update(
        column=column,
        actor=actor,
        categories=[_json_value(v) for v in values],
        expected_version=expected_version,
    )


# --- rename, delete, move, clone -----------------------------------------------------------


def column_rename(
    *, column: Column, actor: Any, new_name: str, expected_version: int | None = None
) -> Column:
    """Rename; filters, conditions, action texts / subjects / options and schedule
    payloads that use the old name follow (views refer to columns by id)."""
    workflow = column.workflow
    clean = validate_column_name(new_name, workflow, exclude=column)
    old = column.name
    if clean == old:
        return column
    with transaction.atomic():
        bump_version(workflow, expected_version)
        column.name = clean
        column.save(update_fields=["name"])
        touched = propagate_rename(workflow, old, clean)
        log_event(workflow, actor, "column_rename", {"old": old, "new": clean, "updated": touched})
    return column


def column_delete(
    *, column: Column, actor: Any, force: bool = False, expected_version: int | None = None
) -> None:
    """Delete a column. Refused for the last key, and (unless ``force``) while filters,
    conditions, actions or schedules use it; ``force`` removes the rules that use it
    from filters and conditions (action texts keep their text)."""
    workflow = column.workflow
    if column.is_key and not _other_keys(column):
        raise FeedbackError(
            _("Column “%(column)s” is the only key column and cannot be deleted.")
            % {"column": column.name},
            column=column.name,
        )
    uses = column_uses(column)
    if uses and not force:
        raise FeedbackError(
            _("Column “%(column)s” is used by %(uses)s. Change those first, or delete anyway.")
            % {"column": column.name, "uses": "; ".join(uses)},
            column=column.name,
        )
    with transaction.atomic():
        bump_version(workflow, expected_version)
        name = column.name
        remove_from_formulas(workflow, name)
        for view in View.objects.filter(workflow=workflow):
            if column.pk in view.column_ids:
                view.column_ids = [i for i in view.column_ids if i != column.pk]
                view.save(update_fields=["column_ids"])
        table.drop_column(workflow, column)
        column.delete()
        _renumber(_columns(workflow))
        _set_ncols(workflow)
        table.refresh_search(workflow)
        log_event(workflow, actor, "column_delete", {"column": name, "uses": uses})
        refresh_after_data_change(workflow, search=False)


def column_move(
    *, column: Column, actor: Any, position: int, expected_version: int | None = None
) -> None:
    with transaction.atomic():
        bump_version(column.workflow, expected_version)
        old = column.position
        _place(column.workflow, column, position)
        column.refresh_from_db(fields=["position"])
        log_event(
            column.workflow,
            actor,
            "column_move",
            {"column": column.name, "from": old, "to": column.position},
        )


def column_clone(
    *, column: Column, actor: Any, name: str, expected_version: int | None = None
) -> Column:
    """A copy of the column (values, type, categories, description), not a key."""
    workflow = column.workflow
    clean = validate_column_name(name, workflow)
    with transaction.atomic():
        bump_version(workflow, expected_version)
        clone = Column.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            name=clean,
            slot=_new_slot(workflow),
            data_type=column.data_type,
            is_key=False,
            description=column.description,
            categories=column.categories,
            position=9999,
            active_from=column.active_from,
            active_to=column.active_to,
            in_viz=column.in_viz,
        )
        table.add_column(workflow, clone)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(workflow.table_name)} SET {qn(clone.physical)} = {qn(column.physical)}"
            )
        _place(workflow, clone, column.position + 1)
        _set_ncols(workflow)
        table.refresh_search(workflow)
        log_event(workflow, actor, "column_clone", {"column": column.name, "clone": clean})
    clone.refresh_from_db()
    return clone


from closedloop.feedback.columns_compute import (  # noqa: E402
    column_add_formula,
    column_add_random,
    column_change_type,
)
