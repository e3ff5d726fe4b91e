"""Services for filters, conditions and views: validate, store, count, log, bump version.

A filter's or condition's formula is validated by compiling it (so nothing that cannot be
evaluated is stored) and its ``selected_count`` is stored at once. A condition's count is the
rows matching its action's filter AND the condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from closedloop.feedback import conditions
from closedloop.feedback.conditions import ConditionError
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import (
    COLUMN_NAME_MAX,
    Action,
    Column,
    Condition,
    Filter,
    View,
    Workflow,
)

NAME_MAX = 200


class FilterError(ConditionError):
    """A bad value for a filter, condition or view field other than the formula
    (``field`` is the input's name: ``name``, ``column_ids``, ``filter`` …)."""


def _bump(workflow: Workflow, expected: int | None) -> None:
    from closedloop.feedback.services import bump_version  # late: services import conditions

    bump_version(workflow, expected)


def _columns(workflow: Workflow) -> list[Column]:
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))


def _clean_formula(formula: Any, columns: list[Column]) -> dict[str, Any]:
    if formula in (None, ""):
        return {}
    if not isinstance(formula, dict):
        raise ConditionError(None, _("The formula must be a JSON object (a group of rules)."))
    conditions.compile_formula(formula, columns)
    return formula


def _clean_name(name: Any, *, limit: int = NAME_MAX) -> str:
    name = str(name or "").strip()
    if not name:
        raise FilterError("name", _("A name is needed."))
    if len(name) > limit:
        raise FilterError(
            "name", _("The name is longer than %(limit)d characters.") % {"limit": limit}
        )
    return name


def _count(workflow: Workflow, formula: dict[str, Any], columns: list[Column], within: Any) -> int:
    return conditions.count_matching(workflow, formula, within=within or None, columns=columns)


# --- filters ------------------------------------------------------------------------------


def _unique_filter_name(workflow: Workflow, name: str, exclude: int | None = None) -> None:
    qs = Filter.objects.filter(workflow=workflow, name=name)
    if exclude:
        qs = qs.exclude(pk=exclude)
    if qs.exists():
        raise FilterError(
            "name", _("A filter named “%(name)s” already exists in this workflow.") % {"name": name}
        )


def filter_create(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    formula: Any,
    description: str = "",
    expected_version: int | None = None,
) -> Filter:
    name = _clean_name(name)
    columns = _columns(workflow)
    formula = _clean_formula(formula, columns)
    with transaction.atomic():
        _unique_filter_name(workflow, name)
        item = Filter.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            name=name,
            description=description or "",
            formula=formula,
            selected_count=_count(workflow, formula, columns, None),
        )
        _bump(workflow, expected_version)
        log_event(workflow, actor, "filter_create", _filter_payload(item))
    return item


def filter_update(
    *,
    filter: Filter,  # noqa: A002 - the model's name
    actor: Any,
    name: str | None = None,
    formula: Any = None,
    description: str | None = None,
    expected_version: int | None = None,
) -> Filter:
    """Change the given fields (None: unchanged). Recounts the filter and the conditions of
    the actions that use it."""
    workflow = filter.workflow
    columns = _columns(workflow)
    if name is not None:
        filter.name = _clean_name(name)
    if formula is not None:
        filter.formula = _clean_formula(formula, columns)
    if description is not None:
        filter.description = description
    with transaction.atomic():
        _unique_filter_name(workflow, filter.name, exclude=filter.pk)
        filter.selected_count = _count(workflow, filter.formula, columns, None)
        filter.save()
        if formula is not None:
            _recount_conditions(
                Condition.objects.filter(action__filter=filter).select_related("action__filter"),
                workflow,
                columns,
            )
        _bump(workflow, expected_version)
        log_event(workflow, actor, "filter_update", _filter_payload(filter))
    return filter


def filter_delete(*, filter: Filter, actor: Any, expected_version: int | None = None) -> None:  # noqa: A002
    """Delete a filter; views and actions using it fall back to every row."""
    workflow = filter.workflow
    with transaction.atomic():
        action_ids = list(Action.objects.filter(filter=filter).values_list("pk", flat=True))
        payload = _filter_payload(filter)
        filter.delete()
        if action_ids:
            columns = _columns(workflow)
            _recount_conditions(
                Condition.objects.filter(action_id__in=action_ids).select_related("action__filter"),
                workflow,
                columns,
            )
        _bump(workflow, expected_version)
        log_event(workflow, actor, "filter_delete", payload)


def _filter_payload(item: Filter) -> dict[str, Any]:
    return {
        "id": item.pk,
        "name": item.name,
        "formula": item.formula,
        "formula_text": conditions.formula_to_text(item.formula),
        "selected_count": item.selected_count,
    }


