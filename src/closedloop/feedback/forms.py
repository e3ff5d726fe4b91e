"""Forms of the workflow, table, column and log pages. They collect input; the services
(``feedback.services``, ``feedback.columns``) validate it against the table and write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from closedloop.feedback.models import COLUMN_NAME_MAX, Column, DataType, ShareRole

FORMULA_OPS = [
    ("sum", _("sum")),
    ("prod", _("product")),
    ("max", _("maximum")),
    ("min", _("minimum")),
    ("mean", _("mean")),
    ("median", _("median")),
    ("std", _("standard deviation")),
    ("all", _("all true")),
    ("any", _("any true")),
]


class BootstrapMixin:
    """Gives every widget its Bootstrap class, so templates just print the fields."""

    def style_widgets(self) -> None:
        # read the errors only once validated: asking earlier would validate too soon
        errors = getattr(self, "_errors", None) or {}
        for bound in self:  # type: ignore[attr-defined]
            widget = bound.field.widget
            if isinstance(widget, forms.CheckboxInput | forms.CheckboxSelectMultiple):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            if bound.name in errors:
                css += " is-invalid"
            widget.attrs["class"] = css

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.style_widgets()

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]
        self.style_widgets()


class VersionedForm(BootstrapMixin, forms.Form):
    """Carries the workflow version the form was built on (optimistic lock)."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


# --- workflows -------------------------------------------------------------------------


class WorkflowForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class AttributeForm(VersionedForm):
    name = forms.CharField(
        label=_("Name"),
        max_length=COLUMN_NAME_MAX,
        help_text=_("Usable in messages as {{ name }}."),
    )
    value = forms.CharField(label=_("Value"), required=False, max_length=2000)


class ShareForm(BootstrapMixin, forms.Form):
    email = forms.EmailField(label=_("Email of a user of this account"))
    role = forms.ChoiceField(
        label=_("Role"),
        choices=[
            (ShareRole.EDITOR, _("editor: may change data and actions")),
            (ShareRole.VIEWER, _("viewer: may only look")),
        ],
    )


class CloneForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name of the copy"), max_length=200)


class DeleteForm(BootstrapMixin, forms.Form):
    confirm_name = forms.CharField(label=_("Type the workflow's name to confirm"), max_length=200)


# --- columns ---------------------------------------------------------------------------


class ColumnAddForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=COLUMN_NAME_MAX)
    data_type = forms.ChoiceField(label=_("Type"), choices=DataType.choices)
    initial_value = forms.CharField(
        label=_("Initial value"),
        required=False,
        help_text=_("Optional: every row gets this value."),
    )
    description = forms.CharField(label=_("Description"), required=False)
    categories = forms.CharField(
        label=_("Allowed values"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional: one per line (or separated by commas)."),
    )
    is_key = forms.BooleanField(label=_("Key column (unique, never empty)"), required=False)

    def category_list(self) -> list[str]:
        return _lines(self.cleaned_data.get("categories", ""))


class ColumnEditForm(VersionedForm):
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    categories = forms.CharField(
        label=_("Allowed values"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One per line (or separated by commas); for integers also ranges such as 1-5. Empty: any value."
        ),
    )
    active_from = forms.DateTimeField(
        label=_("Active from"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    active_to = forms.DateTimeField(
        label=_("Active until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    is_key = forms.BooleanField(label=_("Key column (unique, never empty)"), required=False)
    in_viz = forms.BooleanField(label=_("Show in statistics"), required=False)

    @classmethod
    def initial_for(cls, column: Column, version: int) -> dict[str, Any]:
        return {
            "version": version,
            "description": column.description,
            "categories": "\n".join(str(v) for v in column.categories or []),
            "active_from": column.active_from,
            "active_to": column.active_to,
            "is_key": column.is_key,
            "in_viz": column.in_viz,
        }

    def category_list(self) -> list[str]:
        return _lines(self.cleaned_data.get("categories", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("active_from"), data.get("active_to")
        if start and end and end < start:
            self.add_error("active_to", _("The end of the active window is before its start."))
        return data


class ColumnRenameForm(VersionedForm):
    new_name = forms.CharField(label=_("New name"), max_length=COLUMN_NAME_MAX)


class ColumnTypeForm(VersionedForm):
    data_type = forms.ChoiceField(label=_("New type"), choices=DataType.choices)


class ColumnCloneForm(VersionedForm):
    name = forms.CharField(label=_("Name of the copy"), max_length=COLUMN_NAME_MAX)


class RandomColumnForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=COLUMN_NAME_MAX)
    values = forms.CharField(
        label=_("Values"),
        required=False,
        help_text=_("Separated by commas, e.g. A, B, C. Or give an integer range below."),
    )
    int_from = forms.IntegerField(label=_("From"), required=False)
    int_to = forms.IntegerField(label=_("To"), required=False)
    seed = forms.IntegerField(label=_("Seed"), required=False, help_text=_("Optional."))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        values = _lines(data.get("values", ""))
        low, high = data.get("int_from"), data.get("int_to")
        if values and (low is not None or high is not None):
            raise forms.ValidationError(_("Give either values or an integer range, not both."))
        if not values and (low is None or high is None):
            raise forms.ValidationError(_("Give the values, or both ends of an integer range."))
        if low is not None and high is not None and high < low:
            self.add_error("int_to", _("The end of the range is below its start."))
        data["value_list"] = values
        return data


class FormulaColumnForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=COLUMN_NAME_MAX)
    op = forms.ChoiceField(label=_("Operation"), choices=FORMULA_OPS)
    inputs = forms.MultipleChoiceField(
        label=_("Columns"),
        choices=[],
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text=_("Numbers for sum … std; true/false columns for all and any."),
    )

    def __init__(self, *args: Any, columns: list[Column] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["inputs"].choices = [  # type: ignore[attr-defined]
            (c.name, c.name)
            for c in columns
            if c.data_type in (DataType.INTEGER, DataType.DOUBLE, DataType.BOOLEAN)
        ]


# --- rows ------------------------------------------------------------------------------


def row_field_name(column: Column) -> str:
    return f"col_{column.pk}"


class RowForm(VersionedForm):
    """One field per column, typed for the browser; the service converts and checks."""

    def __init__(self, *args: Any, columns: list[Column], **kwargs: Any) -> None:
        self.columns = columns
        super().__init__(*args, **kwargs)
        for column in columns:
            self.fields[row_field_name(column)] = _row_field(column)
        self.style_widgets()

    def raw_values(self) -> dict[str, str]:
        """Column name → the text typed (empty string: NULL)."""
        return {
            c.name: (self.cleaned_data.get(row_field_name(c)) or "").strip() for c in self.columns
        }

    def bound_for(self, column: Column) -> forms.BoundField:
        return self[row_field_name(column)]


def _row_field(column: Column) -> forms.Field:
    label = column.name
    help_text = column.description
    if column.categories:
        options: list[tuple[str, Any]] = [("", "—")] + [(str(v), str(v)) for v in column.categories]
        return forms.ChoiceField(label=label, choices=options, required=False, help_text=help_text)
    if column.data_type == DataType.BOOLEAN:
        choices: list[tuple[str, Any]] = [("", "—"), ("true", _("true")), ("false", _("false"))]
        return forms.ChoiceField(label=label, choices=choices, required=False, help_text=help_text)
    attrs: dict[str, str] = {}
    if column.data_type == DataType.INTEGER:
        attrs = {"type": "number", "step": "1", "inputmode": "numeric"}
    elif column.data_type == DataType.DOUBLE:
        attrs = {"type": "number", "step": "any", "inputmode": "decimal"}
    elif column.data_type == DataType.DATETIME:
        attrs = {"type": "datetime-local", "step": "1"}
    return forms.CharField(
        label=label, required=False, help_text=help_text, widget=forms.TextInput(attrs=attrs)
    )


def row_initial(columns: list[Column], row: dict[str, Any]) -> dict[str, str]:
    """Initial form values from a fetched row (typed values → browser text)."""
    from django.utils import timezone

    initial: dict[str, str] = {}
    for column in columns:
        value = row.get(column.name)
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif column.data_type == DataType.DATETIME and hasattr(value, "strftime"):
            text = timezone.localtime(value).strftime("%Y-%m-%dT%H:%M:%S")
        else:
            text = str(value)
        initial[row_field_name(column)] = text
    return initial


# --- logs ------------------------------------------------------------------------------


class LogFilterForm(BootstrapMixin, forms.Form):
    event = forms.ChoiceField(label=_("Event"), required=False)
    user = forms.ChoiceField(label=_("User"), required=False)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(
        self, *args: Any, events: list[str], users: list[tuple[int, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        event_choices: list[tuple[str, Any]] = [("", _("All events"))]
        user_choices: list[tuple[str, Any]] = [("", _("Everyone"))]
        self.fields["event"].choices = event_choices + [(e, e) for e in events]  # type: ignore[attr-defined]
        self.fields["user"].choices = user_choices + [(str(k), v) for k, v in users]  # type: ignore[attr-defined]
