"""API: a workflow's filters and views, and an action's conditions (each with its count)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, feedback_api_error
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS, Ref
from closedloop.feedback import conditions, filters, selectors
from closedloop.feedback.conditions import ConditionError
from closedloop.feedback.filters import FilterError
from closedloop.feedback.models import Action, Column, Condition, Filter, View, Workflow

try:  # the storage part's errors (optimistic lock)
    from closedloop.feedback.services import FeedbackError
except ImportError:  # pragma: no cover
    FeedbackError = type("FeedbackError", (Exception,), {})  # type: ignore[assignment,misc]

router = Router(tags=["feedback"])
T = TypeVar("T")

FORMULA_HELP = (
    'jQuery-QueryBuilder JSON: {"condition": "AND"|"OR", "not": false, "rules": '
    '[{"field": "<column>", "operator": "<operator>", "value": …}, …]}; see docs/conditions.md.'
)


class FilterIn(Schema):
    name: str = Field(..., max_length=filters.NAME_MAX)
    formula: dict[str, Any] = Field(default_factory=dict, description=FORMULA_HELP)
    description: str = ""


class FilterPatch(Schema):
    name: str | None = Field(None, max_length=filters.NAME_MAX)
    formula: dict[str, Any] | None = Field(None, description=FORMULA_HELP)
    description: str | None = None


class FilterOut(Schema):
    id: int
    name: str
    description: str
    formula: dict[str, Any]
    formula_text: str
    count: int = Field(..., description="Rows the formula selects.")


class ConditionIn(FilterIn):
    name: str = Field(..., max_length=filters.COLUMN_NAME_MAX)


class ConditionPatch(FilterPatch):
    name: str | None = Field(None, max_length=filters.COLUMN_NAME_MAX)


class ConditionOut(FilterOut):
    position: int
    count: int = Field(..., description="Rows matching the action's filter AND this condition.")


class ViewIn(Schema):
    name: str = Field(..., max_length=filters.NAME_MAX)
    column_ids: list[int] = Field(default_factory=list, description="Empty: every column.")
    filter: int | None = Field(None, description="Id of one of the workflow's filters.")
    description: str = ""


class ViewPatch(Schema):
    name: str | None = Field(None, max_length=filters.NAME_MAX)
    column_ids: list[int] | None = None
    filter: int | None = None
    description: str | None = None


class ViewOut(Schema):
    id: int
    name: str
    description: str
    column_ids: list[int]
    columns: list[str]
    filter: Ref | None


def _filter(item: Filter) -> dict[str, Any]:
    return {
        "id": item.pk,
        "name": item.name,
        "description": item.description,
        "formula": item.formula or {},
        "formula_text": conditions.formula_to_text(item.formula),
        "count": item.selected_count,
    }


def _condition(item: Condition) -> dict[str, Any]:
    return {**_filter(item), "position": item.position}  # type: ignore[arg-type]


def _view_out(names: dict[int, str]) -> Callable[[View], dict[str, Any]]:
    def out(view: View) -> dict[str, Any]:
        return {
            "id": view.pk,
            "name": view.name,
            "description": view.description,
            "column_ids": list(view.column_ids),
            "columns": [names[i] for i in view.column_ids if i in names],
            "filter": {"id": view.filter.pk, "name": view.filter.name} if view.filter else None,
        }

    return out


def _column_names(workflow: Workflow) -> dict[int, str]:
    return dict(Column.objects.filter(workflow=workflow).values_list("pk", "name"))


def _call(run: Callable[[], T]) -> T:
    """Run a service; its errors become 400 (bad field or formula) or 409 (conflict)."""
    try:
        return run()
    except FilterError as exc:
        raise ApiError(400, exc.message, [(exc.field or "", exc.message)]) from None
    except ConditionError as exc:
        field = f"formula.{exc.field}" if exc.field else "formula"
        raise ApiError(400, str(exc), [(field, str(exc))]) from None
    except FeedbackError as exc:
        raise feedback_api_error(exc) from None


def _workflow(request: HttpRequest, wid: int, need: selectors.Need = "view") -> Workflow:
    return selectors.get_workflow(membership_of(request), wid, need)


def _get_filter(workflow: Workflow, fid: int) -> Filter:
    item = Filter.objects.filter(workflow=workflow, pk=fid).first()
    if item is None:
        raise ApiError(404, _("Not found."))
    item.workflow = workflow
    return item


def _filter_ref(workflow: Workflow, fid: int | None) -> Filter | None:
    if fid is None:
        return None
    item = Filter.objects.filter(workflow=workflow, pk=fid).first()
    if item is None:
        message = _("There is no filter with id %(id)s in this workflow.") % {"id": fid}
        raise ApiError(400, message, [("filter", message)])
    return item


def _action(request: HttpRequest, wid: int, aid: int, need: selectors.Need = "view") -> Action:
    action = selectors.get_action(membership_of(request), wid, aid, need)
    return action


def _get_condition(action: Action, cid: int) -> Condition:
    item = Condition.objects.filter(action=action, pk=cid).first()
    if item is None:
        raise ApiError(404, _("Not found."))
    item.action = action
    return item


# --- filters ------------------------------------------------------------------------------


@router.get(
    "/workflows/{wid}/filters", response={200: Page[FilterOut], **ERRORS}, summary="Filters"
)
def list_filters(request: HttpRequest, wid: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = _workflow(request, wid)
    return paginate(Filter.objects.filter(workflow=workflow).order_by("name", "pk"), page, _filter)


@router.post(
    "/workflows/{wid}/filters",
    response={201: FilterOut, **WRITE_ERRORS},
    summary="Create a filter (returns its count)",
)
def create_filter(request: HttpRequest, wid: int, payload: FilterIn) -> Status[dict[str, Any]]:
    workflow = _workflow(request, wid, "edit")
    user = membership_of(request).user
    item = _call(
        lambda: filters.filter_create(
            workflow=workflow,
            actor=user,
            name=payload.name,
            formula=payload.formula,
            description=payload.description,
        )
    )
    return Status(201, _filter(item))


@router.get(
    "/workflows/{wid}/filters/{fid}", response={200: FilterOut, **ERRORS}, summary="One filter"
)
def get_filter(request: HttpRequest, wid: int, fid: int) -> dict[str, Any]:
    return _filter(_get_filter(_workflow(request, wid), fid))


def _update_filter(
    request: HttpRequest, wid: int, fid: int, values: dict[str, Any]
) -> dict[str, Any]:
    workflow = _workflow(request, wid, "edit")
    item = _get_filter(workflow, fid)
    user = membership_of(request).user
    item = _call(lambda: filters.filter_update(filter=item, actor=user, **values))
    return _filter(item)


@router.put(
    "/workflows/{wid}/filters/{fid}",
    response={200: FilterOut, **WRITE_ERRORS},
    summary="Replace a filter",
)
def replace_filter(request: HttpRequest, wid: int, fid: int, payload: FilterIn) -> dict[str, Any]:
    return _update_filter(request, wid, fid, payload.dict())


@router.patch(
    "/workflows/{wid}/filters/{fid}",
    response={200: FilterOut, **WRITE_ERRORS},
    summary="Change a filter",
)
def patch_filter(request: HttpRequest, wid: int, fid: int, payload: FilterPatch) -> dict[str, Any]:
    values = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    return _update_filter(request, wid, fid, values)


@router.delete(
    "/workflows/{wid}/filters/{fid}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a filter",
)
def delete_filter(request: HttpRequest, wid: int, fid: int) -> Status[None]:
    workflow = _workflow(request, wid, "edit")
    item = _get_filter(workflow, fid)
    user = membership_of(request).user
    _call(lambda: filters.filter_delete(filter=item, actor=user))
    return Status(204, None)


# --- conditions ---------------------------------------------------------------------------


@router.get(
    "/workflows/{wid}/actions/{aid}/conditions",
    response={200: Page[ConditionOut], **ERRORS},
    summary="An action's conditions",
)
def list_conditions(
    request: HttpRequest, wid: int, aid: int, page: Query[PageParams]
) -> dict[str, Any]:
    action = _action(request, wid, aid)
    qs = Condition.objects.filter(action=action).order_by("position", "pk")
    return paginate(qs, page, _condition)


@router.post(
    "/workflows/{wid}/actions/{aid}/conditions",
    response={201: ConditionOut, **WRITE_ERRORS},
    summary="Add a condition to an action (returns its count)",
)
def create_condition(
    request: HttpRequest, wid: int, aid: int, payload: ConditionIn
) -> Status[dict[str, Any]]:
    action = _action(request, wid, aid, "edit")
    user = membership_of(request).user
    item = _call(
        lambda: filters.condition_create(
            action=action,
            actor=user,
            name=payload.name,
            formula=payload.formula,
            description=payload.description,
        )
    )
    return Status(201, _condition(item))


@router.get(
    "/workflows/{wid}/actions/{aid}/conditions/{cid}",
    response={200: ConditionOut, **ERRORS},
    summary="One condition",
)
def get_condition(request: HttpRequest, wid: int, aid: int, cid: int) -> dict[str, Any]:
    return _condition(_get_condition(_action(request, wid, aid), cid))


def _update_condition(
    request: HttpRequest, wid: int, aid: int, cid: int, values: dict[str, Any]
) -> dict[str, Any]:
    action = _action(request, wid, aid, "edit")
    item = _get_condition(action, cid)
    user = membership_of(request).user
    item = _call(lambda: filters.condition_update(condition=item, actor=user, **values))
    return _condition(item)


@router.put(
    "/workflows/{wid}/actions/{aid}/conditions/{cid}",
    response={200: ConditionOut, **WRITE_ERRORS},
    summary="Replace a condition",
)
def replace_condition(
    request: HttpRequest, wid: int, aid: int, cid: int, payload: ConditionIn
) -> dict[str, Any]:
    return _update_condition(request, wid, aid, cid, payload.dict())


@router.patch(
    "/workflows/{wid}/actions/{aid}/conditions/{cid}",
    response={200: ConditionOut, **WRITE_ERRORS},
    summary="Change a condition",
)
def patch_condition(
    request: HttpRequest, wid: int, aid: int, cid: int, payload: ConditionPatch
) -> dict[str, Any]:
    values = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    return _update_condition(request, wid, aid, cid, values)


@router.delete(
    "/workflows/{wid}/actions/{aid}/conditions/{cid}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a condition",
)
def delete_condition(request: HttpRequest, wid: int, aid: int, cid: int) -> Status[None]:
    action = _action(request, wid, aid, "edit")
    item = _get_condition(action, cid)
    user = membership_of(request).user
    _call(lambda: filters.condition_delete(condition=item, actor=user))
    return Status(204, None)


# --- views --------------------------------------------------------------------------------


def _get_view(workflow: Workflow, vid: int) -> View:
    item = View.objects.filter(workflow=workflow, pk=vid).select_related("filter").first()
    if item is None:
        raise ApiError(404, _("Not found."))
    item.workflow = workflow
    return item


@router.get("/workflows/{wid}/views", response={200: Page[ViewOut], **ERRORS}, summary="Views")
def list_views(request: HttpRequest, wid: int, page: Query[PageParams]) -> dict[str, Any]:
    workflow = _workflow(request, wid)
    qs = View.objects.filter(workflow=workflow).select_related("filter").order_by("name", "pk")
    return paginate(qs, page, _view_out(_column_names(workflow)))


@router.post(
    "/workflows/{wid}/views", response={201: ViewOut, **WRITE_ERRORS}, summary="Create a view"
)
def create_view(request: HttpRequest, wid: int, payload: ViewIn) -> Status[dict[str, Any]]:
    workflow = _workflow(request, wid, "edit")
    user = membership_of(request).user
    the_filter = _filter_ref(workflow, payload.filter)
    view = _call(
        lambda: filters.view_create(
            workflow=workflow,
            actor=user,
            name=payload.name,
            column_ids=payload.column_ids,
            filter=the_filter,
            description=payload.description,
        )
    )
    return Status(201, _view_out(_column_names(workflow))(view))


@router.get("/workflows/{wid}/views/{vid}", response={200: ViewOut, **ERRORS}, summary="One view")
def get_view(request: HttpRequest, wid: int, vid: int) -> dict[str, Any]:
    workflow = _workflow(request, wid)
    return _view_out(_column_names(workflow))(_get_view(workflow, vid))


def _update_view(
    request: HttpRequest, wid: int, vid: int, values: dict[str, Any]
) -> dict[str, Any]:
    workflow = _workflow(request, wid, "edit")
    view = _get_view(workflow, vid)
    user = membership_of(request).user
    if "filter" in values:
        values["filter"] = _filter_ref(workflow, values["filter"])
    view = _call(lambda: filters.view_update(view=view, actor=user, **values))
    return _view_out(_column_names(workflow))(view)


@router.put(
    "/workflows/{wid}/views/{vid}",
    response={200: ViewOut, **WRITE_ERRORS},
    summary="Replace a view",
)
def replace_view(request: HttpRequest, wid: int, vid: int, payload: ViewIn) -> dict[str, Any]:
    return _update_view(request, wid, vid, payload.dict())


@router.patch(
    "/workflows/{wid}/views/{vid}", response={200: ViewOut, **WRITE_ERRORS}, summary="Change a view"
)
def patch_view(request: HttpRequest, wid: int, vid: int, payload: ViewPatch) -> dict[str, Any]:
    values = payload.dict(exclude_unset=True)
    values = {k: v for k, v in values.items() if v is not None or k == "filter"}
    return _update_view(request, wid, vid, values)


@router.delete(
    "/workflows/{wid}/views/{vid}", response={204: None, **WRITE_ERRORS}, summary="Delete a view"
)
def delete_view(request: HttpRequest, wid: int, vid: int) -> Status[None]:
    workflow = _workflow(request, wid, "edit")
    view = _get_view(workflow, vid)
    user = membership_of(request).user
    _call(lambda: filters.view_delete(view=view, actor=user))
    return Status(204, None)