def _recount_conditions(
    items: Iterable[Condition], workflow: Workflow, columns: list[Column]
) -> None:
    changed = []
    for item in items:
        within = item.action.filter.formula if item.action.filter else None
        try:
            count = _count(workflow, item.formula, columns, within)
        except ConditionError:
            continue
        if count != item.selected_count:
            item.selected_count = count
            changed.append(item)
    if changed:
        Condition.objects.bulk_update(changed, ["selected_count"])


# --- conditions ---------------------------------------------------------------------------


def _clean_condition_name(action: Action, name: Any, exclude: int | None = None) -> str:
    """Condition names share the template namespace with columns and attributes."""
    name = _clean_name(name, limit=COLUMN_NAME_MAX)
    if "'" in name or '"' in name:
        raise FilterError("name", _("A condition name may not contain quotes."))
    if name.startswith("__"):
        raise FilterError("name", _("A condition name may not start with “__”."))
    workflow = action.workflow
    if Column.objects.filter(workflow=workflow, name=name).exists():
        raise FilterError("name", _("“%(name)s” is already the name of a column.") % {"name": name})
    if name in (workflow.attributes or {}):
        raise FilterError(
            "name", _("“%(name)s” is already the name of an attribute.") % {"name": name}
        )
    qs = Condition.objects.filter(action=action, name=name)
    if exclude:
        qs = qs.exclude(pk=exclude)
    if qs.exists():
        raise FilterError(
            "name",
            _("A condition named “%(name)s” already exists in this action.") % {"name": name},
        )
    return name


def _action_filter_formula(action: Action) -> Any:
    return action.filter.formula if action.filter_id and action.filter else None


def condition_create(
    *,
    action: Action,
    actor: Any,
    name: str,
    formula: Any,
    description: str = "",
    expected_version: int | None = None,
) -> Condition:
    workflow = action.workflow
    columns = _columns(workflow)
    formula = _clean_formula(formula, columns)
    with transaction.atomic():
        name = _clean_condition_name(action, name)
        position = (Condition.objects.filter(action=action).aggregate(m=Max("position"))["m"]) or 0
        item = Condition.objects.create(
            account_id=workflow.account_id,
            action=action,
            name=name,
            description=description or "",
            formula=formula,
            position=position + 1,
            selected_count=_count(workflow, formula, columns, _action_filter_formula(action)),
        )
        _bump(workflow, expected_version)
        log_event(workflow, actor, "condition_create", _condition_payload(item))
    return item


def condition_update(
    *,
    condition: Condition,
    actor: Any,
    name: str | None = None,
    formula: Any = None,
    description: str | None = None,
    expected_version: int | None = None,
) -> Condition:
    """Change the given fields (None: unchanged). A renamed condition is renamed in the
    action's templates when Part E's ``templating.rename_in_template`` is there."""
    action = condition.action
    workflow = action.workflow
    columns = _columns(workflow)
    old_name = condition.name
    if formula is not None:
        condition.formula = _clean_formula(formula, columns)
    if description is not None:
        condition.description = description
    with transaction.atomic():
        if name is not None and name.strip() != old_name:
            condition.name = _clean_condition_name(action, name, exclude=condition.pk)
        condition.selected_count = _count(
            workflow, condition.formula, columns, _action_filter_formula(action)
        )
        condition.save()
        if condition.name != old_name:
            _rename_in_action(action, old_name, condition.name)
        _bump(workflow, expected_version)
        payload = _condition_payload(condition)
        if condition.name != old_name:
            payload["old_name"] = old_name
        log_event(workflow, actor, "condition_update", payload)
    return condition


def _rename_in_action(action: Action, old: str, new: str) -> None:
    try:
        from closedloop.feedback.templating import rename_in_template
    except ImportError:  # pragma: no cover - templating not installed
        return
    changed = False
    for field in ("text_content", "subject"):
        text = getattr(action, field)
        if text and old in text:
            renamed = rename_in_template(text, old, new)
            if renamed != text:
                setattr(action, field, renamed)
                changed = True
    if changed:
        action.save(update_fields=["text_content", "subject"])


def condition_delete(
    *, condition: Condition, actor: Any, expected_version: int | None = None
) -> None:
    workflow = condition.action.workflow
    with transaction.atomic():
        payload = _condition_payload(condition)
        condition.delete()
        _bump(workflow, expected_version)
        log_event(workflow, actor, "condition_delete", payload)


