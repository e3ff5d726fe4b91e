"""The shape of ``workflow.json`` (closedloop's export format), validated with pydantic,
and the cross-checks between its parts (a view naming a missing column, a condition on a
column that does not exist, a rubric level beyond the criterion's categories, ...).

Every error names the file and the element: ``workflow.json: action “Week 3”: condition
“Low”: score: no such column``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from closedloop.feedback.models import COLUMN_NAME_MAX, ActionType, Column, DataType, TextFormat
from closedloop.feedback.values import FeedbackError

FORMAT = "closedloop-workflow"
VERSION = 1


class TransferError(FeedbackError):
    """An import refused; the message starts with the file and the element at fault."""

    def __init__(
        self,
        file: str,
        element: str | None,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.file, self.element = file, element
        text = f"{file}: {element}: {message}" if element else f"{file}: {message}"
        super().__init__(
            text, errors or [{"row": None, "column": element, "message": text}], field=element
        )


class _Spec(BaseModel):
    model_config = ConfigDict(extra="ignore")


Name = Field(min_length=1, max_length=200)


class ColumnSpec(_Spec):
    name: str = Field(min_length=1, max_length=COLUMN_NAME_MAX)
    data_type: Literal["string", "integer", "double", "boolean", "datetime"]
    is_key: bool = False
    position: int | None = None
    description: str = ""
    categories: list[Any] = Field(default_factory=list)
    active_from: dt.datetime | None = None
    active_to: dt.datetime | None = None
    in_viz: bool = True

    @field_validator("categories", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class DataSpec(_Spec):
    file: str = "data.csv"
    rows: int | None = None


class FilterSpec(_Spec):
    name: str = Name
    description: str = ""
    formula: dict[str, Any] = Field(default_factory=dict)


class ViewSpec(_Spec):
    name: str = Name
    description: str = ""
    columns: list[str] = Field(default_factory=list)
    filter: str | None = None


class ConditionSpec(_Spec):
    name: str = Field(min_length=1, max_length=COLUMN_NAME_MAX)
    description: str = ""
    formula: dict[str, Any] = Field(default_factory=dict)


class ActionColumnSpec(_Spec):
    column: str
    condition: str | None = None
    changes_allowed: bool = True


class RubricCellSpec(_Spec):
    column: str
    level: int = Field(ge=0)
    description: str = ""
    feedback: str = ""


class ActionSpec(_Spec):
    name: str = Name
    description: str = ""
    action_type: Literal[tuple(ActionType.values)]  # type: ignore[valid-type]
    filter: str | None = None
    text_content: str = ""
    text_format: Literal[tuple(TextFormat.values)] = "html"  # type: ignore[valid-type]
    subject: str = Field(default="", max_length=500)
    target_url: str = Field(default="", max_length=500)
    serve_enabled: bool = False
    active_from: dt.datetime | None = None
    active_to: dt.datetime | None = None
    shuffle: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    conditions: list[ConditionSpec] = Field(default_factory=list)
    columns: list[ActionColumnSpec] = Field(default_factory=list)
    rubric_cells: list[RubricCellSpec] = Field(default_factory=list)


class ScheduleSpec(_Spec):
    name: str = Name
    description: str = ""
    operation_type: str
    action: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    execute_start: dt.datetime | None = None
    execute_until: dt.datetime | None = None
    frequency: str = ""
    incremental: bool = False


class WorkflowSpec(_Spec):
    format: Literal["closedloop-workflow"]
    version: int
    name: str = ""
    description: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    columns: list[ColumnSpec] = Field(default_factory=list)
    data: DataSpec | None = None
    filters: list[FilterSpec] = Field(default_factory=list)
    views: list[ViewSpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    schedules: list[ScheduleSpec] = Field(default_factory=list)

    def with_workflow_columns(self, workflow: Any) -> WorkflowSpec:
        """This spec with the columns of ``workflow`` (actions-only imports)."""
        columns = [
            ColumnSpec(name=c.name, data_type=c.data_type, is_key=c.is_key, categories=c.categories)
            for c in Column.objects.filter(workflow=workflow)
        ]
        return self.model_copy(update={"columns": columns})


def _element(raw: Any, loc: tuple[Any, ...]) -> str:
    """``actions[2] “Week 3”.conditions[0] “Low”.formula`` from a pydantic location."""
    parts: list[str] = []
    node = raw
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" “{node['name']}”"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return "".join(parts)


def parse_spec(raw: Any, file: str) -> WorkflowSpec:
    if not isinstance(raw, dict):
        raise TransferError(file, None, _("must hold a JSON object."))
    if raw.get("format") != FORMAT:
        raise TransferError(
            file, "format", _("is not “%(f)s”: this is not a closedloop export.") % {"f": FORMAT}
        )
    version = raw.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise TransferError(
            file, "version",
            _("%(v)s is not a version this closedloop reads (1 to %(max)s).") % {"v": version, "max": VERSION},
        )  # fmt: skip
    try:
        return WorkflowSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        errors = [
            {"row": None, "column": _element(raw, tuple(e["loc"])),
             "message": f"{file}: {_element(raw, tuple(e['loc']))}: {e['msg']}"}
            for e in exc.errors()[:20]
        ]  # fmt: skip
        raise TransferError(
            file, _element(raw, tuple(first["loc"])), first["msg"], errors
        ) from None


def _pseudo_columns(spec: WorkflowSpec) -> list[Column]:
    return [
        Column(name=c.name, data_type=c.data_type, is_key=c.is_key, slot=i + 1,
               categories=c.categories or [])
        for i, c in enumerate(spec.columns)
    ]  # fmt: skip


def _check_formula(formula: dict[str, Any], columns: list[Column], file: str, element: str) -> None:
    from closedloop.feedback import conditions

    try:
        conditions.compile_formula(formula or None, columns)
    except conditions.ConditionError as exc:
        raise TransferError(file, element, str(exc)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TransferError(
            file, element, _("the formula is malformed (%(e)s).") % {"e": exc}
        ) from None


def _unique(names: list[str], file: str, kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TransferError(file, f"{kind} “{name}”", _("the name is used twice."))
        seen.add(name)


def check_references(spec: WorkflowSpec, file: str) -> None:
    """Everything a spec names must exist in it, before anything is written."""
    columns = _pseudo_columns(spec)
    by_name = {c.name: c for c in columns}
    _unique([c.name for c in spec.columns], file, "column")
    if spec.columns and not any(c.is_key for c in spec.columns):
        raise TransferError(file, "columns", _("at least one column must be a key."))
    for column in spec.columns:
        if column.data_type not in DataType.values:
            raise TransferError(file, f"column “{column.name}”", _("unknown type."))
    _unique([f.name for f in spec.filters], file, "filter")
    filters = {f.name for f in spec.filters}
    for item in spec.filters:
        _check_formula(item.formula, columns, file, f"filter “{item.name}”")
    _unique([v.name for v in spec.views], file, "view")
    for view in spec.views:
        for name in view.columns:
            if name not in by_name:
                raise TransferError(
                    file, f"view “{view.name}”", _("uses the unknown column “%(c)s”.") % {"c": name}
                )
        if view.filter and view.filter not in filters:
            raise TransferError(
                file,
                f"view “{view.name}”",
                _("uses the unknown filter “%(f)s”.") % {"f": view.filter},
            )
    _unique([a.name for a in spec.actions], file, "action")
    for action in spec.actions:
        _check_action(action, columns, by_name, filters, file)
    action_names = {a.name for a in spec.actions}
    for schedule in spec.schedules:
        if schedule.action and schedule.action not in action_names:
            raise TransferError(
                file, f"schedule “{schedule.name}”",
                _("runs the action “%(a)s”, which is not in the export.") % {"a": schedule.action},
            )  # fmt: skip


def _check_action(
    action: ActionSpec,
    columns: list[Column],
    by_name: dict[str, Column],
    filters: set[str],
    file: str,
) -> None:
    element = f"action “{action.name}”"
    if action.filter and action.filter not in filters:
        raise TransferError(
            file, element, _("uses the unknown filter “%(f)s”.") % {"f": action.filter}
        )
    names = [c.name for c in action.conditions]
    _unique(names, file, f"{element}: condition")
    for condition in action.conditions:
        _check_formula(condition.formula, columns, file, f"{element}: condition “{condition.name}”")
    criteria: dict[str, Column] = {}
    for item in action.columns:
        column = by_name.get(item.column)
        if column is None:
            raise TransferError(
                file, element, _("uses the unknown column “%(c)s”.") % {"c": item.column}
            )
        if item.condition and item.condition not in names:
            raise TransferError(
                file, element, _("uses the unknown condition “%(c)s”.") % {"c": item.condition}
            )
        criteria[column.name] = column
    for cell in action.rubric_cells:
        column = criteria.get(cell.column)
        if column is None:
            raise TransferError(
                file,
                element,
                _("has a rubric cell for “%(c)s”, which is not a criterion.") % {"c": cell.column},
            )
        if cell.level >= len(column.categories or []):
            raise TransferError(
                file, element,
                _("rubric level %(l)s of “%(c)s” does not exist (it has %(n)s levels).")
                % {"l": cell.level, "c": cell.column, "n": len(column.categories or [])},
            )  # fmt: skip