def condition_clone(
    *,
    condition: Condition,
    actor: Any,
    name: str | None = None,
    action: Action | None = None,
    expected_version: int | None = None,
) -> Condition:
    """A copy of ``condition`` (into ``action``, default its own) named ``name``
    (default "Copy of <name>")."""
    target = action or condition.action
    if name is None:
        name = _("Copy of %(name)s") % {"name": condition.name}
    clone = condition_create(
        action=target,
        actor=actor,
        name=name[:COLUMN_NAME_MAX],
        formula=condition.formula,
        description=condition.description,
        expected_version=expected_version,
    )
    log_event(
        target.workflow,
        actor,
        "condition_clone",
        {"id": clone.pk, "name": clone.name, "from_id": condition.pk, "from": condition.name},
    )
    return clone


def _condition_payload(item: Condition) -> dict[str, Any]:
    return {
        "id": item.pk,
        "action": item.action.name,
        "action_id": item.action_id,
        "name": item.name,
        "formula": item.formula,
        "formula_text": conditions.formula_to_text(item.formula),
        "selected_count": item.selected_count,
    }


# --- views --------------------------------------------------------------------------------


def _clean_view(
    workflow: Workflow,
    name: Any,
    column_ids: Any,
    filter: Filter | None,
    exclude: int | None,  # noqa: A002
) -> tuple[str, list[int]]:
    name = _clean_name(name)
    qs = View.objects.filter(workflow=workflow, name=name)
    if exclude:
        qs = qs.exclude(pk=exclude)
    if qs.exists():
        raise FilterError(
            "name", _("A view named “%(name)s” already exists in this workflow.") % {"name": name}
        )
    if not isinstance(column_ids, (list, tuple)):
        raise FilterError("column_ids", _("Choose the columns as a list of column ids."))
    try:
        ids = list(dict.fromkeys(int(i) for i in column_ids))
    except (TypeError, ValueError):
        raise FilterError("column_ids", _("Column ids must be numbers.")) from None
    known = set(Column.objects.filter(workflow=workflow, pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in known]
    if missing:
        raise FilterError(
            "column_ids",
            _("There is no column with id %(id)s in this workflow.") % {"id": missing[0]},
        )
    if filter is not None and filter.workflow_id != workflow.pk:
        raise FilterError("filter", _("That filter belongs to another workflow."))
    return name, ids


def view_create(
    *,
    workflow: Workflow,
    actor: Any,
    name: str,
    column_ids: list[int],
    filter: Filter | None = None,  # noqa: A002
    description: str = "",
    expected_version: int | None = None,
) -> View:
    with transaction.atomic():
        name, ids = _clean_view(workflow, name, column_ids, filter, None)
        view = View.objects.create(
            account_id=workflow.account_id,
            workflow=workflow,
            name=name,
            description=description or "",
            column_ids=ids,
            filter=filter,
        )
        _bump(workflow, expected_version)
        log_event(workflow, actor, "view_create", _view_payload(view))
    return view


_UNSET: Any = object()


def view_update(
    *,
    view: View,
    actor: Any,
    name: str | None = None,
    column_ids: list[int] | None = None,
    filter: Filter | None = _UNSET,  # noqa: A002
    description: str | None = None,
    expected_version: int | None = None,
) -> View:
    """Change the given fields (``filter=None`` removes the filter; leave it out to keep it)."""
    workflow = view.workflow
    new_filter = view.filter if filter is _UNSET else filter
    with transaction.atomic():
        new_name, ids = _clean_view(
            workflow,
            view.name if name is None else name,
            view.column_ids if column_ids is None else column_ids,
            new_filter,
            view.pk,
        )
        view.name, view.column_ids, view.filter = new_name, ids, new_filter
        if description is not None:
            view.description = description
        view.save()
        _bump(workflow, expected_version)
        log_event(workflow, actor, "view_update", _view_payload(view))
    return view


def view_delete(*, view: View, actor: Any, expected_version: int | None = None) -> None:
    workflow = view.workflow
    with transaction.atomic():
        payload = _view_payload(view)
        view.delete()
        _bump(workflow, expected_version)
        log_event(workflow, actor, "view_delete", payload)


def view_clone(
    *, view: View, actor: Any, name: str | None = None, expected_version: int | None = None
) -> View:
    if name is None:
        name = _("Copy of %(name)s") % {"name": view.name}
    return view_create(
        workflow=view.workflow,
        actor=actor,
        name=name,
        column_ids=list(view.column_ids),
        filter=view.filter,
        description=view.description,
        expected_version=expected_version,
    )


def _view_payload(view: View) -> dict[str, Any]:
    return {
        "id": view.pk,
        "name": view.name,
        "column_ids": view.column_ids,
        "filter": view.filter.name if view.filter else None,
    }
